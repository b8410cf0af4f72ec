"""Tests of sfc_hls.host.digits, the committed digits weights and train_digits."""

from __future__ import annotations

import dataclasses
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from sfc_hls.host.checkpoint import (
    DIGITS_METADATA,
    DIGITS_WEIGHTS,
    load_digits_small_resnet,
    sha256_file,
)
from sfc_hls.host.digits import (
    DigitsSplit,
    load_digits_split,
    load_image_folder,
    resize_images,
)
from sfc_hls.host.train_digits import TrainConfig, evaluate_top1, main, train


@pytest.fixture(scope="module")
def split() -> DigitsSplit:
    return load_digits_split(seed=0)


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads(DIGITS_METADATA.read_text())


# ---------------------------------------------------------------- digits split


def test_digits_split_sizes_and_shapes(split: DigitsSplit) -> None:
    assert split.x_train.shape == (1347, 1, 28, 28)
    assert split.x_test.shape == (450, 1, 28, 28)
    assert split.x_train.dtype == torch.float32
    assert split.y_train.dtype == torch.int64
    assert len(set(split.train_indices) | set(split.test_indices)) == 1797
    assert not set(split.train_indices) & set(split.test_indices)
    # normalized with the training statistics
    assert abs(float(split.x_train.mean())) < 1e-5
    assert abs(float(split.x_train.std()) - 1.0) < 1e-4
    assert 0.0 < split.mean < 1.0 and 0.0 < split.std < 1.0


def test_digits_split_is_stratified(split: DigitsSplit) -> None:
    test_counts = torch.bincount(split.y_test, minlength=10)
    train_counts = torch.bincount(split.y_train, minlength=10)
    assert int(test_counts.min()) >= 43 and int(test_counts.max()) <= 47
    ratio = test_counts.double() / (test_counts + train_counts).double()
    assert float((ratio - 0.25).abs().max()) < 0.02


@pytest.mark.parametrize("seed", [0, 7])
def test_digits_split_deterministic(seed: int) -> None:
    a = load_digits_split(seed=seed)
    b = load_digits_split(seed=seed)
    assert np.array_equal(a.test_indices, b.test_indices)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    other = load_digits_split(seed=seed + 1)
    assert not np.array_equal(a.test_indices, other.test_indices)


def test_digits_split_matches_sklearn_pixels(split: DigitsSplit) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    i = int(split.test_indices[3])
    raw = torch.tensor(digits.images[i], dtype=torch.float32)[None, None] / 16.0
    expected = (resize_images(raw, 28) - split.mean) / split.std
    assert torch.allclose(split.x_test[3:4], expected, atol=1e-6)
    assert int(split.y_test[3]) == int(digits.target[i])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"seed": -1}, "seed"), ({"test_fraction": 1.0}, "test_fraction"), ({"size": 0}, "size")],
)
def test_digits_split_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_digits_split(**kwargs)


# ---------------------------------------------------------------- committed weights


def test_committed_weights_sha256_and_size(meta: dict) -> None:
    assert DIGITS_WEIGHTS.stat().st_size < 2 * 1024 * 1024
    assert meta["sha256"] == sha256_file(DIGITS_WEIGHTS)
    assert meta["size_bytes"] == DIGITS_WEIGHTS.stat().st_size
    for key in ("seed", "epochs", "torch_version", "train_size", "test_size", "test_top1"):
        assert key in meta


def test_committed_weights_reach_97_percent(split: DigitsSplit, meta: dict) -> None:
    torch.set_num_threads(2)
    model, loaded_meta = load_digits_small_resnet()
    assert loaded_meta == meta
    assert not model.training
    assert split.mean == pytest.approx(meta["norm_mean"], abs=1e-7)
    assert split.std == pytest.approx(meta["norm_std"], abs=1e-7)
    assert (len(split.x_train), len(split.x_test)) == (meta["train_size"], meta["test_size"])
    acc = evaluate_top1(model, split.x_test, split.y_test)
    assert acc >= 0.97
    assert acc == pytest.approx(meta["test_top1"], abs=1 / 450)


def test_load_digits_model_rejects_wrong_sha(tmp_path, meta: dict) -> None:
    bad = dict(meta, sha256="0" * 64)
    (tmp_path / "m.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="sha256"):
        load_digits_small_resnet(DIGITS_WEIGHTS, tmp_path / "m.json")


# ---------------------------------------------------------------- training script


def test_train_is_deterministic_and_learns(split: DigitsSplit) -> None:
    config = TrainConfig(seed=3, epochs=3, batch_size=16, widths=(4, 8, 8))
    # a subset and a narrow net keep this fast; determinism does not depend on the size
    sub = dataclasses.replace(
        split,
        x_train=split.x_train[:512],
        y_train=split.y_train[:512],
        x_test=split.x_test[:128],
        y_test=split.y_test[:128],
    )
    try:
        m1, acc1 = train(config, sub, progress=False)
        m2, acc2 = train(config, sub, progress=False)
    finally:
        torch.use_deterministic_algorithms(False)
    assert acc1 == acc2
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert acc1 > 0.2  # clearly better than chance (0.1) after 96 steps


@pytest.mark.slow
def test_train_cli_reproduces_committed_weights(tmp_path, meta: dict) -> None:
    """The full default run (~30 s idle on 2 cores) gives the committed bytes."""
    try:
        assert main(["--out", str(tmp_path / "w.pt"), "--no-progress"]) == 0
    finally:
        torch.use_deterministic_algorithms(False)
    rerun = json.loads((tmp_path / "w.json").read_text())
    assert sha256_file(tmp_path / "w.pt") == meta["sha256"] == rerun["sha256"]
    assert rerun["test_top1"] == meta["test_top1"]


def test_train_config_rejects_bad_epochs() -> None:
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)


