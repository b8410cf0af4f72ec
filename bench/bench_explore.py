"""Benchmark: ``sfc-hls explore --network resnet18 --quick`` from a cold cache, and its plan.

1. Runs the quick exploration of ResNet-18 (cycle model + estimator + error
   study, no synthesis; the default grid: 5 algorithms x P_co 2/4/8/16 x 1-2
   MACs per DSP x 8/6/4 bits x 3 layer-error thresholds) as a user would,
   in a subprocess on a 2-worker LocalCluster, with an empty
   ``$SFC_HLS_CACHE``: the wall time is the acceptance figure.
2. Reruns it with a budget (``--max-dsp 300 --min-accuracy 95``): every point
   comes from the cache.
3. Runs the chosen plan through ``sfc-hls run --plan`` (golden model,
   seeded random ResNet-18 weights, one random image) and ``sfc-hls generate
   --plan``, unchanged.

Writes bench/results/explore.{json,md,png} (the budgeted report, with
``meta`` and ``acceptance``: ``explore_quick_seconds``).

    python bench/bench_explore.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import RESULTS, git_commit, tool_versions  # noqa: E402

from sfc_hls.atomic_files import write_bytes_atomic, write_text_atomic  # noqa: E402

BUDGET = ["--max-dsp", "300", "--min-accuracy", "95"]
CLI = [sys.executable, "-m", "sfc_hls.cli"]


def sfc_hls(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"sfc-hls {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout


def main() -> int:
    import dask
    import distributed

    with tempfile.TemporaryDirectory(prefix="sfc-hls-bench-explore-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "SFC_HLS_CACHE": str(work / "cache")}
        quick = ["explore", "--network", "resnet18", "--quick", "--workers", "2"]
        cold, log = sfc_hls([*quick, "-o", "cold"], env, work)
        print(f"cold quick exploration: {cold:.0f} s", flush=True)
        warm, _ = sfc_hls([*quick, *BUDGET, "-o", "budget"], env, work)
        report = json.loads((work / "budget" / "explore.json").read_text())
        plan = work / "budget" / "plan.json"
        run_s, run_out = sfc_hls(["run", "--plan", str(plan), "--model", "resnet18",
                                  "--random-weights", "--random-images", "1", "--quiet",
                                  "--json", "run.json"], env, work)  # fmt: skip
        gen_s, _ = sfc_hls(["generate", "--plan", str(plan), "-o", "engine"], env, work)
        manifest = json.loads((work / "engine" / "conv_engine.json").read_text())
        plan_data = json.loads(plan.read_text())
        assert manifest["config"] == plan_data["engine"], "generate --plan changed the engine"
        report["meta"] = {
            "benchmark": "bench/bench_explore.py",
            "git_commit": git_commit(),
            "versions": {**tool_versions(), "dask": dask.__version__,
                         "distributed": distributed.__version__},  # fmt: skip
            "cold_log": log.splitlines()[:12],
            "seconds": {"cold_quick": round(cold, 1), "warm_budgeted": round(warm, 1),
                        "run_plan_golden": round(run_s, 1), "generate_plan": round(gen_s, 1)},
        }  # fmt: skip
        report["plan"] = plan_data
        report["acceptance"] = {
            "explore_quick_seconds": round(cold, 1),
            "plan_runs_and_generates": True,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        write_text_atomic(RESULTS / "explore.json", json.dumps(report, indent=1) + "\n")
        md = (work / "budget" / "explore.md").read_text()
        header = (
            f"Commit {report['meta']['git_commit']}; `python bench/bench_explore.py`: cold "
            f"`sfc-hls explore --network resnet18 --quick` (2-worker LocalCluster, empty cache) "
            f"took **{cold:.0f} s**; the budgeted rerun `{' '.join(BUDGET)}` {warm:.0f} s "
            f"(cached); the plan ran through `sfc-hls run --plan` (golden, random ResNet-18, "
            f"{run_s:.0f} s) and `sfc-hls generate --plan` ({gen_s:.0f} s) unchanged.\n\n"
        )
        write_text_atomic(RESULTS / "explore.md", md.replace("\n\n", "\n\n" + header, 1))
        write_bytes_atomic(RESULTS / "explore.png", (work / "budget" / "explore.png").read_bytes())
        shutil.rmtree(work / "cache", ignore_errors=True)
    print(json.dumps(report["acceptance"], indent=2))
    print(f"wrote {RESULTS}/explore.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
