"""cocotb tests of :mod:`sfc_hls.hw.transform` units in Verilator, against the golden model.

Run through :func:`sfc_hls.sim.verilator.run_cocotb` with the Verilog of an
``InputTransform`` or ``OutputTransform``; the test configuration
(:func:`sfc_hls.sim.verilator.tb_config`) names the unit and the layer whose
golden stages are the test vectors::

    {"unit": {"kind": "input", "algorithm": "sfc6-7x7-3x3", "in_bits": 8, "meta_layout": 5},
     "layer": {"batch": 2, "cin": 4, "cout": 4, "size": 21},
     "seed": 3, "input_pause": 0.3, "output_pause": 0.4, "report_file": "/path/report.json"}

``kind`` is ``"input"`` (``B^T``: feeds ``stages.tiles``, expects ``stages.v``)
or ``"output"`` (``A^T``, with ``"z_bits"``: feeds ``stages.z``, expects
``stages.y``).  The engine configuration of the layer is
``EngineConfig(algorithm=..., z_bits=...)``.  Besides the golden vectors every
row's two extreme inputs (each input at the end of its range that drives the
row to its minimum or maximum) are sent; they must give exactly the row's
bound.  The unit object is rebuilt here from the same arguments, so the
payload layouts and widths come from one definition.
"""

from __future__ import annotations

import random
from typing import Any

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import random_layer_quant
from sfc_hls.golden import conv2d_int8
from sfc_hls.hw.transform import AdderNetworkUnit, InputTransform, OutputTransform
from sfc_hls.sim.streams import (
    Scoreboard,
    StreamDriver,
    StreamMonitor,
    random_pauses,
    start_clock_and_reset,
    within_cycles,
)
from sfc_hls.sim.verilator import tb_config, tb_report


def build_unit(params: dict[str, Any]) -> AdderNetworkUnit:
    """The unit described by the ``"unit"`` entry of the configuration."""
    params = dict(params)
    kind = params.pop("kind")
    if kind == "input":
        return InputTransform(params.pop("algorithm"), **params)
    if kind == "output":
        return OutputTransform(params.pop("algorithm"), **params)
    raise ValueError(f"unit kind must be 'input' or 'output', not {kind!r}")


class VectorCodec:
    """Packs ``(data, meta)`` into the flat payload bits of a unit's stream and back.

    Bit-compatible with the unit's ``StructLayout`` (``data`` elements from bit
    0 up, ``meta`` above), checked against Amaranth's own ``layout.const`` once;
    done here with integer arithmetic because the payloads are thousands of
    bits wide.
    """

    def __init__(self, layout: Any, width: int, count: int) -> None:
        self.layout = layout
        self.width = width
        self.count = count
        self.data_bits = width * count
        self.has_meta = "meta" in {name for name, _ in layout}

    def encode(self, data: np.ndarray, meta: int = 0) -> int:
        mask = (1 << self.width) - 1
        bits = 0
        for k, value in enumerate(int(v) for v in data):
            bits |= (value & mask) << (k * self.width)
        if self.has_meta:
            bits |= meta << self.data_bits
        return bits

    def decode(self, bits: int) -> tuple[np.ndarray, int]:
        mask = (1 << self.width) - 1
        half = 1 << (self.width - 1)
        values = [(((bits >> (k * self.width)) & mask) ^ half) - half for k in range(self.count)]
        meta = bits >> self.data_bits if self.has_meta else 0
        return np.array(values, dtype=object), meta

    def self_check(self, data: np.ndarray, meta: int) -> None:
        value: dict[str, Any] = {"data": [int(v) for v in data]}
        if self.has_meta:
            value["meta"] = meta
        assert self.layout.const(value).as_bits() == self.encode(data, meta), "codec mismatch"


