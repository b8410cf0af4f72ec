"""Cycle model of the conv engine: against Verilator, against closed forms, bad arguments."""

import dataclasses

import pytest

from sfc_hls.config import EngineConfig
from sfc_hls.cycle_model import EngineTiming, LayerCycles, layer_cycles, layer_traffic
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.sim.cycle_check import compare
from sfc_hls.sim.engine_regression import LayerShape

# A small engine with 4 output-channel groups at cout=8, so that the bank
# release (group g + 2 waits for group g's last output lane) is exercised.
SMALL = EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=32, cout_max=8)
# A map buffer, a weight transform and a replay buffer of 1152 beats: the fast layers whose map
# fits take it on i_map, the 3x12x12 one (1152 beats) and the direct layers replay their
# activations, the 7x7 stem (1176 beats per group) in two chunks of tiles.
MAP_WT = dataclasses.replace(SMALL, map_kib=4, weight_transform=True, replay_beats=1152)
SHAPES = [
    LayerShape(1, 16, 8, 8, 8, False),  # 16 tiles x 4 groups: weight loads hidden
    LayerShape(1, 32, 8, 2, 2, True),  # 1 tile per group: load/release bound (like 7x7 maps)
    LayerShape(1, 1, 6, 6, 6, False),  # cin < P_co: output serializer bound
    LayerShape(2, 8, 5, 5, 7, True),  # batch 2, partial last group, map not a tile multiple
    LayerShape(1, 32, 3, 12, 12, False),  # 36 tiles, 2 groups
    LayerShape(1, 3, 8, 23, 19, True, "direct", 7, 2),  # a stem: 7x7 stride 2 on 3 channels
    LayerShape(1, 16, 7, 11, 9, False, "direct", 3, 2),  # 3x3 stride 2, partial group
    LayerShape(2, 32, 8, 7, 7, False, "direct", 1, 2),  # 1x1 stride 2 (a downsample)
]


@pytest.mark.parametrize(
    "engine",
    # ECP5: longer pipelines and a serializer that takes a result only when empty
    # (take_gap 1: the output-bound cin=1 layer costs a third more per tile).
    # map_kib=4: the fast layers whose map fits (all but the 3x12x12 one) take it on
    # i_map; the tiles follow once the map is complete.  With the weight transform every
    # fast layer sends spatial weights (a header and one row per beat for F(2x2)).
    [
        SMALL,
        dataclasses.replace(SMALL, target="ecp5", macs_per_dsp=1),
        MAP_WT,
    ],
    ids=lambda c: c.target + ("-map-wt-replay" if c.map_kib else ""),
)
def test_model_matches_verilator_within_2_percent(engine, seed=11):
    checks = compare(engine, SHAPES, seed=seed)
    assert len(checks) == len(SHAPES)
    if engine.replay_beats:  # every kind of layer: map, replayed fast and direct, in chunks
        kinds = {(c.mode, c.map_beats > 0, c.act_replay, c.chunks > 1) for c in checks}
        assert {("fast", True, False, False), ("fast", False, True, False),
                ("direct", False, True, False), ("direct", False, True, True)} <= kinds, kinds  # fmt: skip
    for c in checks:
        assert c.bit_exact, c
        assert abs(c.error) <= 0.02, c.to_dict()


# Cycles measured in Verilator on the serial engine of commit cc3d92d (one
# weight bank: load, compute, drain per group), wino-2x2-3x3, P_co=4:
# (cin, cout, tiles, cycles).  The model with weight_banks=1 reproduces them.
SERIAL_MEASURED = [
    (16, 8, 16, 628), (64, 6, 4, 721), (2, 8, 9, 155), (1, 4, 4, 74),
    (8, 5, 24, 480), (64, 8, 1, 339), (4, 4, 25, 164), (3, 8, 25, 287),
]  # fmt: skip


