"""The conv engine: every conv layer of a network on one MAC array, in two modes.

Data flow (see docs/architecture.md for the block diagram)::

    i_cfg -> DescriptorRegisters (input register, staged + active descriptor) -> GroupScheduler
    i_chan -> GroupScheduler -> parameter memory      i_weight -> GroupScheduler -> WeightBuffer
                                 (weight-transform engines: i_weight -> SpatialWeightTransform ->)
    i_act -> SkidBuffer (Xilinx: RegisterSlice) -> GroupScheduler
          -+- fast:   InputTransform (B^T) -+-> ActQuantizer -> WeightBuffer -> MacArray
           +- direct: the beat's pixels ----+
          -> ResultSerializer (blocks of W positions, with their parameters)
          -> CreditFifo's gate -> Rescale (from here to the FIFO nothing stalls)
          -+- fast:   TileCollector -> OutputTransform (A^T) -> TileSplitter -+-> CreditFifo
           +- direct: -------------------------------------------------------+
          -> RegisterSlice (ECP5: SkidBuffer -> CreditFifo gate) -> OutputQuantizer
          (ECP5: -> that CreditFifo) -> SkidBuffer -> o_out

Every input port ends in a register and ``o_out`` leaves one (hw/port_buffers.py):
no combinational path runs from a port into the datapath.

The fast mode runs the engine's algorithm (stride-1 convs with its kernel);
the direct mode runs any kernel and stride with the transforms bypassed, the
``m`` positions holding output pixels (docs/datapath.md, "Direct mode").
Layer protocol and register map: :mod:`sfc_hls.hw.register_map`.  Every
parameter comes from one :class:`~sfc_hls.config.EngineConfig`; every layout,
width and latency from its :class:`~sfc_hls.hw.interface.EngineInterface`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.config import EngineConfig
from sfc_hls.hw.act_replay import ActReplay
from sfc_hls.hw.descriptor import DescriptorRegisters
from sfc_hls.hw.digit_serial import DigitSerialTransform
from sfc_hls.hw.interface import (
    BACK_BLOCKS,
    BLOCKS,
    FRONT_BLOCKS,
    OUTPUT_ADDS_PER_STAGE,
    EngineInterface,
    input_adds_per_stage,
)
from sfc_hls.hw.lut_memory import RegisteredAddressMemory
from sfc_hls.hw.mac_array import MacArray
from sfc_hls.hw.map_buffer import MapBuffer
from sfc_hls.hw.port_buffers import CreditFifo, RegisterSlice, SkidBuffer
from sfc_hls.hw.quantizers import ActQuantizer, OutputQuantizer, Rescale
from sfc_hls.hw.scheduler import GroupScheduler
from sfc_hls.hw.serializer import ResultSerializer
from sfc_hls.hw.stream_select import StreamSelect, StreamSplit
from sfc_hls.hw.tile_blocks import TileCollector, TileSplitter
from sfc_hls.hw.transform import InputTransform, OutputTransform
from sfc_hls.hw.weight_buffer import WeightBuffer
from sfc_hls.hw.weight_transform import SpatialWeightTransform

__all__ = ["ConvEngine", "datapath_blocks"]


def fifo_slice_bits(config: EngineConfig) -> int | None:
    """Result bits per read-address register of the back end's credit FIFOs: on ECP5
    the skid buffers' chunk (:meth:`SkidBuffer.chunk_bits_of`), else one register."""
    return SkidBuffer.chunk_bits_of(config.target) if config.target == "ecp5" else None


