# amaranth: UnusedElaboratable=no

"""ActReplay: a layer's first group of ``i_act`` beats passed through, then replayed (Amaranth simulation)."""

from __future__ import annotations

import dataclasses
import gc
import random

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from sfc_hls.hw.act_replay import ActReplay
from sfc_hls.sim.amaranth_streams import (
    Transfers,
    pass_through_check,
    record_transfers,
    run_testbenches,
    send,
)

LAYOUT = data.ArrayLayout(signed(8), 5)
BITS = LAYOUT.size
DEPTH = 16
COUT_MAX = 40
PER_GROUP_MAX = 8


def _dut(depth: int = DEPTH) -> ActReplay:
    return ActReplay(
        act_layout=LAYOUT, depth=depth, cout_max=COUT_MAX, group_channels_max=PER_GROUP_MAX
    )


def _simulate(dut, *testbenches, cycles: int) -> None:
    """:func:`run_testbenches`, then the testbenches a failure left waiting are finalized:
    later, inside pytest's failure report, they can make CPython 3.11's ``ast.parse``
    raise ``SystemError: AST constructor recursion depth mismatch``."""
    run_testbenches(dut, *testbenches, cycles=cycles)
    gc.collect()


@dataclasses.dataclass
class Layer:
    """A layer: its parameters, its ``i_act`` beats (:meth:`fill`), what ``o_act`` carries."""

    group_beats: int
    cout: int
    per_group: int
    replay: bool = True  # ``enable``
    abandon_after: int | None = None  # the next start comes after this many o_act beats
    inputs: list[int] = dataclasses.field(default_factory=list)

    @property
    def groups(self) -> int:
        return -(-self.cout // self.per_group)

    def fill(self, rnd: random.Random) -> Layer:
        """Random beats: the first group's (replay), every group's (pass-through)."""
        count = self.group_beats * (1 if self.replay else self.groups)
        self.inputs = [rnd.getrandbits(BITS) for _ in range(count)]
        return self

    @property
    def sent(self) -> list[int]:
        """The beats the host sends: an abandoned layer's stop where it is abandoned."""
        return self.inputs if self.abandon_after is None else self.inputs[: self.abandon_after]

    def expected(self, depth: int) -> list[int]:
        """The ``o_act`` beats: the first group, then per further group the stored beats,
        beat ``k`` from word ``k mod depth`` (the documented wrap of an overflow)."""
        if not self.replay:
            return list(self.inputs)
        stored = [self.inputs[k % depth] for k in range(self.group_beats)]
        return self.inputs + stored * (self.groups - 1)


@dataclasses.dataclass
class Tick:
    """One clock edge as the monitor saw it (values just before the edge)."""

    start: int
    taken: bool  # i_act.valid & i_act.ready
    in_ready: int
    out_valid: int
    out_ready: int
    out_payload: int
    overflow: int


def _segments(trace: list[Tick]) -> list[tuple[int, list[Tick]]]:
    """``(tick index of the start, ticks from it to the next start)`` per start."""
    starts = [n for n, t in enumerate(trace) if t.start]
    ends = [*starts[1:], len(trace)]
    return [(s, trace[s:e]) for s, e in zip(starts, ends, strict=True)]


def _run(dut, layers: list[Layer], *, seed: int, gap: float = 0.3, ready: float = 0.7):
    """``layers`` back to back, each after a ``start``; random idle cycles before input beats
    (probability ``gap`` per cycle) and random ``o_act.ready`` (probability ``ready``).

    Between layers the next layer's first beat (after the last one, a random beat) is
    offered until the layer's ``o_act`` beats are out, and during the next ``start``: it
    must wait.  ``group_beats`` and ``per_group`` hold random values in the ``start`` cycle
    (they are read from the cycle after).  Checks every layer's ``o_act`` beats (a prefix
    of them for an abandoned layer), its ``i_act`` beats, the stream rule on ``o_act``, and
    that nothing moves before the first start or after the last layer.  Returns the trace.
    """
    rnd, rnd_ready = random.Random(seed), random.Random(seed + 1000)
    trace: list[Tick] = []
    done: list[int] = []

    async def host(ctx):
        i = dut.i_act
        ctx.set(dut.enable, 1)
        ctx.set(i.payload, data.Const(LAYOUT, layers[0].inputs[0]))
        ctx.set(i.valid, 1)
        for _ in range(3):  # after reset: nothing is taken before a start
            await ctx.tick()
        for index, layer in enumerate(layers):
            if not layer.replay:  # a pass-through layer would take the offered beat at once
                ctx.set(i.valid, 0)
            ctx.set(dut.enable, layer.replay)
            ctx.set(dut.cout, layer.cout)
            ctx.set(dut.per_group, rnd.randrange(PER_GROUP_MAX + 1))
            ctx.set(dut.group_beats, rnd.getrandbits(ActReplay.GROUP_BEATS_BITS))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.per_group, layer.per_group)
            ctx.set(dut.group_beats, layer.group_beats)
            for k, beat in enumerate(layer.sent):
                while k and rnd.random() < gap:  # the first beat is offered already
                    await ctx.tick()
                await send(ctx, i, data.Const(LAYOUT, beat))
            following = layers[index + 1].inputs[0] if index + 1 < len(layers) else 0x5A5A5
            ctx.set(i.payload, data.Const(LAYOUT, following))
            # Enable low, or a record abandoned: it would be taken at once.
            ctx.set(i.valid, layer.replay and len(layer.sent) == layer.group_beats)
            wanted = len(layer.expected(dut.depth))
            if layer.abandon_after is not None:
                wanted = layer.abandon_after
            while sum(t.out_valid & t.out_ready for t in trace[_last_start(trace) :]) < wanted:
                await ctx.tick()
            for _ in range(0 if layer.abandon_after is not None else rnd.randrange(3)):
                await ctx.tick()
        for _ in range(3 * dut.latency + 3):
            await ctx.tick()
        done.append(1)

    async def sink(ctx):
        while True:
            ctx.set(dut.o_act.ready, rnd_ready.random() < ready)
            await ctx.tick()

    async def monitor(ctx):
        i, o = dut.i_act, dut.o_act
        held = None  # an o_act beat offered and not taken: offered again unless a start
        samples = ctx.tick().sample(
            dut.start, i.valid, i.ready, o.valid, o.ready, o.payload, dut.overflow
        )
        async for _, _, start, iv, ir, ov, orr, payload, overflow in samples:
            bits = payload.as_bits()
            if held is not None and not start:
                assert ov and bits == held, "an offered o_act beat changed before its transfer"
            held = bits if ov and not orr else None
            trace.append(Tick(start, bool(iv and ir), ir, ov, orr, bits, overflow))

    beats = sum(len(layer.expected(dut.depth)) for layer in layers)
    cycles = int(2 * beats / min(1 - gap, ready) ** 2) + 30 * len(layers) + 50
    _simulate(dut, host, sink, monitor, cycles=cycles)
    assert done, "the host did not finish (a beat was not taken or not emitted)"
    first = next(n for n, t in enumerate(trace) if t.start)
    assert not any(t.taken or t.out_valid for t in trace[:first])
    for layer, (at, ticks) in zip(layers, _segments(trace), strict=True):
        taken = [t for t in ticks if t.taken]
        out = [t.out_payload for t in ticks if t.out_valid and t.out_ready]
        assert len(taken) == len(layer.sent)  # the offered beat after them waits
        want = layer.expected(dut.depth)
        if layer.abandon_after is None:
            assert out == want
        else:  # abandoned: what came is the start of the layer's beats
            assert layer.abandon_after <= len(out) < len(want)
            assert out == want[: len(out)]
        if layer.replay:  # the start cycle and the cycle after it: nothing moves
            assert [(t.in_ready, t.out_valid) for t in trace[at : at + 2]] == [(0, 0), (0, 0)]
    last_layer = _segments(trace)[-1][1]
    tail = last_layer[-3 * dut.latency :]
    assert not any(t.out_valid or t.taken for t in tail), "beats past the last group"
    return trace