def test_serial_engine_model_matches_measured_cycles():
    # That engine's parameters: 38 register writes, front 6 = B^T 1 + act quantizer 2 +
    # weight read 1 + MAC 2, back 6 = rescale 2 + A^T 1 + output quantizer 3; one lane per cycle.
    timing = EngineTiming(pco=4, cfg_writes=38, front_latency=6, back_latency=6, weight_banks=1)
    for cin, cout, tiles, measured in SERIAL_MEASURED:
        model = layer_cycles(timing, cin=cin, cout=cout, tiles=tiles).cycles
        assert abs(model - measured) <= max(1, 0.02 * measured), (cin, cout, tiles, model)


def test_timing_from_engine():
    interface = EngineInterface.from_config(SMALL)
    timing = interface.timing()
    assert timing.pco == 2 and timing.weight_banks == 2
    # CIN..REPLICAS (8), ACT_MULT/SHIFT[16], CONTROL
    assert timing.cfg_writes == 2 * 16 + 9 == 41
    latency = interface.latency
    assert timing.front_latency == sum(latency[b] for b in
                                       ("act_input", "input_transform", "act_quantizer",
                                        "weight_buffer", "mac_array"))  # fmt: skip
    assert timing.latencies("direct")[0] == timing.front_latency - latency["input_transform"]
    assert (timing.blocks, timing.width) == (interface.blocks, interface.width)


@pytest.mark.parametrize("banks", [1, 2])
def test_closed_forms(banks):
    t = EngineTiming(pco=4, cfg_writes=10, front_latency=6, back_latency=7, weight_banks=banks)
    # One group: config, load, tiles * cin beats, drain of the last tile's lanes.
    one = layer_cycles(t, cin=16, cout=4, tiles=8)
    load = 4 + 16 + 1 if banks == 1 else max(4, 16) + 1
    assert one.cycles == 10 + load + 8 * 16 + 6 + 4 + 7
    assert sum(one.breakdown.values()) == one.cycles
    assert one.breakdown["act_beats"] == one.act_beats == 128
    # Serializer bound: cin < lanes, a tile every P_co cycles.
    slow = layer_cycles(t, cin=1, cout=4, tiles=100)
    assert slow.breakdown["serializer"] >= 99 * 3 - 10
    # Many groups: two banks hide the weight loads, one bank pays for them.
    many = layer_cycles(t, cin=64, cout=64, tiles=16)
    if banks == 2:
        assert many.breakdown["between_groups"] == 0
    else:
        assert many.breakdown["between_groups"] >= 15 * (4 + 64 + 1)
    assert sum(many.breakdown.values()) == many.cycles


def test_one_tile_groups_overhead_with_two_banks():
    # 7x7 maps on SFC-6(7x7): one tile per group; loading the group after next
    # waits for the bank release, but overlaps the current group's compute.
    t = EngineTiming(pco=4, cfg_writes=270, front_latency=8, back_latency=10, weight_banks=2)
    r = layer_cycles(t, cin=512, cout=512, tiles=1)
    assert r.groups == 128
    assert r.cycles < 1.03 * r.act_beats
    serial = layer_cycles(
        EngineTiming(pco=4, cfg_writes=270, front_latency=8, back_latency=10, weight_banks=1),
        cin=512, cout=512, tiles=1,
    )  # fmt: skip
    assert serial.cycles > 1.9 * r.act_beats


def test_layer_cycles_to_dict():
    t = EngineTiming(pco=2, cfg_writes=8, front_latency=3, back_latency=3)
    r = layer_cycles(t, cin=3, cout=3, tiles=2)
    assert isinstance(r, LayerCycles)
    assert r.to_dict()["cycles"] == r.cycles and r.groups == 2


