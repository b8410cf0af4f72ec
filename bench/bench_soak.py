"""Benchmark: randomized soak of generated engines in Verilator against the golden model.

Draws random engine configurations (algorithm, P_co, scale mode, channel
limits, transformed activation and weight widths, output-path width, one or
two MACs per DSP) from a
seed and, for each, until the time budget is spent:

* runs the engine regression (:func:`sfc_hls.sim.engine_regression.run_regression`)
  under cocotb: random layers of both modes (fast and direct, strides 1 and 2,
  kernels 1/3/5/7, batches, ReLU on/off) with random stalls on every stream,
  a reset in the middle of a layer of each mode, bad descriptors of both
  modes that must be refused, and a stall-free layer in the native runner;
* then more random layers in the native runner
  (:func:`sfc_hls.sim.native.run_layer`) with seeded random stalls on every
  stream, each compared bit for bit with :func:`sfc_hls.golden.conv2d_int8`.

A mismatch (an output differing from the golden model, a refused valid
layer, a hang, a failed cocotb test) is counted and recorded with the
configuration, the layer and the seed that reproduce it; the run goes on.
Writes bench/results/soak.{json,md} with an ``acceptance`` object
(``soak_configurations``, ``soak_layers``, ``soak_mismatches``; issue #16).

    python bench/bench_soak.py [--budget-seconds 1200] [--seed 0] [--max-configs N]

Each configuration costs a Verilog generation and two Verilator builds
(cocotb and native, about 1-3 minutes on 2 cores; cached, so a rerun with the
same seed is fast); the budget is checked before each configuration and each
native layer, so a run ends at most one configuration's regression late.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import RESULTS, git_commit, tool_versions  # noqa: E402

from sfc_hls.atomic_files import write_text_atomic  # noqa: E402
from sfc_hls.config import SCALE_MODES, EngineConfig  # noqa: E402
from sfc_hls.golden import conv2d_int8  # noqa: E402
from sfc_hls.hw.engine_streams import EngineStreams  # noqa: E402
from sfc_hls.sim.engine_regression import (  # noqa: E402
    default_layers,
    random_layer,
    run_regression,
)
from sfc_hls.sim.native import NativeRunError, engine_model, run_layer  # noqa: E402
from sfc_hls.text_table import format_table  # noqa: E402

#: 2D algorithms the soak draws from: every fast 3x3 family of the catalogue,
#: a 5x5 fast algorithm and the direct 3x3 engine.
SOAK_ALGORITHMS = (
    "wino-2x2-3x3",
    "wino-4x4-3x3",
    "sfc4-4x4-3x3",
    "sfc6-6x6-3x3",
    "sfc6-7x7-3x3",
    "sfc6-6x6-5x5",
    "direct-3x3",
)
#: The regression's first four layers need a 7x7 stem over one channel:
#: ``direct_reduction_max >= 49``.
STEM_REDUCTION = 49


def random_engine_config(rng: np.random.Generator) -> EngineConfig:
    """A random small engine that runs the regression's corner-case layers."""
    algorithm = str(rng.choice(SOAK_ALGORITHMS))
    pco = int(rng.integers(1, 5))
    cin_max = int(rng.choice([8, 16, 32]))
    m = EngineConfig(algorithm=algorithm, pco=1, cin_max=8, cout_max=1).algo.mults
    widths = [d for d in range(1, m + 1) if m % d == 0 and d * cin_max >= STEM_REDUCTION]
    return EngineConfig(
        algorithm=algorithm,
        pco=pco,
        cin_max=cin_max,
        cout_max=pco * int(rng.integers(1, 5)),
        scale_mode=str(rng.choice(SCALE_MODES)),
        act_bits=int(rng.choice([8, 8, 10])),
        weight_bits=int(rng.choice([8, 8, 10])),
        backend_width=None if rng.random() < 0.5 else int(rng.choice(widths)),
        macs_per_dsp=None if rng.random() < 0.7 else 1,  # None: packed where it fits
    )