def datapath_blocks(
    interface: EngineInterface, names: tuple[str, ...] = BLOCKS
) -> dict[str, wiring.Component]:
    """New instances of the engine's datapath blocks ``names`` (default: all, in stream order).

    The one place that says how each block is built from the interface: the
    engine elaborates them, the synthesis report converts them one by one.  An
    engine with a feature-map buffer also has ``map_buffer`` (in front of
    ``act_input``), one with a weight transform ``weight_transform`` (between
    ``i_weight`` and the scheduler), one with a replay buffer ``act_replay``
    (between ``act_input`` and the scheduler); none is in :data:`BLOCKS`, the datapath
    every engine has.
    """
    cfg, lay, iface = interface.config, interface.layouts, interface
    rescale_out = Rescale.payload_layouts(iface.rescale_widths, lay["lane_meta"])[1]
    factories = {
        # ECP5: a skid buffer, so that the scheduler's handshake reaches its pointers,
        # not the enables of every bit of the activation beat (that net set the clock);
        # Xilinx: a register slice (half the registers and no output select).
        "act_input": lambda: (
            SkidBuffer(lay["act"], chunk_bits=SkidBuffer.chunk_bits_of(cfg.target))
            if cfg.target == "ecp5"
            else RegisterSlice(lay["act"])
        ),
        "input_transform": lambda: InputTransform(
            iface.algo,
            in_bits=cfg.in_bits,
            meta_layout=lay["beat_meta"],
            adds_per_stage=input_adds_per_stage(cfg.target),
        ),
        "act_quantizer": lambda: ActQuantizer(cfg, meta_layout=lay["beat_meta"]),
        "weight_buffer": lambda: WeightBuffer(
            positions=iface.positions,
            lanes=cfg.pco,
            cin_max=cfg.cin_max,
            act_bits=cfg.act_bits,
            weight_bits=cfg.weight_bits,
            width=iface.width,
            target=cfg.target,
        ),
        "mac_array": lambda: MacArray(
            positions=iface.positions,
            lanes=cfg.pco,
            act_bits=cfg.act_bits,
            weight_bits=cfg.weight_bits,
            cin_max=iface.reduction_max,
            macs_per_dsp=cfg.macs_per_dsp,
            target=cfg.target,
        ),
        "serializer": lambda: ResultSerializer(iface),
        "rescale": lambda: Rescale(cfg, meta_layout=lay["lane_meta"]),
        "collector": lambda: TileCollector(in_layout=rescale_out, blocks=iface.blocks),
        "output_transform": lambda: (
            DigitSerialTransform(
                iface.algo.output_adder_network,
                in_width=cfg.z_bits,
                digits=iface.output_digits,
                meta_layout=lay["lane_meta"],
                adds_per_stage=OUTPUT_ADDS_PER_STAGE,
            )
            if iface.output_digits > 1
            else OutputTransform(
                iface.algo,
                z_bits=cfg.z_bits,
                meta_layout=lay["lane_meta"],
                adds_per_stage=OUTPUT_ADDS_PER_STAGE,
            )
        ),
        "splitter": lambda: TileSplitter(
            in_layout=lay["tile_y"], width=iface.width, always_ready=True
        ),
        "output_quantizer": lambda: OutputQuantizer(
            cfg, y_bits=iface.output_widths.y_bits, tag_layout=lay["tag"]
        ),
        "output_buffer": lambda: SkidBuffer(
            lay["out"], chunk_bits=SkidBuffer.chunk_bits_of(cfg.target)
        ),
    }
    if cfg.replay_beats:
        factories["act_replay"] = lambda: ActReplay(
            act_layout=lay["act"],
            depth=cfg.replay_beats,
            cout_max=cfg.cout_max,
            group_channels_max=cfg.pco * iface.blocks,
        )
    if cfg.weight_transform:
        factories["weight_transform"] = lambda: SpatialWeightTransform(
            algorithm=iface.algo,
            pco=cfg.pco,
            weight_bits=cfg.weight_bits,
            cin_max=cfg.cin_max,
            cout_max=cfg.cout_max,
        )
    if cfg.map_kib:
        factories["map_buffer"] = lambda: MapBuffer(
            input_tile=iface.algo.input_tile,
            output_tile=iface.algo.output_tile,
            pairs=cfg.map_pairs,
            depth=cfg.map_depth,
            in_bits=cfg.in_bits,
            act_layout=lay["act"],
            pco=cfg.pco,
            cin_max=cfg.cin_max,
            cout_max=cfg.cout_max,
        )
    unknown = set(names) - set(factories)
    if unknown:
        raise ValueError(f"unknown blocks {sorted(unknown)}; the engine has {list(factories)}")
    return {name: factories[name]() for name in names}


