"""Spatial weights transformed on chip: the specification (docs/datapath.md, "Spatial weights").

A fast-mode layer's multipliers take transform-domain weights ``W[j, co, ci]``
(``m`` per kernel, 132 for SFC-6(7x7,3x3)), but a kernel has only ``R x R``
spatial taps (9).  Streaming ``W`` costs ``m / R^2`` times the bytes of the
spatial weights (14.7x for SFC-6).  With *spatial weights* the layer is
defined by int8 spatial weights ``w[co, ci]`` (``R x R``) and a shift per
(position, output channel); the transform-domain weights follow exactly::

    u[j, co, ci] = sum_t (D G)[j, t] * w[co, ci, t]     exact, |u| <= transform_bound
    W[j, co, ci] = sat(rshift(u, shift[j, co]))         round half up, symmetric weight range

``D`` is the least common multiple of ``G``'s denominators
(:attr:`~sfc_hls.bilinear.BilinearAlgorithm.g_denominator`; 36 for SFC-6,
whose ``36 G`` rows have L1 norm at most 36), so ``u`` is an integer of
:func:`transform_bits` bits and the hardware computes it with adders; the
shift brings each (position, channel) back to the multiplier's
``weight_bits``.  In real terms ``W ~ G w_float * D / (S[co] 2^shift)`` with
``S[co]`` the spatial weight scale: the per-(position, channel) weight scale
of the layer is ``S[co] 2^shift[j, co] / D``, a power of two times a channel
scale, which the rescale multiplier ``rescale_mult[j, co]`` absorbs as before.
"""

from __future__ import annotations

import numpy as np

from sfc_hls.bilinear import BilinearAlgorithm, signed_width
from sfc_hls.datapath import check_bound, rshift_round, rshift_round_bound

__all__ = [
    "exact_transform",
    "requantize_transformed",
    "max_weight_shift",
    "transform_bound",
    "transform_bits",
    "transform_spatial_weights",
    "weight_shift_bits",
]


def _weight_max(weight_bits: int) -> int:
    return (1 << (weight_bits - 1)) - 1


def transform_bound(algo: BilinearAlgorithm, weight_bits: int) -> int:
    """Largest ``|u| = |(D G) w|`` over spatial weights in the symmetric ``weight_bits`` range."""
    row_l1 = int(np.abs(algo.g_scaled_int).sum(axis=1).max())
    return row_l1 * _weight_max(weight_bits)


def transform_bits(algo: BilinearAlgorithm, weight_bits: int) -> int:
    """Signed width of ``u`` (and of ``u`` plus the rounding constant of any useful shift)."""
    bound = transform_bound(algo, weight_bits)
    rounded = bound + (1 << max(max_weight_shift(algo, weight_bits) - 1, 0))
    return signed_width(-rounded, rounded)


def max_weight_shift(algo: BilinearAlgorithm, weight_bits: int) -> int:
    """The smallest shift after which every ``u`` fits ``weight_bits``; larger ones are useless."""
    bound, wmax = transform_bound(algo, weight_bits), _weight_max(weight_bits)
    shift = 0
    while rshift_round_bound(bound, shift) > wmax:
        shift += 1
    return shift


def weight_shift_bits(algo: BilinearAlgorithm, weight_bits: int) -> int:
    """Bits of one ``shift[j, co]`` field (unsigned, ``0..max_weight_shift``)."""
    return max(max_weight_shift(algo, weight_bits).bit_length(), 1)


def exact_transform(spatial: np.ndarray, algo: BilinearAlgorithm, weight_bits: int) -> np.ndarray:
    """``u = (D G) w`` of spatial weights ``(cout, cin, R, R)`` as ``(m, cout, cin)``; asserts its bound."""
    spatial = np.asarray(spatial, dtype=np.int64)
    cout, cin = spatial.shape[:2]
    # |u| <= 576 * 127 for every catalog algorithm at 8 bits: int64 is exact.
    g = algo.g_scaled_int.astype(np.int64)
    u = np.einsum("jt,oit->joi", g, spatial.reshape(cout, cin, -1))
    bound = transform_bound(algo, weight_bits)
    check_bound("transformed spatial weight u = (D G) w", u, -bound, bound)
    return u


def requantize_transformed(u: np.ndarray, shift: np.ndarray, weight_bits: int) -> np.ndarray:
    """``sat(rshift(u, shift[j, co]))`` to the symmetric weight range; ``shift`` is ``(m, cout)``."""
    wmax = _weight_max(weight_bits)
    return np.clip(rshift_round(u, np.asarray(shift, dtype=np.int64)[:, :, None]), -wmax, wmax)


def transform_spatial_weights(
    spatial: np.ndarray, shift: np.ndarray, algo: BilinearAlgorithm, weight_bits: int
) -> np.ndarray:
    """Transform-domain weights ``(m, cout, cin)`` of spatial weights ``(cout, cin, R, R)``.

    ``shift`` is ``(m, cout)``.  Asserts the derived bound of ``u``; the
    caller checks the ranges of ``spatial`` and ``shift``.
    """
    return requantize_transformed(exact_transform(spatial, algo, weight_bits), shift, weight_bits)
