# amaranth: UnusedElaboratable=no

"""Tests of sfc_hls.hw.transform: netlist model, Amaranth simulation, Verilator via cocotb."""

from __future__ import annotations

import json
import random
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from hypothesis import given
from hypothesis import strategies as st

from sfc_hls.adder_network import AdderNetwork, SharedNode, is_power_of_two
from sfc_hls.bilinear import signed_width
from sfc_hls.catalog import get_algorithm
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import DatapathWidths, minimum_rescale_shift
from sfc_hls.hw.transform import (
    DEFAULT_ADDS_PER_STAGE,
    AdderNetworkUnit,
    InputTransform,
    OutputTransform,
    csd_digits,
)
from sfc_hls.sim.amaranth_streams import (
    measure_transfers,
    random_gaps,
    run_testbenches,
    stream_through,
)

SIM_BUILD = Path(__file__).resolve().parents[1] / "sim_build"
FULL = "sfc6-7x7-3x3"


def _extremes(matrix: np.ndarray, in_width: int) -> np.ndarray:
    """Per row: inputs driving it to its maximum, then those driving it to its minimum."""
    lo, hi = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
    return np.concatenate([np.where(matrix > 0, hi, lo), np.where(matrix > 0, lo, hi)])


def _matrix(unit: AdderNetworkUnit) -> np.ndarray:
    return unit.network.to_matrix().astype(int)


# -- argument validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: InputTransform("sfc9-9x9-3x3"), ValueError, r"algorithm 'sfc9-9x9-3x3'"),
        (lambda: InputTransform("nonsense"), ValueError, r"algorithm 'nonsense' is not valid"),
        (lambda: InputTransform(42), TypeError, r"algorithm must be a BilinearAlgorithm"),
        (lambda: InputTransform("sfc4-4-3"), ValueError, r"algorithm must be 2D.*'sfc4-4-3'"),
        (lambda: OutputTransform("wino-2-3", z_bits=24), ValueError, r"algorithm must be 2D"),
        (lambda: InputTransform("wino-2x2-3x3", in_bits=1), ValueError, r"in_bits must be .* 1"),
        (lambda: InputTransform("wino-2x2-3x3", in_bits=8.0), TypeError, r"in_bits .* 8\.0"),
        (lambda: InputTransform("wino-2x2-3x3", meta_layout=-1), TypeError, r"meta_layout .* -1"),
        (lambda: InputTransform("wino-2x2-3x3", adds_per_stage=0), ValueError, r"adds_per_stage"),
        (lambda: OutputTransform("wino-2x2-3x3", z_bits=True), TypeError, r"z_bits .* True"),
        (lambda: OutputTransform("wino-2x2-3x3", z_bits=1), ValueError, r"z_bits .* 1"),
        (lambda: AdderNetworkUnit("x", in_width=8), TypeError, r"network must be an AdderNetwork"),
        (
            lambda: AdderNetworkUnit(get_algorithm("wino-2x2-3x3").bt, in_width=8),
            TypeError,
            r"network must be an AdderNetwork, not ndarray",
        ),
        (
            lambda: AdderNetworkUnit(
                AdderNetwork.from_matrix(np.array([[Fraction(1, 2), 1]], dtype=object)),
                in_width=8,
            ),
            ValueError,
            r"non-integer coefficient 1/2",
        ),
        (
            lambda: AdderNetworkUnit(get_algorithm("direct-3x3").input_adder_network, in_width=0),
            ValueError,
            r"in_width must be an int >= 1, got 0",
        ),
    ],
)
def test_rejects_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        InputTransform("wino-2x2-3x3", 8)
    with pytest.raises(TypeError):
        OutputTransform("wino-2x2-3x3", 24)


# -- structure: adders, widths, latency (no simulation) ----------------------------


@given(st.integers(-(1 << 40), 1 << 40))
def test_csd_digits_are_exact_and_non_adjacent(c):
    digits = csd_digits(c)
    assert sum(sign << shift for sign, shift in digits) == c
    shifts = [shift for _, shift in digits]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:], strict=False))
    assert all(sign in (-1, 1) for sign, _ in digits)


