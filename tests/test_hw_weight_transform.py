# amaranth: UnusedElaboratable=no

"""SpatialWeightTransform: spatial weight beats in, transform-domain rows out (Amaranth simulation)."""

from __future__ import annotations

import dataclasses
import gc
import random

import numpy as np
import pytest
from amaranth.lib import data

from sfc_hls.catalog import get_algorithm
from sfc_hls.hw.weight_transform import SpatialWeightTransform, spatial_group_beats
from sfc_hls.sim.amaranth_streams import (
    Transfers,
    collect,
    pass_through_check,
    record_transfers,
    run_testbenches,
    send,
    send_all,
)
from sfc_hls.weight_transform import (
    SHIFT_WINDOW,
    exact_transform,
    fitting_shifts,
    shift_window,
    transform_bits,
    transform_bound,
    transform_spatial_weights,
)

WB = 8
COUT_MAX = 64
WMAX = (1 << (WB - 1)) - 1


def _dut(name: str, pco: int, cin_max: int = 40) -> SpatialWeightTransform:
    return SpatialWeightTransform(
        algorithm=name, pco=pco, weight_bits=WB, cin_max=cin_max, cout_max=COUT_MAX
    )


def _group(dut, cin: int, rng: np.random.Generator):
    """Spatial weights ``(pco, cin, R, R)`` and shifts ``(m, pco)`` of one group.

    Random weights, some channels at the extremes: ``+-wmax`` everywhere, and
    ``wmax * sign(D G)[j]`` (the bound of ``u[j]``).  Shifts: the smallest that fits
    (:func:`~sfc_hls.weight_transform.fitting_shifts`, so weights of +-wmax occur) or a
    random larger one of the window; channels of small weights reach the window's bottom.
    """
    algo, R = dut.algo, dut.algo.kernel
    w = rng.integers(-WMAX, WMAX + 1, size=(dut.pco, cin, R * R))
    dg = algo.g_scaled_int.astype(np.int64)
    for lane in range(dut.pco):
        for ci in range(cin):
            pick = rng.integers(6)
            if pick == 0:
                w[lane, ci] = rng.choice([-WMAX, WMAX], size=R * R)
            elif pick == 1:
                w[lane, ci] = WMAX * np.sign(dg[rng.integers(algo.mults)]) * rng.choice([-1, 1])
    widest = int(np.abs(dg).sum(axis=1).argmax())
    w[0, 0] = WMAX * np.sign(dg[widest])  # |u[widest]| = transform_bound
    if dut.pco > 1:
        w[1] //= 32  # a lane of small weights: shifts at the bottom of the windows
    w = w.reshape(dut.pco, cin, R, R)
    u = exact_transform(w, algo, WB)
    fit = fitting_shifts(u, algo, WB)
    hi = shift_window(algo, WB)[1][:, None]
    shift = np.minimum(fit + rng.integers(0, 2, size=fit.shape) * rng.integers(0, 3), hi)
    return w, shift


def _beats(dut, w, shift) -> list[int]:
    return spatial_group_beats(w, shift, algorithm=dut.algo, weight_bits=WB)


def _want(dut, w, shift) -> np.ndarray:
    """The spec's rows ``(cin, pco, m)``."""
    return transform_spatial_weights(w, shift, dut.algo, WB).transpose(2, 1, 0)


def _rows(dut, payloads) -> np.ndarray:
    """Output payloads as ``(rows, pco, m)`` integers."""
    m, mask, half = dut.m, (1 << WB) - 1, 1 << (WB - 1)
    out = []
    for payload in payloads:
        bits = payload.as_bits()
        fields = [((bits >> (n * WB)) & mask) for n in range(dut.pco * m)]
        out.append([(f ^ half) - half for f in fields])
    return np.array(out, dtype=np.int64).reshape(-1, dut.pco, m)


