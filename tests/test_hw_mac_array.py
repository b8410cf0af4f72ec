# amaranth: UnusedElaboratable=no

"""Tests of sfc_hls.hw.mac_array: Amaranth simulation, then Verilator via cocotb."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from hypothesis import given
from hypothesis import strategies as st

from sfc_hls.datapath import accumulation_bound
from sfc_hls.hw.mac_array import MacArray
from sfc_hls.sim.amaranth_streams import (
    measure_transfers,
    random_gaps,
    run_testbenches,
    stream_through,
)

SIM_BUILD = Path(__file__).resolve().parents[1] / "sim_build"


# -- argument validation and derived widths -----------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"positions": 0}, ValueError, r"positions must be an int >= 1, got 0"),
        ({"positions": 4.0}, TypeError, r"positions must be an int >= 1, got float 4.0"),
        ({"positions": True}, TypeError, r"positions must be an int >= 1, got bool True"),
        ({"lanes": -1}, ValueError, r"lanes must be an int >= 1, got -1"),
        ({"lanes": "2"}, TypeError, r"lanes must be an int >= 1, got str '2'"),
        ({"act_bits": 1}, ValueError, r"act_bits must be an int >= 2, got 1"),
        ({"weight_bits": None}, TypeError, r"weight_bits must be an int >= 2, got NoneType None"),
        ({"cin_max": 0}, ValueError, r"cin_max must be an int >= 1, got 0"),
        ({"macs_per_dsp": 3}, ValueError, r"macs_per_dsp must be an int in \[1, 2\], got 3"),
        ({"macs_per_dsp": 2, "weight_bits": 10}, ValueError, r"macs_per_dsp=2 .* weight_bits=10"),
        ({"macs_per_dsp": 2, "target": "ecp5"}, ValueError, r"target='ecp5' needs macs_per_dsp=1"),
        ({"target": "ice40"}, ValueError, r"target must be one of \('xilinx', 'ecp5'\)"),
    ],
)
def test_rejects_bad_arguments(kwargs, error, match):
    args = {"positions": 4, "lanes": 2, "cin_max": 5} | kwargs
    with pytest.raises(error, match=match):
        MacArray(**args)


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        MacArray(4, 2, 8, 8, 5)


@pytest.mark.parametrize(
    ("act_bits", "weight_bits", "cin_max", "width"),
    [
        (8, 8, 1, 16),
        (8, 8, 5, 18),
        (8, 8, 64, 22),
        (8, 8, 127, 22),
        (8, 8, 128, 23),
        (4, 4, 1, 8),
        (8, 4, 3, 13),
    ],
)
def test_accumulator_width_known_values(act_bits, weight_bits, cin_max, width):
    assert (
        MacArray.accumulator_width(act_bits=act_bits, weight_bits=weight_bits, cin_max=cin_max)
        == width
    )


@given(act_bits=st.integers(2, 16), weight_bits=st.integers(2, 16), cin_max=st.integers(1, 4096))
def test_accumulator_width_is_the_smallest_that_holds_every_sum(act_bits, weight_bits, cin_max):
    width = MacArray.accumulator_width(act_bits=act_bits, weight_bits=weight_bits, cin_max=cin_max)
    a_min, a_max = -(2 ** (act_bits - 1)), 2 ** (act_bits - 1) - 1
    w_min, w_max = -(2 ** (weight_bits - 1)), 2 ** (weight_bits - 1) - 1
    largest = cin_max * a_min * w_min
    smallest = cin_max * min(a_min * w_max, a_max * w_min)
    assert -(2 ** (width - 1)) <= smallest and largest <= 2 ** (width - 1) - 1
    assert largest > 2 ** (width - 2) - 1  # one bit fewer overflows


def test_attributes_and_ports():
    array = MacArray(positions=132, lanes=8, cin_max=256)
    assert array.multipliers == array.dsp_multipliers == 132 * 8
    packed = MacArray(positions=132, lanes=5, cin_max=256, macs_per_dsp=2)
    assert (packed.multipliers, packed.dsp_multipliers, packed.pairs) == (132 * 5, 132 * 3, 2)
    assert array.acc_width == 24
    assert array.product_width == 16
    assert array.i_beat.payload.shape() == array.beat_layout
    assert array.o_acc.payload.shape() == array.acc_layout
    assert array.beat_layout.size == 132 * 8 + 8 * 132 * 8 + 2
    assert array.acc_layout.size == 8 * 132 * 24


# -- Amaranth simulation -------------------------------------------------------


def _beats(acts: np.ndarray, weights: np.ndarray) -> list[dict]:
    cin = len(acts)
    return [
        {
            "act": acts[ci].tolist(),
            "weights": weights[ci].tolist(),
            "first": int(ci == 0),
            "last": int(ci == cin - 1),
        }
        for ci in range(cin)
    ]


def _as_array(payload, lanes: int, positions: int) -> np.ndarray:
    return np.array([[payload[lane][k] for k in range(positions)] for lane in range(lanes)])


SMALL = {"positions": 4, "lanes": 2, "cin_max": 5}
#: One packed lane pair and an odd lane that multiplies alone.
PACKED = {"positions": 4, "lanes": 3, "cin_max": 5, "macs_per_dsp": 2}


@pytest.mark.parametrize("params", [SMALL, PACKED], ids=["one_mac_per_dsp", "packed"])
@pytest.mark.parametrize("seed", [1, 2], ids=lambda seed: f"seed{seed}")
def test_random_sums_with_gaps_and_backpressure(seed, params):
    dut = MacArray(**params)
    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    m, lanes, cin_max = params["positions"], params["lanes"], params["cin_max"]

    operands = []
    for value_a, value_w in [(-128, -128), (-128, 127), (127, -128), (127, 127)]:
        operands.append((np.full((cin_max, m), value_a), np.full((cin_max, lanes, m), value_w)))
    for _ in range(10):
        cin = int(gen.integers(1, cin_max + 1))
        operands.append(
            (gen.integers(-128, 128, (cin, m)), gen.integers(-128, 128, (cin, lanes, m)))
        )
    rng.shuffle(operands)
    beats = [beat for acts, weights in operands for beat in _beats(acts, weights)]
    expected = [np.einsum("ck,clk->lk", acts, weights) for acts, weights in operands]

    payloads = stream_through(
        dut,
        dut.i_beat,
        dut.o_acc,
        beats,
        results=len(expected),
        in_gap=random_gaps(rng, [0, 0, 0, 1, 3]),
        out_gap=random_gaps(rng, [0, 0, 1, 2, 6]),
        max_cycles=20 * len(beats) + 100,
    )
    received = [_as_array(payload, dut.lanes, dut.positions) for payload in payloads]
    for got, want in zip(received, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    bound = accumulation_bound(cin_max, 8, 8)
    assert bound == 5 * 128 * 128
    assert max(int(np.abs(got).max()) for got in received) == bound  # -128 * -128 summed


def test_latency_and_back_to_back_throughput():
    dut = MacArray(positions=2, lanes=1, cin_max=2)
    beats = [{"act": [i, -i], "weights": [[3, 5]], "first": 1, "last": 1} for i in range(1, 9)]
    transfers = measure_transfers(dut, dut.i_beat, dut.o_acc, beats)
    # One beat per clock edge, one result per cycle, each 2 cycles after its beat.
    assert transfers.in_ticks == list(range(1, len(beats) + 1))
    assert transfers.out_ticks == [tick + 2 for tick in transfers.in_ticks]


def test_backpressure_stalls_only_behind_a_finished_result():
    dut = MacArray(positions=2, lanes=1, cin_max=8)
    five_channels = _beats(np.ones((5, 2), int), np.ones((5, 1, 2), int))
    one_channel = _beats(np.ones((1, 2), int), np.ones((1, 1, 2), int))
    accepted_ticks: list[int] = []

    async def producer(ctx):
        ctx.set(dut.o_acc.ready, 0)  # never ready
        tick = 0
        for beat in five_channels + one_channel * 3:
            ctx.set(dut.i_beat.payload, beat)
            ctx.set(dut.i_beat.valid, 1)
            for _ in range(10):
                _, _, ready = await ctx.tick().sample(dut.i_beat.ready)
                tick += 1
                if ready:
                    accepted_ticks.append(tick)
                    break
            else:
                return  # stalled for 10 cycles

    run_testbenches(dut, producer, cycles=100)
    # The 5-beat accumulation streams in at one beat per cycle although o_acc is
    # not ready; once its result waits on o_acc, one more beat (the next
    # one-channel accumulation) is held as products and the input stalls.
    assert accepted_ticks == [1, 2, 3, 4, 5, 6]


# -- Verilator through cocotb --------------------------------------------------

#: Two packed lane pairs and an odd lane (macs_per_dsp=2 covers both kinds of lane).
VERILATOR_PARAMS = {"positions": 16, "lanes": 5, "cin_max": 64, "macs_per_dsp": 2}


@pytest.mark.parametrize("seed", [7], ids=lambda seed: f"seed{seed}")
def test_verilator_random_stalls_and_throughput(seed, tmp_path):
    from sfc_hls.sim.verilator import run_cocotb

    source = tmp_path / "mac_array.v"
    source.write_text(verilog.convert(MacArray(**VERILATOR_PARAMS), name="mac_array"))
    report = tmp_path / "report.json"
    result = run_cocotb(
        [source],
        "mac_array",
        "sfc_hls.sim.tb_mac_array",
        build_root=SIM_BUILD,
        seed=seed,
        config={
            "mac_array": VERILATOR_PARAMS,
            "accumulations": 40,
            "input_pause": 0.3,
            "output_pause": 0.4,
            "throughput_accumulations": 8,
            "report_file": str(report),
        },
    )
    assert set(result.tests) == {"random_data_with_stalls", "one_beat_per_cycle"}
    measured = json.loads(report.read_text())
    assert measured["beats"] == 8 * 64
    assert measured["cycles_per_beat"] <= 1.05
