# amaranth: UnusedElaboratable=no

"""Tests of sfc_hls.hw.formal: Yosys miters proving the transform units equal to their matrices.

The fast subset (wino-2x2-3x3 and sfc4-4x4-3x3, every unit, one mutant each)
runs in ``make test``; every catalogue algorithm with every mutant is marked
slow (``make formal`` runs the same from the command line).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.catalog import DEFAULT_ALGORITHMS, get_algorithm
from sfc_hls.hw import formal
from sfc_hls.hw.formal import LinearForm, build_unit, prove, refute_mutant

FAST = ("wino-2x2-3x3", "sfc4-4x4-3x3")
# One mutant per fast unit, each of a different kind; the two netlist mutants
# change the unit itself (an adder made a subtractor).
FAST_MUTANTS = [
    ("wino-2x2-3x3", "input", "add-sub"),
    ("wino-2x2-3x3", "output", "coefficient"),
    ("sfc4-4x4-3x3", "input", "latency"),
    ("sfc4-4x4-3x3", "output", "add-sub"),
    ("sfc4-4x4-3x3", "digits", "coefficient"),
]
SLOW = [name for name in formal.catalogue_algorithms() if name not in FAST]


@pytest.fixture(scope="module")
def units() -> dict[tuple[str, str], formal.UnitUnderProof]:
    return {(name, kind): build_unit(name, kind) for name in FAST for kind in formal.UNITS}


def _delayed_input(cex: dict, latency: int) -> np.ndarray:
    return np.array(cex["inputs"][f"x(t-{latency})"], dtype=object)


# -- pieces ---------------------------------------------------------------------------


def test_catalogue_algorithms_are_the_2d_defaults():
    names = formal.catalogue_algorithms()
    assert set(names) == {n for n in DEFAULT_ALGORITHMS if get_algorithm(n).dims == 2}
    assert {"wino-2x2-3x3", "sfc6-7x7-3x3", "sfc6-6x6-7x7", "direct-3x3"} <= set(names)


def test_linear_form_bounds_and_delay():
    form = LinearForm.variable(0).scaled(3) - LinearForm.variable(1, 2) + LinearForm(const=5)
    assert form.bounds(-128, 127) == (3 * -128 - 127 + 5, 3 * 127 + 128 + 5)
    assert form.delayed(1).terms == {(0, 1): 3, (1, 3): -1}
    assert (form - form).terms == {} and (form - form).const == 0
    assert form.evaluate({(0, 0): 2, (1, 2): 1}) == 10


def test_reference_is_exact_for_extreme_inputs():
    """The reference width holds every row at the inputs that maximise its magnitude."""
    matrix = get_algorithm("wino-4x4-3x3").at_int
    width = formal.reference_width(matrix, 24)
    extreme = np.abs(matrix).sum(axis=1).max() * 2**23
    assert extreme < 2 ** (width - 1)
    text = formal.reference_verilog(matrix, 24)
    assert f"wire signed [{width - 1}:0] y0 = {width}'sd0" in text


# -- proofs ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", formal.UNITS)
@pytest.mark.parametrize("name", FAST)
def test_fast_units_are_proven(units, name, kind):
    results = prove(units[name, kind])
    assert [r.check for r in results] == ["equivalence", "stall-together"]
    assert all(r.result == "PROVEN" for r in results), [r.line() for r in results]
    assert f"{units[name, kind].n_rows} rows = T x exactly" in results[0].detail


def test_digit_network_is_proven_on_the_digits_range_only(units):
    """The digit network's widths come from the digits' range (top digit signed, the
    others unsigned): over the whole signed range of its input width some adder wraps."""
    unit = units["sfc4-4x4-3x3", "digits"]
    lo, hi = unit.in_range
    assert (lo, hi) == (-32, 63) and unit.in_bits == 7  # DigitPlan(24, 4): 6-bit digits
    result = prove(replace(unit, in_range=None))[0]
    assert result.result == "FAILED" and "wraps" in result.detail, result.line()


@pytest.mark.parametrize(("name", "kind", "mutant"), FAST_MUTANTS)
def test_fast_mutants_are_refuted(units, name, kind, mutant):
    unit = units[name, kind]
    result = refute_mutant(unit, mutant)
    assert result.result == "REFUTED", result.line()
    cex = result.counterexample
    assert cex["dut"] != cex["reference"]
    if mutant == "add-sub":  # the reference is intact: Yosys's value is T x at the input
        x = _delayed_input(cex, unit.latency)
        assert cex["reference"] == int(unit.matrix[cex["row"]] @ x)
    if mutant == "coefficient":  # the unit is intact: its value is T x
        x = _delayed_input(cex, unit.latency)
        assert cex["dut"] == int(unit.matrix[cex["row"]] @ x)


def test_wrong_matrix_is_not_proven(units):
    """The proof depends on the matrix: the right unit against a wrong T fails."""
    unit = units["wino-2x2-3x3", "input"]
    matrix = unit.matrix.copy()
    matrix[3, 5] = -matrix[3, 5] if matrix[3, 5] else 2
    (result, _) = prove(replace(unit, matrix=matrix))
    assert result.result == "FAILED" and "row 3" in result.detail
    assert result.counterexample["row"] == 3


def test_sat_method_agrees_on_the_smallest_unit(units):
    """Bit-level ``sat -seq`` per row (feasible only for a few terms per row) proves it too."""
    (result, stall) = prove(units["wino-2x2-3x3", "input"], method="sat")
    assert (result.method, result.result, stall.result) == ("sat", "PROVEN", "PROVEN")


class _Truncating(wiring.Component):
    """``y = x0 + x1`` registered into 8 bits: wraps for large inputs."""

    def __init__(self) -> None:
        def layout(n: int) -> data.StructLayout:
            return data.StructLayout({"data": data.ArrayLayout(signed(8), n)})

        super().__init__(
            {"i_x": In(stream.Signature(layout(2))), "o_y": Out(stream.Signature(layout(1)))}
        )

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i_x.ready.eq(1)
        m.d.sync += [
            self.o_y.payload.data[0].eq(self.i_x.payload.data[0] + self.i_x.payload.data[1]),
            self.o_y.valid.eq(self.i_x.valid),
        ]
        return m


def test_a_wrapping_unit_fails_with_a_counterexample():
    unit = formal.UnitUnderProof(
        algorithm="toy",
        unit="input",
        matrix=np.array([[1, 1]], dtype=object),
        in_bits=8,
        latency=1,
        out_width=8,
        adders=1,
        rtlil=rtlil.convert(_Truncating(), name="formal_dut"),
    )
    (result, stall) = prove(unit)
    assert result.result == "FAILED" and "wraps" in result.detail
    cex = result.counterexample
    x = _delayed_input(cex, 1)
    assert cex["reference"] == x.sum() and cex["dut"] == (x.sum() + 128) % 256 - 128
    assert stall.result == "FAILED"  # its register loads every cycle, not on i_x.ready


# -- command line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "parameter"),
    [
        (["--unit", "sideways"], "--unit"),
        (["--algo", "nonsense"], "--algo"),
        (["--algo", "sfc4-4-3"], "--algo"),
        (["--z-bits", "1"], "--z-bits"),
        (["--method", "guess"], "--method"),
    ],
)
def test_bad_arguments_give_one_line_naming_the_parameter(capsys, argv, parameter):
    with pytest.raises(SystemExit) as exit_info:
        formal.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and parameter in err


def test_command_line_prints_one_line_per_proof_and_writes_json(capsys, tmp_path):
    out = tmp_path / "formal.json"
    code = formal.main(
        ["--algo", "wino-2x2-3x3", "--unit", "input", "--mutants", "--json", str(out)]
    )
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wino")]
    assert len(lines) == 2 + len(formal.MUTANT_KINDS)
    records = json.loads(out.read_text())
    assert {r["check"] for r in records} == {"equivalence", "stall-together"} | {
        f"mutant:{kind}" for kind in formal.MUTANT_KINDS
    }
    assert all(r["seconds"] >= 0 for r in records)


# -- the whole catalogue (make formal runs the same) ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", formal.UNITS)
@pytest.mark.parametrize("name", SLOW)
def test_catalogue_unit_is_proven_and_mutants_refuted(name, kind):
    unit = build_unit(name, kind)
    results = prove(unit) + [refute_mutant(unit, mutant) for mutant in formal.MUTANT_KINDS]
    assert all(r.passed for r in results), [r.line() for r in results if not r.passed]
