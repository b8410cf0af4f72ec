"""``sfc-hls algorithms [NAME ...] [--json]``: properties of algorithms as a table or JSON."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

from sfc_hls.bilinear import BilinearAlgorithm
from sfc_hls.catalog import DEFAULT_ALGORITHMS, NAME_SYNTAX, SIZE_LIMITS, get_algorithm
from sfc_hls.text_table import format_table

__all__ = ["add_arguments", "algorithm_table", "run", "truncated_ratio"]

_HEADER = (
    "name",
    "algorithm",
    "tile",
    "mults",
    "std",
    "ratio",
    "ternary B^T",
    "A^T entries",
    "B^T adds",
    "A^T adds",
    "B^T x bits",
)
_NOTE = (
    "ratio = standard / fast multiplications per tile (truncated to 2 decimals); adds after "
    "greedy pairwise CSE; B^T x bits = signed width of the widest B^T row for int8 inputs."
)


def truncated_ratio(ratio: float) -> str:
    """Ratio truncated (not rounded) to two decimals, as the SFC paper reports them."""
    return f"{math.floor(ratio * 100) / 100:.2f}x"


def _row(a: BilinearAlgorithm) -> list[str]:
    entries = sorted({abs(v) for v in a.output_transform_entries})
    entries_text = ",".join(str(v) for v in entries)
    if len(entries_text) > 18:
        entries_text = f"{len(entries)} values <= {max(entries)}"
    tile = (
        f"{a.input_tile}->{a.output_tile}"
        if a.dims == 1
        else f"{a.input_tile}x{a.input_tile}->{a.output_tile}x{a.output_tile}"
    )
    return [
        a.name,
        a.title,
        tile,
        str(a.mults),
        str(a.standard_mults),
        truncated_ratio(a.ratio),
        "yes" if a.ternary_input_transform else "no",
        "+-" + entries_text,
        str(a.input_adder_network.additions),
        str(a.output_adder_network.additions),
        str(a.input_transform_width(8)),
    ]


def algorithm_table(algos: Sequence[BilinearAlgorithm]) -> str:
    """A fixed-width text table of algorithm properties, with a note on the columns."""
    table = format_table(_HEADER, [_row(a) for a in algos], align="lll" + "rrr" + "ll" + "rrr")
    return f"{table}\n\n{_NOTE}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sfc-hls algorithms``."""
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"algorithms (default: a standard set). Names: {NAME_SYNTAX}. {SIZE_LIMITS}",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Print the table (or JSON) of the named algorithms."""
    algos = [get_algorithm(n) for n in (args.names or DEFAULT_ALGORITHMS)]
    if args.json:
        json.dump([a.summary() for a in algos], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(algorithm_table(algos))
    return 0
