"""``sfc-hls show NAME [--json]``: one algorithm's matrices B^T, G and A^T."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from sfc_hls.catalog import NAME_SYNTAX, SIZE_LIMITS, get_algorithm
from sfc_hls.commands.algorithms import truncated_ratio

__all__ = ["add_arguments", "format_matrix", "run"]


def _matrix_text(mat: np.ndarray) -> list[list[str]]:
    return [[str(v) for v in row] for row in mat]


def format_matrix(label: str, mat: np.ndarray) -> str:
    """``label (rows x cols):`` then one bracketed, right-aligned row per line."""
    cells = _matrix_text(mat)
    width = max((len(c) for row in cells for c in row), default=1)
    body = "\n".join("  [" + " ".join(c.rjust(width) for c in row) + "]" for row in cells)
    return f"{label} ({mat.shape[0]} x {mat.shape[1]}):\n{body}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sfc-hls show``."""
    parser.add_argument("name", metavar="NAME", help=f"{NAME_SYNTAX}. {SIZE_LIMITS}")
    parser.add_argument("--json", action="store_true", help="print JSON (matrices as strings)")


def run(args: argparse.Namespace) -> int:
    """Print the algorithm's construction, counts and matrices (or JSON)."""
    a = get_algorithm(args.name)
    if args.json:
        out = a.summary()
        out.update(bt=_matrix_text(a.bt), g=_matrix_text(a.g), at=_matrix_text(a.at))
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{a.title}  [{a.name}]")
    print(
        f"tile: {a.input_tile}^{a.dims} inputs -> {a.output_tile}^{a.dims} outputs, "
        f"kernel {a.kernel}^{a.dims}; {a.mults} multiplications "
        f"(direct: {a.standard_mults}, {truncated_ratio(a.ratio)})"
    )
    if a.info:
        print("construction: " + ", ".join(f"{k}={v}" for k, v in a.info.items()))
    groups = {label: a.product_groups.count(label) for label in dict.fromkeys(a.product_groups)}
    print("products: " + ", ".join(f"{k}: {v}" for k, v in groups.items()))
    print("matrices act on row-major flattened tiles: y = A^T [(G w) * (B^T x)]")
    for label, mat in (("B^T", a.bt), ("G", a.g), ("A^T", a.at)):
        print()
        print(format_matrix(label, mat))
    return 0
