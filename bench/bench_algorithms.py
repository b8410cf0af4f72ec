"""Benchmark: algorithm construction and the float64 tile path.

Measures, for every default 2D algorithm, the cold construction time (exact
derivation + verification, no cache) and the CSE adder-network time, and for
the 3x3 algorithms the float path on a 1x64x56x56 input with 64 filters
(padding 1), next to torch's conv2d.  Writes bench/results/algorithms.{json,md,png}.

    python bench/bench_algorithms.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sfc_hls.catalog import DEFAULT_ALGORITHMS, _build, get_algorithm, parse_name
from sfc_hls.reference import conv2d

RESULTS = Path(__file__).resolve().parent / "results"


def _best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 64, 56, 56))
    w = rng.standard_normal((64, 64, 3, 3))
    t_torch = _best_of(
        lambda: torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1),
        args.repeat,
    )
    rows = []
    for name in DEFAULT_ALGORITHMS:
        family, dims, kw = parse_name(name)
        if dims != 2:
            continue
        key = tuple(sorted(kw.items()))
        t0 = time.perf_counter()
        _build.__wrapped__(family, dims, key)  # uncached construction + verification
        t_build = time.perf_counter() - t0
        algo = get_algorithm(name)
        t0 = time.perf_counter()
        _ = algo.input_adder_network, algo.output_adder_network
        t_cse = time.perf_counter() - t0
        row = {"name": name, "title": algo.title, "construct_s": t_build, "cse_s": t_cse}
        if algo.kernel == 3:
            row["float_conv_s"] = _best_of(lambda a=algo: conv2d(x, w, a, padding=1), args.repeat)
        rows.append(row)
        print(
            f"{algo.title:24s} construct {t_build * 1e3:8.1f} ms   CSE {t_cse * 1e3:8.1f} ms"
            + (
                f"   float path {row['float_conv_s'] * 1e3:7.1f} ms"
                if "float_conv_s" in row
                else ""
            )
        )
    print(f"torch conv2d float64 (same layer): {t_torch * 1e3:.1f} ms")
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "repeat": args.repeat,
        "seed": 0,
        "layer": "1x64x56x56, 64 filters 3x3, padding 1, float64",
        "torch_conv2d_s": t_torch,
    }
    (RESULTS / "algorithms.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = [
        "| algorithm | construct (ms) | CSE (ms) | float path 56x56x64 (ms) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        fp = f"{r['float_conv_s'] * 1e3:.1f}" if "float_conv_s" in r else "-"
        md.append(
            f"| {r['title']} | {r['construct_s'] * 1e3:.1f} | {r['cse_s'] * 1e3:.1f} | {fp} |"
        )
    md.append(f"\ntorch.nn.functional.conv2d on the same layer: {t_torch * 1e3:.1f} ms")
    (RESULTS / "algorithms.md").write_text("\n".join(md) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    names = [r["title"] for r in rows]
    ax.barh(names, [r["construct_s"] * 1e3 for r in rows], label="construct + verify")
    ax.barh(
        names,
        [r["cse_s"] * 1e3 for r in rows],
        left=[r["construct_s"] * 1e3 for r in rows],
        label="CSE adder networks",
    )
    ax.set_xlabel("time (ms)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "algorithms.png", dpi=120)
    print(f"wrote {RESULTS}/algorithms.{{json,md,png}}")


if __name__ == "__main__":
    main()