@pytest.mark.parametrize(
    "name", ["wino-2x2-3x3", "wino-4x4-3x3", "sfc4-4x4-3x3", "sfc6-6x6-3x3", FULL, "direct-3x3"]
)
def test_adder_counts_widths_and_bit_true_model(name):
    algo = get_algorithm(name)
    units = [InputTransform(name), OutputTransform(name, z_bits=24)]
    for unit, matrix in zip(units, (algo.bt_int, algo.at_int), strict=True):
        network = unit.network
        shift_add = all(
            is_power_of_two(c)
            for c in [n.cu for n in network.nodes]
            + [n.cv for n in network.nodes]
            + [c for row in network.rows for _, c in row]
        )
        assert unit.negations == 0
        if shift_add:
            assert unit.adders == network.additions
        else:  # constants as canonical signed digits
            assert unit.adders > network.additions
        assert unit.latency == max(1, -(-unit.adder_depth // DEFAULT_ADDS_PER_STAGE))
        # Exact per-row range and width from the matrix, independently of the netlist.
        pos = np.where(matrix > 0, matrix, 0).sum(axis=1)
        neg = np.where(matrix < 0, -matrix, 0).sum(axis=1)
        lo_in, hi_in = -(1 << (unit.in_width - 1)), (1 << (unit.in_width - 1)) - 1
        lo, hi = pos * lo_in - neg * hi_in, pos * hi_in - neg * lo_in
        np.testing.assert_array_equal(unit.out_range[0].astype(np.int64), lo)
        np.testing.assert_array_equal(unit.out_range[1].astype(np.int64), hi)
        assert unit.out_width == max(
            signed_width(int(a), int(b)) for a, b in zip(lo, hi, strict=True)
        )
        # The wrap-at-every-width model of the generated logic is exact, also at the bounds.
        gen = np.random.default_rng(0)
        x = np.concatenate(
            [
                _extremes(matrix, unit.in_width),
                gen.integers(lo_in, hi_in + 1, (64, matrix.shape[1])),
            ]
        ).astype(object)
        np.testing.assert_array_equal(unit.evaluate(x), x @ matrix.T.astype(object))
    assert units[0].v_bits == algo.input_transform_width(8)


def test_full_size_sfc6_numbers():
    it, ot = InputTransform(FULL), OutputTransform(FULL, z_bits=24)
    assert (it.n_inputs, it.n_rows, it.v_bits, it.adders) == (81, 132, 14, 406)
    assert (ot.n_inputs, ot.n_rows, ot.y_bits, ot.adders) == (132, 49, 31, 621)
    assert (it.adder_depth, it.latency, ot.adder_depth, ot.latency) == (6, 3, 9, 5)
    assert it.i_x.payload.shape() == it.i_layout
    assert it.i_layout.size == 81 * 8 and it.o_layout.size == 132 * 14
    assert ot.i_layout.size == 132 * 24 and ot.o_layout.size == 49 * 31


@pytest.mark.parametrize("name", ["wino-2x2-3x3", "wino-4x4-3x3", "sfc4-4x4-3x3", FULL])
def test_widths_agree_with_the_datapath_spec(name):
    config = EngineConfig(algorithm=name, z_bits=24, cin_max=64)
    it, ot = InputTransform(name), OutputTransform(name, z_bits=config.z_bits)
    for cin in (1, 64):
        widths = DatapathWidths.derive(it.algo, config, cin, minimum_rescale_shift(cin, config))
        assert it.v_bits == widths.v_bits
        assert ot.y_bits >= widths.y_bits
    # y_bits is the signed width of max-row-L1 * 2^(z_bits - 1) (documented), here exactly.
    bound = int(np.abs(ot.algo.at_int).sum(axis=1).max()) << (config.z_bits - 1)
    assert ot.y_bits == signed_width(-bound, bound)


def test_coefficients_other_than_powers_of_two_use_signed_digits():
    # Rows 5*x0 - 20*x1 and 3*x0 + x1 (no sharing possible): 1 + 1 + 1 and 1 + 1 adders.
    network = AdderNetwork.from_matrix(np.array([[5, -20], [3, 1]], dtype=object))
    unit = AdderNetworkUnit(network, in_width=8, adds_per_stage=1)
    assert unit.adders == 5
    x = _extremes(np.array([[5, -20], [3, 1]]), 8).astype(object)
    np.testing.assert_array_equal(unit.evaluate(x), x @ np.array([[5, 3], [-20, 1]], dtype=object))


def test_all_negative_sum_costs_one_negation():
    network = AdderNetwork(
        name="neg", inputs=2, nodes=(), rows=(((0, Fraction(-1)), (1, Fraction(-1))),)
    )
    unit = AdderNetworkUnit(network, in_width=8)
    assert (unit.negations, unit.adders) == (1, 2)
    assert unit.evaluate(np.array([[-128, -128], [127, 127]], dtype=object)).tolist() == [
        [256],
        [-254],
    ]


def test_node_signs_are_flipped_to_avoid_negations():
    # t = x0 - x1 is used only negated: storing x1 - x0 makes every row positive.
    network = AdderNetwork(
        name="flip",
        inputs=3,
        nodes=(SharedNode(0, 1, 1, -1),),
        rows=(((3, Fraction(-1)), (2, Fraction(-1))), ((3, Fraction(-1)),)),
    )
    unit = AdderNetworkUnit(network, in_width=8)
    assert (unit.negations, unit.adders) == (0, 2)
    x = np.array([[-128, 127, -128], [127, -128, 127]], dtype=object)
    np.testing.assert_array_equal(unit.evaluate(x), x @ np.array([[-1, -1], [1, 1], [-1, 0]]))


# -- Amaranth simulation ---------------------------------------------------------------


def _payload(dut: AdderNetworkUnit, vector, meta: int) -> dict:
    payload = {"data": [int(v) for v in vector]}
    if dut.meta_width:
        payload["meta"] = meta
    return payload


def _check_random_and_extremes(dut: AdderNetworkUnit, seed: int, count: int = 24) -> None:
    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    matrix = _matrix(dut)
    lo, hi = -(1 << (dut.in_width - 1)), 1 << (dut.in_width - 1)
    vectors = np.concatenate(
        [
            _extremes(matrix, dut.in_width),
            np.full((1, dut.n_inputs), lo),
            np.full((1, dut.n_inputs), hi - 1),
            np.where(np.arange(dut.n_inputs) % 2, lo, hi - 1)[None, :],
            gen.integers(lo, hi, (count, dut.n_inputs)),
        ]
    )
    order = list(range(len(vectors)))
    rng.shuffle(order)
    vectors = vectors[order]
    metas = [(7 * i + 1) % (1 << dut.meta_width) for i in range(len(vectors))]
    received = stream_through(
        dut,
        dut.i_x,
        dut.o_y,
        [_payload(dut, vector, meta) for vector, meta in zip(vectors, metas, strict=True)],
        in_gap=random_gaps(rng, [0, 0, 0, 1, 3]),
        out_gap=random_gaps(rng, [0, 0, 1, 2, 5]),
        max_cycles=12 * len(vectors) + 100,
    )
    expected = vectors.astype(object) @ matrix.T.astype(object)
    got = np.array([[p.data[r] for r in range(dut.n_rows)] for p in received], dtype=object)
    np.testing.assert_array_equal(got, expected)
    assert [p.meta if dut.meta_width else 0 for p in received] == metas
    # The extreme vectors reached every row's exact bound (so nothing wrapped).
    assert list(np.max(got, axis=0)) == list(dut.out_range[1])
    assert list(np.min(got, axis=0)) == list(dut.out_range[0])


SIM_CASES = [
    ("input", "wino-2x2-3x3", 2, 0),
    ("input", "sfc4-4x4-3x3", 2, 3),
    ("input", "wino-4x4-3x3", 1, 0),  # constants 5, 20: signed digits
    ("input", "direct-3x3", 2, 0),  # no adders: latency 1
    ("output", "wino-2x2-3x3", 3, 2),
    ("output", "sfc4-4x4-3x3", 2, 0),
    ("output", "direct-3x3", 1, 1),
]


@pytest.mark.parametrize(
    ("kind", "name", "adds_per_stage", "meta_width"),
    SIM_CASES,
    ids=[f"{k}-{n}-aps{a}-meta{m}-seed{i}" for i, (k, n, a, m) in enumerate(SIM_CASES)],
)
def test_amaranth_random_gaps_backpressure_and_bounds(kind, name, adds_per_stage, meta_width):
    seed = SIM_CASES.index((kind, name, adds_per_stage, meta_width))
    if kind == "input":
        dut = InputTransform(name, meta_layout=meta_width, adds_per_stage=adds_per_stage)
    else:
        dut = OutputTransform(
            name, z_bits=24, meta_layout=meta_width, adds_per_stage=adds_per_stage
        )
    _check_random_and_extremes(dut, seed)


def test_amaranth_latency_and_one_vector_per_cycle():
    dut = OutputTransform("sfc4-4x4-3x3", z_bits=24, meta_layout=4)
    assert dut.latency == 4
    vectors = np.random.default_rng(5).integers(-(1 << 23), 1 << 23, (10, dut.n_inputs))
    payloads = [{"data": [int(v) for v in vector], "meta": i} for i, vector in enumerate(vectors)]
    transfers = measure_transfers(dut, dut.i_x, dut.o_y, payloads)
    assert transfers.in_ticks == list(range(1, len(vectors) + 1))
    assert transfers.out_ticks == [tick + dut.latency for tick in transfers.in_ticks]


def test_amaranth_backpressure_holds_the_whole_pipeline():
    dut = InputTransform("wino-2x2-3x3", adds_per_stage=1)  # latency 2
    assert dut.latency == 2
    accepted: list[int] = []
    outputs: list[list[int]] = []

    async def bench(ctx):
        ctx.set(dut.o_y.ready, 0)
        ctx.set(dut.i_x.valid, 1)
        for tick in range(1, 9):  # never ready: fills the 2 stages, then holds
            ctx.set(dut.i_x.payload, {"data": [tick] * 16})
            _, _, ready = await ctx.tick().sample(dut.i_x.ready)
            if ready:
                accepted.append(tick)
        ctx.set(dut.i_x.valid, 0)
        ctx.set(dut.o_y.ready, 1)
        for _ in range(4):
            _, _, valid, payload = await ctx.tick().sample(dut.o_y.valid, dut.o_y.payload)
            if valid:
                outputs.append([payload.data[r] for r in range(dut.n_rows)])

    run_testbenches(dut, bench, cycles=50)
    assert accepted == [1, 2]
    matrix = _matrix(dut)
    assert outputs == [list(matrix @ np.full(16, t)) for t in (1, 2)]


# -- Verilator through cocotb -------------------------------------------------------------

VERILATOR_UNITS = {
    "input_transform": {"kind": "input", "algorithm": FULL, "in_bits": 8, "meta_layout": 5},
    "output_transform": {"kind": "output", "algorithm": FULL, "z_bits": 24},
}


@pytest.fixture(scope="session")
def full_size_verilog(tmp_path_factory) -> dict[str, tuple[Path, float]]:
    """Verilog of both full-size SFC-6(7x7,3x3) units, generated once per session."""
    from sfc_hls.sim.tb_transform import build_unit

    out = tmp_path_factory.mktemp("transform_verilog")
    files = {}
    for name, params in VERILATOR_UNITS.items():
        start = time.perf_counter()
        text = verilog.convert(build_unit(params), name=name)
        seconds = time.perf_counter() - start
        path = out / f"{name}.v"
        path.write_text(text)
        files[name] = (path, seconds)
    return files


@pytest.mark.parametrize("top", list(VERILATOR_UNITS))
def test_verilator_lint_of_full_size_units(top, full_size_verilog):
    from sfc_hls.sim.verilator import lint_verilog

    path, _ = full_size_verilog[top]
    assert lint_verilog(path, toplevel=top) == ""


@pytest.mark.parametrize(
    ("top", "seed"),
    [("input_transform", 3), ("output_transform", 4)],
    ids=["input_transform-seed3", "output_transform-seed4"],
)
def test_verilator_against_golden_stages(top, seed, full_size_verilog, tmp_path):
    from sfc_hls.sim.verilator import run_cocotb

    path, _ = full_size_verilog[top]
    report = tmp_path / "report.json"
    result = run_cocotb(
        [path],
        top,
        "sfc_hls.sim.tb_transform",
        build_root=SIM_BUILD,
        seed=seed,
        config={
            "unit": VERILATOR_UNITS[top],
            "layer": {"batch": 2, "cin": 4, "cout": 4, "size": 21},
            "input_pause": 0.3,
            "output_pause": 0.4,
            "throughput_vectors": 64,
            "report_file": str(report),
        },
    )
    assert set(result.tests) == {"golden_stages_with_stalls", "one_beat_per_cycle"}
    measured = json.loads(report.read_text())
    assert measured["golden_vectors"] == 2 * 4 * 9
    assert measured["cycles_per_beat"] == 1.0
    unit = InputTransform(FULL) if top == "input_transform" else OutputTransform(FULL, z_bits=24)
    assert measured["latency"] == unit.latency
