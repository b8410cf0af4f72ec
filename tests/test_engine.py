# amaranth: UnusedElaboratable=no

"""Whole conv engines in Verilator against the golden model (cocotb), plus generation checks."""

import json

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.lib import data

from sfc_hls.cli import main
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import random_layer_quant
from sfc_hls.hw.engine import ConvEngine
from sfc_hls.hw.engine_streams import EngineStreams, pack, unpack
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.sim.engine_regression import run_regression

# Four algorithms, both scale modes, P_co 2 and 4; cin_max 64 so that the
# throughput layer has 64 input channels.  Each case builds one engine
# (about 10-70 s cold) and runs: random layers with stalls on every stream,
# a 64-channel layer without stalls (throughput), a reset in the middle of a
# layer followed by a clean layer, and a bad descriptor.
ENGINES = [
    EngineConfig(algorithm="sfc6-7x7-3x3", pco=2, cin_max=64, cout_max=8, scale_mode="pow2"),
    EngineConfig(algorithm="sfc4-4x4-3x3", pco=2, cin_max=64, cout_max=8, scale_mode="fixed"),
    EngineConfig(algorithm="wino-2x2-3x3", pco=4, cin_max=64, cout_max=8, scale_mode="pow2"),
    EngineConfig(algorithm="direct-3x3", pco=4, cin_max=64, cout_max=8, scale_mode="fixed"),
    # 1x1 kernel: A^T is 1x1, so y is one bit narrower than the quantizer's
    # input (a power-of-two bound); catches raw-bit array copies between widths.
    EngineConfig(algorithm="direct-1x1", pco=4, cin_max=64, cout_max=8, scale_mode="pow2"),
    # ECP5: MULT18X18D instances (simulated with sim/ecp5_cells.v) and the longer
    # MAC array, rescale and output quantizer pipelines.
    EngineConfig(
        algorithm="wino-2x2-3x3", pco=2, cin_max=64, cout_max=8, scale_mode="fixed", target="ecp5"
    ),  # fmt: skip
    # A 2 KiB feature-map buffer (4 words in each of 72 memories): stride-1 fast layers whose map fits send it on
    # i_map (the tiles are built on chip), the others use i_act.  A weight transform: every
    # fast layer sends spatial weights.  A replay buffer of 512 beats: layers without map
    # input whose group takes at most 512 i_act beats send them once.
    EngineConfig(
        algorithm="sfc6-7x7-3x3",
        pco=2,
        cin_max=64,
        cout_max=8,
        map_kib=2,
        weight_transform=True,
        replay_beats=512,
    ),  # fmt: skip
]
BAD_MAP_DESCRIPTORS = {"map_input_in_direct_mode", "map_zero_height", "map_padding_above_limit"}
BAD_WEIGHT_DESCRIPTORS = {"spatial_weights_in_direct_mode"}


def _engine_id(config: EngineConfig) -> str:
    suffix = "" if config.target == "xilinx" else f"-{config.target}"
    suffix += f"-map{config.map_kib}k" if config.map_kib else ""
    suffix += "-wt" if config.weight_transform else ""
    suffix += f"-replay{config.replay_beats}" if config.replay_beats else ""
    return f"{config.algorithm}-{config.scale_mode}{suffix}"


@pytest.mark.parametrize("config", ENGINES, ids=_engine_id)
def test_engine_bit_exact_against_golden(config, tmp_path):
    count = 6 if config.map_kib else 4
    report = run_regression(config, layers=count, seed=3)
    layers = report["layers"]
    assert len(layers) == count
    assert all(layer["bit_exact"] for layer in layers)
    if config.map_kib:  # map input where the map fits, tiles elsewhere
        fast = [layer for layer in layers if layer["mode"] == "fast"]
        assert {layer["act_beats"] == 0 for layer in fast} == {True, False}, fast
    for layer in layers:  # the weight transform takes every fast layer's spatial weights
        assert layer["spatial_weights"] == (config.weight_transform and layer["mode"] == "fast")
    assert report["throughput"]["bit_exact"]
    assert all(r["bit_exact"] for r in report["resets"])
    assert report["throughput"]["steady_cycles_per_beat"] <= 1.05
    assert report["status"]["desc_error"] == 0 and report["status"]["overflow"] == 0
    refused = report["bad_descriptor_status"]
    assert set(refused) == {"cin_above_cin_max", "direct_taps_times_cin_above_limit",
                            "direct_replicas_not_a_divisor", "direct_zero_taps",
                            *(BAD_MAP_DESCRIPTORS if config.map_kib else ()),
                            *(BAD_WEIGHT_DESCRIPTORS if config.weight_transform else ())}  # fmt: skip
    assert all(status["desc_error"] == 1 and status["busy"] == 0 for status in refused.values())
    modes = {layer["mode"].split()[0] for layer in layers}
    assert modes == {"fast", "direct"}, modes
    assert {r["mode"].split()[0] for r in report["resets"]} == modes  # a reset in each mode
    expected_tests = ["layers_bit_exact", "reset_mid_layer_then_clean_layer",
                      "bad_descriptor_is_flagged"]  # fmt: skip
    assert sorted(report["tests"]) == sorted(expected_tests)


