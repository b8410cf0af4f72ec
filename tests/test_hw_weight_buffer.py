# amaranth: UnusedElaboratable=no

"""WeightBuffer: rows loaded by stream, read back paired with activation beats under stalls."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from sfc_hls.hw.weight_buffer import WeightBuffer

PERIOD = 1e-8


def _run(dut, rows, beats, *, seed, bank=0):
    rnd = random.Random(seed)
    got = []

    async def loader(ctx):
        ctx.set(dut.restart, 1)
        ctx.set(dut.load_bank, bank)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        for row in rows:
            ctx.set(dut.i_weight.payload, row.tolist())
            ctx.set(dut.i_weight.valid, 1)
            await ctx.tick().until(dut.i_weight.ready)
            ctx.set(dut.i_weight.valid, 0)
            if rnd.random() < 0.3:
                await ctx.tick()
        assert ctx.get(dut.loaded) == len(rows)
        for beat in beats:
            while rnd.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.i_beat.payload, beat)
            ctx.set(dut.i_beat.valid, 1)
            await ctx.tick().until(dut.i_beat.ready)
            ctx.set(dut.i_beat.valid, 0)

    async def sink(ctx):
        while len(got) < len(beats):
            ready = rnd.random() < 0.6
            ctx.set(dut.o_beat.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o_beat.valid, dut.o_beat.payload)
            if ready and valid:
                got.append(
                    (
                        [payload.act[k] for k in range(dut.positions)],
                        np.array(
                            [
                                [payload.weights[ln][k] for k in range(dut.positions)]
                                for ln in range(dut.lanes)
                            ]
                        ),  # fmt: skip
                        payload.first,
                        payload.last,
                    )
                )

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(loader)
    sim.add_testbench(sink)
    sim.run_until(PERIOD * (20 * (len(rows) + len(beats)) + 100))
    return got


@pytest.mark.parametrize("seed", [0, 1])
def test_rows_pair_with_beats_under_stalls(seed):
    rng = np.random.default_rng(seed)
    dut = WeightBuffer(positions=5, lanes=3, cin_max=6)
    rows = rng.integers(-128, 128, size=(6, 3, 5))
    rows[0] = -128
    rows[5] = 127
    beats = []
    for _ in range(30):
        ci = int(rng.integers(0, 6))
        beats.append({"act": rng.integers(-128, 128, 5).tolist(), "ci": ci, "bank": seed,
                      "first": int(ci == 0), "last": int(ci == 5)})  # fmt: skip
    got = _run(dut, rows, beats, seed=seed, bank=seed)
    assert len(got) == len(beats)
    for beat, (act, weights, first, last) in zip(beats, got, strict=True):
        assert act == beat["act"]
        assert np.array_equal(weights, rows[beat["ci"]])
        assert (first, last) == (beat["first"], beat["last"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"positions": 0}, ValueError, "positions must be an int >= 1, got 0"),
        ({"lanes": 1.5}, TypeError, "lanes must be an int >= 1"),
        ({"cin_max": 0}, ValueError, "cin_max must be an int >= 1"),
        ({"weight_bits": 1}, ValueError, "weight_bits must be an int >= 2"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"positions": 4, "lanes": 2, "cin_max": 8} | kwargs
    with pytest.raises(error, match=match):
        WeightBuffer(**args)
