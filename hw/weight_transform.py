"""On-chip weight transform: spatial weights in, transform-domain weight rows out.

A fast-mode layer's MAC array takes one weight row per input channel,
``row[lane][j]`` for the ``P_co`` lanes of an output-channel group and the
``m`` transform positions.  Streaming those rows costs ``m / R^2`` times the
bytes of the spatial weights (14.7x for SFC-6(7x7,3x3)).
:class:`SpatialWeightTransform` sits between the engine's ``i_weight`` port
and the group scheduler and, for a layer with *spatial weights*, computes the
rows on chip exactly as :func:`sfc_hls.weight_transform.transform_spatial_weights`
specifies (docs/datapath.md, "Spatial weights")::

    u[lane][j] = sum_t (D G)[j, t] * w[lane][t]             exact (AdderNetworkUnit per lane)
    row[lane][j] = rshift_round(u, shift[lane][j])          shift in position j's window of 4

Data path per row: the row select (one of the ``k = m // R^2`` spatial rows of
the input beat, registered), ``D G`` as one :class:`~sfc_hls.hw.transform.AdderNetworkUnit`
per lane (shifts and adders, no multipliers), then two registered stages per
output: ``t = floor(2u / 2^shift)``, a 4:1 choice of ``weight_bits + 1`` bits
of ``u`` (the shift lies in a window of four values per position, so this is
no barrel shifter), and ``(t + 1) >> 1`` (``rshift_round(u, s) =
floor((floor(2u / 2^s) + 1) / 2)``).  The quantizer's shifts keep every weight
in range, which the golden model asserts, so no clamp follows.
"""

from __future__ import annotations

import functools

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.adder_network import AdderNetwork
from sfc_hls.arguments import check_int
from sfc_hls.bilinear import BilinearAlgorithm
from sfc_hls.hw.pipeline import Handshake, StallPipeline
from sfc_hls.hw.transform import AdderNetworkUnit, _resolve_algorithm, adder_netlist
from sfc_hls.weight_transform import shift_window, transform_bits, weight_shift_bits

__all__ = ["SpatialWeightTransform", "spatial_group_beats"]


