"""Train the small ResNet on scikit-learn's digits, deterministically on CPU.

Usage::

    python -m sfc_hls.host.train_digits [--out PATH] [--epochs N] [--seed S] [--split-seed S]

Trains :func:`~sfc_hls.host.models.small_resnet` on the training split of
:func:`~sfc_hls.host.digits.load_digits_split`, reports FP32 top-1 accuracy on
the test split, and writes the state_dict atomically to ``--out`` (default
``host/weights/digits_small_resnet.pt``) plus a JSON file beside it with the
seed, epochs, torch version, split sizes, normalization, test accuracy and
the SHA-256 of the weights file. The same seed, epochs and torch build give
bit-identical weights (fixed seeds, deterministic algorithms, 2 threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import DIGITS_WEIGHTS, save_checkpoint, sha256_file
from .digits import DigitsSplit, load_digits_split
from .models import ResNet, small_resnet

__all__ = ["TrainConfig", "evaluate_top1", "main", "train"]

NUM_THREADS = 2


class TrainConfig:
    """Hyper-parameters of :func:`train` (defaults are the committed run's)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        max_shift: int = 2,
        widths: Sequence[int] = (16, 32, 64),
        blocks: Sequence[int] = (1, 1, 1),
    ) -> None:
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {epochs!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(max_shift, int) or max_shift < 0:
            raise ValueError(f"max_shift must be a non-negative int, got {max_shift!r}")
        self.seed = seed
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.max_shift = max_shift
        self.widths = tuple(widths)
        self.blocks = tuple(blocks)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}


def _random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels, filling with the background.

    The background is the minimum of the (normalized) batch, i.e. blank paper.
    """
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    pad = max_shift
    background = float(x.min())
    padded = F.pad(x, (pad, pad, pad, pad), value=background)
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        out[i] = padded[i, :, dy : dy + h, dx : dx + w]
    return out


@torch.no_grad()
def evaluate_top1(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """FP32 top-1 accuracy of ``model`` (put in eval mode) on ``(x, y)``, in [0, 1]."""
    model.eval()
    correct = 0
    for start in range(0, len(x), 256):
        logits = model(x[start : start + 256])
        correct += int((logits.argmax(dim=1) == y[start : start + 256]).sum())
    return correct / len(x)


def train(
    config: TrainConfig, data: DigitsSplit | None = None, *, progress: bool = True
) -> tuple[ResNet, float]:
    """Train a small ResNet on the digits; returns the model (eval mode) and test top-1.

    ``data`` defaults to ``load_digits_split()`` (split seed 0). Sets torch's
    global seed, deterministic algorithms and thread count (left set on return).
    """
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(NUM_THREADS)
    if data is None:
        data = load_digits_split()

    model = small_resnet(num_classes=10, in_channels=1, widths=config.widths, blocks=config.blocks)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=True,
    )
    steps_per_epoch = -(-len(data.x_train) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch
    )
    gen = torch.Generator().manual_seed(config.seed)

    bar = tqdm(range(config.epochs), desc="train digits", unit="epoch", disable=not progress)
    for _epoch in bar:
        model.train()
        order = torch.randperm(len(data.x_train), generator=gen)
        total_loss = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            x = _random_shift(data.x_train[idx], config.max_shift, gen)
            loss = F.cross_entropy(model(x), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(idx)
        bar.set_postfix(loss=f"{total_loss / len(order):.4f}")
    acc = evaluate_top1(model, data.x_test, data.y_test)
    return model, acc


def _write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sfc_hls.host.train_digits",
        description="Train small_resnet on scikit-learn's digits (deterministic, CPU).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DIGITS_WEIGHTS,
        help="weights file to write; metadata goes to the same name with .json "
        f"(default: {DIGITS_WEIGHTS})",
    )
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of the train/test split, kept apart from --seed so runs with "
        "different training seeds are scored on the same test images (default: 0)",
    )
    parser.add_argument("--no-progress", action="store_true", help="disable the progress bar")
    args = parser.parse_args(argv)

    try:
        config = TrainConfig(seed=args.seed, epochs=args.epochs)
    except ValueError as exc:
        parser.error(str(exc))
    if args.split_seed < 0:
        parser.error(f"--split-seed must be non-negative, got {args.split_seed}")
    data = load_digits_split(seed=args.split_seed)
    t0 = time.perf_counter()
    model, acc = train(config, data, progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    print(
        f"FP32 test top-1: {acc * 100:.2f}% ({len(data.x_test)} images), training {seconds:.1f} s"
    )

    out = save_checkpoint(model, args.out)
    meta = {
        "model": "small_resnet",
        "architecture": {
            "num_classes": 10,
            "in_channels": 1,
            "widths": list(config.widths),
            "blocks": list(config.blocks),
        },
        "input_size": int(data.x_train.shape[-1]),
        "norm_mean": data.mean,
        "norm_std": data.std,
        "input_scaling": "pixels / 16 (digits) or / 255 (8-bit images) to [0, 1], "
        "bilinear resize (align_corners=False), then (x - norm_mean) / norm_std",
        "dataset": "sklearn.datasets.load_digits",
        "split": {
            "seed": data.seed,
            "test_fraction": data.test_fraction,
            "stratified": True,
        },
        "train_size": len(data.x_train),
        "test_size": len(data.x_test),
        "test_top1": acc,
        "seed": config.seed,
        "epochs": config.epochs,
        "hyperparameters": config.as_dict(),
        "training_seconds": round(seconds, 1),
        "num_threads": NUM_THREADS,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "weights_file": out.name,
        "sha256": sha256_file(out),
        "size_bytes": out.stat().st_size,
    }
    _write_json_atomic(out.with_suffix(".json"), meta)
    print(f"wrote {out} ({meta['size_bytes']} bytes) and {out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
