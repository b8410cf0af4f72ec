"""Real image data for the host driver: scikit-learn's digits and image folders.

:func:`load_digits_split` turns scikit-learn's handwritten digits (1797 real
8x8 grayscale scans, shipped with scikit-learn, no download) into a
deterministic, stratified train/test split of 28x28 torch tensors, normalized
with the training set's mean and standard deviation.

:func:`load_image_folder` reads user-supplied images laid out like
torchvision's ``ImageFolder`` (``root/<class name>/<image file>``) into one
tensor, with the same resize and normalization steps, so calibration or test
images from disk go through the same pipeline as the digits.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DIGITS_SIZE",
    "IMAGE_EXTENSIONS",
    "DigitsSplit",
    "ImageFolderData",
    "load_digits_split",
    "load_image_folder",
    "resize_images",
]

#: Side length the 8x8 digits are upsampled to (feature maps 28, 14, 7 in
#: :func:`~sfc_hls.host.models.small_resnet`).
DIGITS_SIZE = 28
#: Maximum pixel value of scikit-learn's digits (4-bit counts, 0..16).
_DIGITS_MAX = 16.0

#: File name suffixes :func:`load_image_folder` reads (case-insensitive);
#: other files are ignored, like torchvision's ``ImageFolder``.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class DigitsSplit:
    """A train/test split of the digits as normalized float tensors.

    ``x_*`` have shape (N, 1, size, size), dtype float32, and equal
    ``(pixels / 16 - mean) / std`` after resizing; ``y_*`` are int64 class
    labels 0..9. ``mean``/``std`` are computed on the training images (after
    resizing and scaling to [0, 1]) and apply to any further input.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: float
    std: float
    seed: int
    test_fraction: float
    train_indices: np.ndarray
    test_indices: np.ndarray


@dataclass(frozen=True)
class ImageFolderData:
    """Images read by :func:`load_image_folder`.

    ``images``: (N, C, H, W) float32, in [0, 1] or normalized if mean/std were
    given; ``labels``: (N,) int64 indices into ``classes`` (sorted folder
    names); ``paths``: the file of each image, in order.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    paths: list[Path]


def resize_images(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of an (N, C, H, W) float batch (``align_corners=False``)."""
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == hw:
        return images
    return F.interpolate(images, size=hw, mode="bilinear", align_corners=False)


def load_digits_split(
    *, seed: int = 0, test_fraction: float = 0.25, size: int = DIGITS_SIZE
) -> DigitsSplit:
    """Deterministic stratified split of scikit-learn's digits, resized and normalized.

    Args:
        seed: seed of the split (``random_state`` of scikit-learn's
            ``train_test_split``); the same seed always gives the same split.
        test_fraction: share of images held out for test, in (0, 1).
        size: output side length; 8 keeps the original resolution.

    With the defaults: 1347 training and 450 test images of 1x28x28.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")

    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float32) / _DIGITS_MAX
    labels = np.asarray(digits.target, dtype=np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels
    )
    x = resize_images(torch.from_numpy(images).unsqueeze(1), size)
    x_train, x_test = x[train_idx], x[test_idx]
    mean = float(x_train.mean())
    std = float(x_train.std())
    return DigitsSplit(
        x_train=((x_train - mean) / std).contiguous(),
        y_train=torch.from_numpy(labels[train_idx]),
        x_test=((x_test - mean) / std).contiguous(),
        y_test=torch.from_numpy(labels[test_idx]),
        mean=mean,
        std=std,
        seed=seed,
        test_fraction=test_fraction,
        train_indices=np.asarray(train_idx),
        test_indices=np.asarray(test_idx),
    )


def _read_image(path: Path, channels: int) -> np.ndarray:
    """One image file as float32 (H, W, channels) in [0, 1].

    Images above Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``,
    about 89 M pixels) are refused with a ValueError naming the file.
    """
    from PIL import Image, UnidentifiedImageError  # Pillow ships with matplotlib

    mode = "L" if channels == 1 else "RGB"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16/32-bit grayscale: scale by the format's range, not by clipping.
                raw = np.asarray(img, dtype=np.float64)
                peak = 65535.0 if img.mode.startswith("I;16") else max(float(raw.max()), 1.0)
                gray = (raw / peak).astype(np.float32)
                arr = np.repeat(gray[..., None], channels, axis=2)
            else:
                arr = np.asarray(img.convert(mode), dtype=np.float32) / 255.0
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(
            f"image file {str(path)!r} is too large (Pillow's decompression-bomb limit): {exc}"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValueError(
            f"cannot read image file {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from exc
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    size: int | tuple[int, int],
    channels: int = 1,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> ImageFolderData:
    """Read ``root/<class>/<image>`` files into one labelled tensor batch.

    Classes are the sub-folders of ``root`` in sorted order (label = index), as
    in torchvision's ``ImageFolder``; files are taken in sorted order and only
    if their suffix is in ``extensions``. Each image is converted to grayscale
    (``channels=1``) or RGB (``channels=3``), scaled to [0, 1], resized to
    ``size`` with bilinear interpolation (``align_corners=False``) and, if
    ``mean`` and ``std`` are given (scalars or one value per channel),
    normalized as ``(x - mean) / std``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: ``root`` is not a folder or has no class sub-folders, a
            class folder holds no image file, an image cannot be decoded (the
            message names the file), or an argument is invalid.
    """
    root = Path(root)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or any(not isinstance(s, int) or s < 1 for s in hw):
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    if (mean is None) != (std is None):
        raise ValueError("mean and std must be given together")
    if not root.exists():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} is not a directory")

    suffixes = tuple(e.lower() for e in extensions)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"image folder {str(root)!r} has no class sub-folders")

    tensors: list[torch.Tensor] = []
    labels: list[int] = []
    paths: list[Path] = []
    for label, name in enumerate(classes):
        files = sorted(
            p
            for p in (root / name).iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
        )
        if not files:
            raise ValueError(
                f"class folder {str(root / name)!r} holds no image file "
                f"(looked for {', '.join(suffixes)})"
            )
        for path in files:
            arr = _read_image(path, channels)
            img = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).unsqueeze(0)
            tensors.append(resize_images(img, hw)[0])
            labels.append(label)
            paths.append(path)

    images = torch.stack(tensors)
    if mean is not None and std is not None:
        m = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        s = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
        if m.shape[0] not in (1, channels) or s.shape[0] not in (1, channels):
            raise ValueError(
                f"mean/std must be scalars or have {channels} entries, got {mean!r}, {std!r}"
            )
        if bool((s <= 0).any()):
            raise ValueError(f"std must be positive, got {std!r}")
        images = (images - m) / s
    return ImageFolderData(
        images=images.contiguous(),
        labels=torch.tensor(labels, dtype=torch.int64),
        classes=classes,
        paths=paths,
    )