def test_argument_errors():
    t = EngineTiming(pco=2, cfg_writes=8, front_latency=3, back_latency=3)
    with pytest.raises(ValueError, match="cin must be an int >= 1, got 0"):
        layer_cycles(t, cin=0, cout=1, tiles=1)
    with pytest.raises(TypeError, match="tiles must be an int"):
        layer_cycles(t, cin=1, cout=1, tiles=1.5)
    with pytest.raises(TypeError, match="timing must be an EngineTiming"):
        layer_cycles({"pco": 2}, cin=1, cout=1, tiles=1)
    with pytest.raises(ValueError, match=r"weight_banks must be an int in \[1, 2\], got 3"):
        EngineTiming(pco=2, cfg_writes=8, front_latency=3, back_latency=3, weight_banks=3)
    with pytest.raises(ValueError, match="pco must be an int >= 1"):
        EngineTiming(pco=0, cfg_writes=8, front_latency=3, back_latency=3)
    with pytest.raises(TypeError, match="pco must be an int"):
        EngineTiming(pco=True, cfg_writes=8, front_latency=3, back_latency=3)


SFC_ENGINE = EngineConfig(algorithm="sfc6-7x7-3x3", pco=2, cin_max=64, cout_max=8)
SFC_SHAPES = [
    LayerShape(1, 64, 8, 7, 7, True),  # a 7x7 map: one tile per group, 4 groups
    LayerShape(1, 32, 8, 14, 14, False),  # 4 tiles per group
    LayerShape(1, 16, 5, 21, 21, False),  # 9 tiles, partial last group
]


@pytest.mark.slow
def test_sfc6_7x7_engine_model_matches_verilator():
    for c in compare(SFC_ENGINE, SFC_SHAPES, seed=5):
        assert c.bit_exact, c
        assert abs(c.error) <= 0.02, c.to_dict()


# Bandwidth: the streams share a memory (native runner, --bandwidth) of half the bytes per
# cycle the layer would need to run at its compute speed, so the transfer takes twice the
# compute time: the model (bandwidth_bound_cycles) then matches the RTL within 2%.
BANDWIDTH_SHAPES = [SHAPES[0], SHAPES[6]]  # one layer of each mode: fast 16->8, direct 3x3/2


@pytest.mark.parametrize("engine", [SMALL, MAP_WT], ids=["tiles", "map-wt-replay"])
def test_bandwidth_model_matches_throttled_verilator_within_2_percent(engine):
    """With map input (the fast layer's map on i_map), the map's transfer precedes the
    tiles: the model adds the slower map load to the compute.  With activation replay the
    direct layer's activations all arrive during its first group."""
    interface = EngineInterface.from_config(engine)
    free = compare(engine, BANDWIDTH_SHAPES, seed=11)
    for shape, unthrottled in zip(BANDWIDTH_SHAPES, free, strict=True):
        assert (unthrottled.map_beats > 0) == (bool(engine.map_kib) and shape.mode == "fast")
        assert unthrottled.spatial_weights == (engine.weight_transform and shape.mode == "fast")
        # The replay buffer takes the direct layer (its activations arrive in the first group).
        assert unthrottled.act_replay == (bool(engine.replay_beats) and shape.mode == "direct")
        taps = shape.kernel**2 if shape.mode == "direct" else 1
        traffic = layer_traffic(interface.timing(), interface.stream_bits(), cin=shape.cin,
                                cout=shape.cout, tiles=unthrottled.tiles, mode=shape.mode,
                                taps=taps, map_beats=unthrottled.map_beats,
                                map_bytes=unthrottled.map_bytes or None,
                                spatial_weights=unthrottled.spatial_weights,
                                act_replay=unthrottled.act_replay)  # fmt: skip
        bytes_per_cycle = 0.5 * traffic.total_bytes / unthrottled.measured
        (check,) = compare(engine, [shape], seed=11, bytes_per_cycle=bytes_per_cycle)
        assert check.bit_exact, check
        assert check.measured > 1.8 * unthrottled.measured, (check, unthrottled)  # throttled
        assert abs(check.error) <= 0.02, check.to_dict()
