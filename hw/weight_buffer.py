"""Transformed-weight buffer of the conv engine.

Holds the int8 transform-domain weights of two output-channel groups in two
banks (ping-pong): one row per input channel, a row being ``weights[lane][j]``
for the engine's ``P_co`` lanes and ``m`` transform positions.  Rows of the
next group arrive on a stream into bank ``load_bank`` while the activations
of the current group read the other bank, so weight loading overlaps compute.
Every activation beat leaves paired with its input channel's weights, ready
for :class:`~sfc_hls.hw.mac_array.MacArray`.
"""

from __future__ import annotations

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from sfc_hls.arguments import check_int
from sfc_hls.hw.pipeline import StallPipeline

__all__ = ["WeightBuffer"]


class WeightBuffer(wiring.Component):
    """Weight rows for one output-channel group, paired with activation beats.

    Parameters (keyword-only): ``positions`` (m), ``lanes`` (P_co),
    ``cin_max`` (rows), ``act_bits``, ``weight_bits``.

    Ports:
        restart (In 1): pulse before loading a group; the next row written goes to row 0.
        load_bank (In 1): the bank rows are written to.
        i_weight (In stream of ``ArrayLayout(ArrayLayout(signed(weight_bits), positions), lanes)``):
            rows for input channels 0, 1, ... in order; always ready (one row per cycle).
        loaded (Out): number of rows written since ``restart``.
        i_beat (In stream of ``{data, meta}``): an activation beat ``data`` (``m`` values) of
            input channel ``meta.ci`` using the weights in bank ``meta.bank``; ``meta`` has
            the layout :meth:`beat_meta_layout` (the engine's control fields, carried
            through the input transform and the activation quantizer).
        o_beat (Out stream of ``{act, weights, first, last}``): the same beat with row ``ci``,
            the payload layout of ``MacArray.i_beat``.

    Contract: latency :attr:`latency` = 1 cycle (synchronous memory read), one beat per cycle,
    backpressure stalls the read stage together with the beat
    (:class:`~sfc_hls.hw.pipeline.StallPipeline`).  A bank must not be written
    while beats that read it are in flight (the engine frees a bank only after
    its group's last result has left the MAC array).  A read of a row not loaded since ``restart`` returns stale data;
    the engine only reads ``ci < cin <= loaded``.
    """

    latency = 1

    @staticmethod
    def beat_meta_layout(cin_max: int) -> data.StructLayout:
        """The control fields of an activation beat: ``{ci, first, last, bank}``.

        ``ci`` selects the weight row, ``bank`` the bank; ``first``/``last``
        mark the first and last input channel of a tile (for the MAC array).
        """
        check_int("cin_max", cin_max, 1)
        return data.StructLayout(
            {"ci": unsigned(max(ceil_log2(cin_max), 1)), "first": 1, "last": 1, "bank": 1}
        )

    def __init__(
        self, *, positions: int, lanes: int, cin_max: int, act_bits: int = 8, weight_bits: int = 8
    ) -> None:
        self.positions = check_int("positions", positions, 1)
        self.lanes = check_int("lanes", lanes, 1)
        self.cin_max = check_int("cin_max", cin_max, 1)
        self.act_bits = check_int("act_bits", act_bits, 2)
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.ci_bits = max(ceil_log2(cin_max), 1)
        self.row_layout = data.ArrayLayout(data.ArrayLayout(signed(weight_bits), positions), lanes)
        act = data.ArrayLayout(signed(act_bits), positions)
        self.in_beat_layout = data.StructLayout(
            {"data": act, "meta": self.beat_meta_layout(cin_max)}
        )
        self.out_beat_layout = data.StructLayout(
            {"act": act, "weights": self.row_layout, "first": 1, "last": 1}
        )
        super().__init__(
            {
                "restart": In(1),
                "load_bank": In(1),
                "i_weight": In(stream.Signature(self.row_layout)),
                "loaded": Out(range(cin_max + 1)),
                "i_beat": In(stream.Signature(self.in_beat_layout)),
                "o_beat": Out(stream.Signature(self.out_beat_layout)),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        # Bank b holds rows b * cin_max .. b * cin_max + cin_max - 1.
        m.submodules.mem = mem = Memory(shape=self.row_layout, depth=2 * self.cin_max, init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=())

        # Write side: rows in order, always accepted.
        m.d.comb += [
            self.i_weight.ready.eq(1),
            wr.addr.eq(self.load_bank * self.cin_max + self.loaded),
            wr.data.eq(self.i_weight.payload),
            wr.en.eq(self.i_weight.valid & (self.loaded < self.cin_max)),
        ]
        with m.If(self.restart):
            m.d.sync += self.loaded.eq(0)
        with m.Elif(self.i_weight.valid & (self.loaded < self.cin_max)):
            m.d.sync += self.loaded.eq(self.loaded + 1)

        # Read side: one stage; the memory's output register is the stage register.
        pipe = StallPipeline(m, i=self.i_beat, o=self.o_beat, depth=self.latency, name="wbuf")
        meta = self.i_beat.payload.meta
        m.d.comb += [
            rd.addr.eq(meta.bank * self.cin_max + meta.ci),
            rd.en.eq(pipe.advance),
        ]
        act = pipe.register(m, self.i_beat.payload.data, name="act")
        first = pipe.register(m, meta.first, name="first")
        last = pipe.register(m, meta.last, name="last")
        m.d.comb += [
            self.o_beat.payload.act.eq(act),
            self.o_beat.payload.weights.eq(rd.data),
            self.o_beat.payload.first.eq(first),
            self.o_beat.payload.last.eq(last),
        ]
        return m
