"""``sfc-hls generate --algo NAME --pco N -o DIR [--name TOP] [--axi]``: Verilog, manifest, lint config.

``--axi`` generates the AXI top (AXI4-Lite registers, AXI4-Stream data, an
interrupt) and its register map as a C header.

The engine comes from :func:`sfc_hls.hw.generate.generate_engine` (cached by
content); the output directory is checked before generation starts, so an
existing directory is reported at once, not after minutes of elaboration.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sfc_hls.atomic_files import check_output_directory
from sfc_hls.config import EngineConfig, add_engine_arguments
from sfc_hls.hw.generate import TOPLEVEL, check_engine_name, generate_engine

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sfc-hls generate``."""
    add_engine_arguments(parser, required=False)
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output directory (created atomically)"
    )
    parser.add_argument(
        "--name",
        default=TOPLEVEL,
        help="top module name; submodules are NAME.<block>, so engines of different names "
        "coexist in one design (default %(default)s)",
    )
    parser.add_argument(
        "--axi",
        action="store_true",
        help="wrap the engine in AXI4-Lite registers and AXI4-Stream ports (docs/integration.md) "
        "and write NAME_regs.h, the register map as a C header",
    )
    parser.add_argument(
        "--plan",
        type=Path,
        help="the engine of a plan from `sfc-hls explore` (plan.json) instead of the engine options",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output directory written by sfc-hls (nothing else)",
    )


def _config(args: argparse.Namespace) -> EngineConfig:
    """The engine of ``--plan``, or of the engine options (which ``--plan`` excludes)."""
    if args.plan is None:
        return EngineConfig.from_args(args)
    from sfc_hls.host.explore import load_plan

    defaults = argparse.ArgumentParser()
    add_engine_arguments(defaults)
    given = [
        f"--{name.replace('_', '-')}"
        for name, value in vars(defaults.parse_args([])).items()
        if getattr(args, name, value) != value
    ]
    if given:
        raise ValueError(f"{', '.join(given)}: the --plan file sets the engine; drop them")
    return load_plan(args.plan)["engine"]


def run(args: argparse.Namespace) -> int:
    """Generate the engine and copy its Verilog and manifest into the output directory."""
    config = _config(args)
    check_engine_name(args.name)
    check_output_directory(args.output, overwrite=args.force)
    result = generate_engine(
        config, args.output, overwrite=args.force, name=args.name, axi=args.axi
    )
    man = result.manifest
    print(
        f"{man['algorithm']['title']} engine, P_co={config.pco}: "
        f"{man['multipliers']['mac_array']} MAC multipliers, "
        f"{man['adders']['input_transform']} + {man['adders']['output_transform']} transform "
        f"adders, latency {man['latency']['total']} cycles"
    )
    files = [result.verilog, result.manifest_path, result.verilog.with_suffix(".vlt")]
    if args.axi:
        files.append(result.verilog.with_name(f"{args.name}_regs.h"))
    print(f"wrote {', '.join(map(str, files))}" + (" (cached)" if result.cached else ""))
    return 0
