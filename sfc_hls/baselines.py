"""Baseline algorithms: Winograd / Cook-Toom F(m, r) and direct convolution.

Winograd F(m, r) for correlation is the transpose of Toom-Cook linear
convolution of an m-term and an r-term polynomial evaluated at ``n = m + r - 1``
points (the last one usually infinity):

    A^T = V_m^T,   G = V_r,   B^T = (V^-1)^T

where ``V`` evaluates degree n-1 polynomials at the points (the point at
infinity reads the leading coefficient), ``V_m`` and ``V_r`` the m- and r-term
factors.  Constants are then folded so that every B^T row and every A^T column
is a primitive integer vector (their scale moves into G), as in Lavin & Gray.

Direct convolution is the bilinear algorithm with one product per
(output, tap) pair; for a 1-output tile ``B^T`` is the identity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from sfc_hls.bilinear import BilinearAlgorithm, check_2d_size
from sfc_hls.sfc import MAX_KERNEL

__all__ = [
    "INFINITY",
    "default_points",
    "winograd_1d",
    "winograd_2d",
    "direct_1d",
    "direct_2d",
    "MAX_WINOGRAD_POINTS",
    "MAX_WINOGRAD_POINTS_2D",
    "MAX_POINT_TERM",
]

#: Marker for the point at infinity in an interpolation point list.
INFINITY = "inf"
#: Largest number of interpolation points (n = m + r - 1) accepted.
MAX_WINOGRAD_POINTS = 16
#: Largest number of points of a 2D (nested) Winograd algorithm: beyond 12 the
#: transform coefficients grow so large (and so useless numerically) that the
#: adder-network search of F(11x11,3x3) already takes a minute.
MAX_WINOGRAD_POINTS_2D = 12
#: Largest numerator or denominator of an explicit interpolation point.
MAX_POINT_TERM = 64


def default_points(count: int) -> list[Fraction | str]:
    """``count`` points: 0, 1, -1, 2, -2, 1/2, -1/2, 3, -3, 1/3, -1/3, ... and infinity last."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    finite: list[Fraction] = [Fraction(0)]
    k = 1
    while len(finite) < count - 1:
        cands = [Fraction(k), Fraction(-k)]
        if k > 1:
            cands += [Fraction(1, k), Fraction(-1, k)]
        finite += cands
        k += 1
    return [*finite[: count - 1], INFINITY]


def _parse_points(points: Sequence, count: int) -> list[Fraction | str]:
    out: list[Fraction | str] = []
    for p in points:
        if isinstance(p, str) and p.strip().lower() in ("inf", "infinity", "oo"):
            out.append(INFINITY)
            continue
        try:
            point = Fraction(p)
        except (TypeError, ValueError, ZeroDivisionError):
            raise ValueError(f"points: {p!r} is not a rational number or 'inf'") from None
        if max(abs(point.numerator), point.denominator) > MAX_POINT_TERM:
            raise ValueError(
                f"points: {p!r} has a numerator or denominator beyond {MAX_POINT_TERM} "
                "(its transform coefficients would not fit 64 bits)"
            )
        out.append(point)
    if len(out) == count - 1 and INFINITY not in out:
        out.append(INFINITY)
    if len(out) != count:
        raise ValueError(
            f"points: F(m, r) needs n = m + r - 1 = {count} points "
            f"(or {count - 1} finite ones, infinity added), got {len(out)}"
        )
    if len(set(out)) != len(out):
        raise ValueError(f"points must be distinct, got {[str(p) for p in out]}")
    return out


def _eval_rows(points: list, terms: int) -> np.ndarray:
    """Rows evaluating a ``terms``-coefficient polynomial at the points.

    The point at infinity reads coefficient ``terms - 1``: the leading
    coefficient of the product polynomial is the product of the factors' ones.
    """
    rows = []
    for p in points:
        if p == INFINITY:
            rows.append([Fraction(int(i == terms - 1)) for i in range(terms)])
        else:
            rows.append([Fraction(p) ** i for i in range(terms)])
    return np.array(rows, dtype=object)