def _last_start(trace: list[Tick]) -> int:
    starts = [n for n, t in enumerate(trace) if t.start]
    return starts[-1] if starts else len(trace)


# ----------------------------------------------------------------------------- beats

_LAYERS = [
    Layer(10, 7, 2),  # 4 groups, cout not a multiple of per_group
    Layer(1, 3, 1),  # group_beats = 1
    Layer(DEPTH, 5, 2),  # group_beats = depth
    Layer(7, 4, 8),  # a single group: cout < per_group
    Layer(3, 12, 3),  # 4 groups, cout a multiple
    Layer(5, 6, 4, replay=False),  # pass-through between replayed layers: 2 groups sent
    Layer(2, 9, 4),
    Layer(DEPTH, 1, 1),  # a single group of depth beats
    Layer(4, 40, 8),  # cout = cout_max, per_group = group_channels_max
    Layer(6, 6, 6),  # a single group: cout = per_group
]


@pytest.mark.parametrize(
    ("seed", "gap", "ready"), [(1, 0.3, 0.7), (2, 0.0, 1.0), (3, 0.6, 0.4), (4, 0.0, 0.5)]
)
def test_groups_repeat_the_first_groups_beats(seed, gap, ready):
    """Layers back to back with other ``group_beats``, ``cout``, ``per_group``, random input
    gaps and ``o_act`` backpressure: ``o_act`` carries the first group's beats
    ``ceil(cout / per_group)`` times, ``i_act`` takes exactly the first group's beats."""
    rnd = random.Random(seed)
    layers = [dataclasses.replace(layer).fill(rnd) for layer in _LAYERS]
    rnd.shuffle(layers)
    trace = _run(_dut(), layers, seed=seed, gap=gap, ready=ready)
    assert not any(t.overflow for t in trace)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_random_layers(seed):
    """Random layers: ``group_beats`` 1 .. depth + 4 (some overflow), ``cout`` and
    ``per_group`` over their ranges, some with ``enable`` low; every one exact (an
    overflowing layer's replays are the documented words ``k mod depth``)."""
    rnd = random.Random(seed)
    layers = [
        Layer(
            rnd.randint(1, DEPTH + 4),
            rnd.randint(1, COUT_MAX),
            rnd.randint(1, PER_GROUP_MAX),
            replay=rnd.random() < 0.8,
        ).fill(rnd)
        for _ in range(8)
    ]
    _run(_dut(), layers, seed=seed, gap=rnd.choice([0.0, 0.3]), ready=rnd.choice([0.5, 1.0]))


