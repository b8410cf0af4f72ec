"""host.lowering and host.ir: torch model -> layer descriptors, engine choice, BN folding."""

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from sfc_hls.host.inference import run_float
from sfc_hls.host.ir import Add, Conv, GlobalAvgPool, Linear, MaxPool, Network
from sfc_hls.host.lowering import UnsupportedLayerError, choose_mode, lower_model
from sfc_hls.host.models import resnet18, resnet34, small_resnet


def _randomize_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial running statistics and affine parameters (fresh BNs fold to identity)."""
    gen = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
            mod.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            mod.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            mod.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def resnet18_ir():
    torch.manual_seed(0)
    model = _randomize_batchnorm(resnet18(), seed=0)
    return model, lower_model(model, (3, 64, 64))


def test_resnet18_layer_list_and_engine_choice(resnet18_ir):
    _, net = resnet18_ir
    convs = net.convs
    assert len(convs) == 20 and all(c.bn is not None for c in convs)
    assert sum(isinstance(x, Add) for x in net.layers) == 8
    assert [type(x) for x in net.layers[-2:]] == [GlobalAvgPool, Linear]
    assert isinstance(net["maxpool"], MaxPool)
    stem = net["conv1"]
    assert (stem.kernel, stem.stride, stem.padding, stem.relu) == (7, 2, 3, True)
    assert stem.mode == "direct"
    for conv in convs:
        assert conv.algorithm == "sfc6-7x7-3x3", conv.name  # one engine for every conv
        if conv.kernel == 3 and conv.stride == 1:
            assert conv.mode == "fast", conv.name
        elif conv.kernel in (3, 7):  # stride-2 3x3 convs and the stem
            assert conv.mode == "direct" and conv.stride == 2, conv.name
        else:  # the 1x1 downsamples, in direct mode (no 3x3 embedding)
            assert conv.kernel == 1 and conv.mode == "direct" and conv.padding == 0, conv.name
            assert "downsample" in conv.name and conv.bn.endswith("downsample.1")
    assert net.algorithm == "sfc6-7x7-3x3"
    assert sum(c.mode == "fast" for c in convs) == 13
    # ReLU fused into conv1 of each block and into each residual add, not into conv2.
    assert net["layer1.0.conv1"].relu and not net["layer1.0.conv2"].relu
    add = net["layer2.0.add"]
    assert add.relu and add.inputs == ("layer2.0.conv2", "layer2.0.downsample.0")
    assert net.output == "fc"
    assert "sfc6-7x7-3x3" in net.table() and "layer4.1.add" in str(net)


def test_resnet18_folded_ir_equals_torch(resnet18_ir):
    model, net = resnet18_ir
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x).double().numpy()
    got = run_float(net, x)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_batchnorm_folding_is_exact_in_float64():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, bias=True), nn.BatchNorm2d(6))
    model = _randomize_batchnorm(model, seed=3)
    net = lower_model(model, (4, 9, 9))
    (layer,) = net.layers
    x = torch.randn(1, 4, 9, 9, dtype=torch.float64)
    with torch.no_grad():  # the same float32 parameters, evaluated in float64
        want = copy.deepcopy(model).double()(x).numpy()
    got = torch.nn.functional.conv2d(
        x, torch.from_numpy(layer.weight), torch.from_numpy(layer.bias), padding=1
    ).numpy()
    assert np.abs(got - want).max() < 1e-6


def test_mode_choice_follows_the_algorithm():
    assert choose_mode(3, 1, "wino-4x4-3x3") == "fast"
    assert choose_mode(3, 2, "wino-4x4-3x3") == "direct"
    assert choose_mode(1, 2) == "direct"
    assert choose_mode(7, 2) == "direct"
    assert choose_mode(5, 1, "sfc6-6x6-5x5") == "fast"
    assert choose_mode(3, 1, "sfc6-6x6-5x5") == "direct"
    net = lower_model(small_resnet(), (1, 28, 28), algorithm="wino-4x4-3x3")
    assert net.algorithm == "wino-4x4-3x3"
    assert {c.mode for c in net.convs} == {"fast", "direct"}
    with pytest.raises(ValueError, match="unknown algorithm name"):
        lower_model(small_resnet(), (1, 28, 28), algorithm="sfc9-3x3")


def test_ir_json_round_trip(tmp_path):
    net = lower_model(small_resnet(), (1, 28, 28))
    path = tmp_path / "net.json"
    net.save(path, weights=True)
    back = Network.load(path)
    assert back.to_dict() == net.to_dict()
    for a, b in zip(net.convs, back.convs, strict=True):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    summary = json.loads(json.dumps(net.to_dict()))
    assert summary["layers"][0]["op"] == "conv" and "weight" not in summary["layers"][0]
    assert summary["layers"][0]["mults"] == net.convs[0].mults
    with pytest.raises(ValueError, match="not a network record"):
        Network.from_dict({"format": "x"})
    bad = net.to_dict()
    bad["layers"][1]["input"] = "nowhere"
    with pytest.raises(ValueError, match="reads tensor 'nowhere' before any layer produces it"):
        Network.from_dict(bad)


class _Sigmoidal(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.Sigmoid()

    def forward(self, x):
        return self.act(self.conv(x))


class _Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)

    def forward(self, x):
        return self.dw(x)


class _LonelyBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x):
        return self.bn(x)


class _Mul(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(x) * 2


@pytest.mark.parametrize(
    ("model", "shape", "message"),
    [
        (_Sigmoidal(), (1, 8, 8), r"layer 'act' \(Sigmoid\) is not supported"),
        (_Grouped(), (4, 8, 8), r"layer 'dw': grouped conv"),
        (_LonelyBN(), (1, 8, 8), r"layer 'bn' \(BatchNorm2d\) does not directly follow a conv"),
        (_Mul(), (1, 8, 8), r"layer 'mul' \(function mul\) is not supported"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2)), (1, 8, 8), "'1'"),
    ],
    ids=["sigmoid", "grouped", "lonely-bn", "mul", "upsample"],
)
def test_unsupported_layers_are_named(model, shape, message):
    with pytest.raises(UnsupportedLayerError, match=message):
        lower_model(model, shape)


def test_bad_input_shapes():
    with pytest.raises(ValueError, match=r"does not accept inputs of shape \(3, 28, 28\)"):
        lower_model(small_resnet(), (3, 28, 28))
    with pytest.raises(ValueError, match="input_shape must be"):
        lower_model(small_resnet(), (28, 28))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        lower_model("resnet18", (3, 224, 224))


def test_conv_descriptor_counts():
    net = lower_model(small_resnet(), (1, 28, 28))
    conv = net["layer1.0.conv1"]
    assert isinstance(conv, Conv)
    assert conv.macs == 28 * 28 * 16 * 16 * 9
    assert conv.mults == 16 * 132 * 16 * 16  # 4x4 tiles of 7x7, 132 products each
    ds = net["layer2.0.downsample.0"]
    assert ds.mode == "direct" and ds.reduction == 16
    assert ds.macs == ds.mults == 14 * 14 * 32 * 16  # direct mode: no wasted products


class _VggStyle(nn.Module):
    """A plain VGG-style net: 3x3 and 1x1 convs, stride 2, max and average pooling, flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 1), nn.ReLU(),
            nn.Conv2d(32, 24, 5, padding=2), nn.ReLU(),
            nn.AvgPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Linear(24 * 2 * 2, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def test_vgg_style_net_lowers_and_runs_on_one_engine():
    """Any mix of conv kernels (1/3/5), strides, pools and a flatten runs on one engine."""
    from sfc_hls.host.calibration import calibrate, engine_configs
    from sfc_hls.host.device import GoldenDevice
    from sfc_hls.host.inference import run_int8

    torch.manual_seed(4)
    model = _randomize_batchnorm(_VggStyle(), seed=4).eval()
    net = lower_model(model, (3, 16, 16), name="vgg_style")
    modes = {c.name: c.mode for c in net.convs}
    assert modes == {"features.0": "fast", "features.3": "fast", "features.6": "direct",
                     "features.9": "direct", "features.11": "direct"}  # fmt: skip
    assert [type(x).__name__ for x in net.layers[-3:]] == ["AvgPool", "Flatten", "Linear"]
    x = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = model(x).double().numpy()
    assert np.abs(run_float(net, x) - want).max() <= 1e-4 * np.abs(want).max()
    engines = engine_configs(net)
    assert len(engines) == 1
    qnet = calibrate(net, x[:4], engines=engines)
    got = run_int8(qnet, GoldenDevice(engines), x).logits
    # int8 against float: a few percent of the logit range (8-bit activations and weights).
    assert np.abs(got - want).max() <= 0.1 * np.abs(want).max()


def test_resnet34_lowers_onto_one_engine():
    net = lower_model(resnet34(), (3, 224, 224), name="resnet34")
    convs = net.convs
    assert len(convs) == 36 and net.algorithm == "sfc6-7x7-3x3"
    assert sum(c.mode == "fast" for c in convs) == 29  # stride-1 3x3
    assert {(c.kernel, c.stride) for c in convs if c.mode == "direct"} == {(7, 2), (3, 2), (1, 2)}
