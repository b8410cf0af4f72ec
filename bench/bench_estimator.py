"""Benchmark: the resource estimator against Yosys on configurations it was not fitted on.

``sfc-hls estimate`` (:mod:`sfc_hls.hw.estimate`) predicts LUT, FF, DSP and
BRAM of a generated engine from structural features, with coefficients fitted
to Yosys runs.  This script

1. synthesizes the :data:`TRAINING` configurations (every block on its own and
   the whole top; Yosys ``synth_xilinx -family xcup``, cached by Verilog
   content in ``~/.cache/sfc-hls/synth``) and fits the model;
2. synthesizes the :data:`HELD_OUT` configurations as whole tops (never seen by
   the fit: other algorithms/P_co/bit-width/packing combinations, and the
   default engine) and reports the estimate's relative error per resource;
3. with ``--write-model``, stores the fitted model as the shipped
   ``hw/estimator_model.json``.

Writes bench/results/estimator.{json,md,png}; acceptance keys
``estimator_max_abs_error_dsp`` and ``estimator_max_abs_error_lut`` (held out,
largest |estimate - Yosys| / Yosys).  Cold (nothing cached) about an hour on
2 cores; the default engine's top alone is ~17 min.

    python bench/bench_estimator.py [--write-model] [--jobs 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import RESULTS, git_commit, tool_versions  # noqa: E402

from sfc_hls.atomic_files import write_text_atomic  # noqa: E402
from sfc_hls.config import EngineConfig  # noqa: E402
from sfc_hls.hw.estimate import (  # noqa: E402
    ESTIMATED,
    MODEL_PATH,
    ResourceModel,
    Sample,
    fit,
    relative_errors,
)
from sfc_hls.hw.synth_report import synth_report, yosys_version  # noqa: E402
from sfc_hls.text_table import format_table  # noqa: E402

FAMILY = "xcup"
#: Fitted on: every block alone and the whole top.
TRAINING = [
    {"algorithm": "wino-2x2-3x3", "pco": 2, "cin_max": 64, "cout_max": 64},
    {"algorithm": "wino-2x2-3x3", "pco": 8, "cin_max": 128, "cout_max": 128, "scale_mode": "fixed"},
    {"algorithm": "wino-4x4-3x3", "pco": 2, "cin_max": 64, "cout_max": 64, "macs_per_dsp": 1},
    {"algorithm": "sfc4-4x4-3x3", "pco": 4, "cin_max": 128, "cout_max": 128},
    {"algorithm": "direct-3x3", "pco": 8, "cin_max": 64, "cout_max": 64},
    {"algorithm": "sfc6-6x6-3x3", "pco": 2, "cin_max": 64, "cout_max": 64, "act_bits": 6,
     "weight_bits": 6},
    {"algorithm": "wino-4x4-3x3", "pco": 4, "cin_max": 256, "cout_max": 256, "act_bits": 4,
     "weight_bits": 4},
]  # fmt: skip
#: Never fitted on: whole tops only.
HELD_OUT = [
    # The default accelerator sized for ResNet-18 (bench/bench_engines.py synthesizes it too).
    {"algorithm": "sfc6-7x7-3x3", "pco": 4, "cin_max": 512, "cout_max": 512,
     "direct_reduction_max": 2304},
    {"algorithm": "wino-2x2-3x3", "pco": 4, "cin_max": 256, "cout_max": 256},
    {"algorithm": "sfc4-4x4-3x3", "pco": 2, "cin_max": 64, "cout_max": 64, "scale_mode": "fixed"},
    {"algorithm": "direct-3x3", "pco": 16, "cin_max": 128, "cout_max": 128, "macs_per_dsp": 1},
    {"algorithm": "sfc6-7x7-3x3", "pco": 2, "cin_max": 128, "cout_max": 128, "act_bits": 6,
     "weight_bits": 6},
]  # fmt: skip


def samples(configs: list[dict], *, blocks: bool, jobs: int) -> list[Sample]:
    out = []
    for fields in configs:
        config = EngineConfig(**fields)
        t0 = time.perf_counter()
        report = synth_report(config, family=FAMILY, blocks=blocks, jobs=jobs)
        if not blocks:
            report["blocks"] = {}
        out.append(Sample.from_report(report))
        print(
            f"  {label(config)}: {report['total']} ({time.perf_counter() - t0:.0f} s)", flush=True
        )
    return out


def label(config: EngineConfig) -> str:
    text = f"{config.algo.title} P_co {config.pco} cin {config.cin_max}"
    default = EngineConfig()
    for name in ("act_bits", "scale_mode", "macs_per_dsp"):
        if getattr(config, name) != getattr(default, name):
            text += f" {name}={getattr(config, name)}"
    return text


def markdown(result: dict) -> str:
    head = ["held-out engine", *(f"{r} Yosys / est. (err)" for r in ESTIMATED)]
    rows = [
        [row["label"], *(f"{row['yosys'][r]:,} / {row['estimate'][r]:,} "
                         f"({100 * row['error'][r]:+.1f} %)" for r in ESTIMATED)]
        for row in result["held_out"]
    ]  # fmt: skip
    meta, acc = result["meta"], result["acceptance"]
    return (
        "# Resource estimator against Yosys (held-out configurations)\n\n"
        f"`python bench/bench_estimator.py`, commit {meta['git_commit']}, {meta['versions']['yosys']}, "
        f"`synth_xilinx -family {FAMILY}`. Fitted on {len(TRAINING)} configurations (every block "
        f"alone + whole top); every row below was left out of the fit. Largest |error|: "
        f"DSP {100 * acc['estimator_max_abs_error_dsp']:.1f} %, "
        f"LUT {100 * acc['estimator_max_abs_error_lut']:.1f} % "
        f"(FF {100 * result['max_abs_error']['FF']:.1f} %, "
        f"BRAM {100 * result['max_abs_error']['BRAM']:.1f} %). "
        f"Estimate time: {result['estimate_ms_max']:.2f} ms per configuration (engine "
        "interface cached).\n\n" + format_table(head, rows, markdown=True) + "\n"
    )


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, res in zip(axes, ("LUT", "DSP"), strict=True):
        for group, marker in (("training", "o"), ("held_out", "s")):
            ys = [row["yosys"][res] for row in result[group]]
            es = [row["estimate"][res] for row in result[group]]
            ax.scatter(ys, es, marker=marker, label=group.replace("_", "-"))
        top = max(max(row["yosys"][res], row["estimate"][res])
                  for g in ("training", "held_out") for row in result[g])  # fmt: skip
        ax.plot([0, top], [0, top], "k--", lw=0.8)
        ax.plot([0, top], [0, 1.15 * top], "k:", lw=0.6)
        ax.plot([0, top], [0, 0.85 * top], "k:", lw=0.6)
        ax.set_xlabel(f"{res} (Yosys, whole top)")
        ax.set_ylabel(f"{res} (estimate)")
        ax.legend()
    fig.suptitle("sfc-hls estimate vs Yosys synth_xilinx (dotted: +-15 %)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-model", action="store_true",
                        help=f"store the fitted model as {MODEL_PATH.name} (shipped)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="Yosys runs at once (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    print("training configurations (blocks and whole top):", flush=True)
    train = samples(TRAINING, blocks=True, jobs=args.jobs)
    print("held-out configurations (whole top):", flush=True)
    held = samples(HELD_OUT, blocks=False, jobs=args.jobs)
    model = fit(train, meta={"fitted_on": len(train), "family": FAMILY, "yosys": yosys_version(),
                             "git_commit": git_commit(), "training": TRAINING})  # fmt: skip
    rows = {"training": relative_errors(model, train), "held_out": relative_errors(model, held)}
    for group, group_samples in (("training", train), ("held_out", held)):
        for row, s in zip(rows[group], group_samples, strict=True):
            row["label"] = label(s.config)
    estimate_ms = [1000 * model.estimate(s.config).seconds for s in held]
    worst = {r: max(abs(row["error"][r]) for row in rows["held_out"]) for r in ESTIMATED}
    result = {
        "meta": {
            "benchmark": "bench/bench_estimator.py",
            "git_commit": git_commit(),
            "versions": tool_versions(),
            "family": FAMILY,
            "seconds": round(time.perf_counter() - t0, 1),
        },  # fmt: skip
        **rows,
        "max_abs_error": worst,
        "estimate_ms_max": max(estimate_ms),
        "acceptance": {
            "estimator_max_abs_error_dsp": round(worst["DSP"], 4),
            "estimator_max_abs_error_lut": round(worst["LUT"], 4),
        },
    }
    if args.write_model:
        write_text_atomic(MODEL_PATH, model.to_json() + "\n")
        print(f"wrote {MODEL_PATH}")
    shipped = ResourceModel.load(MODEL_PATH) if MODEL_PATH.is_file() else None
    if shipped is not None:
        result["shipped_model_max_abs_error"] = {
            r: max(abs(row["error"][r]) for row in relative_errors(shipped, held))
            for r in ESTIMATED
        }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "estimator.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / "estimator.md", markdown(result))
    plot(result, args.out / "estimator.png")
    print(markdown(result))
    print(json.dumps(result["acceptance"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