class SpatialWeightTransform(wiring.Component):
    """Spatial weight beats in, one transform-domain weight row per cycle out.

    Parameters (keyword-only)
    -------------------------
    algorithm : BilinearAlgorithm or str
        A 2D algorithm (``m = algo.mults`` positions, kernel ``R = algo.kernel``,
        ``m >= R^2``), resolved as by :class:`~sfc_hls.hw.transform.InputTransform`.
    pco : int
        Lanes (output channels of a group), >= 1.
    weight_bits : int
        Width of the signed weights, >= 2.
    cin_max, cout_max : int
        Largest ``cin`` and ``cout``, >= 1.

    Attributes
    ----------
    algo : BilinearAlgorithm
    m, taps : int
        ``algo.mults`` and ``R^2``.
    shift_lo : np.ndarray
        The bottom of each position's shift window
        (:func:`~sfc_hls.weight_transform.shift_window`); a header field is ``shift - lo[j]``.
    weight_layout : data.ArrayLayout
        ``ArrayLayout(ArrayLayout(signed(weight_bits), m), pco)``: both ports' payload.
    rows_per_beat : int
        ``k = m // R^2`` spatial rows per row beat (14 for SFC-6(7x7,3x3)).
    row_bits : int
        Bits of one spatial row, ``pco * R^2 * weight_bits``.
    shift_bits, header_bits : int
        :func:`~sfc_hls.weight_transform.weight_shift_bits` and ``pco * m * shift_bits``.
    network : AdderNetwork
        ``D G`` (``algo.g_scaled_int``); one :class:`~sfc_hls.hw.transform.AdderNetworkUnit`
        per lane computes it (generated in :meth:`elaborate`).
    lane_adders, lane_depth, lane_latency : int
        Adders, adder depth and latency of a lane unit (SFC-6(7x7,3x3) at 8 bits:
        223, 4, 2; the adders include 2 negations).
    u_bits : int
        Signed width of ``u``, the lane units' ``out_width``: the exact range of
        ``(D G) w`` over every ``weight_bits``-bit ``w`` (``-2^(weight_bits-1)``
        included), asserted ``>=`` the spec's
        :func:`~sfc_hls.weight_transform.transform_bits` (equal for the catalogue at 8 bits).
    latency : int
        ``1 + lane_latency + 2``: row register, lane unit, shift choice, rounding
        (5 for SFC-6(7x7,3x3), F(4x4,3x3), F(2x2,3x3) at 8 bits).

    Ports
    -----
    i_weight : In(stream.Signature(weight_layout))
    o_weight : Out(stream.Signature(weight_layout))
    spatial : In(1)
        The layer has spatial weights (held during a layer).  Low: pass-through,
        ``o_weight.valid = i_weight.valid``, ``o_weight.payload = i_weight.payload``,
        ``i_weight.ready = o_weight.ready`` (combinational).
    cin : In(range(cin_max + 1))
        Input channels of the layer, >= 1 when ``spatial`` (held during a layer).
    cout : In(range(cout_max + 1))
        Output channels of the layer (held during a layer): the layer has
        ``ceil(cout / pco)`` groups; after the last group's header no header is
        taken until the next ``restart``, so the next layer's beats wait for its
        own ``cin`` and ``spatial`` (after reset, none before a ``restart``).
    restart : In(1)
        One-cycle pulse at a layer's start: the next beat is a header; clears the
        row counters and the pending header, loads the channels left from
        ``cout``.  ``i_weight.ready`` is low in that cycle when ``spatial``.

    Input protocol (``spatial`` high), on the raw bits ``i_weight.payload.as_value()``:
    per output-channel group a header beat, ``shift[lane][j]`` unsigned at bit
    ``(lane * m + j) * shift_bits`` (the rest ignored), then ``ceil(cin / k)``
    row beats: row ``r`` (input channel ``beat * k + r`` of the group) at bit
    ``r * row_bits``, lane ``l`` at ``+ l * R^2 * weight_bits``, tap ``t``
    (row-major) at ``+ t * weight_bits``, signed; rows past ``cin`` in a
    group's last beat are dropped.  ``ceil(cout / pco)`` groups, then nothing
    until ``restart`` (:func:`spatial_group_beats` packs one group).  Position ``j``'s
    field is ``shift - lo[j]`` (:attr:`shift_lo`); the weight is the low ``weight_bits``
    bits of ``rshift(u, shift)``, which a valid layer keeps in range
    (:class:`~sfc_hls.datapath.LayerQuant` asserts it): no clamp.

    Output: per group its ``cin`` rows in order, ``o_weight.payload[lane][j] =
    rshift_round(u[lane][j], shift[lane][j])`` (:meth:`evaluate`).

    Contract
    --------
    * Latency: a row beat is read in place (the producer holds its payload
      while ``valid``); its row ``r`` is taken in the ``r``-th cycle, counting
      from 0, in which the beat is offered and the pipeline advances, and is on
      ``o_weight`` :attr:`latency` cycles later; the beat's handshake
      (``i_weight.ready``) is in the cycle of its last row.  So the group's
      first row follows its header's handshake by ``1 + latency`` cycles.
    * Throughput: one row per cycle while ``o_weight.ready`` and the beats come
      back to back; a header beat takes one cycle (no row enters).  Headers are
      double-buffered: a header goes into a pending register while the rows of
      the previous group are still in flight; each row carries a "first of its
      group" bit, and the first row, as it enters the rounding stage, uses the
      pending shifts and makes them the active ones for the rest of the group.
      A header waits while the pending register still holds the previous one,
      i.e. until that group's first row has entered the rounding stage: a
      group takes ``max(cin + 1, 3 + lane_latency)`` cycles, ``cin + 1`` for
      ``cin >= 2 + lane_latency`` (4 for the catalogue).  The price is
      ``header_bits`` flip-flops (the pending register; 792 for SFC-6(7x7,3x3)
      at ``pco=2``) and a 2:1 mux per shift field; a single shift register
      would hold each header back until the previous group's last row had read
      it, ``lane_latency + 1`` more cycles per group (3), or ``latency`` (5)
      until the pipeline is empty.
    * Backpressure: stall-together, in three
      :class:`~sfc_hls.hw.pipeline.StallPipeline` segments (row register, lane
      units, shift choice and rounding): while ``o_weight.valid & ~o_weight.ready``
      every stage holds.  ``i_weight.ready`` depends combinationally on
      ``o_weight.ready`` (and on ``spatial``, ``restart``); with ``spatial``
      high ``o_weight.valid`` comes from a register.
    * Reset: no row in flight, the next beat is a header, no pending header.
      ``restart`` does not flush rows in flight: it belongs between layers,
      with the pipeline empty (a first row still in flight would take the
      shifts of the new layer's header).
    """

    #: Registered stages after the lane units: the shift choice, the rounding.
    REQUANT_STAGES = 2

    @classmethod
    def latency_of(cls, algorithm: BilinearAlgorithm | str, weight_bits: int) -> int:
        """:attr:`latency` of the block for ``algorithm`` and ``weight_bits`` (no instance:
        for the cycle model): the row register, the lane units, the shift choice, the
        rounding."""
        algo = _resolve_algorithm(algorithm)
        return 1 + adder_netlist(_lane_network(algo), weight_bits).latency + cls.REQUANT_STAGES

    def __init__(
        self,
        *,
        algorithm: BilinearAlgorithm | str,
        pco: int,
        weight_bits: int,
        cin_max: int,
        cout_max: int,
    ) -> None:
        self.algo = algo = _resolve_algorithm(algorithm)
        self.pco = check_int("pco", pco, 1)
        self.weight_bits = wb = check_int("weight_bits", weight_bits, 2)
        self.cin_max = check_int("cin_max", cin_max, 1)
        self.cout_max = check_int("cout_max", cout_max, 1)
        self.m, self.taps = algo.mults, algo.kernel**2
        self.rows_per_beat = self.m // self.taps
        if self.rows_per_beat < 1:
            raise ValueError(f"algorithm {algo.name!r}: m={self.m} < R^2={self.taps} taps")
        self.shift_bits = weight_shift_bits(algo, wb)  # 2 <= weight_bits: a header fits a beat
        self.shift_lo = shift_window(algo, wb)[0]
        self.header_bits = pco * self.m * self.shift_bits
        self.row_bits = pco * self.taps * wb
        self.weight_layout = data.ArrayLayout(data.ArrayLayout(signed(wb), self.m), pco)

        self.network = _lane_network(algo)
        self._netlist = net = adder_netlist(self.network, wb)  # what every lane unit is built from
        self.lane_adders, self.lane_depth, self.lane_latency = net.adders, net.depth, net.latency
        self.u_bits = net.out_width
        if self.u_bits < transform_bits(algo, wb):  # two derivations of the width agree
            raise AssertionError(f"{algo.name}: u_bits {self.u_bits} < transform_bits")
        self.latency = self.latency_of(algo, wb)
        super().__init__(
            {
                "i_weight": In(stream.Signature(self.weight_layout)),
                "o_weight": Out(stream.Signature(self.weight_layout)),
                "spatial": In(1),
                "cin": In(range(cin_max + 1)),
                "cout": In(range(cout_max + 1)),
                "restart": In(1),
            }
        )

    # ------------------------------------------------------------------ host side and model
    def evaluate(self, spatial: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """Bit-true model: the rows ``(cin, pco, m)`` the block emits for one group.

        ``spatial`` ``(pco, cin, R, R)``, ``shift`` ``(m, pco)`` (actual shifts, in
        their windows): ``t = floor(2u / 2^s)`` wrapped to ``weight_bits + 1`` bits,
        then ``(t + 1) >> 1`` wrapped to ``weight_bits`` (exact for a valid layer).
        """
        spatial = np.asarray(spatial, dtype=object)
        pco, cin = spatial.shape[:2]
        u = np.stack(
            [self._netlist.evaluate(spatial[lane].reshape(cin, self.taps)) for lane in range(pco)],
            axis=1,
        )  # (cin, pco, m)
        s = np.broadcast_to(np.asarray(shift, dtype=np.int64).T, u.shape)
        wb = self.weight_bits
        out = np.empty(u.shape, dtype=np.int64)
        for idx in np.ndindex(u.shape):
            t = _wrap((2 * int(u[idx])) >> int(s[idx]), wb + 1)
            out[idx] = _wrap((t + 1) >> 1, wb)
        return out

    # ------------------------------------------------------------------ hardware
    def elaborate(self, platform) -> Module:
        m = Module()
        units = [
            AdderNetworkUnit(
                self.network, in_width=self.weight_bits, meta_layout=1 if lane == 0 else None
            )
            for lane in range(self.pco)
        ]  # meta of lane 0: the row is its group's first
        for lane, unit in enumerate(units):
            assert (unit.out_width, unit.latency) == (self.u_bits, self.lane_latency)
            m.submodules[f"dg{lane}"] = unit
        for unit in units[1:]:  # the lanes move in lockstep with lane 0
            m.d.comb += [
                unit.i_x.valid.eq(units[0].i_x.valid),
                unit.o_y.ready.eq(units[0].o_y.ready),
            ]
        taken = Signal(name="first_row_taken")  # a group's first row enters the round stage
        m.d.comb += taken.eq(units[0].o_y.valid & units[0].o_y.ready & units[0].o_y.payload.meta)
        shifts = self._front(m, units, taken)
        out = Handshake("requant")
        self._back(m, units, shifts, out)
        spatial, i, o = self.spatial, self.i_weight, self.o_weight
        m.d.comb += [
            out.ready.eq(spatial & o.ready),
            o.valid.eq(Mux(spatial, out.valid, i.valid)),
        ]
        with m.If(~spatial):
            m.d.comb += [i.ready.eq(o.ready), o.payload.eq(i.payload)]
        return m

    def _front(self, m: Module, units, taken: Signal) -> tuple[Signal, Signal]:
        """Headers into the pending shifts; row beats -> row select -> row register -> lane units.

        Returns the ``(pending, active)`` shift registers (``header_bits`` each).
        """
        i, k = self.i_weight, self.rows_per_beat
        raw = i.payload.as_value()
        expect_header = Signal(init=1, name="expect_header")
        pending = Signal(self.header_bits, name="shift_pending")
        active = Signal(self.header_bits, name="shift_active")
        pending_full = Signal(name="pending_full")
        first = Signal(name="first_row")  # the next row is its group's first
        r = Signal(
            range(max(k, 2)), name="beat_row"
        )  # k = 1: one bit, always 0 (a 0-bit signal lints)
        left = Signal(range(self.cin_max + 1), name="rows_left")  # of the group, this one included
        # Output channels whose header has not come yet: 0 after reset and after the last group.
        channels = Signal(range(self.cout_max + 1), name="channels_left")
        take_header = ~pending_full & (channels != 0)
        feed = Handshake("row")
        pipe = StallPipeline(m, i=feed, o=units[0].i_x, depth=1, name="row_pipe")
        row = Signal(self.row_bits, name="row_select")
        with m.Switch(r):
            for index in range(k):
                with m.Case(index):
                    m.d.comb += row.eq(raw[index * self.row_bits : (index + 1) * self.row_bits])
        row_r = pipe.register(m, row, name="row_r")
        lane_bits = self.taps * self.weight_bits
        for lane, unit in enumerate(units):
            m.d.comb += unit.i_x.payload.data.as_value().eq(row_r[lane * lane_bits :][:lane_bits])
        m.d.comb += units[0].i_x.payload.meta.eq(pipe.register(m, first, name="first_r"))

        last_in_beat = (r == k - 1) | (left == 1)
        with m.If(taken):
            m.d.sync += [active.eq(pending), pending_full.eq(0)]
        with m.If(self.spatial & ~self.restart):
            with m.If(expect_header):
                m.d.comb += i.ready.eq(take_header)
                with m.If(i.valid & take_header):
                    m.d.sync += [
                        channels.eq(Mux(channels > self.pco, channels - self.pco, 0)),
                        pending.eq(raw[: self.header_bits]),
                        pending_full.eq(1),
                        expect_header.eq(0),
                        left.eq(self.cin),
                        r.eq(0),
                        first.eq(1),
                    ]
            with m.Else():
                m.d.comb += [feed.valid.eq(i.valid), i.ready.eq(feed.ready & last_in_beat)]
                with m.If(i.valid & feed.ready):
                    m.d.sync += [first.eq(0), left.eq(left - 1), r.eq(Mux(last_in_beat, 0, r + 1))]
                    with m.If(left == 1):
                        m.d.sync += expect_header.eq(1)
        with m.If(self.restart):
            m.d.sync += [expect_header.eq(1), pending_full.eq(0), first.eq(0), r.eq(0),
                         channels.eq(self.cout)]  # fmt: skip
        return pending, active

    def _back(self, m: Module, units, shifts, out: Handshake) -> None:
        """Lane units -> ``t = floor(2u / 2^s)`` (a 4:1 choice of ``weight_bits + 1`` bits of
        ``u``, ``s = lo[j] + field``) -> ``(t + 1) >> 1`` -> ``o_weight.payload``."""
        pending, active = shifts
        sb, wb = self.shift_bits, self.weight_bits
        pipe = StallPipeline(m, i=units[0].o_y, o=out, depth=self.REQUANT_STAGES, name="requant")
        first = units[0].o_y.payload.meta
        values = []
        for lane, unit in enumerate(units):
            for j in range(self.m):
                field = (lane * self.m + j) * sb
                name = f"l{lane}_{j}"
                offset = Mux(first, pending[field : field + sb], active[field : field + sb])
                # 2u, sign-extended past the widest slice: bits [s, s + wb + 1) are t.
                lo = int(self.shift_lo[j])
                top = lo + (1 << sb) - 1 + wb + 1
                u = unit.o_y.payload.data[j]
                doubled = Cat(Const(0, 1), u, *([u[-1]] * max(top - 1 - self.u_bits, 0)))
                t = Signal(signed(wb + 1), name=f"t_{name}")
                with m.Switch(offset):
                    for f in range(1 << sb):
                        with m.Case(f):
                            m.d.comb += t.eq(doubled[lo + f : lo + f + wb + 1])
                t_r = pipe.register(m, t, name=f"t_{name}_r", shape=signed(wb + 1))
                weight = ((t_r + 1) >> 1)[:wb]  # the layer's shifts keep it in range
                values.append(pipe.register(m, weight, name=f"w_{name}", shape=signed(wb)))
        with m.If(self.spatial):
            m.d.comb += self.o_weight.payload.as_value().eq(Cat(*values))


@functools.lru_cache(maxsize=16)
def _lane_network(algo: BilinearAlgorithm) -> AdderNetwork:
    """The shared adder network of ``D G`` (one per lane unit)."""
    return AdderNetwork.from_matrix(algo.g_scaled_int, name=f"{algo.name}.DG")


def spatial_group_beats(
    spatial: np.ndarray, shift: np.ndarray, *, algorithm: BilinearAlgorithm | str, weight_bits: int
) -> list[int]:
    """Raw ``i_weight`` beats of one output-channel group with spatial weights: the header,
    then ``ceil(cin / k)`` row beats (the input protocol of :class:`SpatialWeightTransform`).

    ``spatial`` is ``(pco, cin, R, R)`` (lane, input channel), ``shift`` ``(m, pco)``
    (the ``(m, cout)`` convention of :func:`~sfc_hls.weight_transform.transform_spatial_weights`).
    """
    algo = _resolve_algorithm(algorithm)
    spatial = np.asarray(spatial, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    m, r = algo.mults, algo.kernel
    pco, cin = spatial.shape[:2]
    if spatial.shape != (pco, cin, r, r):
        raise ValueError(f"spatial must be (pco, cin, R, R) with R={r}, got {spatial.shape}")
    if shift.shape != (m, pco):
        raise ValueError(f"shift must be (m, pco) = {(m, pco)}, got {shift.shape}")
    lo, hi = shift_window(algo, weight_bits)
    if ((shift < lo[:, None]) | (shift > hi[:, None])).any():
        raise ValueError("shift must lie in each position's window (shift_window)")
    taps = r * r
    k = m // taps
    header = _pack((shift - lo[:, None]).T.reshape(-1), weight_shift_bits(algo, weight_bits))
    rows = np.zeros((-(-cin // k) * k, pco, taps), dtype=np.int64)
    rows[:cin] = spatial.reshape(pco, cin, taps).transpose(1, 0, 2)
    return [header] + [_pack(beat, weight_bits) for beat in rows.reshape(-1, k * pco * taps)]


def _pack(values: np.ndarray, bits: int) -> int:
    """``values`` as consecutive ``bits``-bit two's-complement fields, the first at bit 0."""
    word, mask = 0, (1 << bits) - 1
    for index, value in enumerate(values.tolist()):
        word |= (int(value) & mask) << (index * bits)
    return word


def _wrap(value: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return (value + half) % (1 << bits) - half
