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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sfc_hls.host.integer_ops import maxpool_int8
from sfc_hls.host.ir import INPUT, Add, Conv, GlobalAvgPool, Linear, MaxPool, Network
from sfc_hls.quantize import quantize_input

if TYPE_CHECKING:
    from sfc_hls.host.calibration import QuantizedNetwork
    from sfc_hls.host.device import ConvDevice

__all__ = ["LayerRecord", "RunResult", "check_images", "float_tensors", "run_float", "run_int8"]


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
    import torch.nn.functional as F

    x = torch.from_numpy(check_images(images, network))
    values: dict[str, Any] = {INPUT: x}
    last = network.last_uses()
    if visit is not None:
        visit(INPUT, x)
    with torch.no_grad():
        for k, layer in enumerate(network.layers):
            if isinstance(layer, Conv):
                y = F.conv2d(
                    values[layer.input],
                    torch.from_numpy(layer.weight).float(),
                    torch.from_numpy(layer.bias).float(),
                    stride=layer.stride,
                    padding=layer.padding,
                )
                y = F.relu(y) if layer.relu else y
            elif isinstance(layer, Add):
                y = values[layer.inputs[0]] + values[layer.inputs[1]]
                y = F.relu(y) if layer.relu else y
            elif isinstance(layer, MaxPool):
                y = F.max_pool2d(values[layer.input], layer.kernel, layer.stride, layer.padding)
            elif isinstance(layer, GlobalAvgPool):
                y = values[layer.input].mean(dim=(2, 3))
            elif isinstance(layer, Linear):
                y = F.linear(
                    values[layer.input],
                    torch.from_numpy(layer.weight).float(),
                    torch.from_numpy(layer.bias).float(),
                )
            else:  # pragma: no cover - the IR has no other kinds
                raise TypeError(f"unknown layer {layer!r}")
            values[layer.output] = y
            if visit is not None:
                visit(layer.output, y)
            for t in layer.inputs:
                if last.get(t) == k and t != network.output:
                    del values[t]
    return values[network.output]


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
    engine: str  # algorithm, or "host"
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
            layer.algorithm if isinstance(layer, Conv) else "host",
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
    last = network.last_uses()
    try:
        for s in batches:
            codes = {INPUT: quantize_input(images[s], qnet.scales[INPUT])}
            if keep_tensors:
                kept.setdefault(INPUT, []).append(codes[INPUT])
            for k, (layer, rec) in enumerate(zip(network.layers, records, strict=True)):
                t0 = time.perf_counter()
                if isinstance(layer, Conv):
                    res = device.run_conv(
                        layer.name,
                        qnet.convs[layer.name],
                        codes[layer.input],
                        stride=layer.stride,
                    )
                    y = res.output
                    rec.seconds += res.seconds
                    if res.cycles is not None:
                        rec.cycles = (rec.cycles or 0) + res.cycles
                else:
                    y = _host_layer(qnet, layer, codes)
                    rec.seconds += time.perf_counter() - t0
                codes[layer.output] = y
                if keep_tensors:
                    kept.setdefault(layer.output, []).append(y)
                for t in layer.inputs:
                    if last.get(t) == k and t != network.output:
                        del codes[t]
                if bar is not None:
                    bar.update(1)
            logits.append(codes[network.output])
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


def _host_layer(qnet: QuantizedNetwork, layer: Any, codes: dict[str, np.ndarray]) -> np.ndarray:
    if isinstance(layer, Add):
        return qnet.host[layer.name](codes[layer.inputs[0]], codes[layer.inputs[1]])
    if isinstance(layer, MaxPool):
        return maxpool_int8(codes[layer.input], layer.kernel, layer.stride, layer.padding)
    if isinstance(layer, GlobalAvgPool):
        return qnet.host[layer.name](codes[layer.input])
    if isinstance(layer, Linear):
        return qnet.host[layer.name](codes[layer.input])
    raise TypeError(f"layer {layer.name!r}: no host operation for {type(layer).__name__}")
