# amaranth: UnusedElaboratable=no

"""MapBuffer: a feature map in as row-major beats, the fast mode's tiles out, once per group."""

import dataclasses
import math
import random

import numpy as np
import pytest
from amaranth.hdl import signed
from amaranth.lib import data

from sfc_hls.catalog import get_algorithm
from sfc_hls.hw.map_buffer import MapBuffer
from sfc_hls.map_input import map_beats, map_words
from sfc_hls.reference import extract_tiles
from sfc_hls.sim.amaranth_streams import collect, run_testbenches, send


def _dut(algo, *, depth, pairs=1, pco=2):
    L = algo.input_tile
    return MapBuffer(
        input_tile=L, output_tile=algo.output_tile, pairs=pairs, depth=depth, in_bits=8,
        act_layout=data.ArrayLayout(signed(8), L * L + 3), pco=pco, cin_max=8, cout_max=16,
    )  # fmt: skip


def _expected(x, algo, padding, groups):
    """The tile beats the engine's ``i_act`` would carry: per group (n, ty, tx, ci), ci innermost."""
    tiles, _, _ = extract_tiles(x, algo, padding)
    beats = tiles.transpose(0, 2, 3, 1, 4).reshape(-1, algo.input_tile**2)
    return np.concatenate([beats] * groups)


