"""Pipelined shift-and-add units for the transforms ``v = B^T x`` and ``y = A^T z``.

:class:`AdderNetworkUnit` turns an :class:`~sfc_hls.adder_network.AdderNetwork`
(greedy CSE of an integer matrix) into a stall-together pipeline of adders and
subtractors, without multipliers:

* every shared node ``t = cu*u + cv*v`` and every row's remaining terms become a
  sum of signed, shifted operands (a coefficient ``+-2^k`` is one operand, any
  other constant its canonical signed digits); each sum is an adder tree built
  shallowest-operands-first (a Huffman tree on adder depth, i.e. a balanced tree
  when the operands arrive together);
* signs cost nothing: a subtraction absorbs a negative operand, and a shared
  node may be held negated (``v - u`` instead of ``u - v``) when that lets
  every row using it start from a positive operand.  The signs are chosen by a
  local search; a sum that is still all-negative gets one extra subtractor
  (``0 - s``, counted in :attr:`AdderNetworkUnit.negations`).  For the
  catalogue algorithms no negation is needed, so with ``+-2^k`` coefficients
  the unit has exactly :attr:`AdderNetwork.additions` adders;
* trailing zero bits of shifted operands are kept as a pending shift, not as
  logic, and applied at the output;
* a pipeline register follows every ``adds_per_stage`` levels of adders; a
  value used in a later stage is carried through one register per stage;
* every signal's width is derived from the exact range of its linear form over
  the inputs (positive and negative coefficients summed apart), so no
  intermediate value can wrap.

:class:`InputTransform` and :class:`OutputTransform` are the ``B^T`` and
``A^T`` units of an algorithm.
"""

from __future__ import annotations

import functools
import heapq
import math
import random
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from amaranth.hdl import Module, ShapeLike, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.adder_network import AdderNetwork
from sfc_hls.arguments import check_int
from sfc_hls.bilinear import BilinearAlgorithm, signed_width
from sfc_hls.catalog import get_algorithm
from sfc_hls.hw.pipeline import StallPipeline, meta_field, meta_width

__all__ = [
    "DEFAULT_ADDS_PER_STAGE",
    "AdderNetlist",
    "AdderNetworkUnit",
    "InputTransform",
    "OutputTransform",
    "adder_netlist",
    "csd_digits",
    "meta_field",
]

#: Adder levels between pipeline registers.  Two chained carry-chain adders of
#: up to ~31 bits plus routing are estimated at 2.5-3.5 ns on UltraScale+-class
#: fabric, inside the ~300 MHz cycle the DSP-based MAC array allows anyway; one
#: level per stage would almost double the pipeline registers and the latency
#: (SFC-6(7x7,3x3): 7.6k / 27.4k register bits for B^T / A^T instead of
#: 3.9k / 14.4k, latency 6 / 9 instead of 3 / 5 cycles).
DEFAULT_ADDS_PER_STAGE = 2

#: Step limit of the search for node signs that avoid negations (see AdderNetlist).
_SIGN_SEARCH_STEPS = 20_000


