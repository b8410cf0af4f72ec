"""The ``sfc-hls`` command line: a registry of subcommands, each imported only when chosen.

Every subcommand is a module with ``add_arguments(parser)`` and
``run(args) -> int`` (:data:`SUBCOMMANDS` names it; ``sfc-hls --help`` lists
them without importing any).  The CLI owns the error handling of all of them:
a bad argument, a bad input file or an OS error (read-only or full disk, a
directory where a file should go) ends the command with exit code 2 and one
line ``sfc-hls <command>: error: <message>`` on stderr; Ctrl-C or SIGTERM end
it with 130 / 143 after the atomic writers removed their temporaries.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NoReturn

__all__ = ["SUBCOMMANDS", "Subcommand", "main"]


@dataclass(frozen=True)
class Subcommand:
    """One ``sfc-hls`` subcommand: its name, the module implementing it and its help texts."""

    name: str
    module: str
    help: str
    description: str


SUBCOMMANDS = (
    Subcommand(
        "algorithms",
        "sfc_hls.commands.algorithms",
        "table of algorithm properties",
        "Properties of fast-convolution algorithms (the default table when no name is given).",
    ),
    Subcommand(
        "show",
        "sfc_hls.commands.show",
        "print one algorithm's matrices",
        "Print B^T, G and A^T of one algorithm.",
    ),
    Subcommand(
        "vectors",
        "sfc_hls.commands.vectors",
        "write golden-model test vectors of one layer",
        "Run one (random or given) quantized layer through the golden model and write every "
        "stage as $readmemh .hex files, one .npz and a JSON manifest.",
    ),
    Subcommand(
        "generate",
        "sfc_hls.commands.generate",
        "generate the Verilog of a conv engine",
        "Generate one Verilog file for a conv engine plus a JSON manifest (ports, parameters, "
        "widths, latency, register map).",
    ),
    Subcommand(
        "error-study",
        "sfc_hls.host.error_study",
        "per-layer int8 error of the algorithms on the digits ResNet",
        "Quantize the 3x3 layers of the trained digits ResNet with each algorithm and report "
        "the per-layer output error against float (table, JSON, PNG).",
    ),
    Subcommand(
        "synth",
        "sfc_hls.hw.synth_report",
        "Yosys resource report of a generated engine, per block",
        "Synthesize a generated engine and its blocks with Yosys and report LUT, FF, DSP, "
        "CARRY and BRAM counts (table and JSON).",
    ),
    Subcommand(
        "estimate",
        "sfc_hls.hw.estimate",
        "LUT/FF/DSP/BRAM of an engine in milliseconds, without synthesis",
        "Estimate the resources of a generated engine from per-block models fitted to Yosys "
        "runs (bench/bench_estimator.py reports their error on held-out engines).",
    ),
    Subcommand(
        "explore",
        "sfc_hls.host.explore",
        "design-space exploration: engines and per-layer modes on a Pareto front",
        "Sweep engine configurations and per-layer fast/direct choices for a network: frames/s "
        "(cycle model), MB/frame, resources (estimator or Yosys), accuracy (error study, digits "
        "top-1); Pareto report (JSON, markdown, PNG) and the plan chosen for a budget, which "
        "`sfc-hls run --plan` and `sfc-hls generate --plan` take. Runs on Dask.",
    ),
    Subcommand(
        "run",
        "sfc_hls.host.run",
        "quantize a ResNet and run it on the accelerator (golden model or RTL)",
        "Lower a PyTorch ResNet, quantize it to int8 with calibration images and run it layer "
        "by layer on the conv engines (golden model or Verilator) and the host.",
    ),
)

#: What a subcommand may raise for bad input; the CLI turns it into one line and exit code 2.
USER_ERRORS = (ValueError, TypeError, OSError, ArithmeticError, MemoryError)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _chosen(argv: Sequence[str]) -> Subcommand | None:
    """The subcommand named by the first non-option word of ``argv``, if any."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return next((c for c in SUBCOMMANDS if c.name == word), None)


def _parser(chosen: Subcommand | None) -> argparse.ArgumentParser:
    """The parser with every subcommand listed and only ``chosen``'s options loaded."""
    parser = _Parser(
        prog="sfc-hls",
        description="Integer-exact fast convolution (SFC, Winograd, direct): "
        "algorithms, golden model and FPGA accelerator generator.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in SUBCOMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        if command is chosen:
            module = importlib.import_module(command.module)
            module.add_arguments(p)
            p.set_defaults(run=module.run)
    return parser


def error_text(exc: BaseException) -> str:
    """One line describing ``exc`` (an OS error as ``file: reason``)."""
    if isinstance(exc, MemoryError):
        text = "out of memory"
    elif isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit(143), so ``finally`` blocks and atomic writers clean up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, _frame: object) -> NoReturn:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sfc-hls``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = _chosen(argv)
    try:
        parser = _parser(chosen)
    except ImportError as exc:
        assert chosen is not None
        print(
            f"sfc-hls {chosen.name}: error: a dependency is missing ({error_text(exc)}); "
            "install sfc-hls with its extras: pip install 'sfc-hls[rtl,host]'",
            file=sys.stderr,
        )
        return 2
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else 2
    with _sigterm_as_exit():
        try:
            return args.run(args)
        except BrokenPipeError:  # the reader of stdout went away (e.g. `| head`)
            _silence_stdout()
            return 141
        except USER_ERRORS as exc:
            print(f"sfc-hls {args.command}: error: {error_text(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"sfc-hls {args.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    raise SystemExit(main())
