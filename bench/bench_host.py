"""Benchmark: the host driver on real networks.

1. Digits top-1 (held-out split, 450 images) of the committed small ResNet:
   FP32 and int8 with direct, Winograd F(4x4,3x3) and SFC-6(7x7,3x3) as the
   stride-1 3x3 algorithm, same calibration (32 training images), golden backend.
2. ResNet-18 (seeded random weights, no pretrained weights offline) on one
   224x224 input through the golden backend (target < 10 s on 2 cores).
3. One whole ResNet-18 frame (the golden run's image) with all 20 convs on
   the one generated engine in Verilator (native runner): chained, and layer-
   parallel from golden inputs in ``--jobs`` processes (what ``sfc-hls run
   --backend rtl --check-golden`` does); every int8 tensor compared with the
   golden backend's, every conv's cycles with the cycle model (acceptance
   ``resnet18_rtl_frame_seconds``, issue #11: at most 300 s on 2 cores).

Writes bench/results/host.{json,md} (atomically).

    python bench/bench_host.py [--repeat 3] [--jobs 2] [--skip-rtl] [--skip-accuracy]

``--skip-rtl`` keeps the previous run's RTL measurement (marked ``from_previous_run``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import git_commit, tool_versions  # noqa: E402

from sfc_hls.atomic_files import write_text_atomic  # noqa: E402
from sfc_hls.host.calibration import calibrate, engine_configs  # noqa: E402
from sfc_hls.host.checkpoint import load_digits_small_resnet  # noqa: E402
from sfc_hls.host.device import GoldenDevice, RtlDevice  # noqa: E402
from sfc_hls.host.digits import load_digits_split  # noqa: E402
from sfc_hls.host.inference import check_convs, run_float, run_int8  # noqa: E402
from sfc_hls.host.lowering import lower_model  # noqa: E402
from sfc_hls.host.models import resnet18  # noqa: E402
from sfc_hls.quantize import QuantOptions  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ACCURACY_ALGORITHMS = ("direct-3x3", "wino-4x4-3x3", "sfc6-7x7-3x3")


def digits_accuracy(scale_modes: tuple[str, ...] = ("pow2", "fixed")) -> dict:
    model, _ = load_digits_small_resnet()
    split = load_digits_split()
    y = split.y_test.numpy()
    rows = []
    fp32 = float_logits = None
    for algorithm in ACCURACY_ALGORITHMS:
        net = lower_model(model, (1, 28, 28), algorithm=algorithm, name="small_resnet")
        if fp32 is None:
            float_logits = run_float(net, split.x_test)
            fp32 = float((float_logits.argmax(1) == y).mean())
        for mode in scale_modes:
            t0 = time.perf_counter()
            engines = engine_configs(net, scale_mode=mode)
            qnet = calibrate(net, split.x_train, engines=engines)
            t_cal = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = run_int8(qnet, GoldenDevice(list(qnet.engines.values())), split.x_test)
            rows.append(
                {
                    "algorithm": algorithm,
                    "scale_mode": mode,
                    "top1": float((res.predictions == y).mean()),
                    "errors": int((res.predictions != y).sum()),
                    "agreement_with_fp32": float(
                        (res.predictions == float_logits.argmax(1)).mean()
                    ),
                    "logit_nmse": float(
                        np.mean((res.logits - float_logits) ** 2) / np.var(float_logits)
                    ),
                    "calibration_seconds": round(t_cal, 2),
                    "run_seconds": round(time.perf_counter() - t0, 2),
                }
            )
            print(f"digits {algorithm} {mode}: {100 * rows[-1]['top1']:.2f} %")
    return {"fp32_top1": fp32, "test_images": len(y), "calib_images": 32, "rows": rows}


def resnet18_golden(repeat: int) -> tuple[dict, object, torch.Tensor, object]:
    torch.manual_seed(0)
    model = resnet18().eval()
    t0 = time.perf_counter()
    net = lower_model(model, (3, 224, 224), name="resnet18")
    t_lower = time.perf_counter() - t0
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    qnet = calibrate(net, x[:2], options=QuantOptions(calib_samples=2))
    t_cal = time.perf_counter() - t0
    device = GoldenDevice(list(qnet.engines.values()))
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run_int8(qnet, device, x[2:3], keep_tensors=True)
        best = min(best, time.perf_counter() - t0)
    ref = run_float(net, x[2:3])
    corr = float(np.corrcoef(ref.ravel(), result.logits.ravel())[0, 1])
    layers = sorted(result.records, key=lambda r: -r.seconds)[:5]
    print(f"resnet18 224x224 golden: {best:.2f} s per image (calibration {t_cal:.1f} s)")
    return (
        {
            "lower_seconds": round(t_lower, 2),
            "calibration_seconds_2_images": round(t_cal, 2),
            "golden_seconds_per_image": round(best, 3),
            "target_seconds": 10.0,
            "logit_correlation_int8_vs_float": corr,
            "slowest_layers": [{"name": r.name, "seconds": round(r.seconds, 3)} for r in layers],
            "conv_macs": sum(c.macs for c in net.convs),
            "engine_mults": sum(c.mults for c in net.convs),
        },
        qnet,
        x[2:3],
        result,
    )


def resnet18_frame_rtl(qnet, x: torch.Tensor, golden, jobs: int) -> dict:
    """One whole ResNet-18 frame with every conv on the one engine in Verilator, twice.

    * chained: :func:`run_int8` on the RTL device, layer after layer (one
      simulator process), every int8 tensor of the frame compared with the
      golden run's;
    * layer-parallel (``sfc-hls run --backend rtl --check-golden``): every conv
      from its golden input, ``jobs`` simulator processes at once
      (:func:`check_convs`), every conv output compared.

    Each conv's simulated cycles are compared with the cycle model's.
    """
    engines = list(qnet.engines.values())
    t0 = time.perf_counter()
    with RtlDevice(engines, jobs=jobs) as device:
        device.prepare()
        t_build = time.perf_counter() - t0
        chained = run_int8(qnet, device, x, keep_tensors=True)
        check = check_convs(qnet, device, golden)
    mismatched = [k for k, v in golden.tensors.items() if not np.array_equal(chained.tensors[k], v)]
    cycles = {r.name: r.cycles for r in chained.records if r.cycles is not None}
    parallel_cycles = {r.name: r.cycles for r in check.records if r.cycles is not None}
    predicted = _model_cycles(qnet)
    worst = max(abs(cycles[n] - p) / p for n, p in predicted.items())
    frame_cycles = sum(cycles.values())
    print(
        f"resnet18 frame rtl: chained {len(mismatched)} mismatched tensors, {frame_cycles:,} "
        f"cycles, {chained.seconds:.1f} s; {jobs} jobs from golden inputs "
        f"{len(check.mismatched)} mismatched convs, {check.seconds:.1f} s; build {t_build:.1f} s"
    )
    return {
        "engine": engines[0].to_dict(),
        "convs": len(cycles),
        "bit_exact": not mismatched and check.identical,
        "mismatched_tensors": mismatched,
        "mismatched_convs_parallel": check.mismatched,
        "frame_cycles": frame_cycles,
        "cycles_equal_in_both_runs": cycles == parallel_cycles,
        "cycle_model_worst_relative_error": worst,
        "chained_seconds": round(chained.seconds, 1),
        "parallel_seconds": round(check.seconds, 1),
        "generate_and_build_seconds": round(t_build, 1),
        "chained_cycles_per_second": round(frame_cycles / chained.seconds),
        "jobs": jobs,
        "layers": [{"name": n, "cycles": cycles[n], "model_cycles": predicted[n]} for n in cycles],
    }


def _model_cycles(qnet) -> dict[str, int]:
    """Each conv's cycles from the cycle model (as bench_engines computes them)."""
    from bench_engines import ConvLayer, layer_row

    from sfc_hls.hw.interface import EngineInterface

    (engine,) = qnet.engines.values()
    interface = EngineInterface.from_config(engine)
    return {
        c.name: layer_row(
            interface, ConvLayer(c.name, c.kernel, c.stride, c.cin, c.cout, c.out_shape[1])
        )["cycles"]
        for c in qnet.network.convs
    }


