"""Post-training quantization of a direct-mode conv layer (docs/datapath.md, "Direct mode").

A direct-mode layer is an ordinary int8 convolution on the engine's MAC
array: the input keeps its scale (``act_mult = 1``; ``act_shift`` only when
``act_bits < in_bits``), the weights get one symmetric scale per output
channel (min-max or MSE clipping, :class:`~sfc_hls.quantize.QuantOptions`),
every channel's accumulator is rescaled with the largest multiplier
(``rescale_mult = 2^rescale_bits - 1``) and the smallest legal shift, and the
output requantization maps each channel to the output scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sfc_hls.arguments import check_int
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import DatapathWidths, LayerQuant, minimum_rescale_shift
from sfc_hls.quantize import (
    QuantOptions,
    _as_numpy,
    _check_float_array,
    _check_scale,
    _output_requant,
    _weight_scales,
)
from sfc_hls.reference import output_size

__all__ = ["float_conv2d_strided", "quantize_direct_layer"]


def float_conv2d_strided(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, stride: int, padding: int
) -> np.ndarray:
    """Float64 convolution (correlation) of ``x`` (N, Cin, H, W) with ``w`` (Cout, Cin, K, K)."""
    n, cin, h, wd = x.shape
    k = w.shape[-1]
    ho, wo = output_size(h, k, padding, stride), output_size(wd, k, padding, stride)
    xp = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    win = win[:, :, ::stride, ::stride][:, :, :ho, :wo]  # (n, cin, ho, wo, k, k)
    out = np.einsum("nchwyx,ocyx->nohw", win, np.asarray(w, dtype=np.float64), optimize=True)
    return out if bias is None else out + np.asarray(bias, dtype=np.float64)[None, :, None, None]


def quantize_direct_layer(
    weight: Any,
    bias: Any,
    *,
    config: EngineConfig,
    calib_inputs_int8: Any,
    input_scale: float,
    output_scale: float | None = None,
    stride: int = 1,
    padding: int = 0,
    relu: bool = False,
    options: QuantOptions | None = None,
) -> LayerQuant:
    """Quantize a ``K x K`` conv (any stride) for ``config``'s engine in direct mode.

    Args as for :func:`sfc_hls.quantize.quantize_conv_layer` (weights ``(cout,
    cin, K, K)`` float, BatchNorm folded in), plus ``stride``.  ``output_scale``
    ``None``: the largest magnitude of the float output on the calibration
    inputs maps to the largest output code.
    """
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, got {type(config).__name__}")
    options = QuantOptions() if options is None else options
    w = _check_float_array(_as_numpy(weight, "weight"), "weight")
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ValueError(f"weight must be (Cout, Cin, K, K), got shape {w.shape}")
    cout, cin, k = w.shape[0], w.shape[1], w.shape[2]
    b = np.zeros(cout) if bias is None else _check_float_array(_as_numpy(bias, "bias"), "bias")
    check_int("stride", stride, 1)
    check_int("padding", padding, 0)
    sx = _check_scale("input_scale", input_scale)
    x = np.asarray(calib_inputs_int8)
    if x.ndim != 4 or x.shape[1] != cin:
        raise ValueError(f"calib_inputs_int8 must be (N, {cin}, H, W), got shape {x.shape}")
    if options.calib_samples is not None:
        x = x[: options.calib_samples]
    wmax = (1 << (config.weight_bits - 1)) - 1
    sw = _weight_scales(w.reshape(1, cout, cin * k * k), options.weight_method, "channel", wmax)[0]
    weights = np.clip(np.rint(w / sw[:, None, None, None]), -wmax, wmax).astype(np.int64)
    act_shift = max(0, config.in_bits - config.act_bits)
    reduction = k * k * cin
    rescale_shift = minimum_rescale_shift(reduction, config)
    widths = DatapathWidths.derive(config.algo, config, cin, rescale_shift, mode="direct", kernel=k)
    rmax = (1 << config.rescale_bits) - 1
    # acc = sum q W, q = x / 2^act_shift, W = w / sw: one y LSB is worth y_scale (per channel).
    y_scale = sx * (1 << act_shift) * sw * (1 << rescale_shift) / rmax
    so = output_scale
    if so is None:
        ref = float_conv2d_strided(x * sx, w, b, stride, padding)
        peak = float(np.maximum(ref, 0).max() if relu else np.abs(ref).max())
        so = peak / ((1 << (config.out_bits - 1)) - 1) if peak > 0 else sx
    so = _check_scale("output_scale", so)
    out_mult, out_shift = _output_requant(y_scale / so, config, widths.out_product_bits, so)
    bias_int = np.clip(np.rint(b / y_scale), -widths.bias_bound, widths.bias_bound)
    m = config.algo.mults
    return LayerQuant(
        config=config,
        cin=cin,
        cout=cout,
        act_mult=np.ones(m, dtype=np.int64),
        act_shift=np.full(m, act_shift, dtype=np.int64),
        weights=weights,
        rescale_mult=np.full(cout, rmax, dtype=np.int64),
        rescale_shift=rescale_shift,
        bias=bias_int.astype(np.int64),
        out_mult=out_mult,
        out_shift=out_shift,
        padding=padding,
        relu=relu,
        input_scale=sx,
        output_scale=so,
        mode="direct",
    )
