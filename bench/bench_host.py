"""Benchmark: the host driver on real networks.

1. Digits top-1 (held-out split, 450 images) of the committed small ResNet:
   FP32 and int8 with direct, Winograd F(4x4,3x3) and SFC-6(7x7,3x3) as the
   stride-1 3x3 algorithm, same calibration (32 training images), golden backend.
2. ResNet-18 (seeded random weights, no pretrained weights offline) on one
   224x224 input through the golden backend (target < 10 s on 2 cores).
3. One full ResNet-18 3x3 layer (``layer1.0.conv1``: 64x56x56 -> 64, the
   SFC-6(7x7,3x3) engine, P_co=4) on the RTL backend in Verilator, bit-exact
   against the golden backend, with its engine cycles.

Writes bench/results/host.{json,md} (atomically).

    python bench/bench_host.py [--repeat 3] [--skip-rtl] [--skip-accuracy]

``--skip-rtl`` keeps the previous run's RTL measurement (marked ``from_previous_run``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sfc_hls.atomic_files import write_text_atomic
from sfc_hls.config import EngineConfig
from sfc_hls.host.calibration import calibrate, engine_configs
from sfc_hls.host.checkpoint import load_digits_small_resnet
from sfc_hls.host.device import GoldenDevice, RtlDevice
from sfc_hls.host.digits import load_digits_split
from sfc_hls.host.inference import run_float, run_int8
from sfc_hls.host.lowering import lower_model
from sfc_hls.host.models import resnet18
from sfc_hls.quantize import QuantOptions

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


def resnet18_golden(repeat: int) -> tuple[dict, object, np.ndarray]:
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
        result.tensors,
    )


def resnet18_layer_rtl(qnet, tensors) -> dict:
    name = "layer1.0.conv1"
    conv = qnet.network[name]
    params = qnet.convs[name]
    x = tensors[conv.input]
    engine = EngineConfig(algorithm=conv.algorithm, pco=4, cin_max=64, cout_max=64)
    golden = GoldenDevice([engine]).run_conv(name, params, x)
    t0 = time.perf_counter()
    with RtlDevice([engine]) as device:
        device.prepare()
        t_build = time.perf_counter() - t0
        rtl = device.run_conv(name, params, x)
    exact = bool(np.array_equal(rtl.output, golden.output))
    tiles = conv.tiles
    groups = -(-conv.cout // engine.pco)
    print(f"resnet18 {name} rtl: bit-exact {exact}, {rtl.cycles} cycles, {rtl.seconds:.1f} s")
    return {
        "layer": name,
        "shape": f"{conv.cin}x{conv.in_shape[1]}x{conv.in_shape[2]} -> {conv.cout}",
        "engine": engine.to_dict(),
        "bit_exact": exact,
        "cycles": rtl.cycles,
        "act_beats": groups * tiles * conv.cin,
        "cycles_per_act_beat": round(rtl.cycles / (groups * tiles * conv.cin), 3),
        "simulation_seconds": round(rtl.seconds, 1),
        "generate_and_build_seconds": round(t_build, 1),
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
    if "resnet18_layer_rtl" in report:
        t = report["resnet18_layer_rtl"]
        lines += [
            f"ResNet-18 `{t['layer']}` ({t['shape']}, SFC-6(7x7,3x3), P_co="
            f"{t['engine']['pco']}) in Verilator: bit-exact with golden: "
            f"**{'yes' if t['bit_exact'] else 'NO'}**, {t['cycles']:,} cycles "
            f"({t['cycles_per_act_beat']} per input beat), simulation "
            f"{t['simulation_seconds']} s, generate + build {t['generate_and_build_seconds']} s.",
            "",
        ]
    lines.append(f"Machine: {report['machine']}, torch threads {report['torch_threads']}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-rtl", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    report: dict = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch_threads": torch.get_num_threads(),
    }
    if not args.skip_accuracy:
        report["digits"] = digits_accuracy()
    report["resnet18_golden"], qnet, tensors = resnet18_golden(args.repeat)
    if not args.skip_rtl:
        report["resnet18_layer_rtl"] = resnet18_layer_rtl(qnet, tensors)
    elif (RESULTS / "host.json").is_file():  # keep the last RTL measurement, marked as such
        previous = json.loads((RESULTS / "host.json").read_text()).get("resnet18_layer_rtl")
        if previous is not None:
            report["resnet18_layer_rtl"] = {**previous, "from_previous_run": True}
    write_text_atomic(RESULTS / "host.json", json.dumps(report, indent=2))
    write_text_atomic(RESULTS / "host.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