def _run(dut, algo, layers, *, seed):
    """``layers``: (x, padding, cout) run back to back; returns the tile beats of each."""
    rnd = random.Random(seed)
    got = [[] for _ in layers]
    counts = [len(_expected(x, algo, pad, -(-cout // dut.pco))) for x, pad, cout in layers]

    async def host(ctx):
        for k, (x, pad, cout) in enumerate(layers):
            n, cin, h, w = x.shape
            for name, value in dict(images=n, cin=cin, cout=cout, height=h, width=w,
                                    padding=pad).items():  # fmt: skip
                ctx.set(getattr(dut, name), value)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for beat in map_beats(x, dut.L, dut.P):
                while rnd.random() < 0.2:
                    await ctx.tick()
                await send(ctx, dut.i_map, beat.tolist())
            while len(got[k]) < counts[k]:
                await ctx.tick()
            assert not ctx.get(dut.overflow)

    async def sink(ctx):
        for k, count in enumerate(counts):
            await collect(ctx, dut.o_act, count, got[k], ready=lambda: rnd.random() < 0.7)

    cycles = sum(3 * c + 3 * x.size for c, (x, _, _) in zip(counts, layers, strict=True))
    run_testbenches(dut, host, sink, cycles=cycles + 200)
    return [np.array([[p[j] for j in range(dut.L**2)] for p in beats]) for beats in got]


_ALGO = {4: get_algorithm("wino-2x2-3x3"), 6: get_algorithm("wino-4x4-3x3"),
         9: get_algorithm("sfc6-7x7-3x3")}  # fmt: skip


@pytest.mark.parametrize(("input_tile", "pairs"), [(4, 1), (6, 2), (9, 1), (9, 4), (4, 4)])
def test_tiles_equal_extract_tiles(input_tile, pairs):
    """Edge tiles, padding 0..2, widths that do not fill a beat, several images and groups;
    one, two or four column pairs per beat."""
    algo = _ALGO[input_tile]
    rng = np.random.default_rng(input_tile)
    beat = 2 * input_tile * pairs
    shapes = [((2, 3, 7, 11), 1, 5), ((1, 2, 2 * input_tile + 1, 5), 0, 2),
              ((1, 1, 9, 2 * input_tile + 3), 2, 3),
              ((1, 2, 5, 2 * beat + 5), 1, 2)]  # rows of three beats  # fmt: skip
    layers = []
    for shape, pad, cout in shapes:
        x = rng.integers(-128, 128, size=shape)
        x[0, 0, 0, 0], x[-1, -1, -1, -1] = -128, 127
        layers.append((x, pad, cout))
    depth = max(map_words(*x.shape, input_tile, pairs) for x, _, _ in layers)
    dut = _dut(algo, depth=depth, pairs=pairs)
    for (x, pad, cout), got in zip(layers, _run(dut, algo, layers, seed=input_tile), strict=True):
        want = _expected(x, algo, pad, math.ceil(cout / dut.pco))
        assert got.shape == want.shape
        assert np.array_equal(got, want)


def test_overflow_is_flagged_and_the_layer_still_ends():
    """A map larger than the buffer: words past the depth are dropped, ``overflow`` is set,
    the tiles still come (wrong) so nothing hangs; the next start clears the flag."""
    algo = _ALGO[4]
    x = np.arange(2 * 9 * 9).reshape(2, 1, 9, 9) % 100  # 2 planes x 3 blocks x 1 word
    dut = _dut(algo, depth=map_words(*x.shape, 4, 1) - 1)
    seen = {}

    async def host(ctx):
        for name, value in dict(images=2, cin=1, cout=2, height=9, width=9, padding=1).items():
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for beat in map_beats(x, 4, 1):
            await send(ctx, dut.i_map, beat.tolist())
        await ctx.tick()
        seen["overflow"] = ctx.get(dut.overflow)
        while len(got) < 50:
            await ctx.tick()
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await ctx.tick()
        seen["after_start"] = ctx.get(dut.overflow)

    got = []

    async def sink(ctx):
        await collect(ctx, dut.o_act, 2 * 5 * 5, got, ready=lambda: True)

    run_testbenches(dut, host, sink, cycles=400)
    assert seen == {"overflow": 1, "after_start": 0}
    assert len(got) == 50


def test_refusals_name_the_parameter():
    from sfc_hls.cli import main
    from sfc_hls.config import EngineConfig
    from sfc_hls.datapath import random_layer_quant
    from sfc_hls.hw.axi_engine import AxiConvEngine
    from sfc_hls.hw.engine_streams import EngineStreams
    from sfc_hls.hw.estimate import estimate

    with pytest.raises(ValueError, match=r"map_kib must be an int in \[0, 16384\], got -1"):
        EngineConfig(map_kib=-1)
    engine = EngineConfig(
        algorithm="wino-2x2-3x3", pco=2, cin_max=8, cout_max=4, map_kib=1, map_pairs=1
    )
    assert engine.map_depth == 32  # 1 KiB over 8 memories of 4 pixels
    with pytest.raises(ValueError, match=r"map_pairs must be one of \(1, 2, 4\), got 3"):
        EngineConfig(map_kib=1, map_pairs=3)
    with pytest.raises(ValueError, match="map_kib=1: the AXI top has no map stream yet"):
        AxiConvEngine(engine)
    with pytest.raises(ValueError, match="map_kib=1: the estimator has no model"):
        estimate(engine)
    streams, rng = EngineStreams(engine), np.random.default_rng(0)
    params = random_layer_quant(engine, 8, 4, rng)
    big = np.zeros((1, 8, 9, 9), dtype=np.int64)  # 8 planes x 3 blocks x 2 words = 48 > 32
    assert len(streams.layer_beats(params, big).map) == 0  # falls back to tiles
    with pytest.raises(ValueError, match=r"map_input: the 1x8x9x9 map takes 48 words per memory; "
                                         r"the 1 KiB buffer holds 32"):  # fmt: skip
        streams.layer_beats(params, big, map_input=True)
    direct = random_layer_quant(engine, 2, 4, rng, mode="direct", kernel=3)
    with pytest.raises(ValueError, match="only stride-1 fast-mode layers take a map"):
        streams.layer_beats(direct, np.zeros((1, 2, 5, 5)), stride=2, map_input=True)
    plain = EngineStreams(EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=8, cout_max=4))
    with pytest.raises(ValueError, match=r"no feature-map buffer \(map_kib=0\)"):
        plain.layer_beats(params, big, map_input=True)
    assert main(["estimate", "--algo", "wino-2x2-3x3", "--map-kib", "4"]) == 2


def test_manifest_describes_the_map_buffer_and_its_registers(tmp_path):
    from sfc_hls.config import EngineConfig
    from sfc_hls.hw.generate import engine_manifest
    from sfc_hls.hw.interface import EngineInterface

    engine = EngineConfig(algorithm="sfc6-7x7-3x3", pco=2, cin_max=16, cout_max=4, map_kib=16)
    manifest = engine_manifest(EngineInterface.from_config(engine))
    buf = manifest["map_buffer"]
    # 16 KiB over 2L x P = 72 memories of 9 pixels: 16384 / 648 -> 26 words
    assert (buf["memories"], buf["word_pixels"], buf["words_per_memory"]) == (72, 9, 26)
    assert manifest["limits"]["map_words"] == 26 and manifest["limits"]["padding"] == 2
    names = [r["name"] for r in manifest["registers"]]
    assert names[9:14] == ["MAP_INPUT", "IMAGES", "HEIGHT", "WIDTH", "PADDING"]
    assert manifest["ports"]["i_map"]["payload_bits"] == 72 * 8
    plain = engine_manifest(EngineInterface.from_config(dataclasses.replace(engine, map_kib=0)))
    assert "map_buffer" not in plain and "i_map" not in plain["ports"]
    assert "MAP_INPUT" not in [r["name"] for r in plain["registers"]]