@pytest.mark.parametrize("depth", [DEPTH, 5, 1])
def test_overflow_is_flagged_every_group_keeps_its_beats(depth):
    """``group_beats = depth + 3``: the beats past the depth pass through but are not stored,
    ``overflow`` rises after the first of them is taken and stays until the next ``start``;
    the replayed groups have ``group_beats`` beats each (words ``k mod depth``); the next
    layer is exact and its ``start`` clears the flag."""
    rnd = random.Random(depth)
    layers = [Layer(depth + 3, 5, 2).fill(rnd), Layer(min(depth, 4), 3, 1).fill(rnd)]
    trace = _run(_dut(depth), layers, seed=depth)
    (first_start, first), (at, _) = _segments(trace)
    take_ticks = [first_start + n for n, t in enumerate(first) if t.taken]
    rise = take_ticks[depth] + 1  # the first tick after the first beat past the depth
    flags = [t.overflow for t in trace]
    assert not any(flags[:rise])
    assert all(flags[rise : at + 1])  # up to the next start's edge
    assert not any(flags[at + 1 :])


@pytest.mark.parametrize("abandon_after", [3, 10, 13, 29])
def test_start_abandons_a_layer(abandon_after):
    """A ``start`` during the record (3 of 8 beats sent) or the replay (after 10, 13, 29 of
    the 32 beats of 4 groups), with beats in the read pipeline: they are dropped, the new
    layer is exact."""
    rnd = random.Random(abandon_after)
    layers = [
        Layer(8, 8, 2, abandon_after=abandon_after).fill(rnd),
        Layer(6, 5, 2).fill(rnd),
        Layer(3, 2, 1).fill(rnd),
    ]
    _run(_dut(), layers, seed=abandon_after, gap=0.2, ready=0.6)


# ----------------------------------------------------------------------------- timing


def _timed_layer(dut, layer: Layer, *, gap: float = 0.0, seed: int = 0) -> Transfers:
    """One layer, ``o_act`` always ready; the input beats back to back unless ``gap``."""
    rnd = random.Random(seed)
    transfers = Transfers()
    count = len(layer.expected(dut.depth))

    async def host(ctx):
        ctx.set(dut.enable, 1)
        ctx.set(dut.cout, layer.cout)
        ctx.set(dut.per_group, layer.per_group)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.group_beats, layer.group_beats)
        for beat in layer.inputs:
            while rnd.random() < gap:
                await ctx.tick()
            await send(ctx, dut.i_act, data.Const(LAYOUT, beat))

    async def observer(ctx):
        await record_transfers(ctx, dut.i_act, dut.o_act, count, transfers)

    _simulate(dut, host, observer, cycles=int(count / (1 - gap)) + 40)
    assert [p.as_bits() for p in transfers.out_payloads] == layer.expected(dut.depth)
    return transfers


