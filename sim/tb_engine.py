"""cocotb tests of the whole conv engine against the golden model.

Run through :func:`sfc_hls.sim.verilator.run_cocotb` (see
:mod:`sfc_hls.sim.engine_regression`) with a configuration::

    {"engine": {EngineConfig fields}, "layers": [{"params": "l0.json", "input": "l0.npy"}, ...],
     "seed": 1, "input_pause": 0.2, "output_pause": 0.3, "report_file": "report.json"}

Pieces, as in cocotbext-axi: one :class:`~sfc_hls.sim.streams.StreamDriver`
per input stream, a :class:`~sfc_hls.sim.streams.StreamMonitor` on ``o_out``,
the golden model (:func:`sfc_hls.golden.conv2d_int8`) as the reference and a
:class:`~sfc_hls.sim.streams.Scoreboard` comparing whole output feature maps exactly.  The host
side of the protocol is :class:`sfc_hls.hw.engine_streams.EngineStreams`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant
from sfc_hls.golden import conv2d_int8
from sfc_hls.hw.descriptor import DescriptorRegisters
from sfc_hls.hw.engine_streams import EngineStreams, pack
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.hw.register_map import REGISTERS, START
from sfc_hls.sim.streams import (
    Scoreboard,
    StreamDriver,
    StreamMonitor,
    apply_reset,
    random_pauses,
    start_clock_and_reset,
    within_cycles,
)
from sfc_hls.sim.verilator import tb_config, tb_report

INPUT_STREAMS = ("i_cfg", "i_chan", "i_weight", "i_act")


@dataclass
class LayerResult:
    name: str
    batch: int
    cin: int
    cout: int
    height: int
    width: int
    tiles: int
    act_beats: int
    cycles: int
    group_cycles_per_beat: list[float] = field(default_factory=list)
    bit_exact: bool = False
    seconds: float = 0.0  # wall time of the layer: packing, simulation, golden comparison
    mode: str = "fast"  # "fast", or "direct KxK/S"
    spatial_weights: bool = False  # i_weight carried spatial weights (a weight-transform engine)
    act_replay: bool = False  # i_act carried one group's beats, replayed on chip


class EngineTestbench:
    """Clock, reset, drivers, monitor, reference model and scoreboard for one engine."""

    def __init__(self, dut: Any, config: dict[str, Any]) -> None:
        self.dut = dut
        self.config = config
        self.engine_config = EngineConfig.from_dict(config["engine"])
        self.interface = EngineInterface.from_config(self.engine_config)
        self.streams = EngineStreams(self.interface)
        self.rng = random.Random(int(config.get("seed", 0)))
        self.scoreboard = Scoreboard("output map", "out")
        self.drivers: dict[str, StreamDriver] = {}
        # i_map: engines with a feature-map buffer (stride-1 fast layers send their map there)
        self.input_streams = INPUT_STREAMS + (("i_map",) if self.engine_config.map_kib else ())
        self.monitor: StreamMonitor | None = None

    @property
    def cycle(self) -> int:
        """Clock cycles since the stream drivers started (the stream hub's count)."""
        return self.monitor.hub.cycle if self.monitor is not None else 0

    async def start(self, *, input_pause: float = 0.0, output_pause: float = 0.0) -> None:
        await start_clock_and_reset(self.dut, inputs=self.input_streams, outputs=["o_out"])
        for name in self.input_streams:
            # Configuration writes never pause: pauses go on the data streams.
            pause = 0.0 if name == "i_cfg" else input_pause
            pauses = random_pauses(self.rng, pause)
            self.drivers[name] = StreamDriver(self.dut, name, self.dut.clk, pauses=pauses)
        pauses = random_pauses(self.rng, output_pause)
        self.monitor = StreamMonitor(self.dut, "o_out", self.dut.clk, pauses=pauses)

    async def reset(self, cycles: int = 3) -> None:
        await apply_reset(self.dut, cycles)

    async def wait_idle(self, limit: int = 1000) -> dict[str, int]:
        """Wait (bounded) until the engine reports not busy; returns the status."""
        for _ in range(limit):
            status = self.status()
            if not status["busy"]:
                return status
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"engine still busy {limit} cycles after its last output")

    def status(self) -> dict[str, int]:
        raw = self.dut.status.value.to_unsigned()
        layout = self.interface.layouts["status"]
        return {name: (raw >> f.offset) & ((1 << f.width) - 1) for name, f in layout}

    def send_layer(self, params: LayerQuant, x: np.ndarray, stride: int = 1):
        beats = self.streams.layer_beats(params, x, stride=stride)
        for name, payloads in beats.inputs().items():
            self.drivers[name].send(payloads)
        return beats

    async def run_layer(
        self, name: str, params: LayerQuant, x: np.ndarray, stride: int = 1
    ) -> LayerResult:
        """Send one layer, collect its outputs, compare with the golden model."""
        assert self.monitor is not None, "start() first"
        t0 = time.perf_counter()
        act = self.drivers["i_act"]
        first_act = len(act.handshake_cycles)
        start_cycle = self.cycle
        self.monitor.clear()
        beats = self.send_layer(params, x, stride)
        await within_cycles(self.monitor.wait_for(beats.expected_outputs), layer_timeout(beats))
        cycles = self.cycle - start_cycle
        await ClockCycles(self.dut.clk, 2)
        n, _, h, w = x.shape
        got = self.streams.assemble(list(self.monitor.received), params, n, h, w,
                                    stride=stride, schedule=beats.schedule)  # fmt: skip
        want = conv2d_int8(x, params, stride=stride)
        ok = self.scoreboard.compare(name, got, want)
        # Steady-state throughput per group: act beats / cycles between first and last.
        hs = act.handshake_cycles[first_act:]
        per_group = len(hs) // beats.groups
        group_cpb = []
        for g in range(beats.groups):
            chunk = hs[g * per_group : (g + 1) * per_group]
            if len(chunk) > 1:
                group_cpb.append((chunk[-1] - chunk[0]) / (len(chunk) - 1))
        return LayerResult(
            name=name,
            batch=int(x.shape[0]),
            cin=params.cin,
            cout=params.cout,
            height=int(x.shape[2]),
            width=int(x.shape[3]),
            tiles=beats.tiles,
            act_beats=len(beats.act),
            cycles=cycles,
            group_cycles_per_beat=group_cpb,
            bit_exact=ok,
            seconds=time.perf_counter() - t0,
            mode=_mode_text(params, stride),
            spatial_weights=beats.spatial_weights,
            act_replay=beats.act_replay,
        )


