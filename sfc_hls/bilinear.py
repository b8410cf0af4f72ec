"""Fast convolution as an exact bilinear algorithm.

A fast algorithm computes one output tile of a correlation
``y[p] = sum_r x[p + r] * w[r]`` as ::

    y = A^T [ (G w) (.) (B^T x) ]

with ``m`` elementwise multiplications.  1D tiles have ``M`` outputs, ``R``
kernel taps and ``L = M + R - 1`` inputs.  2D tiles are square
(``M x M`` outputs, ``R x R`` kernel, ``L x L`` inputs) and the matrices act on
row-major flattened tiles, so one representation covers separable (nested
Winograd) and non-separable (SFC's 2D symbolic DFT) algorithms alike.

All matrices are held as exact rationals (:class:`fractions.Fraction`).
Every constructor verifies the trilinear identity
``sum_j A^T[k, j] B^T[j, n] G[j, r] == [n == k + r]`` exactly before it
returns, which is equivalent to ``y == correlation(x, w)`` for all ``x, w``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np

__all__ = [
    "MAX_INPUT_TILE_2D",
    "MAX_MULTS_2D",
    "BilinearAlgorithm",
    "FractionMatrix",
    "as_int_matrix",
    "check_2d_size",
    "exact_matrix",
    "signed_width",
]

FractionMatrix = np.ndarray  # object array of Fraction

#: Largest input tile side ``L = M + R - 1`` of a 2D algorithm.  Exact
#: construction and verification cost ``m L^2 R^2`` rational products and the
#: adder-network search grows with it; within these bounds every algorithm is
#: built and summarized in seconds (SFC-6(6x6,7x7): L = 12, m = 388).
MAX_INPUT_TILE_2D = 16
#: Largest number of multiplications per 2D tile (direct 4x4 with 8x8 kernels: 1024).
MAX_MULTS_2D = 1024


def check_2d_size(title: str, input_tile: int, mults: int) -> None:
    """ValueError naming ``title`` if a 2D tile exceeds :data:`MAX_INPUT_TILE_2D` or
    :data:`MAX_MULTS_2D` (checked before the algorithm is constructed)."""
    if input_tile > MAX_INPUT_TILE_2D or mults > MAX_MULTS_2D:
        raise ValueError(
            f"{title} is too large: 2D algorithms are limited to an input tile of at most "
            f"{MAX_INPUT_TILE_2D}x{MAX_INPUT_TILE_2D} and {MAX_MULTS_2D} multiplications per "
            f"tile; it would need {input_tile}x{input_tile} and {mults}"
        )


def exact_matrix(rows: Any) -> FractionMatrix:
    """A 2D object array of :class:`Fraction` from nested sequences or an array."""
    arr = np.array(rows, dtype=object)
    if arr.ndim != 2:
        raise ValueError(f"matrix must be 2D, got shape {arr.shape}")
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        out[idx] = Fraction(v)
    return out


def as_int_matrix(mat: FractionMatrix, what: str) -> np.ndarray:
    """The int64 view of an exact matrix; ValueError if any entry is not an integer."""
    out = np.zeros(mat.shape, dtype=np.int64)
    for idx, v in np.ndenumerate(mat):
        if Fraction(v).denominator != 1:
            raise ValueError(f"{what} has the non-integer entry {v} at {idx}")
        if not -(2**63) <= int(v) < 2**63:
            raise ValueError(f"{what} has the entry {v} at {idx}, which does not fit 64 bits")
        out[idx] = int(v)
    return out


def _lcm_of_denominators(mat: FractionMatrix) -> int:
    den = 1
    for v in mat.flat:
        den = math.lcm(den, Fraction(v).denominator)
    return den


def _integer_scaled(mat: FractionMatrix) -> tuple[np.ndarray, int]:
    """``(den * mat, den)`` with ``den`` the LCM of the denominators; Python-int object array."""
    den = _lcm_of_denominators(mat)
    out = np.empty(mat.shape, dtype=object)
    for idx, v in np.ndenumerate(mat):
        out[idx] = int(Fraction(v) * den)
    return out, den


def _max_abs(mat: np.ndarray) -> int:
    return max((abs(int(v)) for v in mat.flat), default=0)


def _correlation_tensor(dims: int, out_tile: int, kernel: int) -> np.ndarray:
    """T[k, n, r] = 1 iff input n feeds output k through tap r (flattened, row-major)."""
    in_tile = out_tile + kernel - 1
    t = np.zeros((out_tile**dims, in_tile**dims, kernel**dims), dtype=np.int64)
    for k in np.ndindex(*(out_tile,) * dims):
        for r in np.ndindex(*(kernel,) * dims):
            n = tuple(a + b for a, b in zip(k, r, strict=True))
            t[
                np.ravel_multi_index(k, (out_tile,) * dims),
                np.ravel_multi_index(n, (in_tile,) * dims),
                np.ravel_multi_index(r, (kernel,) * dims),
            ] = 1
    return t


@dataclass(frozen=True, eq=False)
class BilinearAlgorithm:
    """One fast-convolution algorithm for a tile, held exactly.

    Attributes:
        name: canonical parseable name (``sfc6-7x7-3x3``, ``wino-4x4-3x3``, ``direct-3x3``).
        title: display name (``SFC-6(7x7,3x3)``).
        family: ``"sfc"``, ``"winograd"`` or ``"direct"``.
        dims: 1 or 2.
        output_tile: ``M`` (outputs per tile side).
        kernel: ``R`` (taps per kernel side).
        bt: ``B^T``, shape ``(m, L**dims)``.
        g: ``G``, shape ``(m, R**dims)``.
        at: ``A^T``, shape ``(M**dims, m)``.
        product_groups: a label per product (row of ``B^T``), e.g. ``"dft"`` or
            ``"correction"``, used in reports.
        info: construction parameters (DFT size, offsets, interpolation points).
    """

    name: str
    title: str
    family: str
    dims: int
    output_tile: int
    kernel: int
    bt: FractionMatrix
    g: FractionMatrix
    at: FractionMatrix
    product_groups: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dims not in (1, 2):
            raise ValueError(f"dims must be 1 or 2, got {self.dims!r}")
        m = self.bt.shape[0]
        expect = {
            "bt": (m, self.input_tile**self.dims),
            "g": (m, self.kernel**self.dims),
            "at": (self.output_tile**self.dims, m),
        }
        for attr, shape in expect.items():
            if getattr(self, attr).shape != shape:
                raise ValueError(
                    f"{self.name}: {attr} has shape {getattr(self, attr).shape}, expected {shape}"
                )
        if len(self.product_groups) != m:
            raise ValueError(f"{self.name}: product_groups has {len(self.product_groups)} labels")
        self.verify()

    # ------------------------------------------------------------------ geometry
    @property
    def input_tile(self) -> int:
        """``L = M + R - 1``: inputs per tile side."""
        return self.output_tile + self.kernel - 1

    @property
    def mults(self) -> int:
        """Elementwise multiplications per tile (``m``)."""
        return int(self.bt.shape[0])

    @property
    def standard_mults(self) -> int:
        """Multiplications of direct convolution for the same outputs: ``M^d R^d``."""
        return (self.output_tile * self.kernel) ** self.dims

    @property
    def ratio(self) -> float:
        """Reduction ratio ``standard_mults / mults``."""
        return self.standard_mults / self.mults

    # ------------------------------------------------------------------ verification
    def verify(self) -> None:
        """Check the trilinear identity exactly; raise ArithmeticError if it fails.

        The three matrices are scaled to integers by the LCM of their
        denominators so the check runs as exact int64 (or Python int) matrix
        products.
        """
        (bt_i, d_b), (g_i, d_g), (at_i, d_a) = (
            _integer_scaled(x) for x in (self.bt, self.g, self.at)
        )
        bound = max(1, _max_abs(bt_i)) * max(1, _max_abs(g_i)) * max(1, _max_abs(at_i))
        scale = d_b * d_g * d_a
        t = _correlation_tensor(self.dims, self.output_tile, self.kernel)
        if bound * self.mults < 2**62 and scale < 2**62:
            bt_i, g_i, at_i = (x.astype(np.int64) for x in (bt_i, g_i, at_i))
        else:  # exact Python integers: int64 would overflow
            t = t.astype(object)
        # P[j, n, r] = B^T[j, n] * G[j, r]; identity: A^T @ P == scale * T.
        p = (bt_i[:, :, None] * g_i[:, None, :]).reshape(self.mults, -1)
        lhs = at_i @ p
        t = t.reshape(lhs.shape)
        if not np.array_equal(lhs, t * scale):
            bad = np.argwhere(lhs != t * scale)[0]
            raise ArithmeticError(
                f"{self.name}: bilinear identity fails at output {bad[0]}, (input, tap) {bad[1]}"
            )

    # ------------------------------------------------------------------ integer views
    @cached_property
    def bt_int(self) -> np.ndarray:
        """``B^T`` as int64 (all constructors here produce integer ``B^T``)."""
        return as_int_matrix(self.bt, f"{self.name} B^T")

    @cached_property
    def at_int(self) -> np.ndarray:
        """``A^T`` as int64 (constants are folded into ``G``, so ``A^T`` is integer)."""
        return as_int_matrix(self.at, f"{self.name} A^T")

    @cached_property
    def g_float(self) -> np.ndarray:
        return np.array([[float(v) for v in row] for row in self.g], dtype=np.float64)

    @cached_property
    def bt_float(self) -> np.ndarray:
        return np.array([[float(v) for v in row] for row in self.bt], dtype=np.float64)

    @cached_property
    def at_float(self) -> np.ndarray:
        return np.array([[float(v) for v in row] for row in self.at], dtype=np.float64)

    @cached_property
    def g_denominator(self) -> int:
        """LCM of the denominators of ``G``: ``g_denominator * G`` is integer."""
        return _lcm_of_denominators(self.g)

    @cached_property
    def g_scaled_int(self) -> np.ndarray:
        """``g_denominator * G`` as exact Python-int object array."""
        return np.array(
            [[int(v * self.g_denominator) for v in row] for row in self.g], dtype=object
        )

    # ------------------------------------------------------------------ properties
    @property
    def ternary_input_transform(self) -> bool:
        """True when every entry of ``B^T`` is -1, 0 or 1 (adder-only input transform)."""
        return all(v in (-1, 0, 1) for v in self.bt.flat)

    @property
    def output_transform_entries(self) -> list[Fraction]:
        """Distinct nonzero entries of ``A^T`` (after folding constants into ``G``)."""
        return sorted({Fraction(v) for v in self.at.flat if v != 0})

    @property
    def output_transform_is_shift_add(self) -> bool:
        """True when every ``A^T`` entry is +-2^k: the output transform needs only adds and shifts."""
        for v in self.output_transform_entries:
            a = abs(v)
            if a.denominator != 1 or a.numerator & (a.numerator - 1):
                return False
        return True

    @cached_property
    def _input_row_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Per row of ``B^T``: the sums of its positive and of its negative entries' magnitudes."""
        bt, den = _integer_scaled(self.bt)  # exact Python ints
        if den != 1:
            as_int_matrix(self.bt, f"{self.name} B^T")  # names the non-integer entry
        pos = np.where(bt > 0, bt, 0).sum(axis=1)
        neg = np.where(bt < 0, -bt, 0).sum(axis=1)
        if max(_max_abs(pos), _max_abs(neg)) < 2**62:
            return pos.astype(np.int64), neg.astype(np.int64)
        return pos, neg

    def input_transform_range(self, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Exact per-row (min, max) of ``B^T x`` for signed ``bits``-bit inputs.

        A row with positive-coefficient sum ``P`` and negative-coefficient sum
        ``N`` (as magnitudes) spans ``[-(P*2^(b-1) + N*(2^(b-1)-1)), P*(2^(b-1)-1) + N*2^(b-1)]``.
        """
        pos, neg = self._input_row_sums
        if max(pos.max(initial=0), neg.max(initial=0)) >= 2 ** (62 - bits):
            pos, neg = pos.astype(object), neg.astype(object)  # exact Python ints
        lo_in, hi_in = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return pos * lo_in - neg * hi_in, pos * hi_in - neg * lo_in

    def input_transform_widths(self, bits: int = 8) -> np.ndarray:
        """Signed width of each ``B^T x`` output for ``bits``-bit inputs (from the row's L1 norm)."""
        lo, hi = self.input_transform_range(bits)
        return np.array([signed_width(int(a), int(b)) for a, b in zip(lo, hi, strict=True)])

    def input_transform_width(self, bits: int = 8) -> int:
        """Widest ``B^T x`` output for ``bits``-bit inputs."""
        return int(self.input_transform_widths(bits).max())

    def tiles(self, height: int, width: int | None = None) -> int:
        """Number of output tiles covering an ``height x width`` output map (edge tiles included)."""
        if self.dims == 1:
            return math.ceil(height / self.output_tile)
        if width is None:
            width = height
        return math.ceil(height / self.output_tile) * math.ceil(width / self.output_tile)

    def layer_mults(self, height: int, width: int, cin: int, cout: int) -> int:
        """Multiplications for a stride-1 ``height x width`` output map, ``cin -> cout`` channels.

        Counts whole edge tiles (the work a tiled engine really does).  For 1D
        algorithms ``width`` is ignored.
        """
        return self.tiles(height, width) * self.mults * cin * cout

    def layer_standard_mults(self, height: int, width: int, cin: int, cout: int) -> int:
        """Multiplications of direct convolution for the same layer."""
        spatial = height if self.dims == 1 else height * width
        return spatial * self.kernel**self.dims * cin * cout

    def layer_ratio(self, height: int, width: int, cin: int, cout: int) -> float:
        """Effective reduction ratio on a layer, edge-tile waste included."""
        return self.layer_standard_mults(height, width, cin, cout) / self.layer_mults(
            height, width, cin, cout
        )

    @cached_property
    def input_adder_network(self):  # -> AdderNetwork (import cycle avoided)
        from sfc_hls.adder_network import AdderNetwork

        return AdderNetwork.from_matrix(self.bt, name=f"{self.name}.B^T")

    @cached_property
    def output_adder_network(self):
        from sfc_hls.adder_network import AdderNetwork

        return AdderNetwork.from_matrix(self.at, name=f"{self.name}.A^T")

    def summary(self) -> dict[str, Any]:
        """Properties as a JSON-serializable dict."""
        inp = self.input_adder_network
        out = self.output_adder_network
        return {
            "name": self.name,
            "title": self.title,
            "family": self.family,
            "dims": self.dims,
            "output_tile": self.output_tile,
            "kernel": self.kernel,
            "input_tile": self.input_tile,
            "mults": self.mults,
            "standard_mults": self.standard_mults,
            "ratio": self.ratio,
            "ternary_input_transform": self.ternary_input_transform,
            "output_transform_entries": [str(v) for v in self.output_transform_entries],
            "output_transform_shift_add": self.output_transform_is_shift_add,
            "input_transform_adds": inp.additions,
            "input_transform_const_mults": inp.constant_mults,
            "output_transform_adds": out.additions,
            "output_transform_const_mults": out.constant_mults,
            "input_transform_width_int8": self.input_transform_width(8),
            "product_groups": {
                label: self.product_groups.count(label)
                for label in dict.fromkeys(self.product_groups)
            },
            "info": {
                k: (v if not isinstance(v, Fraction) else str(v)) for k, v in self.info.items()
            },
        }


def signed_width(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    w = 1
    while not (-(2 ** (w - 1)) <= lo and hi <= 2 ** (w - 1) - 1):
        w += 1
    return w