def _random_value(shape, rng):
    """A random nested value (lists for arrays, dicts for structs) of an Amaranth shape."""
    if isinstance(shape, data.ArrayLayout):
        return [_random_value(shape.elem_shape, rng) for _ in range(shape.length)]
    if isinstance(shape, data.StructLayout):
        return {name: _random_value(field.shape, rng) for name, field in shape}
    s = Shape.cast(shape)
    lo, hi = (-(1 << (s.width - 1)), 1 << (s.width - 1)) if s.signed else (0, 1 << s.width)
    return int(rng.integers(lo, hi))


def _leaves(value, path=""):
    """{field path: flat list of ints}: the arrays of scalars flattened, as pack() takes them."""
    if isinstance(value, dict):
        out = {}
        for name, item in value.items():
            out.update(_leaves(item, f"{path}.{name}" if path else name))
        return out
    if isinstance(value, list) and not any(isinstance(v, dict) for v in value):
        return {path: list(np.ravel(value))}
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out.update(_leaves(item, f"{path}[{i}]"))
        return out
    return {path: [value]}


@pytest.mark.parametrize("name", ["cfg", "chan", "weight", "act", "map", "out", "status"])
def test_stream_packing_matches_amaranth_layouts(name):
    """pack/unpack against Amaranth's own encoding of independently built nested values."""
    layout = EngineInterface.from_config(
        EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=8, cout_max=4)
    ).layouts[name]
    rng = np.random.default_rng(0)
    values = [_random_value(layout, rng) for _ in range(3)]
    expected = [layout.const(v).as_bits() for v in values]  # Amaranth's bit order
    fields = {path: np.array([_leaves(v)[path] for v in values]) for path in _leaves(values[0])}
    assert pack(layout, fields) == expected
    back = unpack(layout, expected)
    assert sorted(back) == sorted(fields)
    for path, arr in fields.items():
        assert np.array_equal(back[path], arr), path


def test_pack_rejects_values_out_of_range():
    layout = EngineInterface.from_config(EngineConfig(algorithm="wino-2x2-3x3", pco=2,
                                                      cin_max=8, cout_max=4)).layouts["act"]  # fmt: skip
    with pytest.raises(ValueError, match="values must be in"):
        pack(layout, {"": np.full((1, 16), 200)})


def test_stream_encoding_round_trip_through_golden():
    config = EngineConfig(algorithm="sfc4-4x4-3x3", pco=2, cin_max=8, cout_max=8)
    streams = EngineStreams(config)
    rng = np.random.default_rng(1)
    params = random_layer_quant(config, 3, 5, rng)
    x = rng.integers(-128, 128, size=(2, 3, 9, 6))
    beats = streams.layer_beats(params, x)
    assert beats.groups == 3 and beats.tiles == 2 * 3 * 2
    assert len(beats.act) == beats.groups * beats.tiles * 3
    iface = streams.interface
    # Weights: cin beats per group; parameters: one beat per (lane, back-end block) per group;
    # outputs: each channel's tile in output_beats beats of the back-end width.
    assert len(beats.weight) == beats.groups * 3
    assert len(beats.chan) == beats.groups * 2 * iface.blocks
    assert beats.expected_outputs == beats.tiles * 5 * iface.output_beats
    with pytest.raises(ValueError, match="scale_mode='fixed' differs"):
        other = EngineConfig(algorithm="sfc4-4x4-3x3", pco=2, cin_max=8, cout_max=8,
                             scale_mode="fixed")  # fmt: skip
        streams.layer_beats(random_layer_quant(other, 3, 5, rng), x)
    with pytest.raises(ValueError, match="exceeds the engine's cin_max=8"):
        big = EngineConfig(algorithm="sfc4-4x4-3x3", pco=2, cin_max=16, cout_max=8)
        streams.layer_beats(random_layer_quant(big, 9, 2, rng), x)


def test_generate_cli_writes_verilog_and_manifest(tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", "--algo", "wino-2x2-3x3", "--pco", "2", "--cin-max", "16",
                 "--cout-max", "4", "-o", str(out)]) == 0  # fmt: skip
    manifest = json.loads((out / "conv_engine.json").read_text())
    text = (out / "conv_engine.v").read_text()
    assert "module conv_engine" in text
    assert manifest["multipliers"]["mac_array"] == 16 * 2
    assert manifest["limits"]["cin"] == 16
    assert {"i_cfg", "i_chan", "i_weight", "i_act", "o_out", "status"} <= set(manifest["ports"])
    assert main(["generate", "--algo", "wino-2x2-3x3", "--pco", "3", "--cout-max", "4",
                 "-o", str(tmp_path / "bad")]) == 2  # fmt: skip
    assert "pco must divide cout_max" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_engine_rejects_bad_configuration():
    with pytest.raises(TypeError, match="config must be an EngineConfig"):
        ConvEngine({"algorithm": "sfc6-7x7-3x3"})
    with pytest.raises(ValueError, match="unknown algorithm name"):
        EngineConfig(algorithm="sfc6-7x7")
