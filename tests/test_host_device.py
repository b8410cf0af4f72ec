"""host.device (golden backend, interface checks) and host.calibration on the digits ResNet."""

import json

import numpy as np
import pytest

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import random_layer_quant
from sfc_hls.golden import conv2d_int8
from sfc_hls.host.calibration import calibrate, engine_config, engine_configs
from sfc_hls.host.checkpoint import load_digits_small_resnet
from sfc_hls.host.device import GoldenDevice, make_device
from sfc_hls.host.digits import load_digits_split
from sfc_hls.host.inference import check_images, run_float, run_int8
from sfc_hls.host.lowering import lower_model

SFC = EngineConfig(algorithm="sfc6-7x7-3x3", pco=4, cin_max=16, cout_max=16)
DIRECT = EngineConfig(algorithm="direct-3x3", pco=4, cin_max=16, cout_max=16)


@pytest.fixture(scope="module")
def digits():
    model, _ = load_digits_small_resnet()
    split = load_digits_split()
    net = lower_model(model, (1, 28, 28))
    qnet = calibrate(net, split.x_train)
    return model, split, net, qnet


@pytest.mark.parametrize(
    ("config", "stride", "seed"), [(SFC, 1, 0), (DIRECT, 2, 1), (DIRECT, 1, 2)]
)
def test_golden_device_steps_and_bands(config, stride, seed):
    rng = np.random.default_rng(seed)
    params = random_layer_quant(config, 5, 7, rng, padding=1, relu=bool(seed % 2))
    x = rng.integers(-128, 128, size=(2, 5, 23, 17))
    want = conv2d_int8(x, params, stride=stride)
    dev = GoldenDevice([SFC, DIRECT])
    dev.load_weights("l", params)
    dev.configure("l", stride=stride)
    dev.stream_input(x)
    assert np.array_equal(dev.read_output().output, want)
    # Tiny band budget: one tile row at a time, same result.
    banded = GoldenDevice([SFC, DIRECT], max_elements=1)
    assert np.array_equal(banded.run_conv("l", params, x, stride=stride).output, want)


def test_device_errors_name_the_layer():
    rng = np.random.default_rng(3)
    dev = make_device("golden", [SFC])
    wino = EngineConfig(algorithm="wino-2x2-3x3", pco=4, cin_max=16, cout_max=16)
    with pytest.raises(ValueError, match="layer 'a' needs an engine for 'wino-2x2-3x3'"):
        dev.load_weights("a", random_layer_quant(wino, 2, 2, rng))
    big = EngineConfig(algorithm="sfc6-7x7-3x3", pco=4, cin_max=32, cout_max=16)
    with pytest.raises(ValueError, match="layer 'b': cin=20 exceeds the engine's cin_max=16"):
        dev.load_weights("b", random_layer_quant(big, 20, 4, rng))
    fixed = EngineConfig(algorithm="sfc6-7x7-3x3", pco=4, cin_max=16, cout_max=16,
                         scale_mode="fixed")  # fmt: skip
    with pytest.raises(ValueError, match="layer 'c': scale_mode='fixed' differs"):
        dev.load_weights("c", random_layer_quant(fixed, 2, 2, rng))
    params = random_layer_quant(SFC, 3, 2, rng)
    with pytest.raises(KeyError, match="layer 'd' has no weights loaded"):
        dev.configure("d")
    with pytest.raises(RuntimeError, match="configure a layer"):
        dev.stream_input(np.zeros((1, 3, 7, 7), dtype=np.int64))
    dev.load_weights("d", params)
    with pytest.raises(ValueError, match="stride=2 needs an algorithm with a 1x1 output tile"):
        dev.configure("d", stride=2)
    dev.configure("d")
    with pytest.raises(ValueError, match="layer 'd': x has Cin=4"):
        dev.stream_input(np.zeros((1, 4, 7, 7), dtype=np.int64))
    with pytest.raises(RuntimeError, match="stream its input"):
        dev.read_output()
    with pytest.raises(ValueError, match="backend must be one of"):
        make_device("fpga", [SFC])