def _with_garbage(dut, beats: list[int], cin: int, rnd: random.Random) -> list[int]:
    """``beats`` of a group with random bits where the block must ignore them: past the
    header's shifts, past the ``k`` rows of a row beat, in the last beat's rows past ``cin``."""
    width = dut.weight_layout.size
    used_rows = cin - (len(beats) - 2) * dut.rows_per_beat  # rows of the last beat
    used = [dut.header_bits] + [dut.rows_per_beat * dut.row_bits] * (len(beats) - 2)
    used.append(used_rows * dut.row_bits)
    return [beat | (rnd.getrandbits(width) >> n << n) for beat, n in zip(beats, used, strict=True)]


async def _start_layer(ctx, dut, cin: int, groups: int) -> None:
    """``spatial``, ``cin``, ``cout`` of a layer of ``groups`` groups, and its ``restart``."""
    ctx.set(dut.spatial, 1)
    ctx.set(dut.cin, cin)
    ctx.set(dut.cout, groups * dut.pco)
    ctx.set(dut.restart, 1)
    await ctx.tick()
    ctx.set(dut.restart, 0)


def _simulate(dut, *testbenches, cycles: int) -> None:
    """:func:`run_testbenches`, then the testbenches a failure left waiting are finalized:
    later, inside pytest's failure report, they can make CPython 3.11's ``ast.parse``
    raise ``SystemError: AST constructor recursion depth mismatch``."""
    run_testbenches(dut, *testbenches, cycles=cycles)
    gc.collect()


def _run(dut, layers, *, seed: int, gap: float = 0.3, ready: float = 0.7):
    """``layers``: ``(cin, [(w, shift), ...])`` run back to back, each after a ``restart``.

    Random idle cycles before input beats (probability ``gap`` per cycle) and
    random ``o_weight.ready`` (probability ``ready``).  Returns the rows of each layer.
    """
    rnd = random.Random(seed)
    got: list[list] = [[] for _ in layers]
    counts = [cin * len(groups) for cin, groups in layers]
    extra: list[int] = []  # o_weight.valid after the last row: no row past cin

    async def host(ctx):
        ctx.set(dut.spatial, 1)
        for index, (cin, groups) in enumerate(layers):
            ctx.set(dut.cin, cin)
            ctx.set(dut.cout, len(groups) * dut.pco - rnd.randrange(dut.pco))  # last group partial
            ctx.set(dut.restart, 1)
            await ctx.tick()
            ctx.set(dut.restart, 0)
            for w, shift in groups:
                for beat in _with_garbage(dut, _beats(dut, w, shift), cin, rnd):
                    while rnd.random() < gap:
                        await ctx.tick()
                    await send(ctx, dut.i_weight, data.Const(dut.weight_layout, beat))
            while len(got[index]) < counts[index]:  # restart with the pipeline empty
                await ctx.tick()
        for _ in range(2 * dut.latency):
            await ctx.tick()
            extra.append(ctx.get(dut.o_weight.valid))

    async def sink(ctx):
        for index, count in enumerate(counts):
            await collect(ctx, dut.o_weight, count, got[index], ready=lambda: rnd.random() < ready)

    beats = sum(len(groups) * (2 + cin) for cin, groups in layers)
    cycles = int(beats / min(1 - gap, ready) ** 2) + 50 * len(layers) + 2 * dut.latency
    _simulate(dut, host, sink, cycles=cycles)
    assert len(extra) == 2 * dut.latency, "the host did not finish (a beat was not taken)"
    assert not any(extra), "rows past the last group's cin"
    return [_rows(dut, rows) for rows in got]


# ----------------------------------------------------------------------------- rows


