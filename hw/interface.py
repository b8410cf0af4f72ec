"""What everything around a generated engine needs to know about it, without elaborating it.

:class:`EngineInterface` is derived from one :class:`~sfc_hls.config.EngineConfig`
by the same width and latency functions the blocks use (the blocks are not
instantiated): the payload layouts of every port and of every internal
stream, the widths, each block's latency, the descriptor limits and the
register map.  The engine (:class:`~sfc_hls.hw.engine.ConvEngine`) builds its
ports from it; the stream encoder (:mod:`sfc_hls.hw.engine_streams`), the
manifest (:mod:`sfc_hls.hw.generate`), the synthesis report, the testbenches
and the cycle model (through :meth:`EngineInterface.timing`) read it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from amaranth.hdl import ShapeLike, signed, unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

from sfc_hls.bilinear import BilinearAlgorithm
from sfc_hls.config import EngineConfig
from sfc_hls.cycle_model import EngineTiming, StreamBits
from sfc_hls.hw.descriptor import CFG_LAYOUT, DescriptorRegisters
from sfc_hls.hw.digit_serial import DigitSerialTransform, best_digits
from sfc_hls.hw.mac_array import MacArray
from sfc_hls.hw.port_buffers import CreditFifo, RegisterSlice, SkidBuffer
from sfc_hls.hw.quantizers import (
    ActQuantizer,
    ActQuantizerWidths,
    OutputQuantizer,
    OutputQuantizerWidths,
    Rescale,
    RescaleWidths,
)
from sfc_hls.hw.register_map import RegisterMap
from sfc_hls.hw.tile_blocks import TileSplitter
from sfc_hls.hw.transform import AdderNetlist, adder_netlist
from sfc_hls.hw.weight_buffer import WeightBuffer
from sfc_hls.map_input import DIM_BITS

__all__ = ["OUTPUT_ADDS_PER_STAGE", "TILE_BITS", "EngineInterface", "input_adds_per_stage"]

#: Adder levels per pipeline stage of the engine's output transform ``A^T``: one,
#: because its adders are 24-31 bits wide and two chained ones are the longest
#: path of the engine (13 cells after ``synth_xilinx`` on SFC-6(7x7,3x3), 12 with one
#: level).  The register cost (A^T latency 5 -> 9 cycles, about twice the register
#: bits) does not stall the output path: the registered :class:`TileSplitter`
#: takes a tile in one cycle.  The input transform's 8-14-bit adders keep two per stage.
OUTPUT_ADDS_PER_STAGE = 1


def input_adds_per_stage(target: str) -> int:
    """Adder levels per pipeline stage of the engine's input transform ``B^T``.

    Two on Xilinx (its 8-14-bit adders are short carry chains).  One on ECP5: the
    activation port's skid-buffer select and two chained adders were the longest
    path of the Winograd engine after nextpnr (8.7 ns, 5.8 ns of it routing).
    """
    return 1 if target == "ecp5" else 2


#: Most digits the output transform cuts ``z`` into (:class:`~sfc_hls.hw.digit_serial.DigitSerialTransform`).
#: SFC-6(7x7,3x3) at 20-bit ``z`` (``sfc-hls synth --blocks output_transform``, Yosys
#: 0.23 ``synth_xilinx -widemux 5``): 14,125 LUTs whole, 8,512 / 7,175 / 8,046 (and
#: 1,980 MUXF for the 5:1 digit select) on 3 / 4 / 5 digits: the network shrinks
#: with the digit, the accumulators and the select grow with their number.
#: Fewer digits when tiles come faster (:func:`~sfc_hls.hw.digit_serial.best_digits`).
OUTPUT_DIGITS_MAX = 4

#: Width of the tile counter: a layer has at most 2^16 - 1 output tiles per group.
TILE_BITS = 16

#: Blocks of the datapath in stream order (keys of :attr:`EngineInterface.latency`).
BLOCKS = (
    "act_input",
    "input_transform",
    "act_quantizer",
    "weight_buffer",
    "mac_array",
    "serializer",
    "rescale",
    "collector",
    "output_transform",
    "splitter",
    "output_quantizer",
    "output_buffer",
)
#: The blocks of the front (to the MAC array's result) and of the output path,
#: and the fast-mode-only ones (direct mode bypasses them).
FRONT_BLOCKS = BLOCKS[: BLOCKS.index("mac_array") + 1]
BACK_BLOCKS = BLOCKS[len(FRONT_BLOCKS) :]
FAST_ONLY_BLOCKS = ("input_transform", "collector", "output_transform", "splitter")


@dataclass(frozen=True, eq=False)
class EngineInterface:
    """Layouts, widths, latencies and limits of the engine ``config`` generates.

    Attributes:
        config, algo: the engine and its algorithm.
        positions, lanes: ``m`` transform positions, ``P_co`` MAC lanes.
        width, blocks: the output path's width ``W`` (``config.backend_width``) and the
            ``B = m / W`` blocks of ``W`` positions a result is cut into.
        input_netlist, output_netlist: the adder netlists of ``B^T`` and ``A^T`` (the latter
            at ``z_bits``: the widths of ``y``).
        output_digits, output_digit_netlist: the digits of ``z`` the output transform takes
            one per cycle and the netlist of its network (``output_netlist`` for one digit);
            :class:`~sfc_hls.hw.digit_serial.DigitSerialTransform`.
        act_widths, rescale_widths, output_widths: the requantizers' widths.
        acc_bits: accumulator width of the MAC array.
        latency: cycles of each block (:data:`BLOCKS`); :attr:`total_latency` is their sum.
        layouts: payload layouts by name: the ports ``cfg``, ``chan``, ``weight``, ``map``,
            ``act``, ``out``, ``status``; internal ``acc`` (a MAC-array result),
            ``beat_meta`` (control fields of
            an activation beat), ``tag`` (channel, tile, last of an output beat),
            ``lane_meta`` (what travels from the serializer to the output
            quantizer), ``descriptor`` (the layer registers).
    """

    config: EngineConfig
    algo: BilinearAlgorithm
    positions: int
    lanes: int
    width: int
    blocks: int
    input_netlist: AdderNetlist
    output_netlist: AdderNetlist
    output_digits: int
    output_digit_netlist: AdderNetlist
    act_widths: ActQuantizerWidths
    rescale_widths: RescaleWidths
    output_widths: OutputQuantizerWidths
    acc_bits: int
    latency: dict[str, int]
    layouts: dict[str, data.Layout] = field(repr=False)

    @classmethod
    def from_config(cls, config: EngineConfig) -> EngineInterface:
        """The interface of ``config``'s engine (cached per configuration)."""
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, got {type(config).__name__}")
        return _interface(config)

    # ------------------------------------------------------------------ derived values
    @property
    def total_latency(self) -> int:
        """Last ``i_act`` beat of a tile to the first ``o_out`` beat of its result, minus one."""
        return sum(self.latency.values())

    @property
    def block_names(self) -> tuple[str, ...]:
        """Every block of this engine: :data:`BLOCKS`, ``map_buffer`` with a map buffer,
        ``weight_transform`` with a weight transform, ``act_replay`` with a replay buffer."""
        return (
            BLOCKS
            + (("map_buffer",) if self.config.map_kib else ())
            + (("weight_transform",) if self.config.weight_transform else ())
            + (("act_replay",) if self.config.replay_beats else ())
        )

    def replay_tiles(self, reduction: int) -> int | None:
        """Tiles of ``reduction`` beats each the activation replay buffer holds (``None``
        without one): what :func:`~sfc_hls.schedule.direct_schedule` fits a layer into."""
        return self.config.replay_beats // reduction if self.config.replay_beats else None

    def replay_chunks(self, tiles: int, reduction: int) -> tuple[int, ...]:
        """Tiles of each engine layer a layer of ``tiles`` tiles of ``reduction`` beats runs
        as with the replay buffer: ``(tiles,)`` when a group's beats fit, chunks of the most
        tiles that fit when they do not, ``()`` when not even a tile fits (or no buffer):
        then the beats stream once per group."""
        per_chunk = self.replay_tiles(reduction) or 0
        if per_chunk < 1:
            return ()
        return tuple(min(per_chunk, tiles - t) for t in range(0, tiles, per_chunk))

    @property
    def reduction_max(self) -> int:
        """Longest accumulation of either mode: ``max(cin_max, direct_reduction_max)``."""
        return max(self.config.cin_max, self.config.direct_reduction_max)

    @property
    def replicas(self) -> tuple[int, ...]:
        """Legal REPLICAS values: the divisors of the number of blocks."""
        return tuple(r for r in range(1, self.blocks + 1) if self.blocks % r == 0)

    @property
    def output_beats(self) -> int:
        """Beats of one channel's fast-mode output tile: ``ceil(M^2 / W)``."""
        return -(-(self.algo.output_tile**2) // self.width)

    @property
    def back_credit_latency(self) -> int:
        """Cycles from a beat entering the rescale to the FIFO read that returns its credit.

        At full rate in fast mode (hw/engine.py's back-end ``CreditFifo``): the
        packet's ``B`` beats, the rescale, the collector, the output transform, the
        splitter's ``S`` blocks.  The FIFO has room for a beat per cycle over it.
        """
        lat = self.latency
        through = sum(lat[b] for b in ("rescale", "collector", "output_transform", "splitter"))
        return self.blocks + through + self.output_beats

    @property
    def ci_bits(self) -> int:
        return max(ceil_log2(self.config.cin_max), 1)

    @property
    def channel_bits(self) -> int:
        return max(ceil_log2(self.config.cout_max), 1)

    @property
    def v_bits(self) -> int:
        return self.input_netlist.out_width

    @property
    def y_bits(self) -> int:
        return self.output_netlist.out_width

    @property
    def registers(self) -> RegisterMap:
        return RegisterMap(
            self.positions,
            map_input=self.config.map_kib > 0,
            weight_transform=self.config.weight_transform,
            act_replay=self.config.replay_beats > 0,
        )

    @property
    def limits(self) -> dict[str, int]:
        """Largest legal descriptor values (checked when the layer starts)."""
        return {
            "cin": self.config.cin_max,
            "cout": self.config.cout_max,
            "tiles": (1 << TILE_BITS) - 1,
            "mode": 1,
            "taps": self.config.direct_reduction_max,
            "replicas": self.blocks,
            "direct_reduction": self.config.direct_reduction_max,
            "rescale_shift": self.rescale_widths.max_shift,
            "act_shift": self.act_widths.max_shift,
            "act_mult": (1 << self.config.act_mult_bits) - 1,
            **self.map_limits,
        }

    @property
    def map_limits(self) -> dict[str, int]:
        """Limits of the map-input registers (empty without a feature-map buffer):
        IMAGES, HEIGHT, WIDTH up to ``2**DIM_BITS - 1``, PADDING up to ``L - M``, and
        ``map_words``, the buffer's words per memory (a map takes
        :func:`sfc_hls.map_input.map_words`)."""
        if not self.config.map_kib:
            return {}
        dim = (1 << DIM_BITS) - 1
        halo = self.algo.input_tile - self.algo.output_tile
        return {"images": dim, "height": dim, "width": dim, "padding": halo,
                "map_words": self.config.map_depth}  # fmt: skip

    @property
    def multipliers(self) -> dict[str, int]:
        """Multipliers of each block (the transforms have none).

        ``mac_array`` counts MAC multipliers (products per beat);
        ``mac_array_dsp`` the multiply operators that compute them (half as
        many, rounded up, with ``macs_per_dsp=2``)."""
        m = self.positions
        return {
            "mac_array": m * self.lanes,
            "mac_array_dsp": MacArray.dsp_multiplier_count(m, self.lanes, self.config.macs_per_dsp),
            "act_quantizer": m if self.act_widths.has_multiplier else 0,
            "rescale": self.width,
            "output_quantizer": self.width,
        }

    def stream_bits(self) -> StreamBits:
        """Data bits per beat of each external stream (the cycle model's traffic counts)."""
        lay, cfg = self.layouts, self.config
        return StreamBits(
            cfg=lay["cfg"].size,
            chan=lay["chan"].size,
            weight=lay["weight"].size,
            direct_row=lay["direct_row"].size,
            act_fast=self.algo.input_tile**2 * cfg.in_bits,
            act_direct=self.positions * cfg.in_bits,
            out=self.width * cfg.out_bits,
            map=2 * self.algo.input_tile * cfg.map_pairs * cfg.in_bits,
        )

    def timing(self, *, weight_banks: int = 2) -> EngineTiming:
        """The cycle model's parameters of this engine (:mod:`sfc_hls.cycle_model`)."""
        from sfc_hls.hw.act_replay import ActReplay
        from sfc_hls.hw.map_buffer import MapBuffer
        from sfc_hls.hw.serializer import ResultSerializer  # imports this module

        lat = self.latency
        front_direct = sum(lat[b] for b in FRONT_BLOCKS if b not in FAST_ONLY_BLOCKS)
        back = BACK_BLOCKS
        back_direct = sum(lat[b] for b in back if b not in FAST_ONLY_BLOCKS)
        return EngineTiming(
            pco=self.lanes,
            cfg_writes=len(self.registers.layer_addresses()) + 1,
            front_latency=sum(lat[b] for b in FRONT_BLOCKS),
            back_latency=sum(lat[b] for b in back) + self.output_beats - 1,
            weight_banks=weight_banks,
            blocks=self.blocks,
            width=self.width,
            output_beats=self.output_beats,
            front_latency_direct=front_direct,
            back_latency_direct=back_direct,
            start_delay=DescriptorRegisters.START_DELAY,
            take_gap=ResultSerializer.take_gap_of(self.config.target),
            map_delay=MapBuffer.FIRST_BEAT_DELAY if self.config.map_kib else 0,
            **self._spatial_timing(),
            replay_delay=ActReplay.READ_LATENCY if self.config.replay_beats else 0,
        )

    def _spatial_timing(self) -> dict[str, int]:
        """The weight transform's part of :meth:`timing` (engines with one): ``k`` rows per
        beat; a group's rows reach the scheduler ``latency + 1`` cycles after its header."""
        if not self.config.weight_transform:
            return {}
        from sfc_hls.hw.weight_transform import SpatialWeightTransform

        latency = SpatialWeightTransform.latency_of(self.algo, self.config.weight_bits)
        return {"spatial_rows_per_beat": self.algo.mults // self.algo.kernel**2,
                "spatial_load_delay": latency + 1}  # fmt: skip


@functools.lru_cache(maxsize=32)
def _interface(config: EngineConfig) -> EngineInterface:
    from sfc_hls.hw.serializer import ResultSerializer  # imports this module

    algo = config.algo
    m, lanes, width = algo.mults, config.pco, config.backend_width
    input_netlist = adder_netlist(
        algo.input_adder_network,
        config.in_bits,
        adds_per_stage=input_adds_per_stage(config.target),
    )
    output_netlist = adder_netlist(
        algo.output_adder_network, config.z_bits, adds_per_stage=OUTPUT_ADDS_PER_STAGE
    )
    digits = best_digits(config.z_bits, m // width, OUTPUT_DIGITS_MAX)
    digit_netlist = (
        DigitSerialTransform.network_netlist(
            algo.output_adder_network, config.z_bits, digits, OUTPUT_ADDS_PER_STAGE
        )
        if digits > 1
        else output_netlist
    )
    output_latency = (
        DigitSerialTransform.latency_of(digit_netlist.latency, digits)
        if digits > 1
        else output_netlist.latency
    )
    act = ActQuantizerWidths.derive(config)
    if act.v_bits != input_netlist.out_width:
        raise AssertionError(f"{algo.name}: B^T width {input_netlist.out_width} != v_bits")
    reduction_max = max(config.cin_max, config.direct_reduction_max)
    rescale = RescaleWidths.derive(config, reduction_max)
    acc_bits = MacArray.accumulator_width(
        act_bits=config.act_bits, weight_bits=config.weight_bits, cin_max=reduction_max
    )
    if acc_bits != rescale.acc_bits:
        raise AssertionError(f"MAC array ({acc_bits}) and rescale ({rescale.acc_bits}) acc widths")
    # y = A^T z (fast) or y = z (direct): the output quantizer takes the wider.
    y_bits = max(output_netlist.out_width, config.z_bits)
    output = OutputQuantizerWidths.derive(config, y_bits)
    latency = {
        # The port buffer (ECP5: a skid buffer, and one behind the scheduler).
        "act_input": 2 * SkidBuffer.latency if config.target == "ecp5" else RegisterSlice.latency,
        "input_transform": input_netlist.latency,
        "act_quantizer": ActQuantizer.latency_of(config.target),
        "weight_buffer": WeightBuffer.latency_of(config.target),
        "mac_array": MacArray.latency_of(config.target),
        "serializer": ResultSerializer.latency,
        "rescale": Rescale.latency_of(config.target),
        "collector": 1,
        "output_transform": output_latency,
        "splitter": TileSplitter.latency,
        # The back end's credit FIFO, a register slice (ECP5: a skid buffer), the
        # quantizer (ECP5: and its own credit FIFO; hw/engine.py).
        "output_quantizer": CreditFifo.latency
        + (
            SkidBuffer.latency + CreditFifo.latency
            if config.target == "ecp5"
            else RegisterSlice.latency
        )
        + OutputQuantizer.latency_of(config.target),
        "output_buffer": SkidBuffer.latency,
    }
    return EngineInterface(
        config=config,
        algo=algo,
        positions=m,
        lanes=lanes,
        width=width,
        blocks=m // width,
        input_netlist=input_netlist,
        output_netlist=output_netlist,
        output_digits=digits,
        output_digit_netlist=digit_netlist,
        act_widths=act,
        rescale_widths=rescale,
        output_widths=output,
        acc_bits=acc_bits,
        latency=latency,
        layouts=_layouts(config, act, rescale, output, output_netlist.out_width),
    )


def _layouts(
    config: EngineConfig,
    act: ActQuantizerWidths,
    rescale: RescaleWidths,
    output: OutputQuantizerWidths,
    y_bits: int,
) -> dict[str, data.Layout]:
    algo = config.algo
    m, width = algo.mults, config.backend_width
    blocks = m // width
    output_beats = -(-(algo.output_tile**2) // width)
    tag = data.StructLayout(
        {
            "channel": unsigned(max(ceil_log2(config.cout_max), 1)),
            "tile": unsigned(TILE_BITS),
            "index": unsigned(max(ceil_log2(max(blocks, output_beats)), 1)),
            "end": 1,
            "last": 1,
        }
    )
    params = output.params_layout
    act_beat = data.ArrayLayout(signed(config.in_bits), max(algo.input_tile**2, m))
    beat_meta = WeightBuffer.beat_meta_layout(config.cin_max, width)
    return {
        "cfg": CFG_LAYOUT,
        "chan": data.StructLayout(
            {
                "rescale_mult": data.ArrayLayout(unsigned(config.rescale_bits), width),
                "params": params,
            }
        ),  # fmt: skip
        "weight": data.ArrayLayout(data.ArrayLayout(signed(config.weight_bits), m), config.pco),
        "direct_row": data.ArrayLayout(
            data.ArrayLayout(data.ArrayLayout(signed(config.weight_bits), blocks), config.pco),
            width,
        ),
        "acc": data.ArrayLayout(data.ArrayLayout(signed(rescale.acc_bits), m), config.pco),
        "act": act_beat,
        "act_beat": data.StructLayout({"data": act_beat, "meta": beat_meta}),
        "direct_beat": data.StructLayout(
            {"data": data.ArrayLayout(signed(config.in_bits), m), "meta": beat_meta}
        ),
        "out": data.StructLayout(
            {"data": data.ArrayLayout(signed(config.out_bits), width), "meta": tag}
        ),
        "status": data.StructLayout(
            {
                "busy": 1,
                "desc_error": 1,
                "overflow": 1,
                "layers_done": unsigned(16),
                "start_pending": 1,
                **({"map_overflow": 1} if config.map_kib else {}),
                **({"replay_overflow": 1} if config.replay_beats else {}),
            }
        ),
        "map": data.ArrayLayout(signed(config.in_bits), 2 * algo.input_tile * config.map_pairs),
        "beat_meta": beat_meta,
        "tag": tag,
        "lane_meta": data.StructLayout({"params": params, "tag": tag}),
        "tile_y": data.StructLayout(
            {
                "data": data.ArrayLayout(signed(y_bits), algo.output_tile**2),
                "meta": data.StructLayout({"params": params, "tag": tag}),
            }
        ),
        "descriptor": data.StructLayout(
            {
                "cin": unsigned(ceil_log2(config.cin_max + 1)),
                "cout": unsigned(ceil_log2(config.cout_max + 1)),
                "tiles": unsigned(TILE_BITS),
                "relu": 1,
                "rescale_shift": unsigned(rescale.shift_width),
                "direct": 1,
                "taps": unsigned(ceil_log2(config.direct_reduction_max + 1)),
                "replicas": unsigned(ceil_log2(blocks + 1)),
                "act_mult": data.ArrayLayout(unsigned(config.act_mult_bits), m),
                "act_shift": data.ArrayLayout(unsigned(act.shift_width), m),
                **_map_fields(config),
                **({"spatial_weights": 1} if config.weight_transform else {}),
                **({"act_replay": 1} if config.replay_beats else {}),
            }
        ),
    }


def _map_fields(config: EngineConfig) -> dict[str, ShapeLike]:
    """Descriptor fields of the map-input registers (engines with a feature-map buffer)."""
    if not config.map_kib:
        return {}
    halo = config.algo.input_tile - config.algo.output_tile
    dim = unsigned(DIM_BITS)
    return {"map_input": 1, "images": dim, "height": dim, "width": dim,
            "padding": unsigned(max(ceil_log2(halo + 1), 1))}  # fmt: skip