def markdown(report: dict) -> str:
    lines = ["# Host driver benchmark", ""]
    if "digits" in report:
        d = report["digits"]
        lines += [
            f"Digits top-1, held-out split ({d['test_images']} images), calibration on "
            f"{d['calib_images']} training images, golden backend:",
            "",
            "| stride-1 3x3 algorithm | top-1 pow2 | top-1 fixed | logit NMSE vs FP32 pow2 / fixed |",
            "|---|---|---|---|",
            f"| FP32 | {100 * d['fp32_top1']:.2f} % | | |",
        ]
        for algorithm in ACCURACY_ALGORITHMS:
            cells = {r["scale_mode"]: r for r in d["rows"] if r["algorithm"] == algorithm}
            modes = [m for m in ("pow2", "fixed") if m in cells]
            lines.append(
                f"| int8 {algorithm} | "
                + " | ".join(f"{100 * cells[m]['top1']:.2f} %" for m in modes)
                + " | "
                + " / ".join(f"{cells[m]['logit_nmse']:.1e}" for m in modes)
                + " |"
            )
        lines += [
            "",
            "Logit NMSE: mean squared difference of the int8 network's logits from the FP32 "
            "logits over the test split, divided by the FP32 logits' variance.",
            "",
        ]
    r = report["resnet18_golden"]
    lines += [
        "ResNet-18 (random weights), one 224x224 image, golden backend: "
        f"**{r['golden_seconds_per_image']:.2f} s** (target < {r['target_seconds']:.0f} s); "
        f"calibration on 2 images {r['calibration_seconds_2_images']:.1f} s; int8 vs float "
        f"logit correlation {r['logit_correlation_int8_vs_float']:.4f}.",
        "",
    ]
    if "resnet18_frame_rtl" in report:
        t = report["resnet18_frame_rtl"]
        e = t["engine"]
        lines += [
            f"ResNet-18, one 224x224 frame, all {t['convs']} convs on the one "
            f"{e['algorithm']} P_co={e['pco']} engine in Verilator (native runner)"
            + (" (from the previous run)" if t.get("from_previous_run") else "")
            + ":",
            "",
            "| run | every tensor bit-exact | wall time (s) |",
            "|---|---|---:|",
            f"| chained, layer after layer, one process | "
            f"{'no' if t['mismatched_tensors'] else 'yes'} | {t['chained_seconds']} |",
            f"| every conv from its golden input, {t['jobs']} processes (`--check-golden`) | "
            f"{'no' if t['mismatched_convs_parallel'] else 'yes'} | {t['parallel_seconds']} |",
            "",
            f"{t['frame_cycles']:,} engine cycles per frame (equal in both runs: "
            f"{'yes' if t['cycles_equal_in_both_runs'] else 'NO'}; cycle model worst layer "
            f"error {100 * t['cycle_model_worst_relative_error']:.2f} %); chained simulation "
            f"{t['chained_cycles_per_second']:,} cycles/s; generate and build "
            f"{t['generate_and_build_seconds']} s (cached after the first run).",
            "",
        ]
    lines.append(f"Machine: {report['machine']}, torch threads {report['torch_threads']}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="simulator processes (RTL frame)")
    parser.add_argument("--skip-rtl", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    report: dict = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "versions": tool_versions(),
        "seed": 0,
    }
    if not args.skip_accuracy:
        report["digits"] = digits_accuracy()
    report["resnet18_golden"], qnet, x, golden = resnet18_golden(args.repeat)
    if not args.skip_rtl:
        report["resnet18_frame_rtl"] = resnet18_frame_rtl(qnet, x, golden, args.jobs)
    elif (RESULTS / "host.json").is_file():  # keep the last RTL measurement, marked as such
        previous = json.loads((RESULTS / "host.json").read_text()).get("resnet18_frame_rtl")
        if previous is not None:
            report["resnet18_frame_rtl"] = {**previous, "from_previous_run": True}
    frame = report.get("resnet18_frame_rtl", {})
    report["acceptance"] = {
        "resnet18_golden_seconds": report["resnet18_golden"]["golden_seconds_per_image"],
        "resnet18_rtl_frame_seconds": frame.get("parallel_seconds"),
        "resnet18_rtl_frame_chained_seconds": frame.get("chained_seconds"),
        "resnet18_rtl_frame_bit_exact": frame.get("bit_exact"),
    }
    write_text_atomic(RESULTS / "host.json", json.dumps(report, indent=2))
    write_text_atomic(RESULTS / "host.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
