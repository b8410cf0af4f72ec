"""cocotb tests of :mod:`sfc_hls.hw.quantizers` in Verilator, against the golden model.

The design under test is a :class:`QuantizerHarness`: an :class:`ActQuantizer`
for each scale mode, a :class:`Rescale` and an :class:`OutputQuantizer` of one
engine side by side, their ports renamed with the prefixes ``aqp_``, ``aqf_``,
``rs_`` and ``oq_`` (one Verilator build covers all of them). It runs through
:func:`sfc_hls.sim.verilator.run_cocotb` with the test configuration
(:func:`sfc_hls.sim.verilator.tb_config`)::

    {"engine": EngineConfig.to_dict(), "meta_width": 5, "seed": 1,
     "layers": [{"cin": 8, "cout": 4, "height": 14, "width": 14, "batch": 1, "relu": false}],
     "input_pause": 0.3, "output_pause": 0.4, "throughput_beats": 64,
     "report_file": "/path/report.json"}

For every layer and scale mode the reference model draws ``random_layer_quant`` parameters
and an input, runs :func:`sfc_hls.golden.conv2d_int8` with all stages, and the
three blocks must reproduce ``q`` from ``v``, ``z`` from ``acc`` and
``rescale_mult[:, co]`` (in blocks of the back-end width ``W``), and
``out_tiles`` from ``y`` (``W`` values per beat) and the channel's
``bias``, ``out_mult``, ``out_shift`` -- bit-exactly, with random input pauses
and output backpressure, and with ``meta`` carried through.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import cocotb
import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from cocotb.triggers import ClockCycles, RisingEdge

from sfc_hls.config import SCALE_MODES, EngineConfig
from sfc_hls.datapath import (
    LayerQuant,
    accumulation_bound,
    minimum_rescale_shift,
    random_layer_quant,
    rshift_round,
    saturate,
    signed_range,
)
from sfc_hls.golden import LayerStages, conv2d_int8
from sfc_hls.hw.quantizers import ActQuantizer, OutputQuantizer, Rescale
from sfc_hls.sim.streams import (
    PayloadCodec,
    Scoreboard,
    StreamDriver,
    StreamMonitor,
    random_pauses,
    start_clock_and_reset,
    within_cycles,
)
from sfc_hls.sim.verilator import tb_config, tb_report


class QuantizerHarness(wiring.Component):
    """The requantization blocks of one engine side by side, for one Verilator build.

    ``aqp_*``: :class:`ActQuantizer` in ``pow2`` mode, ``aqf_*``: in ``fixed``
    mode, ``rs_*``: :class:`Rescale`, ``oq_*``: :class:`OutputQuantizer` (these
    two do not depend on the scale mode). Every port of a block appears
    unchanged (same signature member) as ``<prefix>_<name>``, e.g. ``aqf_i_v``,
    ``aqf_act_mult``, ``rs_overflow``, ``oq_relu``.
    """

    def __init__(self, config: EngineConfig, *, meta_width: int = 0) -> None:
        meta = meta_width or None
        self.acts = {
            mode: ActQuantizer(replace(config, scale_mode=mode), meta_layout=meta)
            for mode in SCALE_MODES
        }
        self.rescale = Rescale(config, meta_layout=meta)
        self.outq = OutputQuantizer(config, tag_layout=meta)
        self.blocks: dict[str, ActQuantizer | Rescale | OutputQuantizer] = {
            "aqp": self.acts["pow2"],
            "aqf": self.acts["fixed"],
            "rs": self.rescale,
            "oq": self.outq,
        }
        members = {}
        for prefix, block in self.blocks.items():
            for name, member in block.signature.members.items():
                members[f"{prefix}_{name}"] = member
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        for prefix, block in self.blocks.items():
            m.submodules[prefix] = block
            for name, member in block.signature.members.items():
                outer, inner = getattr(self, f"{prefix}_{name}"), getattr(block, name)
                if member.is_signature:
                    wiring.connect(m, wiring.flipped(outer), inner)
                elif member.flow == In:
                    m.d.comb += inner.eq(outer)
                else:
                    m.d.comb += outer.eq(inner)
        return m


# -- reference model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Beat:
    """One input payload (as ``layout.const`` values) and the expected output lanes."""

    payload: dict[str, Any]
    expected: np.ndarray


class GoldenLayer:
    """A random layer through :func:`conv2d_int8`; its stages cut into per-block beats."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        cin: int,
        cout: int,
        height: int,
        width: int,
        batch: int = 1,
        relu: bool = False,
        gen: np.random.Generator,
    ) -> None:
        self.params: LayerQuant = random_layer_quant(config, cin, cout, gen, relu=relu)
        x = gen.integers(-128, 128, size=(batch, cin, height, width))
        # A saturated corner: extremes of v, q and the accumulators.
        x[:, : cin // 2, :4, :4] = 127
        x[:, cin // 2 :, :4, :4] = -128
        self.stages: LayerStages
        _, self.stages = conv2d_int8(x, self.params, return_stages=True)

    def act_beats(self) -> list[Beat]:
        v, q = self.stages.v, self.stages.q
        m = v.shape[-1]
        return [
            Beat({"data": vv.tolist()}, qq)
            for vv, qq in zip(v.reshape(-1, m), q.reshape(-1, m), strict=True)
        ]

    def rescale_beats(self, width: int) -> list[Beat]:
        """The accumulators of each (image, channel, tile) in blocks of ``width`` positions
        (the engine's back-end width, a divisor of ``m``), with their multipliers."""
        acc, z = self.stages.acc, self.stages.z  # (N, Cout, TH, TW, m)
        mult = self.params.rescale_mult  # (m, Cout)
        beats = []
        for index in np.ndindex(acc.shape[:-1]):
            co = index[1]
            for lo in range(0, acc.shape[-1], width):
                block = slice(lo, lo + width)
                payload = {"data": acc[index][block].tolist(), "mult": mult[block, co].tolist()}
                beats.append(Beat(payload, z[index][block]))
        return beats

    def outq_beats(self, width: int) -> list[Beat]:
        """Each output tile's ``y`` in beats of ``width`` values; a partial last beat is
        filled with the tile's first values again (and expects their outputs)."""
        y, out = self.stages.y, self.stages.out_tiles  # (N, Cout, TH, TW, M*M)
        p = self.params
        beats = []
        for index in np.ndindex(y.shape[:-1]):
            co = index[1]
            params = {
                "bias": int(p.bias[co]),
                "out_mult": int(p.out_mult[co]),
                "out_shift": int(p.out_shift[co]),
            }
            count = -(-y.shape[-1] // width) * width
            ys, outs = np.resize(y[index], count), np.resize(out[index], count)
            for lo in range(0, count, width):
                payload = {"data": ys[lo : lo + width].tolist(), "meta": {"params": params}}
                beats.append(Beat(payload, outs[lo : lo + width]))
        return beats


# -- testbench pieces ---------------------------------------------------------------------------


class BlockChannel:
    """Driver on a block's input stream, monitor on its output, codecs and scoreboard."""

    def __init__(
        self,
        dut: Any,
        name: str,
        in_port: str,
        out_port: str,
        block: wiring.Component,
        field: str,
        *,
        rng: random.Random,
        input_pause: float,
        output_pause: float,
    ) -> None:
        self.dut = dut
        self.name = name
        self.meta_width = block.meta_width
        self.in_codec = PayloadCodec(block.in_layout)
        self.out_codec = PayloadCodec(block.out_layout)
        self.field = field
        self.scoreboard = Scoreboard(f"{name} beat", field)
        self.driver = StreamDriver(dut, in_port, dut.clk, pauses=random_pauses(rng, input_pause))
        self.monitor = StreamMonitor(
            dut, out_port, dut.clk, pauses=random_pauses(rng, output_pause)
        )
        self.sent = 0

    def send(self, beats: list[Beat]) -> None:
        raw = []
        for beat in beats:
            payload = dict(beat.payload)
            meta = self.sent % (1 << self.meta_width)
            if self.meta_width and "meta" in payload:  # the output quantizer's tag
                payload["meta"] = {**payload["meta"], "tag": meta}
            elif self.meta_width:
                payload["meta"] = meta
            raw.append(self.in_codec.encode(payload))
            self.scoreboard.expect(beat.expected, meta if self.meta_width else None)
            self.sent += 1
        self.driver.send(raw)

    async def wait_all(self, timeout_cycles: int) -> None:
        await within_cycles(self.monitor.wait_for(self.sent), timeout_cycles)

    def check(self) -> list[dict[str, Any]]:
        start = self.scoreboard.checked
        decoded = [self.out_codec.decode(bits) for bits in self.monitor.received[start:]]
        self.scoreboard.check(
            [got[self.field] for got in decoded], [got.get("meta") for got in decoded]
        )
        return decoded


class QuantizerTestbench:
    """Clock, reset, per-layer ports, and one :class:`BlockChannel` per block."""

    def __init__(
        self, dut: Any, config: dict[str, Any], *, input_pause: float, output_pause: float
    ) -> None:
        self.dut = dut
        self.engine = EngineConfig.from_dict(config["engine"])
        self.harness = QuantizerHarness(self.engine, meta_width=int(config.get("meta_width", 0)))
        self.seed = int(config.get("seed", 0))
        self.rng = random.Random(self.seed)
        self.gen = np.random.default_rng(self.seed)
        self._input_pause = input_pause
        self._output_pause = output_pause
        self.channels: dict[str, BlockChannel] = {}

    #: channel name -> (harness prefix, input port, output port, output field)
    CHANNELS = {
        "act_pow2": ("aqp", "i_v", "o_q", "data"),
        "act_fixed": ("aqf", "i_v", "o_q", "data"),
        "rescale": ("rs", "i_acc", "o_z", "data"),
        "outq": ("oq", "i_y", "o_out", "data"),
    }

    async def start(self) -> None:
        dut = self.dut
        dut.rs_clear.value = 0
        dut.oq_relu.value = 0
        dut.rs_rescale_shift.value = 0
        channels = self.CHANNELS.values()
        await start_clock_and_reset(
            dut,
            inputs=[f"{prefix}_{in_port}" for prefix, in_port, _, _ in channels],
            outputs=[f"{prefix}_{out_port}" for prefix, _, out_port, _ in channels],
        )
        self.channels = {
            name: BlockChannel(
                dut,
                name,
                f"{prefix}_{in_port}",
                f"{prefix}_{out_port}",
                self.harness.blocks[prefix],
                field,
                rng=self.rng,
                input_pause=self._input_pause,
                output_pause=self._output_pause,
            )
            for name, (prefix, in_port, out_port, field) in self.CHANNELS.items()
        }

    def set_layer(self, params: LayerQuant) -> str:
        """Per-layer ports (only between layers: every block is drained).

        Returns the name of the activation channel of the layer's scale mode.
        """
        mode = params.config.scale_mode
        prefix = {"pow2": "aqp", "fixed": "aqf"}[mode]
        act = self.harness.acts[mode]
        getattr(self.dut, f"{prefix}_act_shift").value = PayloadCodec(act.act_shift.shape()).encode(
            params.act_shift.tolist()
        )
        if act.has_multiplier:
            getattr(self.dut, f"{prefix}_act_mult").value = PayloadCodec(
                act.act_mult.shape()
            ).encode(params.act_mult.tolist())
        self.dut.rs_rescale_shift.value = params.rescale_shift
        self.dut.oq_relu.value = int(params.relu)
        return f"act_{mode}"

    async def run_beats(self, beats: dict[str, list[Beat]]) -> dict[str, list[dict[str, Any]]]:
        # The per-layer ports (set_layer) settle two cycles before the first beat: the
        # rescale registers its shift twice (clamped, then a copy per lane).
        await ClockCycles(self.dut.clk, 2)
        for name, block_beats in beats.items():
            self.channels[name].send(block_beats)
        timeout = 20 * max(len(b) for b in beats.values()) + 200
        for name in beats:
            await self.channels[name].wait_all(timeout)
        await ClockCycles(self.dut.clk, 2)
        return {name: self.channels[name].check() for name in beats}

    def overflow(self) -> int:
        return int(self.dut.rs_overflow.value)

    async def clear_overflow(self) -> None:
        await RisingEdge(self.dut.clk)
        self.dut.rs_clear.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.rs_clear.value = 0
        await RisingEdge(self.dut.clk)


# -- tests --------------------------------------------------------------------------------------


@cocotb.test()
async def golden_layers_with_stalls(dut: Any) -> None:
    """Random layers of both scale modes through the golden model: q, z and out tiles
    bit-exact, with random input pauses and output backpressure."""
    config = tb_config("engine")
    tb = QuantizerTestbench(
        dut,
        config,
        input_pause=float(config.get("input_pause", 0.3)),
        output_pause=float(config.get("output_pause", 0.4)),
    )
    await tb.start()
    counts = dict.fromkeys(tb.CHANNELS, 0)
    saturated = {"q": 0, "out": 0}
    relu_layers = 0
    a_lo, a_hi = signed_range(tb.engine.act_bits)
    o_lo, o_hi = signed_range(tb.engine.out_bits)
    for layer in config["layers"]:
        for mode in SCALE_MODES:
            engine = replace(tb.engine, scale_mode=mode)
            golden = GoldenLayer(engine, gen=tb.gen, **layer)
            act = tb.set_layer(golden.params)
            beats = {
                act: golden.act_beats(),
                "rescale": golden.rescale_beats(tb.harness.rescale.positions),
                "outq": golden.outq_beats(tb.harness.outq.outputs),
            }
            await tb.run_beats(beats)
            assert tb.overflow() == 0, "overflow set by a legal layer"
            for name, block_beats in beats.items():
                counts[name] += len(block_beats)
            q, out = golden.stages.q, golden.stages.out_tiles
            saturated["q"] += int(((q == a_lo) | (q == a_hi)).sum())
            saturated["out"] += int(((out == o_lo) | (out == o_hi)).sum())
            relu_layers += golden.params.relu
            dut._log.info(
                "%s layer cin=%d cout=%d rescale_shift=%d relu=%s: %s beats checked",
                mode,
                golden.params.cin,
                golden.params.cout,
                golden.params.rescale_shift,
                golden.params.relu,
                {name: len(b) for name, b in beats.items()},
            )
    assert saturated["q"] and saturated["out"], f"no saturation exercised: {saturated}"
    dut._log.info("seed %d: beats %s, saturated lanes %s", tb.seed, counts, saturated)
    tb_report(config, golden_beats=counts, saturated_lanes=saturated, relu_layers=relu_layers)


@cocotb.test()
async def overflow_flag_on_too_small_shift(dut: Any) -> None:
    """rescale_shift one below the minimum: the flag rises, z is clamped; clear resets it."""
    config = tb_config("engine")
    tb = QuantizerTestbench(dut, config, input_pause=0.2, output_pause=0.2)
    await tb.start()
    engine = tb.engine
    rescale = tb.harness.rescale
    m = rescale.positions
    cin = rescale.reduction_max  # the engine's longest accumulation (direct K^2 cin)
    bound = accumulation_bound(cin, engine.act_bits, engine.weight_bits)
    mult_max = (1 << engine.rescale_bits) - 1
    minimum = minimum_rescale_shift(cin, engine)
    _, z_hi = signed_range(engine.z_bits)

    def beats(shift: int) -> list[Beat]:
        accs = [np.full(m, bound), np.full(m, -bound), np.arange(m) - m // 2]
        result = []
        for acc in accs:
            exact = rshift_round(acc.astype(object) * mult_max, shift)
            result.append(
                Beat({"data": acc.tolist(), "mult": [mult_max] * m}, saturate(exact, engine.z_bits))
            )
        return result

    # At the minimum shift the extremes fit: no flag, top of z's range reached.
    dut.rs_rescale_shift.value = minimum
    got = await tb.run_beats({"rescale": beats(minimum)})
    assert tb.overflow() == 0
    assert max(abs(v) for v in got["rescale"][0]["data"]) > z_hi // 2
    # One below: the +bound beat exceeds z_bits, is clamped to z_hi and flagged.
    dut.rs_rescale_shift.value = minimum - 1
    got = await tb.run_beats({"rescale": beats(minimum - 1)})
    assert got["rescale"][0]["data"] == [z_hi] * m
    assert tb.overflow() == 1, "overflow not flagged"
    await ClockCycles(dut.clk, 5)
    assert tb.overflow() == 1, "overflow is not sticky"
    await tb.clear_overflow()
    assert tb.overflow() == 0, "clear did not reset overflow"
    dut.rs_rescale_shift.value = minimum
    await tb.run_beats({"rescale": beats(minimum)})
    assert tb.overflow() == 0
    tb_report(config, overflow_minimum_shift=minimum, overflow_cin=cin)


@cocotb.test()
async def one_beat_per_cycle(dut: Any) -> None:
    """No stalls: every block takes and gives one beat per cycle; measured latencies."""
    config = tb_config("engine")
    tb = QuantizerTestbench(dut, config, input_pause=0.0, output_pause=0.0)
    await tb.start()
    layer = dict(config["layers"][0])
    count = int(config.get("throughput_beats", 64))

    def repeat(beats: list[Beat]) -> list[Beat]:
        return [beats[k % len(beats)] for k in range(count)]

    beats: dict[str, list[Beat]] = {}
    for mode in SCALE_MODES:  # the fixed layer's rescale and relu ports stay set
        golden = GoldenLayer(replace(tb.engine, scale_mode=mode), gen=tb.gen, **layer)
        beats[tb.set_layer(golden.params)] = repeat(golden.act_beats())
    beats["rescale"] = repeat(golden.rescale_beats(tb.harness.rescale.positions))
    beats["outq"] = repeat(golden.outq_beats(tb.harness.outq.outputs))
    await tb.run_beats(beats)
    measured = {}
    for name, channel in tb.channels.items():
        in_cycles = channel.driver.handshake_cycles
        out_cycles = channel.monitor.handshake_cycles
        measured[name] = {
            "cycles_per_beat": (in_cycles[-1] - in_cycles[0] + 1) / len(in_cycles),
            "latency_cycles": out_cycles[0] - in_cycles[0],
            "output_cycles_per_beat": (out_cycles[-1] - out_cycles[0] + 1) / len(out_cycles),
        }
    dut._log.info("%d beats per block: %s", count, measured)
    tb_report(config, throughput=measured, throughput_beats=count)
    for name, values in measured.items():
        latency = tb.harness.blocks[tb.CHANNELS[name][0]].latency
        assert values["cycles_per_beat"] == 1.0, f"{name}: {values}"
        assert values["output_cycles_per_beat"] == 1.0, f"{name}: {values}"
        assert values["latency_cycles"] == latency, f"{name}: {values}"
