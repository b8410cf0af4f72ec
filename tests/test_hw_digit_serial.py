# amaranth: UnusedElaboratable=no

"""Tests of sfc_hls.hw.digit_serial: the digit plan, the bit-true model, Amaranth simulation."""

from __future__ import annotations

import random

import numpy as np
import pytest

from sfc_hls.catalog import get_algorithm
from sfc_hls.config import EngineConfig
from sfc_hls.hw.digit_serial import DigitPlan, DigitSerialTransform, best_digits
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.hw.transform import adder_netlist
from sfc_hls.sim.amaranth_streams import (
    measure_transfers,
    random_gaps,
    run_testbenches,
    stream_through,
)


def _unit(name: str, *, in_width: int, digits: int, meta: int | None = 3, aps: int = 1):
    network = get_algorithm(name).output_adder_network
    return DigitSerialTransform(
        network, in_width=in_width, digits=digits, meta_layout=meta, adds_per_stage=aps
    )


def _matrix(unit: DigitSerialTransform) -> np.ndarray:
    return unit.network_unit.network.to_matrix().astype(int)


def _extremes(matrix: np.ndarray, in_width: int) -> np.ndarray:
    """Per row: inputs driving it to its maximum, then those driving it to its minimum."""
    lo, hi = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
    return np.concatenate([np.where(matrix > 0, hi, lo), np.where(matrix > 0, lo, hi)])


# -- the digit plan --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "digits", "digit_bits", "top_bits", "net_width"),
    [
        (20, 1, 20, 20, 20),
        (20, 2, 10, 10, 11),
        (20, 3, 7, 6, 8),
        (20, 4, 5, 5, 6),
        (24, 4, 6, 6, 7),
        (5, 5, 1, 1, 2),
    ],
)
def test_plan_widths(width, digits, digit_bits, top_bits, net_width):
    plan = DigitPlan(width, digits)
    assert (plan.digit_bits, plan.top_bits, plan.net_width) == (digit_bits, top_bits, net_width)
    # The fields tile the input exactly, most significant first.
    assert sum(bits for _, bits in plan.fields) == width
    assert plan.fields[0][0] + plan.fields[0][1] == width and plan.fields[-1][0] == 0


def test_plan_split_joins_back_for_every_value_of_a_small_width():
    plan = DigitPlan(10, 4)  # 3-bit digits under a 1-bit (signed) top digit
    assert plan.top_bits == 1
    x = np.arange(-512, 512, dtype=object)
    digits = plan.split(x)
    joined = digits[0]
    for d in digits[1:]:
        joined = joined * (1 << plan.digit_bits) + d
    assert list(joined) == list(x)
    lo, hi = plan.digit_range
    assert all(lo <= v <= hi for d in digits for v in d)


def test_plan_refuses_a_cut_with_no_top_bit():
    with pytest.raises(ValueError, match=r"digits=6 cuts a 20-bit input into 4-bit digits"):
        DigitPlan(20, 6)
    assert best_digits(20, 12, 6) == 5  # 6 is skipped, not refused


@pytest.mark.parametrize(("interval_max", "expected"), [(1, 1), (2, 1), (3, 2), (5, 4), (12, 4)])
def test_best_digits_keeps_up_with_the_tile_rate(interval_max, expected):
    assert best_digits(20, interval_max, 4) == expected


# -- the bit-true model -----------------------------------------------------------------


@pytest.mark.parametrize("digits", [1, 2, 3, 4, 5])
def test_model_is_exact_at_the_extremes_and_on_random_inputs(digits):
    unit = _unit("sfc6-7x7-3x3", in_width=20, digits=digits)
    matrix = _matrix(unit)
    x = np.concatenate(
        [
            _extremes(matrix, 20),
            np.random.default_rng(digits).integers(-(1 << 19), 1 << 19, (64, 132)),
        ]
    ).astype(object)
    got = unit.evaluate(x)
    np.testing.assert_array_equal(got, x @ matrix.T.astype(object))
    full = adder_netlist(unit.network_unit.network, 20, 1)
    # The extremes reach every row's exact range (the accumulators' widths), so nothing wraps.
    assert list(np.max(got, axis=0)) == full.row_hi and list(np.min(got, axis=0)) == full.row_lo


