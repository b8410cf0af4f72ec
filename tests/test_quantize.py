"""Tests of sfc_hls.quantize: post-training quantization onto the integer datapath."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant, minimum_rescale_shift
from sfc_hls.golden import conv2d_int8
from sfc_hls.quantize import (
    QuantOptions,
    accumulator_scale,
    dequantize_output,
    float_conv2d,
    fold_batchnorm,
    quantize_conv_layer,
    quantize_input,
)
from sfc_hls.reference import assemble_tiles

SFC6 = "sfc6-7x7-3x3"
WINO4 = "wino-4x4-3x3"

# Tolerance of the normalized output error (MSE / var of the float output) of
# an int8 layer against the float layer on the same int8 input.  One 8-bit
# rounding of a signal whose range is ~8 standard deviations adds
# (8/255)^2 / 12 ~ 8e-5 of the variance; the int8 path rounds three times
# (transform-domain activations, weights, output) and A^T sums up to m such
# errors per output.  Measured: 2e-4 .. 1e-3 for SFC-6 on the digits network
# (docs/quantization.md), up to 1.7e-3 on the synthetic layer below (only 8
# calibration images, so exact min-max scales clip held-out outliers).  5e-3
# leaves a 3x margin; an activation shift off by one gives 0.25 and a doubled
# bias 1.4e-2.  (Winograd F(4x4,3x3) reaches 1e-2: it is not held to this.)
NMSE_TOL = 5e-3


def _nmse(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(np.mean((estimate - reference) ** 2) / np.var(reference))


def _synthetic_layer(seed: int, cin: int = 6, cout: int = 8, size: int = 14, n: int = 8):
    """A random layer with smooth, post-ReLU-like int8 inputs (so tiles are correlated)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0 / math.sqrt(9 * cin), size=(cout, cin, 3, 3))
    b = rng.normal(0.0, 0.1, size=cout)
    x = rng.normal(size=(2 * n, cin, size + 2, size + 2))
    x = (x[..., :-2, :-2] + x[..., 1:-1, 1:-1] + x[..., 2:, 2:]) / math.sqrt(3)  # smooth
    x = np.maximum(x + 0.3, 0)
    sx = float(np.abs(x[:n]).max()) / 127
    xi = quantize_input(x, sx)
    return w, b, xi[:n].astype(np.int8), xi[n:].astype(np.int8), sx


@pytest.fixture(scope="module")
def digits_layer():
    """Folded weights and int8 inputs of layer2.0.conv2 (32 -> 32, 14x14) of the digits ResNet."""
    torch = pytest.importorskip("torch")
    from sfc_hls.host.checkpoint import load_digits_small_resnet
    from sfc_hls.host.digits import load_digits_split

    model, _ = load_digits_small_resnet()
    split = load_digits_split()
    name = "layer2.0.conv2"
    modules = dict(model.named_modules())
    captured = []
    hook = modules[name].register_forward_hook(lambda m, i, o: captured.append(i[0].double()))
    with torch.no_grad():
        model(split.x_train[:16])
        model(split.x_test[:16])
    hook.remove()
    w, b = fold_batchnorm(modules[name], modules["layer2.0.bn2"])
    xc, xe = (t.numpy() for t in captured)
    sx = float(np.abs(xc).max()) / 127
    return w, b, quantize_input(xc, sx), quantize_input(xe, sx), sx


def _layer_error(params: LayerQuant, w, b, x_int, sx) -> float:
    ref = float_conv2d(x_int * sx, w, b, params.padding)
    out = conv2d_int8(x_int, params)
    return _nmse(dequantize_output(out, params), ref)


def _accumulator_error(params: LayerQuant, w, b, x_int, sx) -> float:
    """Error of y + bias (before output requantization) against the float layer."""
    ref = float_conv2d(x_int * sx, w, b, params.padding)
    out, stages = conv2d_int8(x_int, params, return_stages=True)
    algo = params.algo
    grid = [math.ceil(s / algo.output_tile) for s in out.shape[2:]]
    y = assemble_tiles(stages.y.astype(np.float64), algo, list(out.shape[2:]), grid)
    y = (y + params.bias[None, :, None, None]) * accumulator_scale(params)[None, :, None, None]
    return _nmse(y, ref)


