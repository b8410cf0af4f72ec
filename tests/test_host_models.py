"""Tests of sfc_hls.host.models and sfc_hls.host.checkpoint."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from sfc_hls.host.checkpoint import load_checkpoint, read_state_dict, save_checkpoint
from sfc_hls.host.models import BasicBlock, ResNet, resnet18, resnet34, small_resnet

BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix: str) -> list[str]:
    return [f"{prefix}.{s}" for s in BN_SUFFIXES]


def _block(prefix: str, downsample: bool) -> list[str]:
    keys = [f"{prefix}.conv1.weight", *_bn(f"{prefix}.bn1")]
    keys += [f"{prefix}.conv2.weight", *_bn(f"{prefix}.bn2")]
    if downsample:
        keys += [f"{prefix}.downsample.0.weight", *_bn(f"{prefix}.downsample.1")]
    return keys


# torchvision.models.resnet18().state_dict().keys(), in order, written out from
# torchvision's architecture: stem conv1/bn1, four stages of two BasicBlocks
# (the first block of stages 2-4 has a 1x1 conv + BN downsample), fc.
RESNET18_KEYS = [
    "conv1.weight",
    "bn1.weight",
    "bn1.bias",
    "bn1.running_mean",
    "bn1.running_var",
    "bn1.num_batches_tracked",
    *_block("layer1.0", False),
    *_block("layer1.1", False),
    *_block("layer2.0", True),
    *_block("layer2.1", False),
    *_block("layer3.0", True),
    *_block("layer3.1", False),
    *_block("layer4.0", True),
    *_block("layer4.1", False),
    "fc.weight",
    "fc.bias",
]


def test_resnet18_state_dict_keys_match_torchvision() -> None:
    keys = list(resnet18().state_dict().keys())
    assert len(RESNET18_KEYS) == 122  # 6 stem + 8 blocks * 12 + 3 downsamples * 6 + 2 fc
    assert keys == RESNET18_KEYS
    # spot checks of literal names as they appear in torchvision checkpoints
    for key in (
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_var",
        "layer4.1.bn2.num_batches_tracked",
        "fc.bias",
    ):
        assert key in keys


def test_resnet34_state_dict_keys_match_torchvision() -> None:
    expected = ["conv1.weight", *_bn("bn1")]
    for stage, n in enumerate((3, 4, 6, 3), start=1):
        for i in range(n):
            expected += _block(f"layer{stage}.{i}", downsample=(stage > 1 and i == 0))
    expected += ["fc.weight", "fc.bias"]
    keys = list(resnet34().state_dict().keys())
    assert len(keys) == 218  # 6 + 16 * 12 + 3 * 6 + 2
    assert keys == expected


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "factory, expected",
    [(resnet18, 11_689_512), (resnet34, 21_797_672)],
    ids=["resnet18", "resnet34"],
)
def test_parameter_count_matches_torchvision(factory, expected: int) -> None:
    assert _num_params(factory()) == expected


def test_resnet18_shapes_of_selected_tensors() -> None:
    sd = resnet18().state_dict()
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["layer2.0.conv1.weight"].shape == (128, 64, 3, 3)
    assert sd["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    assert sd["fc.weight"].shape == (1000, 512)


@pytest.mark.parametrize("factory", [resnet18, resnet34], ids=["resnet18", "resnet34"])
def test_imagenet_forward_shape(factory) -> None:
    torch.manual_seed(0)
    model = factory(num_classes=7, in_channels=1).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 64, 64))
        feats = model.forward_features(torch.randn(1, 1, 224, 224))
    assert out.shape == (2, 7)
    assert feats.shape == (1, 512, 7, 7)


def test_small_resnet_keys_and_feature_sizes() -> None:
    torch.manual_seed(1)
    model = small_resnet().eval()
    keys = list(model.state_dict().keys())
    expected = ["conv1.weight", *_bn("bn1")]
    expected += _block("layer1.0", False) + _block("layer2.0", True) + _block("layer3.0", True)
    expected += ["fc.weight", "fc.bias"]
    assert keys == expected
    assert isinstance(model.layer1[0], BasicBlock)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)

    sizes = []
    hooks = [s.register_forward_hook(lambda m, i, o: sizes.append(o.shape)) for s in model.stages()]
    with torch.no_grad():
        out = model(torch.randn(3, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert out.shape == (3, 10)
    assert [tuple(s[1:]) for s in sizes] == [(16, 28, 28), (32, 14, 14), (64, 7, 7)]


def test_small_resnet_custom_widths_and_blocks() -> None:
    model = small_resnet(num_classes=4, in_channels=3, widths=(8, 16), blocks=(2, 3))
    keys = model.state_dict().keys()
    assert "layer2.2.bn2.running_mean" in keys
    assert "layer3.0.conv1.weight" not in keys
    assert "layer2.0.downsample.0.weight" in keys
    assert model(torch.zeros(1, 3, 14, 14)).shape == (1, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"widths": (16, 32), "blocks": (1, 1, 1)}, "widths"),
        ({"blocks": (1, 0, 1)}, "layers"),
        ({"num_classes": 0}, "num_classes"),
        ({"in_channels": 0}, "in_channels"),
        ({"widths": (), "blocks": ()}, "layers"),
    ],
)
def test_small_resnet_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        small_resnet(**kwargs)


# ---------------------------------------------------------------- checkpoint


@pytest.fixture
def model() -> ResNet:
    torch.manual_seed(123)
    m = small_resnet(widths=(4, 8, 8))
    # make BN running stats non-trivial so the round trip checks them too
    m.train()
    with torch.no_grad():
        m(torch.randn(4, 1, 28, 28))
    return m.eval()


def _fresh() -> ResNet:
    torch.manual_seed(999)
    return small_resnet(widths=(4, 8, 8))


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_checkpoint_round_trip(model: ResNet, tmp_path) -> None:
    path = save_checkpoint(model, tmp_path / "sub" / "w.pt")
    assert path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["w.pt"]  # no temp file left
    other = _fresh()
    assert load_checkpoint(other, path) is other
    _assert_same_state(model, other)
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(model(x), other.eval()(x))


def test_checkpoint_save_replaces_existing_file(model: ResNet, tmp_path) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(b"old contents")
    save_checkpoint(model, path)
    _assert_same_state(model, load_checkpoint(_fresh(), path))


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "module_prefix"])
def test_checkpoint_accepts_wrapped_state_dicts(model: ResNet, tmp_path, wrapper: str) -> None:
    sd = model.state_dict()
    if wrapper == "module_prefix":
        obj = {f"module.{k}": v for k, v in sd.items()}
    else:
        obj = {wrapper: sd, "epoch": 3, "optimizer": {}}
    path = tmp_path / "w.pt"
    torch.save(obj, path)
    _assert_same_state(model, load_checkpoint(_fresh(), path))


def test_checkpoint_tolerates_missing_num_batches_tracked(model: ResNet, tmp_path) -> None:
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pt"
    torch.save(sd, path)
    other = load_checkpoint(_fresh(), path)
    for k, v in sd.items():
        assert torch.equal(other.state_dict()[k], v)


def test_checkpoint_missing_key(model: ResNet, tmp_path) -> None:
    sd = model.state_dict()
    del sd["layer2.0.downsample.0.weight"]
    path = tmp_path / "missing.pt"
    torch.save(sd, path)
    with pytest.raises(ValueError) as info:
        load_checkpoint(_fresh(), path)
    msg = str(info.value)
    assert "missing.pt" in msg
    assert "1 missing key" in msg
    assert "'layer2.0.downsample.0.weight'" in msg


def test_checkpoint_unexpected_key(model: ResNet, tmp_path) -> None:
    sd = model.state_dict()
    sd["layer9.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "extra.pt"
    torch.save(sd, path)
    with pytest.raises(ValueError) as info:
        load_checkpoint(_fresh(), path)
    msg = str(info.value)
    assert "extra.pt" in msg
    assert "1 unexpected key" in msg
    assert "'layer9.0.conv1.weight'" in msg


def test_checkpoint_shape_mismatch(model: ResNet, tmp_path) -> None:
    path = tmp_path / "wide.pt"
    save_checkpoint(small_resnet(widths=(4, 8, 16)), path)
    target = _fresh()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError) as info:
        load_checkpoint(target, path)
    msg = str(info.value)
    assert "wide.pt" in msg
    assert "shape mismatch" in msg
    assert "layer3.0.conv1.weight: checkpoint (16, 8, 3, 3) vs model (8, 8, 3, 3)" in msg
    assert "and " in msg and "more" in msg  # long lists are truncated
    for k, v in target.state_dict().items():  # nothing was loaded partially
        assert torch.equal(v, before[k]), k


def test_checkpoint_torchvision_shape_mismatch_names_fc(tmp_path) -> None:
    path = save_checkpoint(resnet18(num_classes=10), tmp_path / "r18.pt")
    with pytest.raises(ValueError, match=r"fc\.weight: checkpoint \(10, 512\) vs model"):
        load_checkpoint(resnet18(), path)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_checkpoint_corrupt_file(model: ResNet, tmp_path, kind: str) -> None:
    path = tmp_path / f"{kind}.pt"
    if kind == "garbage":
        path.write_bytes(b"this is not a torch checkpoint\x00\xff" * 10)
    elif kind == "truncated":
        save_checkpoint(model, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"cannot read checkpoint file .*{kind}\.pt"):
        load_checkpoint(_fresh(), path)


def test_checkpoint_rejects_pickled_objects(tmp_path) -> None:
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": small_resnet()}, path)  # a whole module, not a state_dict
    with pytest.raises(ValueError, match=r"unsafe\.pt"):
        load_checkpoint(_fresh(), path)


def test_checkpoint_non_tensor_entries(tmp_path) -> None:
    path = tmp_path / "odd.pt"
    torch.save({"conv1.weight": torch.zeros(1), "note": "hello"}, path)
    with pytest.raises(ValueError, match=r"odd\.pt.*non-tensor entries: 'note'"):
        read_state_dict(path)


def test_checkpoint_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(_fresh(), tmp_path / "nope.pt")