def _load_layers(config: dict[str, Any]) -> list[tuple[str, LayerQuant, np.ndarray, int]]:
    layers = []
    for k, entry in enumerate(config["layers"]):
        params = LayerQuant.load(entry["params"])
        x = np.load(entry["input"])
        layers.append((entry.get("name", f"layer{k}"), params, x, int(entry.get("stride", 1))))
    return layers


def _mode_text(params: LayerQuant, stride: int) -> str:
    if params.mode == "direct":
        return f"direct {params.kernel}x{params.kernel}/{stride}"
    return "fast"


def layer_timeout(beats: Any) -> int:
    """A generous cycle budget of one layer (stalls on every stream included).  A layer
    with map input computes as many tile beats as ``i_act`` would carry: ``TILES`` per
    weight row (fast mode)."""
    tile_beats = len(beats.act) or beats.tiles * len(beats.weight)
    return (
        20 * (tile_beats + len(beats.map) + len(beats.weight) + len(beats.chan)
              + beats.expected_outputs)
        + 5000
    )  # fmt: skip


@cocotb.test()
async def layers_bit_exact(dut: Any) -> None:
    """Every configured layer, with random stalls on all streams, equals the golden model."""
    config = tb_config()
    tb = EngineTestbench(dut, config)
    await tb.start(
        input_pause=float(config.get("input_pause", 0.0)),
        output_pause=float(config.get("output_pause", 0.0)),
    )
    results = []
    for name, params, x, stride in _load_layers(config):
        res = await tb.run_layer(name, params, x, stride)
        dut._log.info(
            "%s: cin=%d cout=%d %dx%d, %d tiles, %d cycles, bit-exact %s",
            name, res.cin, res.cout, res.height, res.width, res.tiles, res.cycles, res.bit_exact,
        )  # fmt: skip
        results.append(res.__dict__)
    status = await tb.wait_idle()
    tb_report(config, layers=results, status=status)
    assert not tb.scoreboard.mismatches, "; ".join(tb.scoreboard.mismatches)
    assert status["desc_error"] == 0 and status["overflow"] == 0, status
    assert status["layers_done"] == len(results), status


