"""Symbolic Fourier Convolution (SFC): derivation from the symbolic DFT.

The N-point DFT (N in {3, 4, 6}) is computed in the ring ``Z[u]`` with
``u = s = exp(i pi/3)`` (``s^2 = s - 1``) for N = 3, 6 or ``u = i``
(``i^2 = -1``) for N = 4.  Every power of the N-th root of unity has
coordinates in {-1, 0, 1} in the basis {1, u}, so the input transform is
ternary.  A product of two ring elements takes 3 real multiplications, real
input symmetry halves the frequencies, and the "invalid" outputs of the
circular correlation are repaired with correction terms (one multiplication per
wrapped tap).  See docs/algorithms.md for the derivation and counts.

Constructors:

* :func:`sfc_1d` -- SFC-N(M, R).
* :func:`sfc_2d` -- SFC-N(MxM, RxR): 2D symbolic DFT with Hermitian symmetry
  for the circular x circular part, plus Kronecker products of the 1D circular
  and correction parts for the rest (``m = m_DFT2D + 2|C||K| + |K|^2``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from sfc_hls.bilinear import BilinearAlgorithm, FractionMatrix, check_2d_size

__all__ = [
    "SUPPORTED_DFT_SIZES",
    "MAX_KERNEL",
    "sfc_1d",
    "sfc_2d",
    "sfc_output_tile_range",
    "sfc_correction_plan",
    "sfc_2d_mults",
    "sfc_title",
    "sfc_name",
]

SUPPORTED_DFT_SIZES = (3, 4, 6)
#: Largest kernel size the constructors accept (the issue asks for at least 7).
MAX_KERNEL = 11


# --------------------------------------------------------------------------- ring Z[u]
@dataclass(frozen=True)
class _Ring:
    """Arithmetic on pairs (a, b) = a + b u, with u^2 = trace*u - norm (u = s or i)."""

    # u^2 = p*u + q.  s: s^2 = s - 1 -> (p, q) = (1, -1);  i: i^2 = -1 -> (0, -1).
    p: int
    q: int
    # Re(u): 1/2 for s, 0 for i.
    re_u: Fraction

    def mul(self, x: tuple, y: tuple) -> tuple:
        a, b = x
        c, d = y
        # (a + b u)(c + d u) = ac + (ad + bc) u + bd u^2
        return (a * c + b * d * self.q, a * d + b * c + b * d * self.p)

    def power(self, base: tuple, e: int) -> tuple:
        out = (1, 0)
        for _ in range(e):
            out = self.mul(out, base)
        return out

    def mul_matrix(self, c: tuple) -> np.ndarray:
        """2x2 integer matrix of multiplication by the constant c, on coordinates."""
        return np.array([list(self.mul((1, 0), c)), list(self.mul((0, 1), c))], dtype=object).T

    def re_row(self) -> np.ndarray:
        return np.array([Fraction(1), self.re_u], dtype=object)

    def product_matrix(self) -> np.ndarray:
        """Coordinates of x*y as combinations of m1 = ac, m2 = bd, m3 = (a+b)(c+d).

        s: (ac - bd) + (ad + bc + bd) s = (m1 - m2) + (m3 - m1) s
        i: (ac - bd) + (ad + bc) i      = (m1 - m2) + (m3 - m1 - m2) i
        """
        # real: ac + q*bd; imaginary: ad + bc + p*bd = (m3 - m1 - m2) + p*m2
        return np.array([[1, self.q, 0], [-1, self.p - 1, 1]], dtype=object)


def _ring_and_root(n: int) -> tuple[_Ring, tuple]:
    if n in (3, 6):
        ring = _Ring(p=1, q=-1, re_u=Fraction(1, 2))
        s = (0, 1)
        return ring, (s if n == 6 else ring.mul(s, s))
    if n == 4:
        return _Ring(p=0, q=-1, re_u=Fraction(0)), (0, 1)
    raise ValueError(f"N (DFT size) must be one of {SUPPORTED_DFT_SIZES}, got {n!r}")


# --------------------------------------------------------------------------- circular core
@dataclass(frozen=True)
class _Bilinear:
    """Unverified bilinear pieces: B^T (m x inputs), G (m x taps), A^T (outputs x m)."""

    bt: FractionMatrix
    g: FractionMatrix
    at: FractionMatrix

    @property
    def m(self) -> int:
        return self.bt.shape[0]


def _fold_constants(part: _Bilinear) -> _Bilinear:
    """Move each A^T column's content (its rational gcd) into the G row.

    Afterwards every A^T column is a primitive integer vector: the 1/N^d of the
    inverse DFT and the factor 2 of conjugate pairs live in the offline weight
    transform, so the output transform is adds and shifts.
    """
    at = part.at.copy()
    g = part.g.copy()
    for j in range(at.shape[1]):
        col = [Fraction(v) for v in at[:, j] if v != 0]
        if not col:
            continue
        den = math.lcm(*(v.denominator for v in col))
        num = math.gcd(*(int(v * den) for v in col))
        content = Fraction(num, den)
        at[:, j] = [Fraction(v) / content for v in at[:, j]]
        g[j, :] = [Fraction(v) * content for v in g[j, :]]
    return _Bilinear(part.bt, g, at)


def _circular_correlation(n: int, kernel: int, dims: int) -> _Bilinear:
    """N^d-point circular correlation c_k = sum_r x[(k + r) mod N] w[r] via the symbolic DFT.

    Inputs are the N^d circular positions, taps the R^d kernel (folded mod N by
    the DFT itself), outputs the N^d circular outputs; all flattened row-major.
    One frequency per conjugate pair {f, -f}: 1 product when f == -f (mod N),
    else 3 (Karatsuba-style product in Z[u]).
    """
    ring, root = _ring_and_root(n)
    powers = [ring.power(root, e) for e in range(n)]
    positions = list(itertools.product(range(n), repeat=dims))
    taps = list(itertools.product(range(kernel), repeat=dims))
    freqs = list(itertools.product(range(n), repeat=dims))

    def dot(f, v):
        return sum(a * b for a, b in zip(f, v, strict=True))

    bt_rows: list[list] = []
    g_rows: list[list] = []
    at_cols: list[list] = []
    seen: set = set()
    scale = Fraction(1, n**dims)
    re = ring.re_row()
    for f in freqs:
        neg = tuple((-c) % n for c in f)
        if f in seen:
            continue
        seen.update({f, neg})
        # X_f = sum_n x_n w^(f.n)  and conj(W_f) = sum_r w_r w^(-f.r): coordinates per input.
        x_coord = np.array([powers[dot(f, p) % n] for p in positions], dtype=object).T  # 2 x P
        w_coord = np.array([powers[(-dot(f, r)) % n] for r in taps], dtype=object).T  # 2 x T
        # inverse-DFT twiddles w^(-f.k) per output k
        twiddles = [powers[(-dot(f, k)) % n] for k in positions]
        if f == neg:
            # Self-conjugate: X_f and conj(W_f) are real integers (coordinate b = 0).
            assert not any(x_coord[1]) and not any(w_coord[1])
            bt_rows.append(list(x_coord[0]))
            g_rows.append(list(w_coord[0]))
            at_cols.append([scale * tw[0] for tw in twiddles])
            continue
        a, b = x_coord
        c, d = w_coord
        bt_rows += [list(a), list(b), list(a + b)]
        g_rows += [list(c), list(d), list(c + d)]
        # c_k gets 2 Re(P_f w^(-f.k)) / N^d with P_f = X_f conj(W_f) = prod @ (m1, m2, m3).
        prod = ring.product_matrix()
        cols = np.array(
            [2 * scale * (re @ ring.mul_matrix(tw) @ prod) for tw in twiddles], dtype=object
        )  # outputs x 3
        at_cols += [list(cols[:, 0]), list(cols[:, 1]), list(cols[:, 2])]
    bt = np.array(bt_rows, dtype=object)
    g = np.array(g_rows, dtype=object)
    at = np.array(at_cols, dtype=object).T
    to_frac = np.vectorize(Fraction, otypes=[object])
    return _Bilinear(to_frac(bt), to_frac(g), to_frac(at))


# --------------------------------------------------------------------------- corrections
def sfc_output_tile_range(n: int, kernel: int) -> tuple[int, int]:
    """Allowed output tile sizes M for SFC-N with an R-tap kernel (inclusive).

    From ``N - R + 1`` (pure circular, no correction) up to ``N + R - 1``: past
    that, some output of the tile would share no input with the DFT window and
    gain nothing from the circular correlation.
    """
    return max(1, n - kernel + 1), n + kernel - 1


def _corrections(p: int, n: int, kernel: int) -> list[int]:
    """Taps r whose input p + r lies outside the DFT window [0, N)."""
    return [r for r in range(kernel) if not 0 <= p + r < n]


def sfc_correction_plan(n: int, kernel: int, out_tile: int) -> tuple[int, list[list[int]]]:
    """Placement of the M outputs relative to the DFT window, and their correction taps.

    Returns ``(p0, taps)``: outputs are y[p0 .. p0 + M - 1] in DFT coordinates
    (inputs x[p0 .. p0 + L - 1]); ``taps[j]`` lists the wrapped taps of output
    ``p0 + j``.  Output p takes the circular output c[p mod N] and one
    correction product per wrapped tap:

        y[p] = c[p mod N] + sum_{r wrapped} (x[p + r] - x[(p + r) mod N]) w[r]

    ``p0`` minimizes the number of corrections; the DFT window must lie inside
    the tile (``p0 <= 0`` and ``p0 + L - 1 >= N - 1``).  Ties go to the output
    window centred closest on the DFT window.
    """
    lo, hi = sfc_output_tile_range(n, kernel)
    if not lo <= out_tile <= hi:
        raise ValueError(
            f"M (output tile) for SFC-{n} with R={kernel} must be in [{lo}, {hi}], got {out_tile}"
        )
    in_tile = out_tile + kernel - 1
    best = None
    for p0 in range(n - in_tile, 1):
        taps = [_corrections(p0 + j, n, kernel) for j in range(out_tile)]
        cost = sum(len(t) for t in taps)
        centre = abs((2 * p0 + out_tile - 1) - (n - 1))
        key = (cost, centre, -p0)
        if best is None or key < best[0]:
            best = (key, p0, taps)
    assert best is not None
    return best[1], best[2]


def _sfc_1d_parts(n: int, kernel: int, out_tile: int) -> tuple[_Bilinear, _Bilinear, int]:
    """(circular part, correction part, p0) of SFC-N(M, R) over the tile's L inputs."""
    p0, taps = sfc_correction_plan(n, kernel, out_tile)
    in_tile = out_tile + kernel - 1
    circ = _circular_correlation(n, kernel, 1)
    # Circular part embedded in the tile: DFT input n sits at tile index n - p0;
    # output j reads circular output (p0 + j) mod N.
    bt_c = np.full((circ.m, in_tile), Fraction(0), dtype=object)
    bt_c[:, -p0 : -p0 + n] = circ.bt
    at_c = np.array([circ.at[(p0 + j) % n] for j in range(out_tile)], dtype=object)
    c_part = _Bilinear(bt_c, circ.g, at_c)
    bt_k, g_k, at_k = [], [], []
    for j, rs in enumerate(taps):
        p = p0 + j
        for r in rs:
            row = [Fraction(0)] * in_tile
            row[p + r - p0] += 1
            row[(p + r) % n - p0] -= 1
            bt_k.append(row)
            g_k.append([Fraction(int(t == r)) for t in range(kernel)])
            at_k.append([Fraction(int(i == j)) for i in range(out_tile)])
    k_part = _Bilinear(
        np.array(bt_k, dtype=object).reshape(-1, in_tile),
        np.array(g_k, dtype=object).reshape(-1, kernel),
        np.array(at_k, dtype=object).reshape(-1, out_tile).T,
    )
    return c_part, k_part, p0


