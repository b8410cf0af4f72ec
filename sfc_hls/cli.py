"""The ``sfc-hls`` command line.

Subcommands:

* ``sfc-hls algorithms [NAME ...] [--json]`` -- properties of algorithms
  (the default table when no name is given).
* ``sfc-hls show NAME [--json]`` -- one algorithm's matrices.
* ``sfc-hls vectors ...`` -- golden-model test vectors of one layer.
* ``sfc-hls generate --algo NAME --pco N -o DIR`` -- Verilog + manifest of an engine.
* ``sfc-hls error-study OUT`` -- int8 error of every algorithm on a real network.
* ``sfc-hls run ...`` -- a quantized ResNet on the engines (golden model or RTL).
* ``sfc-hls synth --algo NAME --pco N`` -- Yosys resources of an engine, per block.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

import numpy as np

from sfc_hls.bilinear import BilinearAlgorithm
from sfc_hls.catalog import DEFAULT_ALGORITHMS, NAME_SYNTAX, get_algorithm

__all__ = ["main", "algorithm_table"]


def _truncated_ratio(ratio: float) -> str:
    """Ratio truncated (not rounded) to two decimals, as the SFC paper reports them."""
    return f"{math.floor(ratio * 100) / 100:.2f}x"


def algorithm_table(algos: Sequence[BilinearAlgorithm]) -> str:
    """A fixed-width text table of algorithm properties."""
    header = (
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
    rows = []
    for a in algos:
        entries = sorted({abs(v) for v in a.output_transform_entries})
        entries_text = ",".join(str(v) for v in entries)
        if len(entries_text) > 18:
            entries_text = f"{len(entries)} values <= {max(entries)}"
        tile = (
            f"{a.input_tile}->{a.output_tile}"
            if a.dims == 1
            else f"{a.input_tile}x{a.input_tile}->{a.output_tile}x{a.output_tile}"
        )
        rows.append(
            (
                a.name,
                a.title,
                tile,
                str(a.mults),
                str(a.standard_mults),
                _truncated_ratio(a.ratio),
                "yes" if a.ternary_input_transform else "no",
                "+-" + entries_text,
                str(a.input_adder_network.additions),
                str(a.output_adder_network.additions),
                str(a.input_transform_width(8)),
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append("")
    lines.append(
        "ratio = standard / fast multiplications per tile (truncated to 2 decimals); adds after "
        "greedy pairwise CSE; B^T x bits = signed width of the widest B^T row for int8 inputs."
    )
    return "\n".join(lines)


def _matrix_text(mat: np.ndarray) -> list[list[str]]:
    return [[str(v) for v in row] for row in mat]


def _format_matrix(label: str, mat: np.ndarray) -> str:
    cells = _matrix_text(mat)
    width = max((len(c) for row in cells for c in row), default=1)
    body = "\n".join("  [" + " ".join(c.rjust(width) for c in row) + "]" for row in cells)
    return f"{label} ({mat.shape[0]} x {mat.shape[1]}):\n{body}"


def _cmd_algorithms(args: argparse.Namespace) -> int:
    names = args.names or list(DEFAULT_ALGORITHMS)
    algos = [get_algorithm(n) for n in names]
    if args.json:
        json.dump([a.summary() for a in algos], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(algorithm_table(algos))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
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
        f"(direct: {a.standard_mults}, {_truncated_ratio(a.ratio)})"
    )
    if a.info:
        print("construction: " + ", ".join(f"{k}={v}" for k, v in a.info.items()))
    groups = a.summary()["product_groups"]
    print("products: " + ", ".join(f"{k}: {v}" for k, v in groups.items()))
    print("matrices act on row-major flattened tiles: y = A^T [(G w) * (B^T x)]")
    print()
    print(_format_matrix("B^T", a.bt))
    print()
    print(_format_matrix("G", a.g))
    print()
    print(_format_matrix("A^T", a.at))
    return 0


def _cmd_vectors(args: argparse.Namespace) -> int:
    from sfc_hls.datapath import LayerQuant
    from sfc_hls.vectors import write_vectors

    params = LayerQuant.load(args.params) if args.params else None
    x = None
    if args.input:
        try:
            x = np.load(args.input)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read --input {args.input}: {exc}") from None
    result = write_vectors(
        args.output,
        algorithm=args.algo,
        cin=args.cin,
        cout=args.cout,
        height=args.h,
        width=args.w,
        seed=args.seed,
        batch=args.batch,
        scale_mode=args.scale_mode,
        relu=args.relu,
        padding=args.padding,
        params=params,
        x=x,
        overwrite=args.force,
    )
    layer = result.manifest["layer"]
    print(
        f"wrote {len(result.manifest['files'])} hex files, vectors.npz, params.json and "
        f"manifest.json to {result.path} ({result.manifest['algorithm']['name']}, "
        f"cin={layer['cin']} cout={layer['cout']} {layer['height']}x{layer['width']}, "
        f"{layer['tiles'][0]}x{layer['tiles'][1]} tiles)"
    )
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from sfc_hls.config import EngineConfig
    from sfc_hls.hw.generate import generate_engine

    config = EngineConfig(
        algorithm=args.algo,
        pco=args.pco,
        act_bits=args.act_bits,
        scale_mode=args.scale_mode,
        cin_max=args.cin_max,
        cout_max=args.cout_max,
    )
    result = generate_engine(config, args.output, overwrite=args.force)
    man = result.manifest
    print(
        f"{man['algorithm']['title']} engine, P_co={config.pco}: "
        f"{man['multipliers']['mac_array']} MAC multipliers, "
        f"{man['adders']['input_transform']} + {man['adders']['output_transform']} transform "
        f"adders, latency {man['latency']['total']} cycles"
    )
    print(
        f"wrote {result.verilog} and {result.manifest_path}"
        + (" (cached)" if result.cached else "")
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sfc-hls",
        description="Integer-exact fast convolution (SFC, Winograd, direct): "
        "algorithms, golden model and FPGA accelerator generator.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "algorithms",
        help="table of algorithm properties",
        description=f"Properties of fast-convolution algorithms. Names: {NAME_SYNTAX}.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="algorithms (default: a standard set)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_algorithms)
    p = sub.add_parser(
        "show",
        help="print one algorithm's matrices",
        description=f"Print B^T, G and A^T of one algorithm. Names: {NAME_SYNTAX}.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON (matrices as strings)")
    p.set_defaults(func=_cmd_show)
    p = sub.add_parser(
        "vectors",
        help="write golden-model test vectors of one layer",
        description="Run one (random or given) quantized layer through the golden model and "
        "write every stage as $readmemh .hex files, one .npz and a JSON manifest.",
    )
    p.add_argument("--algo", default="sfc6-7x7-3x3", help="algorithm name (default %(default)s)")
    p.add_argument("--cin", type=int, default=4)
    p.add_argument("--cout", type=int, default=4)
    p.add_argument("--h", type=int, default=14, help="input height")
    p.add_argument("--w", type=int, default=14, help="input width")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale-mode", choices=("pow2", "fixed"), default="pow2")
    p.add_argument("--relu", action="store_true")
    p.add_argument("--padding", type=int, default=None, help="default: R // 2")
    p.add_argument("--params", help="use this LayerQuant JSON instead of a random layer")
    p.add_argument("--input", help="use this .npy int8 input (N, Cin, H, W)")
    p.add_argument("-o", "--output", required=True, help="output directory (created atomically)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.set_defaults(func=_cmd_vectors)
    p = sub.add_parser(
        "generate",
        help="generate the Verilog of a conv engine",
        description="Generate one Verilog file for a conv engine plus a JSON manifest "
        "(ports, parameters, widths, latency, register map).",
    )
    p.add_argument("--algo", default="sfc6-7x7-3x3", help="algorithm name (default %(default)s)")
    p.add_argument("--pco", type=int, default=4, help="output channels in parallel (MAC lanes)")
    p.add_argument("--scale-mode", choices=("pow2", "fixed"), default="pow2")
    p.add_argument("--act-bits", type=int, default=8)
    p.add_argument("--cin-max", type=int, default=256)
    p.add_argument("--cout-max", type=int, default=256)
    p.add_argument("-o", "--output", required=True, help="output directory (created atomically)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.set_defaults(func=_cmd_generate)
    from sfc_hls import error_study

    p = sub.add_parser(
        "error-study",
        help="per-layer int8 error of the algorithms on the digits ResNet",
        description="Quantize the 3x3 layers of the trained digits ResNet with each algorithm "
        "and report the per-layer output error against float (table, JSON, PNG).",
    )
    error_study.add_arguments(p)
    p.set_defaults(func=error_study.run)
    from sfc_hls.hw import synth_report

    p = sub.add_parser(
        "synth",
        help="Yosys resource report of a generated engine, per block",
        description="Synthesize a generated engine and its blocks with Yosys and report LUT, FF, "
        "DSP, CARRY and BRAM counts (table and JSON).",
    )
    synth_report.add_arguments(p)
    p.set_defaults(func=synth_report.run)
    from sfc_hls.host import run as host_run

    p = sub.add_parser(
        "run",
        help="quantize a ResNet and run it on the accelerator (golden model or RTL)",
        description="Lower a PyTorch ResNet, quantize it to int8 with calibration images and run "
        "it layer by layer on the conv engines (golden model or Verilator) and the host.",
    )
    host_run.add_arguments(p)
    p.set_defaults(func=host_run.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sfc-hls``; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileExistsError) as exc:
        print(f"sfc-hls {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
