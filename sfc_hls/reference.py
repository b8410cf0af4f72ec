"""Tile-by-tile application of a bilinear algorithm to whole tensors.

Two paths, both vectorized with NumPy:

* :func:`conv2d` / :func:`conv1d` -- float64: ``B^T``, ``G`` and ``A^T`` in
  floating point, equal to ``torch.nn.functional.conv2d`` (stride 1) to
  rounding error.
* :func:`conv2d_exact` / :func:`conv1d_exact` -- integers: ``B^T x`` in exact
  integers, ``G w`` kept rational as ``(D G) w / D`` with ``D`` the LCM of
  ``G``'s denominators, products and ``A^T`` in exact integers, one exact
  division by ``D`` at the end.  Equals integer direct convolution exactly.

Both compute correlation (CNN "convolution") with zero padding; edge tiles
read zeros past the padded input and their extra outputs are dropped.
"""

from __future__ import annotations

import math

import numpy as np

from sfc_hls.bilinear import BilinearAlgorithm

__all__ = [
    "conv1d",
    "conv1d_exact",
    "conv2d",
    "conv2d_exact",
    "assemble_tiles",
    "contract_channels",
    "direct_conv2d_int",
    "check_stride",
    "extract_tiles",
    "output_size",
]


def output_size(size: int, kernel: int, padding: int, stride: int = 1) -> int:
    """Output size for an input of ``size`` with ``padding`` on each side.

    ``floor((size + 2 padding - kernel) / stride) + 1`` (PyTorch's convention);
    ``size + 2 padding - kernel + 1`` for stride 1.
    """
    return (size + 2 * padding - kernel) // stride + 1


def check_stride(algo: BilinearAlgorithm, stride) -> int:
    """Validate ``stride`` for ``algo``: any stride >= 1 needs a 1-output tile (M = 1).

    A fast algorithm's tile computes ``M x M`` neighbouring (stride-1) outputs;
    only an algorithm with one output per tile (``direct-RxR``) can place its
    tiles at any stride (one input patch per output pixel).
    """
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
        raise ValueError(f"stride must be an int >= 1, got {stride!r}")
    if stride != 1 and algo.output_tile != 1:
        raise ValueError(
            f"stride={stride} needs an algorithm with a 1x1 output tile (e.g. "
            f"direct-{algo.kernel}x{algo.kernel}); {algo.name} has "
            f"{algo.output_tile}x{algo.output_tile}"
        )
    return stride


def _as_array(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    return x


def _check(
    x: np.ndarray, w: np.ndarray, algo: BilinearAlgorithm, padding: int, stride: int, dims: int
) -> None:
    if not isinstance(algo, BilinearAlgorithm):
        raise TypeError(f"algorithm must be a BilinearAlgorithm, got {type(algo).__name__}")
    if algo.dims != dims:
        raise ValueError(
            f"algorithm {algo.name} is {algo.dims}D; conv{dims}d needs a {dims}D algorithm"
        )
    if stride != 1:
        raise ValueError(f"stride must be 1 for the fast-convolution path, got {stride}")
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    layout = "NCHW" if dims == 2 else "NCL"
    if x.ndim != dims + 2:
        raise ValueError(f"x must be {dims + 2}D ({layout}), got shape {x.shape}")
    if w.ndim != dims + 2:
        raise ValueError(
            f"w must be {dims + 2}D (Cout, Cin{', R, R' if dims == 2 else ', R'}), got {w.shape}"
        )
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"channel mismatch: x has Cin={x.shape[1]}, w has Cin={w.shape[1]}")
    if any(k != algo.kernel for k in w.shape[2:]):
        raise ValueError(
            f"w kernel {tuple(w.shape[2:])} does not match {algo.name} (R={algo.kernel})"
        )
    for size in x.shape[2:]:
        if output_size(size, algo.kernel, padding) < 1:
            raise ValueError(
                f"input size {size} with padding {padding} is smaller than the kernel {algo.kernel}"
            )
    for name, arr in (("x", x), ("w", w)):
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"{name} must have a float or integer dtype, got {arr.dtype}")


def extract_tiles(x: np.ndarray, algo: BilinearAlgorithm, padding: int, stride: int = 1) -> tuple:
    """(tiles (N, C, *tile_grid, L**d), output sizes, tile grid): zero padding plus edge padding.

    Tile ``t`` starts at input row ``t * M * stride - padding``.  ``stride > 1``
    is allowed only for 1-output-tile algorithms (:func:`check_stride`): one
    ``R x R`` patch per output pixel, taken every ``stride`` pixels.
    """
    dims = algo.dims
    stride = check_stride(algo, stride)
    m, r, l_tile = algo.output_tile, algo.kernel, algo.input_tile
    outs = [output_size(s, r, padding, stride) for s in x.shape[2:]]
    grid = [math.ceil(o / m) for o in outs]
    # Rows needed: the last tile starts at (g - 1) * m * stride and reads l_tile rows.
    pads = [(0, 0), (0, 0)] + [
        (padding, max((g - 1) * m * stride + l_tile - s - padding, 0))
        for g, s in zip(grid, x.shape[2:], strict=True)
    ]
    xp = np.pad(x, pads)
    axes = tuple(range(2, 2 + dims))
    win = np.lib.stride_tricks.sliding_window_view(xp, (l_tile,) * dims, axis=axes)
    win = win[
        (slice(None), slice(None)) + tuple(slice(0, g * m * stride, m * stride) for g in grid)
    ]
    tiles = win.reshape(*win.shape[: 2 + dims], l_tile**dims)
    return tiles, outs, grid


