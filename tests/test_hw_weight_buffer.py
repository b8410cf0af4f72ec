# amaranth: UnusedElaboratable=no

"""WeightBuffer: rows loaded by stream, read back paired with activation beats under stalls."""

import random

import numpy as np
import pytest

from sfc_hls.hw.weight_buffer import WeightBuffer
from sfc_hls.sim.amaranth_streams import collect, run_testbenches, send


def _decode(dut, payload):
    """``(act, weights, first, last)`` of an ``o_beat`` payload."""
    act = [payload.act[k] for k in range(dut.positions)]
    weights = np.array(
        [[payload.weights[ln][k] for k in range(dut.positions)] for ln in range(dut.lanes)]
    )
    return act, weights, payload.first, payload.last


def _run(dut, rows, beats, *, seed, bank=0):
    rnd = random.Random(seed)
    got = []

    async def loader(ctx):
        ctx.set(dut.restart, 1)
        ctx.set(dut.load_bank, bank)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        for row in rows:
            await send(ctx, dut.i_weight, row.tolist())
            if rnd.random() < 0.3:
                await ctx.tick()
        assert ctx.get(dut.loaded) == len(rows)
        for beat in beats:
            while rnd.random() < 0.3:
                await ctx.tick()
            await send(ctx, dut.i_beat, beat)

    async def sink(ctx):
        await collect(ctx, dut.o_beat, len(beats), got, ready=lambda: rnd.random() < 0.6)

    run_testbenches(dut, loader, sink, cycles=20 * (len(rows) + len(beats)) + 100)
    return [_decode(dut, payload) for payload in got]


@pytest.mark.parametrize("target", ["xilinx", "ecp5"])
@pytest.mark.parametrize("seed", [0, 1])
def test_rows_pair_with_beats_under_stalls(seed, target):
    rng = np.random.default_rng(seed)
    # ECP5: the DP16KD lowering does not run in Amaranth's simulator; the same
    # contract in Amaranth (tests/test_hw_block_ram.py checks the two are equal, and
    # the ECP5 engine runs the DP16KD model in Verilator, tests/test_engine.py).
    dut = WeightBuffer(positions=5, lanes=3, cin_max=6, target=target, ram_primitives=False)
    assert dut.latency == {"xilinx": 4, "ecp5": 6}[target]
    rows = rng.integers(-128, 128, size=(6, 3, 5))
    rows[0] = -128
    rows[5] = 127
    beats = []
    for _ in range(30):
        ci = int(rng.integers(0, 6))
        meta = {"ci": ci, "bank": seed, "first": int(ci == 0), "last": int(ci == 5)}
        beats.append({"data": rng.integers(-128, 128, 5).tolist(), "meta": meta})
    got = _run(dut, rows, beats, seed=seed, bank=seed)
    assert len(got) == len(beats)
    for beat, (act, weights, first, last) in zip(beats, got, strict=True):
        assert act == beat["data"]
        assert np.array_equal(weights, rows[beat["meta"]["ci"]])
        assert (first, last) == (beat["meta"]["first"], beat["meta"]["last"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"positions": 0}, ValueError, "positions must be an int >= 1, got 0"),
        ({"lanes": 1.5}, TypeError, "lanes must be an int >= 1"),
        ({"cin_max": 0}, ValueError, "cin_max must be an int >= 1"),
        ({"weight_bits": 1}, ValueError, "weight_bits must be an int >= 2"),
        ({"target": "gowin"}, ValueError, r"target must be one of \('xilinx', 'ecp5'\)"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"positions": 4, "lanes": 2, "cin_max": 8} | kwargs
    with pytest.raises(error, match=match):
        WeightBuffer(**args)