@cocotb.test()
async def reset_mid_layer_then_clean_layer(dut: Any) -> None:
    """In each layer mode: reset while a layer is half done; the next layer must be exact."""
    config = tb_config()
    tb = EngineTestbench(dut, config)
    await tb.start(input_pause=0.1, output_pause=0.1)
    assert tb.monitor is not None  # started
    layers = _load_layers(config)
    results = []
    for mode in dict.fromkeys(params.mode for _, params, _, _ in layers):
        same_mode = [layer for layer in layers if layer[1].mode == mode]
        _, params, x, stride = same_mode[0]
        beats = tb.send_layer(params, x, stride)
        await within_cycles(
            tb.monitor.wait_for(max(1, beats.expected_outputs // 2)), layer_timeout(beats)
        )
        await RisingEdge(dut.clk)  # leave the ReadOnly phase before driving signals
        for driver in tb.drivers.values():
            driver.flush()
        await tb.reset(5)
        tb.monitor.clear()
        assert tb.status()["busy"] == 0
        name, params, x, stride = same_mode[-1]
        res = await tb.run_layer(name + "_after_reset", params, x, stride)
        results.append(res.__dict__)
        assert res.bit_exact, tb.scoreboard.mismatches
    tb_report(config, resets=results)


def bad_descriptors(interface: Any) -> dict[str, list[tuple[int, int]]]:
    """Register writes of descriptors the engine must refuse, one per rule, both modes."""
    limits = interface.limits
    good = [(REGISTERS["COUT"], 1), (REGISTERS["TILES"], 1)]
    bad_replicas = next(r for r in range(2, interface.blocks + 2) if interface.blocks % r)
    direct = [(REGISTERS["MODE"], 1), (REGISTERS["CIN"], 1)]
    return {
        "cin_above_cin_max": [(REGISTERS["CIN"], limits["cin"] + 1), *good],
        "direct_taps_times_cin_above_limit": [
            (REGISTERS["MODE"], 1), (REGISTERS["CIN"], 2), *good,
            (REGISTERS["TAPS"], limits["direct_reduction"] // 2 + 1), (REGISTERS["REPLICAS"], 1),
        ],
        "direct_replicas_not_a_divisor": [
            *direct, *good, (REGISTERS["TAPS"], 1), (REGISTERS["REPLICAS"], bad_replicas),
        ],
        "direct_zero_taps": [*direct, *good, (REGISTERS["TAPS"], 0), (REGISTERS["REPLICAS"], 1)],
        **_bad_map_descriptors(interface, good),
        **({"spatial_weights_in_direct_mode": [
            *direct, *good, (REGISTERS["TAPS"], 1), (REGISTERS["REPLICAS"], 1),
            (REGISTERS["SPATIAL_WEIGHTS"], 1),
        ]} if interface.config.weight_transform else {}),
    }  # fmt: skip


def _bad_map_descriptors(interface: Any, good: list) -> dict[str, list[tuple[int, int]]]:
    """Map-input descriptors the engine must refuse (engines with a feature-map buffer)."""
    if not interface.config.map_kib:
        return {}
    shape = [(REGISTERS["IMAGES"], 1), (REGISTERS["HEIGHT"], 4), (REGISTERS["WIDTH"], 4)]
    fast = [(REGISTERS["MODE"], 0), (REGISTERS["CIN"], 1), (REGISTERS["MAP_INPUT"], 1)]
    return {
        "map_input_in_direct_mode": [
            (REGISTERS["MODE"], 1), (REGISTERS["CIN"], 1), (REGISTERS["TAPS"], 1),
            (REGISTERS["REPLICAS"], 1), (REGISTERS["MAP_INPUT"], 1), *good, *shape,
        ],
        "map_zero_height": [*fast, *good, *shape, (REGISTERS["HEIGHT"], 0)],
        "map_padding_above_limit": [
            *fast, *good, *shape, (REGISTERS["PADDING"], interface.limits["padding"] + 1),
        ],
    }  # fmt: skip


@cocotb.test()
async def bad_descriptor_is_flagged(dut: Any) -> None:
    """Descriptors beyond the limits (both modes) do not start a layer; the status says so,
    and a good layer afterwards runs and clears the error."""
    config = tb_config()
    tb = EngineTestbench(dut, config)
    await tb.start()
    statuses = {}
    for label, writes in bad_descriptors(tb.interface).items():
        writes = [*writes, (REGISTERS["CONTROL"], START)]
        tb.drivers["i_cfg"].send(
            pack(
                tb.interface.layouts["cfg"],
                {
                    "addr": np.array([a for a, _ in writes]),
                    "data": np.array([d for _, d in writes]),
                },
            )  # fmt: skip
        )
        await tb.drivers["i_cfg"].wait_idle()
        # The START's commit (and its error flag) after START_DELAY cycles, and one more.
        await ClockCycles(dut.clk, DescriptorRegisters.START_DELAY + 1)
        statuses[label] = status = tb.status()
        assert status["desc_error"] == 1 and status["busy"] == 0, (label, status)
    tb_report(config, bad_descriptor_status=statuses)
    for name, params, x, stride in _load_layers(config)[-2:]:  # one layer of each mode
        res = await tb.run_layer(name, params, x, stride)
        assert res.bit_exact, tb.scoreboard.mismatches
        assert (await tb.wait_idle())["desc_error"] == 0