@pytest.mark.parametrize(
    ("name", "pco", "cins"),
    [
        ("sfc6-7x7-3x3", 1, [17, 14, 1, 5]),  # k = 14: not / a multiple, cin = 1, cin < k
        ("sfc6-7x7-3x3", 2, [28, 3, 1]),
        ("wino-4x4-3x3", 2, [8, 7, 1, 2]),  # k = 4
        ("wino-2x2-3x3", 2, [3, 1, 5]),  # k = 1
    ],
)
def test_rows_equal_transform_spatial_weights(name, pco, cins):
    """Layers of two or three groups, restarts between layers with another ``cin``, random
    input gaps and output backpressure; every row equals the spec's, clamp and bound hit."""
    dut = _dut(name, pco)
    rng = np.random.default_rng([pco, dut.rows_per_beat])
    layers = [(cin, [_group(dut, cin, rng) for _ in range(3 if cin < 10 else 2)]) for cin in cins]
    results = _run(dut, layers, seed=pco)
    reached = extreme = False
    offsets = set()
    lo = shift_window(dut.algo, WB)[0][:, None]
    for (_, groups), got in zip(layers, results, strict=True):
        want = np.concatenate([_want(dut, w, shift) for w, shift in groups])
        assert got.shape == want.shape
        assert np.array_equal(got, want)
        model = np.concatenate([dut.evaluate(w, shift) for w, shift in groups])
        assert np.array_equal(model, want)
        for w, shift in groups:
            u = exact_transform(w, dut.algo, WB)
            reached |= int(np.abs(u).max()) == transform_bound(dut.algo, WB)
            offsets |= set((shift - lo).ravel().tolist())
        extreme |= bool((np.abs(want) == WMAX).any())
    # The tests cover the bound of u, weights of +-wmax and every field value of the window.
    assert reached and extreme and offsets == set(range(SHIFT_WINDOW))


def test_restart_clears_a_partial_group():
    """A layer abandoned after the first row beat of a group, one after a header alone: after
    a ``restart`` the next beat is a header again and the new layer's rows are exact.  A beat
    offered in the ``restart`` cycle is not taken in it (it is the header that follows)."""
    dut = _dut("wino-4x4-3x3", 1, cin_max=16)
    rng = np.random.default_rng(3)
    w, shift = _group(dut, 10, rng)
    partial = _beats(dut, w, shift)[:2]  # header + 4 of 10 rows
    lone_header = _beats(dut, w, shift)[:1]
    w2, shift2 = _group(dut, 5, rng)
    got: list = []
    ready_in_restart: list[int] = []

    async def host(ctx):
        ctx.set(dut.spatial, 1)
        for cin, beats in [(10, partial), (10, lone_header), (5, _beats(dut, w2, shift2))]:
            beats = [data.Const(dut.weight_layout, b) for b in beats]
            ctx.set(dut.cin, cin)
            ctx.set(dut.cout, dut.pco)  # one group
            ctx.set(dut.restart, 1)
            ctx.set(dut.i_weight.payload, beats[0])
            ctx.set(dut.i_weight.valid, 1)
            ready_in_restart.append(ctx.get(dut.i_weight.ready))
            await ctx.tick()
            ctx.set(dut.restart, 0)
            await send_all(ctx, dut.i_weight, beats)
            for _ in range(2 * dut.latency):
                await ctx.tick()

    async def sink(ctx):
        await collect(ctx, dut.o_weight, 4 + 5, got, ready=lambda: True)

    _simulate(dut, host, sink, cycles=100)
    assert ready_in_restart == [0, 0, 0]
    rows = _rows(dut, got)
    assert np.array_equal(rows[:4], _want(dut, w, shift)[:4])
    assert np.array_equal(rows[4:], _want(dut, w2, shift2))


