"""Cycle model of the conv engine: cycles per layer from the layer descriptor.

A layer on an engine (``sfc_hls.hw.engine.ConvEngine``) is described by its
mode, ``cin``, ``cout``, ``tiles`` (per output-channel group, all images) and
in direct mode the kernel taps and the output-channel replicas -- the
registers of :mod:`sfc_hls.hw.register_map`.  The model follows the engine's
protocol tile by tile, with the pipeline latencies and the group overheads of
the RTL, and returns the cycles from the first configuration beat (cycle 0)
to the last output beat, inclusive, as the native stream runner
(:mod:`sfc_hls.sim.native`) counts them with streams that never stall
(validated against Verilator in ``tests/test_cycle_model.py`` within 2%).

Timing parameters (:class:`EngineTiming`; the engine's own values come from
``sfc_hls.hw.interface.EngineInterface.timing()``, so this module needs no
hardware description):

* ``pco``, ``blocks``, ``width``, ``output_beats``: lanes, the ``B = m / W``
  blocks a result leaves in (``W`` positions per cycle), and the beats of a
  channel's fast-mode output tile (``ceil(M*M / W)``);
* ``cfg_writes``: register writes per layer (one per cycle), START the last;
* ``start_delay``: cycles from the START write to the layer's start;
* ``take_gap``: cycles between a tile's last serializer beat and the earliest
  take of the next result (0; 1 on ECP5, whose serializer takes a result only
  when its buffer is empty, so that its ``ready`` comes from a register);
* ``front_latency`` (fast, direct): from the handshake of a tile's last
  ``i_act`` beat to its result being offered to the result serializer;
* ``back_latency`` (fast, direct): from a packet's last beat leaving the
  serializer to its last ``o_out`` beat;
* ``map_delay``: map input (a feature-map buffer): cycles from the layer's
  start to the first tile beat after a map of zero beats; the map's beats
  enter one per cycle from the start, the tiles follow once it is complete;
* ``spatial_rows_per_beat``, ``spatial_load_delay`` (engines with a weight
  transform, else 0): a fast layer with spatial weights sends per group a
  header and ``ceil(cin / k)`` beats of ``k`` spatial rows; the transform
  delivers one row per cycle, the layer's first ``spatial_load_delay`` cycles
  after its header (the header and the pipeline), so the first group's load
  takes ``cin + spatial_load_delay`` cycles; later groups' rows wait in the
  transform's pipeline, ``cin`` cycles (``cin + 1`` when a load directly
  follows the previous one: the header's cycle);
* ``replay_delay`` (engines with an activation replay buffer, else 0): a layer
  with ACT_REPLAY streams its first group's ``i_act`` beats and replays them for
  the others; the buffer reads each beat after it was written, so the first
  replayed beat comes no earlier than ``1 + replay_delay`` cycles after the first
  streamed one (its read pipeline), and the groups follow without a gap;
* ``weight_banks``: 1 = the group's parameters and weights load, then the
  group computes, then the engine waits until its outputs have left
  (serial control; the first engine, kept to check old measurements);
  2 = ping-pong banks: the next group loads while the current one computes,
  a bank is loaded again once the serializer has released it.

Per tile, the MAC array accumulates ``reduction`` beats (``cin``, or
``taps * cin`` in direct mode) and the serializer issues one beat per block
of each valid packet (fast: ``B`` per valid lane; direct: ``B / R`` per valid
(lane, replica)), taking the next result only when the previous one has
left, so a tile costs ``max(reduction, beats + take_gap)`` cycles in steady state.
Loading a group costs ``P_co * B`` parameter beats and its weight rows
(``cin``, or ``ceil(taps * cin / W)``), both streams at once.
:attr:`LayerCycles.breakdown` splits the cycles into the activation beats
(useful work) and the overheads: configuration, weight loading before the
first group, stalls between groups (weight loading and drain not hidden),
output-path stalls and the final pipeline drain.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from sfc_hls.arguments import check_int

__all__ = [
    "DDR4_2400_BYTES_PER_SECOND",
    "EngineTiming",
    "LayerCycles",
    "LayerTraffic",
    "StreamBits",
    "bandwidth_bound_cycles",
    "layer_cycles",
    "layer_traffic",
]

#: One DDR4-2400 x64 channel, theoretical peak (2400 MT/s x 8 bytes).
DDR4_2400_BYTES_PER_SECOND = 19.2e9

MODES = ("fast", "direct")


@dataclass(frozen=True)
class EngineTiming:
    """Timing parameters of one generated engine (see the module docstring)."""

    pco: int
    cfg_writes: int
    front_latency: int
    back_latency: int
    weight_banks: int = 2
    blocks: int = 1
    width: int = 1
    output_beats: int = 1
    front_latency_direct: int | None = None
    back_latency_direct: int | None = None
    start_delay: int = 0
    take_gap: int = 0
    map_delay: int = 0
    spatial_rows_per_beat: int = 0
    spatial_load_delay: int = 0
    replay_delay: int = 0

    def __post_init__(self) -> None:
        check_int("pco", self.pco, 1)
        check_int("cfg_writes", self.cfg_writes, 1)
        check_int("front_latency", self.front_latency, 1)
        check_int("back_latency", self.back_latency, 0)
        check_int("weight_banks", self.weight_banks, 1, 2)
        check_int("blocks", self.blocks, 1)
        check_int("width", self.width, 1)
        check_int("output_beats", self.output_beats, 1)
        check_int("start_delay", self.start_delay, 0)
        check_int("take_gap", self.take_gap, 0, 1)
        check_int("map_delay", self.map_delay, 0)
        check_int("spatial_rows_per_beat", self.spatial_rows_per_beat, 0)
        check_int("spatial_load_delay", self.spatial_load_delay, 0)
        check_int("replay_delay", self.replay_delay, 0)

    @property
    def latency(self) -> int:
        """Fast mode: last ``i_act`` beat of a tile to its last ``o_out`` beat, minus one."""
        return self.front_latency + self.back_latency

    def latencies(self, mode: str) -> tuple[int, int]:
        """``(front, back)`` latency of ``mode``."""
        if mode == "fast":
            return self.front_latency, self.back_latency
        front = (
            self.front_latency if self.front_latency_direct is None else self.front_latency_direct
        )
        back = self.back_latency if self.back_latency_direct is None else self.back_latency_direct
        return front, back

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class LayerCycles:
    """Modelled cycles of one layer and where they go.

    ``cycles`` counts from the first configuration beat to the last output
    beat; ``act_beats`` = ``groups * tiles * reduction`` is the useful work at
    one beat per cycle.  ``breakdown`` sums to ``cycles``.
    """

    cin: int
    cout: int
    tiles: int
    groups: int
    act_beats: int
    cycles: int
    breakdown: dict[str, int] = field(default_factory=dict)
    mode: str = "fast"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Group:
    """What one output-channel group costs: weight beats and cycles to load, serializer
    beats per tile."""

    rows: int  # i_weight beats
    beats: int  # serializer beats per tile
    packets: int  # valid packets per tile
    load: int  # cycles the weight rows take at one per cycle
    first_delay: int = 0  # weight transform: cycles before the layer's first row
    header: int = 0  # weight transform: the header's cycle, hidden unless loads are back to back


def _groups(
    timing: EngineTiming,
    mode: str,
    cin: int,
    cout: int,
    taps: int,
    replicas: int,
    spatial: bool = False,
) -> list[_Group]:
    pco, blocks = timing.pco, timing.blocks
    if mode == "fast":
        lanes = [min(pco, cout - g * pco) for g in range(math.ceil(cout / pco))]
        if spatial:
            beats = 1 + math.ceil(cin / timing.spatial_rows_per_beat)
            delay = timing.spatial_load_delay
            return [_Group(beats, n * blocks, n, cin, delay, 1) for n in lanes]
        return [_Group(cin, n * blocks, n, cin) for n in lanes]
    if blocks % replicas:
        raise ValueError(f"replicas must divide the {blocks} blocks, got {replicas}")
    per_group = pco * replicas
    rows = math.ceil(taps * cin / timing.width)
    out = []
    for g in range(math.ceil(cout / per_group)):
        pairs = sum(
            1
            for r in range(replicas)
            for lane in range(pco)
            if g * per_group + r * pco + lane < cout
        )
        out.append(_Group(rows, pairs * (blocks // replicas), pairs, rows))
    return out


def _check_descriptor(timing: EngineTiming, mode: str, **fields: int) -> None:
    """TypeError / ValueError naming the first bad descriptor field (each an int >= 1)."""
    if not isinstance(timing, EngineTiming):
        raise TypeError(f"timing must be an EngineTiming, got {type(timing).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    for name, value in fields.items():
        check_int(name, value, 1)


def layer_cycles(
    timing: EngineTiming,
    *,
    cin: int,
    cout: int,
    tiles: int,
    mode: str = "fast",
    taps: int = 1,
    replicas: int = 1,
    map_beats: int = 0,
    spatial_weights: bool = False,
    act_replay: bool = False,
) -> LayerCycles:
    """Cycles of one layer (the descriptor: mode, ``cin``, ``cout``, ``tiles``, ``taps``,
    ``replicas``; ``map_beats``: the ``i_map`` beats of a layer with map input, else 0;
    ``spatial_weights``: the layer sends spatial weights to the weight transform;
    ``act_replay``: its activation beats come once and are replayed)."""
    _check_descriptor(timing, mode, cin=cin, cout=cout, tiles=tiles, taps=taps, replicas=replicas)
    _check_map(mode, map_beats)
    _check_spatial(timing, mode, spatial_weights)
    reduction = cin if mode == "fast" else taps * cin
    groups = _groups(timing, mode, cin, cout, taps, replicas, spatial_weights)
    front, back = timing.latencies(mode)
    map_ready = timing.cfg_writes + timing.start_delay + timing.map_delay + map_beats
    _check_replay(timing, act_replay, map_beats)
    events = _simulate(timing, groups, tiles, reduction, front, back,
                       map_ready if map_beats else 0,
                       timing.replay_delay if act_replay else 0)  # fmt: skip
    last_output = events["last_issue"] + back
    cycles = last_output + 1
    act_beats = len(groups) * tiles * reduction
    w = timing.cfg_writes + timing.start_delay
    breakdown = {
        "act_beats": act_beats,
        "config": w,
        "first_load": events["first_act"] - w,
        "between_groups": events["between"],
        "serializer": events["serializer"],
    }
    breakdown["drain"] = cycles - sum(breakdown.values())
    return LayerCycles(cin, cout, tiles, len(groups), act_beats, cycles, breakdown, mode)


def _check_map(mode: str, map_beats: int) -> None:
    check_int("map_beats", map_beats, 0)
    if map_beats and mode != "fast":
        raise ValueError(f"map_beats: only fast-mode layers take a map, got mode {mode!r}")


def _check_spatial(timing: EngineTiming, mode: str, spatial_weights: bool) -> None:
    if not isinstance(spatial_weights, bool):
        raise TypeError(f"spatial_weights must be a bool, got {spatial_weights!r}")
    if spatial_weights and (mode != "fast" or not timing.spatial_rows_per_beat):
        raise ValueError(
            "spatial_weights: only fast-mode layers on an engine with a weight transform "
            f"(spatial_rows_per_beat > 0) take them; mode {mode!r}, "
            f"spatial_rows_per_beat {timing.spatial_rows_per_beat}"
        )


def _check_replay(timing: EngineTiming, act_replay: bool, map_beats: int) -> None:
    if not isinstance(act_replay, bool):
        raise TypeError(f"act_replay must be a bool, got {act_replay!r}")
    if act_replay and map_beats:
        raise ValueError("act_replay: a layer with map input does not replay i_act beats")


def _simulate(
    timing: EngineTiming,
    groups: list[_Group],
    tiles: int,
    reduction: int,
    front: int,
    back: int,
    map_ready: int = 0,
    replay_delay: int = 0,
) -> dict[str, int]:
    """Group by group, tile by tile: when act beats enter, results are taken, beats leave."""
    pco_beats = timing.pco * timing.blocks  # parameter beats per group
    # config beats at cycles 0 .. cfg_writes - 1, START the last; the layer starts at w
    w = timing.cfg_writes + timing.start_delay
    take_prev: int | None = None  # serializer take time of the previous tile
    beats_prev = 0
    last_beat_prev = w - 1  # last act beat of the previous group
    release: list[int] = []  # cycle each group's bank is free again
    load_done: list[int] = []
    last_issue = 0
    between = serializer_stall = first_act = 0
    for g, group in enumerate(groups):
        if timing.weight_banks == 2:
            start = w if g == 0 else load_done[g - 1] + 1
            if g >= 2:
                start = max(start, release[g - 2] + 1)
            # The weight transform runs ahead of the scheduler: after the first group its
            # rows wait in its pipeline, and only a load right after the previous one sees
            # the header's cycle.
            extra = group.first_delay if g == 0 else group.header * (start == load_done[-1] + 1)
            load_done.append(start + max(pco_beats, group.load + extra))
            ready = load_done[g] + 1
        else:
            start = w if g == 0 else last_issue + back + 2  # after the drain
            ready = start + pco_beats + group.load + group.first_delay + 1
            if g > 0:
                take_prev = None  # the serializer is empty after a drain
        first = max(ready, last_beat_prev + 1, map_ready)
        if g == 1 and replay_delay:  # the first replayed beat is read after the first beat
            first = max(first, first_act + 1 + replay_delay)
        if g == 0:
            first_act = first
        else:
            between += first - (last_beat_prev + 1)
        for t in range(tiles):
            unstalled = first + (t + 1) * reduction - 1 + front  # result offered, no stalls
            take = unstalled
            if take_prev is not None:
                take = max(take, take_prev + max(beats_prev + timing.take_gap, reduction))
                serializer_stall += take - max(unstalled, take_prev + reduction)
            take_prev, beats_prev = take, group.beats
        assert take_prev is not None  # tiles >= 1 (checked by layer_cycles)
        last_beat_prev = max(first + tiles * reduction - 1, take_prev - front)
        release.append(take_prev + group.beats + 1)  # the scheduler registers the release
        last_issue = take_prev + group.beats
    return {"last_issue": last_issue, "first_act": first_act, "between": between,
            "serializer": serializer_stall}  # fmt: skip


# ---------------------------------------------------------------------- external traffic


@dataclass(frozen=True)
class StreamBits:
    """Data bits per beat of each external stream of an engine (``EngineInterface.stream_bits()``).

    ``act_fast`` counts the ``L*L`` pixels a fast-mode beat uses and
    ``act_direct`` the ``m`` pixels of a direct-mode beat (the port is as wide
    as the larger; a DMA does not move the unused lanes); ``out`` the ``W``
    int8 values of an output beat (its tag is produced by the engine, not
    stored).
    """

    cfg: int
    chan: int
    weight: int
    direct_row: int
    act_fast: int
    act_direct: int
    out: int
    map: int = 0  # an i_map beat: 2LP pixels (engines with a feature-map buffer)

    def per_beat(self, mode: str) -> dict[str, int]:
        """Data bits of a beat of each stream (``cfg``, ``chan``, ``weight``, ``act``,
        ``map``, ``out``) in a layer of ``mode``."""
        fast = mode == "fast"
        return {
            "cfg": self.cfg,
            "chan": self.chan,
            "weight": self.weight if fast else self.direct_row,
            "act": self.act_fast if fast else self.act_direct,
            "map": self.map,
            "out": self.out,
        }


@dataclass(frozen=True)
class LayerTraffic:
    """Beats and bytes of every external stream of one layer (``cfg``, ``chan``, ``weight``,
    ``act`` in; ``out`` out)."""

    beats: dict[str, int]
    bytes: dict[str, float]
    act_replay: bool = False  # the act beats are the first group's only (replayed on chip)

    @property
    def total_bytes(self) -> float:
        return sum(self.bytes.values())

    def to_dict(self) -> dict[str, Any]:
        return {"beats": self.beats, "bytes": self.bytes, "total_bytes": self.total_bytes,
                "act_replay": self.act_replay}  # fmt: skip


def layer_traffic(
    timing: EngineTiming,
    bits: StreamBits,
    *,
    cin: int,
    cout: int,
    tiles: int,
    mode: str = "fast",
    taps: int = 1,
    replicas: int = 1,
    map_beats: int = 0,
    map_bytes: float | None = None,
    spatial_weights: bool = False,
    act_replay: bool = False,
) -> LayerTraffic:
    """Beats and bytes each stream moves for one layer, as the stream protocol defines them.

    Per output-channel group: ``P_co * B`` parameter beats, the weight rows
    (``cin``, or ``ceil(taps * cin / W)``), ``tiles * reduction`` activation
    beats (the input is streamed again for every group) -- or, for a layer
    with map input, ``map_beats`` beats of ``2LP`` pixels once (``map_bytes``: what
    a DMA moves for them, the map's own ``N * Cin * H * W`` pixels, a beat's
    lanes past a row's end are not read from memory; default: whole beats); outputs: per tile,
    ``output_beats`` per valid lane (fast) or ``B / R`` per valid (lane,
    replica) (direct).  With ``spatial_weights`` a group's weights are a header and
    ``ceil(cin / k)`` beats of ``k`` spatial rows, counted as whole ``i_weight`` beats
    (the header's and the last beat's unused bits included).  With ``act_replay`` the
    ``tiles * reduction`` activation beats come once, not once per group.
    ``hw/engine_streams.py``
    produces exactly these beats (``tests/test_traffic.py``).
    """
    _check_descriptor(timing, mode, cin=cin, cout=cout, tiles=tiles, taps=taps, replicas=replicas)
    _check_map(mode, map_beats)
    _check_spatial(timing, mode, spatial_weights)
    _check_replay(timing, act_replay, map_beats)
    groups = _groups(timing, mode, cin, cout, taps, replicas, spatial_weights)
    reduction = cin if mode == "fast" else taps * cin
    per_tile_out = timing.output_beats if mode == "fast" else timing.blocks // replicas
    beats = {
        "cfg": timing.cfg_writes,
        "chan": len(groups) * timing.pco * timing.blocks,
        "weight": sum(g.rows for g in groups),
        "act": 0 if map_beats else (1 if act_replay else len(groups)) * tiles * reduction,
        "map": map_beats,
        "out": tiles * per_tile_out * sum(g.packets for g in groups),
    }
    beat_bits = bits.per_beat(mode)
    sizes = {k: beats[k] * beat_bits[k] / 8 for k in beats}
    if map_bytes is not None:
        if not 0 <= map_bytes <= sizes["map"]:
            raise ValueError(f"map_bytes must be in [0, {sizes['map']}], got {map_bytes}")
        sizes["map"] = map_bytes
    return LayerTraffic(beats, sizes, act_replay)


def bandwidth_bound_cycles(
    cycles: LayerCycles, traffic: LayerTraffic, bytes_per_cycle: float
) -> int:
    """Cycles of the layer when its external streams share ``bytes_per_cycle`` of bandwidth.

    The engine overlaps every transfer with compute (weights and parameters
    of the next group load into the free bank, activations stream as they
    are consumed, outputs leave as they are produced), so a layer takes the
    larger of its compute cycles and its transfer cycles (with activation replay,
    the transfers before the first replayed beat -- configuration, all of the
    activations, two groups' parameters and weights -- then the other groups'
    compute, if that is longer); the output drain
    after the last input beat cannot overlap the input transfers and is
    added to the latter.  Checked against the RTL with the native runner's
    shared-memory model (``run_layer(..., bytes_per_cycle=B)``: prefetch
    buffers of 4 beats per stream, round robin): with half the bandwidth the
    layer needs at compute speed, within 0.7% for fast and direct layers
    (``tests/test_cycle_model.py``); near balance (transfer ~1.1x compute) the
    max() is optimistic where group loads cannot overlap, by up to 11% on a
    layer of one tile per group.  A layer with map input cannot start its tiles
    before the map is complete: a map that arrives slower than one beat per
    cycle delays the compute by the difference.
    """
    if not bytes_per_cycle > 0:
        raise ValueError(f"bytes_per_cycle must be > 0, got {bytes_per_cycle}")
    drain = cycles.breakdown.get("drain", 0)
    map_bytes = traffic.bytes.get("map", 0)
    transfer = math.ceil(traffic.total_bytes / bytes_per_cycle) + drain
    if traffic.act_replay and cycles.groups > 1:
        # Before the first replayed beat: the configuration, all of the activations and the
        # parameters and weights of the two groups the banks hold; the replayed groups then
        # run at compute speed.
        b = traffic.bytes
        banks = min(2, cycles.groups) / cycles.groups
        first = b["cfg"] + b["act"] + (b["chan"] + b["weight"]) * banks
        rest = cycles.cycles * (cycles.groups - 1) / cycles.groups
        return max(cycles.cycles, transfer, math.ceil(first / bytes_per_cycle + rest))
    if not map_bytes:
        return max(cycles.cycles, transfer)
    # Map input: the map (one beat per cycle at most) precedes the tiles; the other
    # streams share the bandwidth during and after it.
    load = math.ceil(map_bytes / bytes_per_cycle)
    compute = cycles.cycles + max(0, load - traffic.beats["map"])
    return max(compute, transfer)
