"""Run a lowered network: in float (reference) or in int8 on a device.

* :func:`run_float` -- the IR in float32 torch ops (BatchNorm folded); equals
  the torch model to float rounding, so it checks the lowering, and it is
  what calibration measures tensor ranges on.
* :func:`run_int8` -- the quantized network (:class:`~sfc_hls.host.calibration.QuantizedNetwork`):
  input quantized with the calibrated scale, every conv on the
  :class:`~sfc_hls.host.device.ConvDevice`, every other layer in host integer
  arithmetic (:mod:`sfc_hls.host.integer_ops`), logits dequantized at the end.
  Images go through in batches; per-layer time (and engine cycles on the RTL
  backend) is recorded.
* :func:`check_convs` -- every conv of a golden run again on an RTL device,
  each from its golden input tensor: the layers are then independent and run
  ``jobs`` at a time (:meth:`~sfc_hls.host.device.RtlDevice.run_layers`).  If
  every conv's output equals the golden one for the golden input, a chained
  RTL run gives the golden tensors too (the host layers are the same code),
  so this checks a whole network in a fraction of the chained run's time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sfc_hls.host.integer_ops import maxpool_int8
from sfc_hls.host.ir import (
    INPUT,
    Add,
    AvgPool,
    Conv,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool,
    Network,
)
from sfc_hls.quantize import quantize_input

if TYPE_CHECKING:
    from sfc_hls.host.calibration import QuantizedNetwork
    from sfc_hls.host.device import ConvDevice, RtlDevice

__all__ = [
    "ConvCheck",
    "LayerRecord",
    "RunResult",
    "check_convs",
    "check_images",
    "float_tensors",
    "run_float",
    "run_int8",
]


def check_images(images: Any, network: Network, what: str = "images") -> np.ndarray:
    """Images as a float32 (N, C, H, W) array matching the network input; ValueError otherwise."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype.kind not in "fiu":
        raise TypeError(f"{what} must be a real-valued array, got dtype {images.dtype}")
    if images.ndim != 4:
        raise ValueError(f"{what} must have shape (N, C, H, W), got {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{what} is empty: at least one image is needed")
    c, h, w = network.input_shape
    if images.shape[1] != c:
        raise ValueError(
            f"{what} have {images.shape[1]} channel(s); {network.name} expects {c} "
            f"(input shape {c}x{h}x{w})"
        )
    if images.shape[2:] != (h, w):
        raise ValueError(
            f"{what} are {images.shape[2]}x{images.shape[3]}; {network.name} was lowered for "
            f"{h}x{w} inputs"
        )
    images = images.astype(np.float32)
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{what} contain NaN or infinite values")
    return images


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def float_tensors(
    network: Network, images: Any, *, visit: Callable[[str, Any], None] | None = None
) -> Any:
    """Run the IR in float32 torch; ``visit(tensor, value)`` sees every tensor; returns the output."""
    import torch

    x = torch.from_numpy(check_images(images, network))
    with torch.no_grad():
        return network.evaluate(x, _float_layer, visit=visit)


def _float_layer(layer: Any, inputs: list[Any]) -> Any:
    """One layer of the IR in float32 torch."""
    import torch
    import torch.nn.functional as F

    x = inputs[0]
    if isinstance(layer, Conv):
        weight, bias = torch.from_numpy(layer.weight).float(), torch.from_numpy(layer.bias).float()
        y = F.conv2d(x, weight, bias, stride=layer.stride, padding=layer.padding)
        return F.relu(y) if layer.relu else y
    if isinstance(layer, Add):
        y = x + inputs[1]
        return F.relu(y) if layer.relu else y
    if isinstance(layer, MaxPool):
        return F.max_pool2d(x, layer.kernel, layer.stride, layer.padding)
    if isinstance(layer, GlobalAvgPool):
        return x.mean(dim=(2, 3))
    if isinstance(layer, AvgPool):
        return F.avg_pool2d(x, layer.kernel, layer.stride)
    if isinstance(layer, Flatten):
        return x.flatten(1)
    if isinstance(layer, Linear):
        weight, bias = torch.from_numpy(layer.weight).float(), torch.from_numpy(layer.bias).float()
        return F.linear(x, weight, bias)
    raise TypeError(f"unknown layer {layer!r}")  # pragma: no cover - the IR has no other kinds


def run_float(network: Network, images: Any, *, batch_size: int = 256) -> np.ndarray:
    """Float32 logits of the lowered network (BatchNorm folded), float64 array (N, classes)."""
    images = check_images(images, network)
    out = [
        float_tensors(network, images[s]).double().numpy()
        for s in _batches(len(images), batch_size)
    ]
    return np.concatenate(out)


