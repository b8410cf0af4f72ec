"""Two int8 MACs per DSP48E2: the packed multiply and the split of its product.

The arithmetic is specified in :mod:`sfc_hls.dsp_packing` (one multiply
``a * (w_hi * 2**S + w_lo)``, the low field read as signed, the high field
corrected by the low field's sign).  :class:`MacArray` uses the two halves
with its product register between them: :func:`packed_multiply` before (the
``$add`` of the packed weight feeds the DSP48E2's pre-adder, the ``$mul`` the
multiplier, the register its M/P register) and :func:`split_packed` after.
:class:`PackedMultiplier` chains both without the register: the unit that
``hw/formal.py`` proves equal to two separate products for every input.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.dsp_packing import PackedMultiply

__all__ = ["PackedMultiplier", "packed_multiply", "split_packed"]


def packed_multiply(spec: PackedMultiply, a: Value, w_hi: Value, w_lo: Value) -> Value:
    """``a * (w_hi * 2**S + w_lo)`` as a signed ``spec.product_bits`` value."""
    packed = (w_hi.as_signed() << spec.spacing) + w_lo.as_signed()
    product = a.as_signed() * packed
    return product.as_signed()[: spec.product_bits].as_signed()


def split_packed(spec: PackedMultiply, product: Value) -> tuple[Value, Value, Value]:
    """``(high_field, low, borrow)`` of a packed product: ``a * w_lo == low`` and
    ``a * w_hi == high_field + borrow`` (``borrow``, one bit, is the low field's
    sign: add it as the carry-in of the adder that consumes the high field)."""
    s = spec.spacing
    low = product[:s].as_signed()
    high_field = product[s:].as_signed()
    return high_field, low, product[s - 1]


class PackedMultiplier(wiring.Component):
    """Two signed products sharing one operand from one multiply (combinational).

    Parameters
    ----------
    act_bits, weight_bits : int
        Signed widths of the shared operand ``a`` and of the weights.

    Ports
    -----
    i : In(StructLayout({"a": signed(act_bits), "w_hi": signed(weight_bits),
        "w_lo": signed(weight_bits)}))
    o : Out(StructLayout({"hi": signed(act_bits + weight_bits),
        "lo": signed(act_bits + weight_bits)}))
        ``hi == a * w_hi`` and ``lo == a * w_lo`` for every input.

    Contract
    --------
    * Latency: 0 (:attr:`latency`); no state, no handshake.
    """

    latency = 0

    def __init__(self, *, act_bits: int = 8, weight_bits: int = 8) -> None:
        self.spec = PackedMultiply(act_bits, weight_bits)
        product = signed(self.spec.spacing)
        super().__init__(
            {
                "i": In(
                    data.StructLayout(
                        {
                            "a": signed(act_bits),
                            "w_hi": signed(weight_bits),
                            "w_lo": signed(weight_bits),
                        }
                    )
                ),  # fmt: skip
                "o": Out(data.StructLayout({"hi": product, "lo": product})),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        product = Signal(signed(self.spec.product_bits))
        m.d.comb += product.eq(packed_multiply(self.spec, self.i.a, self.i.w_hi, self.i.w_lo))
        high_field, low, borrow = split_packed(self.spec, product)
        m.d.comb += [self.o.hi.eq(high_field + borrow), self.o.lo.eq(low)]
        return m
