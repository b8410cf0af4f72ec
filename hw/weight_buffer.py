"""Weight buffer of the conv engine: two banks of weight rows, paired with activation beats.

Holds the int8 weights of two output-channel groups in two banks
(ping-pong).  Rows of the next group arrive on a stream into bank
``load_bank`` while the activations of the current group read the other
bank, so weight loading overlaps compute.  Every activation beat leaves
paired with its weights, ready for :class:`~sfc_hls.hw.mac_array.MacArray`:

* fast mode: a row is ``weights[lane][j]`` of one input channel (transform
  domain, ``P_co`` lanes, ``m`` positions); a beat of channel ``ci`` reads row ``ci``;
* direct mode: a row holds ``W`` entries (the output path's width), an entry
  ``w[lane][b]`` being the weights of one (tap, input channel) for each lane and
  each of the ``B = m / W`` blocks of ``W`` positions; a beat reads entry
  ``slot`` of row ``ci`` and every position ``j`` of block ``b = j // W`` gets
  ``w[lane][b]`` (the blocks let ``m / W`` output-channel replicas share a beat).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from sfc_hls.arguments import check_int
from sfc_hls.config import check_target
from sfc_hls.hw.block_ram import RegisteredReadMemory
from sfc_hls.hw.pipeline import StallPipeline
from sfc_hls.hw.port_buffers import SkidBuffer

__all__ = ["WeightBuffer"]


class WeightBuffer(wiring.Component):
    """Weight rows for one output-channel group, paired with activation beats.

    Parameters (keyword-only): ``positions`` (m), ``lanes`` (P_co),
    ``cin_max`` (rows per bank), ``act_bits``, ``weight_bits``, ``width`` (``W``,
    direct-mode entries per row; divides ``positions``; default ``positions``), ``target``
    (``EngineConfig.target``, default ``"xilinx"``).

    Ports:
        restart (In 1): pulse before loading a group; the next row written goes to row 0.
        load_bank (In 1): the bank rows are written to.
        direct (In 1): direct mode (held during a layer).
        i_weight (In stream of ``ArrayLayout(ArrayLayout(signed(weight_bits), positions), lanes)``):
            rows for input channels 0, 1, ... in order; always ready (one row per cycle).
        loaded (Out): number of rows written since ``restart``.
        i_beat (In stream of ``{data, meta}``): an activation beat ``data`` (``m`` values) of
            input channel ``meta.ci`` using the weights in bank ``meta.bank``; ``meta`` has
            the layout :meth:`beat_meta_layout` (the engine's control fields, carried
            through the input transform and the activation quantizer).
        o_beat (Out stream of ``{act, weights, first, last}``): the same beat with row ``ci``,
            the payload layout of ``MacArray.i_beat``.

    Contract: latency :attr:`latency` = 4 cycles (a skid buffer, the synchronous
    memory read, the registered row and direct-mode entry, the registered
    weights of the mode; ``target="ecp5"``: 6, the row registered before the
    entry select, :meth:`read_latency_of`, and a skid buffer at ``o_beat``), one beat per
    cycle; ``i_beat.ready`` comes from a register (the
    :class:`~sfc_hls.hw.port_buffers.SkidBuffer`), behind it backpressure stalls the
    read stage together with the beat (:class:`~sfc_hls.hw.pipeline.StallPipeline`);
    on ECP5 the read stage's ``ready`` is a register too (the output skid buffer's:
    the MAC array's ``i_beat.ready``, from the serializer's state, reached the read
    stage's enables and the input skid buffer's pointers, three LUT levels), and
    each 16-bit chunk of that buffer selects its entry by a copy of its read pointer
    (``select_bits``: the pointer, placed by the MAC array's ``ready``, reached
    selects beside multipliers across the device).  A bank must not be written
    while beats that read it are in flight (the engine frees a bank only after
    its group's last result has left the MAC array).  A read of a row not loaded since ``restart`` returns stale data;
    the engine only reads ``ci < cin <= loaded``.
    """

    @staticmethod
    def read_latency_of(target: str) -> int:
        """Cycles from the skid buffer to ``o_beat`` on ``target``: the memory read, the
        row and the entry, the weights of the mode (3); on ECP5 4, the row registered
        once more before the entry select (a DP16KD's clock-to-output is most of a
        cycle at the engine's clock: nothing but routing follows it)."""
        return 4 if target == "ecp5" else 3

    @classmethod
    def latency_of(cls, target: str) -> int:
        """:attr:`latency` on ``target``: the skid buffer, :meth:`read_latency_of`, on ECP5
        the output skid buffer."""
        skids = 2 if target == "ecp5" else 1
        return skids * SkidBuffer.latency + cls.read_latency_of(target)

    @staticmethod
    def beat_meta_layout(cin_max: int, width: int = 1) -> data.StructLayout:
        """The control fields of an activation beat: ``{ci, slot, first, last, bank}``.

        ``ci`` selects the weight row and ``slot`` the entry in it (direct mode),
        ``bank`` the bank; ``first``/``last`` mark the first and last beat of a
        tile's accumulation (for the MAC array).
        """
        check_int("cin_max", cin_max, 1)
        check_int("width", width, 1)
        return data.StructLayout(
            {
                "ci": unsigned(max(ceil_log2(cin_max), 1)),
                "slot": unsigned(max(ceil_log2(width), 1)),
                "first": 1,
                "last": 1,
                "bank": 1,
            }
        )

    def __init__(
        self,
        *,
        positions: int,
        lanes: int,
        cin_max: int,
        act_bits: int = 8,
        weight_bits: int = 8,
        width: int | None = None,
        target: str = "xilinx",
        ram_primitives: bool = True,
    ) -> None:
        check_target(target)
        self.target = target
        self.ram_primitives = ram_primitives
        self.read_latency = self.read_latency_of(target)
        self.latency = self.latency_of(target)
        self.positions = check_int("positions", positions, 1)
        self.width = positions if width is None else check_int("width", width, 1, positions)
        if positions % self.width:
            raise ValueError(f"width must divide positions={positions}, got {self.width}")
        self.blocks = positions // self.width
        self.lanes = check_int("lanes", lanes, 1)
        self.cin_max = check_int("cin_max", cin_max, 1)
        self.act_bits = check_int("act_bits", act_bits, 2)
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.ci_bits = max(ceil_log2(cin_max), 1)
        self.row_layout = data.ArrayLayout(data.ArrayLayout(signed(weight_bits), positions), lanes)
        self.entry_layout = data.ArrayLayout(
            data.ArrayLayout(signed(weight_bits), self.blocks), lanes
        )
        act = data.ArrayLayout(signed(act_bits), positions)
        self.in_beat_layout = data.StructLayout(
            {"data": act, "meta": self.beat_meta_layout(cin_max, self.width)}
        )
        self.out_beat_layout = data.StructLayout(
            {"act": act, "weights": self.row_layout, "first": 1, "last": 1}
        )
        super().__init__(
            {
                "restart": In(1),
                "load_bank": In(1),
                "direct": In(1),
                "i_weight": In(stream.Signature(self.row_layout)),
                "loaded": Out(range(cin_max + 1)),
                "i_beat": In(stream.Signature(self.in_beat_layout)),
                "o_beat": Out(stream.Signature(self.out_beat_layout)),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        # Bank b holds rows b * cin_max .. b * cin_max + cin_max - 1.
        write_addr = self.load_bank * self.cin_max + self.loaded
        write_en = self.i_weight.valid & (self.loaded < self.cin_max)
        m.d.comb += self.i_weight.ready.eq(1)  # rows in order, always accepted
        with m.If(self.restart):
            m.d.sync += self.loaded.eq(0)
        with m.Elif(write_en):
            m.d.sync += self.loaded.eq(self.loaded + 1)

        # Read side: a skid buffer (``i_beat.ready`` from a register, so the MAC array's
        # backpressure ends here instead of running on through the activation
        # quantizer, the input transform and the scheduler), then three stages: the
        # memory's output register, the row and the direct-mode entry in
        # registers, and the weights of the mode in registers (_weights): no
        # block-RAM read shares a cycle with the entry select, and the
        # multipliers start from a register each (the broadcast of a direct-mode
        # entry to its W positions is routed before that register, not into the
        # multiplier: ECP5's MULT18X18D has no input register Yosys would use).
        m.submodules.beat_skid = skid = SkidBuffer(self.in_beat_layout)
        wiring.connect(m, wiring.flipped(self.i_beat), skid.i)
        beat = skid.o
        out = self.o_beat
        if self.target == "ecp5":
            chunk = SkidBuffer.chunk_bits_of(self.target)  # one select copy per chunk
            m.submodules.out_skid = out_skid = SkidBuffer(
                self.o_beat.payload.shape(), chunk_bits=chunk, select_bits=chunk
            )
            wiring.connect(m, out_skid.o, wiring.flipped(self.o_beat))
            out = out_skid.i
        pipe = StallPipeline(m, i=beat, o=out, depth=self.read_latency, name="wbuf")
        meta = beat.payload.meta
        read_addr = meta.bank * self.cin_max + meta.ci
        row = self._memory(m, pipe, (write_addr, write_en), read_addr)
        stages = self.read_latency
        m.d.comb += [
            out.payload.act.eq(pipe.delay(m, beat.payload.data, stages, name="act")),
            out.payload.first.eq(pipe.delay(m, meta.first, stages, name="first")),
            out.payload.last.eq(pipe.delay(m, meta.last, stages, name="last")),
        ]
        self._weights(m, pipe, row, meta.slot, out.payload.weights)
        return m

    def _memory(self, m: Module, pipe: StallPipeline, write, read_addr):
        """The two banks; returns the row read for ``read_addr``: in stage 1 (the block
        RAM's read, Xilinx) or stage 2 (ECP5: the DP16KD's output register,
        :class:`~sfc_hls.hw.block_ram.RegisteredReadMemory`)."""
        write_addr, write_en = write
        depth = 2 * self.cin_max
        if self.target == "ecp5":
            m.submodules.mem = mem = RegisteredReadMemory(
                self.row_layout, depth, target=self.target, primitives=self.ram_primitives
            )
            m.d.comb += [
                mem.w_addr.eq(write_addr),
                mem.w_data.eq(self.i_weight.payload),
                mem.w_en.eq(write_en),
                mem.r_addr.eq(read_addr),
                mem.r_en.eq(pipe.advance),
            ]
            return mem.r_data
        m.submodules.mem = mem = Memory(shape=self.row_layout, depth=depth, init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=())
        m.d.comb += [
            wr.addr.eq(write_addr),
            wr.data.eq(self.i_weight.payload),
            wr.en.eq(write_en),
            rd.addr.eq(read_addr),
            rd.en.eq(pipe.advance),
        ]
        return rd.data

    def _weights(self, m: Module, pipe: StallPipeline, row, slot, out_weights) -> None:
        """``out_weights`` (``o_beat``'s; on ECP5 its skid buffer's input) from ``row``:
        the row (fast) or entry ``slot`` broadcast over its blocks (direct).  Xilinx (``row`` read in stage 1): stage 2 registers the row
        and the entry apart (the entry select is a ``W``-way mux of ``P_co x B``
        weights, not of all ``P_co x m``); stage 3 registers the 2:1 mode mux of the
        two.  ECP5 (``row`` in the block RAM's output register, stage 2): the same one
        stage later.
        """
        slot = pipe.register(m, slot, name="slot")
        if self.target == "ecp5":  # the row in stage 2: select from it, one stage later
            slot = pipe.register(m, slot, name="slot_r")
            row_r = pipe.register(m, row, name="row_r", shape=self.row_layout)
        else:
            row_r = pipe.register(m, row, name="row", shape=self.row_layout)
        if self.blocks == self.positions and self.width == 1:
            entry = data.View(self.entry_layout, row.as_value())
        else:
            entry = Signal(self.entry_layout, name="direct_entry")
            entries = data.View(data.ArrayLayout(self.entry_layout, self.width), row.as_value())
            with m.Switch(slot):
                for k in range(self.width):
                    with m.Case(k):
                        m.d.comb += entry.eq(entries[k])
        entry_r = pipe.register(m, entry, name="entry", shape=self.entry_layout)
        weights = Signal(self.row_layout, name="weights_of_mode")
        for lane in range(self.lanes):
            for j in range(self.positions):
                m.d.comb += weights[lane][j].eq(
                    Mux(self.direct, entry_r[lane][j // self.width], row_r[lane][j])
                )
        m.d.comb += out_weights.eq(pipe.register(m, weights, name="weights", shape=self.row_layout))