class ConvEngine(wiring.Component):
    """Conv engine for one fast-convolution algorithm, with a direct mode (``EngineConfig``).

    Ports (see :mod:`sfc_hls.hw.register_map` for the protocol, the
    :class:`~sfc_hls.hw.interface.EngineInterface` for every layout):

    * ``i_cfg``: register writes ``{addr: 16, data: 32}`` into the staged descriptor, also while
      a layer runs; after a START write it stalls until that layer has started.
    * ``i_chan``: per output-channel group, one beat per (lane, block):
      ``{rescale_mult[W], params: {bias, out_mult, out_shift}}``.
    * ``i_weight``: per group, weight rows of ``P_co x m`` int8 (fast: one per
      input channel; direct: ``W`` entries of ``P_co x B`` each).
    * ``i_act``: per group, ``TILES * reduction`` beats of ``max(L*L, m)`` int8
      (fast: an ``L x L`` tile of one channel; direct: ``m`` pixels of one tap and channel).
    * ``i_map`` (engines with a feature-map buffer, ``config.map_kib``): a stride-1
      fast-mode layer's input map once, ``2LP`` int8 pixels of a row per beat, in place
      of its ``i_act`` beats (:class:`~sfc_hls.hw.map_buffer.MapBuffer`).
    * ``o_out``: ``{data[W], meta: {channel, tile, index, end, last}}``.
    * ``status``: ``{busy, desc_error, overflow, layers_done, start_pending}`` (and
      ``map_overflow`` with a map buffer).

    Throughput: one ``i_act`` beat per cycle while the output path keeps up
    (``W`` positions per cycle: a tile's result takes ``P_co * m / W`` cycles
    to leave, so layers with ``reduction >= P_co * m / W`` run at one beat per
    cycle).  Parameters and weights live in two banks: group ``g + 1`` loads
    while group ``g`` computes.
    """

    def __init__(self, config: EngineConfig) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, got {type(config).__name__}")
        self.config = config
        self.interface = EngineInterface.from_config(config)
        super().__init__(self.signature_of(self.interface))

    @staticmethod
    def signature_of(interface: EngineInterface) -> wiring.Signature:
        """The engine's ports (a signature, nothing to elaborate): for manifests and wrappers."""
        lay = interface.layouts
        map_port = {"i_map": In(stream.Signature(lay["map"]))} if interface.config.map_kib else {}
        return wiring.Signature(
            {
                "i_cfg": In(stream.Signature(lay["cfg"])),
                "i_chan": In(stream.Signature(lay["chan"])),
                "i_weight": In(stream.Signature(lay["weight"])),
                "i_act": In(stream.Signature(lay["act"])),
                **map_port,
                "o_out": Out(stream.Signature(lay["out"])),
                "status": Out(lay["status"]),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        iface = self.interface
        lay = iface.layouts
        m.submodules.registers = regs = DescriptorRegisters(
            descriptor_layout=lay["descriptor"],
            registers=iface.registers,
            limits=iface.limits,
            blocks=iface.blocks,
            target=iface.config.target,
        )
        m.submodules.scheduler = sched = GroupScheduler(iface)
        blocks = datapath_blocks(iface)
        for name, block in blocks.items():
            m.submodules[name] = block
        switches = [*self._front(m, sched, blocks, regs.descriptor), *self._back(m, blocks)]
        self._parameter_memory(m, sched, blocks["serializer"])
        self._control(m, regs, sched, blocks)
        # The mode reaches each switch (front split and select, back split and select)
        # from its own register, each a copy of the one before it, so that no one
        # register drives every mode multiplexer of the engine (on ECP5 that net set
        # the clock).  Copy k holds the descriptor's mode k + 1 cycles after the layer
        # starts; the first beat reaches the front split at least three cycles after
        # the start (the scheduler loads a group's parameters first), later switches later.
        mode = regs.descriptor.direct
        for k, switch in enumerate(switches):
            copy = Signal(name=f"mode_copy{k}")
            m.d.sync += copy.eq(mode)
            m.d.comb += switch.direct.eq(copy)
            mode = copy
        return m

    def _front(self, m: Module, sched: GroupScheduler, blocks: dict, desc) -> tuple:
        """Ports -> scheduler -> (B^T | pixels) -> activation quantizer -> weights -> MAC array."""
        port, it, aq, wb, mac = (blocks[name] for name in FRONT_BLOCKS)
        lay = self.interface.layouts
        m.submodules.front_split = split = StreamSplit(
            lay["act_beat"], it.i_layout, lay["direct_beat"]
        )
        m.submodules.front_select = select = StreamSelect(
            it.o_layout, lay["direct_beat"], aq.in_layout
        )
        wiring.connect(m, wiring.flipped(self.i_chan), sched.i_chan)
        self._weight_input(m, sched, desc)
        self._act_input(m, port, desc)
        self._act_replay(m, port, sched)
        wiring.connect(m, sched.o_weight, wb.i_weight)
        self._scheduled_act(m, sched, split)
        wiring.connect(m, split.o_fast, it.i_x)
        wiring.connect(m, it.o_y, select.i_fast)
        wiring.connect(m, split.o_direct, select.i_direct)
        wiring.connect(m, select.o, aq.i_v)
        wiring.connect(m, aq.o_q, wb.i_beat)
        wiring.connect(m, wb.o_beat, mac.i_beat)
        return split, select

    def _scheduled_act(self, m: Module, sched: GroupScheduler, split: StreamSplit) -> None:
        """The scheduler's activation beats -> the mode split; on ECP5 through a skid
        buffer (counted in the interface's "act_input"), so that the front end's ready
        chain (weight buffer -> quantizer -> input transform -> split) ends at its
        registers, not in the scheduler's handshake, which reaches the activation port
        buffer's pointers and the scheduler's counters (there it made paths of three
        LUT levels and three routes across the device)."""
        if self.config.target != "ecp5":
            wiring.connect(m, sched.o_act, split.i)
            return
        m.submodules.scheduled_act = buf = SkidBuffer(
            self.interface.layouts["act_beat"],
            chunk_bits=SkidBuffer.chunk_bits_of(self.config.target),
        )
        wiring.connect(m, sched.o_act, buf.i)
        wiring.connect(m, buf.o, split.i)

    def _weight_input(self, m: Module, sched: GroupScheduler, desc) -> None:
        """``i_weight`` -> the scheduler; with a weight transform through it, which computes
        the rows of a layer with SPATIAL_WEIGHTS and passes other layers' rows through."""
        if not self.config.weight_transform:
            wiring.connect(m, wiring.flipped(self.i_weight), sched.i_weight)
            return
        wt = datapath_blocks(self.interface, ("weight_transform",))["weight_transform"]
        m.submodules.weight_transform = wt
        wiring.connect(m, wiring.flipped(self.i_weight), wt.i_weight)
        wiring.connect(m, wt.o_weight, sched.i_weight)
        m.d.comb += [
            wt.spatial.eq(desc.spatial_weights),  # the descriptor refuses it in direct mode
            wt.cin.eq(desc.cin),
            wt.cout.eq(desc.cout),
            wt.restart.eq(sched.layer_start),
        ]

    def _act_replay(
        self, m: Module, port: RegisterSlice | SkidBuffer, sched: GroupScheduler
    ) -> None:
        """The activation port register -> the scheduler; with a replay buffer through it.
        After the port register, not before: a beat the register takes before the layer's
        start waits there, and the buffer (whose layer begins at the start) records it."""
        if not self.config.replay_beats:
            wiring.connect(m, port.o, sched.i_act)
            return
        replay = datapath_blocks(self.interface, ("act_replay",))["act_replay"]
        m.submodules.act_replay = replay
        wiring.connect(m, port.o, replay.i_act)
        wiring.connect(m, replay.o_act, sched.i_act)

    def _act_input(self, m: Module, port: RegisterSlice | SkidBuffer, desc) -> None:
        """``i_act`` -> the activation port register; with a map buffer, the buffer's
        tiles instead while a layer with MAP_INPUT runs (its layer registers: _control)."""
        act = wiring.flipped(self.i_act)
        if not self.config.map_kib:
            wiring.connect(m, act, port.i)
            return
        buf = datapath_blocks(self.interface, ("map_buffer",))["map_buffer"]
        m.submodules.map_buffer = buf
        wiring.connect(m, wiring.flipped(self.i_map), buf.i_map)
        use_map = desc.map_input
        m.d.comb += [
            port.i.valid.eq(Mux(use_map, buf.o_act.valid, act.valid)),
            port.i.payload.eq(Mux(use_map, buf.o_act.payload, act.payload)),
            buf.o_act.ready.eq(use_map & port.i.ready),
            act.ready.eq(~use_map & port.i.ready),
        ]

    def _back(self, m: Module, blocks: dict) -> tuple:
        """MAC array -> serializer -> rescale -> (collect, A^T, split | direct) -> quantizer -> o_out."""
        mac = blocks["mac_array"]
        ser, rs, col, ot, spl, oq, port = (blocks[name] for name in BACK_BLOCKS)
        m.submodules.back_split = split = StreamSplit(rs.out_layout, col.i.payload.shape(),
                                                      rs.out_layout)  # fmt: skip
        m.submodules.back_select = select = StreamSelect(
            spl.o.payload.shape(), rs.out_layout, oq.in_layout
        )
        wiring.connect(m, mac.o_acc, ser.i_acc)
        # The back end from the rescale to the mode select never stalls: a credit FIFO
        # behind the select lets a beat into the rescale only with room for every
        # result in flight (a fast-mode packet of B beats holds B credits until its
        # last output block leaves the FIFO: its S <= B blocks never overflow it).  So
        # the rescale's, the collector's and the output transform's registers have no
        # clock enable (on ECP5 the output path's ready chain through them set the
        # clock of whole engines), the serializer sees a registered ready, and the
        # output quantizer's ready reaches only the FIFO's read side.  (With the
        # quantizer inside too, nextpnr's router did not finish the Winograd engine.)
        iface = self.interface
        m.submodules.back_credits = credits = CreditFifo(
            rs.in_layout, oq.in_layout, latency=iface.back_credit_latency,
            return_values=(1, 0, iface.blocks) if iface.blocks > 1 else (1,),
            slice_bits=fifo_slice_bits(self.config),
        )  # fmt: skip
        wiring.connect(m, ser.o_lane, credits.i)
        wiring.connect(m, credits.to_pipe, rs.i_acc)
        # No stall reaches the rescale (the mode split's ready is high whenever a beat
        # can arrive: the collector and the splitter keep pace, hw/tile_blocks.py).
        m.d.comb += [
            split.i.valid.eq(rs.o_z.valid),
            split.i.payload.eq(rs.o_z.payload),
            rs.o_z.ready.eq(1),
        ]
        wiring.connect(m, split.o_fast, col.i)
        wiring.connect(m, col.o, ot.i_x)
        wiring.connect(m, ot.o_y, spl.i)
        wiring.connect(m, spl.o, select.i_fast)
        wiring.connect(m, split.o_direct, select.i_direct)
        wiring.connect(m, select.o, credits.from_pipe)
        if iface.blocks > 1:  # direct: 1 per block; fast: B on a packet's last, else 0
            end = credits.o.payload.meta.tag.end
            m.d.comb += credits.return_sel.eq(Mux(select.direct, 0, Mux(end, 2, 1)))
        self._output_quantizer(m, credits, oq, port)
        wiring.connect(m, port.o, wiring.flipped(self.o_out))
        return split, select

    def _output_quantizer(self, m: Module, credits: CreditFifo, oq, port: SkidBuffer) -> None:
        """The back end's credit FIFO -> the output quantizer -> the ``o_out`` buffer.

        A register between the FIFO's distributed-RAM read and the quantizer's bias
        adder (counted in the interface's "output_quantizer"): on Xilinx a register
        slice (that read made the longest path 13 cells), the quantizer a stall
        pipeline.  On ECP5 a skid buffer, and the quantizer runs without stalls
        between a second credit gate and FIFO: its ``advance`` reached every register
        and multiplier of its 16 lanes, spread with the multipliers over the device.
        """
        if self.config.target != "ecp5":
            m.submodules.quantizer_input = quantizer_input = RegisterSlice(oq.in_layout)
            wiring.connect(m, credits.o, quantizer_input.i)
            wiring.connect(m, quantizer_input.o, oq.i_y)
            wiring.connect(m, oq.o_out, port.i)
            return
        m.submodules.quantizer_input = quantizer_input = SkidBuffer(
            oq.in_layout, chunk_bits=SkidBuffer.chunk_bits_of(self.config.target)
        )
        m.submodules.quantizer_credits = oq_credits = CreditFifo(
            oq.in_layout,
            oq.out_layout,
            latency=oq.latency + CreditFifo.latency,
            slice_bits=fifo_slice_bits(self.config),
        )
        wiring.connect(m, credits.o, quantizer_input.i)
        wiring.connect(m, quantizer_input.o, oq_credits.i)
        wiring.connect(m, oq_credits.to_pipe, oq.i_y)
        wiring.connect(m, oq.o_out, oq_credits.from_pipe)
        wiring.connect(m, oq_credits.o, port.i)

    def _parameter_memory(self, m: Module, sched: GroupScheduler, ser: ResultSerializer) -> None:
        """Two banks of per-(lane, block) parameters: written by the loader, read by the serializer.

        The write is registered (one cycle after the loader takes a beat): the
        enable fans out to every cell of a wide distributed RAM, and the loader's
        ``take`` decision comes from the scheduler's state through ``i_chan.ready``.
        The read address is a register too (loaded with the beat the serializer
        issues), on ECP5 one per 64 bits of the word
        (:class:`~sfc_hls.hw.lut_memory.RegisteredAddressMemory`).  A bank's
        parameters are read only after its group's activations have gone through
        the MAC array, many cycles after the group is loaded.
        """
        iface = self.interface
        layout = iface.layouts["chan"]
        slice_bits = 64 if iface.config.target == "ecp5" else layout.size
        m.submodules.parameters = mem = RegisteredAddressMemory(
            layout, 2 * iface.lanes * iface.blocks, slice_bits=slice_bits
        )
        m.d.comb += [
            mem.w_addr.eq(sched.param_addr),
            mem.w_data.eq(sched.param_data),
            mem.w_en.eq(sched.param_en),
            mem.r_addr.eq(ser.param_addr),
            mem.r_load.eq(ser.param_load),
            ser.param_data.eq(mem.r_data),
        ]

    def _control(self, m: Module, regs, sched: GroupScheduler, blocks: dict) -> None:
        """Descriptor -> scheduler, serializer and the per-layer constants of the blocks."""
        aq, wb, ser, rs, oq = (blocks[n] for n in ("act_quantizer", "weight_buffer", "serializer",
                                                   "rescale", "output_quantizer"))  # fmt: skip
        desc = regs.descriptor
        wiring.connect(m, wiring.flipped(self.i_cfg), regs.i_cfg)
        m.d.comb += [
            regs.accept.eq(~sched.busy),
            sched.start.eq(regs.start),
            sched.cin.eq(desc.cin),
            sched.cout.eq(desc.cout),
            sched.tiles.eq(desc.tiles),
            sched.layer_reduction.eq(regs.reduction),
            sched.direct.eq(desc.direct),
            sched.replicas.eq(desc.replicas),
            wb.restart.eq(sched.restart),
            wb.load_bank.eq(sched.load_bank),
            wb.direct.eq(desc.direct),
            ser.cout.eq(desc.cout),
            ser.tiles.eq(desc.tiles),
            ser.direct.eq(desc.direct),
            ser.replicas.eq(desc.replicas),
            ser.blocks_per_replica.eq(regs.blocks_per_replica),
            ser.start.eq(sched.layer_start),
            rs.clear.eq(sched.layer_start),
            sched.release.eq(ser.release),
            sched.release_bank.eq(ser.bank),
            sched.results_done.eq(ser.done),
            sched.packet_issued.eq(ser.packet_issued),
            sched.packet_out.eq(self.o_out.valid & self.o_out.ready & self.o_out.payload.meta.end),
            aq.act_shift.eq(desc.act_shift),
            rs.rescale_shift.eq(desc.rescale_shift),
            oq.relu.eq(desc.relu),
            self.status.busy.eq(sched.busy),
            self.status.desc_error.eq(regs.error),
            self.status.overflow.eq(rs.overflow),
            self.status.layers_done.eq(sched.layers_done),
            self.status.start_pending.eq(regs.pending),
        ]
        if aq.widths.has_multiplier:
            m.d.comb += aq.act_mult.eq(desc.act_mult)
        if self.config.map_kib:
            self._map_control(m, desc, sched, blocks)
        if self.config.replay_beats:
            self._replay_control(m, regs, sched)

    def _replay_control(self, m: Module, regs, sched: GroupScheduler) -> None:
        """The replay buffer's layer: enable, start, beats per group (``TILES * reduction``,
        registered: valid the cycle after the start, as the buffer expects), channels per group."""
        replay, desc, pco = m.submodules.act_replay, regs.descriptor, self.config.pco
        group_beats = Signal(ActReplay.GROUP_BEATS_BITS, name="replay_group_beats")
        m.d.sync += group_beats.eq(regs.reduction * desc.tiles)
        m.d.comb += [
            replay.enable.eq(desc.act_replay),
            replay.start.eq(sched.layer_start),
            replay.group_beats.eq(group_beats),
            replay.cout.eq(desc.cout),
            replay.per_group.eq(Mux(desc.direct, pco * desc.replicas, pco)),
            self.status.replay_overflow.eq(replay.overflow),
        ]

    def _map_control(self, m: Module, desc, sched: GroupScheduler, blocks: dict) -> None:
        """The map buffer's layer registers, its start and its status bit."""
        buf = m.submodules.map_buffer
        m.d.comb += [
            buf.start.eq(sched.layer_start & desc.map_input),
            buf.images.eq(desc.images),
            buf.cin.eq(desc.cin),
            buf.cout.eq(desc.cout),
            buf.height.eq(desc.height),
            buf.width.eq(desc.width),
            buf.padding.eq(desc.padding),
            self.status.map_overflow.eq(buf.overflow),
        ]