def test_no_header_after_the_last_group_until_restart():
    """After ``ceil(cout / pco)`` groups the next layer's header waits (``ready`` low) until
    that layer's ``restart``, and then runs with the new ``cin``; none is taken after reset."""
    dut = _dut("wino-4x4-3x3", 2, cin_max=16)
    rng = np.random.default_rng(8)
    first = [_group(dut, 6, rng) for _ in range(2)]
    second = _group(dut, 9, rng)
    beats = [data.Const(dut.weight_layout, b) for g in first for b in _beats(dut, *g)]
    nxt = [data.Const(dut.weight_layout, b) for b in _beats(dut, *second)]
    got: list = []
    waiting: list[int] = []

    async def host(ctx):
        ctx.set(dut.spatial, 1)
        ctx.set(dut.i_weight.payload, beats[0])
        ctx.set(dut.i_weight.valid, 1)
        for _ in range(3):  # after reset: no restart yet, nothing is taken
            await ctx.tick()
            waiting.append(ctx.get(dut.i_weight.ready))
        ctx.set(dut.i_weight.valid, 0)
        ctx.set(dut.cout, 2 * dut.pco - 1)  # two groups, the last one partial
        ctx.set(dut.cin, 6)
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        await send_all(ctx, dut.i_weight, beats)
        ctx.set(dut.i_weight.payload, nxt[0])
        ctx.set(dut.i_weight.valid, 1)
        for _ in range(2 * dut.latency):  # the first layer drains; its header is offered
            await ctx.tick()
            waiting.append(ctx.get(dut.i_weight.ready))
        ctx.set(dut.i_weight.valid, 0)
        await _start_layer(ctx, dut, 9, 1)
        await send_all(ctx, dut.i_weight, nxt)

    async def sink(ctx):
        await collect(ctx, dut.o_weight, 2 * 6 + 9, got, ready=lambda: True)

    _simulate(dut, host, sink, cycles=200)
    assert not any(waiting)
    want = np.concatenate([*(_want(dut, *g) for g in first), _want(dut, *second)])
    assert np.array_equal(_rows(dut, got), want)


# ----------------------------------------------------------------------------- timing


def _back_to_back(dut, cin: int, groups: int, *, seed: int):
    """One layer of ``groups`` random groups, beats back to back, ``o_weight`` always ready:
    the groups and the transfers (cycles and payloads) of both ports."""
    rng = np.random.default_rng(seed)
    group_list = [_group(dut, cin, rng) for _ in range(groups)]
    beats = [data.Const(dut.weight_layout, b) for g in group_list for b in _beats(dut, *g)]
    transfers = Transfers()

    async def host(ctx):
        await _start_layer(ctx, dut, cin, groups)
        await send_all(ctx, dut.i_weight, beats)

    async def observer(ctx):
        await record_transfers(ctx, dut.i_weight, dut.o_weight, cin * groups, transfers)

    _simulate(dut, host, observer, cycles=groups * (cin + 8) + 40)
    return group_list, transfers


@pytest.mark.parametrize("name", ["sfc6-7x7-3x3", "wino-2x2-3x3"])
def test_one_row_per_cycle_and_latency(name):
    """``o_weight`` always ready, beats back to back: groups of ``cin = 4k`` rows take
    ``cin + 1`` cycles each (the header), rows leave on consecutive cycles within a
    group, the first ``1 + latency`` cycles after the header."""
    dut = _dut(name, 1, cin_max=64)
    cin, groups = 4 * dut.rows_per_beat, 3
    group_list, transfers = _back_to_back(dut, cin, groups, seed=5)
    out = transfers.out_ticks
    assert len(out) == cin * groups
    assert out[0] - transfers.in_ticks[0] == 1 + dut.latency
    assert out[-1] - out[0] + 1 == groups * (cin + 1) - 1  # one header cycle between groups
    for g in range(groups):
        ticks = out[g * cin : (g + 1) * cin]
        assert ticks == list(range(ticks[0], ticks[0] + cin))
    want = np.concatenate([_want(dut, *g) for g in group_list])
    assert np.array_equal(_rows(dut, transfers.out_payloads), want)


_SHORT_GROUPS = [("wino-2x2-3x3", cin) for cin in (1, 2, 3, 4, 5)]


@pytest.mark.parametrize(
    ("name", "cin"), [*_SHORT_GROUPS, ("wino-4x4-3x3", 2), ("sfc6-7x7-3x3", 3)]
)
def test_small_groups_wait_for_the_pending_header(name, cin):
    """Short groups, ``o_weight`` always ready: a header waits until the previous group's
    first row has entered the rounding stage, so a group takes
    ``max(cin + 1, 3 + lane_latency)`` cycles; its rows leave on consecutive cycles."""
    dut = _dut(name, 1, cin_max=8)
    groups = 4
    group_list, transfers = _back_to_back(dut, cin, groups, seed=cin)
    out = np.array(transfers.out_ticks).reshape(groups, cin)
    assert (np.diff(out, axis=1) == 1).all()
    assert (np.diff(out[:, 0]) == max(cin + 1, 3 + dut.lane_latency)).all()
    assert np.array_equal(
        _rows(dut, transfers.out_payloads), np.concatenate([_want(dut, *g) for g in group_list])
    )


