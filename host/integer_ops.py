"""Integer arithmetic of the layers the host runs itself (docs/host.md, section 3).

Every feature map between layers is int8, symmetric, with one real scale per
tensor (``x_real = x * S``).  The host layers keep that form and use the
datapath's primitives (:func:`sfc_hls.datapath.rshift_round`: round half up;
:func:`sfc_hls.datapath.saturate`):

* residual add ``a (Sa) + b (Sb) -> out (So)``:
  ``out = sat(rshift(a * Ma + b * Mb, s))``, ``Ma / 2^s ~ Sa / So``,
  ``Mb / 2^s ~ Sb / So``, unsigned 16-bit ``Ma``, ``Mb`` and one shift (the
  largest for which both fit); ReLU clamps at 0 (:class:`AddQuant`);
* max pooling: on the int8 codes directly (monotonic, scale unchanged, exact);
  padded positions hold -128, which never exceeds a real value
  (:func:`maxpool_int8`);
* global average pooling ``(C, H, W) (Sx) -> (C,) (So)``: exact integer sum over
  the ``H W`` pixels, then ``sat(rshift(sum * M, s))`` with
  ``M / 2^s ~ Sx / (H W So)`` (:class:`AvgPoolQuant`);
* the classifier: int8 weights with one scale per output (``Sw[o] = max|w[o]| / 127``),
  ``acc = sum x * w + bias`` in exact integers (``bias`` rounded to the
  accumulator scale ``Sx Sw[o]``, int32), and logits ``acc * Sx Sw[o]`` --
  the only floating-point operation of the int8 network, at its very end
  (:class:`LinearQuant`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sfc_hls.datapath import rshift_round, saturate, signed_range

__all__ = [
    "MULT_BITS",
    "AddQuant",
    "AvgPoolQuant",
    "LinearQuant",
    "fixed_point_multipliers",
    "maxpool_int8",
]

#: Width of the unsigned fixed-point multipliers of the host requantizations.
MULT_BITS = 16
_MAX_SHIFT = 40


def fixed_point_multipliers(ratios: Any, bits: int = MULT_BITS) -> tuple[np.ndarray, int]:
    """``(mults, shift)`` with ``mults / 2^shift ~ ratios``, one shared shift.

    The shift is the largest (at most 40) for which every multiplier fits
    ``bits`` unsigned bits, so the largest ratio keeps ``bits`` significant
    bits; a ratio too small for any shift raises ValueError.
    """
    r = np.asarray(ratios, dtype=np.float64)
    if r.size == 0 or not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"ratios must be finite and > 0, got {r.tolist()}")
    mult_max = (1 << bits) - 1
    shift = int(math.floor(math.log2(mult_max / r.max())))
    if shift < 0:
        raise ValueError(f"ratio {r.max():.4g} does not fit a {bits}-bit multiplier")
    shift = min(shift, _MAX_SHIFT)
    mults = np.minimum(np.rint(r * 2.0**shift), mult_max).astype(np.int64)
    if mults.min() < 1:
        raise ValueError(f"ratio {r.min():.4g} rounds to 0 with shift {shift}")
    return mults, shift


def _check_int8(x: Any, name: str, bits: int = 8) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {x.dtype}")
    lo, hi = signed_range(bits)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{name} values must be in [{lo}, {hi}], got [{x.min()}, {x.max()}]")
    return x.astype(np.int64)


@dataclass(frozen=True)
class AddQuant:
    """Residual add ``out = sat(rshift(a * mult_a + b * mult_b, shift))`` (+ ReLU)."""

    mult_a: int
    mult_b: int
    shift: int
    relu: bool
    scale_a: float
    scale_b: float
    scale_out: float

    @classmethod
    def from_scales(cls, scale_a: float, scale_b: float, scale_out: float, *, relu: bool):
        (ma, mb), shift = fixed_point_multipliers([scale_a / scale_out, scale_b / scale_out])
        return cls(int(ma), int(mb), shift, relu, scale_a, scale_b, scale_out)

    def __call__(self, a: Any, b: Any) -> np.ndarray:
        a = _check_int8(a, "a")
        b = _check_int8(b, "b")
        if a.shape != b.shape:
            raise ValueError(f"add operands differ in shape: {a.shape} vs {b.shape}")
        total = a * self.mult_a + b * self.mult_b  # |.| < 2^8 * 2^17 = 2^25
        return saturate(rshift_round(total, self.shift), 8, self.relu)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AvgPoolQuant:
    """Global average ``out[c] = sat(rshift(sum_hw x[c] * mult, shift))``."""

    pixels: int
    mult: int
    shift: int
    scale_in: float
    scale_out: float

    @classmethod
    def from_scales(cls, pixels: int, scale_in: float, scale_out: float) -> AvgPoolQuant:
        (mult,), shift = fixed_point_multipliers([scale_in / (pixels * scale_out)])
        return cls(pixels, int(mult), shift, scale_in, scale_out)

    def __call__(self, x: Any) -> np.ndarray:
        x = _check_int8(x, "x")
        if x.ndim != 4 or x.shape[2] * x.shape[3] != self.pixels:
            raise ValueError(
                f"avgpool input must be (N, C, H, W) with H*W={self.pixels}, got {x.shape}"
            )
        total = x.sum(axis=(2, 3))  # exact: |.| <= 128 * H * W
        return saturate(rshift_round(total * self.mult, self.shift), 8)

    def windows(self, x: Any, kernel: int, stride: int) -> np.ndarray:
        """Average over ``kernel x kernel`` windows at ``stride`` (``pixels == kernel^2``)."""
        x = _check_int8(x, "x")
        if x.ndim != 4 or kernel * kernel != self.pixels:
            raise ValueError(f"avgpool input must be (N, C, H, W) with {self.pixels}-pixel windows")
        win = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(2, 3))
        total = win[:, :, ::stride, ::stride].sum(axis=(4, 5))  # exact
        return saturate(rshift_round(total * self.mult, self.shift), 8)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class LinearQuant:
    """Classifier: int8 weights per output row, exact integer accumulation, float logits."""

    weight: np.ndarray  # (out, in) int8
    weight_scale: np.ndarray  # (out,)
    bias: np.ndarray  # (out,) int32, in the accumulator scale
    scale_in: float

    @classmethod
    def quantize(cls, weight: Any, bias: Any, scale_in: float) -> LinearQuant:
        w = np.asarray(weight, dtype=np.float64)
        b = np.asarray(bias, dtype=np.float64)
        peak = np.abs(w).max(axis=1)
        sw = np.where(peak > 0, peak / 127.0, 1.0)
        wq = np.clip(np.rint(w / sw[:, None]), -127, 127).astype(np.int64)
        lo, hi = signed_range(32)
        bq = np.clip(np.rint(b / (scale_in * sw)), lo, hi).astype(np.int64)
        return cls(wq, sw, bq, float(scale_in))

    @property
    def acc_scale(self) -> np.ndarray:
        return self.scale_in * self.weight_scale

    def accumulate(self, x: Any) -> np.ndarray:
        """Exact ``x @ W^T + bias`` (int64; |.| < 2^31 for in_features < 2^16)."""
        x = _check_int8(x, "x")
        if x.ndim != 2 or x.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"linear input must be (N, {self.weight.shape[1]}), got {tuple(x.shape)}"
            )
        # float64 matmul is exact: every partial sum is below 2^53.
        acc = np.rint(x.astype(np.float64) @ self.weight.T.astype(np.float64)).astype(np.int64)
        return acc + self.bias

    def __call__(self, x: Any) -> np.ndarray:
        """Float64 logits ``accumulate(x) * Sx * Sw[o]``."""
        return self.accumulate(x) * self.acc_scale

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight": self.weight.tolist(),
            "weight_scale": self.weight_scale.tolist(),
            "bias": self.bias.tolist(),
            "scale_in": self.scale_in,
        }


def maxpool_int8(x: Any, kernel: int, stride: int, padding: int) -> np.ndarray:
    """Max pooling of int8 codes (N, C, H, W); padding never wins (filled with -128)."""
    x = _check_int8(x, "x")
    lo, _ = signed_range(8)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=lo)
    win = np.lib.stride_tricks.sliding_window_view(xp, (kernel, kernel), axis=(2, 3))
    return win[:, :, ::stride, ::stride].max(axis=(4, 5))
