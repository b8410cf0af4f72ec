"""The streaming conv engine: transforms, quantizers and MAC array behind one descriptor.

Data flow (one input beat = one ``L x L`` int8 tile of one input channel)::

    i_cfg -> DescriptorRegisters -> GroupScheduler (banks, counters, layer end)
    i_chan, i_weight -> GroupScheduler -> parameter banks, WeightBuffer
    i_act -> GroupScheduler -> InputTransform (B^T) -> ActQuantizer -> WeightBuffer (row ci)
          -> MacArray -> ChannelSerializer (one lane per beat, with the lane's parameters)
          -> Rescale -> OutputTransform (A^T) -> OutputQuantizer -> o_out

Layer protocol and register map: :mod:`sfc_hls.hw.register_map`.  Every
parameter comes from one :class:`~sfc_hls.config.EngineConfig`; every layout,
width and latency from its :class:`~sfc_hls.hw.interface.EngineInterface`.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.config import EngineConfig
from sfc_hls.hw.descriptor import DescriptorRegisters
from sfc_hls.hw.interface import BLOCKS, EngineInterface
from sfc_hls.hw.mac_array import MacArray
from sfc_hls.hw.quantizers import ActQuantizer, OutputQuantizer, Rescale
from sfc_hls.hw.scheduler import GroupScheduler
from sfc_hls.hw.serializer import ChannelSerializer
from sfc_hls.hw.transform import InputTransform, OutputTransform
from sfc_hls.hw.weight_buffer import WeightBuffer

__all__ = ["ConvEngine", "datapath_blocks"]


def datapath_blocks(
    interface: EngineInterface, names: tuple[str, ...] = BLOCKS
) -> dict[str, wiring.Component]:
    """New instances of the engine's datapath blocks ``names`` (default: all, in stream order).

    The one place that says how each block is built from the interface: the
    engine elaborates them, the synthesis report converts them one by one.
    """
    cfg, lay = interface.config, interface.layouts
    factories = {
        "input_transform": lambda: InputTransform(
            interface.algo, in_bits=cfg.in_bits, meta_layout=lay["beat_meta"]
        ),
        "act_quantizer": lambda: ActQuantizer(cfg, meta_layout=lay["beat_meta"]),
        "weight_buffer": lambda: WeightBuffer(
            positions=interface.positions,
            lanes=cfg.pco,
            cin_max=cfg.cin_max,
            act_bits=cfg.act_bits,
            weight_bits=cfg.weight_bits,
        ),
        "mac_array": lambda: MacArray(
            positions=interface.positions,
            lanes=cfg.pco,
            act_bits=cfg.act_bits,
            weight_bits=cfg.weight_bits,
            cin_max=cfg.cin_max,
        ),
        "rescale": lambda: Rescale(cfg, meta_layout=lay["lane_meta"]),
        "output_transform": lambda: OutputTransform(
            interface.algo, z_bits=cfg.z_bits, meta_layout=lay["lane_meta"]
        ),
        "output_quantizer": lambda: OutputQuantizer(
            cfg, y_bits=interface.y_bits, tag_layout=lay["tag"]
        ),
    }
    unknown = set(names) - set(factories)
    if unknown:
        raise ValueError(f"unknown blocks {sorted(unknown)}; the engine has {list(BLOCKS)}")
    return {name: factories[name]() for name in names}


class ConvEngine(wiring.Component):
    """Stride-1 conv engine for one fast-convolution algorithm (``EngineConfig``).

    Ports (see :mod:`sfc_hls.hw.register_map` for the protocol, the
    :class:`~sfc_hls.hw.interface.EngineInterface` for every layout):

    * ``i_cfg``: register writes ``{addr: 16, data: 32}``; accepted while idle.
    * ``i_chan``: per output-channel group, ``P_co`` beats ``{rescale_mult[m],
      params: {bias, out_mult, out_shift}}``.
    * ``i_weight``: per group, ``CIN`` rows ``weights[lane][j]`` (int8).
    * ``i_act``: per group, ``TILES * CIN`` input beats, an ``L x L`` int8 tile each.
    * ``o_out``: per tile, one beat per valid lane ``{data[M*M], meta: {channel, tile, last}}``.
    * ``status``: ``{busy, desc_error, overflow, layers_done}``.

    Throughput: one ``i_act`` beat per cycle while outputs are taken and
    ``CIN >= P_co`` (the output path handles one lane per cycle).  Parameters
    and weights live in two banks: group ``g + 1`` loads (``max(P_co, CIN)``
    cycles, both streams at once) while group ``g`` computes, once the bank of
    group ``g - 1`` has been released by its last output; so a group costs
    ``TILES * CIN`` cycles when that is longer than the load, and about
    ``CIN + latency`` cycles when a layer has a single tile.  Latency from the
    last input beat of a tile to its first output beat:
    ``interface.total_latency`` cycles (the sum of the blocks' latencies).
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
        return wiring.Signature(
            {
                "i_cfg": In(stream.Signature(lay["cfg"])),
                "i_chan": In(stream.Signature(lay["chan"])),
                "i_weight": In(stream.Signature(lay["weight"])),
                "i_act": In(stream.Signature(lay["act"])),
                "o_out": Out(stream.Signature(lay["out"])),
                "status": Out(lay["status"]),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        iface = self.interface
        lay = iface.layouts
        m.submodules.registers = regs = DescriptorRegisters(
            descriptor_layout=lay["descriptor"], positions=iface.positions, limits=iface.limits
        )
        m.submodules.scheduler = sched = GroupScheduler(iface)
        blocks = datapath_blocks(iface)
        for name, block in blocks.items():
            m.submodules[name] = block
        it, aq, wb, mac = (blocks[name] for name in BLOCKS[:4])
        rs, ot, oq = (blocks[name] for name in BLOCKS[4:])
        m.submodules.serializer = ser = ChannelSerializer(iface)

        # Streams: ports -> scheduler -> datapath -> o_out.
        wiring.connect(m, wiring.flipped(self.i_cfg), regs.i_cfg)
        wiring.connect(m, wiring.flipped(self.i_chan), sched.i_chan)
        wiring.connect(m, wiring.flipped(self.i_weight), sched.i_weight)
        wiring.connect(m, wiring.flipped(self.i_act), sched.i_act)
        wiring.connect(m, sched.o_weight, wb.i_weight)
        wiring.connect(m, sched.o_act, it.i_x)
        wiring.connect(m, it.o_y, aq.i_v)
        wiring.connect(m, aq.o_q, wb.i_beat)
        wiring.connect(m, wb.o_beat, mac.i_beat)
        wiring.connect(m, mac.o_acc, ser.i_acc)
        wiring.connect(m, ser.o_lane, rs.i_acc)
        wiring.connect(m, rs.o_z, ot.i_x)
        wiring.connect(m, ot.o_y, oq.i_y)
        wiring.connect(m, oq.o_out, wiring.flipped(self.o_out))

        # Control: descriptor -> scheduler and per-layer constants of the blocks.
        desc = regs.descriptor
        m.d.comb += [
            regs.accept.eq(~sched.busy),
            sched.start.eq(regs.start & regs.valid),
            sched.cin.eq(desc.cin),
            sched.cout.eq(desc.cout),
            sched.tiles.eq(desc.tiles),
            sched.rows_loaded.eq(wb.loaded),
            wb.restart.eq(sched.restart),
            wb.load_bank.eq(sched.load_bank),
            ser.chan.eq(sched.chan),
            ser.cout.eq(desc.cout),
            ser.tiles.eq(desc.tiles),
            ser.start.eq(sched.layer_start),
            rs.clear.eq(sched.layer_start),
            sched.release.eq(ser.release),
            sched.release_bank.eq(ser.bank),
            sched.results_done.eq(ser.done),
            sched.lane_pending.eq(ser.o_lane.valid),
            sched.lane_issued.eq(ser.o_lane.valid & ser.o_lane.ready),
            sched.out_taken.eq(self.o_out.valid & self.o_out.ready),
            aq.act_shift.eq(desc.act_shift),
            rs.rescale_shift.eq(desc.rescale_shift),
            oq.relu.eq(desc.relu),
            self.status.busy.eq(sched.busy),
            self.status.desc_error.eq(regs.error),
            self.status.overflow.eq(rs.overflow),
            self.status.layers_done.eq(sched.layers_done),
        ]
        if aq.widths.has_multiplier:
            m.d.comb += aq.act_mult.eq(desc.act_mult)
        return m
