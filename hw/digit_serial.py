"""A linear transform applied digit by digit: ``y = T x`` on a narrow adder network.

The output transform ``y = A^T z`` of the fast modes is the widest adder
network of the engine (SFC-6(7x7,3x3): 621 adders on 20-bit ``z``), but a
tile reaches it only once every ``B = m / W`` cycles (the tile collector
gathers ``B`` blocks of ``W`` values).  :class:`DigitSerialTransform` spends
that slack on width: ``T`` is linear, so with ``x`` cut into ``n`` digits of
``D`` bits, most significant first (the top digit signed, the others
unsigned)::

    x    = sum_i d_i * 2^(D * (n - 1 - i))
    T x  = (...((T d_0) * 2^D + T d_1) * 2^D + ...) * 2^D + T d_(n-1)      (Horner)

one adder network on ``D + 1``-bit digits computes ``T d_i`` for one digit
per cycle, and one adder per output row accumulates.  After digit ``i`` the
accumulator holds ``T (x >> D*(n-1-i))`` (an arithmetic shift: the lower
digits are unsigned), a value of a narrower input, so the accumulator has
the row's exact width for ``x`` and never wraps.  The Horner step adds only
above the digit: ``(acc << D) + t = ((acc + (t >> D)) << D) | (t mod 2^D)``.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, ShapeLike, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.adder_network import AdderNetwork
from sfc_hls.arguments import check_int
from sfc_hls.bilinear import signed_width
from sfc_hls.hw.pipeline import meta_field
from sfc_hls.hw.port_buffers import RegisterSlice
from sfc_hls.hw.transform import (
    DEFAULT_ADDS_PER_STAGE,
    AdderNetlist,
    AdderNetworkUnit,
    adder_netlist,
)

__all__ = ["DigitPlan", "DigitSerialTransform", "best_digits"]


class DigitPlan:
    """How a signed ``in_width``-bit input is cut into ``digits`` digits.

    Attributes:
        digit_bits: ``D = ceil(in_width / digits)``, the bits of every digit but the top one.
        top_bits: bits of the top (signed) digit, ``in_width - (digits - 1) * D``, >= 1.
        digit_range: ``(lo, hi)`` over every digit: the top digit's signed range
            joined with ``[0, 2^D - 1]``.
        net_width: signed width of the network's inputs, ``signed_width(*digit_range)``.
        fields: ``(low bit, bits)`` of each digit in ``x``, most significant first.
    """

    def __init__(self, in_width: int, digits: int) -> None:
        self.in_width = check_int("in_width", in_width, 2)
        self.digits = check_int("digits", digits, 1, in_width)
        self.digit_bits = -(-in_width // digits)
        self.top_bits = in_width - (digits - 1) * self.digit_bits
        if not self.valid(in_width, digits):
            raise ValueError(
                f"digits={digits} cuts a {in_width}-bit input into {self.digit_bits}-bit digits "
                f"and leaves no bit for the top one; choose another number of digits"
            )
        top = 1 << (self.top_bits - 1)
        low_hi = (1 << self.digit_bits) - 1 if digits > 1 else 0
        self.digit_range = (-top, max(top - 1, low_hi))
        self.net_width = signed_width(*self.digit_range)
        self.fields = [
            ((digits - 1 - i) * self.digit_bits, self.top_bits if i == 0 else self.digit_bits)
            for i in range(digits)
        ]

    @staticmethod
    def valid(in_width: int, digits: int) -> bool:
        """Whether ``digits`` digits of ``ceil(in_width / digits)`` bits leave >= 1 bit on top."""
        return in_width - (digits - 1) * -(-in_width // digits) >= 1

    def split(self, x: np.ndarray) -> list[np.ndarray]:
        """The digits of integers ``x``, most significant first (the top one signed)."""
        x = np.asarray(x, dtype=object)
        return [
            x >> low if i == 0 else (x >> low) & ((1 << bits) - 1)
            for i, (low, bits) in enumerate(self.fields)
        ]


class DigitSerialTransform(wiring.Component):
    """``y = T x`` for an integer matrix ``T``, one digit of ``x`` per cycle.

    Parameters
    ----------
    network : AdderNetwork
        ``T`` as its shared adder network (as for :class:`AdderNetworkUnit`).
    in_width : int
        Width of the signed inputs ``x``, >= 2.
    digits : int
        ``n``, the digits per input (:class:`DigitPlan`), >= 1.  The unit takes
        one vector every ``n + 1`` cycles.
    meta_layout : ShapeLike or None
        Carried from input to output with its vector (as for :class:`AdderNetworkUnit`).
    adds_per_stage : int
        Adder levels between the network's pipeline registers.

    Attributes
    ----------
    plan : DigitPlan
    network_unit : AdderNetworkUnit
        The narrow network (inputs ``plan.net_width`` bits, range ``plan.digit_range``).
    out_widths, out_width : the exact signed widths of the rows of ``T x`` over every
        ``in_width``-bit ``x`` (those of :func:`~sfc_hls.hw.transform.adder_netlist` at
        ``in_width``): the accumulators' widths.
    adders : int
        The network's adders plus one accumulator per row.
    latency : int
        ``digits + network latency + 2`` (:meth:`latency_of`).
    interval : int
        ``digits + 1``: cycles between two inputs taken.

    Ports
    -----
    i_x : In(stream.Signature({"data": ArrayLayout(signed(in_width), n_inputs), "meta"}))
    o_y : Out(stream.Signature({"data": ArrayLayout(signed(out_width), n_rows), "meta"}))
        ``o_y.payload.data[r] == sum_k T[r, k] * i_x.payload.data[k]`` exactly.

    Contract
    --------
    * Latency: ``o_y.valid`` rises :attr:`latency` cycles after the ``i_x``
      handshake: the vector is registered (1), its digits are selected into a
      register on the next ``n`` cycles, the last enters the network one cycle
      later (1), leaves it ``network latency`` cycles after that and is
      accumulated (1).
    * Throughput: one vector per :attr:`interval` = ``n + 1`` cycles;
      ``i_x.ready`` is a register (high when no vector is held), so no
      combinational path runs from ``o_y.ready`` to ``i_x.ready``.
    * Backpressure: a result is held on ``o_y`` until ``o_y.ready``; meanwhile the
      network holds (stall-together) and the digits wait.
    * Reset: ``o_y.valid`` low, no vector held.
    """

    def __init__(
        self,
        network: AdderNetwork,
        *,
        in_width: int,
        digits: int,
        meta_layout: ShapeLike | None = None,
        adds_per_stage: int = DEFAULT_ADDS_PER_STAGE,
    ) -> None:
        self.plan = DigitPlan(in_width, digits)
        self.in_width, self.digits = self.plan.in_width, self.plan.digits
        self.meta_layout = meta_layout
        full = adder_netlist(network, in_width, adds_per_stage)
        self.out_widths, self.out_width = tuple(full.row_widths), full.out_width
        self.n_inputs, self.n_rows = network.inputs, len(network.rows)
        digit_meta = data.StructLayout(
            {"digit": range(digits), **meta_field(meta_layout)}
        )  # fmt: skip
        self.network_unit = AdderNetworkUnit(
            network,
            in_width=self.plan.net_width,
            meta_layout=digit_meta,
            adds_per_stage=adds_per_stage,
            in_range=self.plan.digit_range,
        )
        self.adders = self.network_unit.adders + self.n_rows
        self.latency = self.latency_of(self.network_unit.latency, digits)
        self.interval = digits + 1
        meta = meta_field(meta_layout)
        self.i_layout = data.StructLayout(
            {"data": data.ArrayLayout(signed(in_width), self.n_inputs), **meta}
        )
        self.o_layout = data.StructLayout(
            {"data": data.ArrayLayout(signed(self.out_width), self.n_rows), **meta}
        )
        super().__init__(
            {
                "i_x": In(stream.Signature(self.i_layout)),
                "o_y": Out(stream.Signature(self.o_layout)),
            }
        )

    @staticmethod
    def network_netlist(
        network: AdderNetwork, in_width: int, digits: int, adds_per_stage: int
    ) -> AdderNetlist:
        """The (cached) netlist of the unit's network: ``network`` on the digits' range."""
        plan = DigitPlan(in_width, digits)
        return adder_netlist(network, plan.net_width, adds_per_stage, plan.digit_range)

    @staticmethod
    def latency_of(network_latency: int, digits: int) -> int:
        """:attr:`latency` for a network of ``network_latency`` cycles and ``digits`` digits."""
        return digits + network_latency + 2

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Bit-true model: the network's model on each digit, accumulated as the RTL does
        (every accumulator wrapped to its width, so a width too small would show)."""
        half = np.array([1 << (w - 1) for w in self.out_widths], dtype=object)

        def wrap(v: np.ndarray) -> np.ndarray:
            return (v + half) % (2 * half) - half

        top, *lower = self.plan.split(x)
        acc = wrap(self.network_unit.evaluate(top))
        for digit in lower:
            acc = wrap(acc * (1 << self.plan.digit_bits) + self.network_unit.evaluate(digit))
        return acc

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.network = net = self.network_unit
        # The selected digits are registered before the network (RegisterSlice): the
        # digit counter fans out to every input's select, so select and first
        # adder level in one cycle would be the unit's longest path.
        m.submodules.digit_slice = digits = RegisterSlice(net.i_layout)
        wiring.connect(m, digits.o, net.i_x)
        has_meta = "meta" in dict(self.i_layout.members)
        held = Signal(self.i_layout, name="held")
        busy = Signal()
        digit = Signal(range(self.digits), name="digit")
        last = digit == self.digits - 1
        issue = busy & digits.i.ready
        m.d.comb += [self.i_x.ready.eq(~busy), digits.i.valid.eq(busy)]
        with m.If(issue):
            m.d.sync += digit.eq(Mux(last, 0, digit + 1))
            with m.If(last):
                m.d.sync += busy.eq(0)
        with m.If(self.i_x.valid & self.i_x.ready):
            m.d.sync += [held.eq(self.i_x.payload), busy.eq(1), digit.eq(0)]
        self._digit_select(m, held.data, digit, digits.i.payload.data)
        m.d.comb += digits.i.payload.meta.digit.eq(digit)
        if has_meta:
            m.d.comb += digits.i.payload.meta.meta.eq(held.meta)
        self._accumulate(m, net, has_meta)
        return m

    def _digit_select(self, m: Module, x, digit, out) -> None:
        """``out[k]`` = digit ``digit`` of ``x[k]`` (the top one sign-extended)."""
        with m.Switch(digit):
            for i, (low, bits) in enumerate(self.plan.fields):
                with m.Case(i):
                    for k in range(self.n_inputs):
                        field = x[k][low : low + bits]
                        m.d.comb += out[k].eq(field.as_signed() if i == 0 else field)

    def _accumulate(self, m: Module, net: AdderNetworkUnit, has_meta: bool) -> None:
        """Horner step per row on each network output; ``o_y`` is the accumulator."""
        d = self.plan.digit_bits
        t, tmeta = net.o_y.payload.data, net.o_y.payload.meta
        take = net.o_y.valid & net.o_y.ready
        first = tmeta.digit == 0
        m.d.comb += net.o_y.ready.eq(~self.o_y.valid | self.o_y.ready)
        with m.If(self.o_y.valid & self.o_y.ready):
            m.d.sync += self.o_y.valid.eq(0)
        accs = [Signal(signed(w), name=f"acc{r}") for r, w in enumerate(self.out_widths)]
        m.d.comb += [self.o_y.payload.data[r].eq(acc) for r, acc in enumerate(accs)]
        with m.If(take):
            for r, acc in enumerate(accs):
                width = self.out_widths[r]
                if self.digits == 1:
                    m.d.sync += acc.eq(t[r])
                    continue
                high = Signal(signed(max(width - d, 1)), name=f"acc{r}_high")
                m.d.comb += high.eq(Mux(first, 0, acc) + (t[r] >> d))
                m.d.sync += acc.eq(Cat(t[r][:d], high))
            with m.If(tmeta.digit == self.digits - 1):
                m.d.sync += self.o_y.valid.eq(1)
                if has_meta:
                    m.d.sync += self.o_y.payload.meta.eq(tmeta.meta)


def best_digits(in_width: int, interval_max: int, digits_max: int) -> int:
    """The digits the engine uses: as many as ``digits_max`` allows while a vector
    every ``interval_max`` cycles is still taken (``digits + 1 <= interval_max``);
    1 (the whole input at once) when none fits."""
    n = max(min(digits_max, interval_max - 1, in_width), 1)
    while not DigitPlan.valid(in_width, n):
        n -= 1
    return n