def _kron(x: _Bilinear, y: _Bilinear) -> _Bilinear:
    """Tensor product of two 1D bilinear algorithms (row-major 2D flattening)."""
    return _Bilinear(np.kron(x.bt, y.bt), np.kron(x.g, y.g), np.kron(x.at, y.at))


def _concat(parts: list[_Bilinear]) -> _Bilinear:
    parts = [p for p in parts if p.m]
    return _Bilinear(
        np.concatenate([p.bt for p in parts], axis=0),
        np.concatenate([p.g for p in parts], axis=0),
        np.concatenate([p.at for p in parts], axis=1),
    )


def _check_args(n: int, out_tile: int, kernel: int) -> None:
    for label, v in (("N", n), ("M", out_tile), ("R", kernel)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{label} must be an int, got {type(v).__name__}")
    if n not in SUPPORTED_DFT_SIZES:
        raise ValueError(f"N (DFT size) must be one of {SUPPORTED_DFT_SIZES}, got {n}")
    if not 1 <= kernel <= MAX_KERNEL:
        raise ValueError(f"R (kernel size) must be in [1, {MAX_KERNEL}], got {kernel}")
    lo, hi = sfc_output_tile_range(n, kernel)
    if not lo <= out_tile <= hi:
        raise ValueError(
            f"M (output tile) for SFC-{n} with R={kernel} must be in [{lo}, {hi}], got {out_tile}"
        )


def _circular_mults(n: int, dims: int) -> int:
    """Products of the N^d-point circular part: 1 per self-conjugate frequency, 3 per pair."""
    self_conjugate = sum(
        1 for f in itertools.product(range(n), repeat=dims) if all(2 * c % n == 0 for c in f)
    )
    return self_conjugate + 3 * (n**dims - self_conjugate) // 2


def sfc_2d_mults(n: int, out_tile: int, kernel: int) -> int:
    """Multiplications of SFC-N(MxM,RxR) without constructing it:
    ``m_DFT2D + 2|C||K| + |K|^2`` (see :func:`sfc_2d`)."""
    _check_args(n, out_tile, kernel)
    _, taps = sfc_correction_plan(n, kernel, out_tile)
    corrections = sum(len(t) for t in taps)
    circular = _circular_mults(n, 1)
    return _circular_mults(n, 2) + 2 * circular * corrections + corrections**2


def sfc_name(n: int, out_tile: int, kernel: int, dims: int) -> str:
    if dims == 1:
        return f"sfc{n}-{out_tile}-{kernel}"
    return f"sfc{n}-{out_tile}x{out_tile}-{kernel}x{kernel}"


def sfc_title(n: int, out_tile: int, kernel: int, dims: int) -> str:
    if dims == 1:
        return f"SFC-{n}({out_tile},{kernel})"
    return f"SFC-{n}({out_tile}x{out_tile},{kernel}x{kernel})"


def _sfc_algorithm(
    n: int,
    out_tile: int,
    kernel: int,
    *,
    dims: int,
    parts: dict[str, _Bilinear],
    info: dict,
) -> BilinearAlgorithm:
    """The SFC algorithm whose products are those of ``parts`` in order, constants
    folded; each key names its part's product group."""
    full = _fold_constants(_concat(list(parts.values())))
    return BilinearAlgorithm(
        name=sfc_name(n, out_tile, kernel, dims),
        title=sfc_title(n, out_tile, kernel, dims),
        family="sfc",
        dims=dims,
        output_tile=out_tile,
        kernel=kernel,
        bt=full.bt,
        g=full.g,
        at=full.at,
        product_groups=tuple(group for group, part in parts.items() for _ in range(part.m)),
        info=info,
    )


def sfc_1d(n: int, out_tile: int, kernel: int) -> BilinearAlgorithm:
    """SFC-N(M, R): 1D symbolic-DFT correlation with correction terms, verified exactly."""
    _check_args(n, out_tile, kernel)
    c_part, k_part, p0 = _sfc_1d_parts(n, kernel, out_tile)
    return _sfc_algorithm(
        n,
        out_tile,
        kernel,
        dims=1,
        parts={"dft": c_part, "correction": k_part},
        info={"dft_size": n, "dft_offset": -p0, "circular": c_part.m, "corrections": k_part.m},
    )


def sfc_2d(n: int, out_tile: int, kernel: int) -> BilinearAlgorithm:
    """SFC-N(MxM, RxR), verified exactly.

    Circular x circular: the 2D symbolic DFT over Z_N^2 with Hermitian
    symmetry (not the Kronecker nesting of two 1D DFTs).  The remaining three
    terms of ``(C + K) x (C + K)`` are Kronecker products of the 1D circular
    part C and correction part K.
    """
    in_tile = out_tile + kernel - 1
    check_2d_size(sfc_title(n, out_tile, kernel, 2), in_tile, sfc_2d_mults(n, out_tile, kernel))
    c_part, k_part, p0 = _sfc_1d_parts(n, kernel, out_tile)
    circ2 = _circular_correlation(n, kernel, 2)
    # Embed the N x N DFT window at (-p0, -p0) of the L x L tile.
    bt = np.full((circ2.m, in_tile, in_tile), Fraction(0), dtype=object)
    bt[:, -p0 : -p0 + n, -p0 : -p0 + n] = circ2.bt.reshape(circ2.m, n, n)
    at = np.array(
        [
            circ2.at[((p0 + j1) % n) * n + (p0 + j2) % n]
            for j1 in range(out_tile)
            for j2 in range(out_tile)
        ],
        dtype=object,
    )
    cc = _Bilinear(bt.reshape(circ2.m, -1), circ2.g, at)
    kc, ck, kk = _kron(k_part, c_part), _kron(c_part, k_part), _kron(k_part, k_part)
    return _sfc_algorithm(
        n,
        out_tile,
        kernel,
        dims=2,
        parts={
            "dft2d": cc,
            "correction x dft": kc,
            "dft x correction": ck,
            "correction x correction": kk,
        },
        info={
            "dft_size": n,
            "dft_offset": -p0,
            "dft2d": cc.m,
            "circular_1d": c_part.m,
            "corrections_1d": k_part.m,
        },
    )