def test_one_beat_per_cycle_without_a_gap():
    """``o_act`` always ready, the beats back to back: a layer of 4 groups of 10 beats
    leaves in 40 consecutive cycles from its first input beat (record in the same cycle,
    :data:`ActReplay.REPLAY_GAP` = 0 idle cycles before the replay)."""
    dut = _dut()
    layer = Layer(10, 8, 2).fill(random.Random(7))
    transfers = _timed_layer(dut, layer)
    out, taken = transfers.out_ticks, transfers.in_ticks
    assert taken[0] == 3  # the start's edge is tick 1, the cycle after it blocks
    assert out[-1] - taken[0] + 1 == 40 + ActReplay.REPLAY_GAP
    assert ActReplay.REPLAY_GAP == 0
    assert out == list(range(taken[0], taken[0] + 40))
    assert out[:10] == taken  # the record passes through, same cycle


@pytest.mark.parametrize("group_beats", [1, 2, 3, 4])
def test_replay_gap_of_short_groups(group_beats):
    """Short groups, back to back: the replay starts :meth:`ActReplay.replay_gap` idle
    cycles (``latency + 1 - group_beats``, at least 0) after the last recorded beat, and the
    replayed groups follow each other without a gap."""
    dut = _dut()
    layer = Layer(group_beats, 4, 1).fill(random.Random(group_beats))
    transfers = _timed_layer(dut, layer)
    out, last = transfers.out_ticks, transfers.in_ticks[-1]
    gap = ActReplay.replay_gap(group_beats)
    assert gap == max(0, dut.latency + 1 - group_beats)
    assert out[group_beats] - last - 1 == gap
    replayed = out[group_beats:]
    assert replayed == list(range(replayed[0], replayed[0] + 3 * group_beats))


@pytest.mark.parametrize(("group_beats", "seed"), [(1, 0), (2, 1), (5, 2), (12, 3), (12, 4)])
def test_first_replayed_beat_follows_the_latency(group_beats, seed):
    """Input gaps, ``o_act`` always ready: the first replayed beat leaves in cycle
    ``max(t_last + 1, t_first + 1 + latency)`` (beat 0 is read the cycle after it is
    written, ``latency`` cycles before ``o_act``)."""
    dut = _dut()
    assert dut.latency == ActReplay.READ_LATENCY == 2
    layer = Layer(group_beats, 6, 2).fill(random.Random(seed))
    transfers = _timed_layer(dut, layer, gap=0.5, seed=seed)
    first, last = transfers.in_ticks[0], transfers.in_ticks[-1]
    assert transfers.out_ticks[group_beats] == max(last + 1, first + 1 + dut.latency)


# ----------------------------------------------------------------------------- pass-through


def test_pass_through_when_not_enabled():
    """``enable`` low: ``o_act`` is ``i_act`` beat for beat, in the same cycle, with random
    ``start`` pulses (no blocked cycles) and layer inputs; ``overflow`` stays low."""
    dut = _dut()
    rnd = random.Random(11)
    beats = [rnd.getrandbits(BITS) for _ in range(40)] + [0, (1 << BITS) - 1]
    seen: list = []

    def layer_inputs(ctx):
        ctx.set(dut.start, rnd.random() < 0.2)
        ctx.set(dut.cout, rnd.randrange(COUT_MAX + 1))
        ctx.set(dut.per_group, rnd.randrange(1, PER_GROUP_MAX + 1))
        ctx.set(dut.group_beats, rnd.randrange(1, 8))
        assert ctx.get(dut.overflow) == 0

    async def bench(ctx):
        ctx.set(dut.enable, 0)
        seen.extend(await pass_through_check(ctx, dut.i_act, dut.o_act, LAYOUT, beats, rnd,
                                             each_cycle=layer_inputs))  # fmt: skip

    _simulate(dut, bench, cycles=40 * len(beats) + 10)
    assert seen == beats


# ----------------------------------------------------------------------------- parameters