# ---------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("fine_tune", [False, True], ids=["ft-off", "ft-on"])
@pytest.mark.parametrize("scale_mode", ["pow2", "fixed"])
@pytest.mark.parametrize("algorithm", ["direct-3x3", "wino-2x2-3x3", "sfc4-4x4-3x3", SFC6])
def test_quantized_layer_matches_float(algorithm, scale_mode, fine_tune):
    seed = 11
    w, b, xc, xe, sx = _synthetic_layer(seed)
    config = EngineConfig(algorithm=algorithm, scale_mode=scale_mode)
    params = quantize_conv_layer(
        w,
        b,
        config=config,
        calib_inputs_int8=xc,
        input_scale=sx,
        options=QuantOptions(fine_tune=fine_tune),
    )
    assert params.input_scale == sx
    assert params.rescale_shift == minimum_rescale_shift(params.cin, config)
    assert _layer_error(params, w, b, xe, sx) < NMSE_TOL  # held-out inputs


@pytest.mark.parametrize("fine_tune", [False, True], ids=["ft-off", "ft-on"])
@pytest.mark.parametrize("granularity", ["channel", "position"])
@pytest.mark.parametrize("algorithm", ["wino-2x2-3x3", "sfc4-4x4-3x3", SFC6, WINO4])
def test_spatial_weights_match_float(algorithm, granularity, fine_tune):
    """Spatial int8 weights transformed exactly (weight_source="spatial"), held-out inputs."""
    w, b, xc, xe, sx = _synthetic_layer(11)
    params = quantize_conv_layer(
        w,
        b,
        config=EngineConfig(algorithm=algorithm),
        calib_inputs_int8=xc,
        input_scale=sx,
        options=QuantOptions(
            weight_source="spatial", weight_granularity=granularity, fine_tune=fine_tune
        ),
    )
    assert params.has_spatial_weights
    # Winograd F(4x4) reaches 1e-2 with either weight source (see NMSE_TOL).
    assert _layer_error(params, w, b, xe, sx) < (2e-2 if algorithm == WINO4 else NMSE_TOL)


def test_spatial_weights_cost_little_on_digits_layer(digits_layer):
    """The spatial source's error stays close to the transform-domain source's."""
    w, b, xc, xe, sx = digits_layer
    errors = {}
    for source in ("transform", "spatial"):
        params = quantize_conv_layer(
            w,
            b,
            config=EngineConfig(algorithm=SFC6),
            calib_inputs_int8=xc,
            input_scale=sx,
            options=QuantOptions(weight_source=source),
        )
        errors[source] = _accumulator_error(params, w, b, xe, sx)
    # Measured 1.21x on this layer (docs/datapath.md "Spatial weights": 1.2x geomean over
    # the digits layers): an int8 rounding of w, a power-of-two scale per (position, channel).
    # 1.6x leaves margin; spatial weights rounded to 6 bits fail it (and the layer tests).
    assert errors["spatial"] < 1.6 * errors["transform"]


@pytest.mark.parametrize("scale_mode", ["pow2", "fixed"])
def test_fine_tune_does_not_increase_calibration_error(digits_layer, scale_mode):
    w, b, xc, _, sx = digits_layer
    config = EngineConfig(algorithm=SFC6, scale_mode=scale_mode)
    errors = []
    for ft in (False, True):
        params = quantize_conv_layer(
            w,
            b,
            config=config,
            calib_inputs_int8=xc,
            input_scale=sx,
            options=QuantOptions(fine_tune=ft),
        )
        errors.append(_accumulator_error(params, w, b, xc, sx))
    # The search accepts only moves that lower its error model on these very
    # samples; the model omits the rescale and z rounding (< 2^-15 relative).
    assert errors[1] <= errors[0] * 1.01


