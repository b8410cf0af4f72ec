"""TileSplitter and TileCollector in the Amaranth simulator: order, padding, tags, throughput."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from sfc_hls.hw.tile_blocks import TileCollector, TileSplitter
from sfc_hls.sim.amaranth_streams import collect, idle, run_testbenches, send

TAG = data.StructLayout(
    {"channel": unsigned(3), "tile": unsigned(4), "index": unsigned(3), "end": 1, "last": 1}
)
META = data.StructLayout({"params": unsigned(5), "tag": TAG})


def _tile(rng: random.Random, n: int, k: int, last: bool) -> dict:
    tag = {"channel": k % 8, "tile": k % 16, "index": 0, "end": 0, "last": int(last)}
    return {"data": [rng.randrange(-2048, 2048) for _ in range(n)],
            "meta": {"params": rng.randrange(32), "tag": tag}}  # fmt: skip


def _blocks(tile: dict, width: int) -> list[tuple]:
    """The splitter's beats for ``tile``: (data, params, channel, tile, index, end, last)."""
    values, meta = tile["data"], tile["meta"]
    beats = -(-len(values) // width)
    padded = values + [0] * (beats * width - len(values))
    tag = meta["tag"]
    return [(tuple(padded[b * width : (b + 1) * width]), meta["params"], tag["channel"],
             tag["tile"], b, int(b == beats - 1), int(tag["last"] and b == beats - 1))
            for b in range(beats)]  # fmt: skip


def _as_tuple(payload) -> tuple:
    tag = payload.meta.tag
    return (tuple(int(v) for v in payload.data), int(payload.meta.params), int(tag.channel),
            int(tag.tile), int(tag.index), int(tag.end), int(tag.last))  # fmt: skip


@pytest.mark.parametrize(("n", "width"), [(49, 11), (16, 4), (16, 23), (4, 3)])
def test_splitter_blocks_in_order_with_padding_tags_and_backpressure(n, width):
    rng = random.Random(n * 100 + width)
    layout = data.StructLayout({"data": data.ArrayLayout(signed(12), n), "meta": META})
    dut = TileSplitter(in_layout=layout, width=width)
    tiles = [_tile(rng, n, k, last=(k == 11)) for k in range(12)]
    expected = [beat for tile in tiles for beat in _blocks(tile, width)]
    received: list = []

    async def producer(ctx):
        for tile in tiles:
            await idle(ctx, rng.choice([0, 0, 1, 3]))
            await send(ctx, dut.i, tile)

    async def consumer(ctx):
        await collect(ctx, dut.o, len(expected), received, ready=lambda: rng.random() < 0.7)

    run_testbenches(dut, producer, consumer, cycles=40 * len(expected) + 50)
    assert [_as_tuple(p) for p in received] == expected


def test_splitter_takes_the_next_tile_while_sending_the_last_block():
    """Latency 1 and no bubble: tiles offered back to back leave as one block per cycle,
    each tile taken in one cycle (the transform in front never waits for its blocks)."""
    n, width, count = 49, 11, 6
    rng = random.Random(7)
    layout = data.StructLayout({"data": data.ArrayLayout(signed(12), n), "meta": META})
    dut = TileSplitter(in_layout=layout, width=width)
    tiles = [_tile(rng, n, k, last=False) for k in range(count)]
    beats = dut.beats * count
    cycles: dict[str, list[int]] = {"in": [], "out": []}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(beats + dut.beats + 4):
            k = len(cycles["in"])
            ctx.set(dut.i.valid, k < count)
            if k < count:
                ctx.set(dut.i.payload, tiles[k])
            _, _, i_ready, o_valid = await ctx.tick().sample(dut.i.ready, dut.o.valid)
            if k < count and i_ready:
                cycles["in"].append(cycle)
            if o_valid:
                cycles["out"].append(cycle)

    run_testbenches(dut, bench, cycles=beats + dut.beats + 10)
    assert dut.latency == 1 and cycles["out"][0] == cycles["in"][0] + dut.latency
    assert cycles["out"] == list(range(cycles["out"][0], cycles["out"][0] + beats))
    # tile k + 1 is taken in the cycle tile k's last block leaves
    assert cycles["in"][1:] == [cycles["in"][0] + dut.beats * k for k in range(1, count)]


@pytest.mark.parametrize("spacing", [0, 2])
def test_always_ready_splitter_keeps_pace_with_tiles_every_beats_cycles(spacing):
    """``always_ready``: ``i.ready`` is constant 1, and tiles offered every ``beats +
    spacing`` cycles (the engine's collector: one per ``B >= beats``) leave in order,
    every block, with ``o.ready`` high."""
    n, width, count = 49, 11, 6
    rng = random.Random(spacing)
    layout = data.StructLayout({"data": data.ArrayLayout(signed(12), n), "meta": META})
    dut = TileSplitter(in_layout=layout, width=width, always_ready=True)
    tiles = [_tile(rng, n, k, last=(k == count - 1)) for k in range(count)]
    expected = [beat for tile in tiles for beat in _blocks(tile, width)]
    received, ready_seen = [], set()

    async def producer(ctx):
        ctx.set(dut.o.ready, 1)
        for tile in tiles:
            ctx.set(dut.i.payload, tile)
            ctx.set(dut.i.valid, 1)
            ready_seen.add(ctx.get(dut.i.ready))
            await ctx.tick()
            ctx.set(dut.i.valid, 0)
            await idle(ctx, dut.beats - 1 + spacing)

    async def consumer(ctx):
        async for _, _, valid, payload in ctx.tick().sample(dut.o.valid, dut.o.payload):
            if valid:
                received.append(_as_tuple(payload))

    run_testbenches(dut, producer, consumer, cycles=(dut.beats + spacing) * count + 10)
    assert ready_seen == {1}
    assert received == expected


def test_collector_gathers_a_packet_into_one_beat():
    width, blocks = 4, 3
    rng = random.Random(3)
    in_layout = data.StructLayout({"data": data.ArrayLayout(signed(10), width), "meta": META})
    dut = TileCollector(in_layout=in_layout, blocks=blocks)
    packets = [[[rng.randrange(-512, 512) for _ in range(width)] for _ in range(blocks)]
               for _ in range(5)]  # fmt: skip
    received: list = []

    async def producer(ctx):
        for k, packet in enumerate(packets):
            for b, values in enumerate(packet):
                tag = {"channel": k, "tile": 0, "index": b, "end": int(b == blocks - 1), "last": 0}
                await idle(ctx, rng.choice([0, 2]))
                await send(ctx, dut.i, {"data": values, "meta": {"params": k, "tag": tag}})

    async def consumer(ctx):
        await collect(ctx, dut.o, len(packets), received, ready=lambda: rng.random() < 0.6)

    run_testbenches(dut, producer, consumer, cycles=400)
    got = [
        ([int(v) for v in p.data], int(p.meta.params), int(p.meta.tag.channel)) for p in received
    ]
    assert got == [([v for block in packet for v in block], k, k)
                   for k, packet in enumerate(packets)]  # fmt: skip
