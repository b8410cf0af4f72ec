"""The streaming conv engine: transforms, quantizers and MAC array behind one descriptor.

Data flow (one input beat = one ``L x L`` int8 tile of one input channel)::

    i_act -> InputTransform (B^T) -> ActQuantizer -> WeightBuffer (row ci) -> MacArray
          -> ChannelSerializer (one lane per beat, with the lane's parameters)
          -> Rescale -> OutputTransform (A^T) -> OutputQuantizer -> o_out

Layer protocol and register map: :mod:`sfc_hls.hw.register_map`.  Every
parameter comes from one :class:`~sfc_hls.config.EngineConfig`; every width
from the blocks' derived bounds.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from sfc_hls.config import EngineConfig
from sfc_hls.hw.mac_array import MacArray
from sfc_hls.hw.quantizers import ActQuantizer, OutputQuantizer, Rescale
from sfc_hls.hw.register_map import ADDR_BITS, DATA_BITS, FLAG_RELU, REGISTERS, START
from sfc_hls.hw.transform import InputTransform, OutputTransform
from sfc_hls.hw.weight_buffer import WeightBuffer

__all__ = ["ConvEngine", "ChannelSerializer", "TILE_BITS"]

#: Width of the tile counter: a layer has at most 2^16 - 1 output tiles per group.
TILE_BITS = 16


def _assign(dst, src) -> list:
    """``dst.eq(src)``, element by element for arrays so that signed elements are extended.

    A whole-array ``.eq`` copies raw bits, which would misplace elements whose
    widths differ (e.g. a 24-bit ``y`` into a 25-bit quantizer input).
    """
    dst_shape = dst.shape() if isinstance(dst, data.View) else None
    src_shape = src.shape() if isinstance(src, data.View) else None
    if isinstance(dst_shape, data.ArrayLayout) and isinstance(src_shape, data.ArrayLayout):
        if dst_shape.length != src_shape.length:
            raise ValueError(f"array lengths differ: {dst_shape.length} != {src_shape.length}")
        if dst_shape.elem_shape != src_shape.elem_shape:
            return [stmt for k in range(dst_shape.length) for stmt in _assign(dst[k], src[k])]
    return [dst.eq(src)]


def _link(m: Module, src, dst, **fields) -> None:
    """Connect stream ``src`` to stream ``dst`` whose payload fields are renamed/rebuilt."""
    m.d.comb += [dst.valid.eq(src.valid), src.ready.eq(dst.ready)]
    for name, value in fields.items():
        m.d.comb += _assign(getattr(dst.payload, name), value)


class ChannelSerializer(wiring.Component):
    """Splits the MAC array's ``P_co`` lanes into one beat per output channel.

    Takes a whole ``acc[lane][j]`` result at once (so the MAC array can start
    the next tile), then emits the group's valid lanes on ``o_lane``, one per
    cycle, each with that lane's rescale multipliers and output parameters
    from parameter bank ``bank`` and framing (``channel``, ``tile``, ``last``).

    It follows the layer on its own: results arrive tile by tile, ``tiles``
    per output-channel group, groups in order.  After the last lane of a
    group's last tile it pulses ``release`` (that group's parameter and weight
    bank is free again), switches bank and moves to the next group; after the
    last group ``done`` rises.  ``start`` (one cycle, before the layer's first
    result) resets this state.

    Ports: ``i_acc`` (stream, MacArray's result layout); ``o_lane`` (stream of
    ``{acc, mult, meta}``, the ``Rescale`` input layout with ``meta`` =
    ``{bias, out_mult, out_shift, channel, tile, last}``); ``chan`` (two banks of
    per-lane parameters); ``cout``, ``tiles`` (layer registers); ``start``;
    ``release``, ``done``.

    Contract: a result is taken in the cycle it is offered when nothing is
    held, or when the last valid lane of the held one leaves; one lane per cycle.
    """

    def __init__(
        self, *, lanes, acc_layout, lane_layout, meta_layout, chan_layout, channel_bits, cout_max
    ):
        self.lanes = lanes
        self.meta_layout = meta_layout
        self.cout_max = cout_max
        super().__init__(
            {
                "i_acc": In(stream.Signature(acc_layout)),
                "o_lane": Out(stream.Signature(lane_layout)),
                "chan": In(data.ArrayLayout(data.ArrayLayout(chan_layout, lanes), 2)),
                "cout": In(range(cout_max + 1)),
                "tiles": In(unsigned(TILE_BITS)),
                "start": In(1),
                "release": Out(1),
                "bank": Out(1),
                "done": Out(1),
            }
        )
        self.channel_bits = channel_bits

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
        acc = Signal(self.o_lane.payload.acc.shape())
        with m.Switch(lane):
            for k in range(self.lanes):
                with m.Case(k):
                    m.d.comb += [
                        acc.eq(buf[k]),
                        chan.eq(Mux(bank, self.chan[1][k], self.chan[0][k])),
                    ]
        meta = data.View(self.meta_layout, self.o_lane.payload.meta)
        m.d.comb += [
            self.o_lane.valid.eq(held),
            self.o_lane.payload.acc.eq(acc),
            self.o_lane.payload.mult.eq(chan.rescale_mult),
            meta.bias.eq(chan.bias),
            meta.out_mult.eq(chan.out_mult),
            meta.out_shift.eq(chan.out_shift),
            meta.channel.eq(base + lane),
            meta.tile.eq(tile),
            meta.last.eq(last_group & last_lane & last_tile),
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


class ConvEngine(wiring.Component):
    """Stride-1 conv engine for one fast-convolution algorithm (``EngineConfig``).

    Ports (see :mod:`sfc_hls.hw.register_map` for the protocol):

    * ``i_cfg``: register writes ``{addr: 16, data: 32}``; accepted while idle.
    * ``i_chan``: per output-channel group, ``P_co`` beats ``{rescale_mult[m], bias,
      out_mult, out_shift}``.
    * ``i_weight``: per group, ``CIN`` rows ``weights[lane][j]`` (int8).
    * ``i_act``: per group, ``TILES * CIN`` input beats, an ``L x L`` int8 tile each.
    * ``o_out``: per tile, one beat per valid lane ``{data[M*M], channel, tile, last}``.
    * ``status``: ``{busy, desc_error, overflow, layers_done}``.

    Throughput: one ``i_act`` beat per cycle while outputs are taken and
    ``CIN >= P_co`` (the output path handles one lane per cycle).  Parameters
    and weights live in two banks: group ``g + 1`` loads (``max(P_co, CIN)``
    cycles, both streams at once) while group ``g`` computes, once the bank of
    group ``g - 1`` has been released by its last output; so a group costs
    ``TILES * CIN`` cycles when that is longer than the load, and about
    ``CIN + latency`` cycles when a layer has a single tile.  Latency from the
    last input beat of a tile to its first output beat: :attr:`latency` cycles.
    """

    def __init__(self, config: EngineConfig) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, got {type(config).__name__}")
        self.config = config
        algo = config.algo
        self.algo = algo
        m = algo.mults
        self.positions = m
        self.lanes = config.pco
        self.ci_bits = max(ceil_log2(config.cin_max), 1)
        self.channel_bits = max(ceil_log2(config.cout_max), 1)

        in_meta = data.StructLayout(
            {"ci": unsigned(self.ci_bits), "first": 1, "last": 1, "bank": 1}
        )
        self.in_meta_layout = in_meta
        self.input_transform = InputTransform(algo, in_bits=config.in_bits, meta_width=in_meta.size)
        self.act_quantizer = ActQuantizer(config, meta_width=in_meta.size)
        if self.act_quantizer.v_bits != self.input_transform.v_bits:
            raise AssertionError("InputTransform and ActQuantizer disagree on v_bits")
        self.weight_buffer = WeightBuffer(
            positions=m,
            lanes=config.pco,
            cin_max=config.cin_max,
            act_bits=config.act_bits,
            weight_bits=config.weight_bits,
        )
        self.mac_array = MacArray(
            positions=m,
            lanes=config.pco,
            act_bits=config.act_bits,
            weight_bits=config.weight_bits,
            cin_max=config.cin_max,
        )
        # Output side: quantizer first (it fixes the widths of the parameters).
        tail = data.StructLayout(
            {"channel": unsigned(self.channel_bits), "tile": unsigned(TILE_BITS), "last": 1}
        )
        self.tail_layout = tail
        self.output_quantizer = OutputQuantizer(
            config,
            meta_width=tail.size,
        )
        oq = self.output_quantizer
        lane_meta = data.StructLayout(
            {
                "bias": oq.in_layout["bias"].shape,
                "out_mult": oq.in_layout["out_mult"].shape,
                "out_shift": oq.in_layout["out_shift"].shape,
                "channel": unsigned(self.channel_bits),
                "tile": unsigned(TILE_BITS),
                "last": 1,
            }
        )
        self.lane_meta_layout = lane_meta
        self.rescale = Rescale(config, cin_max=config.cin_max, meta_width=lane_meta.size)
        if self.rescale.acc_bits != self.mac_array.acc_width:
            raise AssertionError("Rescale and MacArray disagree on the accumulator width")
        self.output_transform = OutputTransform(
            algo, z_bits=config.z_bits, meta_width=lane_meta.size
        )
        if self.output_transform.y_bits > oq.y_bits:
            raise AssertionError("OutputTransform produces wider y than OutputQuantizer takes")
        self.chan_layout = data.StructLayout(
            {
                "rescale_mult": data.ArrayLayout(unsigned(config.rescale_bits), m),
                "bias": oq.in_layout["bias"].shape,
                "out_mult": oq.in_layout["out_mult"].shape,
                "out_shift": oq.in_layout["out_shift"].shape,
            }
        )
        self.cfg_layout = data.StructLayout(
            {"addr": unsigned(ADDR_BITS), "data": unsigned(DATA_BITS)}
        )
        self.act_layout = data.ArrayLayout(signed(config.in_bits), algo.input_tile**2)
        self.out_layout = data.StructLayout(
            {
                "data": data.ArrayLayout(signed(config.out_bits), algo.output_tile**2),
                "channel": unsigned(self.channel_bits),
                "tile": unsigned(TILE_BITS),
                "last": 1,
            }
        )
        self.status_layout = data.StructLayout(
            {"busy": 1, "desc_error": 1, "overflow": 1, "layers_done": unsigned(16)}
        )
        # The blocks are elaborated with the engine; an engine used only for its
        # layouts (EngineStreams, manifests) should not warn about them.
        for block in (
            self.input_transform,
            self.act_quantizer,
            self.weight_buffer,
            self.mac_array,
            self.rescale,
            self.output_transform,
            self.output_quantizer,
        ):
            block._MustUse__silence = True
        self.latency = (
            self.input_transform.latency
            + self.act_quantizer.latency
            + 1  # weight buffer read
            + 2  # MAC array: multiply, accumulate
            + self.rescale.latency
            + self.output_transform.latency
            + self.output_quantizer.latency
        )
        super().__init__(
            {
                "i_cfg": In(stream.Signature(self.cfg_layout)),
                "i_chan": In(stream.Signature(self.chan_layout)),
                "i_weight": In(stream.Signature(self.weight_buffer.row_layout)),
                "i_act": In(stream.Signature(self.act_layout)),
                "o_out": Out(stream.Signature(self.out_layout)),
                "status": Out(self.status_layout),
            }
        )

    # ------------------------------------------------------------------ limits
    @property
    def limits(self) -> dict[str, int]:
        """Largest legal descriptor values (checked at START)."""
        return {
            "cin": self.config.cin_max,
            "cout": self.config.cout_max,
            "tiles": (1 << TILE_BITS) - 1,
            "rescale_shift": self.rescale.max_shift,
            "act_shift": self.act_quantizer.max_shift,
            "act_mult": (1 << self.config.act_mult_bits) - 1,
        }

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        pco = cfg.pco
        npos = self.positions
        m.submodules.input_transform = it = self.input_transform
        m.submodules.act_quantizer = aq = self.act_quantizer
        m.submodules.weight_buffer = wb = self.weight_buffer
        m.submodules.mac_array = mac = self.mac_array
        m.submodules.rescale = rs = self.rescale
        m.submodules.output_transform = ot = self.output_transform
        m.submodules.output_quantizer = oq = self.output_quantizer
        m.submodules.serializer = ser = ChannelSerializer(
            lanes=pco,
            acc_layout=mac.acc_layout,
            lane_layout=rs.in_layout,
            meta_layout=self.lane_meta_layout,
            chan_layout=self.chan_layout,
            channel_bits=self.channel_bits,
            cout_max=cfg.cout_max,
        )
        limits = self.limits

        # -------------------------------------------------------------- registers
        cin = Signal(range(cfg.cin_max + 1))
        cout = Signal(range(cfg.cout_max + 1))
        tiles = Signal(unsigned(TILE_BITS))
        relu = Signal()
        rescale_shift = Signal(rs.rescale_shift.shape())
        act_shift = Signal(aq.act_shift.shape())
        act_mult = Signal(data.ArrayLayout(unsigned(cfg.act_mult_bits), npos))
        bad_write = Signal()
        desc_error = Signal()
        layers_done = Signal(16)
        # latched at START
        start = Signal()
        ok = Signal()

        wr = self.i_cfg.payload
        idle = Signal()
        m.d.comb += self.i_cfg.ready.eq(idle)
        with m.If(self.i_cfg.valid & self.i_cfg.ready):
            addr, value = wr.addr, wr.data
            with m.Switch(addr):
                with m.Case(REGISTERS["CIN"]):
                    with m.If(value > limits["cin"]):
                        m.d.sync += bad_write.eq(1)
                    m.d.sync += cin.eq(value)
                with m.Case(REGISTERS["COUT"]):
                    with m.If(value > limits["cout"]):
                        m.d.sync += bad_write.eq(1)
                    m.d.sync += cout.eq(value)
                with m.Case(REGISTERS["TILES"]):
                    with m.If(value > limits["tiles"]):
                        m.d.sync += bad_write.eq(1)
                    m.d.sync += tiles.eq(value)
                with m.Case(REGISTERS["FLAGS"]):
                    m.d.sync += relu.eq((value & FLAG_RELU) != 0)
                with m.Case(REGISTERS["RESCALE_SHIFT"]):
                    with m.If(value > limits["rescale_shift"]):
                        m.d.sync += bad_write.eq(1)
                    m.d.sync += rescale_shift.eq(value)
                with m.Case(REGISTERS["CONTROL"]):
                    m.d.comb += start.eq(value == START)
                with m.Default():
                    with m.If(
                        (addr >= REGISTERS["ACT_MULT"]) & (addr < REGISTERS["ACT_MULT"] + npos)
                    ):
                        for j in range(npos):
                            with m.If(addr == REGISTERS["ACT_MULT"] + j):
                                m.d.sync += act_mult[j].eq(value)
                        with m.If(value > limits["act_mult"]):
                            m.d.sync += bad_write.eq(1)
                    with m.Elif(
                        (addr >= REGISTERS["ACT_SHIFT"]) & (addr < REGISTERS["ACT_SHIFT"] + npos)
                    ):
                        for j in range(npos):
                            with m.If(addr == REGISTERS["ACT_SHIFT"] + j):
                                m.d.sync += act_shift[j].eq(value)
                        with m.If(value > limits["act_shift"]):
                            m.d.sync += bad_write.eq(1)
                    with m.Else():
                        m.d.sync += bad_write.eq(1)  # unmapped address
        m.d.comb += ok.eq(~bad_write & (cin >= 1) & (cout >= 1) & (tiles >= 1))

        # -------------------------------------------------------------- control
        # Three processes share two parameter/weight banks (ping-pong):
        #   loader   fills bank `load_bank` with a group's channel parameters and
        #            weight rows (both streams at once) while that bank is free;
        #   compute  streams a group's TILES * CIN act beats once its bank is loaded;
        #   serializer (ChannelSerializer) frees the bank after the group's last output.
        # So the next group's weights load while the current group computes.
        loaded = Signal(2)  # per bank: holds a complete group not yet released
        chan_regs = Signal(data.ArrayLayout(data.ArrayLayout(self.chan_layout, pco), 2))
        running = Signal()
        load_bank = Signal()
        load_remaining = Signal(range(cfg.cout_max + 1))  # channels still to load
        load_active = Signal()
        chan_count = Signal(range(pco + 1))
        comp_bank = Signal()
        comp_remaining = Signal(range(cfg.cout_max + 1))
        comp_active = Signal()
        ci = Signal(range(cfg.cin_max + 1))
        tile = Signal(unsigned(TILE_BITS))
        # Beats between the serializer and o_out: at most one per pipeline stage.
        inflight = Signal(range(rs.latency + ot.latency + oq.latency + 2))

        m.d.comb += [
            ser.chan.eq(chan_regs),
            ser.cout.eq(cout),
            ser.tiles.eq(tiles),
            wb.load_bank.eq(load_bank),
            aq.act_shift.eq(act_shift),
            rs.rescale_shift.eq(rescale_shift),
            oq.relu.eq(relu),
        ]
        if hasattr(aq, "act_mult"):
            m.d.comb += aq.act_mult.eq(act_mult)

        with m.If(idle & start):
            with m.If(ok):
                m.d.sync += [
                    desc_error.eq(0),
                    running.eq(1),
                    loaded.eq(0),
                    load_bank.eq(0),
                    load_remaining.eq(cout),
                    load_active.eq(1),
                    chan_count.eq(0),
                    comp_bank.eq(0),
                    comp_remaining.eq(cout),
                    comp_active.eq(1),
                    ci.eq(0),
                    tile.eq(0),
                ]
                m.d.comb += [rs.clear.eq(1), ser.start.eq(1), wb.restart.eq(1)]
            with m.Else():
                m.d.sync += [desc_error.eq(1), bad_write.eq(0)]
        m.d.comb += idle.eq(~running)

        # Loader.
        bank_free = ~loaded.bit_select(load_bank, 1)
        can_load = running & load_active & bank_free
        take_chan = can_load & (chan_count < pco)
        take_row = can_load & (wb.loaded < cin)
        m.d.comb += [
            self.i_chan.ready.eq(take_chan),
            self.i_weight.ready.eq(take_row),
            wb.i_weight.valid.eq(self.i_weight.valid & take_row),
        ]
        with m.If(self.i_chan.valid & take_chan):
            for b in range(2):
                for lane in range(pco):
                    with m.If((load_bank == b) & (chan_count == lane)):
                        m.d.sync += chan_regs[b][lane].eq(self.i_chan.payload)
            m.d.sync += chan_count.eq(chan_count + 1)
        group_loaded = can_load & (chan_count == pco) & (wb.loaded == cin)
        set_loaded = Signal(2)
        with m.If(group_loaded):
            m.d.comb += [set_loaded.eq(Mux(load_bank, 0b10, 0b01)), wb.restart.eq(1)]
            m.d.sync += [
                load_bank.eq(~load_bank),
                chan_count.eq(0),
                load_remaining.eq(load_remaining - pco),
            ]
            with m.If(load_remaining <= pco):
                m.d.sync += load_active.eq(0)

        # Compute.
        comp_ready = running & comp_active & loaded.bit_select(comp_bank, 1)
        m.d.comb += [
            it.i_x.valid.eq(self.i_act.valid & comp_ready),
            self.i_act.ready.eq(it.i_x.ready & comp_ready),
        ]
        with m.If(self.i_act.valid & self.i_act.ready):
            with m.If(ci == cin - 1):
                m.d.sync += ci.eq(0)
                with m.If(tile == tiles - 1):
                    m.d.sync += [
                        tile.eq(0),
                        comp_bank.eq(~comp_bank),
                        comp_remaining.eq(comp_remaining - pco),
                    ]
                    with m.If(comp_remaining <= pco):
                        m.d.sync += comp_active.eq(0)
                with m.Else():
                    m.d.sync += tile.eq(tile + 1)
            with m.Else():
                m.d.sync += ci.eq(ci + 1)

        # Bank release by the serializer; layer end once the outputs have left.
        clear_loaded = Signal(2)
        with m.If(ser.release):
            m.d.comb += clear_loaded.eq(Mux(ser.bank, 0b10, 0b01))
        m.d.sync += loaded.eq((loaded | set_loaded) & ~clear_loaded)
        with m.If(running & ser.done & (inflight == 0) & ~ser.o_lane.valid & ~start):
            m.d.sync += [running.eq(0), layers_done.eq(layers_done + 1)]

        # -------------------------------------------------------------- datapath
        m.d.comb += [
            wb.i_weight.payload.eq(self.i_weight.payload),
            it.i_x.payload.data.eq(self.i_act.payload),
            it.i_x.payload.meta.eq(Cat(ci[: self.ci_bits], ci == 0, ci == cin - 1, comp_bank)),
        ]
        q_meta = data.View(self.in_meta_layout, aq.o_q.payload.meta)
        y_meta = data.View(self.lane_meta_layout, ot.o_y.payload.meta)
        tail = data.View(self.tail_layout, oq.o_out.payload.meta)
        _link(m, it.o_y, aq.i_v, v=it.o_y.payload.data, meta=it.o_y.payload.meta)
        _link(m, aq.o_q, wb.i_beat, act=aq.o_q.payload.q, ci=q_meta.ci, bank=q_meta.bank,
              first=q_meta.first, last=q_meta.last)  # fmt: skip
        wiring.connect(m, wb.o_beat, mac.i_beat)
        wiring.connect(m, mac.o_acc, ser.i_acc)
        wiring.connect(m, ser.o_lane, rs.i_acc)
        _link(m, rs.o_z, ot.i_x, data=rs.o_z.payload.z, meta=rs.o_z.payload.meta)
        _link(m, ot.o_y, oq.i_y, y=ot.o_y.payload.data, bias=y_meta.bias,
              out_mult=y_meta.out_mult, out_shift=y_meta.out_shift,
              meta=Cat(y_meta.channel, y_meta.tile, y_meta.last))  # fmt: skip
        _link(m, oq.o_out, self.o_out, data=oq.o_out.payload.out, channel=tail.channel,
              tile=tail.tile, last=tail.last)  # fmt: skip
        # Beats between the serializer and o_out (drain detection).
        enter = ser.o_lane.valid & ser.o_lane.ready
        leave = self.o_out.valid & self.o_out.ready
        with m.If(enter & ~leave):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(leave & ~enter):
            m.d.sync += inflight.eq(inflight - 1)

        m.d.comb += [
            self.status.busy.eq(~idle),
            self.status.desc_error.eq(desc_error),
            self.status.overflow.eq(rs.overflow),
            self.status.layers_done.eq(layers_done),
        ]
        return m
