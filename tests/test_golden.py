"""Golden model: exactness, two implementations of one spec, derived bounds, bad input."""

import dataclasses
import json

import numpy as np
import pytest

from sfc_hls.config import EngineConfig, LayerSpec
from sfc_hls.datapath import (
    BoundError,
    DatapathWidths,
    LayerQuant,
    check_bound,
    minimum_rescale_shift,
    no_saturation_shift,
    random_layer_quant,
    rshift_round,
    saturate,
)
from sfc_hls.golden import conv2d_int8, conv2d_int8_scalar
from sfc_hls.reference import direct_conv2d_int

ALGOS = ["sfc6-7x7-3x3", "sfc6-6x6-3x3", "sfc4-4x4-3x3", "wino-2x2-3x3", "wino-4x4-3x3",
         "direct-3x3", "sfc6-6x6-5x5", "sfc3-3x3-3x3"]  # fmt: skip


@pytest.mark.parametrize("name", ALGOS)
def test_lossless_datapath_equals_direct_convolution(name):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    r = int(name.split("-")[-1].split("x")[0])
    for trial in range(3):
        cin, cout = rng.integers(1, 5), rng.integers(1, 4)
        h, w = rng.integers(1, 16, size=2) + r // 2
        x = rng.integers(-128, 128, size=(2, cin, h, w))
        wt = rng.integers(-128, 128, size=(cout, cin, r, r))
        params, w_int = LayerQuant.lossless(name, wt, padding=r // 2)
        out = conv2d_int8(x, params)
        assert np.array_equal(out, direct_conv2d_int(x, w_int, padding=r // 2)), trial


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    name = ALGOS[seed % len(ALGOS)]
    mode = ("pow2", "fixed")[(seed // len(ALGOS)) % 2]
    relu = bool((seed // (2 * len(ALGOS))) % 2)
    cin, cout = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    cfg = EngineConfig(algorithm=name, scale_mode=mode, pco=1, cin_max=cin, cout_max=cout)
    r = cfg.algo.kernel
    padding = int(rng.integers(0, r // 2 + 1))
    params = random_layer_quant(cfg, cin, cout, rng, padding=padding, relu=relu)
    lo = max(1, r - 2 * padding)
    h, w = (int(v) for v in rng.integers(lo, lo + 12, size=2))
    x = rng.integers(-128, 128, size=(int(rng.integers(1, 3)), cin, h, w))
    if seed % 5 == 0:  # extreme inputs: constant -128 / 127, alternating signs
        x = np.choose(seed % 3, [np.full_like(x, -128), np.full_like(x, 127),
                                 np.where(np.indices(x.shape).sum(axis=0) % 2, 127, -128)])  # fmt: skip
    return x, params


@pytest.mark.parametrize("chunk", range(8))
def test_scalar_and_vectorized_agree_on_200_layers(chunk):
    # 8 chunks x 25 seeded layers = 200 layers over algorithms, scale modes, ReLU on/off.
    for seed in range(chunk * 25, chunk * 25 + 25):
        x, params = _random_case(seed)
        fast = conv2d_int8(x, params)
        slow = conv2d_int8_scalar(x, params)
        assert fast.dtype == np.int64
        assert np.array_equal(fast, slow), f"seed {seed}"
        lo = 0 if params.relu else -128
        assert fast.min() >= lo and fast.max() <= 127


def test_stages_are_consistent():
    x, params = _random_case(3)
    out, st = conv2d_int8(x, params, return_stages=True)
    algo = params.algo
    assert np.array_equal(st.v, st.tiles @ algo.bt_int.T)
    assert np.array_equal(st.y, st.z @ algo.at_int.T)
    assert np.array_equal(st.out, out)
    m = algo.mults
    assert st.q.shape[-1] == m and st.acc.shape[1] == params.cout
    # q is the requantized v
    exp_q = saturate(rshift_round(st.v * params.act_mult, params.act_shift), params.config.act_bits)
    assert np.array_equal(st.q, exp_q)


def test_rounding_is_half_up_and_saturation():
    v = np.array([-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6])
    assert rshift_round(v, 1).tolist() == [-3, -2, -2, -1, -1, 0, 0, 1, 1, 2, 2, 3, 3]
    assert rshift_round(v, 2).tolist() == [-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 2]
    assert rshift_round(v, 0).tolist() == v.tolist()
    assert saturate(np.array([-300, 300, 5]), 8).tolist() == [-128, 127, 5]
    assert saturate(np.array([-300, 300, -5]), 8, relu=True).tolist() == [0, 127, 0]


def test_widths_are_derived_for_the_default_engine():
    cfg = EngineConfig()  # SFC-6(7x7,3x3)
    wd = DatapathWidths.derive(cfg.algo, cfg, 256, minimum_rescale_shift(256, cfg))
    assert wd.v_bits == 14  # row L1 norms of B^T with int8 inputs
    assert wd.acc_bound == 256 * 128 * 128 and wd.acc_bits == 24
    assert wd.z_bits == 20 and wd.z_bound <= 2**19 - 1
    # the bound is tight: z needs the full width
    assert wd.z_bound > 2**18
    # act_shift: per position, the no-saturation shift of the row's range (v_bits 10..14)
    assert wd.act_shift_max.min() == 3 and wd.act_shift_max.max() == 6
    assert np.all(wd.act_shift_max == [
        no_saturation_shift(int(lo), int(hi), 8) for lo, hi in zip(wd.v_lo, wd.v_hi, strict=True)
    ])  # fmt: skip


def test_act_shift_above_the_positions_limit_is_refused():
    """A shift beyond a position's no-saturation shift only loses precision: not legal."""
    _, params = _random_case(1)
    limit = params.widths.act_shift_max
    j = int(np.argmin(limit))
    fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    legal = params.act_shift.copy()
    legal[j] = limit[j]
    LayerQuant(**{**fields, "act_shift": legal})  # the limit itself is legal
    legal[j] = limit[j] + 1
    with pytest.raises(ValueError, match=rf"act_shift at position {j} is {limit[j] + 1}, above "
                                         rf"{limit[j]}, the smallest shift at which no"):  # fmt: skip
        LayerQuant(**{**fields, "act_shift": legal})


def test_bound_violation_raises_instead_of_wrapping():
    x, params = _random_case(1)
    # Bypass validation to plant weights the datapath cannot hold: the model
    # must refuse (BoundError) rather than compute a wrapped result.
    object.__setattr__(params, "weights", params.weights * 1000)
    x = np.full_like(x, -128)
    with pytest.raises(BoundError, match="acc: value .* outside its derived range"):
        conv2d_int8(x, params)
    with pytest.raises(BoundError, match="z: value 9 at"):
        check_bound("z", np.array([1, 9]), -8, 8)


def test_layer_quant_json_round_trip(tmp_path):
    _, params = _random_case(11)
    path = tmp_path / "layer.json"
    params.save(path)
    back = LayerQuant.load(path)
    assert back.config == params.config
    for name in ("act_mult", "act_shift", "weights", "rescale_mult", "bias", "out_mult"):
        assert np.array_equal(getattr(back, name), getattr(params, name))
    assert [p.name for p in tmp_path.iterdir()] == ["layer.json"]  # no temp files left


def test_corrupt_layer_quant_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read layer-quant file"):
        LayerQuant.load(path)
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a layer-quant record"):
        LayerQuant.load(path)
    _, params = _random_case(12)
    d = params.to_dict()
    del d["weights"]
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="missing the field 'weights'"):
        LayerQuant.load(path)


def _params(**overrides):
    _, params = _random_case(1)  # pow2 mode
    kw = {k: getattr(params, k) for k in (
        "config", "cin", "cout", "act_mult", "act_shift", "weights", "rescale_mult",
        "rescale_shift", "bias", "out_mult", "out_shift", "padding", "relu")}  # fmt: skip
    kw.update(overrides)
    return LayerQuant(**kw)


def test_bad_parameters():
    _, p = _random_case(1)
    assert p.config.scale_mode == "pow2"
    m = p.algo.mults
    with pytest.raises(ValueError, match=r"act_shift has shape \(3,\), expected"):
        _params(act_shift=np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="act_mult must be in \\[1, 1\\] \\(pow2 mode"):
        _params(act_mult=np.full(m, 3))
    with pytest.raises(ValueError, match="weights must be in"):
        _params(weights=np.full(p.weights.shape, 128))
    with pytest.raises(TypeError, match="weights must be an integer array"):
        _params(weights=p.weights.astype(np.float64))
    with pytest.raises(ValueError, match="beyond z_bits"):
        _params(rescale_shift=0)
    with pytest.raises(ValueError, match="out_shift must be in"):
        _params(out_shift=np.full(p.cout, 99))


def test_bad_config_and_spec():
    with pytest.raises(ValueError, match="unknown algorithm name"):
        EngineConfig(algorithm="fft-3x3")
    with pytest.raises(ValueError, match="act_bits must be an int in \\[2, 32\\], got 1"):
        EngineConfig(act_bits=1)
    with pytest.raises(ValueError, match="pco must divide cout_max"):
        EngineConfig(pco=3, cout_max=64)
    with pytest.raises(ValueError, match="scale_mode must be one of"):
        EngineConfig(scale_mode="log")
    with pytest.raises(ValueError, match="must be 2D"):
        EngineConfig(algorithm="sfc4-4-3")
    spec = LayerSpec(cin=300, cout=8, height=8, width=8)
    with pytest.raises(ValueError, match="layer 'l1': cin=300 exceeds the engine's cin_max=256"):
        EngineConfig().check_layer(spec, name="l1")
    with pytest.raises(ValueError, match="kernel 5 does not match"):
        EngineConfig().check_layer(LayerSpec(cin=3, cout=8, height=8, width=8, kernel=5))
    other = random_layer_quant(EngineConfig(scale_mode="fixed", cin_max=8, cout_max=8), 3, 2,
                               np.random.default_rng(0))  # fmt: skip
    with pytest.raises(ValueError, match="scale_mode='fixed' differs from the engine's 'pow2'"):
        EngineConfig().check_layer(other)


def test_bad_input_data():
    x, p = _random_case(9)
    with pytest.raises(TypeError, match="integer array"):
        conv2d_int8(x.astype(np.float64), p)
    with pytest.raises(ValueError, match="x values must be in \\[-128, 127\\]"):
        conv2d_int8(x * 0 + 200, p)
    with pytest.raises(ValueError, match="expect cin="):
        conv2d_int8(np.zeros((1, p.cin + 1, 8, 8), dtype=np.int8), p)
    with pytest.raises(ValueError, match="must be 4D"):
        conv2d_int8(np.zeros((p.cin, 8, 8), dtype=np.int8), p)
    with pytest.raises(TypeError, match="params must be a LayerQuant"):
        conv2d_int8(x, {"weights": 1})


# -- direct mode -------------------------------------------------------------------------------
DIRECT_SHAPES = [(1, 1, 0), (1, 2, 0), (3, 1, 1), (3, 2, 1), (5, 1, 2), (7, 2, 3), (3, 2, 0)]


def _direct_case(seed: int):
    rng = np.random.default_rng(1000 + seed)
    k, stride, padding = DIRECT_SHAPES[seed % len(DIRECT_SHAPES)]
    cin, cout = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    cfg = EngineConfig(algorithm=ALGOS[seed % 3], scale_mode=("pow2", "fixed")[seed % 2],
                       pco=1, cin_max=8, cout_max=8)  # fmt: skip
    params = random_layer_quant(cfg, cin, cout, rng, padding=padding, relu=bool(seed % 3 == 1),
                                mode="direct", kernel=k)  # fmt: skip
    h, w = (int(v) for v in rng.integers(max(k - 2 * padding, 1), 14, size=2))
    x = rng.integers(-128, 128, size=(int(rng.integers(1, 3)), cin, h, w))
    if seed % 5 == 0:
        x = np.full_like(x, (-128, 127)[seed % 2])
    return x, params, stride


@pytest.mark.parametrize("chunk", range(4))
def test_direct_mode_scalar_and_vectorized_agree(chunk):
    for seed in range(chunk * 25, (chunk + 1) * 25):
        x, params, stride = _direct_case(seed)
        want = conv2d_int8_scalar(x, params, stride=stride)
        got = conv2d_int8(x, params, stride=stride)
        assert np.array_equal(got, want), seed


@pytest.mark.parametrize("seed", range(12))
def test_direct_mode_accumulators_are_the_integer_convolution(seed):
    """acc = the exact integer convolution of the quantized input (an independent reference)."""
    import torch

    x, params, stride = _direct_case(seed)
    _, stages = conv2d_int8(x, params, stride=stride, return_stages=True)
    ref = torch.nn.functional.conv2d(
        torch.from_numpy(stages.q.astype(np.float64)),
        torch.from_numpy(params.weights.astype(np.float64)),
        stride=stride,
        padding=params.padding,
    ).numpy()
    assert np.array_equal(stages.acc, ref.astype(np.int64))  # float64 exact below 2^53
    assert stages.acc.shape[1] == params.cout and np.array_equal(stages.y, stages.z)


def test_direct_mode_widths_and_validation(tmp_path):
    cfg = EngineConfig(pco=1, cin_max=8, cout_max=8)
    params = random_layer_quant(cfg, 3, 2, np.random.default_rng(0), mode="direct", kernel=7)
    assert (params.kernel, params.reduction) == (7, 147)
    wd = params.widths
    assert wd.v_bits == 8 and wd.acc_bound == 147 * 128 * 128
    assert params.rescale_shift >= minimum_rescale_shift(147, cfg)
    path = tmp_path / "direct.json"
    params.save(path)
    again = LayerQuant.load(path)
    assert again.mode == "direct" and again.to_dict() == params.to_dict()
    fields = {f: getattr(params, f) for f in ("act_mult", "act_shift", "weights", "rescale_mult",
                                              "bias", "out_mult", "out_shift")}  # fmt: skip
    common = dict(config=cfg, cin=3, cout=2, rescale_shift=params.rescale_shift, mode="direct")
    uneven = dict(fields, act_shift=np.arange(cfg.algo.mults) % 2)
    with pytest.raises(ValueError, match="act_shift must be the same at every position"):
        LayerQuant(**common, **uneven)
    with pytest.raises(ValueError, match=r"rescale_mult has shape \(2, 2\), expected \(2,\)"):
        LayerQuant(**common, **dict(fields, rescale_mult=np.ones((2, 2), int)))
    with pytest.raises(ValueError, match="mode must be one of"):
        LayerQuant(**dict(common, mode="winograd"), **fields)
    with pytest.raises(ValueError, match="products is"):
        LayerQuant(**dict(common, rescale_shift=0), **fields)
