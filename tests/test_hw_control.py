# amaranth: UnusedElaboratable=no

"""The engine's control blocks in Amaranth's simulator (seconds, no Verilator):
the stall-together pipeline control, the descriptor registers and the channel serializer."""

import dataclasses
import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.config import EngineConfig
from sfc_hls.hw.descriptor import DescriptorRegisters
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.hw.pipeline import StallPipeline
from sfc_hls.hw.port_buffers import CreditFifo, RegisterSlice, SkidBuffer
from sfc_hls.hw.register_map import REGISTERS, START
from sfc_hls.hw.serializer import ResultSerializer
from sfc_hls.sim.amaranth_streams import (
    collect,
    idle,
    measure_transfers,
    random_gaps,
    run_testbenches,
    send,
    stream_through,
)


# -- StallPipeline -------------------------------------------------------------------------------
class _Delay(wiring.Component):
    """``depth`` stage registers built with StallPipeline: o = i + depth after ``depth`` cycles."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def __init__(self, depth: int) -> None:
        self.depth = depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        pipe = StallPipeline(m, i=self.i, o=self.o, depth=self.depth)
        value = self.i.payload
        for k in range(self.depth):
            value = pipe.register(m, value + 1, name=f"v{k}", shape=8)
        m.d.comb += self.o.payload.eq(value)
        ticks = Signal(8)  # gives depth 0 a clock domain to simulate
        m.d.sync += ticks.eq(ticks + 1)
        return m


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_stall_pipeline_latency_throughput_and_stall(depth):
    stall = (6, 7)  # o.ready low at these edges
    dut = _Delay(depth)
    transfers = measure_transfers(
        dut, dut.i, dut.o, list(range(10)), ready=lambda tick: tick not in stall, max_cycles=60
    )
    assert [int(p) for p in transfers.out_payloads] == [k + depth for k in range(10)]
    # i.ready = ~o.valid | o.ready (depth > 0): the whole pipeline holds during the stall.
    for _, in_valid, in_ready, out_valid, out_ready in transfers.samples:
        if depth:
            assert in_ready == (not out_valid or out_ready)
        else:
            assert in_ready == out_ready and out_valid == in_valid
    held = [t <= stall[0] - 1 and t + depth >= stall[0] for t in transfers.in_ticks]
    assert transfers.out_ticks == [
        t + depth + len(stall) * h for t, h in zip(transfers.in_ticks, held, strict=True)
    ]


def test_stall_pipeline_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth must be an int >= 0, got -1"):
        StallPipeline(Module(), i=None, o=None, depth=-1)


# -- DescriptorRegisters -------------------------------------------------------------------------
SMALL = EngineConfig(algorithm="wino-2x2-3x3", pco=3, cin_max=4, cout_max=9)


def _registers():
    iface = EngineInterface.from_config(SMALL)
    dut = DescriptorRegisters(
        descriptor_layout=iface.layouts["descriptor"],
        registers=iface.registers,
        limits=iface.limits,
    )
    return iface, dut


def _run_writes(dut, writes):
    """Write ``(addr, data)`` pairs with the engine idle, each as soon as ``i_cfg`` is ready;
    return, per write taken in cycle ``t``: (start, valid, error, descriptor), ``valid`` in
    cycle ``t + START_DELAY - 1`` (when a START commits) and the others in cycle
    ``t + START_DELAY``."""
    snaps, taken = [], []

    async def bench(ctx):
        ctx.set(dut.accept, 1)
        for addr, value in writes:
            ctx.set(dut.i_cfg.payload, {"addr": addr, "data": value})
            ctx.set(dut.i_cfg.valid, 1)
            while True:
                ready = ctx.get(dut.i_cfg.ready)
                if ready:
                    taken.append(len(snaps))
                await ctx.tick()
                snaps.append((ctx.get(dut.start), ctx.get(dut.valid), ctx.get(dut.error),
                              ctx.get(dut.descriptor)))  # fmt: skip
                if ready:
                    break
        ctx.set(dut.i_cfg.valid, 0)
        for _ in range(DescriptorRegisters.START_DELAY + 1):
            await ctx.tick()
            snaps.append((ctx.get(dut.start), ctx.get(dut.valid), ctx.get(dut.error),
                          ctx.get(dut.descriptor)))  # fmt: skip

    run_testbenches(dut, bench, cycles=3 * len(writes) + 10)
    delay = DescriptorRegisters.START_DELAY
    return [(snaps[t + delay - 1][0], snaps[t + delay - 2][1], snaps[t + delay - 1][2],
             snaps[t + delay - 1][3]) for t in taken]  # fmt: skip


def test_descriptor_registers_decode_the_table():
    iface, dut = _registers()
    m = iface.positions
    writes = [
        (REGISTERS["CIN"], 3),
        (REGISTERS["COUT"], 7),
        (REGISTERS["TILES"], 5),
        (REGISTERS["FLAGS"], 0b11),  # bit 0: ReLU; bit 1 ignored
        (REGISTERS["RESCALE_SHIFT"], 12),
        *[(REGISTERS["ACT_MULT"] + j, 100 + j) for j in range(m)],
        *[(REGISTERS["ACT_SHIFT"] + j, j % 4) for j in range(m)],
        (REGISTERS["CONTROL"], START),
    ]
    seen = _run_writes(dut, writes)
    start, valid, error, desc = seen[-1]
    assert (start, valid, error) == (1, 1, 0)
    assert (desc.cin, desc.cout, desc.tiles, desc.relu, desc.rescale_shift) == (3, 7, 5, 1, 12)
    assert [int(desc.act_mult[j]) for j in range(m)] == [100 + j for j in range(m)]
    assert [int(desc.act_shift[j]) for j in range(m)] == [j % 4 for j in range(m)]
    assert not any(s for s, *_ in seen[:-1])  # only CONTROL = START starts
    assert _run_writes(dut, [(REGISTERS["CIN"], 1), (REGISTERS["CONTROL"], 2)])[-1][0] == 0


@pytest.mark.parametrize(
    "bad_write",
    [
        (REGISTERS["CIN"], SMALL.cin_max + 1),
        (REGISTERS["COUT"], SMALL.cout_max + 1),
        (REGISTERS["TILES"], 1 << 16),
        (REGISTERS["RESCALE_SHIFT"], 10_000),
        (REGISTERS["ACT_SHIFT"] + 3, 1000),
        (REGISTERS["ACT_MULT"], 1 << 16),
        (0x0777, 1),  # unmapped
        (REGISTERS["ACT_SHIFT"] + 16, 0),  # one past the positions
    ],
    ids=["cin", "cout", "tiles", "rescale_shift", "act_shift", "act_mult", "unmapped", "past_end"],
)
def test_descriptor_error_is_sticky_until_a_valid_start(bad_write):
    _, dut = _registers()
    good = [(REGISTERS["CIN"], 2), (REGISTERS["COUT"], 3), (REGISTERS["TILES"], 1)]
    control = (REGISTERS["CONTROL"], START)
    seen = _run_writes(dut, [*good, bad_write, control, (REGISTERS["CIN"], 1), *good, control])
    bad_start, restart = seen[len(good) + 1], seen[-1]
    assert bad_start[:3] == (0, 0, 1)  # START written, descriptor invalid: no start, error set
    assert seen[-2][2] == 1  # still set while the descriptor is rewritten
    assert restart[:3] == (1, 1, 0)  # the rewritten descriptor starts and clears it


def test_descriptor_needs_nonzero_counts():
    _, dut = _registers()
    seen = _run_writes(dut, [(REGISTERS["CIN"], 2), (REGISTERS["COUT"], 3),
                             (REGISTERS["CONTROL"], START)])  # fmt: skip
    assert seen[-1][:3] == (0, 0, 1)  # TILES = 0


def test_descriptor_staged_during_a_layer_starts_when_the_engine_is_idle():
    """Writes while busy go to the staged copy; START waits (``pending``, ``i_cfg`` stalls)
    and commits in the first idle cycle: ``start`` one cycle later, with the staged values."""
    _, dut = _registers()
    first = [(REGISTERS["CIN"], 2), (REGISTERS["COUT"], 3), (REGISTERS["TILES"], 1),
             (REGISTERS["CONTROL"], START)]  # fmt: skip
    second = [(REGISTERS["CIN"], 4), (REGISTERS["TILES"], 9), (REGISTERS["CONTROL"], START)]
    trace = {}

    async def write(ctx, addr, value):
        ctx.set(dut.i_cfg.payload, {"addr": addr, "data": value})
        ctx.set(dut.i_cfg.valid, 1)
        await ctx.tick().until(dut.i_cfg.ready)
        ctx.set(dut.i_cfg.valid, 0)

    async def bench(ctx):
        ctx.set(dut.accept, 1)
        for addr, value in first:
            await write(ctx, addr, value)
        for _ in range(DescriptorRegisters.START_DELAY - 1):  # commit, then start
            await ctx.tick()
        assert ctx.get(dut.start) and ctx.get(dut.descriptor.cin) == 2
        ctx.set(dut.accept, 0)  # the first layer runs
        for addr, value in second:
            await write(ctx, addr, value)
        for _ in range(DescriptorRegisters.START_DELAY - 1):  # long enough to have started
            await ctx.tick()
        trace["running"] = ctx.get(dut.descriptor.cin), ctx.get(dut.pending)
        trace["ready_while_pending"] = ctx.get(dut.i_cfg.ready)
        ctx.set(dut.accept, 1)  # the first layer ends
        await ctx.tick()  # the commit (pending falls), then the descriptor's load and start
        trace["commit"] = ctx.get(dut.start), ctx.get(dut.descriptor.cin), ctx.get(dut.pending)
        await ctx.tick()
        trace["committed"] = ctx.get(dut.start), ctx.get(dut.descriptor.cin), ctx.get(dut.pending)
        trace["tiles"] = ctx.get(dut.descriptor.tiles)

    run_testbenches(dut, bench, cycles=40)
    assert trace["running"] == (2, 1)  # staged writes leave the running descriptor alone
    assert trace["ready_while_pending"] == 0
    assert trace["commit"] == (0, 2, 0)
    assert trace["committed"] == (1, 4, 0) and trace["tiles"] == 9


# -- ResultSerializer ----------------------------------------------------------------------------
#: m = 16 positions in B = 4 blocks of W = 4, 3 lanes: every branch of the serializer is used.
SERIAL = EngineConfig(algorithm="wino-2x2-3x3", pco=3, cin_max=4, cout_max=12, backend_width=4)


def _param_word(bank: int, lane: int, block: int, width: int) -> dict:
    """The parameter memory entry of (bank, lane, block): values that name their address."""
    base = 1000 * bank + 100 * lane + 10 * block
    return {"rescale_mult": [base + j for j in range(width)],
            "params": {"bias": base, "out_mult": 1, "out_shift": 0}}  # fmt: skip


def _serializer_expected(results, cout, tiles, pco, blocks, width, replicas):
    """Beats in order: (data, param (bank, lane, block), channel, tile, index, end, last).

    Fast mode: ``replicas = 1``, a packet of B blocks per lane.  Direct mode: a packet
    of B / R blocks per (lane, replica), channel ``base + r P_co + lane``.
    """
    per_group, per_replica = pco * replicas, blocks // replicas
    groups = -(-cout // per_group)
    beats = []
    for g in range(groups):
        for t in range(tiles):
            result = results[g * tiles + t]
            for lane in range(pco):
                for r in range(replicas):
                    channel = g * per_group + r * pco + lane
                    if channel >= cout:
                        continue
                    for k in range(per_replica):
                        block = r * per_replica + k
                        beats.append((result[lane][block * width : (block + 1) * width].tolist(),
                                      (g % 2, lane, block), channel, t, k, k == per_replica - 1))  # fmt: skip
    return [(*b, i == len(beats) - 1) for i, b in enumerate(beats)], groups


def _run_serializer(dut, results, layer, total, gaps, param_memory):
    """Stream ``results`` through ``dut`` with a one-cycle parameter memory; beats, releases."""
    received, releases = [], []

    async def producer(ctx):
        for port, value in layer.items():
            ctx.set(getattr(dut, port), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for result in results:
            await idle(ctx, gaps.choice([0, 0, 1, 4]))
            await send(ctx, dut.i_acc, [[int(v) for v in row] for row in result])

    async def memory(ctx):  # RegisteredAddressMemory: address registers, asynchronous read
        async for _, _, addr, load in ctx.tick().sample(dut.param_addr, dut.param_load):
            if load:
                ctx.set(dut.param_data, param_memory[addr])

    async def consumer(ctx):
        await collect(ctx, dut.o_lane, total, received, ready=lambda: gaps.random() < 0.7)

    async def watch(ctx):
        async for _, _, release, bank, done in ctx.tick().sample(dut.release, dut.bank, dut.done):
            if release:
                releases.append((bank, done))

    run_testbenches(dut, producer, consumer, memory, watch, cycles=40 * total + 100)
    return received, releases


@pytest.mark.parametrize(
    ("mode", "cout", "replicas"),
    # Last groups of 1, 3 (full) and 2 lanes; direct: partial replicas.
    [("fast", 7, 1), ("fast", 6, 1), ("fast", 8, 1), ("direct", 11, 2), ("direct", 12, 4),
     ("direct", 10, 4)],
)  # fmt: skip
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("target", ["xilinx", "ecp5"])
def test_result_serializer_order_framing_params_and_banks(mode, cout, replicas, seed, target):
    """A layer with a partial last group, 2 tiles per group, random gaps and backpressure:
    the W-wide slices in order, each with its (bank, lane, block) parameters, channel, tile,
    index, end and last; one bank release per group.  ECP5: the counters' flags are
    registers loaded one state ahead, and a result is taken only when none is held."""
    iface = EngineInterface.from_config(dataclasses.replace(SERIAL, target=target, macs_per_dsp=1))
    dut = ResultSerializer(iface)
    rng = np.random.default_rng(seed)
    pco, m, nb, w, tiles = SERIAL.pco, iface.positions, iface.blocks, iface.width, 2
    assert (m, nb, w) == (16, 4, 4)
    groups = -(-cout // (pco * replicas))
    results = [rng.integers(-1000, 1000, size=(pco, m)) for _ in range(groups * tiles)]
    expected, groups = _serializer_expected(results, cout, tiles, pco, nb, w, replicas)
    param_memory = [_param_word(a // (pco * nb), a // nb % pco, a % nb, w)
                    for a in range(2 * pco * nb)]  # fmt: skip
    layer = {"cout": cout, "tiles": tiles, "direct": int(mode == "direct"), "replicas": replicas,
             "blocks_per_replica": nb // replicas}  # fmt: skip
    received, releases = _run_serializer(
        dut, results, layer, len(expected), random.Random(seed), param_memory
    )
    assert len(received) == len(expected)
    for n, (got, want) in enumerate(zip(received, expected, strict=True)):
        data, (bank, lane, block), channel, tile, index, end, last = want
        word = _param_word(bank, lane, block, w)
        assert [int(got.data[j]) for j in range(w)] == data, n
        assert [int(got.mult[j]) for j in range(w)] == word["rescale_mult"], n
        assert int(got.meta.params.bias) == word["params"]["bias"], n
        tag = got.meta.tag
        assert (int(tag.channel), int(tag.tile), int(tag.index), int(tag.end), int(tag.last)) == (
            channel, tile, index, int(end), int(last)), n  # fmt: skip
    # One release per group, alternating banks, the last one before done rises.
    assert [bank for bank, _ in releases] == [g % 2 for g in range(groups)]


# -- Port buffers --------------------------------------------------------------------------------
def _skid_chunks_of_7(layout):
    return SkidBuffer(layout, chunk_bits=7)


def _skid_select_copies(layout):
    return SkidBuffer(layout, chunk_bits=7, select_bits=3)


@pytest.mark.parametrize(
    "buffer", [RegisterSlice, SkidBuffer, _skid_chunks_of_7, _skid_select_copies]
)
@pytest.mark.parametrize("gaps", [(0,), (0, 0, 1, 3)], ids=["full-rate", "gaps"])
@pytest.mark.parametrize("width", [20, 200])  # 200: the skid buffer in four chunks
def test_port_buffer_passes_every_beat_in_order(buffer, gaps, width):
    rng = random.Random(11)
    beats = [rng.randrange(1 << width) for _ in range(200)]
    dut = buffer(unsigned(width))
    got = stream_through(dut, dut.i, dut.o, beats, in_gap=random_gaps(rng, gaps),
                         out_gap=random_gaps(rng, gaps), max_cycles=2000)  # fmt: skip
    assert [int(v) for v in got] == beats


@pytest.mark.parametrize("buffer", [RegisterSlice, SkidBuffer])
def test_port_buffer_runs_at_one_beat_per_cycle(buffer):
    dut = buffer(unsigned(8))
    transfers = measure_transfers(dut, dut.i, dut.o, list(range(50)), ready=lambda tick: True)
    assert transfers.out_ticks == [t + buffer.latency for t in transfers.in_ticks]
    assert transfers.in_ticks == list(range(transfers.in_ticks[0], transfers.in_ticks[0] + 50))


@pytest.mark.parametrize("chunk_bits", [0, 2.5, None])
def test_skid_buffer_rejects_bad_chunk_bits(chunk_bits):
    with pytest.raises(ValueError, match="chunk_bits must be an int >= 1"):
        SkidBuffer(unsigned(8), chunk_bits=chunk_bits)


@pytest.mark.parametrize("select_bits", [0, 2.5, "8"])
def test_skid_buffer_rejects_bad_select_bits(select_bits):
    with pytest.raises(ValueError, match="select_bits must be an int >= 1 or None"):
        SkidBuffer(unsigned(8), select_bits=select_bits)


def test_skid_buffer_ready_does_not_depend_on_the_output():
    """``i.ready`` of the skid buffer is a register: changing ``o.ready`` within a cycle
    leaves it alone (the register slice's follows ``o.ready``: the contrast is the check)."""
    seen = {}
    for buffer in (SkidBuffer, RegisterSlice):
        dut = buffer(unsigned(8))

        async def bench(ctx, dut=dut, name=buffer.__name__):
            ctx.set(dut.i.valid, 1)
            await ctx.tick().repeat(3)  # both entries fill (the output is not ready)
            values = []
            for ready in (0, 1, 0):
                ctx.set(dut.o.ready, ready)
                values.append(ctx.get(dut.i.ready))
            seen[name] = values

        run_testbenches(dut, bench, cycles=10)
    assert seen["SkidBuffer"] == [0, 0, 0]
    assert seen["RegisterSlice"] == [0, 1, 0]


class _CreditedPipeline(wiring.Component):
    """``x + 1`` through a ``latency``-stage StallPipeline that never stalls, behind a
    CreditFifo (the rescale's arrangement in the engine)."""

    i: In(stream.Signature(unsigned(20)))
    o: Out(stream.Signature(unsigned(21)))

    def __init__(
        self, latency: int, return_values: tuple[int, ...] = (1,), slice_bits: int | None = None
    ) -> None:
        super().__init__()
        self.latency = latency
        self.credits = CreditFifo(
            unsigned(20),
            unsigned(21),
            latency=latency,
            return_values=return_values,
            slice_bits=slice_bits,
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.credits = credits = self.credits
        pipe_i, pipe_o = (
            stream.Signature(unsigned(20)).create(),
            stream.Signature(unsigned(21)).create(),
        )
        pipe = StallPipeline(m, i=pipe_i, o=pipe_o, depth=self.latency, name="p")
        value = pipe_i.payload + 1
        for k in range(self.latency):
            value = pipe.register(m, value, name=f"v{k}")
        m.d.comb += pipe_o.payload.eq(value)
        wiring.connect(m, wiring.flipped(self.i), credits.i)
        m.d.comb += [
            pipe_i.valid.eq(credits.to_pipe.valid),
            pipe_i.payload.eq(credits.to_pipe.payload),
            credits.to_pipe.ready.eq(pipe_i.ready),
            credits.from_pipe.valid.eq(pipe_o.valid),
            credits.from_pipe.payload.eq(pipe_o.payload),
            pipe_o.ready.eq(credits.from_pipe.ready),
        ]
        wiring.connect(m, credits.o, wiring.flipped(self.o))
        if len(credits.return_values) > 1:  # bits 8-9 of a result select its return
            m.d.comb += credits.return_sel.eq(credits.o.payload[8:10])
        return m


@pytest.mark.parametrize("slice_bits", [None, 4], ids=["one-address", "slices-of-4"])
@pytest.mark.parametrize("latency", [1, 4, 6])
@pytest.mark.parametrize("gaps", [(0,), (0, 0, 1, 3)], ids=["full-rate", "gaps"])
def test_credit_fifo_passes_every_result_in_order(latency, gaps, slice_bits):
    """With ``slice_bits`` the FIFO's read address is a register per 4 bits (6 copies,
    XOR-permuted): the results must come out unchanged."""
    rng = random.Random(latency)
    beats = [rng.randrange(1 << 20) for _ in range(300)]
    dut = _CreditedPipeline(latency, slice_bits=slice_bits)
    got = stream_through(dut, dut.i, dut.o, beats, in_gap=random_gaps(rng, gaps),
                         out_gap=random_gaps(rng, gaps), max_cycles=4000)  # fmt: skip
    assert [int(v) for v in got] == [b + 1 for b in beats]


@pytest.mark.parametrize("latency", [1, 4, 5, 6, 13])
def test_credit_fifo_runs_at_one_beat_per_cycle(latency):
    """At latencies 5 and 13 the FIFO has exactly ``latency + 3`` entries."""
    dut = _CreditedPipeline(latency)
    assert dut.credits.depth >= latency + 3
    transfers = measure_transfers(dut, dut.i, dut.o, list(range(60)), ready=lambda tick: True)
    latency_total = latency + CreditFifo.latency
    assert transfers.out_ticks == [t + latency_total for t in transfers.in_ticks]
    assert transfers.in_ticks == list(range(transfers.in_ticks[0], transfers.in_ticks[0] + 60))


@pytest.mark.parametrize("gaps", [(0,), (0, 0, 1, 3)], ids=["full-rate", "gaps"])
def test_credit_fifo_returns_credits_per_result(gaps):
    """Results returning 1, 0 or 3 credits (packets of one beat, and of three whose last
    returns the three, as the engine's fast-mode blocks): every result in order, and
    once they have drained, with the output stalled, the gate takes exactly ``depth``
    beats (a credit lost or returned twice would show)."""
    rng = random.Random(7)
    beats = []
    while len(beats) < 300:  # bits 8-9: 0 returns 1, 1 returns 0, 2 returns 3
        sel = [0] if rng.random() < 0.4 else [1, 1, 2]
        beats += [(s << 8) | rng.randrange(255) | (rng.randrange(1 << 10) << 10) for s in sel]
    dut = _CreditedPipeline(4, return_values=(1, 0, 3))
    in_gap, out_gap = random_gaps(rng, gaps), random_gaps(rng, gaps)
    received, drained, taken = [], [], []

    async def producer(ctx):
        for beat in beats:
            await idle(ctx, in_gap())
            await send(ctx, dut.i, beat)
        while not drained:
            await ctx.tick()
        ctx.set(dut.i.valid, 1)
        for _ in range(40):
            taken.append(ctx.get(dut.i.ready))
            await ctx.tick()

    async def consumer(ctx):
        await collect(ctx, dut.o, len(beats), received, ready=lambda: out_gap() == 0)
        ctx.set(dut.o.ready, 0)
        await idle(ctx, 10)
        drained.append(True)

    run_testbenches(dut, producer, consumer, cycles=6000)
    assert [int(v) for v in received] == [b + 1 for b in beats]
    assert sum(taken) == dut.credits.depth


def test_credit_fifo_ready_is_a_register_and_holds_back_beats():
    """With the output stalled, the gate takes exactly ``depth`` beats (the FIFO never
    overflows), and ``i.ready`` does not follow ``o.ready`` within a cycle."""
    dut = _CreditedPipeline(4)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        taken = 0
        for _ in range(40):
            taken += ctx.get(dut.i.ready)
            await ctx.tick()
        seen["taken"] = taken
        values = []
        for ready in (1, 0, 1):
            ctx.set(dut.o.ready, ready)
            values.append(ctx.get(dut.i.ready))
        seen["ready"] = values

    run_testbenches(dut, bench, cycles=60)
    assert seen["taken"] == dut.credits.depth
    assert seen["ready"] == [0, 0, 0]