def test_engine_uses_four_digits_on_the_default_engine():
    iface = EngineInterface.from_config(EngineConfig())
    assert (iface.output_digits, iface.blocks) == (4, 12)
    assert iface.latency["output_transform"] == 4 + iface.output_digit_netlist.latency + 2
    # The network runs on 6-bit digits: its widest wire is far below y's width.
    assert max(w.width for w in iface.output_digit_netlist.wires) < iface.output_netlist.out_width


# -- Amaranth simulation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "width", "digits", "aps", "meta"),
    [
        ("wino-2x2-3x3", 12, 3, 1, 2),
        ("sfc4-4x4-3x3", 16, 4, 2, None),
        ("sfc6-7x7-3x3", 20, 4, 1, 5),
        ("wino-4x4-3x3", 10, 2, 1, 1),  # constants: signed digits in the network
    ],
)
def test_random_gaps_backpressure_and_extremes(name, width, digits, aps, meta):
    unit = _unit(name, in_width=width, digits=digits, meta=meta, aps=aps)
    seed = digits * 100 + width
    rng = random.Random(seed)
    matrix = _matrix(unit)
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    vectors = np.concatenate(
        [
            _extremes(matrix, width),
            np.random.default_rng(seed).integers(lo, hi, (16, unit.n_inputs)),
        ]
    )
    metas = [(5 * i + 1) % (1 << (meta or 1)) for i in range(len(vectors))]
    payloads = [
        {"data": [int(v) for v in vector], **({"meta": mt} if meta else {})}
        for vector, mt in zip(vectors, metas, strict=True)
    ]
    received = stream_through(
        unit,
        unit.i_x,
        unit.o_y,
        payloads,
        in_gap=random_gaps(rng, [0, 0, 1, 4]),
        out_gap=random_gaps(rng, [0, 0, 1, 3, 9]),
        max_cycles=(unit.interval + 12) * len(vectors) + 200,
    )
    got = np.array([[p.data[r] for r in range(unit.n_rows)] for p in received], dtype=object)
    np.testing.assert_array_equal(got, vectors.astype(object) @ matrix.T.astype(object))
    if meta:
        assert [p.meta for p in received] == metas


def test_latency_and_one_vector_per_interval():
    unit = _unit("sfc4-4x4-3x3", in_width=16, digits=4, meta=4)
    assert (unit.interval, unit.latency) == (5, 4 + unit.network_unit.latency + 2)
    vectors = np.random.default_rng(7).integers(-(1 << 15), 1 << 15, (8, unit.n_inputs))
    payloads = [{"data": [int(v) for v in vec], "meta": i} for i, vec in enumerate(vectors)]
    transfers = measure_transfers(unit, unit.i_x, unit.o_y, payloads)
    assert transfers.in_ticks == [1 + unit.interval * i for i in range(len(vectors))]
    assert transfers.out_ticks == [tick + unit.latency for tick in transfers.in_ticks]


def test_input_ready_does_not_follow_output_ready_within_a_cycle():
    unit = _unit("wino-2x2-3x3", in_width=12, digits=3, meta=None)
    seen: list[tuple[int, int]] = []

    async def bench(ctx):
        ctx.set(unit.i_x.valid, 1)
        for tick in range(3 * unit.latency):
            ctx.set(unit.o_y.ready, 0)
            low = ctx.get(unit.i_x.ready)
            ctx.set(unit.o_y.ready, 1)
            seen.append((low, ctx.get(unit.i_x.ready)))
            ctx.set(unit.o_y.ready, tick % 3 == 0)
            await ctx.tick()

    run_testbenches(unit, bench, cycles=10 * unit.latency)
    assert all(low == high for low, high in seen)
    assert {low for low, _ in seen} == {0, 1}  # both values occurred