def test_sizes_and_ports():
    sfc6 = data.ArrayLayout(signed(8), 132)
    dut = ActReplay(act_layout=sfc6, depth=512, cout_max=256, group_channels_max=4)
    assert (dut.beat_bits, dut.memory_bits) == (1056, 512 * 1056)
    assert dut.group_beats.shape() == unsigned(29)
    assert ActReplay.GROUP_BEATS_BITS == 29
    assert dut.i_act.payload.shape() == sfc6 == dut.o_act.payload.shape()
    assert len(dut.cout) == 9 and len(dut.per_group) == 3
    assert _dut().memory_bits == DEPTH * BITS


def test_one_block_ram_one_write_one_synchronous_read_port():
    """The memory is inferable as block RAM: one memory, one write port, one clocked read
    port without transparency (its enable is the read pipeline's advance)."""
    text = rtlil.convert(_dut(), name="act_replay")
    cells = [line.split()[1] for line in text.splitlines() if line.strip().startswith("cell $mem")]
    assert sorted(cells) == ["$meminit_v2", "$memrd_v2", "$memwr_v2"]
    read = text[text.index("cell $memrd_v2") :]
    read = read[: read.index("\n  end")]
    assert "parameter \\CLK_ENABLE 1" in read
    assert "parameter \\TRANSPARENCY_MASK 1'0" in read
    assert "replay_pipe_advance" in read


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"depth": 0}, ValueError, r"depth must be an int >= 1, got 0"),
        ({"depth": 2.0}, TypeError, r"depth must be an int >= 1, got float"),
        ({"cout_max": 0}, ValueError, r"cout_max must be an int >= 1, got 0"),
        ({"group_channels_max": 0}, ValueError, r"group_channels_max must be an int >= 1"),
        ({"group_channels_max": True}, TypeError, r"group_channels_max must be an int >= 1"),
        ({"act_layout": "wide"}, TypeError, r"act_layout must be a shape"),
        ({"act_layout": True}, TypeError, r"act_layout must be a shape"),
        ({"act_layout": unsigned(0)}, ValueError, r"act_layout must be a shape .* >= 1 bit"),
    ],
)
def test_constructor_errors_name_the_parameter(kwargs, error, match):
    args = {"act_layout": LAYOUT, "depth": 4, "cout_max": 8, "group_channels_max": 2} | kwargs
    with pytest.raises(error, match=match):
        ActReplay(**args)
    with pytest.raises(ValueError, match=r"group_beats must be an int >= 1, got 0"):
        ActReplay.replay_gap(0)


# ----------------------------------------------------------------------------- engine level


def test_engine_refusals_name_the_parameter():
    import dataclasses

    from sfc_hls.cli import main
    from sfc_hls.config import EngineConfig
    from sfc_hls.datapath import random_layer_quant
    from sfc_hls.hw.axi_engine import AxiConvEngine
    from sfc_hls.hw.engine_streams import EngineStreams
    from sfc_hls.hw.estimate import estimate

    with pytest.raises(ValueError, match=r"replay_beats must be an int in \[0, 65536\], got -1"):
        EngineConfig(replay_beats=-1)
    engine = EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=8, cout_max=4,
                          replay_beats=20)  # fmt: skip
    with pytest.raises(ValueError, match="replay_beats=20: the AXI top does not decode"):
        AxiConvEngine(engine)
    with pytest.raises(ValueError, match="replay_beats=20: the estimator has no model"):
        estimate(engine)
    assert main(["estimate", "--algo", "wino-2x2-3x3", "--replay-beats", "8"]) == 2
    streams, rng = EngineStreams(engine), np.random.default_rng(0)
    params = random_layer_quant(engine, 5, 4, rng)
    small, big = np.zeros((1, 5, 4, 4)), np.zeros((1, 5, 6, 6))  # 4 and 9 tiles of 5 beats
    beats = streams.layer_beats(params, small)
    assert beats.act_replay and len(beats.act) == 4 * 5 and beats.groups == 2
    assert not streams.layer_beats(params, small, act_replay=False).act_replay
    assert len(streams.layer_beats(params, small, act_replay=False).act) == 2 * 4 * 5
    assert not streams.layer_beats(params, big).act_replay  # 45 beats > 20: streamed
    with pytest.raises(ValueError, match="act_replay: a group takes 45 i_act beats; the replay "
                                         "buffer holds 20"):  # fmt: skip
        streams.layer_beats(params, big, act_replay=True)
    plain = EngineStreams(dataclasses.replace(engine, replay_beats=0))
    with pytest.raises(ValueError, match=r"no activation replay buffer \(replay_beats=0\)"):
        plain.layer_beats(params, small, act_replay=True)