def test_train_cli_rejects_bad_epochs(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--out", str(tmp_path / "w.pt"), "--epochs", "0"])
    assert info.value.code == 2
    assert "epochs" in capsys.readouterr().err
    assert not (tmp_path / "w.pt").exists()


# ---------------------------------------------------------------- image folder


def _write_digit_folder(root, split_indices: np.ndarray, per_class: int = 3) -> list[int]:
    """Write real digits as 8x8 PNGs (gray colormap) into root/<digit>/; returns indices."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    chosen: list[int] = []
    for cls in range(10):
        folder = root / f"digit_{cls}"
        folder.mkdir(parents=True)
        idx = [int(i) for i in split_indices if digits.target[i] == cls][:per_class]
        for j, i in enumerate(idx):
            plt.imsave(folder / f"{j:02d}.png", digits.images[i], cmap="gray", vmin=0, vmax=16)
            chosen.append(i)
    return chosen


def test_image_folder_reads_real_pngs(tmp_path, split: DigitsSplit, meta: dict) -> None:
    from sklearn.datasets import load_digits

    chosen = _write_digit_folder(tmp_path, split.test_indices)
    (tmp_path / "digit_3" / "notes.txt").write_text("not an image, ignored")
    data = load_image_folder(tmp_path, size=28, channels=1, mean=split.mean, std=split.std)

    assert data.classes == [f"digit_{c}" for c in range(10)]
    assert data.images.shape == (30, 1, 28, 28)
    assert data.labels.tolist() == [c for c in range(10) for _ in range(3)]
    assert [p.parent.name for p in data.paths] == [
        f"digit_{c}" for c in range(10) for _ in range(3)
    ]

    # same pipeline as load_digits_split, up to the colormap LUT + 8-bit PNG quantization
    digits = load_digits()
    raw = torch.tensor(digits.images[chosen], dtype=torch.float32)[:, None] / 16.0
    expected = (resize_images(raw, 28) - split.mean) / split.std
    assert float((data.images - expected).abs().max()) <= (1.5 / 255) / split.std

    torch.set_num_threads(2)
    model, _ = load_digits_small_resnet()
    assert evaluate_top1(model, data.images, data.labels) >= 0.9


def test_image_folder_rgb_and_unnormalized(tmp_path, split: DigitsSplit) -> None:
    _write_digit_folder(tmp_path, split.test_indices, per_class=1)
    data = load_image_folder(tmp_path, size=(14, 7), channels=3)
    assert data.images.shape == (10, 3, 14, 7)
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0
    # gray colormap: the three channels are equal
    assert torch.equal(data.images[:, 0], data.images[:, 1])
    assert torch.equal(data.images[:, 0], data.images[:, 2])


def test_image_folder_corrupt_file(tmp_path, split: DigitsSplit) -> None:
    _write_digit_folder(tmp_path, split.test_indices, per_class=1)
    bad = tmp_path / "digit_4" / "01.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(ValueError, match=r"cannot read image file .*digit_4/01\.png"):
        load_image_folder(tmp_path, size=28)


def test_image_folder_truncated_png(tmp_path, split: DigitsSplit) -> None:
    _write_digit_folder(tmp_path, split.test_indices, per_class=1)
    good = tmp_path / "digit_2" / "00.png"
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"digit_2/00\.png"):
        load_image_folder(tmp_path, size=28)


def test_image_folder_empty_root(tmp_path) -> None:
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_image_folder(tmp_path, size=28)


def test_image_folder_empty_class(tmp_path, split: DigitsSplit) -> None:
    _write_digit_folder(tmp_path, split.test_indices, per_class=1)
    (tmp_path / "digit_x").mkdir()
    (tmp_path / "digit_x" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"class folder .*digit_x.* holds no image file"):
        load_image_folder(tmp_path, size=28)


def test_image_folder_missing_root(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="absent"):
        load_image_folder(tmp_path / "absent", size=28)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channels": 2}, "channels"),
        ({"size": 0}, "size"),
        ({"mean": 0.5}, "mean and std"),
        ({"mean": (0.1, 0.2), "std": (1.0, 1.0)}, "mean/std"),
        ({"mean": 0.1, "std": 0.0}, "std must be positive"),
    ],
)
def test_image_folder_rejects_bad_arguments(
    tmp_path, split: DigitsSplit, kwargs: dict, match: str
) -> None:
    _write_digit_folder(tmp_path, split.test_indices, per_class=1)
    with pytest.raises(ValueError, match=match):
        load_image_folder(tmp_path, **{"size": 28, **kwargs})