def assemble_tiles(y: np.ndarray, algo: BilinearAlgorithm, outs: list[int], grid: list[int]):
    """(N, Cout, *grid, M**d) tile outputs -> (N, Cout, *outs) cropped map."""
    m = algo.output_tile
    n, co = y.shape[:2]
    if algo.dims == 1:
        return y.reshape(n, co, grid[0] * m)[:, :, : outs[0]]
    y = y.reshape(n, co, grid[0], grid[1], m, m).transpose(0, 1, 2, 4, 3, 5)
    return y.reshape(n, co, grid[0] * m, grid[1] * m)[:, :, : outs[0], : outs[1]]


def contract_channels(v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """sum_c v[n, c, *grid, k] * u[o, c, k] -> (n, o, *grid, k), one matmul per position k."""
    n, c = v.shape[:2]
    grid = v.shape[2:-1]
    k = v.shape[-1]
    vk = np.moveaxis(v, 1, -1).reshape(-1, k, c).transpose(1, 0, 2)  # (k, n*grid, c)
    uk = u.transpose(2, 1, 0)  # (k, c, o)
    prod = vk @ uk  # (k, n*grid, o)
    prod = prod.transpose(1, 2, 0).reshape(n, *grid, u.shape[0], k)
    return np.moveaxis(prod, -2, 1)


def _conv_float(x, w, algo, padding, stride, dims) -> np.ndarray:
    x = _as_array(x, "x")
    w = _as_array(w, "w")
    _check(x, w, algo, padding, stride, dims)
    tiles, outs, grid = extract_tiles(x.astype(np.float64), algo, padding)
    v = tiles @ algo.bt_float.T  # (N, C, *grid, m)
    u = w.astype(np.float64).reshape(w.shape[0], w.shape[1], -1) @ algo.g_float.T
    y = contract_channels(v, u) @ algo.at_float.T
    return assemble_tiles(y, algo, outs, grid)


def conv2d(x, w, algorithm: BilinearAlgorithm, padding: int = 0, stride: int = 1) -> np.ndarray:
    """Float64 2D correlation of ``x`` (N, Cin, H, W) with ``w`` (Cout, Cin, R, R), tile by tile.

    Equals ``torch.nn.functional.conv2d(x, w, padding=padding)`` up to float64
    rounding.  Only stride 1 (fast algorithms tile stride-1 correlation).
    """
    return _conv_float(x, w, algorithm, padding, stride, 2)


def conv1d(x, w, algorithm: BilinearAlgorithm, padding: int = 0, stride: int = 1) -> np.ndarray:
    """Float64 1D correlation of ``x`` (N, Cin, L) with ``w`` (Cout, Cin, R), tile by tile."""
    return _conv_float(x, w, algorithm, padding, stride, 1)


def _require_integer(arr: np.ndarray, name: str) -> np.ndarray:
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype for the exact path, got {arr.dtype}")
    return arr.astype(np.int64)


def _max_abs(arr: np.ndarray) -> int:
    return int(np.max(np.abs(arr.astype(object)))) if arr.size else 0


def _conv_exact(x, w, algo, padding, stride, dims) -> np.ndarray:
    x = _as_array(x, "x")
    w = _as_array(w, "w")
    _check(x, w, algo, padding, stride, dims)
    x = _require_integer(x, "x")
    w = _require_integer(w, "w")
    tiles, outs, grid = extract_tiles(x, algo, padding)
    bt = algo.bt_int
    at = algo.at_int
    den = algo.g_denominator
    g_num = algo.g_scaled_int  # object ints: den * G
    w_flat = w.reshape(w.shape[0], w.shape[1], -1)
    # Exact bounds decide whether int64 suffices (it does for int8-range data).
    v_bound = _max_abs(x) * int(np.abs(bt).sum(axis=1).max())
    u_bound = _max_abs(w) * max(sum(abs(int(c)) for c in row) for row in g_num)
    a_bound = int(np.abs(at).sum(axis=1).max())
    total = v_bound * u_bound * x.shape[1] * a_bound
    exact_dtype = np.int64 if total < 2**62 else object
    v = tiles.astype(exact_dtype) @ bt.T.astype(exact_dtype)
    u = w_flat.astype(object) @ g_num.T
    u = u.astype(exact_dtype)
    y = contract_channels(v, u) @ at.T.astype(exact_dtype)
    if np.any(y % den != 0):
        raise ArithmeticError(f"{algo.name}: result not divisible by D={den}; algorithm broken")
    y = y // den
    return assemble_tiles(y, algo, outs, grid).astype(np.int64)


def conv2d_exact(
    x, w, algorithm: BilinearAlgorithm, padding: int = 0, stride: int = 1
) -> np.ndarray:
    """Exact integer 2D correlation through the algorithm's integer pipeline (int64 result)."""
    return _conv_exact(x, w, algorithm, padding, stride, 2)


def conv1d_exact(
    x, w, algorithm: BilinearAlgorithm, padding: int = 0, stride: int = 1
) -> np.ndarray:
    """Exact integer 1D correlation through the algorithm's integer pipeline (int64 result)."""
    return _conv_exact(x, w, algorithm, padding, stride, 1)


def direct_conv2d_int(x: np.ndarray, w: np.ndarray, padding: int = 0) -> np.ndarray:
    """Plain integer 2D correlation (int64), the reference the exact paths must equal."""
    x = _require_integer(_as_array(x, "x"), "x")
    w = _require_integer(_as_array(w, "w"), "w")
    r = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (r, r), axis=(2, 3))
    return np.einsum("ncijab,ocab->noij", win, w, optimize=True)
