"""Adder networks for transform matrices, with common sub-expressions shared.

A transform ``y = T x`` (B^T on an input tile, A^T on the products) becomes a
network of two-input nodes ``t = a*u + b*v``.  Sharing uses greedy pairwise
common-subexpression elimination (Paar, "Optimized arithmetic for Reed-Solomon
encoders", 1997), extended to signed and scaled coefficients:

1. every row is a sparse linear form ``{variable: coefficient}``;
2. a *pair* ``(u, v, c_v / c_u)`` occurs in a row holding ``u`` and ``v`` with
   that coefficient ratio (so ``x0 - x1`` and ``-x0 + x1`` and ``2x0 - 2x1``
   are one pair);
3. the pair that occurs in the most rows (ties: the smallest key) becomes a new
   variable, substituted into all those rows;
4. repeat until no pair occurs twice; each row's remaining terms are summed.

A shared node is ``t = a*u + b*v`` with coprime integers ``a > 0, b`` (the
reduced ratio), so an integer matrix yields an all-integer network.

Additions = shared nodes + sum over rows of (terms - 1).  Coefficients that are
+-2^k are shifts (free in hardware); other coefficients count as constant
multiplications.  The greedy method is not optimal but deterministic and the
same network drives the generated RTL, so the count is the hardware's.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["AdderNetwork", "SharedNode", "is_power_of_two"]


def is_power_of_two(c: Fraction | int) -> bool:
    """True for +-2^k, k any integer (a shift, possibly right)."""
    a = abs(Fraction(c))
    if a == 0:
        return False
    num, den = a.numerator, a.denominator
    return (num & (num - 1)) == 0 and (den & (den - 1)) == 0


@dataclass(frozen=True)
class SharedNode:
    """``t = cu * u + cv * v`` over earlier variables (inputs first, then shared nodes).

    ``cu > 0`` and ``cv`` are coprime integers: a row holding ``u`` and ``v`` in
    the ratio ``cv : cu`` uses ``t`` with an integer coefficient, so integer
    matrices give all-integer networks.
    """

    u: int
    v: int
    cu: int
    cv: int


@dataclass(frozen=True)
class AdderNetwork:
    """A shared adder network computing ``rows`` of a matrix from ``inputs`` variables.

    Attributes:
        name: label for reports.
        inputs: number of input variables (columns of the matrix).
        nodes: shared two-input nodes; node ``i`` is variable ``inputs + i``.
        rows: per output, the remaining terms ``((variable, coefficient), ...)``.
    """

    name: str
    inputs: int
    nodes: tuple[SharedNode, ...]
    rows: tuple[tuple[tuple[int, Fraction], ...], ...]

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, *, name: str = "") -> AdderNetwork:
        """Greedy pairwise CSE of ``matrix`` (rows = outputs, columns = inputs)."""
        n_in = matrix.shape[1]
        # Work on integer rows (each row scaled by the LCM of its denominators)
        # and integer-pair ratios: Fraction arithmetic would dominate the run time.
        rows: list[dict[int, int]] = []
        row_scales: list[Fraction] = []
        for row in matrix:
            entries = {j: Fraction(v) for j, v in enumerate(row) if v != 0}
            den = math.lcm(*(c.denominator for c in entries.values())) if entries else 1
            rows.append({j: int(c * den) for j, c in entries.items()})
            row_scales.append(Fraction(1, den))
        # Pair counts with a lazily invalidated max-heap: an entry is live only
        # while its count equals the current count of its pair.
        pairs: Counter = Counter()
        for row in rows:
            pairs.update(_row_pairs(row))
        heap = [(_heap_key(k, c)) for k, c in pairs.items()]
        heapq.heapify(heap)
        nodes: list[SharedNode] = []
        while heap:
            neg_count, *_, key = heapq.heappop(heap)
            if pairs.get(key, 0) != -neg_count:
                continue  # stale entry
            if -neg_count < 2:
                break
            u, v, ratio = key
            new = n_in + len(nodes)
            nodes.append(SharedNode(u, v, cu=ratio[1], cv=ratio[0]))
            touched: set = set()
            for row in rows:
                if u in row and v in row and _ratio(row[v], row[u]) == ratio:
                    # Only pairs involving u, v or the new variable change.
                    for old in (u, v):
                        for other in row:
                            if other != old and not (old == v and other == u):
                                k = _pair_key(row, old, other)
                                pairs[k] -= 1
                                touched.add(k)
                    k_uv = _pair_key(row, u, v)
                    pairs[k_uv] -= 1
                    touched.add(k_uv)
                    cu = row.pop(u)
                    del row[v]
                    row[new] = cu // ratio[1]  # exact: c_u is a multiple of the reduced den
                    for other in row:
                        if other != new:
                            k = _pair_key(row, new, other)
                            pairs[k] += 1
                            touched.add(k)
            for k in touched:
                c = pairs[k]
                if c <= 0:
                    del pairs[k]
                else:
                    heapq.heappush(heap, _heap_key(k, c))
        return cls(
            name=name,
            inputs=n_in,
            nodes=tuple(nodes),
            rows=tuple(
                tuple((k, c * scale) for k, c in sorted(r.items()))
                for r, scale in zip(rows, row_scales, strict=True)
            ),
        )

    @property
    def additions(self) -> int:
        """Two-input additions/subtractions: shared nodes plus each row's final sum."""
        return len(self.nodes) + sum(max(len(r) - 1, 0) for r in self.rows)

    @property
    def additions_without_sharing(self) -> int:
        """Additions when every row is summed on its own (no sharing)."""
        return sum(max(len(self.expand(i)) - 1, 0) for i in range(len(self.rows)))

    @property
    def constant_mults(self) -> int:
        """Multiplications by constants that are not +-2^k (shifts are free)."""
        count = sum((not is_power_of_two(n.cu)) + (not is_power_of_two(n.cv)) for n in self.nodes)
        count += sum(1 for r in self.rows for _, c in r if not is_power_of_two(c))
        return count

    def node_form(self, var: int) -> dict[int, Fraction]:
        """The linear form of a variable over the inputs."""
        if var < self.inputs:
            return {var: Fraction(1)}
        node = self.nodes[var - self.inputs]
        form = {k: node.cu * c for k, c in self.node_form(node.u).items()}
        for k, c in self.node_form(node.v).items():
            form[k] = form.get(k, Fraction(0)) + node.cv * c
        return {k: c for k, c in form.items() if c != 0}

    def expand(self, row: int) -> dict[int, Fraction]:
        """Row ``row`` as a linear form over the inputs (undoes the sharing)."""
        form: dict[int, Fraction] = {}
        for var, coef in self.rows[row]:
            for k, c in self.node_form(var).items():
                form[k] = form.get(k, Fraction(0)) + coef * c
        return {k: c for k, c in form.items() if c != 0}

    def to_matrix(self) -> np.ndarray:
        """The matrix the network computes (Fraction object array)."""
        out = np.full((len(self.rows), self.inputs), Fraction(0), dtype=object)
        for i in range(len(self.rows)):
            for k, c in self.expand(i).items():
                out[i, k] = c
        return out

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Apply the network to integer inputs ``x`` (..., inputs), exactly.

        Node and row coefficients must be integers (true for B^T and for A^T
        after folding); the result is int64 when ``x`` is.
        """
        x = np.asarray(x)
        vals: list[np.ndarray] = [x[..., i] for i in range(self.inputs)]
        for n in self.nodes:
            vals.append(n.cu * vals[n.u] + n.cv * vals[n.v])
        out = []
        for r in self.rows:
            acc = np.zeros(x.shape[:-1], dtype=x.dtype)
            for var, c in r:
                acc = acc + _int_coef(c) * vals[var]
            out.append(acc)
        return np.stack(out, axis=-1)


def _int_coef(c: Fraction) -> int:
    if c.denominator != 1:
        raise ValueError(f"evaluate needs integer coefficients, got {c}")
    return int(c)


def _ratio(num: int, den: int) -> tuple[int, int]:
    """num/den as a reduced integer pair with a positive denominator."""
    g = math.gcd(num, den)
    if den < 0:
        g = -g
    return (num // g, den // g)


def _pair_key(row: dict[int, int], a: int, b: int) -> tuple[int, int, tuple[int, int]]:
    u, v = (a, b) if a < b else (b, a)
    return (u, v, _ratio(row[v], row[u]))


def _heap_key(key: tuple[int, int, tuple[int, int]], count: int) -> tuple:
    """Max count first; ties: smallest (u, v), then positive ratios, then smallest |ratio|."""
    u, v, (num, den) = key
    return (-count, u, v, num < 0, abs(num) * 1.0 / den, key)


def _row_pairs(row: dict[int, int]) -> list[tuple[int, int, tuple[int, int]]]:
    keys = sorted(row)
    return [(u, v, _ratio(row[v], row[u])) for i, u in enumerate(keys) for v in keys[i + 1 :]]
