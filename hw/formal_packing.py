"""Formal equivalence of the packed DSP multiplier with two separate products.

:class:`~sfc_hls.hw.dsp_packing.PackedMultiplier` (one multiply
``a * (w_hi * 2**S + w_lo)``, split and corrected) is proven equal to
``(a * w_hi, a * w_lo)`` for every signed input: a miter drives the unit and a
reference written from the definition (two Verilog ``*``) from the same
inputs, and Yosys's SAT solver (``sat -prove``) shows that no input makes them
differ.  The proof is bit-level over the whole input space (for int8, the
2**24 inputs the NumPy specification :func:`sfc_hls.dsp_packing.packed_products`
is also checked on exhaustively); it takes about 4 minutes for int8 on one
core, under a second for int4 (the fast subset ``make test`` runs).

Mutants (wrong units that must be refuted, each counterexample re-checked
against the NumPy specification): ``no-borrow`` (the high product without the
low field's sign correction), ``narrow-spacing`` (the weights one bit closer:
only ``a = w_lo = -2**(bits-1)`` overflows the low field), ``swapped-fields``
(the low product read from the high field).

Command line: ``python -m sfc_hls.hw.formal_packing [--act-bits 8] [--weight-bits 8]
[--mutants] [--json OUT]``; ``make formal`` runs it after the transform proofs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed

from sfc_hls.arguments import check_int
from sfc_hls.atomic_files import write_text_atomic
from sfc_hls.dsp_packing import PackedMultiply, packed_products
from sfc_hls.hw.dsp_packing import PackedMultiplier, packed_multiply, split_packed
from sfc_hls.hw.formal import FormalError, ProofResult, _run_yosys

__all__ = ["MUTANTS", "prove_packed_multiplier", "main"]

MUTANTS = ("no-borrow", "narrow-spacing", "swapped-fields")


class _MutantMultiplier(PackedMultiplier):
    """A deliberately wrong packed multiplier (for refutation only)."""

    def __init__(self, kind: str, *, act_bits: int, weight_bits: int) -> None:
        super().__init__(act_bits=act_bits, weight_bits=weight_bits)
        self.kind = kind

    def elaborate(self, platform) -> Module:
        m = Module()
        spec = self.spec
        if self.kind == "narrow-spacing":
            spec = _NarrowSpacing(spec.act_bits, spec.weight_bits)
        product = Signal(signed(spec.product_bits))
        m.d.comb += product.eq(packed_multiply(spec, self.i.a, self.i.w_hi, self.i.w_lo))
        high_field, low, borrow = split_packed(spec, product)
        if self.kind == "no-borrow":
            borrow = 0
        m.d.comb += self.o.hi.eq(high_field + borrow)
        m.d.comb += self.o.lo.eq(high_field if self.kind == "swapped-fields" else low)
        return m


class _NarrowSpacing(PackedMultiply):
    @property
    def spacing(self) -> int:
        return self.act_bits + self.weight_bits - 1


def _miter_verilog(act_bits: int, weight_bits: int) -> str:
    """``ok`` is 1 when the unit ``pm`` gives both products of the definition."""
    p = act_bits + weight_bits
    return f"""
module miter(input signed [{act_bits - 1}:0] a, input signed [{weight_bits - 1}:0] w_hi,
             input signed [{weight_bits - 1}:0] w_lo, output ok);
  wire [{2 * p - 1}:0] o;
  pm dut(.i({{w_lo, w_hi, a}}), .o(o));
  wire signed [{p - 1}:0] want_hi = a * w_hi;
  wire signed [{p - 1}:0] want_lo = a * w_lo;
  assign ok = (o[{p - 1}:0] == want_hi) && (o[{2 * p - 1}:{p}] == want_lo);
