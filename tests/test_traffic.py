"""External traffic of the cycle model against the beats the stream encoder really produces."""

from __future__ import annotations

import numpy as np
import pytest

from sfc_hls.config import EngineConfig
from sfc_hls.cycle_model import bandwidth_bound_cycles, layer_cycles, layer_traffic
from sfc_hls.datapath import random_layer_quant
from sfc_hls.hw.engine_streams import EngineStreams
from sfc_hls.hw.interface import EngineInterface

ENGINES = [
    EngineConfig(algorithm="sfc6-7x7-3x3", pco=4, cin_max=32, cout_max=16),
    EngineConfig(algorithm="wino-2x2-3x3", pco=3, cin_max=16, cout_max=9, backend_width=4),
    # A feature-map buffer: the stride-1 fast layers send their map once on i_map.
    EngineConfig(algorithm="sfc6-7x7-3x3", pco=4, cin_max=32, cout_max=16, map_kib=8),
    # A weight transform: the fast layers send a header and k spatial rows per beat.
    EngineConfig(algorithm="sfc6-7x7-3x3", pco=4, cin_max=32, cout_max=16, weight_transform=True),
    # A replay buffer of 64 beats: layers whose group takes at most 64 i_act beats send them once.
    EngineConfig(
        algorithm="wino-2x2-3x3", pco=3, cin_max=16, cout_max=9, backend_width=4, replay_beats=64
    ),  # fmt: skip
]
# (mode, kernel, stride, batch, cin, cout, height, width)
LAYERS = [
    ("fast", None, 1, 1, 5, 7, 17, 9),
    ("fast", None, 1, 2, 3, 16 - 7, 8, 8),
    ("direct", 7, 2, 1, 1, 6, 23, 19),
    ("direct", 3, 2, 1, 4, 5, 11, 9),
    ("direct", 1, 1, 1, 3, 2, 5, 4),
]


def x_size(layer: tuple) -> int:
    """Pixels of the layer's input map (batch, cin, height, width)."""
    _, _, _, batch, cin, _, h, w = layer
    return batch * cin * h * w


def _model_and_beats(config: EngineConfig, layer: tuple, seed: int):
    mode, kernel, stride, batch, cin, cout, h, w = layer
    cout = min(cout, config.cout_max)
    rng = np.random.default_rng(seed)
    k = kernel or config.algo.kernel
    params = random_layer_quant(config, cin, cout, rng, padding=k // 2, mode=mode, kernel=kernel)
    x = rng.integers(-128, 128, size=(batch, cin, h, w))
    streams = EngineStreams(config)
    beats = streams.layer_beats(params, x, stride=stride)
    iface = EngineInterface.from_config(config)
    sched = beats.schedule
    traffic = layer_traffic(
        iface.timing(), iface.stream_bits(), cin=cin, cout=cout, tiles=beats.tiles, mode=mode,
        taps=k * k if mode == "direct" else 1, replicas=sched.replicas if sched else 1,
        map_beats=len(beats.map), spatial_weights=beats.spatial_weights,
        act_replay=beats.act_replay,
    )  # fmt: skip
    return traffic, beats, iface


def _engine_id(config: EngineConfig) -> str:
    return (config.algorithm + "-map" * bool(config.map_kib) + "-wt" * config.weight_transform
            + "-replay" * bool(config.replay_beats))  # fmt: skip


@pytest.mark.parametrize("config", ENGINES, ids=_engine_id)
@pytest.mark.parametrize("layer", LAYERS, ids=lambda ly: f"{ly[0]}{ly[1] or ''}s{ly[2]}")
def test_beats_per_stream_equal_the_encoder(config, layer):
    traffic, beats, iface = _model_and_beats(config, layer, seed=3)
    encoded = {"cfg": len(beats.cfg), "chan": len(beats.chan), "weight": len(beats.weight),
               "act": len(beats.act), "map": len(beats.map), "out": beats.expected_outputs}  # fmt: skip
    assert traffic.beats == encoded
    # The map engine takes every fast layer's map (they fit), the others never.
    assert (encoded["map"] > 0) == (bool(config.map_kib) and layer[0] == "fast")
    bits = iface.stream_bits()
    act_bits = bits.act_fast if layer[0] == "fast" else bits.act_direct
    assert traffic.bytes["act"] == encoded["act"] * act_bits / 8
    assert traffic.bytes["map"] == encoded["map"] * 2 * config.algo.input_tile * config.map_pairs
    assert beats.map_bytes == (x_size(layer) if encoded["map"] else 0)  # the map's own bytes
    # The weight-transform engine takes every fast layer's spatial weights, the others never.
    assert beats.spatial_weights == (config.weight_transform and layer[0] == "fast")
    # The replay engine sends one group's act beats where they fit (<= 64), the others never.
    per_group = beats.tiles * layer[4] * ((layer[1] or 1) ** 2 if layer[0] == "direct" else 1)
    assert beats.act_replay == (0 < per_group <= config.replay_beats and not encoded["map"])
    if beats.act_replay:
        assert encoded["act"] == per_group
    if beats.spatial_weights:  # per group: the header and ceil(cin / 14) beats of 14 rows
        groups = -(-min(layer[5], config.cout_max) // config.pco)
        assert encoded["weight"] == groups * (1 + -(-layer[4] // 14))
    assert traffic.total_bytes == sum(traffic.bytes.values())


def test_stream_bits_of_the_default_engine():
    bits = EngineInterface.from_config(EngineConfig()).stream_bits()
    assert bits.act_fast == 81 * 8  # a 9x9 input tile
    assert bits.act_direct == 132 * 8  # m output pixels
    assert bits.weight == 4 * 132 * 8  # P_co x m transform-domain weights
    assert bits.out == 11 * 8  # W int8 outputs


def test_bandwidth_bound_is_compute_when_memory_is_fast_and_transfer_when_slow():
    iface = EngineInterface.from_config(EngineConfig(cin_max=64, cout_max=64))
    timing, bits = iface.timing(), iface.stream_bits()
    lc = layer_cycles(timing, cin=64, cout=64, tiles=64)
    tr = layer_traffic(timing, bits, cin=64, cout=64, tiles=64)
    assert bandwidth_bound_cycles(lc, tr, 1e9) == lc.cycles
    slow = bandwidth_bound_cycles(lc, tr, 1.0)
    assert slow == int(np.ceil(tr.total_bytes)) + lc.breakdown["drain"] > lc.cycles
    assert bandwidth_bound_cycles(lc, tr, 8.0) <= bandwidth_bound_cycles(lc, tr, 4.0)
    with pytest.raises(ValueError, match="bytes_per_cycle must be > 0, got 0"):
        bandwidth_bound_cycles(lc, tr, 0)
