"""Post-training quantization of one conv layer onto the integer datapath.

:func:`quantize_conv_layer` turns a float layer (weights, bias) plus a few
int8 calibration inputs into the integer parameters
(:class:`~sfc_hls.datapath.LayerQuant`) that :func:`sfc_hls.golden.conv2d_int8`
and the hardware run.  It follows the transform-domain PTQ of the SFC paper
(He et al., ICML 2024, section 7 of docs/sfc-algorithm.md):

* activation scales per transform position ("frequency-wise") from the
  calibration samples' exact ``v = B^T x`` (min-max, percentile or MSE-optimal
  clipping), representable in the engine's ``pow2`` or ``fixed`` mode;
* weight scales per (position, output channel) or per position on the float
  transformed weights ``U = G w`` (min-max or MSE-optimal clipping);
* every position rescaled to one scale per output channel before ``A^T``,
  bias in that scale, per-channel output requantization to ``out_bits``;
* optional scale fine-tuning: a deterministic coordinate search over the
  activation scale of each position and the weight scale of each
  (position, channel) that minimizes the layer's output error (before output
  requantization) against the float layer on the calibration samples.

The real-valued meaning of the integer parameters, with ``Sx`` the input
scale, ``s_j`` the activation scale of position ``j`` and ``sw[j, co]`` the
weight scale::

    q_j  ~ v_j * s_j,    W[j, co] ~ U[j, co] / sw[j, co]
    P[j, co] = sum_ci v U ~ acc[j, co] * r[j, co],       r = sw / s
    rescale_mult[j, co] = round(r[j, co] / t[co]),       t[co] = max_j r[j, co] / (2^rescale_bits - 1)
    y ~ (float conv output / Sx) / (t[co] 2^rescale_shift)
    out = (y + bias) * out_mult / 2^out_shift ~ float output / output_scale

See docs/quantization.md for the method and the measured errors.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from numbers import Real
from typing import Any

import numpy as np

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import (
    DatapathWidths,
    LayerQuant,
    minimum_rescale_shift,
    signed_range,
)
from sfc_hls.reference import extract_tiles
from sfc_hls.weight_transform import exact_transform, fitting_shifts, requantize_transformed

__all__ = [
    "ACT_METHODS",
    "WEIGHT_METHODS",
    "WEIGHT_GRANULARITIES",
    "WEIGHT_SOURCES",
    "DEFAULT_CALIB_SAMPLES",
    "QuantOptions",
    "accumulator_scale",
    "dequantize_output",
    "fold_batchnorm",
    "float_conv2d",
    "quantize_conv_layer",
    "quantize_input",
]

ACT_METHODS = ("minmax", "percentile", "mse")
WEIGHT_METHODS = ("minmax", "mse")
WEIGHT_GRANULARITIES = ("channel", "position")
WEIGHT_SOURCES = ("transform", "spatial")
#: Calibration images used by default (the first ones given).
DEFAULT_CALIB_SAMPLES = 32


@dataclass(frozen=True)
class QuantOptions:
    """How a conv layer is quantized (one set of defaults for the host, the error study and tests).

    The defaults are the choices that meet the accuracy target on the digits
    ResNet (docs/host.md, docs/quantization.md).  The activation scale mode
    (``pow2`` or ``fixed``) is not an option here: it is part of the engine
    (:attr:`sfc_hls.config.EngineConfig.scale_mode`).

    Attributes:
        act_method: activation clipping per transform position: ``"minmax"``,
            ``"percentile"`` (of ``|B^T x|``) or ``"mse"`` (minimizes the
            quantization MSE of ``B^T x``).
        weight_method: ``"minmax"`` or ``"mse"`` clipping of ``G w``.
        weight_granularity: ``"channel"`` (per position and output channel) or
            ``"position"`` (per position).
        weight_source: ``"transform"`` quantizes ``G w`` (one int8 code per position,
            streamed as such); ``"spatial"`` quantizes ``w`` to int8 per output channel
            and derives the transform-domain weights exactly, with a power-of-two
            scale per (position, channel) or per position (the smallest shift of the
            position's window that fits)
            (:mod:`sfc_hls.weight_transform`): what an engine with an on-chip weight
            transform runs.  Fine-tuning then adjusts the activation scales only.
        percentile: for ``act_method="percentile"``, in (0, 100].
        fine_tune: after calibration, adjust the activation scale of every
            position (and with ``fine_tune_weights`` every weight scale) by a
            deterministic coarse-to-fine coordinate search minimizing the
            squared error of the layer output (before output requantization,
            valid outputs only) against the float layer on the calibration samples.
        fine_tune_weights: include the weight scales in the fine-tuning.
        calib_samples: use the first this many calibration inputs (``None``: all).
        tensor_percentile: per-tensor int8 scale of a network's tensors from this
            percentile of ``|x|`` (``None``: ``max|x|``); used by the host's calibration.
    """

    act_method: str = "percentile"
    weight_method: str = "mse"
    weight_granularity: str = "channel"
    weight_source: str = "transform"
    percentile: float = 99.99
    fine_tune: bool = False
    fine_tune_weights: bool = True
    calib_samples: int | None = DEFAULT_CALIB_SAMPLES
    tensor_percentile: float | None = None

    def __post_init__(self) -> None:
        _check_choice("act_method", self.act_method, ACT_METHODS)
        _check_choice("weight_method", self.weight_method, WEIGHT_METHODS)
        _check_choice("weight_granularity", self.weight_granularity, WEIGHT_GRANULARITIES)
        _check_choice("weight_source", self.weight_source, WEIGHT_SOURCES)
        for name in ("fine_tune", "fine_tune_weights"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        for name in ("percentile", "tensor_percentile"):
            value = getattr(self, name)
            if value is None and name == "tensor_percentile":
                continue
            if isinstance(value, bool) or not isinstance(value, Real):
                raise TypeError(f"{name} must be a real number, got {value!r}")
            if not 0 < float(value) <= 100:
                raise ValueError(f"{name} must be in (0, 100], got {value!r}")
        samples = self.calib_samples
        if samples is not None and (
            not isinstance(samples, int) or isinstance(samples, bool) or samples < 1
        ):
            raise ValueError(f"calib_samples must be a positive int or None, got {samples!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Clipping searches: candidate thresholds max * 2^(-i/8), i = 0..40 (down to
# 1/32 of the range) for activations; max * 2^(-i/16), i = 0..32 (down to 1/4)
# for weights.  MSE of activations is measured on at most this many values per
# position (an evenly strided, hence deterministic, subsample).
_ACT_CLIP_STEPS = np.arange(41) / 8.0
_WEIGHT_CLIP_STEPS = np.arange(33) / 16.0
_MSE_SUBSAMPLE = 1 << 16

# Fine-tuning: passes of multiplicative factors 2^(k * step), k = -4..4, with
# the step shrinking each pass (a deterministic coarse-to-fine coordinate
# search).  pow2 activation scales can only move by whole octaves.
_FINE_TUNE_STEPS = (1 / 4, 1 / 16, 1 / 64)
_FINE_TUNE_POW2_OCTAVES = (-2, -1, 1, 2)
# Fine-tuning measures the error on at most this many tiles (evenly strided).
_FINE_TUNE_MAX_TILES = 4096


def _single_threaded_blas() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread (if threadpoolctl is installed).

    The quantizer runs thousands of small matrix products; a multi-threaded
    BLAS spends more time waking threads than multiplying, and on a loaded
    machine it can be ten times slower.  Results do not depend on it.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ---------------------------------------------------------------------- validation
def _as_numpy(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(value).__name__}")
    return value


def _check_scale(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_float_array(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must have a real (float or integer) dtype, got {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_calibration(x: Any, config: EngineConfig, cin: int, padding: int) -> np.ndarray:
    x = _as_numpy(x, "calib_inputs_int8")
    if x.dtype.kind not in "iu":
        raise TypeError(
            f"calib_inputs_int8 must be an integer array (int{config.in_bits} data, "
            f"quantized with input_scale), got dtype {x.dtype}"
        )
    if x.ndim != 4:
        raise ValueError(f"calib_inputs_int8 must be 4D (N, Cin, H, W), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("calib_inputs_int8 is empty: at least one calibration sample is needed")
    if x.shape[1] != cin:
        raise ValueError(f"calib_inputs_int8 has Cin={x.shape[1]}, the weight has cin={cin}")
    kernel = config.algo.kernel
    for axis, size in (("H", x.shape[2]), ("W", x.shape[3])):
        if size + 2 * padding < kernel:
            raise ValueError(
                f"calib_inputs_int8 {axis}={size} with padding {padding} is smaller than "
                f"the kernel {kernel}"
            )
    lo, hi = signed_range(config.in_bits)
    if x.min() < lo or x.max() > hi:
        raise ValueError(
            f"calib_inputs_int8 values must be in [{lo}, {hi}] (int{config.in_bits}); "
            f"got [{x.min()}, {x.max()}]"
        )
    return x.astype(np.int64)


# ---------------------------------------------------------------------- float helpers
def float_conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, padding: int) -> np.ndarray:
    """Float64 stride-1 correlation ``(N, Cin, H, W) x (Cout, Cin, R, R) -> (N, Cout, Ho, Wo)``."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    r = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (r, r), axis=(2, 3))
    n, cin, ho, wo = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, cin * r * r)
    out = cols @ w.reshape(w.shape[0], -1).T
    if bias is not None:
        out = out + np.asarray(bias, dtype=np.float64)
    return out.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)