@pytest.mark.parametrize("act_method", ["minmax", "percentile", "mse"])
@pytest.mark.parametrize("weight_method", ["minmax", "mse"])
@pytest.mark.parametrize("granularity", ["channel", "position"])
def test_calibration_methods(digits_layer, act_method, weight_method, granularity):
    w, b, xc, xe, sx = digits_layer
    config = EngineConfig(algorithm=SFC6, scale_mode="fixed")
    params = quantize_conv_layer(
        w,
        b,
        config=config,
        calib_inputs_int8=xc,
        input_scale=sx,
        options=QuantOptions(
            act_method=act_method, weight_method=weight_method, weight_granularity=granularity
        ),
    )
    assert _layer_error(params, w, b, xe, sx) < NMSE_TOL


def test_sfc6_beats_winograd4_on_digits_layer(digits_layer):
    w, b, xc, xe, sx = digits_layer
    errors = {}
    for algorithm in (SFC6, WINO4):
        config = EngineConfig(algorithm=algorithm, scale_mode="pow2")
        params = quantize_conv_layer(
            w,
            b,
            config=config,
            calib_inputs_int8=xc,
            input_scale=sx,
            options=QuantOptions(act_method="percentile"),
        )
        errors[algorithm] = _accumulator_error(params, w, b, xe, sx)
    # Measured: 18x on this layer (16 calibration images); require a clear 3x.
    assert errors[SFC6] * 3 < errors[WINO4], errors


def test_output_scale_from_calibration_uses_the_range():
    w, b, xc, _, sx = _synthetic_layer(3)
    params = quantize_conv_layer(
        w, b, config=EngineConfig(algorithm=SFC6), calib_inputs_int8=xc, input_scale=sx
    )
    ref = float_conv2d(xc * sx, w, b, 1)
    assert params.output_scale == pytest.approx(np.abs(ref).max() / 127)
    out = conv2d_int8(xc, params)
    assert np.abs(out).max() >= 120  # the int8 range is used


def test_relu_output():
    w, b, xc, xe, sx = _synthetic_layer(4)
    params = quantize_conv_layer(
        w, b, config=EngineConfig(algorithm=SFC6), calib_inputs_int8=xc, input_scale=sx, relu=True
    )
    ref = np.maximum(float_conv2d(xc * sx, w, b, 1), 0)
    assert params.relu
    assert params.output_scale == pytest.approx(ref.max() / 127)
    out = conv2d_int8(xe, params)
    assert out.min() >= 0
    ref_e = np.maximum(float_conv2d(xe * sx, w, b, 1), 0)
    assert _nmse(dequantize_output(out, params), ref_e) < NMSE_TOL


def test_given_output_scale_is_used():
    w, b, xc, _, sx = _synthetic_layer(5)
    params = quantize_conv_layer(
        w,
        b,
        config=EngineConfig(algorithm=SFC6),
        calib_inputs_int8=xc,
        input_scale=sx,
        output_scale=0.05,
    )
    assert params.output_scale == 0.05
    ratio = accumulator_scale(params) / 0.05
    assert np.all(params.out_mult >= 1 << (params.config.out_mult_bits - 1)) or np.all(
        params.out_shift == params.widths.out_product_bits
    )
    np.testing.assert_allclose(ratio, params.out_mult / 2.0**params.out_shift)


# ---------------------------------------------------------------------- parameters
def test_pow2_parameters_have_unit_multipliers():
    w, b, xc, _, sx = _synthetic_layer(6)
    for ft in (False, True):
        params = quantize_conv_layer(
            w,
            b,
            config=EngineConfig(algorithm=SFC6, scale_mode="pow2"),
            calib_inputs_int8=xc,
            input_scale=sx,
            options=QuantOptions(fine_tune=ft),
        )
        assert np.all(params.act_mult == 1)
        assert np.all(params.act_shift >= 0)
        assert np.all(params.act_shift <= params.widths.act_shift_max)  # LayerQuant checks it


