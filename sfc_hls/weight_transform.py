"""Spatial weights transformed on chip: the specification (docs/datapath.md, "Spatial weights").

A fast-mode layer's multipliers take transform-domain weights ``W[j, co, ci]``
(``m`` per kernel, 132 for SFC-6(7x7,3x3)), but a kernel has only ``R x R``
spatial taps (9).  Streaming ``W`` costs ``m / R^2`` times the bytes of the
spatial weights (14.7x for SFC-6).  With *spatial weights* the layer is
defined by int8 spatial weights ``w[co, ci]`` (``R x R``) and a shift per
(position, output channel); the transform-domain weights follow exactly::

    u[j, co, ci] = sum_t (D G)[j, t] * w[co, ci, t]     exact, |u| <= row_bound[j]
    W[j, co, ci] = rshift(u, shift[j, co])              round half up, asserted in [-wmax, wmax]

``D`` is the least common multiple of ``G``'s denominators
(:attr:`~sfc_hls.bilinear.BilinearAlgorithm.g_denominator`; 36 for SFC-6,
whose ``36 G`` rows have L1 norm at most 36), so ``u`` is an integer of
:func:`transform_bits` bits and the hardware computes it with adders.  The
shift of position ``j`` lies in a window of :data:`SHIFT_WINDOW` values
ending at the smallest shift that fits any ``u`` of the row
(:func:`shift_window`: ``[hi_j - 3, hi_j]``, clipped at 0), so the hardware
needs a 4:1 choice per weight, not a barrel shifter, and no clamp: a shift
that would let ``W`` leave the weight range is not a valid layer (asserted
here; the quantizer picks the smallest shift that fits).  In real terms
``W ~ G w_float * D / (S[co] 2^shift)`` with ``S[co]`` the spatial weight
scale: the weight scale of (position, channel) is ``S[co] 2^shift[j, co] / D``,
which the rescale multiplier ``rescale_mult[j, co]`` absorbs as before.
"""

from __future__ import annotations

import numpy as np

from sfc_hls.bilinear import BilinearAlgorithm, signed_width
from sfc_hls.datapath import check_bound, rshift_round, rshift_round_bound

__all__ = [
    "SHIFT_WINDOW",
    "exact_transform",
    "fitting_shifts",
    "row_bounds",
    "shift_window",
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


#: Shifts a position may take (a window ending at the row's largest useful shift).
SHIFT_WINDOW = 4


def row_bounds(algo: BilinearAlgorithm, weight_bits: int) -> np.ndarray:
    """Largest ``|u[j]|`` per position ``j`` (its row's L1 norm times ``wmax``), ``(m,)``."""
    return np.abs(algo.g_scaled_int.astype(np.int64)).sum(axis=1) * _weight_max(weight_bits)


def shift_window(algo: BilinearAlgorithm, weight_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` per position: ``hi[j]`` the smallest shift that fits every ``u[j]`` into the
    weight range, ``lo[j] = max(hi[j] - SHIFT_WINDOW + 1, 0)``."""
    wmax = _weight_max(weight_bits)
    hi = np.array([_fitting_shift(int(b), wmax) for b in row_bounds(algo, weight_bits)])
    return np.maximum(hi - (SHIFT_WINDOW - 1), 0), hi


def _fitting_shift(bound: int, wmax: int) -> int:
    shift = 0
    while rshift_round_bound(bound, shift) > wmax:
        shift += 1
    return shift


def transform_bits(algo: BilinearAlgorithm, weight_bits: int) -> int:
    """Signed width of ``u`` (every row's bound)."""
    bound = transform_bound(algo, weight_bits)
    return signed_width(-bound, bound)


def max_weight_shift(algo: BilinearAlgorithm, weight_bits: int) -> int:
    """The largest shift of any position (the top of the widest row's window)."""
    return int(shift_window(algo, weight_bits)[1].max())


def weight_shift_bits(algo: BilinearAlgorithm, weight_bits: int) -> int:
    """Bits of one shift field of the header: the offset ``shift - lo[j]`` in the window."""
    del algo, weight_bits  # the same for every algorithm and width
    return (SHIFT_WINDOW - 1).bit_length()


def exact_transform(spatial: np.ndarray, algo: BilinearAlgorithm, weight_bits: int) -> np.ndarray:
    """``u = (D G) w`` of spatial weights ``(cout, cin, R, R)`` as ``(m, cout, cin)``; asserts its bound."""
    spatial = np.asarray(spatial, dtype=np.int64)
    cout, cin = spatial.shape[:2]
    # |u| <= 576 * 127 for every catalog algorithm at 8 bits: int64 is exact.
    g = algo.g_scaled_int.astype(np.int64)
    u = np.einsum("jt,oit->joi", g, spatial.reshape(cout, cin, -1))
    bound = row_bounds(algo, weight_bits)[:, None, None]
    check_bound("transformed spatial weight u = (D G) w", u, -bound, bound)
    return u


def requantize_transformed(u: np.ndarray, shift: np.ndarray, weight_bits: int) -> np.ndarray:
    """``rshift(u, shift[j, co])``, asserted within the symmetric weight range; ``shift`` is
    ``(m, cout)``."""
    wmax = _weight_max(weight_bits)
    weights = rshift_round(u, np.asarray(shift, dtype=np.int64)[:, :, None])
    check_bound("requantized transformed weight rshift(u, shift)", weights, -wmax, wmax)
    return weights


def fitting_shifts(u: np.ndarray, algo: BilinearAlgorithm, weight_bits: int) -> np.ndarray:
    """The smallest shift of each ``(j, co)`` in its window whose weights ``rshift(u[j, co], s)``
    all fit the weight range, ``(m, cout)`` (the window's top always fits)."""
    lo, hi = shift_window(algo, weight_bits)
    wmax = _weight_max(weight_bits)
    # rshift is monotonic: the extremes of rshift(u) are those of the largest and smallest u.
    top, bottom = u.max(axis=2), u.min(axis=2)
    shift = np.broadcast_to(hi[:, None], top.shape).copy()
    for s in range(int(hi.max()), -1, -1):  # downwards: the last shift that fits wins
        fits = (rshift_round(top, s) <= wmax) & (rshift_round(bottom, s) >= -wmax)
        shift = np.where(fits & (s >= lo[:, None]) & (s <= hi[:, None]), s, shift)
    return shift


def transform_spatial_weights(
    spatial: np.ndarray, shift: np.ndarray, algo: BilinearAlgorithm, weight_bits: int
) -> np.ndarray:
    """Transform-domain weights ``(m, cout, cin)`` of spatial weights ``(cout, cin, R, R)``.

    ``shift`` is ``(m, cout)``.  Asserts the bound of ``u`` and that the weights
    fit their range (:class:`~sfc_hls.datapath.BoundError`); the caller checks the
    ranges of ``spatial`` and ``shift`` (:func:`shift_window`).
    """
    return requantize_transformed(exact_transform(spatial, algo, weight_bits), shift, weight_bits)
