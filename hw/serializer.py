"""The conv engine's result serializer: MAC-array results -> blocks of ``W`` positions per beat."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from amaranth.hdl import Module, Mux, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.hw.interface import TILE_BITS, EngineInterface
from sfc_hls.hw.pipeline import registered
from sfc_hls.hw.quantizers import Rescale

__all__ = ["ResultSerializer"]


@dataclass(frozen=True)
class _Counters:
    """The serializer's place in the layer (registers; see :meth:`ResultSerializer.elaborate`)."""

    k: Signal
    rep: Signal
    lane: Signal
    tile: Signal
    channel: Signal
    next_lane: Signal
    base: Signal
    remaining: Signal
    per_group: Signal


@dataclass(frozen=True)
class _LayerRegisters:
    """Layer registers minus constants, registered (see :meth:`ResultSerializer.elaborate`)."""

    last_k: Signal
    last_tile_index: Signal
    cout_minus_p: Signal


class ResultSerializer(wiring.Component):
    """Cuts each MAC-array result into beats of ``W`` positions for the output path.

    Takes a whole ``acc[lane][j]`` result at once (so the MAC array can start
    the next tile) and emits it as *packets*: in fast mode one packet per valid
    lane (channel ``base + lane``), ``B = m / W`` beats, block ``k`` holding
    positions ``k W .. k W + W - 1``; in direct mode one packet per valid
    (lane, replica) pair (channel ``base + r P_co + lane``), ``B / REPLICAS``
    beats, the blocks of that replica.  Each beat carries the rescale
    multipliers and output parameters of its (lane, block) from the parameter
    memory and its tag
    ``{channel, tile, index, end, last}``: ``index`` is the block within the
    packet, ``end`` marks a packet's last beat, ``last`` the layer's last beat.

    It follows the layer on its own: ``tiles`` results per output-channel
    group, groups in order, ``P_co`` (fast) or ``P_co * REPLICAS`` (direct)
    channels per group.  After a group's last beat it pulses ``release`` with
    the group's ``bank`` (that parameter and weight bank is free again); after
    the last group ``done`` rises.  ``start`` (one cycle, before the layer's
    first result) resets this state.

    Ports: ``i_acc`` (stream, the MAC array's result); ``o_lane`` (stream,
    :class:`~sfc_hls.hw.quantizers.Rescale`'s input ``{data, mult, meta}``,
    ``meta`` the interface's ``lane_meta``); ``param_addr``, ``param_load`` (Out),
    ``param_data`` (In): the parameter memory's read port (a
    :class:`~sfc_hls.hw.lut_memory.RegisteredAddressMemory`: its address registers
    take the issued beat's address, and its read is the beat's parameters until
    the next issue); ``cout``, ``tiles``,
    ``direct``, ``replicas``, ``blocks_per_replica`` (layer registers); ``start``;
    ``release``, ``bank``, ``done``; ``packet_issued`` (a packet's last beat
    left on ``o_lane``, for the scheduler's in-flight count).

    Contract: one beat per cycle while ``o_lane`` is ready; a result is taken
    in the cycle its last beat is issued (or when nothing is held; on ECP5 only
    when nothing is held, :meth:`take_gap_of`: ``i_acc.ready`` is then a
    register, and the MAC array's and the weight buffer's stall enables do not
    wait on the serializer's counters and compares; its counters' flags are
    registers, :meth:`_registered_flags`); latency :attr:`latency` = 1
    (the output register and the parameter memory's address registers).
    ``o_lane.ready`` should be a register (the engine's
    :class:`~sfc_hls.hw.port_buffers.CreditFifo` gate): it enables the output
    register and the serializer's state, so the output path's backpressure ends
    there instead of in the MAC array and the front end.
    """

    latency = 1

    @staticmethod
    def take_gap_of(target: str) -> int:
        """Cycles from a result's last issued beat to the earliest take of the next: 0, ECP5 1."""
        return 1 if target == "ecp5" else 0

    def __init__(self, interface: EngineInterface) -> None:
        cfg = interface.config
        self.take_gap = self.take_gap_of(cfg.target)
        lay = interface.layouts
        self.lanes = cfg.pco
        self.blocks = interface.blocks
        self.width = interface.width
        self.cout_max = cfg.cout_max
        lane, _ = Rescale.payload_layouts(interface.rescale_widths, lay["lane_meta"])
        super().__init__(
            {
                "i_acc": In(stream.Signature(lay["acc"])),
                "o_lane": Out(stream.Signature(lane)),
                "param_addr": Out(range(2 * cfg.pco * interface.blocks)),
                "param_load": Out(1),
                "param_data": In(lay["chan"]),
                "cout": In(range(cfg.cout_max + 1)),
                "tiles": In(unsigned(TILE_BITS)),
                "direct": In(1),
                "replicas": In(range(interface.blocks + 1)),
                "blocks_per_replica": In(range(interface.blocks + 1)),
                "start": In(1),
                "release": Out(1),
                "bank": Out(1),
                "done": Out(1),
                "packet_issued": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        p, nb = self.lanes, self.blocks
        held = Signal()
        buf = Signal(self.i_acc.payload.shape())
        lane = Signal(range(max(p, 2)))
        rep = Signal(range(nb + 1))  # replica of the packet
        k = Signal(range(nb + 1))  # block within the packet
        block = Signal(range(nb + 1))  # block within the lane
        tile = Signal(unsigned(TILE_BITS))
        base = Signal(range(self.cout_max + p * nb + 1))  # first channel of the group
        channel = Signal.like(base)  # base + rep * P_co + lane, the packet's channel
        next_lane = Signal.like(base)  # base + lane + 1, the next lane's channel
        remaining = Signal(range(self.cout_max + 1))  # channels from this group on
        per_group = Signal(range(p * nb + 1))
        # Layer registers minus constants, registered so that no compare waits on an
        # adder: the descriptor holds them from before `start` to the layer's end, and
        # no result arrives in the cycle after `start`.
        layer = _LayerRegisters(
            registered(m, self.blocks_per_replica - 1, "last_k"),
            registered(m, self.tiles - 1, "last_tile_index"),
            registered(m, self.cout - p, "cout_minus_p"),
        )
        lane_out = self.o_lane
        # A packet counts as issued when its last beat leaves (the scheduler's in-flight
        # count covers the rest of the output path).
        m.d.comb += self.packet_issued.eq(
            lane_out.valid & lane_out.ready & lane_out.payload.meta.tag.end
        )
        advance = ~lane_out.valid | lane_out.ready
        issue = held & advance
        counters = _Counters(k, rep, lane, tile, channel, next_lane, base, remaining, per_group)
        if self.take_gap:
            flags = self._registered_flags(m, counters, layer, held, issue)
        else:
            flags = self._flags(counters, layer)
        end, more_reps, more_lanes, last_tile, last_group = flags
        tile_done = end & ~more_reps & ~more_lanes
        if self.take_gap:
            m.d.comb += self.i_acc.ready.eq(~held)
        else:
            m.d.comb += self.i_acc.ready.eq(~held | (issue & tile_done))
        self._output_stage(m, lane_out, issue, advance, buf, lane, block, k, channel, tile, end,
                           tile_done & last_tile & last_group)  # fmt: skip
        with m.If(issue):
            with m.If(~end):
                m.d.sync += [k.eq(k + 1), block.eq(block + 1)]
            with m.Elif(more_reps):
                m.d.sync += [k.eq(0), block.eq(block + 1), rep.eq(rep + 1),
                             channel.eq(channel + p)]  # fmt: skip
            with m.Else():
                m.d.sync += [k.eq(0), block.eq(0), rep.eq(0)]
                with m.If(more_lanes):
                    m.d.sync += [lane.eq(lane + 1), channel.eq(next_lane),
                                 next_lane.eq(next_lane + 1)]  # fmt: skip
                with m.Else():
                    m.d.sync += [lane.eq(0), channel.eq(base), next_lane.eq(base + 1)]
                    self._next_tile(m, tile, last_tile, last_group, base, channel, next_lane,
                                    remaining, per_group)  # fmt: skip
        with m.If(self.i_acc.valid & self.i_acc.ready):
            m.d.sync += [buf.eq(self.i_acc.payload), held.eq(1)]
        with m.Elif(issue & tile_done):
            m.d.sync += held.eq(0)
        with m.If(self.start):
            m.d.sync += [
                tile.eq(0), self.bank.eq(0), base.eq(0), channel.eq(0), next_lane.eq(1),
                lane.eq(0), rep.eq(0),
                k.eq(0), block.eq(0), remaining.eq(self.cout), self.done.eq(0),
                per_group.eq(Mux(self.direct, p * self.replicas, p)),
            ]  # fmt: skip
        return m

    def _flags(self, c: _Counters, layer: _LayerRegisters) -> tuple[Value, ...]:
        """``(end, more_reps, more_lanes, last_tile, last_group)`` of the counters ``c``."""
        return (
            c.k == layer.last_k,
            (c.rep + 1 < self.replicas) & (c.channel < layer.cout_minus_p),
            (c.lane + 1 < self.lanes) & (c.next_lane < self.cout),
            c.tile == layer.last_tile_index,
            c.remaining <= c.per_group,
        )

    def _registered_flags(
        self, m: Module, c: _Counters, layer: _LayerRegisters, held: Value, issue: Value
    ) -> tuple[Signal, ...]:
        """ECP5: :meth:`_flags` as registers, so that ``tile_done``, ``release`` and the
        held flag's enable are ANDs of registers (the compares into them were the
        direct engine's critical path, 8.6 ns).

        While no result is held nothing is issued, and the flags load :meth:`_flags`
        of the counters.  That covers every change of the tile, the group and the
        layer: after ``start``, and after a tile's last beat, a result is taken (a
        cycle with nothing held) before the next beat is issued (:meth:`take_gap_of`).
        Within a tile the next block, replica or lane loads the flags of the
        counters' next state, each a compare of a counter with a layer register
        (no adder in front).
        """
        p = self.lanes
        flags = tuple(Signal(name=n) for n in ("end", "more_reps", "more_lanes", "last_tile", "last_group"))  # fmt: skip
        end, more_reps, more_lanes, _, _ = flags
        reg = partial(registered, m)  # layer registers minus constants, as in elaborate
        second_last_k = reg(self.blocks_per_replica - 2, "second_last_k")
        single_block = reg(self.blocks_per_replica == 1, "single_block")
        replicas_minus_2 = reg(self.replicas - 2, "replicas_minus_2")
        more_replicas = reg(self.replicas > 1, "more_replicas")
        cout_minus_2p = reg(self.cout - 2 * p, "cout_minus_2p")
        cout_minus_1 = reg(self.cout - 1, "cout_minus_1")
        with m.If(~held):
            current = self._flags(c, layer)
            m.d.sync += [flag.eq(value) for flag, value in zip(flags, current, strict=True)]
        with m.Elif(issue):
            with m.If(~end):
                m.d.sync += end.eq(c.k == second_last_k)
            with m.Elif(more_reps):
                m.d.sync += [end.eq(single_block),
                             more_reps.eq((c.rep < replicas_minus_2) & (c.channel < cout_minus_2p))]  # fmt: skip
            with m.Elif(more_lanes):
                m.d.sync += [end.eq(single_block),
                             more_reps.eq(more_replicas & (c.next_lane < layer.cout_minus_p)),
                             more_lanes.eq((c.lane + 2 < p) & (c.next_lane < cout_minus_1))]  # fmt: skip
        return flags

    def _next_tile(
        self, m, tile, last_tile, last_group, base, channel, next_lane, remaining, per_group
    ):
        """After a tile's last beat: the next tile, or the next group (bank released)."""
        with m.If(last_tile):
            m.d.comb += self.release.eq(1)
            m.d.sync += [
                tile.eq(0),
                self.bank.eq(~self.bank),
                base.eq(base + per_group),
                channel.eq(base + per_group),
                next_lane.eq(base + per_group + 1),
                remaining.eq(remaining - per_group),
            ]
            with m.If(last_group):
                m.d.sync += self.done.eq(1)
        with m.Else():
            m.d.sync += tile.eq(tile + 1)

    def _output_stage(self, m, lane_out, issue, advance, buf, lane, block, k, channel, tile, end,
                      last):  # fmt: skip
        """The registered beat: the (lane, block) slice of the result, its parameters and tag."""
        p, nb, w = self.lanes, self.blocks, self.width
        acc = Signal(lane_out.payload.data.shape())
        # The slice as an explicit multiplexer over (lane, block): indexing with
        # signals would build one shifter over the whole result.
        with m.Switch(lane * nb + block):
            for lane_k in range(p):
                for b in range(nb):
                    with m.Case(lane_k * nb + b):
                        m.d.comb += [acc[i].eq(buf[lane_k][b * w + i]) for i in range(w)]
        # The parameters are the memory's (asynchronous) read at its address registers,
        # loaded with the beat: no wide register waits on `advance` for them.
        m.d.comb += [
            self.param_addr.eq(Mux(self.bank, p * nb, 0) + lane * nb + block),
            self.param_load.eq(issue),
        ]
        out = lane_out.payload
        tag = out.meta.tag
        with m.If(advance):
            m.d.sync += [
                lane_out.valid.eq(issue),
                out.data.eq(acc),
                tag.channel.eq(channel),
                tag.tile.eq(tile),
                tag.index.eq(k),
                tag.end.eq(end),
                tag.last.eq(last),
            ]
        m.d.comb += [
            out.mult.eq(self.param_data.rescale_mult),
            out.meta.params.eq(self.param_data.params),
        ]