def _regression(config: EngineConfig, seed: int, rng: np.random.Generator) -> dict:
    """The cocotb regression of one configuration: its layer records and failures."""
    layers = int(rng.integers(4, 7))
    pauses = (float(rng.uniform(0.0, 0.5)), float(rng.uniform(0.0, 0.5)))
    try:
        report = run_regression(
            config, layers=layers, seed=seed, input_pause=pauses[0], output_pause=pauses[1]
        )
    except Exception as exc:  # any failure is a finding, recorded with what reproduces it
        return {"layers": [], "failures": [_failure("regression", exc, seed=seed, layers=layers)]}
    entries = report["layers"] + report.get("resets", []) + [report["throughput"]]
    records = [_record("cocotb" if e["name"] != "throughput" else "native", e) for e in entries]
    bad = report.get("bad_descriptor_status", {})
    return {
        "layers": records,
        "failures": [],
        "bad_descriptors": len(bad),
        "build_seconds": report["build_seconds"],
    }


def _record(runner: str, entry: dict) -> dict:
    keys = ("name", "mode", "batch", "cin", "cout", "height", "width", "cycles", "bit_exact")
    record = {key: entry.get(key) for key in keys}
    record["mode"] = record["mode"] or "fast"
    record["runner"] = runner
    return record


def _failure(where: str, exc: BaseException, **context) -> dict:
    lines = traceback.format_exception_only(type(exc), exc)
    return {"where": where, "error": "".join(lines).strip()[-2000:], **context}


def _native_layers(
    config: EngineConfig, count: int, seed: int, deadline: float, rng: np.random.Generator
) -> dict:
    """``count`` random layers with random stalls in the native runner (until ``deadline``)."""
    model = engine_model(config)
    streams = EngineStreams(config)
    shapes = default_layers(config, count + 4, rng)[4:]
    records, failures = [], []
    for k, shape in enumerate(shapes):
        if time.monotonic() > deadline:
            break
        shape = replace(shape, batch=int(rng.integers(1, 3)))
        params, x = random_layer(config, shape, rng)
        pauses = (float(rng.uniform(0.0, 0.6)), float(rng.uniform(0.0, 0.6)))
        context = {"seed": seed, "layer": k, "shape": shape.__dict__, "pauses": pauses}
        try:
            out, run = run_layer(model, streams, params, x, stride=shape.stride, seed=seed + k,
                                 input_pause=pauses[0], output_pause=pauses[1])  # fmt: skip
        except (NativeRunError, ValueError) as exc:
            failures.append(_failure("native", exc, **context))
            continue
        ok = bool(np.array_equal(out, conv2d_int8(x, params, stride=shape.stride)))
        mode = (
            "fast"
            if shape.mode == "fast"
            else f"direct {shape.kernel}x{shape.kernel}/{shape.stride}"
        )
        entry = dict(shape.__dict__, name=f"native{k}", mode=mode, cycles=run.cycles, bit_exact=ok)
        records.append(_record("native", entry))
        if not ok:
            failures.append({"where": "native", "error": "output differs from golden", **context})
    return {"layers": records, "failures": failures}


def soak(budget_seconds: float, seed: int, max_configs: int | None, native_layers: int) -> dict:
    """Random configurations until the budget is spent; every record and finding."""
    rng = np.random.default_rng(seed)
    start = time.monotonic()
    deadline = start + budget_seconds
    runs = []
    while time.monotonic() < deadline and (max_configs is None or len(runs) < max_configs):
        config = random_engine_config(rng)
        config_seed = int(rng.integers(0, 2**31))
        t0 = time.monotonic()
        print(f"[{t0 - start:7.0f} s] config {len(runs)}: {_describe(config)}", flush=True)
        result = _regression(config, config_seed, rng)
        try:
            native = _native_layers(config, native_layers, config_seed, deadline, rng)
        except Exception as exc:  # a build or harness failure is a finding too
            native = {"layers": [], "failures": [_failure("native build", exc, seed=config_seed)]}
        layers = result["layers"] + native["layers"]
        failures = result["failures"] + native["failures"]
        runs.append({"config": config.to_dict(), "seed": config_seed, "layers": layers,
                     "failures": failures, "bad_descriptors": result.get("bad_descriptors", 0),
                     "seconds": round(time.monotonic() - t0, 1)})  # fmt: skip
        print(f"          {len(layers)} layers, {len(failures)} mismatches, "
              f"{time.monotonic() - t0:.0f} s", flush=True)  # fmt: skip
    return {"runs": runs, "wall_seconds": round(time.monotonic() - start, 1)}