# ----------------------------------------------------------------------------- pass-through


def test_pass_through_when_not_spatial():
    """``spatial`` low: ``o_weight`` is ``i_weight`` beat for beat, in the same cycle."""
    dut = _dut("sfc6-7x7-3x3", 2)
    rnd = random.Random(11)
    width = dut.weight_layout.size
    beats = [rnd.getrandbits(width) for _ in range(30)] + [0, (1 << width) - 1]
    seen: list = []

    async def bench(ctx):
        ctx.set(dut.spatial, 0)
        seen.extend(await pass_through_check(ctx, dut.i_weight, dut.o_weight,
                                             dut.weight_layout, beats, rnd))  # fmt: skip

    _simulate(dut, bench, cycles=40 * len(beats) + 10)
    assert seen == beats


# ----------------------------------------------------------------------------- parameters


def test_widths_and_sizes():
    dut = _dut("sfc6-7x7-3x3", 2)
    algo = get_algorithm("sfc6-7x7-3x3")
    assert dut.u_bits == transform_bits(algo, WB) == 14
    assert (dut.rows_per_beat, dut.shift_bits, dut.header_bits) == (14, 2, 2 * 132 * 2)
    assert (dut.lane_adders, dut.lane_depth, dut.lane_latency, dut.latency) == (223, 4, 2, 5)
    assert dut.latency == SpatialWeightTransform.latency_of(algo, WB)
    assert dut.row_bits * dut.rows_per_beat <= dut.weight_layout.size
    for name in ("wino-4x4-3x3", "wino-2x2-3x3"):
        other = _dut(name, 1)
        assert other.u_bits == transform_bits(other.algo, WB)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pco": 0}, ValueError, r"pco must be an int >= 1, got 0"),
        ({"weight_bits": 1}, ValueError, r"weight_bits must be an int >= 2, got 1"),
        ({"weight_bits": "8"}, TypeError, r"weight_bits must be an int >= 2, got str"),
        ({"cin_max": 0}, ValueError, r"cin_max must be an int >= 1, got 0"),
        ({"pco": True}, TypeError, r"pco must be an int >= 1, got bool"),
        ({"algorithm": "nonsense"}, ValueError, r"algorithm 'nonsense' is not valid"),
        ({"algorithm": 42}, TypeError, r"algorithm must be a BilinearAlgorithm"),
        ({"algorithm": "sfc6-6-3"}, ValueError, r"algorithm must be 2D"),
        ({"cout_max": 0}, ValueError, r"cout_max must be an int >= 1, got 0"),
    ],
)
def test_constructor_errors_name_the_parameter(kwargs, error, match):
    args = {"algorithm": "sfc6-7x7-3x3", "pco": 2, "weight_bits": WB, "cin_max": 8,
            "cout_max": 8} | kwargs  # fmt: skip
    with pytest.raises(error, match=match):
        SpatialWeightTransform(**args)


