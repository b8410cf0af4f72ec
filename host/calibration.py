"""Post-training quantization of a lowered network (docs/host.md, section 2).

:func:`calibrate` turns a :class:`~sfc_hls.host.ir.Network` and ``K`` float
calibration images (default 32) into a :class:`QuantizedNetwork`:

1. **Tensor scales.** The network runs in float (:func:`~sfc_hls.host.inference.float_tensors`)
   on the calibration images; every tensor (input, each layer's output) gets
   one symmetric int8 scale ``S = max|x| / 127`` (or a percentile of ``|x|``).
   Max pooling keeps its input's scale (it commutes with quantization).
2. **Layers, in order, on the int8 data of the quantized network so far**
   (sequential PTQ: each layer is calibrated on the inputs it will really
   see): convs with :func:`sfc_hls.quantize.quantize_conv_layer` (frequency-wise
   activation scales, per-(position, channel) weight scales, input/output
   scales from step 1, optional fine-tuning), then run through the golden
   model to produce the next layers' calibration inputs; host layers get
   their fixed-point parameters (:mod:`sfc_hls.host.integer_ops`).

Everything is deterministic (no random numbers).  Large layers are
calibrated on the first images only, so that the transform-domain data of a
layer stays below :data:`CALIB_VALUES` values (ResNet-18's 224x224 stem: 2
images; everything in the digits network: all 32).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sfc_hls.bilinear import BilinearAlgorithm
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant
from sfc_hls.host.device import GoldenDevice
from sfc_hls.host.inference import check_images, float_tensors
from sfc_hls.host.integer_ops import AddQuant, AvgPoolQuant, LinearQuant, maxpool_int8
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
from sfc_hls.quantize import QuantOptions, quantize_conv_layer, quantize_input
from sfc_hls.quantize_direct import quantize_direct_layer

__all__ = [
    "CALIB_VALUES",
    "QuantizedNetwork",
    "calibrate",
    "engine_config",
    "engine_configs",
]

#: Largest number of transform-domain values (tiles x channels x positions) a
#: conv layer is calibrated on; bigger layers use fewer images.
CALIB_VALUES = 1 << 24
_QMAX = 127


def engine_config(
    network: Network, *, pco: int = 4, scale_mode: str = "pow2", **fields: Any
) -> EngineConfig:
    """The one engine that runs every conv of ``network``, just big enough for its layers.

    The network's fast algorithm with ``pco`` lanes; ``cin_max`` and ``cout_max``
    (rounded up to a multiple of ``pco``) the largest channel counts of its
    convs; ``direct_reduction_max`` the largest ``K^2 cin`` of its direct-mode
    convs (and ``cin_max`` raised if the weight buffer could not hold them).
    ``fields`` sets other :class:`EngineConfig` fields (``act_bits``,
    ``macs_per_dsp``, ``backend_width``, ...).
    """
    convs = network.convs
    if not convs:
        raise ValueError(f"network {network.name!r} has no conv layer to run on an engine")
    cin_max = max(c.cin for c in convs)
    cout_max = math.ceil(max(c.cout for c in convs) / pco) * pco
    direct = [c.reduction for c in convs if c.mode == "direct"]
    algorithm = network.algorithm
    assert algorithm is not None  # the network has convs
    base = EngineConfig(algorithm=algorithm, pco=pco, scale_mode=scale_mode,
                        cin_max=cin_max, cout_max=cout_max, **fields)  # fmt: skip
    if not direct:
        return base
    reduction = max(direct)
    cin_max = max(cin_max, math.ceil(reduction / base.backend_width))
    return dataclasses.replace(base, cin_max=cin_max, direct_reduction_max=reduction)


def engine_configs(
    network: Network, *, pco: int = 4, scale_mode: str = "pow2"
) -> list[EngineConfig]:
    """``[engine_config(network, ...)]``: the device API takes a list of engines."""
    return [engine_config(network, pco=pco, scale_mode=scale_mode)]


@dataclass(eq=False)
class QuantizedNetwork:
    """A network with every layer's integer parameters and every tensor's scale."""

    network: Network
    engines: dict[str, EngineConfig]
    scales: dict[str, float]
    convs: dict[str, LayerQuant]
    host: dict[str, Any]  # AddQuant | AvgPoolQuant | LinearQuant by layer name
    options: QuantOptions
    calib_images: int
    calib_images_per_conv: dict[str, int]

    def to_dict(self, *, parameters: bool = False) -> dict[str, Any]:
        """Summary (scales, engines, options); with ``parameters`` every layer's integers."""
        d: dict[str, Any] = {
            "format": "sfc-hls.quantized-network/1",
            "network": self.network.name,
            "options": self.options.to_dict(),
            "calib_images": self.calib_images,
            "calib_images_per_conv": self.calib_images_per_conv,
            "engines": {k: v.to_dict() for k, v in self.engines.items()},
            "scales": self.scales,
        }
        if parameters:
            d["convs"] = {k: v.to_dict() for k, v in self.convs.items()}
            d["host"] = {k: v.to_dict() for k, v in self.host.items()}
        return d


def _tensor_scale(value: Any, percentile: float | None) -> float:
    a = value.abs().flatten().double()
    if a.numel() == 0:
        return 1.0
    peak = float(a.max()) if percentile is None else float(np.percentile(a.numpy(), percentile))
    return peak / _QMAX if peak > 0 else 1.0