def _describe(config: EngineConfig) -> str:
    return (
        f"{config.algorithm} P_co={config.pco} cin_max={config.cin_max} "
        f"cout_max={config.cout_max} {config.scale_mode} act_bits={config.act_bits} "
        f"weight_bits={config.weight_bits} backend_width={config.backend_width} "
        f"macs_per_dsp={config.macs_per_dsp}"
    )


def markdown(result: dict) -> str:
    rows = []
    for run in result["runs"]:
        layers = run["layers"]
        modes = sorted({layer["mode"] for layer in layers})
        rows.append([
            _describe(EngineConfig.from_dict(run["config"])),
            str(len(layers)),
            ", ".join(modes),
            f"{sum(layer['cycles'] or 0 for layer in layers):,}",
            str(run["bad_descriptors"]),
            str(len(run["failures"])),
            f"{run['seconds']:.0f}",
        ])  # fmt: skip
    header = ["configuration", "layers", "modes", "cycles", "bad descriptors refused",
              "mismatches", "seconds"]  # fmt: skip
    table = format_table(header, rows, align="lrlrrrr", markdown=True)
    acc, meta = result["acceptance"], result["meta"]
    return (
        "# Soak: random engines x random layers against the golden model\n\n"
        f"{acc['soak_configurations']} random configurations, {acc['soak_layers']} layers "
        f"(cocotb with random stalls, mid-layer resets and bad descriptors; native runner "
        f"with random stalls), **{acc['soak_mismatches']} mismatches**, "
        f"{result['wall_seconds']:.0f} s of a {meta['budget_seconds']:.0f} s budget; seed "
        f"{meta['seed']}, commit `{meta['git_commit']}`, Verilator {meta['versions']['verilator']}, "
        f"Amaranth {meta['versions']['amaranth']}. Regenerate: "
        f"`python bench/bench_soak.py --budget-seconds {meta['budget_seconds']:.0f} "
        f"--seed {meta['seed']}`.\n\n" + table + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-seconds", type=float, default=1200.0,
                        help="wall-time budget (default 1200)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument("--max-configs", type=int, default=None,
                        help="stop after this many configurations")  # fmt: skip
    parser.add_argument("--native-layers", type=int, default=12,
                        help="random native-runner layers per configuration (default 12)")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.budget_seconds > 0:
        parser.error(f"--budget-seconds must be > 0, got {args.budget_seconds}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.max_configs is not None and args.max_configs < 1:
        parser.error(f"--max-configs must be >= 1, got {args.max_configs}")
    if args.native_layers < 0:
        parser.error(f"--native-layers must be >= 0, got {args.native_layers}")
    result = soak(args.budget_seconds, args.seed, args.max_configs, args.native_layers)
    layers = [layer for run in result["runs"] for layer in run["layers"]]
    result["acceptance"] = {
        "soak_configurations": len(result["runs"]),
        "soak_layers": len(layers),
        "soak_mismatches": sum(len(run["failures"]) for run in result["runs"]),
    }
    result["meta"] = {"git_commit": git_commit(), "versions": tool_versions(), "seed": args.seed,
                      "budget_seconds": args.budget_seconds, "cpus": os.cpu_count()}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomic(RESULTS / "soak.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(RESULTS / "soak.md", markdown(result))
    print(json.dumps(result["acceptance"], indent=2))
    print(f"wrote {RESULTS}/soak.{{json,md}}")
    return 1 if result["acceptance"]["soak_mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
