"""Elementwise multiply-accumulate stage of the SFC convolution engine.

In the transform domain a convolution becomes, for every transform position
``k`` and output channel ``co``, a dot product over input channels::

    acc[co][k] = sum over ci of act[ci][k] * weight[co][ci][k]

:class:`MacArray` computes ``lanes`` output channels for all ``positions``
transform positions in parallel and takes one input channel per beat.
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.arguments import check_int
from sfc_hls.config import check_target
from sfc_hls.datapath import accumulation_bound
from sfc_hls.dsp_packing import PackedMultiply, packing_fits
from sfc_hls.hw.dsp_packing import packed_multiply, split_packed
from sfc_hls.hw.multiplier import PipelinedMultiplier

__all__ = ["MacArray"]


class _ControlCopy(NamedTuple):
    """A copy of the ECP5 array's control (:meth:`MacArray._control_copy`)."""

    enable: Signal  # both multiply stages
    advance: Signal  # the accumulators
    valid: Signal  # a product in the product stage
    first: Signal  # ... of an accumulation's first beat
    acc_valid: Signal  # o_acc.valid


class MacArray(wiring.Component):
    """Transform-domain multiply-accumulate array.

    Each beat on ``i_beat`` carries one input channel: ``act[k]`` for every
    position ``k`` and ``weights[lane][k]`` for every lane. The array multiplies
    them elementwise (``positions * lanes`` multipliers) and adds the products to
    ``lanes * positions`` accumulators. ``first`` clears the accumulators so that
    they start from this beat's products; ``last`` marks the beat that completes
    the sum over input channels, after which the sums are offered on ``o_acc``
    as ``payload[lane][k]``.

    Parameters
    ----------
    positions : int
        Number of transform-domain positions ``m`` (for example 132), >= 1.
    lanes : int
        Output channels computed in parallel (``P_co``), >= 1.
    act_bits : int
        Width of the signed activations, >= 2. Default 8.
    weight_bits : int
        Width of the signed weights, >= 2. Default 8.
    cin_max : int
        Largest number of beats (input channels) in one accumulation, >= 1.
        The accumulator width is derived from it (see
        :meth:`accumulator_width`); longer accumulations may overflow.
    macs_per_dsp : int
        1: one multiplier per (lane, position). 2: lanes ``2j`` and ``2j+1``
        share one packed multiply per position (:mod:`sfc_hls.dsp_packing`:
        one DSP48E2 computes both products; an odd last lane multiplies
        alone); the products are split after the product register and
        accumulated in fabric. Same results, same contract. Default 1.
    target : str
        ``"xilinx"`` (default) or ``"ecp5"``: the products come from MULT18X18D
        blocks with their input and output registers (one more stage,
        :meth:`latency_of`; ``macs_per_dsp`` must be 1).

    Attributes
    ----------
    latency : int
        2, on ECP5 3 (:meth:`latency_of`; see Contract).
    acc_width : int
        Width of each signed accumulator, ``accumulator_width(...)``.
    multipliers : int
        Number of MAC multipliers (products per beat), ``positions * lanes``.
    dsp_multipliers : int
        Multiply operators built: ``positions * ceil(lanes / 2)`` when packed.
    beat_layout, acc_layout : data.Layout
        Payload layouts of ``i_beat`` and ``o_acc``.

    Ports
    -----
    i_beat : In(stream.Signature(beat_layout))
        ``StructLayout({"act": ArrayLayout(signed(act_bits), positions),
        "weights": ArrayLayout(ArrayLayout(signed(weight_bits), positions), lanes),
        "first": 1, "last": 1})``. ``first`` must be set on the first beat of
        every accumulation; a beat with both ``first`` and ``last`` is a
        one-channel accumulation.
    o_acc : Out(stream.Signature(acc_layout))
        ``ArrayLayout(ArrayLayout(signed(acc_width), positions), lanes)``.

    Contract
    --------
    * Latency: ``o_acc.valid`` rises :attr:`latency` = 2 cycles after the
      handshake of the ``last`` beat (products are registered, then accumulated;
      on ECP5 3 cycles: operands and products registered in the multiplier blocks).
    * Throughput: one beat per cycle, including back-to-back accumulations
      (the ``first`` beat of the next accumulation directly follows ``last``),
      as long as ``o_acc.ready`` is high whenever a result is offered.
    * Backpressure: a result is held on ``o_acc`` (``valid`` high, payload
      stable) until ``o_acc.ready``. Only then does the array stall: it keeps
      one beat of products and deasserts ``i_beat.ready``. ``i_beat.ready``
      depends combinationally on ``o_acc.ready``; ``o_acc.valid`` does not
      depend on ``o_acc.ready``.
    * Reset: ``o_acc.valid`` is low and the accumulators are zero.
    * Packed lanes (``macs_per_dsp=2``) keep this contract: the packed product
      is registered in stage 1, split and accumulated in stage 2.
    * ECP5 keeps it too: the two multiply stages share one enable, low only when
      the product stage is full and a result waits on ``o_acc``.
    """

    def __init__(
        self,
        *,
        positions: int,
        lanes: int,
        act_bits: int = 8,
        weight_bits: int = 8,
        cin_max: int,
        macs_per_dsp: int = 1,
        target: str = "xilinx",
    ) -> None:
        self.positions = check_int("positions", positions, 1)
        self.lanes = check_int("lanes", lanes, 1)
        self.act_bits = check_int("act_bits", act_bits, 2)
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.cin_max = check_int("cin_max", cin_max, 1)

        self.acc_width = self.accumulator_width(
            act_bits=act_bits, weight_bits=weight_bits, cin_max=cin_max
        )
        self.product_width = act_bits + weight_bits
        self.multipliers = positions * lanes
        self.macs_per_dsp = check_int("macs_per_dsp", macs_per_dsp, 1, 2)
        if macs_per_dsp == 2 and not packing_fits(act_bits, weight_bits):
            raise ValueError(
                f"macs_per_dsp=2 needs a packed multiply that fits one DSP48E2; "
                f"act_bits={act_bits}, weight_bits={weight_bits} do not (see sfc_hls.dsp_packing)"
            )
        check_target(target)
        if target != "xilinx" and macs_per_dsp != 1:
            raise ValueError(f"macs_per_dsp=2 packs products for a DSP48E2; target={target!r} "
                             "needs macs_per_dsp=1")  # fmt: skip
        self.target = target
        self.latency = self.latency_of(target)
        self.packing = PackedMultiply(act_bits, weight_bits)
        self.pairs = lanes // 2 if macs_per_dsp == 2 else 0
        self.dsp_multipliers = self.dsp_multiplier_count(positions, lanes, macs_per_dsp)

        self.beat_layout = data.StructLayout(
            {
                "act": data.ArrayLayout(signed(act_bits), positions),
                "weights": data.ArrayLayout(
                    data.ArrayLayout(signed(weight_bits), positions), lanes
                ),
                "first": 1,
                "last": 1,
            }
        )
        self.acc_layout = data.ArrayLayout(
            data.ArrayLayout(signed(self.acc_width), positions), lanes
        )
        super().__init__(
            {
                "i_beat": In(stream.Signature(self.beat_layout)),
                "o_acc": Out(stream.Signature(self.acc_layout)),
            }
        )

    @staticmethod
    def latency_of(target: str) -> int:
        """Cycles from the ``last`` beat's handshake to ``o_acc.valid`` on ``target``:
        2 (product register, accumulators), on ECP5 3 (the multiplier block's input
        and output registers, accumulators)."""
        return 3 if target == "ecp5" else 2

    @staticmethod
    def dsp_multiplier_count(positions: int, lanes: int, macs_per_dsp: int) -> int:
        """Multiply operators of an array: one per position for each packed lane pair
        (``macs_per_dsp=2``) and for each lane that multiplies alone."""
        pairs = lanes // 2 if macs_per_dsp == 2 else 0
        return positions * (lanes - pairs)

    @staticmethod
    def accumulator_width(*, act_bits: int = 8, weight_bits: int = 8, cin_max: int) -> int:
        """Smallest signed width that holds every sum of ``cin_max`` products.

        The bound is :func:`sfc_hls.datapath.accumulation_bound` (the golden
        model asserts the same one); its positive end decides the width:
        ``bound.bit_length() + 1`` bits. Example: int8 x int8 over 1 channel
        needs 16 bits, over 64 channels 22 bits.
        """
        check_int("act_bits", act_bits, 2)
        check_int("weight_bits", weight_bits, 2)
        check_int("cin_max", cin_max, 1)
        return accumulation_bound(cin_max, act_bits, weight_bits).bit_length() + 1

    def elaborate(self, platform) -> Module:
        m = Module()
        if self.target == "ecp5":
            return self._elaborate_blocks(m)
        beat = self.i_beat.payload

        # Stage 1: registered products (maps onto the multiplier's output
        # register of a DSP slice); packed lane pairs register the packed product.
        single = range(2 * self.pairs, self.lanes)
        products = {
            lane: [Signal(signed(self.product_width), name=f"product_{lane}_{k}")
                   for k in range(self.positions)]
            for lane in single
        }  # fmt: skip
        packed = [
            [Signal(signed(self.packing.product_bits), name=f"packed_{2 * j}_{2 * j + 1}_{k}")
             for k in range(self.positions)]
            for j in range(self.pairs)
        ]  # fmt: skip
        p_valid = Signal()
        p_first = Signal()
        p_last = Signal()

        # Stage 2 (the accumulators, which are also the o_acc payload) may take
        # the products unless a finished result is still waiting on o_acc.
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o_acc.valid | self.o_acc.ready),
            self.i_beat.ready.eq(~p_valid | advance),
        ]

        with m.If(self.i_beat.ready):
            m.d.sync += p_valid.eq(self.i_beat.valid)
            with m.If(self.i_beat.valid):
                m.d.sync += [
                    p_first.eq(beat.first),
                    p_last.eq(beat.last),
                ]
                self._multiply(m, beat, products, packed)

        with m.If(advance):
            m.d.sync += self.o_acc.valid.eq(0)
            with m.If(p_valid):
                m.d.sync += self.o_acc.valid.eq(p_last)
                self._accumulate(m, p_first, products, packed)

        return m

    def _elaborate_blocks(self, m: Module) -> Module:
        """The ECP5 array: every product from a MULT18X18D with its input and output
        registers (:class:`~sfc_hls.hw.multiplier.PipelinedMultiplier`, two
        stages), then the accumulators.  One enable for both multiply stages:
        they advance unless the product stage is full and the accumulators are
        held (``i_beat.ready`` low), the contract of the class docstring.

        The control (the stages' valid, first and last flags, ``o_acc.valid``) is
        copied per multiplier and once for the ports: every copy sees the same
        inputs, so all hold the same values, and each multiplier's clock enable and
        its accumulator's come from a LUT beside them (one enable reached the
        MULT18X18D blocks over the whole device: two LUT levels and 4-5 ns of
        route, the Winograd engine's longest path)."""
        beat = self.i_beat.payload
        port = self._control_copy(m, "port")
        m.d.comb += [
            self.i_beat.ready.eq(port.enable),
            self.o_acc.valid.eq(port.acc_valid),
        ]
        acc = self.o_acc.payload
        for lane in range(self.lanes):
            for k in range(self.positions):
                ctl = self._control_copy(m, f"{lane}_{k}")
                mul = PipelinedMultiplier(
                    signed(self.act_bits), signed(self.weight_bits), target=self.target
                )
                m.submodules[f"mul_{lane}_{k}"] = mul
                m.d.comb += [
                    mul.a.eq(beat.act[k]),
                    mul.b.eq(beat.weights[lane][k]),
                    mul.enable.eq(ctl.enable),
                ]
                with m.If(ctl.advance & ctl.valid):
                    a = acc[lane][k]
                    m.d.sync += a.eq(Mux(ctl.first, 0, a) + mul.p)
        return m

    def _control_copy(self, m: Module, name: str) -> _ControlCopy:
        """One copy of the ECP5 array's control: the two multiply stages' flags under
        their enable, the result's ``valid`` under the accumulators' advance."""
        beat = self.i_beat.payload
        valid = [Signal(name=f"p_valid{s}_{name}") for s in range(2)]
        first = [Signal(name=f"p_first{s}_{name}") for s in range(2)]
        last = [Signal(name=f"p_last{s}_{name}") for s in range(2)]
        acc_valid = Signal(name=f"acc_valid_{name}")
        advance, enable = Signal(name=f"advance_{name}"), Signal(name=f"enable_{name}")
        m.d.comb += [
            advance.eq(~acc_valid | self.o_acc.ready),
            enable.eq(~valid[1] | advance),
        ]
        with m.If(enable):
            m.d.sync += [
                valid[0].eq(self.i_beat.valid), valid[1].eq(valid[0]),
                first[0].eq(beat.first), first[1].eq(first[0]),
                last[0].eq(beat.last), last[1].eq(last[0]),
            ]  # fmt: skip
        with m.If(advance):
            m.d.sync += acc_valid.eq(valid[1] & last[1])
        return _ControlCopy(enable, advance, valid[1], first[1], acc_valid)

    def _multiply(self, m: Module, beat, products: dict, packed: list) -> None:
        """Stage 1: register every product (packed lane pairs: the packed product)."""
        for k in range(self.positions):
            w = [beat.weights[lane][k] for lane in range(self.lanes)]
            for j in range(self.pairs):
                product = packed_multiply(self.packing, beat.act[k], w[2 * j + 1], w[2 * j])
                m.d.sync += packed[j][k].eq(product)
            for lane in products:
                m.d.sync += products[lane][k].eq(beat.act[k] * w[lane])

    def _accumulate(self, m: Module, first, products: dict, packed: list) -> None:
        """Stage 2: add the products to the accumulators (``first``: start from zero)."""
        acc = self.o_acc.payload
        for k in range(self.positions):
            for j in range(self.pairs):
                high, low, borrow = split_packed(self.packing, packed[j][k])
                a_lo, a_hi = acc[2 * j][k], acc[2 * j + 1][k]
                # a_hi + high + borrow as one adder with the borrow as carry-in:
                # {a_hi, borrow} + {high, borrow} = 2 * (a_hi + high + borrow).
                with_carry = (
                    Cat(borrow, Mux(first, 0, a_hi)).as_signed() + Cat(borrow, high).as_signed()
                )
                m.d.sync += [
                    a_lo.eq(Mux(first, 0, a_lo) + low),
                    a_hi.eq(with_carry[1:]),
                ]
            for lane in products:
                a = acc[lane][k]
                m.d.sync += a.eq(Mux(first, 0, a) + products[lane][k])