@dataclass
class LayerRecord:
    """What one layer cost over a whole run (all batches)."""

    name: str
    op: str
    engine: str  # the engine ("<algorithm> P_co=<n>"), or "host"
    mode: str  # "fast" / "direct" on the engine, "-" on the host
    macs: int  # per image
    mults: int  # engine multiplications per image (0 for host layers)
    seconds: float = 0.0
    cycles: int | None = None  # RTL engine cycles (sum over batches)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunResult:
    """Logits (float64), predictions, per-layer records; int8 codes of every tensor if kept."""

    logits: np.ndarray
    predictions: np.ndarray
    records: list[LayerRecord]
    backend: str
    seconds: float
    tensors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def run_int8(
    qnet: QuantizedNetwork,
    device: ConvDevice,
    images: Any,
    *,
    batch_size: int = 64,
    keep_tensors: bool = False,
    progress: bool = False,
) -> RunResult:
    """The quantized network on ``device`` (convs) and the host (everything else).

    Args:
        qnet: calibrated network (:func:`sfc_hls.host.calibration.calibrate`).
        device: a :class:`~sfc_hls.host.device.ConvDevice` with an engine for
            every algorithm of the network.
        images: float (N, C, H, W), normalized like the calibration images.
        batch_size: images per device run.
        keep_tensors: keep the int8 codes of every tensor (all images) in the result.
        progress: tqdm progress bar over layers x batches (stderr).
    """
    network = qnet.network
    images = check_images(images, network)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    for conv in network.convs:
        device.load_weights(conv.name, qnet.convs[conv.name])
    records = [
        LayerRecord(
            layer.name,
            layer.op,
            _engine_name(qnet.engines[layer.algorithm]) if isinstance(layer, Conv) else "host",
            layer.mode if isinstance(layer, Conv) else "-",
            layer.macs if isinstance(layer, Conv | Linear) else 0,
            layer.mults if isinstance(layer, Conv) else 0,
        )
        for layer in network.layers
    ]
    batches = list(_batches(len(images), batch_size))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(batches) * len(network.layers), desc="int8 layers", unit="layer")
    t_start = time.perf_counter()
    logits = []
    kept: dict[str, list[np.ndarray]] = {}
    record = {layer.name: rec for layer, rec in zip(network.layers, records, strict=True)}

    def compute(layer: Any, inputs: list[np.ndarray]) -> np.ndarray:
        t0 = time.perf_counter()
        rec = record[layer.name]
        if isinstance(layer, Conv):
            res = device.run_conv(
                layer.name, qnet.convs[layer.name], inputs[0], stride=layer.stride
            )
            rec.seconds += res.seconds
            if res.cycles is not None:
                rec.cycles = (rec.cycles or 0) + res.cycles
            y = res.output
        else:
            y = _host_layer(qnet, layer, inputs)
            rec.seconds += time.perf_counter() - t0
        if bar is not None:
            bar.update(1)
        return y

    def keep(tensor: str, value: np.ndarray) -> None:
        kept.setdefault(tensor, []).append(value)

    try:
        for s in batches:
            x = quantize_input(images[s], qnet.scales[INPUT])
            logits.append(network.evaluate(x, compute, visit=keep if keep_tensors else None))
    finally:
        if bar is not None:
            bar.close()
    out = np.concatenate(logits)
    return RunResult(
        logits=out,
        predictions=out.argmax(axis=1),
        records=records,
        backend=device.backend,
        seconds=time.perf_counter() - t_start,
        tensors={k: np.concatenate(v) for k, v in kept.items()},
    )


def _engine_name(config: Any) -> str:
    """How reports name the engine: its algorithm and lanes (one engine runs every conv)."""
    return f"{config.algorithm} P_co={config.pco}"


def _host_layer(qnet: QuantizedNetwork, layer: Any, inputs: list[np.ndarray]) -> np.ndarray:
    if isinstance(layer, Add):
        return qnet.host[layer.name](inputs[0], inputs[1])
    if isinstance(layer, MaxPool):
        return maxpool_int8(inputs[0], layer.kernel, layer.stride, layer.padding)
    if isinstance(layer, GlobalAvgPool | Linear):
        return qnet.host[layer.name](inputs[0])
    if isinstance(layer, AvgPool):
        return qnet.host[layer.name].windows(inputs[0], layer.kernel, layer.stride)
    if isinstance(layer, Flatten):
        return inputs[0].reshape(inputs[0].shape[0], -1)
    raise TypeError(f"layer {layer.name!r}: no host operation for {type(layer).__name__}")


@dataclass
class ConvCheck:
    """:func:`check_convs`'s answer: RTL records of every layer, convs whose output differs."""

    records: list[LayerRecord]
    mismatched: list[str]
    seconds: float

    @property
    def identical(self) -> bool:
        return not self.mismatched


def check_convs(
    qnet: QuantizedNetwork, device: RtlDevice, golden: RunResult, *, progress: bool = False
) -> ConvCheck:
    """Every conv of ``qnet`` on ``device``, from the golden run's input tensor of that conv.

    ``golden`` must come from :func:`run_int8` with ``keep_tensors=True``.  The
    convs are independent, so the device runs them ``device.jobs`` at a time;
    each output is compared with the golden output (exact equality).  The
    records are ``golden``'s with the RTL cycles and times of the convs.
    """
    network = qnet.network
    convs = network.convs
    missing = [c.name for c in convs if c.input not in golden.tensors]
    if missing:
        raise ValueError(
            f"the golden run kept no input tensor of {missing[0]!r}: run it with keep_tensors=True"
        )
    from sfc_hls.host.device import LayerRequest

    t0 = time.perf_counter()
    requests = [
        LayerRequest(c.name, qnet.convs[c.name], golden.tensors[c.input], c.stride) for c in convs
    ]
    results = device.run_layers(requests, progress=progress)
    by_name = dict(zip((c.name for c in convs), results, strict=True))
    mismatched = [
        c.name
        for c in convs
        if not np.array_equal(by_name[c.name].output, golden.tensors[c.output])
    ]
    records = []
    for rec in golden.records:
        res = by_name.get(rec.name)
        if res is not None:
            rec = LayerRecord(**{**rec.to_dict(), "seconds": res.seconds, "cycles": res.cycles})
        records.append(rec)
    return ConvCheck(records, mismatched, time.perf_counter() - t0)
