"""Bit-accurate golden model of the integer conv datapath (docs/datapath.md).

Two independent implementations of one specification:

* :func:`conv2d_int8` -- vectorized NumPy, whole layers, returns every
  intermediate stage on request (for test vectors and RTL checks);
* :func:`conv2d_int8_scalar` -- plain Python loops and Python integers, slow,
  written separately from the vectorized one so the two check each other.

Both assert the derived bounds of :class:`~sfc_hls.datapath.DatapathWidths`
on every stage: a value that would wrap in hardware raises
:class:`~sfc_hls.datapath.BoundError` instead of giving a silent wrong answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sfc_hls.arguments import check_int
from sfc_hls.datapath import (
    LayerQuant,
    check_bound,
    rshift_round,
    saturate,
    signed_range,
)
from sfc_hls.reference import assemble_tiles, check_stride, extract_tiles, output_size

__all__ = ["LayerStages", "check_input", "conv2d_int8", "conv2d_int8_scalar"]

# Exact integer matmuls go through float64 BLAS while every partial sum stays
# below 2^53 (doubles represent those integers exactly).
_FLOAT_EXACT = 1 << 53
_INT64_SAFE = 1 << 62


@dataclass(frozen=True)
class LayerStages:
    """Every stage of one layer.

    Fast mode, tile-major: ``tiles`` (N, Cin, TH, TW, L*L); ``v``, ``q`` (N, Cin,
    TH, TW, m); ``acc``, ``z`` (N, Cout, TH, TW, m); ``y``, ``out_tiles`` (N, Cout,
    TH, TW, M*M); ``out`` (N, Cout, Ho, Wo).  Tiles are row-major (TH then TW);
    within a tile positions follow the algorithm's flattening.

    Direct mode, maps: ``tiles``, ``v`` the input ``x`` and ``q`` its quantized
    values (N, Cin, H, W); ``acc``, ``z``, ``y``, ``out_tiles``, ``out`` (N, Cout, Ho, Wo).
    """

    tiles: np.ndarray
    v: np.ndarray
    q: np.ndarray
    acc: np.ndarray
    z: np.ndarray
    y: np.ndarray
    out_tiles: np.ndarray
    out: np.ndarray


def check_input(x, params: LayerQuant) -> np.ndarray:
    """Validate an input feature map for ``params``; returns it as int64."""
    if not isinstance(params, LayerQuant):
        raise TypeError(f"params must be a LayerQuant, got {type(params).__name__}")
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array, got {type(x).__name__}")
    if x.dtype.kind not in "iu":
        raise TypeError(
            f"x must be an integer array (int{params.config.in_bits} data), got {x.dtype}"
        )
    if x.ndim != 4:
        raise ValueError(f"x must be 4D (N, Cin, H, W), got shape {x.shape}")
    if x.shape[1] != params.cin:
        raise ValueError(f"x has Cin={x.shape[1]}, the layer parameters expect cin={params.cin}")
    r = params.kernel
    for name, size in (("H", x.shape[2]), ("W", x.shape[3])):
        if size + 2 * params.padding < r:
            raise ValueError(f"{name}={size} with padding {params.padding} is smaller than R={r}")
    lo, hi = signed_range(params.config.in_bits)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(
            f"x values must be in [{lo}, {hi}] (int{params.config.in_bits}); "
            f"got [{x.min()}, {x.max()}]"
        )
    return x.astype(np.int64)


def _exact_matmul(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray:
    """a @ b exactly, given |every partial sum| <= bound."""
    if bound < _FLOAT_EXACT:
        return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    if bound < _INT64_SAFE:
        return a.astype(np.int64) @ b.astype(np.int64)
    return a.astype(object) @ b.astype(object)


def _dtype_for(bound: int):
    return np.int64 if bound < _INT64_SAFE else object


def conv2d_int8(x, params: LayerQuant, *, stride: int = 1, return_stages: bool = False):
    """Run one quantized conv layer through the integer datapath (vectorized).

    Args:
        x: int8-range integer array (N, Cin, H, W).
        params: the layer's integer parameters.
        stride: output stride; ``> 1`` only for algorithms with a 1x1 output
            tile (``direct-RxR``: one input patch per output pixel, patches
            ``stride`` pixels apart), ValueError otherwise.
        return_stages: also return a :class:`LayerStages` with every intermediate.

    Returns:
        ``out`` (N, Cout, Ho, Wo) int64 in the ``out_bits`` range, or
        ``(out, stages)``.
    """
    x = check_input(x, params)
    if params.mode == "direct":
        return _conv2d_direct(x, params, stride, return_stages)
    algo = params.algo
    check_stride(algo, stride)
    cfg = params.config
    wd = params.widths
    tiles, outs, grid = extract_tiles(x, algo, params.padding, stride)
    n = x.shape[0]

    v = _exact_matmul(tiles, algo.bt_int.T, int(np.abs(algo.bt_int).sum(axis=1).max()) << 8)
    check_bound("v = B^T x", v, wd.v_lo, wd.v_hi)

    dt = _dtype_for(wd.act_product_bound + (1 << wd.act_product_bits))
    prod = v.astype(dt) * params.act_mult.astype(dt)
    check_bound("v * act_mult", prod, -wd.act_product_bound, wd.act_product_bound)
    q = saturate(rshift_round(prod, params.act_shift), cfg.act_bits)

    # acc[n, co, th, tw, j] = sum_ci q[n, ci, th, tw, j] * W[j, co, ci]
    qk = np.moveaxis(q, 1, -1).reshape(-1, algo.mults, params.cin).transpose(1, 0, 2)
    wk = params.weights.transpose(0, 2, 1)  # (m, cin, cout)
    acc = _exact_matmul(qk, wk, wd.acc_bound)  # (m, n*grid, cout)
    acc = acc.transpose(1, 2, 0).reshape(n, *grid, params.cout, algo.mults)
    acc = np.moveaxis(acc, -2, 1)
    check_bound("acc", acc, -wd.acc_bound, wd.acc_bound)

    dt = _dtype_for(wd.rescaled_bound * 2)
    rescaled = acc.astype(dt) * params.rescale_mult.T[None, :, None, None, :].astype(dt)
    check_bound("acc * rescale_mult", rescaled, -wd.rescaled_bound, wd.rescaled_bound)
    z = rshift_round(rescaled, params.rescale_shift)
    check_bound("z", z, -wd.z_bound, wd.z_bound)

    y = _exact_matmul(z, algo.at_int.T, int(wd.y_bound.max()))
    check_bound("y = A^T z", y, -wd.y_bound, wd.y_bound)

    out_tiles = _requantize_output(y, params, wd, channel_axis=1)
    out = assemble_tiles(out_tiles, algo, outs, grid)
    if not return_stages:
        return out
    return out, LayerStages(tiles, v, q, acc, z, y, out_tiles, out)


def _requantize_output(y, params: LayerQuant, wd, channel_axis: int):
    """``sat(rshift((y + bias) * out_mult, out_shift), out_bits)`` with ReLU; bounds asserted."""
    shape = [1] * y.ndim
    shape[channel_axis] = -1
    dt = _dtype_for(wd.out_product_bound * 2)
    biased = y.astype(dt) + params.bias.reshape(shape).astype(dt)
    check_bound("y + bias", biased, -wd.biased_bound, wd.biased_bound)
    oprod = biased * params.out_mult.reshape(shape).astype(dt)
    check_bound("(y + bias) * out_mult", oprod, -wd.out_product_bound, wd.out_product_bound)
    shifted = rshift_round(oprod, params.out_shift.reshape(shape))
    out = saturate(shifted, params.config.out_bits, params.relu)
    return out.astype(np.int64) if params.config.out_bits <= 63 else out


def _conv2d_direct(x: np.ndarray, params: LayerQuant, stride: int, return_stages: bool):
    """Direct mode (docs/datapath.md): ``acc = sum_{ky,kx,ci} q(x) W``, ``y = z``."""
    check_int("stride", stride, 1)
    cfg, wd, k, pad = params.config, params.widths, params.kernel, params.padding
    n, cin, h, w = x.shape
    ho, wo = output_size(h, k, pad, stride), output_size(w, k, pad, stride)
    check_bound("v = x", x, wd.v_lo, wd.v_hi)
    dt = _dtype_for(wd.act_product_bound + (1 << wd.act_product_bits))
    prod = x.astype(dt) * int(params.act_mult[0])
    check_bound("x * act_mult", prod, -wd.act_product_bound, wd.act_product_bound)
    q = saturate(rshift_round(prod, int(params.act_shift[0])), cfg.act_bits)
    qp = np.pad(q, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # q(0) = 0
    win = np.lib.stride_tricks.sliding_window_view(qp, (k, k), axis=(2, 3))
    win = win[:, :, ::stride, ::stride][:, :, :ho, :wo]  # (n, cin, ho, wo, k, k)
    patches = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, cin * k * k)
    wmat = params.weights.reshape(params.cout, cin * k * k).T
    acc = _exact_matmul(patches, wmat, wd.acc_bound).reshape(n, ho, wo, params.cout)
    acc = acc.transpose(0, 3, 1, 2)
    check_bound("acc", acc, -wd.acc_bound, wd.acc_bound)
    dt = _dtype_for(wd.rescaled_bound * 2)
    rescaled = acc.astype(dt) * params.rescale_mult[None, :, None, None].astype(dt)
    check_bound("acc * rescale_mult", rescaled, -wd.rescaled_bound, wd.rescaled_bound)
    z = rshift_round(rescaled, params.rescale_shift)
    check_bound("z", z, -wd.z_bound, wd.z_bound)
    out = _requantize_output(z, params, wd, channel_axis=1)
    if not return_stages:
        return out
    return out, LayerStages(x, x, q, acc, z, z, out, out)


def _round_shift_int(value: int, shift: int) -> int:
    return value if shift == 0 else (value + (1 << (shift - 1))) >> shift


def _clamp(value: int, bits: int, relu: bool = False) -> int:
    hi = (1 << (bits - 1)) - 1
    lo = 0 if relu else -(1 << (bits - 1))
    return min(max(value, lo), hi)


def conv2d_int8_scalar(x, params: LayerQuant, *, stride: int = 1) -> np.ndarray:
    """The same layer with plain loops over Python integers (slow; small layers only).

    Independent of :func:`conv2d_int8`: reads inputs with explicit bounds checks
    instead of padding, applies the matrices entry by entry and rounds with
    Python's unbounded integers.  ``stride`` as for :func:`conv2d_int8`.
    """
    x = check_input(x, params)
    if params.mode == "direct":
        return _direct_scalar(x, params, stride)
    algo = params.algo
    check_stride(algo, stride)
    cfg = params.config
    wd = params.widths
    m_out, r, l_in = algo.output_tile, algo.kernel, algo.input_tile
    pad = params.padding
    n_img, cin, h, w = x.shape
    ho, wo = output_size(h, r, pad, stride), output_size(w, r, pad, stride)
    bt = [[(k, int(c)) for k, c in enumerate(row) if c] for row in algo.bt_int]
    at = [[(j, int(c)) for j, c in enumerate(row) if c] for row in algo.at_int]
    weights = params.weights.tolist()
    act_mult, act_shift = params.act_mult.tolist(), params.act_shift.tolist()
    rmult = params.rescale_mult.tolist()
    out = np.zeros((n_img, params.cout, ho, wo), dtype=np.int64 if cfg.out_bits <= 63 else object)
    xl = x.tolist()

    def pixel(n: int, c: int, i: int, j: int) -> int:
        return xl[n][c][i][j] if 0 <= i < h and 0 <= j < w else 0

    def bounded(name: str, value: int, bound: int) -> int:
        if abs(value) > bound:
            raise ArithmeticError(f"{name}: {value} exceeds its derived bound {bound}")
        return value

    for n in range(n_img):
        for ty in range(0, ho, m_out):
            for tx in range(0, wo, m_out):
                q = []  # q[ci][j]
                for c in range(cin):
                    flat = [
                        pixel(n, c, ty * stride + a - pad, tx * stride + b - pad)
                        for a in range(l_in)
                        for b in range(l_in)
                    ]
                    row_q = []
                    for j, row in enumerate(bt):
                        v = sum(coef * flat[k] for k, coef in row)
                        p = bounded("v * act_mult", v * act_mult[j], wd.act_product_bound)
                        row_q.append(_clamp(_round_shift_int(p, act_shift[j]), cfg.act_bits))
                    q.append(row_q)
                for co in range(params.cout):
                    z = []
                    for j in range(algo.mults):
                        acc = sum(q[c][j] * weights[j][co][c] for c in range(cin))
                        acc = bounded("acc", acc, wd.acc_bound)
                        z.append(
                            bounded(
                                "z",
                                _round_shift_int(acc * rmult[j][co], params.rescale_shift),
                                wd.z_bound,
                            )
                        )
                    for o, row in enumerate(at):
                        oy, ox = divmod(o, m_out)
                        if ty + oy >= ho or tx + ox >= wo:
                            continue
                        y = sum(coef * z[j] for j, coef in row)
                        val = (y + int(params.bias[co])) * int(params.out_mult[co])
                        val = _round_shift_int(val, int(params.out_shift[co]))
                        out[n, co, ty + oy, tx + ox] = _clamp(val, cfg.out_bits, params.relu)
    return out


def _direct_scalar(x: np.ndarray, params: LayerQuant, stride: int) -> np.ndarray:
    """Direct mode with plain loops: each output pixel sums its ``K x K x cin`` window."""
    check_int("stride", stride, 1)
    cfg, wd, k, pad = params.config, params.widths, params.kernel, params.padding
    n_img, cin, h, w = x.shape
    ho, wo = output_size(h, k, pad, stride), output_size(w, k, pad, stride)
    xl, weights = x.tolist(), params.weights.tolist()
    mult, shift = int(params.act_mult[0]), int(params.act_shift[0])
    out = np.zeros((n_img, params.cout, ho, wo), dtype=np.int64 if cfg.out_bits <= 63 else object)

    def q(n: int, c: int, i: int, j: int) -> int:
        if not (0 <= i < h and 0 <= j < w):
            return 0
        return _clamp(_round_shift_int(xl[n][c][i][j] * mult, shift), cfg.act_bits)

    for n, co, oy, ox in np.ndindex(n_img, params.cout, ho, wo):
        acc = sum(
            q(n, c, oy * stride + ky - pad, ox * stride + kx - pad) * weights[co][c][ky][kx]
            for c in range(cin)
            for ky in range(k)
            for kx in range(k)
        )
        if abs(acc) > wd.acc_bound:
            raise ArithmeticError(f"acc: {acc} exceeds its derived bound {wd.acc_bound}")
        z = _round_shift_int(acc * int(params.rescale_mult[co]), params.rescale_shift)
        if abs(z) > wd.z_bound:
            raise ArithmeticError(f"z: {z} exceeds its derived bound {wd.z_bound}")
        val = (z + int(params.bias[co])) * int(params.out_mult[co])
        val = _round_shift_int(val, int(params.out_shift[co]))
        out[n, co, oy, ox] = _clamp(val, cfg.out_bits, params.relu)
    return out
