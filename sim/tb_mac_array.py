"""cocotb tests of :class:`sfc_hls.hw.mac_array.MacArray` in Verilator.

Run through :func:`sfc_hls.sim.verilator.run_cocotb` with the Verilog of a
``MacArray`` whose constructor arguments are passed in the test configuration
(:func:`sfc_hls.sim.verilator.tb_config`)::

    {"mac_array": {"positions": 16, "lanes": 4, "cin_max": 64, ...},
     "seed": 1, "accumulations": 24, "input_pause": 0.3, "output_pause": 0.4,
     "throughput_accumulations": 6, "report_file": "/path/report.json"}

The payload layouts come from the ``MacArray`` object itself, so the bench and
the RTL share one definition of the ports.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from sfc_hls.datapath import accumulation_bound
from sfc_hls.hw.mac_array import MacArray
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


@dataclass(frozen=True)
class Accumulation:
    """One output tile: ``acts[ci][k]`` and ``weights[ci][lane][k]``."""

    acts: np.ndarray
    weights: np.ndarray


class MacArrayModel:
    """Bit-accurate reference: exact integer sums over input channels."""

    @staticmethod
    def accumulate(accumulation: Accumulation) -> np.ndarray:
        acts = accumulation.acts.astype(np.int64)
        weights = accumulation.weights.astype(np.int64)
        return np.einsum("ck,clk->lk", acts, weights)


class MacArrayTestbench:
    """Clock, reset, driver on ``i_beat``, monitor on ``o_acc``, model and scoreboard."""

    def __init__(
        self,
        dut: Any,
        params: dict[str, Any],
        *,
        rng: random.Random,
        input_pause: float = 0.0,
        output_pause: float = 0.0,
    ) -> None:
        self.dut = dut
        self.array = MacArray(**params)
        self.beat_codec = PayloadCodec(self.array.beat_layout)
        self.acc_codec = PayloadCodec(self.array.acc_layout)
        self.rng = rng
        self.scoreboard = Scoreboard("result", "acc")
        self._input_pause = input_pause
        self._output_pause = output_pause
        self.driver: StreamDriver | None = None
        self.monitor: StreamMonitor | None = None
        self.beats_sent = 0

    async def start(self) -> None:
        await start_clock_and_reset(self.dut, inputs=["i_beat"], outputs=["o_acc"])
        pauses = random_pauses(self.rng, self._input_pause)
        self.driver = StreamDriver(self.dut, "i_beat", self.dut.clk, pauses=pauses)
        pauses = random_pauses(self.rng, self._output_pause)
        self.monitor = StreamMonitor(self.dut, "o_acc", self.dut.clk, pauses=pauses)

    def encode(self, accumulation: Accumulation) -> list[int]:
        """Raw beats of one accumulation (input channel ``ci`` per beat)."""
        cin = len(accumulation.acts)
        return [
            self.beat_codec.encode(
                {
                    "act": accumulation.acts[ci].tolist(),
                    "weights": accumulation.weights[ci].tolist(),
                    "first": int(ci == 0),
                    "last": int(ci == cin - 1),
                }
            )
            for ci in range(cin)
        ]

    def send(self, beats: list[int], expected: np.ndarray) -> None:
        assert self.driver is not None, "start() first"
        self.driver.send(beats)
        self.beats_sent += len(beats)
        self.scoreboard.expect(expected)

    async def finish(self, timeout_cycles: int) -> list[np.ndarray]:
        """Wait for all results, check them, return them decoded."""
        assert self.monitor is not None, "start() first"
        await within_cycles(self.monitor.wait_for(len(self.scoreboard.expected)), timeout_cycles)
        await ClockCycles(self.dut.clk, 4)
        received = [np.array(self.acc_codec.decode(bits)) for bits in self.monitor.received]
        self.scoreboard.check(received)
        return received

    def random_accumulation(self, cin: int, gen: np.random.Generator) -> Accumulation:
        a = self.array
        a_lo, a_hi = -(2 ** (a.act_bits - 1)), 2 ** (a.act_bits - 1)
        w_lo, w_hi = -(2 ** (a.weight_bits - 1)), 2 ** (a.weight_bits - 1)
        return Accumulation(
            acts=gen.integers(a_lo, a_hi, size=(cin, a.positions)),
            weights=gen.integers(w_lo, w_hi, size=(cin, a.lanes, a.positions)),
        )

    def extreme_accumulations(self) -> list[Accumulation]:
        """All-minimum, min x max and all-maximum operands over ``cin_max`` channels."""
        a = self.array
        shape_a = (a.cin_max, a.positions)
        shape_w = (a.cin_max, a.lanes, a.positions)
        a_min, a_max = -(2 ** (a.act_bits - 1)), 2 ** (a.act_bits - 1) - 1
        w_min, w_max = -(2 ** (a.weight_bits - 1)), 2 ** (a.weight_bits - 1) - 1
        return [
            Accumulation(np.full(shape_a, a_min), np.full(shape_w, w_min)),
            Accumulation(np.full(shape_a, a_min), np.full(shape_w, w_max)),
            Accumulation(np.full(shape_a, a_max), np.full(shape_w, w_min)),
            Accumulation(np.full(shape_a, a_max), np.full(shape_w, w_max)),
        ]


@cocotb.test()
async def random_data_with_stalls(dut: Any) -> None:
    """Random accumulations of 1..cin_max channels plus extremes, with stalls on both sides."""
    config = tb_config("mac_array")
    seed = int(config.get("seed", 0))
    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    tb = MacArrayTestbench(
        dut,
        config["mac_array"],
        rng=rng,
        input_pause=float(config.get("input_pause", 0.3)),
        output_pause=float(config.get("output_pause", 0.4)),
    )
    await tb.start()

    model = MacArrayModel()
    accumulations = [tb.random_accumulation(1, gen), *tb.extreme_accumulations()]
    for _ in range(int(config.get("accumulations", 16))):
        cin = int(gen.integers(1, tb.array.cin_max + 1))
        accumulations.append(tb.random_accumulation(cin, gen))
    gen.shuffle(accumulations)
    for accumulation in accumulations:
        tb.send(tb.encode(accumulation), model.accumulate(accumulation))

    received = await tb.finish(timeout_cycles=20 * tb.beats_sent + 1000)
    bound = accumulation_bound(tb.array.cin_max, tb.array.act_bits, tb.array.weight_bits)
    assert max(int(np.abs(result).max()) for result in received) == bound
    dut._log.info(
        "%d accumulations, %d beats checked (seed %d)",
        len(accumulations),
        tb.beats_sent,
        seed,
    )


@cocotb.test()
async def one_beat_per_cycle(dut: Any) -> None:
    """Without stalls, back-to-back cin_max-channel accumulations take one cycle per beat."""
    config = tb_config("mac_array")
    seed = int(config.get("seed", 0))
    gen = np.random.default_rng(seed + 1)
    tb = MacArrayTestbench(dut, config["mac_array"], rng=random.Random(seed))
    await tb.start()

    model = MacArrayModel()
    count = int(config.get("throughput_accumulations", 6))
    for _ in range(count):
        accumulation = tb.random_accumulation(tb.array.cin_max, gen)
        tb.send(tb.encode(accumulation), model.accumulate(accumulation))
    await tb.finish(timeout_cycles=4 * tb.beats_sent + 100)

    assert tb.driver is not None and tb.monitor is not None  # started
    in_cycles = tb.driver.handshake_cycles
    cycles_per_beat = (in_cycles[-1] - in_cycles[0] + 1) / len(in_cycles)
    out_cycles = tb.monitor.handshake_cycles
    result_spacing = (out_cycles[-1] - out_cycles[0]) / max(1, len(out_cycles) - 1)
    dut._log.info(
        "%d beats in %d accumulations: %.3f cycles per beat, a result every %.1f cycles",
        len(in_cycles),
        count,
        cycles_per_beat,
        result_spacing,
    )
    tb_report(
        config,
        beats=len(in_cycles),
        accumulations=count,
        cycles_per_beat=cycles_per_beat,
        result_spacing_cycles=result_spacing,
    )
    assert cycles_per_beat <= 1.05, f"{cycles_per_beat:.3f} cycles per beat"
