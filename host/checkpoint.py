"""Loading and saving model weights (torch state_dicts) for the host driver.

:func:`load_checkpoint` accepts the common on-disk forms of a checkpoint: a
raw ``state_dict`` (as torchvision publishes), or a dict that holds it under
``"state_dict"`` or ``"model"`` (training-script checkpoints), optionally with
the ``"module."`` prefix that ``DataParallel``/``DistributedDataParallel``
adds. Files are read with ``weights_only=True``: no arbitrary pickled code is
executed. Any mismatch with the model is a ``ValueError`` that names the file
and the offending keys; nothing is loaded partially.

:func:`save_checkpoint` writes a raw state_dict atomically, so a reader never
sees a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import ResNet, small_resnet

__all__ = [
    "DIGITS_WEIGHTS",
    "DIGITS_METADATA",
    "load_checkpoint",
    "load_digits_small_resnet",
    "read_state_dict",
    "save_checkpoint",
    "sha256_file",
]

#: Committed weights of :func:`~sfc_hls.host.models.small_resnet` trained on the
#: digits data (see :mod:`sfc_hls.host.train_digits`), and their metadata.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DIGITS_WEIGHTS = WEIGHTS_DIR / "digits_small_resnet.pt"
DIGITS_METADATA = WEIGHTS_DIR / "digits_small_resnet.json"

_MAX_KEYS_IN_MESSAGE = 5
_WRAPPER_KEYS = ("state_dict", "model")


def _first_keys(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_MAX_KEYS_IN_MESSAGE])
    more = len(keys) - _MAX_KEYS_IN_MESSAGE
    return f"{shown} (and {more} more)" if more > 0 else shown


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a checkpoint file and return its state_dict (tensor values only).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable torch checkpoint, needs unsafe
            unpickling, or holds no ``str -> Tensor`` mapping.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ValueError(
            f"cannot read checkpoint file {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from exc

    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            f"checkpoint file {str(path)!r} holds no state_dict "
            f"(got {type(obj).__name__}; expected a mapping of names to tensors, "
            f"possibly under a {' or '.join(repr(k) for k in _WRAPPER_KEYS)} key)"
        )
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise ValueError(
            f"checkpoint file {str(path)!r} has non-tensor entries: {_first_keys(bad)}"
        )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    _check_values(state, path)
    return state


def _check_values(state: Mapping[str, torch.Tensor], path: Path) -> None:
    """ValueError naming the file and the tensor if a value is NaN or infinite, or a
    BatchNorm variance is negative."""
    for key, value in state.items():
        if not value.is_floating_point():
            continue
        bad = ~torch.isfinite(value)
        if bool(bad.any()):
            raise ValueError(
                f"checkpoint file {str(path)!r}: {key} holds {int(bad.sum())} NaN or infinite "
                f"value(s) (layer {key.rpartition('.')[0]!r})"
            )
        if key.endswith("running_var") and bool((value < 0).any()):
            raise ValueError(
                f"checkpoint file {str(path)!r}: {key} holds negative variances "
                f"(layer {key.rpartition('.')[0]!r}); a BatchNorm variance must be >= 0"
            )


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load weights from ``path`` into ``model`` strictly and return ``model``.

    Every key of ``model.state_dict()`` must be present with the same shape
    and no extra key may exist. The single exception is BatchNorm's
    ``num_batches_tracked`` counter, which old checkpoints (e.g. the first
    torchvision releases) omit; it is left at the model's value.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unreadable/corrupt file, or missing keys, unexpected keys
            or shape mismatches (the message names the file and the first
            offending keys of each kind).
    """
    state = read_state_dict(path)
    expected = model.state_dict()

    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_first_keys(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_first_keys(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_first_keys(mismatched)}")
    if problems:
        raise ValueError(
            f"checkpoint file {str(path)!r} does not match {type(model).__name__}: "
            + "; ".join(problems)
        )

    for k, v in expected.items():
        if k.endswith(".num_batches_tracked") and k not in state:
            state[k] = v
    model.load_state_dict(state, strict=True)
    return model


def save_checkpoint(
    model_or_state: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike[str]
) -> Path:
    """Save a model's state_dict (or a given state_dict) to ``path`` atomically.

    The tensors are written, as a plain ``str -> Tensor`` dict on CPU, to a
    temporary file in the destination directory, flushed to disk and renamed
    over ``path`` with :func:`os.replace`; an interrupted save leaves any
    previous file intact. Returns the resolved path.
    """
    path = Path(path)
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    # clone(): save only each tensor's own data, not a larger shared storage.
    plain = {str(k): v.detach().cpu().clone() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(plain, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; make it an ordinary file
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return path.resolve()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_digits_small_resnet(
    weights: str | os.PathLike[str] = DIGITS_WEIGHTS,
    metadata: str | os.PathLike[str] | None = None,
) -> tuple[ResNet, dict[str, Any]]:
    """The committed digits classifier, in eval mode, and its metadata dict.

    The metadata (JSON next to the weights) gives the architecture, the input
    normalization (``norm_mean``/``norm_std``) to apply to [0, 1] images, the
    input size and the measured test accuracy. The file's SHA-256 is checked
    against the metadata.

    Raises:
        ValueError: the weights do not match the metadata's SHA-256 or the model.
    """
    weights = Path(weights)
    metadata = Path(metadata) if metadata is not None else weights.with_suffix(".json")
    meta = json.loads(metadata.read_text())
    actual = sha256_file(weights)
    if actual != meta["sha256"]:
        raise ValueError(
            f"weights file {str(weights)!r} has sha256 {actual}, "
            f"but {str(metadata)!r} records {meta['sha256']}"
        )
    arch = meta["architecture"]
    model = small_resnet(
        num_classes=arch["num_classes"],
        in_channels=arch["in_channels"],
        widths=tuple(arch["widths"]),
        blocks=tuple(arch["blocks"]),
    )
    load_checkpoint(model, weights)
    model.eval()
    return model, meta