endmodule
"""


def _signed_bin(bits: str) -> int:
    value = int(bits, 2)
    return value - (1 << len(bits)) if bits[0] == "1" else value


def _sat(unit: PackedMultiplier, workdir: Path) -> dict[str, int] | None:
    """None if Yosys proves ``ok == 1`` for every input, else the counterexample."""
    spec = unit.spec
    (workdir / "pm.v").write_text(verilog.convert(unit, name="pm"))
    (workdir / "miter.v").write_text(_miter_verilog(spec.act_bits, spec.weight_bits))
    out = _run_yosys(
        "read_verilog pm.v miter.v\nhierarchy -top miter\nproc\nflatten\nopt\n"
        "tee -o sat.log sat -prove ok 1 -show-inputs\n",
        workdir,
        "packed multiplier miter",
    )
    log = (workdir / "sat.log").read_text() + out
    if "SUCCESS" in log:
        return None
    if "FAIL" not in log:
        raise FormalError(f"yosys sat gave neither SUCCESS nor FAIL:\n{log[-2000:]}")
    found = dict(re.findall(r"^\s*\\(a|w_hi|w_lo)\s+\d+\s+\S+\s+([01]+)\s*$", log, re.M))
    return {name: _signed_bin(bits) for name, bits in found.items()}


def prove_packed_multiplier(
    act_bits: int = 8, weight_bits: int = 8, *, mutant: str | None = None
) -> ProofResult:
    """Prove the unit (``mutant=None``) or refute a mutant, with its counterexample."""
    check_int("act_bits", act_bits, 2, 18)
    check_int("weight_bits", weight_bits, 2, 18)
    if mutant is not None and mutant not in MUTANTS:
        raise ValueError(f"mutant must be one of {MUTANTS}, got {mutant!r}")
    unit = (
        PackedMultiplier(act_bits=act_bits, weight_bits=weight_bits)
        if mutant is None
        else _MutantMultiplier(mutant, act_bits=act_bits, weight_bits=weight_bits)
    )
    name = f"int{act_bits}xint{weight_bits}"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sfc-hls-formal-packing-") as tmp:
        cex = _sat(unit, Path(tmp))
    seconds = round(time.perf_counter() - start, 2)
    check = "two products" if mutant is None else f"mutant {mutant}"
    if cex is None:
        result = "PROVEN" if mutant is None else "SURVIVED"
        return ProofResult(name, "packed", check, "sat", result, seconds)
    # The counterexample must be a real one: the specification gives other products.
    hi, lo = packed_products(cex["a"], cex["w_hi"], cex["w_lo"], unit.spec)
    if int(hi) != cex["a"] * cex["w_hi"] or int(lo) != cex["a"] * cex["w_lo"]:
        raise FormalError(f"the NumPy specification disagrees with the definition at {cex}")
    detail = f"a={cex['a']} w_hi={cex['w_hi']} w_lo={cex['w_lo']}"
    result = "FAILED" if mutant is None else "REFUTED"
    return ProofResult(name, "packed", check, "sat", result, seconds, detail)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--act-bits", type=int, default=8, help="signed activation width (2..18)")
    parser.add_argument("--weight-bits", type=int, default=8, help="signed weight width (2..18)")
    parser.add_argument("--mutants", action="store_true", help="also refute the mutants")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    try:
        check_int("--act-bits", args.act_bits, 2, 18)
        check_int("--weight-bits", args.weight_bits, 2, 18)
        if args.json is not None and args.json.is_dir():
            raise ValueError(f"--json {args.json} is a directory")
        results = [prove_packed_multiplier(args.act_bits, args.weight_bits)]
        for kind in MUTANTS if args.mutants else ():
            results.append(prove_packed_multiplier(args.act_bits, args.weight_bits, mutant=kind))
    except (ValueError, FormalError) as exc:
        print(f"formal_packing: error: {exc}", file=sys.stderr)
        return 2
    for result in results:
        print(result.line(), flush=True)
    if args.json is not None:
        write_text_atomic(args.json, json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