def _inverse(mat: np.ndarray) -> np.ndarray:
    """Exact inverse of a square Fraction matrix (Gauss-Jordan)."""
    n = mat.shape[0]
    aug = [
        [Fraction(v) for v in mat[i]] + [Fraction(int(i == j)) for j in range(n)] for i in range(n)
    ]
    for col in range(n):
        pivot = next((r for r in range(col, n) if aug[r][col] != 0), None)
        if pivot is None:
            raise ValueError("points give a singular interpolation matrix")
        aug[col], aug[pivot] = aug[pivot], aug[col]
        inv = 1 / aug[col][col]
        aug[col] = [v * inv for v in aug[col]]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                f = aug[r][col]
                aug[r] = [a - f * b for a, b in zip(aug[r], aug[col], strict=True)]
    return np.array([row[n:] for row in aug], dtype=object)


def _primitive_scale(vec) -> Fraction:
    """The positive rational c with vec / c a primitive integer vector."""
    nz = [Fraction(v) for v in vec if v != 0]
    if not nz:
        return Fraction(1)
    den = math.lcm(*(v.denominator for v in nz))
    return Fraction(math.gcd(*(int(v * den) for v in nz)), den)


def _winograd_matrices(out_tile: int, kernel: int, points: Sequence | None):
    count = out_tile + kernel - 1
    pts = default_points(count) if points is None else _parse_points(points, count)
    v = _eval_rows(pts, count)
    vm = _eval_rows(pts, out_tile)
    vr = _eval_rows(pts, kernel)
    bt = _inverse(v).T  # (n x n): product j reads input t with C[t, j]
    g = vr.copy()
    at = vm.T.copy()
    # Fold constants: primitive integer B^T rows and A^T columns, scale into G.
    for j in range(count):
        cb = _primitive_scale(bt[j])
        bt[j] = [Fraction(x) / cb for x in bt[j]]
        ca = _primitive_scale(at[:, j])
        at[:, j] = [Fraction(x) / ca for x in at[:, j]]
        g[j] = [Fraction(x) * cb * ca for x in g[j]]
    return bt, g, at, pts


