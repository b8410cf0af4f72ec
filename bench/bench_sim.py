"""Benchmark: the default engine in Verilator -- build time, simulation speed, `make sim`.

Builds the default engine (EngineConfig(): SFC-6(7x7,3x3), P_co=4) from
scratch into a fresh build directory (no cached Verilator build; ccache
disabled unless --ccache), runs the engine regression and reports the
Verilog generation time, Verilator build time, simulated cycles per second
and the wall time of the whole regression (what `make sim` runs).  Writes
bench/results/sim.{json,md}.

    python bench/bench_sim.py [--ccache]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from sfc_hls.config import EngineConfig
from sfc_hls.sim.engine_regression import run_regression

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccache", action="store_true", help="allow ccache (warm builds)")
    args = parser.parse_args()
    if not args.ccache:
        os.environ["SFC_HLS_CCACHE"] = "0"
    config = EngineConfig()
    with tempfile.TemporaryDirectory(prefix="sfc-hls-bench-") as tmp:
        t0 = time.perf_counter()
        report = run_regression(config, layers=4, seed=1, build_root=Path(tmp))
        wall = time.perf_counter() - t0
    layers = report["layers"] + [report["throughput"], report["reset"]]
    cycles = sum(e["cycles"] for e in layers)
    row = {
        "engine": config.to_dict(),
        "generation_s": report["generation_seconds"],
        "verilator_build_s": report["build_seconds"],
        "simulation_s": report["test_seconds"],
        "simulated_cycles": cycles,
        "cycles_per_second": cycles / report["test_seconds"],
        "regression_wall_s": wall,
        "bit_exact": all(e["bit_exact"] for e in layers),
        "ccache": args.ccache,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(row, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sim.json").write_text(json.dumps(row, indent=2))
    md = [
        "| default engine SFC-6(7x7,3x3), P_co=4 | value |",
        "|---|---|",
        f"| Verilog generation (s, cached after the first run) | {row['generation_s']:.1f} |",
        f"| Verilator build from scratch (s) | {row['verilator_build_s']:.1f} |",
        f"| simulation (s) | {row['simulation_s']:.1f} |",
        f"| simulated cycles | {cycles} |",
        f"| simulated cycles per wall second (incl. per-test set-up: cocotb start, engine model, golden model) | {row['cycles_per_second']:.0f} |",
        f"| regression wall time (s) | {wall:.1f} |",
    ]
    (RESULTS / "sim.md").write_text("\n".join(md) + "\n")
    print(f"wrote {RESULTS}/sim.{{json,md}}")


if __name__ == "__main__":
    main()