def fold_batchnorm(
    conv: Any, bn: Any, *, layer: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fold an inference-mode BatchNorm into the conv before it: ``(weight, bias)`` float64.

    ``bn(conv(x)) == conv'(x)`` with ``w' = w * g`` and ``b' = beta + (b - mean) * g``,
    ``g = gamma / sqrt(running_var + eps)``.  Takes torch modules (``nn.Conv2d``,
    ``nn.BatchNorm2d``) or any objects with the same attributes; ``bn=None``
    returns the conv's own weight and bias.

    Raises ValueError, naming ``layer`` (the model's layer name, when given) and
    the field, for NaN or infinite values, mismatched shapes, a negative
    variance or ``eps``, and a zero variance (with ``eps < 1e-3``) in a channel
    whose weights are not all zero: folding would scale that channel by
    ``1/sqrt(eps)``, the sign of an untrained or corrupt BatchNorm.
    """
    where = f"layer {layer!r}: " if layer else ""

    def arr(value: Any, name: str) -> np.ndarray:
        try:
            return _check_float_array(_as_numpy(value, name), name)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}{exc}") from None

    w = arr(conv.weight, "conv.weight")
    cout = w.shape[0]
    b = arr(conv.bias, "conv.bias") if getattr(conv, "bias", None) is not None else np.zeros(cout)
    if bn is None:
        return w, b
    mean = arr(bn.running_mean, "bn.running_mean")
    var = arr(bn.running_var, "bn.running_var")
    gamma = arr(bn.weight, "bn.weight") if bn.weight is not None else np.ones(cout)
    beta = arr(bn.bias, "bn.bias") if bn.bias is not None else np.zeros(cout)
    for name, v in (("running_mean", mean), ("running_var", var), ("weight", gamma)):
        if v.shape != (cout,):
            raise ValueError(
                f"{where}bn.{name} has shape {v.shape}, the conv has {cout} output channels"
            )
    eps = float(bn.eps)
    if not (math.isfinite(eps) and eps >= 0) or var.min() < 0:
        raise ValueError(f"{where}bn.running_var and bn.eps must be >= 0 (eps={eps!r})")
    # var = 0 makes g = gamma / sqrt(eps), > 30x for eps < 1e-3 (PyTorch's default: 1e-5).
    zero_var = (var == 0) & (np.any(w.reshape(cout, -1) != 0, axis=1) | (eps == 0))
    degenerate = np.flatnonzero(zero_var) if eps < 1e-3 else np.array([], dtype=np.int64)
    if degenerate.size:
        channels = ", ".join(map(str, degenerate[:8])) + (", ..." if degenerate.size > 8 else "")
        raise ValueError(
            f"{where}bn.running_var is 0 in channel(s) {channels} whose weights are not zero: "
            f"folding would scale them by 1/sqrt(eps) = {1 / math.sqrt(max(eps, 1e-300)):.3g} "
            "(an untrained or corrupt BatchNorm)"
        )
    g = gamma / np.sqrt(var + eps)
    return w * g[:, None, None, None], beta + (b - mean) * g


def quantize_input(x: Any, scale: float, bits: int = 8) -> np.ndarray:
    """Symmetric quantization ``clip(round(x / scale))`` to signed ``bits`` (int64 array)."""
    scale = _check_scale("scale", scale)
    x = _check_float_array(_as_numpy(x, "x"), "x")
    lo, hi = signed_range(bits)
    return np.clip(np.rint(x / scale), lo, hi).astype(np.int64)


def accumulator_scale(params: LayerQuant) -> np.ndarray:
    """Real value of one LSB of ``y`` (and of ``bias``) per output channel, ``(cout,)``.

    Recovered from the output requantization: ``output_scale * out_mult / 2^out_shift``
    (exact up to the rounding of ``out_mult``, below 2^-(out_mult_bits - 1) relative).
    """
    return params.output_scale * params.out_mult / np.exp2(params.out_shift.astype(np.float64))


def dequantize_output(out_int: Any, params: LayerQuant) -> np.ndarray:
    """Real values of the layer's integer output: ``out_int * output_scale`` (float64)."""
    if not isinstance(params, LayerQuant):
        raise TypeError(f"params must be a LayerQuant, got {type(params).__name__}")
    out = _as_numpy(out_int, "out_int")
    if out.dtype.kind not in "iu" and out.dtype != object:
        raise TypeError(f"out_int must be an integer array, got dtype {out.dtype}")
    return out.astype(np.float64) * params.output_scale


# ---------------------------------------------------------------------- scale encodings
def _encode_act_scales(
    target: np.ndarray, config: EngineConfig, max_shift: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hardware activation scales ``(mult, shift, s)`` closest to ``target`` from below.

    ``s = mult / 2^shift <= min(target, 1)``: a scale above 1 cannot help, the
    integer ``v`` is already exact.  pow2: ``mult = 1`` (a rounding shift);
    fixed: the largest shift whose multiplier fits ``act_mult_bits``.
    """
    target = np.minimum(np.asarray(target, dtype=np.float64), 1.0)
    target = np.maximum(target, 2.0**-max_shift)
    if config.scale_mode == "pow2":
        shift = np.ceil(-np.log2(target) - 1e-12).astype(np.int64)
        shift = np.clip(shift, 0, max_shift)
        mult = np.ones_like(shift)
    else:
        mult_max = (1 << config.act_mult_bits) - 1
        shift = np.floor(np.log2(mult_max / target) + 1e-12).astype(np.int64)
        shift = np.clip(shift, 0, max_shift)
        mult = np.clip(np.floor(target * np.exp2(shift) + 1e-9), 1, mult_max).astype(np.int64)
    return mult, shift, mult / np.exp2(shift)


def _quantize_values(v: np.ndarray, s: np.ndarray | float, lo: int, hi: int) -> np.ndarray:
    return np.clip(np.rint(v * s), lo, hi)


# ---------------------------------------------------------------------- calibration
@dataclass
class _Calibration:
    """Calibration data in the transform domain (float64, exact integers in ``v``)."""

    v: np.ndarray  # (m, Nt, cin): B^T x per position, tile, input channel
    u: np.ndarray  # (m, cout, cin): G w
    tile_class: np.ndarray  # (Nt,) index into grams
    grams: np.ndarray  # (classes, m, m): A^T' diag(valid outputs) A^T per tile class


def _calibration(x: np.ndarray, w: np.ndarray, config: EngineConfig, padding: int) -> _Calibration:
    algo = config.algo
    tiles, outs, grid = extract_tiles(x, algo, padding)
    n, cin = tiles.shape[:2]
    # |B^T x| < 2^53: float64 matmul is exact here.
    v = tiles.astype(np.float64) @ algo.bt_float.T  # (n, cin, TH, TW, m)
    v = np.ascontiguousarray(v.transpose(4, 0, 2, 3, 1).reshape(algo.mults, -1, cin))
    u = w.reshape(w.shape[0], cin, -1) @ algo.g_float.T  # (cout, cin, m)
    u = np.ascontiguousarray(u.transpose(2, 0, 1))
    # Edge tiles compute outputs past the map; only the valid ones count.
    mt = algo.output_tile
    rows = np.minimum(mt, outs[0] - mt * np.arange(grid[0]))
    cols = np.minimum(mt, outs[1] - mt * np.arange(grid[1]))
    kinds = sorted({(int(a), int(b)) for a in rows for b in cols})
    at = algo.at_float
    grams = []
    for a, b in kinds:
        mask = np.zeros((mt, mt))
        mask[:a, :b] = 1.0
        grams.append(at.T @ (mask.reshape(-1, 1) * at))
    index = {k: i for i, k in enumerate(kinds)}
    cls = np.array([[index[(int(a), int(b))] for b in cols] for a in rows]).reshape(-1)
    cls = np.tile(cls, n)
    # Tiles grouped by class (stable order), so each class is one contiguous slice.
    order = np.argsort(cls, kind="stable")
    return _Calibration(
        v=np.ascontiguousarray(v[:, order]), u=u, tile_class=cls[order], grams=np.array(grams)
    )


def _activation_targets(
    cal: _Calibration, method: str, percentile: float, config: EngineConfig, max_shift: np.ndarray
) -> np.ndarray:
    """Target activation scale per position (before the hardware encoding)."""
    qmax = (1 << (config.act_bits - 1)) - 1
    lo, hi = signed_range(config.act_bits)
    absv = np.abs(cal.v.reshape(cal.v.shape[0], -1))
    amax = absv.max(axis=1)
    if method == "percentile":
        clip = np.percentile(absv, percentile, axis=1)
        clip = np.where(clip > 0, clip, amax)
    else:
        clip = amax
    target = np.where(clip > 0, qmax / np.maximum(clip, 1e-300), 1.0)
    if method != "mse":
        return target
    flat = cal.v.reshape(cal.v.shape[0], -1)
    step = max(1, math.ceil(flat.shape[1] / _MSE_SUBSAMPLE))
    sample = flat[:, ::step]
    best = target.copy()
    for j in range(flat.shape[0]):
        if amax[j] == 0:
            continue
        cands = target[j] * np.exp2(_ACT_CLIP_STEPS)
        _, _, s = _encode_act_scales(cands, config, max_shift[j])
        s = np.unique(s)
        deq = _quantize_values(sample[j][None, :], s[:, None], lo, hi) / s[:, None]
        err = ((deq - sample[j][None, :]) ** 2).mean(axis=1)
        best[j] = s[int(np.argmin(err))]
    return best


def _weight_scales(u: np.ndarray, method: str, granularity: str, wmax: int) -> np.ndarray:
    """Weight scale per (position, channel), ``(m, cout)`` (equal along cout for ``position``)."""
    m, cout, cin = u.shape
    rows = u if granularity == "channel" else u.reshape(m, 1, cout * cin)
    amax = np.abs(rows).max(axis=2)  # (m, k)
    base = np.where(amax > 0, amax / wmax, 1.0)
    if method == "minmax":
        sw = base
    else:
        cands = base[None] * np.exp2(-_WEIGHT_CLIP_STEPS)[:, None, None]  # (c, m, k)
        err = np.stack(
            [
                (
                    (np.clip(np.rint(rows / c[..., None]), -wmax, wmax) * c[..., None] - rows) ** 2
                ).sum(axis=2)
                for c in cands
            ]
        )
        sw = np.take_along_axis(cands, np.argmin(err, axis=0)[None], axis=0)[0]
    return np.broadcast_to(sw, (m, cout)).copy()


# ---------------------------------------------------------------------- fine-tuning
class _OutputError:
    """Output error of the transform-domain products against the float layer.

    ``e[j, t, co] = q_j . W[j, co] * sw[j, co] / s_j - v_j . U[j, co]`` (products
    dequantized to the units of the integer input; rescale and ``z`` rounding,
    below 2^-15 relative, are neglected).  The error of the valid outputs of
    tile ``t`` is ``e_t' G_c(t) e_t`` with ``G_c = A^T' diag(mask_c) A^T``;
    ``r = G e`` is kept up to date so that changing one position costs
    ``O(Nt * cout)`` to evaluate.
    """

    def __init__(
        self,
        cal: _Calibration,
        s: np.ndarray,
        sw: np.ndarray,
        config: EngineConfig,
        weights: np.ndarray | None = None,
    ):
        self.cal = cal
        self.weights = weights  # fixed integer weights (m, cout, cin), else rint(u / sw)
        self.lo, self.hi = signed_range(config.act_bits)
        self.wmax = (1 << (config.weight_bits - 1)) - 1
        m = cal.v.shape[0]
        self.s = s.copy()
        self.sw = sw.copy()
        self.pf = np.stack([cal.v[j] @ cal.u[j].T for j in range(m)])  # (m, Nt, cout)
        self.e = np.stack([self.product(j, s[j], sw[j]) for j in range(m)]) - self.pf
        self.diag = cal.grams[:, np.arange(m), np.arange(m)][cal.tile_class]  # (Nt, m)
        self.r = np.empty_like(self.e)
        # Tiles are sorted by class: each class is a contiguous slice of rows.
        bounds = np.searchsorted(cal.tile_class, np.arange(cal.grams.shape[0] + 1))
        self.class_rows = [
            slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        for c, rows in enumerate(self.class_rows):
            self.r[:, rows] = np.tensordot(cal.grams[c], self.e[:, rows], axes=(1, 0))

    def q(self, j: int, s: float) -> np.ndarray:
        return _quantize_values(self.cal.v[j], s, self.lo, self.hi)

    def product(self, j: int, s: float, sw: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
        q = self.q(j, s) if q is None else q
        if self.weights is not None:
            w = self.weights[j]
        else:
            w = np.clip(np.rint(self.cal.u[j] / sw[:, None]), -self.wmax, self.wmax)
        return (q @ w.T) * (sw / s)[None, :]

    def total(self) -> float:
        return float((self.e * self.r).sum())

    def delta(self, j: int, e_new: np.ndarray) -> np.ndarray:
        """Change of the error per output channel if column ``j`` became ``e_new``."""
        d = e_new - self.e[j]
        return (d * (2.0 * self.r[j] + self.diag[:, j, None] * d)).sum(axis=0)

    def update(self, j: int, e_new: np.ndarray) -> None:
        d = e_new - self.e[j]
        if not d.any():
            return
        self.e[j] = e_new
        for c, rows in enumerate(self.class_rows):
            self.r[:, rows] += self.cal.grams[c, :, j, None, None] * d[None, rows]


def _fine_tune(
    cal: _Calibration,
    s: np.ndarray,
    sw: np.ndarray,
    config: EngineConfig,
    max_shift: np.ndarray,
    granularity: str,
    tune_weights: bool,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate search over activation (and weight) scales; returns ``(s, sw)``.

    ``weights``: fixed integer weights of scales ``sw`` (then ``tune_weights`` must be False).
    """
    n_tiles = cal.v.shape[1]
    if n_tiles > _FINE_TUNE_MAX_TILES:
        pick = np.linspace(0, n_tiles - 1, _FINE_TUNE_MAX_TILES).round().astype(np.int64)
        cal = _Calibration(
            v=np.ascontiguousarray(cal.v[:, pick]),
            u=cal.u,
            tile_class=cal.tile_class[pick],
            grams=cal.grams,
        )
    err = _OutputError(cal, s, sw, config, weights)
    m = cal.v.shape[0]
    pow2 = config.scale_mode == "pow2"
    passes = (None,) if pow2 else _FINE_TUNE_STEPS
    for step in passes:
        if step is None:
            factors = np.exp2(np.array(_FINE_TUNE_POW2_OCTAVES, dtype=np.float64))
        else:
            factors = np.exp2(np.arange(-4, 5) * step)
        # Activation scale of each position (affects all output channels).
        for j in range(m):
            _, _, cands = _encode_act_scales(err.s[j] * factors, config, max_shift[j])
            best, best_gain = None, 0.0
            for c in np.unique(cands):
                if c == err.s[j]:
                    continue
                e_new = err.product(j, c, err.sw[j]) - err.pf[j]
                gain = float(err.delta(j, e_new).sum())
                if gain < best_gain - 1e-12 * abs(best_gain):
                    best, best_gain = (c, e_new), gain
            if best is not None:
                err.s[j] = best[0]
                err.update(j, best[1])
        if not tune_weights:
            continue
        wfactors = np.exp2(np.arange(-4, 5) * (step if step is not None else 1 / 8))
        for j in range(m):
            q = err.q(j, err.s[j])
            gains = []
            e_news = []
            for f in wfactors:
                e_new = err.product(j, err.s[j], err.sw[j] * f, q) - err.pf[j]
                g = err.delta(j, e_new)
                gains.append(g if granularity == "channel" else np.full_like(g, g.sum()))
                e_news.append(e_new)
            pick = np.argmin(np.array(gains), axis=0)  # per output channel; f = 1 gains 0
            cols = np.arange(err.sw.shape[1])
            new_sw = err.sw[j] * wfactors[pick]
            e_new = np.stack(e_news)[pick, :, cols].T
            err.sw[j] = new_sw
            err.update(j, e_new)
    return err.s, err.sw


# ---------------------------------------------------------------------- public API
def quantize_conv_layer(
    weight: Any,
    bias: Any,
    *,
    config: EngineConfig,
    calib_inputs_int8: Any,
    input_scale: float,
    output_scale: float | None = None,
    padding: int = 1,
    relu: bool = False,
    options: QuantOptions | None = None,
) -> LayerQuant:
    """Post-training quantization of one stride-1 conv layer for ``config``'s engine.

    Args:
        weight: float weights ``(cout, cin, R, R)`` (BatchNorm folded in), R = the
            algorithm's kernel.
        bias: ``(cout,)`` float bias or ``None``.
        config: the engine (algorithm, widths, ``pow2``/``fixed`` activation scales).
        calib_inputs_int8: integer calibration inputs ``(N, cin, H, W)`` in the
            ``in_bits`` range, real value ``x * input_scale``.
        input_scale: real value of one input LSB (> 0).
        output_scale: real value of one output LSB; ``None``: the largest
            magnitude of the float layer output on the calibration samples maps to
            the largest output code (after ReLU when ``relu``).
        padding, relu: the layer.
        options: the clipping methods, fine-tuning and number of calibration
            samples (:class:`QuantOptions`; its defaults when ``None``).

    Returns:
        The layer's :class:`~sfc_hls.datapath.LayerQuant` (``input_scale`` and
        ``output_scale`` set), with the smallest legal ``rescale_shift``.

    Raises:
        TypeError, ValueError: naming the offending parameter.
    """
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, got {type(config).__name__}")
    algo = config.algo
    w = _check_float_array(_as_numpy(weight, "weight"), "weight")
    if w.ndim != 4:
        raise ValueError(f"weight must be 4D (Cout, Cin, R, R), got shape {w.shape}")
    cout, cin = w.shape[:2]
    if w.shape[2:] != (algo.kernel, algo.kernel):
        raise ValueError(
            f"weight kernel {w.shape[2]}x{w.shape[3]} does not match the algorithm "
            f"{algo.name} (R={algo.kernel})"
        )
    if cout < 1 or cin < 1:
        raise ValueError(f"weight must have at least one input and output channel, got {w.shape}")
    if cin > config.cin_max or cout > config.cout_max:
        raise ValueError(
            f"weight has cin={cin}, cout={cout}; the engine allows cin_max={config.cin_max}, "
            f"cout_max={config.cout_max}"
        )
    if bias is None:
        b = np.zeros(cout)
    else:
        b = _check_float_array(_as_numpy(bias, "bias"), "bias")
        if b.shape != (cout,):
            raise ValueError(f"bias must have shape ({cout},), got {b.shape}")
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    if not isinstance(relu, bool):
        raise TypeError(f"relu must be a bool, got {relu!r}")
    options = QuantOptions() if options is None else options
    if not isinstance(options, QuantOptions):
        raise TypeError(f"options must be a QuantOptions, got {type(options).__name__}")
    sx = _check_scale("input_scale", input_scale)
    so = None if output_scale is None else _check_scale("output_scale", output_scale)
    x = _check_calibration(calib_inputs_int8, config, cin, padding)
    if options.calib_samples is not None:
        x = x[: options.calib_samples]
    with _single_threaded_blas():
        return _quantize(w, b, x, config, sx, so, padding, relu, options)


def _quantize(
    w: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    config: EngineConfig,
    sx: float,
    so: float | None,
    padding: int,
    relu: bool,
    opts: QuantOptions,
) -> LayerQuant:
    algo = config.algo
    cout, cin = w.shape[:2]
    cal = _calibration(x, w, config, padding)
    rescale_shift = minimum_rescale_shift(cin, config)
    widths = DatapathWidths.derive(algo, config, cin, rescale_shift)
    max_act_shift = widths.act_shift_max  # per position
    wmax = (1 << (config.weight_bits - 1)) - 1

    target = _activation_targets(cal, opts.act_method, opts.percentile, config, max_act_shift)
    _, _, s = _encode_act_scales(target, config, max_act_shift)
    spatial = None
    if opts.weight_source == "spatial":
        spatial = _spatial_weights(w, config, opts.weight_method, opts.weight_granularity)
        weights, sw = spatial.weights, spatial.scales
        if opts.fine_tune:
            s, _ = _fine_tune(cal, s, sw, config, max_act_shift, "channel", False, weights)
    else:
        sw = _weight_scales(cal.u, opts.weight_method, opts.weight_granularity, wmax)
        if opts.fine_tune:
            s, sw = _fine_tune(
                cal, s, sw, config, max_act_shift, opts.weight_granularity, opts.fine_tune_weights
            )
        weights = np.clip(np.rint(cal.u / sw[:, :, None]), -wmax, wmax).astype(np.int64)
    act_mult, act_shift, s = _encode_act_scales(s, config, max_act_shift)

    used = np.any(weights != 0, axis=2)  # (m, cout)
    r = np.where(used, sw / s[:, None], 0.0)
    rmax = (1 << config.rescale_bits) - 1
    t = r.max(axis=0) / rmax
    t = np.where(t > 0, t, t.max() if t.max() > 0 else 1.0)  # all-zero channels
    rescale_mult = np.clip(np.rint(r / t), 0, rmax).astype(np.int64)
    y_scale = sx * t * 2.0**rescale_shift  # real value of one y LSB, per channel

    if so is None:
        ref = float_conv2d(x * sx, w, b, padding)
        peak = float(np.maximum(ref, 0).max() if relu else np.abs(ref).max())
        out_max = (1 << (config.out_bits - 1)) - 1
        so = peak / out_max if peak > 0 else sx
    out_mult, out_shift = _output_requant(y_scale / so, config, widths.out_product_bits, so)
    bias_int = np.clip(np.rint(b / y_scale), -widths.bias_bound, widths.bias_bound)
    return LayerQuant(
        config=config,
        cin=cin,
        cout=cout,
        act_mult=act_mult,
        act_shift=act_shift,
        weights=weights,
        rescale_mult=rescale_mult,
        rescale_shift=rescale_shift,
        bias=bias_int.astype(np.int64),
        out_mult=out_mult,
        out_shift=out_shift,
        padding=padding,
        relu=relu,
        input_scale=sx,
        output_scale=so,
        spatial_weights=None if spatial is None else spatial.codes,
        weight_shift=None if spatial is None else spatial.shift,
    )


@dataclass(frozen=True)
class _SpatialWeights:
    codes: np.ndarray  # (cout, cin, R, R) int8 spatial weights
    shift: np.ndarray  # (m, cout)
    weights: np.ndarray  # (m, cout, cin) their on-chip transform
    scales: np.ndarray  # (m, cout): real G w ~ weights * scales


def _spatial_weights(
    w: np.ndarray, config: EngineConfig, method: str, granularity: str
) -> _SpatialWeights:
    """int8 spatial weights per output channel (``method`` clipping), then per (position[,
    channel]) the smallest shift in the position's window whose weights fit (the finest
    step without clipping; :func:`~sfc_hls.weight_transform.fitting_shifts`)."""
    algo, bits = config.algo, config.weight_bits
    wmax = (1 << (bits - 1)) - 1
    cout = w.shape[0]
    scale = _weight_scales(w.reshape(1, cout, -1), method, "channel", wmax)[0]  # (cout,)
    codes = np.clip(np.rint(w / scale[:, None, None, None]), -wmax, wmax).astype(np.int64)
    u = exact_transform(codes, algo, bits)
    shift = fitting_shifts(u, algo, bits)
    if granularity == "position":  # one shift per position: the largest of its channels
        shift = np.broadcast_to(shift.max(axis=1, keepdims=True), shift.shape).copy()
    weights = requantize_transformed(u, shift, bits)
    scales = scale[None, :] * np.exp2(shift) / algo.g_denominator
    return _SpatialWeights(codes=codes, shift=shift, weights=weights, scales=scales)


def _output_requant(
    factor: np.ndarray, config: EngineConfig, max_shift: int, output_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """``out_mult / 2^out_shift ~ factor`` per channel with the largest multiplier that fits."""
    mult_max = (1 << config.out_mult_bits) - 1
    shift = np.floor(np.log2(mult_max / factor)).astype(np.int64)
    if shift.min() < 0:
        raise ValueError(
            f"output_scale={output_scale!r} is too small for this layer: one accumulator LSB "
            f"would need an output multiplier of {factor.max():.4g} >= 2^out_mult_bits"
        )
    shift = np.minimum(shift, max_shift)
    mult = np.minimum(np.rint(factor * np.exp2(shift)), mult_max).astype(np.int64)
    if mult.min() < 1:
        raise ValueError(
            f"output_scale={output_scale!r} is too large for this layer: the output "
            f"multiplier rounds to 0 even at the largest shift {max_shift}"
        )
    return mult, shift