def test_fixed_parameters_use_the_multiplier_width():
    w, b, xc, _, sx = _synthetic_layer(7)
    config = EngineConfig(algorithm=SFC6, scale_mode="fixed")
    params = quantize_conv_layer(w, b, config=config, calib_inputs_int8=xc, input_scale=sx)
    assert params.act_mult.max() < 1 << config.act_mult_bits
    assert params.act_mult.min() >= 1 << (config.act_mult_bits - 1)  # full precision
    assert params.rescale_mult.max() == (1 << config.rescale_bits) - 1


def test_quantization_is_deterministic():
    w, b, xc, _, sx = _synthetic_layer(8)
    config = EngineConfig(algorithm=SFC6, scale_mode="fixed")
    options = QuantOptions(fine_tune=True, act_method="mse", weight_method="mse")
    kwargs = dict(config=config, calib_inputs_int8=xc, input_scale=sx, options=options)
    a = quantize_conv_layer(w, b, **kwargs)
    c = quantize_conv_layer(w, b, **kwargs)
    assert a.to_dict() == c.to_dict()


def test_calib_samples_limits_the_calibration_set():
    w, b, xc, _, sx = _synthetic_layer(9)
    config = EngineConfig(algorithm=SFC6)
    a = quantize_conv_layer(
        w,
        b,
        config=config,
        calib_inputs_int8=xc,
        input_scale=sx,
        options=QuantOptions(calib_samples=2),
    )
    c = quantize_conv_layer(w, b, config=config, calib_inputs_int8=xc[:2], input_scale=sx)
    assert a.to_dict() == c.to_dict()


def test_serialization_round_trip(tmp_path):
    w, b, xc, xe, sx = _synthetic_layer(10)
    params = quantize_conv_layer(
        w,
        b,
        config=EngineConfig(algorithm=SFC6, scale_mode="fixed"),
        calib_inputs_int8=xc,
        input_scale=sx,
        options=QuantOptions(fine_tune=True),
    )
    again = LayerQuant.from_dict(params.to_dict())
    assert again.to_dict() == params.to_dict()
    path = tmp_path / "layer.json"
    params.save(path)
    loaded = LayerQuant.load(path)
    assert loaded.to_dict() == params.to_dict()
    assert loaded.input_scale == params.input_scale
    assert loaded.output_scale == params.output_scale
    np.testing.assert_array_equal(conv2d_int8(xe, loaded), conv2d_int8(xe, params))


