"""Pipelined multipliers built from a device's DSP blocks, registers included.

Yosys ``synth_xilinx`` folds the registers around a ``*`` into the DSP48E2
(A/B, M and P registers); Yosys 0.23 ``synth_ecp5`` does not: it maps ``*``
onto combinational MULT18X18D blocks whose inputs and outputs are registered
in fabric, and on a whole engine the routing into and out of the multiplier
rows then dominates the clock period (bench/results/timing.md: 9.4 ns of a
13.9 ns path).  :class:`PipelinedMultiplier` states the registers itself:
with ``target="ecp5"`` it instantiates MULT18X18D blocks with their input
and output registers clocked (``REG_INPUTA_CLK``, ``REG_INPUTB_CLK``,
``REG_OUTPUT_CLK`` = ``CLK0``, clock enable ``CE0``), with ``target="xilinx"``
it describes the same registers around a ``*``.  Both have the same latency
and the same results; ``sim/ecp5_cells.v`` models the MULT18X18D subset used
here so that an ECP5 engine simulates in Verilator.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Shape, ShapeLike, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.config import check_target

__all__ = ["BLOCK_BITS", "PipelinedMultiplier"]

#: Signed width of each operand of an ECP5 MULT18X18D.
BLOCK_BITS = 18
#: Unsigned bits of each lower limb of a wide operand (one bit below a block's
#: signed width: the limb enters the block zero-extended).
LIMB_BITS = BLOCK_BITS - 1


def _signed_bits(shape: Shape) -> int:
    """Bits of the smallest signed shape holding every value of ``shape``."""
    return shape.width if shape.signed else shape.width + 1


class PipelinedMultiplier(wiring.Component):
    """``p = a * b`` (exact, signed), computed in :attr:`latency` registered stages.

    Parameters
    ----------
    a_shape, b_shape : ShapeLike
        Operand shapes (signed or unsigned).  ``b`` must fit one block's signed
        18 bits (``signed(18)`` or ``unsigned(17)`` at most); ``a`` may be wider:
        it is split into :data:`LIMB_BITS`-bit unsigned limbs and a signed top
        limb, one multiplier block per limb.
    target : str
        ``"xilinx"`` (``*`` between registers) or ``"ecp5"`` (MULT18X18D instances).
    latency : int or None
        3 to have three stages even with one limb (the third an output register,
        so that a block's latency does not depend on its widths); default the least.

    Attributes
    ----------
    limbs : int
        MULT18X18D blocks of the ECP5 lowering (the Xilinx one is one ``*``).
    latency : int
        2 with one limb (the blocks' input and output registers), 3 with more
        (a fabric adder joins the limb products in a third register) or when asked.

    Ports
    -----
    a : In(a_shape), b : In(b_shape)
        Operands, sampled on a cycle with ``enable`` high.
    enable : In(1)
        Clock enable of every register of the multiplier (``CE0`` of the
        blocks): the stall-together contract of the pipeline around it
        (:class:`~sfc_hls.hw.pipeline.StallPipeline`), one product per enabled cycle.
    p : Out(signed(a_bits + b_bits))
        The product of the operands sampled :attr:`latency` enabled cycles earlier
        (``a_bits``, ``b_bits``: the operands' signed widths).  Zero after reset
        until the first product arrives.
    """

    def __init__(
        self, a_shape: ShapeLike, b_shape: ShapeLike, *, target: str, latency: int | None = None
    ) -> None:
        check_target(target)
        self.target = target
        self.a_shape = Shape.cast(a_shape)
        self.b_shape = Shape.cast(b_shape)
        a_bits = _signed_bits(self.a_shape)
        b_bits = _signed_bits(self.b_shape)
        if b_bits > BLOCK_BITS:
            raise ValueError(
                f"b_shape {self.b_shape} needs {b_bits} signed bits; a multiplier block "
                f"takes at most {BLOCK_BITS} (split the wider operand into a_shape)"
            )
        self.a_bits = a_bits
        self.limbs = 1 if a_bits <= BLOCK_BITS else -(-(a_bits - BLOCK_BITS) // LIMB_BITS) + 1
        least = 2 if self.limbs == 1 else 3
        if latency is not None and latency not in (least, 3):
            raise ValueError(
                f"latency must be {least if least == 3 else '2 or 3'} for a {a_bits}-bit a "
                f"({self.limbs} limb{'s' if self.limbs > 1 else ''}), got {latency!r}"
            )
        self.latency = least if latency is None else latency
        super().__init__(
            {
                "a": In(self.a_shape),
                "b": In(self.b_shape),
                "enable": In(1),
                "p": Out(signed(a_bits + b_bits)),
            }
        )

    def limb_values(self, a) -> list:
        """``a`` as limbs, lowest first: unsigned :data:`LIMB_BITS`-bit values, the
        top one signed; ``a == sum(limb[i] << (i * LIMB_BITS))``."""
        a = a.as_signed() if self.a_shape.signed else a
        if self.limbs == 1:
            return [a]
        low = [a[i * LIMB_BITS : (i + 1) * LIMB_BITS] for i in range(self.limbs - 1)]
        top = a[(self.limbs - 1) * LIMB_BITS :]
        return [*low, top.as_signed() if self.a_shape.signed else top]

    def elaborate(self, platform) -> Module:
        m = Module()
        if self.target != "ecp5":
            # The registers of a DSP48E2 (A/B, M, and P when there is a third stage).
            a_r = Signal(self.a_shape, name="a_r")
            b_r = Signal(self.b_shape, name="b_r")
            product = Signal(self.p.shape(), name="product")
            with m.If(self.enable):
                m.d.sync += [a_r.eq(self.a), b_r.eq(self.b), product.eq(a_r * b_r)]
            if self.latency == 2:
                m.d.comb += self.p.eq(product)
            else:
                with m.If(self.enable):
                    m.d.sync += self.p.eq(product)
            return m
        limbs = self.limb_values(self.a)
        products = [
            Signal(signed(2 * BLOCK_BITS), name=f"limb_product{i}") for i in range(len(limbs))
        ]
        for i, (limb, product) in enumerate(zip(limbs, products, strict=True)):
            m.submodules[f"dsp{i}"] = self._mult18x18d(m, limb, product, name=f"limb{i}")
        if self.latency == 2:
            m.d.comb += self.p.eq(products[0])
        else:
            joined = sum(p << (i * LIMB_BITS) for i, p in enumerate(products))
            with m.If(self.enable):
                m.d.sync += self.p.eq(joined)
        return m

    def _mult18x18d(self, m: Module, limb, product: Signal, *, name: str) -> Instance:
        """One MULT18X18D: ``limb * b`` with input registers and output register on CLK0/CE0."""
        a18 = Signal(signed(BLOCK_BITS), name=f"{name}_a")
        b18 = Signal(signed(BLOCK_BITS), name=f"{name}_b")
        m.d.comb += [a18.eq(limb), b18.eq(self.b)]
        ports = {
            "i_CLK0": ClockSignal(),
            "i_CE0": self.enable,
            "i_RST0": Const(0, 1),
            "i_SIGNEDA": Const(1, 1),
            "i_SIGNEDB": Const(1, 1),
            "i_SOURCEA": Const(0, 1),
            "i_SOURCEB": Const(0, 1),
        }
        ports.update({f"i_A{j}": a18[j] for j in range(BLOCK_BITS)})
        ports.update({f"i_B{j}": b18[j] for j in range(BLOCK_BITS)})
        ports.update({f"o_P{j}": product[j] for j in range(2 * BLOCK_BITS)})
        return Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0",
            p_REG_INPUTB_CLK="CLK0",
            p_REG_OUTPUT_CLK="CLK0",
            p_RESETMODE="SYNC",
            **ports,
        )