def test_int8_network_close_to_float_on_digits(digits):
    model, split, net, qnet = digits
    x, y = split.x_test[:96], split.y_test[:96].numpy()
    float_logits = run_float(net, x)
    result = run_int8(qnet, GoldenDevice(list(qnet.engines.values())), x, batch_size=40)
    assert result.logits.shape == (96, 10) and result.backend == "golden"
    float_top1 = (float_logits.argmax(1) == y).mean()
    int8_top1 = (result.predictions == y).mean()
    assert int8_top1 >= float_top1 - 0.02
    assert (result.predictions == float_logits.argmax(1)).mean() >= 0.97
    # Logits agree with float to a few percent of their range.
    err = np.abs(result.logits - float_logits).max() / np.abs(float_logits).max()
    assert err < 0.1
    records = {r.name: r for r in result.records}
    assert records["layer1.0.conv1"].engine == "sfc6-7x7-3x3 P_co=4"
    assert {r.engine for r in result.records if r.op == "conv"} == {"sfc6-7x7-3x3 P_co=4"}
    assert records["layer1.0.conv1"].mode == "fast"
    assert records["layer2.0.conv1"].mode == "direct"  # stride 2
    assert records["layer1.0.add"].engine == "host" and records["fc"].op == "linear"
    assert all(r.cycles is None for r in result.records)


def test_calibration_is_deterministic_and_serializable(digits):
    _, split, net, qnet = digits
    again = calibrate(net, split.x_train)
    assert again.scales == qnet.scales
    for name, params in qnet.convs.items():
        assert again.convs[name].to_dict() == params.to_dict(), name
    summary = json.loads(json.dumps(qnet.to_dict(parameters=True)))
    assert summary["calib_images"] == 32
    assert set(summary["convs"]) == {c.name for c in net.convs}
    assert list(summary["engines"]) == ["sfc6-7x7-3x3"]  # one engine for every conv
    assert summary["engines"]["sfc6-7x7-3x3"]["cout_max"] == 64
    # Max pooling and ReLU-fused layers: every scale positive.
    assert all(s > 0 for s in qnet.scales.values())


def test_calibration_and_images_bad_input(digits):
    _, split, net, _ = digits
    with pytest.raises(ValueError, match="calibration images is empty"):
        calibrate(net, split.x_train[:0])
    with pytest.raises(ValueError, match="expects 1 .*input shape 1x28x28"):
        check_images(np.zeros((2, 3, 28, 28)), net)
    with pytest.raises(ValueError, match="are 32x32; small_resnet was lowered for 28x28"):
        check_images(np.zeros((2, 1, 32, 32)), lower_model(digits[0], (1, 28, 28),
                                                          name="small_resnet"))  # fmt: skip
    with pytest.raises(ValueError, match="NaN"):
        check_images(np.full((1, 1, 28, 28), np.nan), net)
    with pytest.raises(ValueError, match="scale_mode must be one of"):
        engine_configs(net, scale_mode="log")
    with pytest.raises(ValueError, match="layer 'conv1' needs an engine for 'sfc6-7x7-3x3'"):
        calibrate(net, split.x_train[:2], engines=[DIRECT])


def test_engine_config_fits_the_network(digits):
    _, _, net, _ = digits
    (config,) = engine_configs(net, pco=8, scale_mode="fixed")
    assert config == engine_config(net, pco=8, scale_mode="fixed")
    assert (config.algorithm, config.pco, config.scale_mode) == ("sfc6-7x7-3x3", 8, "fixed")
    assert (config.cin_max, config.cout_max) == (64, 64)
    direct = [c for c in net.convs if c.mode == "direct"]
    assert config.direct_reduction_max == max(c.kernel**2 * c.cin for c in direct)
    for conv in net.convs:
        config.check_layer(conv, name=conv.name)  # every conv fits the one engine