def _check_winograd_args(out_tile: int, kernel: int, dims: int) -> None:
    for label, v in (("m", out_tile), ("r", kernel)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{label} must be an int, got {type(v).__name__}")
    if not 1 <= kernel <= MAX_KERNEL:
        raise ValueError(f"r (kernel size) must be in [1, {MAX_KERNEL}], got {kernel}")
    limit = MAX_WINOGRAD_POINTS if dims == 1 else MAX_WINOGRAD_POINTS_2D
    if out_tile < 1 or out_tile + kernel - 1 > limit:
        raise ValueError(
            f"m (output tile) must be >= 1 with m + r - 1 <= {limit} ({dims}D Winograd), "
            f"got m={out_tile}, r={kernel}"
        )


def _points_text(pts) -> list[str]:
    return [str(p) for p in pts]


def _points_suffix(pts, count: int) -> tuple[str, str]:
    """Name and title suffixes naming non-default interpolation points."""
    if pts == default_points(count):
        return "", ""
    text = ",".join(_points_text(pts))
    return f"@{text}", f" @ {text}"


def _tile_text(size: int, dims: int) -> str:
    """``"3"`` in 1D, ``"3x3"`` in 2D."""
    return "x".join([str(size)] * dims)


def _nested(matrix: np.ndarray, dims: int) -> np.ndarray:
    """The 1D matrix nested with itself ``dims`` times (Kronecker products)."""
    return matrix if dims == 1 else np.kron(matrix, matrix)


def _nested_algorithm(
    matrices: tuple[np.ndarray, np.ndarray, np.ndarray], *, dims: int, **fields
) -> BilinearAlgorithm:
    """The algorithm of the 1D ``(B^T, G, A^T)`` nested ``dims`` times."""
    bt, g, at = (_nested(matrix, dims) for matrix in matrices)
    return BilinearAlgorithm(dims=dims, bt=bt, g=g, at=at, **fields)


def _winograd(out_tile: int, kernel: int, points: Sequence | None, dims: int) -> BilinearAlgorithm:
    _check_winograd_args(out_tile, kernel, dims)
    bt, g, at, pts = _winograd_matrices(out_tile, kernel, points)
    name_sfx, title_sfx = _points_suffix(pts, out_tile + kernel - 1)
    m, r = _tile_text(out_tile, dims), _tile_text(kernel, dims)
    return _nested_algorithm(
        (bt, g, at),
        dims=dims,
        name=f"wino-{m}-{r}{name_sfx}",
        title=f"Winograd F({m},{r}){title_sfx}",
        family="winograd",
        output_tile=out_tile,
        kernel=kernel,
        product_groups=(" x ".join(["point"] * dims),) * bt.shape[0] ** dims,
        info={"points": _points_text(pts)},
    )


def winograd_1d(out_tile: int, kernel: int, points: Sequence | None = None) -> BilinearAlgorithm:
    """Winograd / Cook-Toom F(m, r) from interpolation points (default: :func:`default_points`)."""
    return _winograd(out_tile, kernel, points, dims=1)


def winograd_2d(out_tile: int, kernel: int, points: Sequence | None = None) -> BilinearAlgorithm:
    """Winograd F(mxm, rxr): the 1D algorithm nested with itself (Kronecker products)."""
    return _winograd(out_tile, kernel, points, dims=2)


def _direct_matrices(out_tile: int, kernel: int):
    in_tile = out_tile + kernel - 1
    bt, g, at = [], [], []
    for j in range(out_tile):
        for r in range(kernel):
            bt.append([Fraction(int(i == j + r)) for i in range(in_tile)])
            g.append([Fraction(int(t == r)) for t in range(kernel)])
            at.append([Fraction(int(o == j)) for o in range(out_tile)])
    return (
        np.array(bt, dtype=object),
        np.array(g, dtype=object),
        np.array(at, dtype=object).T,
    )


def _check_direct_args(out_tile: int, kernel: int) -> None:
    for label, v in (("M", out_tile), ("R", kernel)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{label} must be an int, got {type(v).__name__}")
    if not 1 <= kernel <= MAX_KERNEL:
        raise ValueError(f"R (kernel size) must be in [1, {MAX_KERNEL}], got {kernel}")
    if not 1 <= out_tile <= 16:
        raise ValueError(
            f"M (output tile) for direct convolution must be in [1, 16], got {out_tile}"
        )


def _direct(kernel: int, out_tile: int, dims: int) -> BilinearAlgorithm:
    _check_direct_args(out_tile, kernel)
    m, r = _tile_text(out_tile, dims), _tile_text(kernel, dims)
    if dims == 2:
        check_2d_size(f"direct ({m},{r})", out_tile + kernel - 1, (out_tile * kernel) ** 2)
    bt, g, at = _direct_matrices(out_tile, kernel)
    return _nested_algorithm(
        (bt, g, at),
        dims=dims,
        name=f"direct-{r}" if out_tile == 1 else f"direct-{m}-{r}",
        title=f"direct {r}" if out_tile == 1 else f"direct ({m},{r})",
        family="direct",
        output_tile=out_tile,
        kernel=kernel,
        product_groups=("tap",) * bt.shape[0] ** dims,
    )


def direct_1d(kernel: int, out_tile: int = 1) -> BilinearAlgorithm:
    """Direct 1D correlation: one product per (output, tap); ``B^T = I`` for ``out_tile=1``."""
    return _direct(kernel, out_tile, dims=1)


def direct_2d(kernel: int, out_tile: int = 1) -> BilinearAlgorithm:
    """Direct 2D correlation over an ``out_tile x out_tile`` tile; ``B^T = I`` for ``out_tile=1``."""
    return _direct(kernel, out_tile, dims=2)