class GoldenVectors:
    """Reference model: one random layer through :func:`sfc_hls.golden.conv2d_int8`.

    ``inputs``/``expected`` are the unit's rows of the golden stages (tiles and
    ``v`` for ``B^T``; ``z`` and ``y`` for ``A^T``).
    """

    def __init__(self, unit: AdderNetworkUnit, kind: str, layer: dict[str, int], seed: int):
        gen = np.random.default_rng(seed)
        algo = unit.algo
        config = EngineConfig(algorithm=algo.name, z_bits=getattr(unit, "z_bits", 24))
        params = random_layer_quant(config, layer["cin"], layer["cout"], gen)
        size = layer["size"]
        x = gen.integers(-128, 128, size=(layer["batch"], layer["cin"], size, size))
        _, stages = conv2d_int8(x, params, return_stages=True)
        if kind == "input":
            self.inputs = stages.tiles.reshape(-1, unit.n_inputs)
            self.expected = stages.v.reshape(-1, unit.n_rows)
        else:
            self.inputs = stages.z.reshape(-1, unit.n_inputs)
            self.expected = stages.y.reshape(-1, unit.n_rows)
        self.matrix = unit.network.to_matrix().astype(int)

    def extremes(self, in_width: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the inputs reaching its maximum, then those reaching its minimum."""
        lo, hi = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
        to_max = np.where(self.matrix > 0, hi, lo)
        to_min = np.where(self.matrix > 0, lo, hi)
        inputs = np.concatenate([to_max, to_min]).astype(object)
        return inputs, inputs @ self.matrix.T.astype(object)


class TransformTestbench:
    """Clock, reset, driver on ``i_x``, monitor on ``o_y``, codecs and scoreboard."""

    def __init__(self, dut: Any, config: dict[str, Any], *, pauses: bool) -> None:
        self.dut = dut
        self.config = config
        self.kind = config["unit"]["kind"]
        self.unit = build_unit(config["unit"])
        self.rng = random.Random(int(config.get("seed", 0)))
        self.in_codec = VectorCodec(self.unit.i_layout, self.unit.in_width, self.unit.n_inputs)
        self.out_codec = VectorCodec(self.unit.o_layout, self.unit.out_width, self.unit.n_rows)
        self.scoreboard = Scoreboard("vector", "y")
        self.input_pause = float(config.get("input_pause", 0.3)) if pauses else 0.0
        self.output_pause = float(config.get("output_pause", 0.4)) if pauses else 0.0
        self.driver: StreamDriver | None = None
        self.monitor: StreamMonitor | None = None
        self.sent = 0

    async def start(self) -> None:
        await start_clock_and_reset(self.dut, inputs=["i_x"], outputs=["o_y"])
        in_pauses = random_pauses(self.rng, self.input_pause)
        out_pauses = random_pauses(self.rng, self.output_pause)
        self.driver = StreamDriver(self.dut, "i_x", self.dut.clk, pauses=in_pauses)
        self.monitor = StreamMonitor(self.dut, "o_y", self.dut.clk, pauses=out_pauses)

    def send(self, inputs: np.ndarray, expected: np.ndarray) -> None:
        meta_mod = 1 << self.unit.meta_width
        payloads = []
        for row_in, row_out in zip(inputs, expected, strict=True):
            meta = (self.sent * 7 + 3) % meta_mod if self.unit.meta_width else 0
            payloads.append(self.in_codec.encode(row_in, meta))
            self.scoreboard.expect(row_out, meta)
            self.sent += 1
        self.in_codec.self_check(inputs[0], 0)
        assert self.driver is not None, "start() first"
        self.driver.send(payloads)

    async def finish(self, timeout_cycles: int) -> list[tuple[np.ndarray, int]]:
        """Wait for every result, check them all, return them decoded."""
        assert self.monitor is not None, "start() first"
        await within_cycles(self.monitor.wait_for(len(self.scoreboard.expected)), timeout_cycles)
        await ClockCycles(self.dut.clk, 4)
        received = [self.out_codec.decode(bits) for bits in self.monitor.received]
        self.scoreboard.check([data for data, _ in received], [meta for _, meta in received])
        return received


@cocotb.test()
async def golden_stages_with_stalls(dut: Any) -> None:
    """Golden-model vectors and every row's extremes, with random input gaps and backpressure."""
    config = tb_config("unit", "layer")
    seed = int(config.get("seed", 0))
    tb = TransformTestbench(dut, config, pauses=True)
    await tb.start()
    golden = GoldenVectors(tb.unit, tb.kind, config["layer"], seed)
    tb.send(golden.inputs, golden.expected)
    extreme_in, extreme_out = golden.extremes(tb.unit.in_width)
    lo, hi = tb.unit.out_range
    rows = tb.unit.n_rows
    assert np.array_equal(np.diagonal(extreme_out[:rows]), hi)  # vector r maximizes row r
    assert np.array_equal(np.diagonal(extreme_out[rows:]), lo)
    tb.send(extreme_in, extreme_out)
    await tb.finish(timeout_cycles=20 * tb.sent + 200)
    dut._log.info(
        "%d golden and %d extreme vectors checked (seed %d)",
        len(golden.inputs),
        len(extreme_in),
        seed,
    )
    tb_report(config, golden_vectors=len(golden.inputs), extreme_vectors=len(extreme_in))


@cocotb.test()
async def one_beat_per_cycle(dut: Any) -> None:
    """Without stalls a vector is accepted every cycle and results follow after ``latency``."""
    config = tb_config("unit", "layer")
    tb = TransformTestbench(dut, config, pauses=False)
    await tb.start()
    gen = np.random.default_rng(int(config.get("seed", 0)) + 1)
    lo, hi = -(1 << (tb.unit.in_width - 1)), 1 << (tb.unit.in_width - 1)
    count = int(config.get("throughput_vectors", 64))
    inputs = gen.integers(lo, hi, size=(count, tb.unit.n_inputs)).astype(object)
    matrix = tb.unit.network.to_matrix().astype(int).astype(object)
    tb.send(inputs, inputs @ matrix.T)
    await tb.finish(timeout_cycles=4 * count + 100)

    assert tb.driver is not None and tb.monitor is not None  # started
    in_cycles = tb.driver.handshake_cycles
    out_cycles = tb.monitor.handshake_cycles
    cycles_per_beat = (in_cycles[-1] - in_cycles[0] + 1) / len(in_cycles)
    out_per_beat = (out_cycles[-1] - out_cycles[0] + 1) / len(out_cycles)
    latency = out_cycles[0] - in_cycles[0]
    dut._log.info(
        "%d vectors: %.3f cycles per input, %.3f per output, latency %d cycles",
        count,
        cycles_per_beat,
        out_per_beat,
        latency,
    )
    tb_report(
        config,
        vectors=count,
        cycles_per_beat=cycles_per_beat,
        output_cycles_per_beat=out_per_beat,
        latency=latency,
    )
    assert cycles_per_beat == 1.0, f"{cycles_per_beat:.3f} cycles per input vector"
    assert out_per_beat == 1.0, f"{out_per_beat:.3f} cycles per output vector"
    assert latency == tb.unit.latency, f"latency {latency}, the unit states {tb.unit.latency}"
