"""Benchmark: the vectorized golden model on a ResNet-18 56x56x64 layer.

Runs ``sfc_hls.golden.conv2d_int8`` on a 1x64x56x56 int8 input with 64
filters for the 3x3 algorithms (random valid quantized layer, seed 0), best
of ``--repeat`` runs, and writes bench/results/golden.{json,md}.

    python bench/bench_golden.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import random_layer_quant
from sfc_hls.golden import conv2d_int8

RESULTS = Path(__file__).resolve().parent / "results"
ALGOS = ("sfc6-7x7-3x3", "sfc6-6x6-3x3", "sfc4-4x4-3x3", "wino-4x4-3x3", "wino-2x2-3x3",
         "direct-3x3")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(1, 64, 56, 56))
    rows = []
    for name in ALGOS:
        cfg = EngineConfig(algorithm=name, pco=4, cin_max=64, cout_max=64)
        params = random_layer_quant(cfg, 64, 64, np.random.default_rng(0))
        conv2d_int8(x, params)  # warm-up (algorithm construction, caches)
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            conv2d_int8(x, params)
            best = min(best, time.perf_counter() - t0)
        rows.append({"algorithm": name, "title": cfg.algo.title, "seconds": best})
        print(f"{cfg.algo.title:24s} {best * 1e3:8.1f} ms")
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "layer": "1x64x56x56 int8, 64 filters 3x3, padding 1",
        "repeat": args.repeat,
        "seed": 0,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    (RESULTS / "golden.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = ["| algorithm | golden model, 1x64x56x56 -> 64 (ms) |", "|---|---|"]
    md += [f"| {r['title']} | {r['seconds'] * 1e3:.1f} |" for r in rows]
    (RESULTS / "golden.md").write_text("\n".join(md) + "\n")
    print(f"wrote {RESULTS}/golden.{{json,md}}")


if __name__ == "__main__":
    main()