def tensor_scales(
    network: Network, images: Any, percentile: float | None = None
) -> dict[str, float]:
    """Symmetric int8 scale of every tensor from a float run on ``images``."""
    scales: dict[str, float] = {}

    def visit(name: str, value: Any) -> None:
        scales[name] = _tensor_scale(value, percentile)

    float_tensors(network, images, visit=visit)
    for layer in network.layers:  # max pooling and flatten keep their input's scale
        if isinstance(layer, MaxPool | Flatten):  # keep their input's scale
            scales[layer.output] = scales[layer.input]
    return scales


def calibrate(
    network: Network,
    images: Any,
    *,
    options: QuantOptions | None = None,
    engines: list[EngineConfig] | None = None,
    progress: bool = False,
) -> QuantizedNetwork:
    """Quantize ``network`` with the first ``options.calib_samples`` of ``images``.

    Args:
        network: lowered network (:func:`sfc_hls.host.lowering.lower_model`).
        images: float calibration images (N, C, H, W), normalized as for the
            float model; N >= 1.
        options: :class:`~sfc_hls.quantize.QuantOptions` (defaults if ``None``).
        engines: engine configurations (default :func:`engine_configs`); their
            ``scale_mode`` decides the activation scales.
        progress: tqdm progress over layers (stderr).

    Raises:
        ValueError: empty calibration set, images not matching the network,
            a layer the engines cannot run (names the layer).
    """
    options = options or QuantOptions()
    images = check_images(images, network, "calibration images")
    images = images[: options.calib_samples]
    if engines is None:
        engines = engine_configs(network)
    by_algo = {e.algorithm: e for e in engines}
    for conv in network.convs:
        if conv.algorithm not in by_algo:
            raise ValueError(f"layer {conv.name!r} needs an engine for {conv.algorithm!r}")
    scales = tensor_scales(network, images, options.tensor_percentile)
    golden = GoldenDevice(engines)
    convs: dict[str, LayerQuant] = {}
    host: dict[str, Any] = {}
    per_conv: dict[str, int] = {}

    def compute(layer: Any, inputs: list[np.ndarray]) -> np.ndarray:
        if isinstance(layer, Conv):
            params, n_cal = _calibrate_conv(layer, inputs[0], by_algo, scales, options)
            convs[layer.name], per_conv[layer.name] = params, n_cal
            return golden.run_conv(layer.name, params, inputs[0], stride=layer.stride).output
        if isinstance(layer, MaxPool):
            return maxpool_int8(inputs[0], layer.kernel, layer.stride, layer.padding)
        if isinstance(layer, Flatten):
            return inputs[0].reshape(inputs[0].shape[0], -1)
        host[layer.name] = op = _host_quant(layer, scales)
        if isinstance(layer, AvgPool):
            return op.windows(inputs[0], layer.kernel, layer.stride)
        return op(*inputs)

    layers = network.layers
    if progress:
        from tqdm import tqdm

        layers = tqdm(layers, desc="calibrating", unit="layer")
    network.evaluate(quantize_input(images, scales[INPUT]), compute, layers=layers)
    return QuantizedNetwork(
        network=network,
        engines=by_algo,
        scales=scales,
        convs=convs,
        host=host,
        options=options,
        calib_images=len(images),
        calib_images_per_conv=per_conv,
    )


def _calibrate_conv(
    layer: Conv,
    x: np.ndarray,
    engines: Mapping[str, EngineConfig],
    scales: Mapping[str, float],
    options: QuantOptions,
) -> tuple[LayerQuant, int]:
    """A conv's parameters from (the first images of) its int8 input; returns them and the count."""
    config = engines[layer.algorithm]
    if layer.mode == "fast":
        per_image = layer.cin * config.algo.mults * _stride1_tiles(layer, config.algo)
    else:
        per_image = layer.reduction * layer.out_shape[1] * layer.out_shape[2]
    n_cal = max(1, min(len(x), CALIB_VALUES // max(per_image, 1)))
    common: dict[str, Any] = dict(
        config=config,
        calib_inputs_int8=x[:n_cal],
        input_scale=scales[layer.input],
        output_scale=scales[layer.output],
        padding=layer.padding,
        relu=layer.relu,
        options=dataclasses.replace(options, calib_samples=None),
    )
    try:
        if layer.mode == "fast":
            params = quantize_conv_layer(layer.weight, layer.bias, **common)
        else:
            params = quantize_direct_layer(layer.weight, layer.bias, stride=layer.stride, **common)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"layer {layer.name!r}: cannot quantize: {exc}") from exc
    return params, n_cal


def _host_quant(layer: Any, scales: Mapping[str, float]) -> Any:
    """The fixed-point parameters of a host layer (add, average pool, linear)."""
    if isinstance(layer, Add):
        a, b = layer.inputs
        return AddQuant.from_scales(scales[a], scales[b], scales[layer.output], relu=layer.relu)
    if isinstance(layer, GlobalAvgPool):
        _, h, w = layer.in_shape
        return AvgPoolQuant.from_scales(h * w, scales[layer.input], scales[layer.output])
    if isinstance(layer, AvgPool):
        return AvgPoolQuant.from_scales(layer.kernel**2, scales[layer.input], scales[layer.output])
    if isinstance(layer, Linear):
        return LinearQuant.quantize(layer.weight, layer.bias, scales[layer.input])
    raise TypeError(f"unknown layer {layer!r}")  # pragma: no cover - the IR has no other kinds


def _stride1_tiles(layer: Conv, algo: BilinearAlgorithm) -> int:
    """Tiles of the stride-1 map the quantizer's calibration extracts per image."""
    _, h, w = layer.in_shape
    r, p = layer.kernel, layer.padding
    return algo.tiles(h + 2 * p - r + 1, w + 2 * p - r + 1)