def test_fold_batchnorm_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=True)
    bn = torch.nn.BatchNorm2d(5)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        expect = bn.double()(conv.double()(x)).numpy()
    w, b = fold_batchnorm(conv, bn)
    np.testing.assert_allclose(float_conv2d(x.numpy(), w, b, 1), expect, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------- bad inputs
def _good_kwargs():
    w, b, xc, _, sx = _synthetic_layer(1, n=2)
    return dict(
        weight=w, bias=b, config=EngineConfig(algorithm=SFC6), calib_inputs_int8=xc, input_scale=sx
    )


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda k: k.update(calib_inputs_int8=k["calib_inputs_int8"][:0]), ValueError, "empty"),
        (
            lambda k: k.update(calib_inputs_int8=k["calib_inputs_int8"].astype(np.float32)),
            TypeError,
            "calib_inputs_int8",
        ),
        (
            lambda k: k.update(calib_inputs_int8=k["calib_inputs_int8"].astype(np.int64) * 4),
            ValueError,
            "calib_inputs_int8 values",
        ),
        (
            lambda k: k.update(calib_inputs_int8=k["calib_inputs_int8"][:, :3]),
            ValueError,
            "calib_inputs_int8 has Cin",
        ),
        (
            lambda k: k.update(calib_inputs_int8=k["calib_inputs_int8"][0]),
            ValueError,
            "calib_inputs_int8 must be 4D",
        ),
        (lambda k: k.update(calib_inputs_int8=[[1]]), TypeError, "calib_inputs_int8"),
        (lambda k: k.update(weight=k["weight"][..., :2, :2]), ValueError, "weight kernel"),
        (lambda k: k.update(weight=k["weight"][0]), ValueError, "weight must be 4D"),
        (lambda k: k.update(weight=k["weight"] * np.nan), ValueError, "weight contains NaN"),
        (lambda k: k.update(bias=k["bias"][:3]), ValueError, "bias must have shape"),
        (lambda k: k.update(input_scale=0.0), ValueError, "input_scale"),
        (lambda k: k.update(input_scale=-1.0), ValueError, "input_scale"),
        (lambda k: k.update(input_scale=float("nan")), ValueError, "input_scale"),
        (lambda k: k.update(input_scale="1"), TypeError, "input_scale"),
        (lambda k: k.update(output_scale=float("inf")), ValueError, "output_scale"),
        (lambda k: k.update(output_scale=0), ValueError, "output_scale"),
        (lambda k: k.update(output_scale=1e-12), ValueError, "output_scale"),
        (lambda k: k.update(config="sfc6-7x7-3x3"), TypeError, "config"),
        (
            lambda k: k.update(config=EngineConfig(algorithm="sfc6-6x6-5x5")),
            ValueError,
            "weight kernel",
        ),
        (
            lambda k: k.update(config=EngineConfig(algorithm=SFC6, cin_max=4, cout_max=4, pco=1)),
            ValueError,
            "cin_max",
        ),
        (lambda k: k.update(padding=-1), ValueError, "padding"),
        (lambda k: k.update(relu=1), TypeError, "relu"),
        (lambda k: k.update(options={"fine_tune": True}), TypeError, "options"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_inputs(change, error, match):
    kwargs = _good_kwargs()
    change(kwargs)
    with pytest.raises(error, match=match):
        quantize_conv_layer(kwargs.pop("weight"), kwargs.pop("bias"), **kwargs)


@pytest.mark.parametrize(
    "fields, error, match",
    [
        ({"act_method": "max"}, ValueError, "act_method"),
        ({"weight_method": "percentile"}, ValueError, "weight_method"),
        ({"weight_granularity": "tensor"}, ValueError, "weight_granularity"),
        ({"weight_source": "fourier"}, ValueError, "weight_source"),
        ({"percentile": 0}, ValueError, "percentile"),
        ({"percentile": 101}, ValueError, "percentile"),
        ({"tensor_percentile": 0}, ValueError, "tensor_percentile"),
        ({"fine_tune": "yes"}, TypeError, "fine_tune"),
        ({"calib_samples": 0}, ValueError, "calib_samples"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_quant_options(fields, error, match):
    with pytest.raises(error, match=match):
        QuantOptions(**fields)


def test_small_spatial_input_is_rejected():
    kwargs = _good_kwargs()
    kwargs["calib_inputs_int8"] = kwargs["calib_inputs_int8"][..., :1, :1]
    with pytest.raises(ValueError, match="smaller than the kernel"):
        quantize_conv_layer(kwargs.pop("weight"), kwargs.pop("bias"), padding=0, **kwargs)


def test_dequantize_output_checks_arguments():
    w, b, xc, _, sx = _synthetic_layer(2, n=2)
    params = quantize_conv_layer(
        w, b, config=EngineConfig(algorithm=SFC6), calib_inputs_int8=xc, input_scale=sx
    )
    so = params.output_scale
    np.testing.assert_allclose(dequantize_output(np.array([[-3, 5]]), params), [[-3 * so, 5 * so]])
    with pytest.raises(TypeError, match="params"):
        dequantize_output(np.array([1]), {"output_scale": 1.0})
    with pytest.raises(TypeError, match="out_int"):
        dequantize_output(np.array([1.5]), params)


def test_quantize_input_rejects_bad_scale():
    with pytest.raises(ValueError, match="scale"):
        quantize_input(np.ones(3), 0.0)
    np.testing.assert_array_equal(quantize_input(np.array([-10.0, 0.26, 10.0]), 0.5), [-20, 1, 20])
    np.testing.assert_array_equal(quantize_input(np.array([-1e3, 1e3]), 0.5), [-128, 127])