def test_group_beats_follow_the_bit_offsets():
    """:func:`spatial_group_beats` against the protocol's bit offsets, written out field by field."""
    dut = _dut("wino-4x4-3x3", 2)
    rng = np.random.default_rng(1)
    cin, k, R2, sb = 6, dut.rows_per_beat, dut.taps, dut.shift_bits
    w, shift = _group(dut, cin, rng)
    header = sum(
        int(shift[j, lane] - dut.shift_lo[j]) << ((lane * dut.m + j) * sb)  # window offsets
        for lane in range(dut.pco)
        for j in range(dut.m)
    )
    rows = [0] * -(-cin // k)
    for ci in range(cin):
        for lane in range(dut.pco):
            for t in range(R2):
                offset = (ci % k) * dut.pco * R2 * WB + lane * R2 * WB + t * WB
                rows[ci // k] |= (int(w[lane, ci].flat[t]) & ((1 << WB) - 1)) << offset
    assert _beats(dut, w, shift) == [header, *rows]


def test_group_beats_check_shapes_and_windows():
    dut = _dut("wino-2x2-3x3", 2)
    with pytest.raises(ValueError, match=r"spatial must be \(pco, cin, R, R\)"):
        _beats(dut, np.zeros((2, 2, 5, 5)), np.zeros((16, 2)))
    with pytest.raises(ValueError, match=r"shift must be \(m, pco\)"):
        _beats(dut, np.zeros((2, 2, 3, 3)), np.zeros((2, 16)))
    with pytest.raises(ValueError, match=r"shift must lie in each position's window"):
        _beats(dut, np.zeros((2, 2, 3, 3)), np.full((16, 2), 5))  # F(2x2)'s windows end at 4


# ----------------------------------------------------------------------------- engine level


def test_refusals_name_the_parameter():
    from sfc_hls.cli import main
    from sfc_hls.config import EngineConfig
    from sfc_hls.datapath import random_layer_quant
    from sfc_hls.hw.axi_engine import AxiConvEngine
    from sfc_hls.hw.engine_streams import EngineStreams
    from sfc_hls.hw.estimate import estimate

    with pytest.raises(TypeError, match="weight_transform must be a bool, got 1"):
        EngineConfig(weight_transform=1)
    engine = EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=8, cout_max=4,
                          weight_transform=True)  # fmt: skip
    with pytest.raises(ValueError, match="weight_transform=True: the AXI top does not decode"):
        AxiConvEngine(engine)
    with pytest.raises(ValueError, match="weight_transform=True: the estimator has no model"):
        estimate(engine)
    assert main(["estimate", "--algo", "wino-2x2-3x3", "--weight-transform"]) == 2
    streams, rng = EngineStreams(engine), np.random.default_rng(0)
    x = np.zeros((1, 3, 5, 5), dtype=np.int64)
    plain_layer = random_layer_quant(engine, 3, 4, rng, spatial=False)
    assert not streams.layer_beats(plain_layer, x).spatial_weights  # rows, as before
    with pytest.raises(ValueError, match="spatial_weights: the layer has no spatial weights"):
        streams.layer_beats(plain_layer, x, spatial_weights=True)
    spatial_layer = random_layer_quant(engine, 3, 4, rng)
    assert streams.layer_beats(spatial_layer, x).spatial_weights
    rows = streams.layer_beats(spatial_layer, x, spatial_weights=False)
    assert not rows.spatial_weights and len(rows.weight) == 2 * 3  # 2 groups x cin rows
    plain = EngineStreams(dataclasses.replace(engine, weight_transform=False))
    with pytest.raises(ValueError, match=r"no weight transform \(weight_transform=False\)"):
        plain.layer_beats(spatial_layer, x, spatial_weights=True)
    assert not plain.layer_beats(spatial_layer, x).spatial_weights
    direct = random_layer_quant(engine, 2, 4, rng, mode="direct", kernel=3)
    with pytest.raises(ValueError, match="only fast-mode layers take spatial weights"):
        streams.layer_beats(direct, np.zeros((1, 2, 5, 5)), stride=2, spatial_weights=True)


def test_manifest_describes_the_weight_transform_and_its_register():
    from sfc_hls.config import EngineConfig
    from sfc_hls.hw.generate import engine_manifest
    from sfc_hls.hw.interface import EngineInterface

    engine = EngineConfig(algorithm="sfc6-7x7-3x3", pco=2, cin_max=16, cout_max=4,
                          weight_transform=True)  # fmt: skip
    manifest = engine_manifest(EngineInterface.from_config(engine))
    wt = manifest["weight_transform"]
    assert (wt["rows_per_beat"], wt["shift_bits"], wt["max_shift"], wt["latency"]) == (14, 2, 6, 5)
    names = [r["name"] for r in manifest["registers"]]
    assert names[9] == "SPATIAL_WEIGHTS"
    plain = engine_manifest(EngineInterface.from_config(dataclasses.replace(engine,
                                                                            weight_transform=False)))  # fmt: skip
    assert "weight_transform" not in plain
    assert "SPATIAL_WEIGHTS" not in [r["name"] for r in plain["registers"]]