def test_manifest_describes_the_replay_buffer_and_its_register():
    import dataclasses

    from sfc_hls.config import EngineConfig
    from sfc_hls.hw.generate import engine_manifest
    from sfc_hls.hw.interface import EngineInterface

    engine = EngineConfig(algorithm="sfc6-7x7-3x3", pco=2, cin_max=16, cout_max=4,
                          replay_beats=512)  # fmt: skip
    manifest = engine_manifest(EngineInterface.from_config(engine))
    replay = manifest["act_replay"]
    assert (replay["beats"], replay["beat_bits"], replay["memory_bits"]) == (512, 1056, 540672)
    assert "ACT_REPLAY" in [r["name"] for r in manifest["registers"]]
    assert "replay_overflow" in manifest["ports"]["status"]["shape"]
    plain = engine_manifest(EngineInterface.from_config(dataclasses.replace(engine,
                                                                            replay_beats=0)))  # fmt: skip
    assert "act_replay" not in plain
    assert "ACT_REPLAY" not in [r["name"] for r in plain["registers"]]


def test_a_layer_too_large_for_the_buffer_runs_in_chunks_of_tiles():
    """``layer_chunks``: chunks of whole tiles the buffer holds, each with its own TILES and
    ACT_REPLAY, the first group's beats of its tiles, the parameters and weights again; the
    outputs put back at the chunks' tile offsets equal the whole layer's."""
    from sfc_hls.config import EngineConfig
    from sfc_hls.datapath import random_layer_quant
    from sfc_hls.hw.engine_streams import EngineStreams, unpack
    from sfc_hls.hw.register_map import REGISTERS

    engine = EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=8, cout_max=4,
                          replay_beats=12)  # fmt: skip
    streams, rng = EngineStreams(engine), np.random.default_rng(3)
    params = random_layer_quant(engine, 5, 4, rng)
    x = rng.integers(-128, 128, size=(1, 5, 6, 6))  # 9 tiles of 5 beats: 2 per chunk
    whole = streams.layer_beats(params, x, act_replay=False)
    chunks = streams.layer_chunks(params, x)
    assert [c.tiles for c in chunks] == [2, 2, 2, 2, 1]
    assert [c.tile_offset for c in chunks] == [0, 2, 4, 6, 8]
    assert all(c.act_replay and c.chan == whole.chan and c.weight == whole.weight for c in chunks)
    assert [b for c in chunks for b in c.act] == whole.act[: 9 * 5]  # the first group, once
    for c in chunks:
        cfg = unpack(streams.layouts["cfg"], c.cfg)
        writes = dict(zip(cfg["addr"][:, 0].tolist(), cfg["data"][:, 0].tolist(), strict=True))
        assert writes[REGISTERS["TILES"]] == c.tiles and writes[REGISTERS["ACT_REPLAY"]] == 1
    assert sum(c.expected_outputs for c in chunks) == whole.expected_outputs
    assert [c.tiles for c in streams.layer_chunks(params, x[:, :, :4, :4])] == [2, 2]
    small = EngineStreams(dataclasses.replace(engine, replay_beats=4))  # less than a tile
    assert len(small.layer_chunks(params, x)) == 1  # streamed once per group


def test_direct_schedule_fits_the_replay_buffer_or_takes_the_fewest_tiles():
    from sfc_hls.schedule import direct_schedule

    # ResNet-18's layer4.0.conv1 on SFC-6 P_co=4 (W = 11, 12 blocks), 49 pixels, cout 512.
    kw = {"positions": 132, "width": 11, "lanes": 4, "cout": 512, "pixels": 49}
    assert direct_schedule(**kw).replicas == 12  # the fewest cycles: 5 tiles x 11 groups
    fits = direct_schedule(**kw, max_tiles=1)  # a replay buffer of one tile of 2,304 beats
    assert (fits.tiles, fits.replicas) == (1, 2)
    # The stem (12,544 pixels, cout 64): nothing fits one tile; the fewest tiles within 1% of
    # the fewest cycles (4 replicas: 381 tiles x 4 groups; 1 replica: 96 x 16, 0.8% more).
    stem = {**kw, "cout": 64, "pixels": 12544}
    assert direct_schedule(**stem).replicas == 4
    assert direct_schedule(**stem, max_tiles=24).replicas == 1
