"""Benchmark: accuracy against MAC-operand bits (8, 6, 4) for direct, Winograd and SFC.

The paper's claim is that SFC stays accurate where Winograd breaks; at int8
the digits ResNet cannot separate the algorithms (every one: 99.56 %).  Here
the transform-domain activations and weights -- the MAC array's operands,
``act_bits = weight_bits = b`` -- are narrowed to 6 and 4 bits (the feature
maps stay int8) and, per algorithm and ``b``:

* ``top1``: digits top-1 of the committed ``small_resnet`` (450 held-out
  images, 32 calibration images, golden model, pow2 scales, no fine-tuning);
* ``layer_nmse``: the geometric mean over the 3x3 stride-1 layers of the
  normalized MSE of ``y`` (``sfc-hls error-study --bits b``; 32 calibration
  and 64 evaluation images, seed 0).

Writes bench/results/bits.{json,md,png}; ``python bench/bench_bits.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
from sfc_hls.host.device import GoldenDevice  # noqa: E402
from sfc_hls.host.digits import load_digits_split  # noqa: E402
from sfc_hls.host.error_study import run_error_study  # noqa: E402
from sfc_hls.host.inference import run_int8  # noqa: E402
from sfc_hls.host.lowering import lower_model  # noqa: E402
from sfc_hls.text_table import format_table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ALGORITHMS = ("direct-3x3", "wino-2x2-3x3", "wino-4x4-3x3", "sfc4-4x4-3x3", "sfc6-7x7-3x3")
BITS = (8, 6, 4)


def digits_top1(algorithm: str, bits: int, model, split) -> float:
    """Top-1 of the digits ResNet on the golden model with ``bits``-bit MAC operands."""
    net = lower_model(model, (1, 28, 28), algorithm=algorithm, name="small_resnet")
    engines = [dataclasses.replace(e, act_bits=bits, weight_bits=bits) for e in engine_configs(net)]
    qnet = calibrate(net, split.x_train, engines=engines)
    result = run_int8(qnet, GoldenDevice(list(qnet.engines.values())), split.x_test)
    return float((result.predictions == split.y_test.numpy()).mean())


def measure() -> list[dict]:
    model, _ = load_digits_small_resnet()
    split = load_digits_split()
    rows = []
    for bits in BITS:
        study = run_error_study(algorithms=ALGORITHMS, scale_modes=("pow2",), fine_tune=(False,),
                                bits=bits)  # fmt: skip
        nmse = study["summary"]["geomean_over_layers"]["pow2"]
        for algorithm in ALGORITHMS:
            t0 = time.perf_counter()
            top1 = digits_top1(algorithm, bits, model, split)
            rows.append({"algorithm": algorithm, "bits": bits, "top1": top1,
                         "layer_nmse": nmse[algorithm]["nmse_y"],
                         "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
            print(f"{algorithm} {bits} bits: top-1 {100 * top1:.2f} %, "
                  f"layer NMSE {nmse[algorithm]['nmse_y']:.2e}", flush=True)  # fmt: skip
    return rows


def markdown(result: dict) -> str:
    rows = result["rows"]
    index = {(r["algorithm"], r["bits"]): r for r in rows}
    head = [
        "algorithm",
        *[f"top-1, {b} bits" for b in BITS],
        *[f"layer NMSE, {b} bits" for b in BITS],
    ]
    body = [
        [a, *[f"{100 * index[a, b]['top1']:.2f} %" for b in BITS],
         *[f"{index[a, b]['layer_nmse']:.2e}" for b in BITS]]
        for a in ALGORITHMS
    ]  # fmt: skip
    meta = result["meta"]
    return "\n".join([
        "# Accuracy against MAC-operand bits (digits ResNet)",
        "",
        f"Commit `{meta['git_commit']}`; torch {meta['versions']['torch']}; seed 0. "
        "Transform-domain activations and weights (the MAC operands) at b bits, feature maps "
        "int8, pow2 scales, no fine-tuning; top-1 on the 450 held-out digits images (golden "
        "model), layer NMSE = geometric mean over the 3x3 stride-1 layers of the normalized "
        "MSE of y (`sfc-hls error-study --bits b`). Regenerate: `python bench/bench_bits.py`.",
        "",
        format_table(head, body, align="l" + "r" * (len(head) - 1), markdown=True),
        "",
    ])  # fmt: skip


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, err) = plt.subplots(1, 2, figsize=(10, 4))
    for algorithm in ALGORITHMS:
        mine = [r for r in result["rows"] if r["algorithm"] == algorithm]
        top.plot([r["bits"] for r in mine], [100 * r["top1"] for r in mine], "o-", label=algorithm)
        err.plot([r["bits"] for r in mine], [r["layer_nmse"] for r in mine], "o-", label=algorithm)
    top.set(xlabel="MAC operand bits", ylabel="digits top-1 (%)", xticks=BITS)
    err.set(xlabel="MAC operand bits", ylabel="layer NMSE of y (geomean)", yscale="log",
            xticks=BITS)  # fmt: skip
    top.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = measure()
    index = {(r["algorithm"], r["bits"]): r for r in rows}
    result = {
        "meta": {
            "git_commit": git_commit(),
            "versions": {**tool_versions(), "torch": torch.__version__},
            "seed": 0,
            "algorithms": ALGORITHMS,
            "bits": BITS,
        },  # fmt: skip
        "rows": rows,
        "acceptance": {
            f"top1_{a.replace('-', '_')}_{b}bits": round(index[a, b]["top1"], 4)
            for a in ALGORITHMS
            for b in BITS
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "bits.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / "bits.md", markdown(result))
    plot(result, args.out / "bits.png")
    print(markdown(result))
    print(f"wrote {args.out}/bits.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
