"""Fast-mode output path: blocks of ``W`` values -> a whole tile for ``A^T`` -> blocks again.

The output path runs ``W`` values per cycle (the engine's ``backend_width``);
the output transform needs a channel's ``m`` values at once and produces
``M*M``.  :class:`TileCollector` gathers a packet of ``m / W`` blocks into one
beat; :class:`TileSplitter` cuts the transform's output into
``ceil(M*M / W)`` blocks (the last one padded with zeros).  Payloads are
``{data, meta}`` with ``meta = {params, tag}`` and the tag fields ``index``
(block of the packet), ``end`` (a packet's last beat) and ``last`` (the
layer's last beat); see :class:`~sfc_hls.hw.serializer.ResultSerializer`.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TileCollector", "TileSplitter"]


class TileCollector(wiring.Component):
    """``B`` blocks of ``W`` values (a packet, ``end`` on the last) -> one beat of ``B W`` values.

    Ports: ``i`` (stream ``{data: [W], meta}``), ``o`` (stream ``{data: [B W],
    meta}``, the ``meta`` of the packet's last beat).  Contract: block ``k`` of
    a packet lands in ``data[k W ..]`` (in arrival order); the whole beat is
    offered after the packet's last block (latency 1) and held until taken;
    the first block of the next packet is taken in the same cycle (one block
    per cycle, no bubble).
    """

    def __init__(self, *, in_layout: data.StructLayout, blocks: int) -> None:
        data_layout = in_layout.members["data"]
        self.width, self.blocks = data_layout.length, blocks
        out_data = data.ArrayLayout(data_layout.elem_shape, self.width * blocks)
        super().__init__(
            {
                "i": In(stream.Signature(in_layout)),
                "o": Out(stream.Signature(data.StructLayout(
                    {"data": out_data, "meta": in_layout.members["meta"]}))),
            }
        )  # fmt: skip

    def elaborate(self, platform) -> Module:
        m = Module()
        k = Signal(range(self.blocks + 1))
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            for b in range(self.blocks):
                with m.If(k == b):
                    m.d.sync += [
                        self.o.payload.data[b * self.width + i].eq(self.i.payload.data[i])
                        for i in range(self.width)
                    ]
            with m.If(self.i.payload.meta.tag.end):
                m.d.sync += [
                    k.eq(0),
                    self.o.valid.eq(1),
                    self.o.payload.meta.eq(self.i.payload.meta),
                ]
            with m.Else():
                m.d.sync += k.eq(k + 1)
        return m


class TileSplitter(wiring.Component):
    """One beat of ``n`` values -> ``ceil(n / W)`` beats of ``W`` (zero-padded), ``index`` 0, 1, ...

    Ports: ``i`` (stream ``{data: [n], meta}``), ``o`` (stream ``{data: [W], meta}``).
    Contract: latency :attr:`latency` = 1: a beat on ``i`` is taken into a
    register in one cycle, when the splitter is empty or sends the last block
    of the previous beat (``i.ready = ~o.valid | (o.ready & last block)``), so
    the output transform in front of it never waits while blocks leave; the
    blocks then leave one per cycle.  ``meta.tag.end`` is set on the last
    block, ``meta.tag.last`` only there too.

    With ``always_ready`` (the engine's fast-mode back end, which never stalls:
    its credit FIFO takes every block) ``i.ready`` is constant 1, so the
    transform in front runs without a clock enable: the caller guarantees that
    ``o.ready`` is high and that beats arrive at least :attr:`beats` cycles apart
    (the collector completes a tile every ``B >= beats`` cycles).
    """

    latency = 1

    def __init__(
        self, *, in_layout: data.StructLayout, width: int, always_ready: bool = False
    ) -> None:
        data_layout = in_layout.members["data"]
        self.n, self.width = data_layout.length, width
        self.beats = -(-self.n // width)
        self.always_ready = always_ready
        self.in_layout = in_layout
        out_data = data.ArrayLayout(data_layout.elem_shape, width)
        super().__init__(
            {
                "i": In(stream.Signature(in_layout)),
                "o": Out(stream.Signature(data.StructLayout(
                    {"data": out_data, "meta": in_layout.members["meta"]}))),
            }
        )  # fmt: skip

    def elaborate(self, platform) -> Module:
        m = Module()
        s = Signal(range(max(self.beats, 2)))
        held = Signal(self.in_layout)
        last_block = (s == self.beats - 1) if self.beats > 1 else Const(1, 1)
        out = self.o.payload
        m.d.comb += [
            self.i.ready.eq(
                1 if self.always_ready else ~self.o.valid | (self.o.ready & last_block)
            ),
            out.meta.eq(held.meta),
            out.meta.tag.index.eq(s),
            out.meta.tag.end.eq(last_block),
            out.meta.tag.last.eq(held.meta.tag.last & last_block),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += s.eq(Mux(last_block, 0, s + 1))
            with m.If(last_block):
                m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(self.i.payload), self.o.valid.eq(1)]
        if self.beats == 1:  # the whole tile in one beat
            m.d.comb += [out.data[i].eq(held.data[i]) for i in range(self.n)]
            return m
        # The block is selected into its own signal, so that o.payload has only
        # unconditional drivers (continuous assignments in the Verilog: a
        # process driving part of the port would be an `always @*` that Icarus
        # does not run at time 0, leaving the tag bits X until they change).
        block = Signal(out.data.shape())
        with m.Switch(s):
            for b in range(self.beats):
                with m.Case(b):
                    for i in range(self.width):
                        if b * self.width + i < self.n:
                            m.d.comb += block[i].eq(held.data[b * self.width + i])
        m.d.comb += out.data.eq(block)
        return m
