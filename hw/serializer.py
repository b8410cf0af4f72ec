"""The conv engine's channel serializer: MAC-array results -> one output channel per beat."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.hw.interface import TILE_BITS, EngineInterface
from sfc_hls.hw.quantizers import Rescale

__all__ = ["ChannelSerializer"]


class ChannelSerializer(wiring.Component):
    """Splits the MAC array's ``P_co`` lanes into one beat per output channel.

    Takes a whole ``acc[lane][j]`` result at once (so the MAC array can start
    the next tile), then emits the group's valid lanes on ``o_lane``, one per
    cycle, each with that lane's rescale multipliers (``mult``) and output
    parameters (``meta.params``) from parameter bank ``bank`` and its framing
    (``meta.tag``: ``channel``, ``tile``, ``last``).

    It follows the layer on its own: results arrive tile by tile, ``tiles``
    per output-channel group, groups in order.  After the last lane of a
    group's last tile it pulses ``release`` (that group's parameter and weight
    bank is free again), switches bank and moves to the next group; after the
    last group ``done`` rises.  ``start`` (one cycle, before the layer's first
    result) resets this state.

    Ports: ``i_acc`` (stream, the MAC array's result layout); ``o_lane``
    (stream of :class:`~sfc_hls.hw.quantizers.Rescale`'s input layout
    ``{data, mult, meta}`` with ``meta`` = the interface's ``lane_meta``);
    ``chan`` (two banks of per-lane parameters); ``cout``, ``tiles`` (layer
    registers); ``start``; ``release``, ``bank``, ``done``.

    Contract: a result is taken in the cycle it is offered when nothing is
    held, or when the last valid lane of the held one leaves; one lane per
    cycle (latency 0: a taken result's first lane is offered in the next cycle).
    """

    def __init__(self, interface: EngineInterface) -> None:
        cfg = interface.config
        lay = interface.layouts
        self.lanes = cfg.pco
        self.cout_max = cfg.cout_max
        lane, _ = Rescale.payload_layouts(interface.rescale_widths, lay["lane_meta"])
        super().__init__(
            {
                "i_acc": In(stream.Signature(lay["acc"])),
                "o_lane": Out(stream.Signature(lane)),
                "chan": In(data.ArrayLayout(data.ArrayLayout(lay["chan"], cfg.pco), 2)),
                "cout": In(range(cfg.cout_max + 1)),
                "tiles": In(unsigned(TILE_BITS)),
                "start": In(1),
                "release": Out(1),
                "bank": Out(1),
                "done": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        held = Signal()
        buf = Signal(self.i_acc.payload.shape())
        lane = Signal(range(max(self.lanes, 2)))
        bank = self.bank
        base = Signal(range(self.cout_max + self.lanes + 1))
        tile = Signal(unsigned(TILE_BITS))
        remaining = Signal(range(self.cout_max + 1))  # channels from this group on
        lanes_valid = Signal(range(self.lanes + 1))
        last_group = remaining <= self.lanes
        m.d.comb += lanes_valid.eq(Mux(last_group, remaining, self.lanes))
        last_lane = lane == lanes_valid - 1
        last_tile = tile == self.tiles - 1
        leaving = held & self.o_lane.ready & last_lane
        m.d.comb += self.i_acc.ready.eq(~held | leaving)
        # Lane selection as an explicit multiplexer: indexing the arrays with a
        # signal (`buf[lane]`) would build one shifter over all lanes' bits,
        # which Amaranth's netlist checks handle very slowly at this width.
        chan = Signal(self.chan.shape().elem_shape.elem_shape)
        acc = Signal(self.o_lane.payload.data.shape())
        with m.Switch(lane):
            for k in range(self.lanes):
                with m.Case(k):
                    m.d.comb += [
                        acc.eq(buf[k]),
                        chan.eq(Mux(bank, self.chan[1][k], self.chan[0][k])),
                    ]
        tag = self.o_lane.payload.meta.tag
        m.d.comb += [
            self.o_lane.valid.eq(held),
            self.o_lane.payload.data.eq(acc),
            self.o_lane.payload.mult.eq(chan.rescale_mult),
            self.o_lane.payload.meta.params.eq(chan.params),
            tag.channel.eq(base + lane),
            tag.tile.eq(tile),
            tag.last.eq(last_group & last_lane & last_tile),
        ]
        with m.If(self.o_lane.valid & self.o_lane.ready):
            with m.If(last_lane):
                m.d.sync += lane.eq(0)
                with m.If(last_tile):
                    m.d.comb += self.release.eq(1)
                    m.d.sync += [
                        tile.eq(0),
                        bank.eq(~bank),
                        base.eq(base + self.lanes),
                        remaining.eq(remaining - self.lanes),
                    ]
                    with m.If(last_group):
                        m.d.sync += self.done.eq(1)
                with m.Else():
                    m.d.sync += tile.eq(tile + 1)
            with m.Else():
                m.d.sync += lane.eq(lane + 1)
        with m.If(self.i_acc.valid & self.i_acc.ready):
            m.d.sync += [buf.eq(self.i_acc.payload), held.eq(1)]
        with m.Elif(leaving):
            m.d.sync += held.eq(0)
        with m.If(self.start):
            m.d.sync += [
                tile.eq(0),
                bank.eq(0),
                base.eq(0),
                remaining.eq(self.cout),
                self.done.eq(0),
                lane.eq(0),
            ]
        return m
