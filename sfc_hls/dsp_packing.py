"""Two MACs per DSP: the executable specification of the packed multiplier.

Two products that share one operand (an activation ``a`` times the weights of
two output channels, ``w_hi`` and ``w_lo``) come out of one wide multiply
(Xilinx WP486/WP487; FINN's DSP packing)::

    P  = a * (w_hi * 2**S + w_lo)            one multiply, S = act_bits + weight_bits
    lo = P mod 2**S, read as a signed S-bit number      = a * w_lo
    hi = (P >> S) + (1 if lo < 0 else 0)                = a * w_hi

``a * w_lo`` fits in ``S`` signed bits (``|a * w_lo| <= 2**(S-2)``), so the
low field holds it exactly; the arithmetic shift of ``P`` floors, which
borrows one from the high field whenever the low product is negative: the
correction adds that one back (in the engine it is the carry-in of the
high accumulator's adder).  The products are extracted every cycle and
accumulated in fabric adders, not in the DSP's P register: with ``S`` bits
between the fields a running sum of low products would spill into the high
field after a single product (there are no guard bits), and guard bits for
``cin_max`` products would need ``S + log2(cin_max)`` bits of spacing, more
than the DSP48E2's 27-bit port leaves for ``cin_max >= 8``.

The packed operand ``w_hi * 2**S + w_lo`` has ``S + weight_bits`` bits and
goes into the DSP48E2's 27-bit A:D port, ``a`` into the 18-bit B port:
int8 x int8 needs 24 and 8 bits (:func:`packing_fits`).  On ECP5 (18x18
multipliers) the packed multiply takes two blocks, so packing saves nothing
there: use ``macs_per_dsp=1``.

:func:`packed_products` is the specification the RTL unit
(:class:`sfc_hls.hw.dsp_packing.PackedMultiplier`) is proved against;
``tests/test_dsp_packing.py`` checks it exhaustively for int8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sfc_hls.arguments import check_int

__all__ = ["DSP_WIDE_BITS", "DSP_NARROW_BITS", "PackedMultiply", "packing_fits", "packed_products"]

#: DSP48E2 multiplier ports (signed): the pre-adder A:D port and the B port.
DSP_WIDE_BITS = 27
DSP_NARROW_BITS = 18


@dataclass(frozen=True)
class PackedMultiply:
    """Widths of one packed multiply of a signed ``act_bits`` activation by two
    signed ``weight_bits`` weights.

    Attributes:
        spacing: ``S``, bit offset of the high weight, ``act_bits + weight_bits``
            (the width of one signed product).
        packed_weight_bits: signed width of ``w_hi * 2**S + w_lo``.
        product_bits: signed width of the packed product ``P``.
    """

    act_bits: int
    weight_bits: int

    def __post_init__(self) -> None:
        check_int("act_bits", self.act_bits, 2)
        check_int("weight_bits", self.weight_bits, 2)

    @property
    def spacing(self) -> int:
        return self.act_bits + self.weight_bits

    @property
    def packed_weight_range(self) -> tuple[int, int]:
        """Exact range of ``w_hi * 2**S + w_lo``."""
        w_lo, w_hi = -(1 << (self.weight_bits - 1)), (1 << (self.weight_bits - 1)) - 1
        return (w_lo << self.spacing) + w_lo, (w_hi << self.spacing) + w_hi

    @property
    def packed_weight_bits(self) -> int:
        """Signed width of the packed weight, ``S + weight_bits + 1`` (the low weight's
        sign extension reaches one bit below the high weight's range)."""
        return _signed_bits(*self.packed_weight_range)

    @property
    def product_bits(self) -> int:
        """Signed width of ``P``, from the extremes of ``a`` times the packed weight."""
        a_lo, a_hi = -(1 << (self.act_bits - 1)), (1 << (self.act_bits - 1)) - 1
        ends = [a * p for a in (a_lo, a_hi) for p in self.packed_weight_range]
        return _signed_bits(min(ends), max(ends))


def _signed_bits(lo: int, hi: int) -> int:
    """Smallest signed width holding ``[lo, hi]``."""
    return max((-lo - 1).bit_length(), hi.bit_length()) + 1


def packing_fits(act_bits: int, weight_bits: int) -> bool:
    """Whether one DSP48E2 computes the packed multiply (A:D 27 bits, B 18 bits)."""
    spec = PackedMultiply(act_bits, weight_bits)
    return spec.packed_weight_bits <= DSP_WIDE_BITS and act_bits <= DSP_NARROW_BITS


def packed_products(a, w_hi, w_lo, spec: PackedMultiply) -> tuple[np.ndarray, np.ndarray]:
    """``(a * w_hi, a * w_lo)`` computed as the packed unit does: one multiply, split, correct.

    Inputs are integer arrays (broadcast together) in their signed ranges;
    ValueError names the first one that is not.  The packed product and both
    fields are checked against their derived widths.
    """
    a, w_hi, w_lo = (np.asarray(v, dtype=np.int64) for v in (a, w_hi, w_lo))
    for name, value, bits in (("a", a, spec.act_bits), ("w_hi", w_hi, spec.weight_bits),
                              ("w_lo", w_lo, spec.weight_bits)):  # fmt: skip
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if value.size and (value.min() < lo or value.max() > hi):
            raise ValueError(f"{name} must be a signed {bits}-bit integer in [{lo}, {hi}]")
    s = spec.spacing
    packed = (w_hi << s) + w_lo
    _check_width("packed weight", packed, spec.packed_weight_bits)
    product = a * packed
    _check_width("packed product", product, spec.product_bits)
    low = product & ((1 << s) - 1)
    low = np.where(low >= 1 << (s - 1), low - (1 << s), low)  # the low field, signed
    high = (product >> s) + (low < 0)
    return high, low


def _check_width(name: str, value: np.ndarray, bits: int) -> None:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if value.size and (value.min() < lo or value.max() > hi):
        raise AssertionError(f"{name} exceeds its derived {bits}-bit signed width")