def csd_digits(c: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``c``: ``(sign, shift)`` pairs, ``c == sum(sign << shift)``.

    Non-adjacent form: the fewest nonzero digits, so ``c * x`` takes
    ``len(csd_digits(c)) - 1`` adders (``5 -> [(1, 0), (1, 2)]``,
    ``-20 -> [(-1, 2), (-1, 4)]``).
    """
    if not isinstance(c, int) or isinstance(c, bool):
        raise TypeError(f"c must be an int, not {c!r}")
    digits = []
    shift = 0
    while c:
        if c & 1:
            digit = 2 - (c & 3)  # +1 when c = 1 (mod 4), -1 when c = 3 (mod 4)
            digits.append((digit, shift))
            c -= digit
        c >>= 1
        shift += 1
    return digits


# ----------------------------------------------------------------------------- netlist


@dataclass(frozen=True)
class _Wire:
    """One signal of the netlist: an input or the result of one adder.

    ``form`` is the signal's value as a linear form over the inputs, ``lo``/``hi``
    its exact range, ``level`` its adder depth.  ``op`` is ``("in", k)``,
    ``("add" | "sub", a, a_shift, b, b_shift)`` computing
    ``(a << a_shift) +- (b << b_shift)``, or ``("neg", a)`` computing ``-a``.
    """

    name: str
    form: dict[int, int]
    lo: int
    hi: int
    width: int
    level: int
    op: tuple


@dataclass(frozen=True)
class _Ref:
    """``sign * (wire << shift)``: a variable's value in terms of a wire."""

    wire: int
    shift: int
    sign: int


@dataclass
class _Tree:
    level: int
    signs: frozenset
    leaf: _Ref | None = None
    left: _Tree | None = None
    right: _Tree | None = None


class AdderNetlist:
    """Wires, stages and outputs of an adder network at a given input width (no Amaranth).

    The pure-Python description a :class:`AdderNetworkUnit` is generated from:
    widths, adder depth, :attr:`latency`, register bits and a bit-true
    :meth:`evaluate`.  Use :func:`adder_netlist` (cached) to get one.
    """

    def __init__(
        self,
        network: AdderNetwork,
        in_width: int,
        adds_per_stage: int,
        in_range: tuple[int, int] | None = None,
    ) -> None:
        self.network = network
        self.in_lo, self.in_hi = (
            (-(1 << (in_width - 1)), (1 << (in_width - 1)) - 1) if in_range is None else in_range
        )
        self.wires: list[_Wire] = []
        self.negations = 0
        n_in = network.inputs

        node_terms = [[(node.u, int(node.cu)), (node.v, int(node.cv))] for node in network.nodes]
        row_terms = [[(var, int(c)) for var, c in row] for row in network.rows]
        signs = self._choose_signs(n_in, node_terms, row_terms)

        refs: list[_Ref] = [self._input(k) for k in range(n_in)]
        for j, terms in enumerate(node_terms):
            refs.append(self._sum(refs, terms, want=signs[n_in + j], name=f"t{j}"))
        self.outputs: list[_Ref | None] = []
        for r, terms in enumerate(row_terms):
            self.outputs.append(self._sum(refs, terms, want=1, name=f"y{r}") if terms else None)

        self.depth = max((w.level for w in self.wires), default=0)
        self.latency = max(1, math.ceil(self.depth / adds_per_stage))
        self.stage = [max(1, math.ceil(w.level / adds_per_stage)) for w in self.wires]
        # Last stage in which each wire is read (latency + 1: after the last register).
        self.needed = list(self.stage)
        for index, wire in enumerate(self.wires):
            for operand in self._operands(wire.op):
                self.needed[operand] = max(self.needed[operand], self.stage[index])
        for ref in self.outputs:
            if ref is not None:
                self.needed[ref.wire] = self.latency + 1
        self.register_bits = sum(
            w.width * (need - stage)
            for w, stage, need in zip(self.wires, self.stage, self.needed, strict=True)
        )
        self.adders = sum(1 for w in self.wires if w.op[0] != "in")
        self.row_lo, self.row_hi, self.row_widths = [], [], []
        for r, ref in enumerate(self.outputs):
            form = self.value_form(ref)
            if form != {k: int(c) for k, c in network.expand(r).items()}:
                raise AssertionError(f"{network.name}: row {r} computes {form}")  # a bug here
            lo, hi = self._range(form)
            self.row_lo.append(lo)
            self.row_hi.append(hi)
            self.row_widths.append(signed_width(lo, hi) if form else 1)
        self.out_width = max(self.row_widths, default=1)

    # -- signs ---------------------------------------------------------------------
    @staticmethod
    def _leaf_signs(terms: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """``(variable, sign)`` of every signed-digit operand of a sum of terms."""
        return [(var, sign) for var, c in terms for sign, _ in csd_digits(c)]

    def _choose_signs(self, n_in, node_terms, row_terms) -> list[int]:
        """Stored sign per variable, so that as few sums as possible are all-negative.

        A sum can be formed with adders and subtractors alone iff one of its
        operands has the wanted sign (+ for rows, the node's own stored sign
        for nodes); inputs are positive, a node may be stored negated.  This is
        a satisfiability problem; it is solved by a seeded (deterministic)
        WalkSAT local search that keeps the best assignment found.  Each sum
        left infeasible costs one negation.
        """
        n_var = n_in + len(node_terms)
        sign = [1] * n_var
        sums = [(self._leaf_signs(t), n_in + j) for j, t in enumerate(node_terms)]
        sums += [(self._leaf_signs(t), None) for t in row_terms if t]
        users: list[list[int]] = [[] for _ in range(n_var)]
        flips: list[list[int]] = []  # the node variables whose flip changes each sum
        for index, (leaves, own) in enumerate(sums):
            variables = sorted({v for v, _ in leaves} | ({own} if own is not None else set()))
            for var in variables:
                users[var].append(index)
            flips.append([v for v in variables if v >= n_in])

        def bad(index: int) -> bool:
            leaves, own = sums[index]
            want = 1 if own is None else sign[own]
            return not any(s * sign[var] == want for var, s in leaves)

        # Ordered set of infeasible (and fixable) sums with O(1) insert, remove and pick.
        pool: list[int] = []
        where: dict[int, int] = {}

        def update(index: int) -> None:
            if bad(index) and flips[index]:
                if index not in where:
                    where[index] = len(pool)
                    pool.append(index)
            elif index in where:
                last = pool.pop()
                if last != index:
                    pool[where[index]] = last
                    where[last] = where[index]
                del where[index]

        for index in range(len(sums)):
            update(index)
        rng = random.Random(0)
        best, best_sign = len(pool), list(sign)
        for _ in range(_SIGN_SEARCH_STEPS):
            if not pool:
                break
            candidates = flips[pool[rng.randrange(len(pool))]]
            if rng.random() < 0.3:
                var = rng.choice(candidates)
            else:
                deltas = []
                for var in candidates:
                    before = sum(bad(i) for i in users[var])
                    sign[var] = -sign[var]
                    deltas.append((sum(bad(i) for i in users[var]) - before, var))
                    sign[var] = -sign[var]
                var = min(deltas)[1]
            sign[var] = -sign[var]
            for index in users[var]:
                update(index)
            if len(pool) < best:
                best, best_sign = len(pool), list(sign)
        return best_sign

    # -- construction --------------------------------------------------------------
    def _range(self, form: dict[int, int]) -> tuple[int, int]:
        pos = sum(c for c in form.values() if c > 0)
        neg = -sum(c for c in form.values() if c < 0)
        return pos * self.in_lo - neg * self.in_hi, pos * self.in_hi - neg * self.in_lo

    def _add_wire(self, name: str, form: dict[int, int], level: int, op: tuple) -> int:
        form = {k: c for k, c in form.items() if c}
        lo, hi = self._range(form)
        width = signed_width(lo, hi) if form else 1
        self.wires.append(_Wire(name, form, lo, hi, width, level, op))
        return len(self.wires) - 1

    def _input(self, k: int) -> _Ref:
        return _Ref(self._add_wire(f"x{k}", {k: 1}, 0, ("in", k)), 0, 1)

    def value_form(self, ref: _Ref | None) -> dict[int, int]:
        """Linear form of ``sign * (wire << shift)``."""
        if ref is None:
            return {}
        scale = ref.sign << ref.shift
        return {k: c * scale for k, c in self.wires[ref.wire].form.items()}

    def _sum(self, refs: list[_Ref], terms: list[tuple[int, int]], *, want: int, name: str) -> _Ref:
        """Adder tree for ``sum(c * var)``, shallowest operands first; result sign ``want`` if possible."""
        heap: list[tuple[int, int, _Tree]] = []
        for var, c in terms:
            base = refs[var]
            for digit, shift in csd_digits(c):
                leaf = _Ref(base.wire, base.shift + shift, base.sign * digit)
                level = self.wires[base.wire].level
                tree = _Tree(level, frozenset([leaf.sign]), leaf=leaf)
                heap.append((level, len(heap), tree))
        heapq.heapify(heap)
        seq = len(heap)
        while len(heap) > 1:
            _, _, a = heapq.heappop(heap)
            _, _, b = heapq.heappop(heap)
            tree = _Tree(max(a.level, b.level) + 1, a.signs | b.signs, left=a, right=b)
            heapq.heappush(heap, (tree.level, seq, tree))
            seq += 1
        counter = [0]
        ref = self._emit(heap[0][2], want, name, counter, top=True)
        if ref.sign != want:
            wire = self.wires[ref.wire]
            neg = self._add_wire(
                f"{name}_neg",
                {k: -c for k, c in wire.form.items()},
                wire.level + 1,
                ("neg", ref.wire),
            )
            self.negations += 1
            ref = _Ref(neg, ref.shift, -ref.sign)
        return ref

    def _emit(self, tree: _Tree, want: int, name: str, counter: list[int], top: bool) -> _Ref:
        if tree.leaf is not None:
            return tree.leaf
        assert tree.left is not None and tree.right is not None  # an inner node has both
        sign = want if want in tree.signs else -want
        a = self._emit(tree.left, sign if sign in tree.left.signs else -sign, name, counter, False)
        b = self._emit(
            tree.right, sign if sign in tree.right.signs else -sign, name, counter, False
        )
        if a.sign != sign:
            a, b = b, a  # the operand with the result's sign comes first
        common = min(a.shift, b.shift)
        wa, wb = self.wires[a.wire], self.wires[b.wire]
        sa, sb = a.shift - common, b.shift - common
        sub = b.sign != sign
        form = {k: c << sa for k, c in wa.form.items()}
        for k, c in wb.form.items():
            form[k] = form.get(k, 0) + (-(c << sb) if sub else c << sb)
        label = name if top else f"{name}_{counter[0]}"
        counter[0] += not top
        op = ("sub" if sub else "add", a.wire, sa, b.wire, sb)
        return _Ref(self._add_wire(label, form, tree.level, op), common, sign)

    @staticmethod
    def _operands(op: tuple) -> tuple[int, ...]:
        if op[0] in ("add", "sub"):
            return (op[1], op[3])
        if op[0] == "neg":
            return (op[1],)
        return ()

    # -- bit-true model ------------------------------------------------------------
    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Outputs for integer inputs ``x`` (..., inputs), every wire wrapped to its width.

        A model of the generated logic: a width too small would show up as a
        wrong result, not as an exception.
        """
        x = np.asarray(x, dtype=object)
        values: list[np.ndarray] = []

        def wrap(v: np.ndarray, width: int) -> np.ndarray:
            half = 1 << (width - 1)
            return (v + half) % (1 << width) - half

        for wire in self.wires:
            kind = wire.op[0]
            if kind == "in":
                v = x[..., wire.op[1]]
            elif kind == "neg":
                v = -values[wire.op[1]]
            else:
                _, a, sa, b, sb = wire.op
                v = (values[a] << sa) + (-(values[b] << sb) if kind == "sub" else values[b] << sb)
            values.append(wrap(v, wire.width))
        out = [
            np.zeros(x.shape[:-1], dtype=object)
            if ref is None
            else ref.sign * (values[ref.wire] << ref.shift)
            for ref in self.outputs
        ]
        return np.stack(out, axis=-1)


@functools.lru_cache(maxsize=64)
def adder_netlist(
    network: AdderNetwork,
    in_width: int,
    adds_per_stage: int = DEFAULT_ADDS_PER_STAGE,
    in_range: tuple[int, int] | None = None,
) -> AdderNetlist:
    """The (cached) netlist of ``network`` on signed ``in_width``-bit inputs.

    ``in_range`` narrows the inputs to ``[lo, hi]`` (inside the signed
    ``in_width``-bit range; default that whole range): every width is then
    derived from it (the digits of :class:`~sfc_hls.hw.digit_serial.DigitSerialTransform`).
    Building it runs the sign search and the tree construction once; the engine
    interface, the units and the reports all read the same object.
    """
    for var, coef in [(n.u, c) for n in network.nodes for c in (n.cu, n.cv)] + [
        (var, c) for row in network.rows for var, c in row
    ]:
        if Fraction(coef).denominator != 1:
            raise ValueError(
                f"network {network.name!r} has the non-integer coefficient {coef} "
                f"(on variable {var}); only integer matrices are supported"
            )
    check_int("in_width", in_width, 1)
    check_int("adds_per_stage", adds_per_stage, 1)
    if in_range is not None:
        lo, hi = in_range
        if not -(1 << (in_width - 1)) <= lo <= hi <= (1 << (in_width - 1)) - 1:
            raise ValueError(
                f"in_range must lie in the signed {in_width}-bit range, got [{lo}, {hi}]"
            )
    return AdderNetlist(network, in_width, adds_per_stage, in_range)


# ----------------------------------------------------------------------------- component


class AdderNetworkUnit(wiring.Component):
    """Pipelined shift-and-add circuit computing ``y = T x`` for an integer matrix ``T``.

    ``T`` is given as its shared adder network (``network.to_matrix()``); all
    node and row coefficients must be integers.  Coefficients ``+-2^k`` are
    shifts, other constants are built from their canonical signed digits; no
    multipliers are generated.

    Parameters
    ----------
    network : AdderNetwork
        The shared network (e.g. ``algo.input_adder_network``).
    in_width : int
        Width of the signed inputs, >= 1.
    meta_layout : ShapeLike or None
        Shape of the ``meta`` field carried from input to output with the data
        (a ``data.StructLayout`` of the engine's control fields, typically).
        ``None`` or a zero-width shape: the payloads have no ``meta`` field (a
        0-bit field would give ill-formed Verilog).
    adds_per_stage : int
        Adder levels between pipeline registers, >= 1 (default
        :data:`DEFAULT_ADDS_PER_STAGE`).
    in_range : tuple[int, int] or None
        The inputs' range ``[lo, hi]`` when narrower than signed ``in_width``
        bits (widths are derived from it; other inputs may wrap); default the whole range.

    Attributes
    ----------
    n_inputs, n_rows : int
        Columns and rows of ``T``.
    out_width : int
        Width of every signed output: the widest of :attr:`out_widths`.
    out_widths : tuple[int, ...]
        Exact signed width of each row's range over all ``in_width``-bit inputs.
    out_range : tuple[np.ndarray, np.ndarray]
        Exact per-row ``(min, max)`` of ``T x``.
    adder_depth : int
        Adders on the longest input-to-output path.
    latency : int
        ``max(1, ceil(adder_depth / adds_per_stage))`` cycles.
    adders : int
        Two-input adders and subtractors generated; equals
        ``network.additions + negations`` when all coefficients are ``+-2^k``.
    negations : int
        Sums with no operand of the wanted sign, computed as ``0 - s`` (0 for
        the catalogue algorithms).
    register_bits : int
        Flip-flops of the data path (meta and valid bits not included).
    i_layout, o_layout : data.StructLayout
        ``{"data": ArrayLayout(signed(in_width), n_inputs), "meta": meta_layout}``
        and ``{"data": ArrayLayout(signed(out_width), n_rows), "meta": meta_layout}``
        (without ``"meta"`` when there is no meta layout).

    Ports
    -----
    i_x : In(stream.Signature(i_layout))
    o_y : Out(stream.Signature(o_layout))
        ``o_y.payload.data[r] == sum_k T[r, k] * i_x.payload.data[k]`` exactly,
        with the input's ``meta``.

    Contract
    --------
    * Latency: ``latency`` cycles from the ``i_x`` handshake to ``o_y.valid``
      with the result; the output is always registered.
    * Throughput: one vector per cycle while ``o_y.ready`` is high.
    * Backpressure: stall-together (:class:`~sfc_hls.hw.pipeline.StallPipeline`):
      while ``o_y.valid & ~o_y.ready`` every stage holds and ``i_x.ready`` is
      low; ``i_x.ready`` depends combinationally on ``o_y.ready``, ``o_y.valid``
      does not.
    * Reset: ``o_y.valid`` low, stage registers zero.
    """

    def __init__(
        self,
        network: AdderNetwork,
        *,
        in_width: int,
        meta_layout: ShapeLike | None = None,
        adds_per_stage: int = DEFAULT_ADDS_PER_STAGE,
        in_range: tuple[int, int] | None = None,
    ) -> None:
        if not isinstance(network, AdderNetwork):
            raise TypeError(f"network must be an AdderNetwork, not {type(network).__name__}")
        self.network = network
        self.in_width = check_int("in_width", in_width, 1)
        self.adds_per_stage = check_int("adds_per_stage", adds_per_stage, 1)
        self.meta_layout = meta_layout

        self._netlist = adder_netlist(network, in_width, adds_per_stage, in_range)
        self.n_inputs = network.inputs
        self.n_rows = len(network.rows)
        self.out_widths = tuple(self._netlist.row_widths)
        self.out_width = self._netlist.out_width
        self.out_range = (
            np.array(self._netlist.row_lo, dtype=object),
            np.array(self._netlist.row_hi, dtype=object),
        )
        self.adder_depth = self._netlist.depth
        self.latency = self._netlist.latency
        self.adders = self._netlist.adders
        self.negations = self._netlist.negations
        self.register_bits = self._netlist.register_bits

        meta = meta_field(meta_layout)
        self.i_layout = data.StructLayout(
            {"data": data.ArrayLayout(signed(self.in_width), self.n_inputs), **meta}
        )
        self.o_layout = data.StructLayout(
            {"data": data.ArrayLayout(signed(self.out_width), self.n_rows), **meta}
        )
        super().__init__(
            {
                "i_x": In(stream.Signature(self.i_layout)),
                "o_y": Out(stream.Signature(self.o_layout)),
            }
        )

    @property
    def meta_width(self) -> int:
        """Bits of the ``meta`` field carried with the data (0 without)."""
        return meta_width(self.o_layout)

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Bit-true model of the generated logic for integer inputs ``x`` (..., n_inputs).

        Every intermediate value wraps at its generated width, as in hardware.
        """
        return self._netlist.evaluate(x)

    def elaborate(self, platform) -> Module:
        m = Module()
        net = self._netlist
        pipe = StallPipeline(m, i=self.i_x, o=self.o_y, depth=self.latency, name="pipe")
        versions: dict[tuple[int, int], object] = {}

        def at(index: int, stage: int):
            """Wire ``index`` as seen by the logic of ``stage`` (registered as needed)."""
            key = (index, stage)
            if key not in versions:
                wire = net.wires[index]
                versions[key] = pipe.register(
                    m,
                    at(index, stage - 1),
                    name=f"{wire.name}_r{stage - 1}",
                    shape=signed(wire.width),
                )
            return versions[key]

        for index, wire in enumerate(net.wires):
            stage = net.stage[index]
            kind = wire.op[0]
            if kind == "in":
                versions[(index, stage)] = self.i_x.payload.data[wire.op[1]]
                continue
            sig = Signal(signed(wire.width), name=wire.name)
            if kind == "neg":
                m.d.comb += sig.eq(-at(wire.op[1], stage))
            else:
                _, a, sa, b, sb = wire.op
                lhs, rhs = at(a, stage) << sa, at(b, stage) << sb
                m.d.comb += sig.eq(lhs - rhs if kind == "sub" else lhs + rhs)
            versions[(index, stage)] = sig

        out = self.o_y.payload.data
        for r, ref in enumerate(net.outputs):
            if ref is None:
                m.d.comb += out[r].eq(0)
            else:
                value = at(ref.wire, net.latency + 1) << ref.shift
                m.d.comb += out[r].eq(-value if ref.sign < 0 else value)
        pipe.carry_meta(m, self.i_x, self.o_y, name="meta")
        return m


# ----------------------------------------------------------------------------- transforms


def _resolve_algorithm(algorithm: BilinearAlgorithm | str) -> BilinearAlgorithm:
    if isinstance(algorithm, str):
        try:
            algo = get_algorithm(algorithm)
        except ValueError as error:
            raise ValueError(f"algorithm {algorithm!r} is not valid: {error}") from None
    elif isinstance(algorithm, BilinearAlgorithm):
        algo = algorithm
    else:
        raise TypeError(
            f"algorithm must be a BilinearAlgorithm or an algorithm name, not {algorithm!r}"
        )
    if algo.dims != 2:
        raise ValueError(
            f"algorithm must be 2D (the conv engine works on L x L tiles), "
            f"got the {algo.dims}D algorithm {algo.name!r}"
        )
    return algo


class InputTransform(AdderNetworkUnit):
    """The input transform ``v = B^T x`` of a 2D algorithm, pipelined.

    Input: one ``L x L`` tile of signed ``in_bits`` values, flattened row-major
    (``i_x.payload.data[a * L + b] = x[a][b]``).  Output: the ``m`` transform
    positions ``v[j]``, each signed :attr:`v_bits` wide, where
    ``v_bits == algo.input_transform_width(in_bits)``
    (``== DatapathWidths.v_bits``).  ``meta`` (of ``meta_layout``) travels
    with its tile.

    Latency ``ceil(adder_depth / adds_per_stage)`` cycles (at least 1); one
    tile per cycle; stall-together backpressure (``i_x.ready`` low while a
    result waits on ``o_y``).  See :class:`AdderNetworkUnit` for ports and
    attributes.  Example: SFC-6(7x7,3x3) maps 81 int8 inputs to 132 14-bit
    outputs with 406 adders.
    """

    def __init__(
        self,
        algorithm: BilinearAlgorithm | str,
        *,
        in_bits: int = 8,
        meta_layout: ShapeLike | None = None,
        adds_per_stage: int = DEFAULT_ADDS_PER_STAGE,
    ) -> None:
        self.algo = _resolve_algorithm(algorithm)
        self.in_bits = check_int("in_bits", in_bits, 2)
        super().__init__(
            self.algo.input_adder_network,
            in_width=in_bits,
            meta_layout=meta_layout,
            adds_per_stage=adds_per_stage,
        )
        self.v_bits = self.out_width
        if self.v_bits != self.algo.input_transform_width(in_bits):  # two derivations agree
            raise AssertionError(f"{self.algo.name}: v_bits {self.v_bits} disagrees with B^T")


class OutputTransform(AdderNetworkUnit):
    """The output transform ``y = A^T z`` of a 2D algorithm, pipelined.

    Input: the ``m`` transform positions ``z[j]``, signed ``z_bits`` wide.
    Output: the ``M x M`` output tile flattened row-major, each signed
    :attr:`y_bits` wide: the exact width of ``A^T z`` over every ``z_bits``-bit
    ``z``, i.e. of ``[-(P*2^(z_bits-1) + N*(2^(z_bits-1)-1)), P*(2^(z_bits-1)-1) + N*2^(z_bits-1)]``
    for a row with positive and negative coefficient sums ``P`` and ``N``.
    This is ``DatapathWidths.y_bits`` evaluated at ``z_bound = 2^(z_bits-1)``
    (the signed width of ``max row L1 * 2^(z_bits-1)``) or one bit less when
    that product is a power of two; either way it is >= ``DatapathWidths.y_bits``
    of every layer, whose ``z_bound`` is at most ``2^(z_bits-1) - 1``.

    Latency ``ceil(adder_depth / adds_per_stage)`` cycles (at least 1); one
    vector per cycle; stall-together backpressure.  See
    :class:`AdderNetworkUnit` for ports and attributes.  Example:
    SFC-6(7x7,3x3) with ``z_bits=24`` maps 132 inputs to 49 31-bit outputs
    with 621 adders.
    """

    def __init__(
        self,
        algorithm: BilinearAlgorithm | str,
        *,
        z_bits: int,
        meta_layout: ShapeLike | None = None,
        adds_per_stage: int = DEFAULT_ADDS_PER_STAGE,
    ) -> None:
        self.algo = _resolve_algorithm(algorithm)
        self.z_bits = check_int("z_bits", z_bits, 2)
        super().__init__(
            self.algo.output_adder_network,
            in_width=z_bits,
            meta_layout=meta_layout,
            adds_per_stage=adds_per_stage,
        )
        self.y_bits = self.out_width
