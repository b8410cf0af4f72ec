"""Benchmark: accuracy against ``z_bits``, the width of the rescaled accumulators entering A^T.

``z = rshift(acc * rescale_mult, rescale_shift)`` with the shift derived so that
every legal accumulator fits ``z_bits`` (docs/datapath.md): a narrower ``z``
shrinks the output transform, the output requantizer and the back-end
registers, and rounds ``z`` more coarsely.  Deep layers lose most: their
worst-case accumulator grows with ``cin`` faster than typical values do.  Per
``z_bits``, SFC-6(7x7,3x3), pow2 scales, no fine-tuning:

* ``random_nmse_cin64`` / ``random_nmse_cin512``: output NMSE (int8 output
  against the float conv of the int8 input) of a random 3x3 layer with ``cin``
  64 / 512 input channels, 16 output channels, Gaussian weights of variance
  ``1 / (9 cin)``, ReLU'd Gaussian 14x14 inputs (two calibration and two
  evaluation images), seed 0;
* ``digits_nmse``: the geometric mean over the digits ResNet's 3x3 stride-1
  layers of the output NMSE (``sfc-hls error-study --z-bits Z --algorithms
  sfc6-7x7-3x3 --scale-modes pow2 --fine-tune off``; 32 calibration and 64
  evaluation images, seed 0).

Writes bench/results/zbits.{json,md,png}; ``python bench/bench_zbits.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import git_commit, tool_versions  # noqa: E402

from sfc_hls.atomic_files import write_text_atomic  # noqa: E402
from sfc_hls.config import EngineConfig  # noqa: E402
from sfc_hls.golden import conv2d_int8  # noqa: E402
from sfc_hls.host.error_study import run_error_study  # noqa: E402
from sfc_hls.quantize import (  # noqa: E402
    dequantize_output,
    float_conv2d,
    quantize_conv_layer,
    quantize_input,
)
from sfc_hls.text_table import format_table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ALGORITHM = "sfc6-7x7-3x3"
Z_BITS = (24, 20, 18, 17, 16)
CINS = (64, 512)
SEED = 0


def random_layer_nmse(cin: int, z_bits: int) -> float:
    """Output NMSE of a random 3x3 layer with ``cin`` input channels at ``z_bits``."""
    rng = np.random.default_rng(SEED)
    cout = 16
    w = rng.normal(0, 1 / np.sqrt(9 * cin), (cout, cin, 3, 3))
    b = rng.normal(0, 0.1, cout)
    calib = np.maximum(rng.normal(0, 1, (2, cin, 14, 14)), 0)
    evaluate = np.maximum(rng.normal(0, 1, (2, cin, 14, 14)), 0)
    sx = float(calib.max()) / 127
    config = EngineConfig(algorithm=ALGORITHM, scale_mode="pow2", cin_max=512, cout_max=512,
                          z_bits=z_bits)  # fmt: skip
    params = quantize_conv_layer(w, b, config=config, calib_inputs_int8=quantize_input(calib, sx),
                                 input_scale=sx, padding=1)  # fmt: skip
    x = quantize_input(evaluate, sx)
    ref = float_conv2d(x * sx, w, b, 1)
    out = dequantize_output(conv2d_int8(x, params), params)
    return float(np.mean((out - ref) ** 2) / np.var(ref))


def measure() -> list[dict]:
    rows = []
    for z_bits in Z_BITS:
        row: dict = {"z_bits": z_bits}
        for cin in CINS:
            row[f"random_nmse_cin{cin}"] = random_layer_nmse(cin, z_bits)
        study = run_error_study(algorithms=[ALGORITHM], scale_modes=["pow2"], fine_tune=[False],
                                z_bits=z_bits)  # fmt: skip
        row["digits_nmse"] = study["summary"]["geomean_over_layers"]["pow2"][ALGORITHM]["nmse_out"]
        rows.append(row)
        print(", ".join(f"{k} {v:.3e}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in row.items()), flush=True)  # fmt: skip
    return rows


def markdown(result: dict) -> str:
    keys = [f"random_nmse_cin{c}" for c in CINS] + ["digits_nmse"]
    head = ["z_bits", *[f"random 3x3, cin {c}" for c in CINS], "digits ResNet (geomean)"]
    body = [[str(r["z_bits"]), *[f"{r[k]:.3e}" for k in keys]] for r in result["rows"]]
    meta = result["meta"]
    return "\n".join([
        "# Output NMSE against z_bits (SFC-6(7x7,3x3), pow2)",
        "",
        f"Commit `{meta['git_commit']}`; seed {meta['seed']}. Int8 output against the float conv "
        "of the int8 input; random layers: Gaussian weights, ReLU'd Gaussian inputs; digits: "
        "`sfc-hls error-study --z-bits Z` (five 3x3 layers). Regenerate: "
        "`python bench/bench_zbits.py`.",
        "",
        format_table(head, body, align="l" + "r" * (len(head) - 1), markdown=True),
        "",
    ])  # fmt: skip


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    rows = sorted(result["rows"], key=lambda r: r["z_bits"])
    for key, label in [(f"random_nmse_cin{c}", f"random 3x3, cin {c}") for c in CINS] + [
        ("digits_nmse", "digits ResNet (geomean)")
    ]:
        ax.plot([r["z_bits"] for r in rows], [r[key] for r in rows], "o-", label=label)
    ax.set(xlabel="z_bits", ylabel="output NMSE", yscale="log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = measure()
    by_bits = {r["z_bits"]: r for r in rows}
    default = EngineConfig.z_bits
    result = {
        "meta": {
            "git_commit": git_commit(),
            "versions": tool_versions(),
            "seed": SEED,
            "algorithm": ALGORITHM,
            "z_bits": Z_BITS,
        },  # fmt: skip
        "rows": rows,
        "acceptance": {
            "default_z_bits": default,
            # The default's loss against 24 bits on the deepest layer (1.0 = none).
            "cin512_nmse_ratio_default_vs_24": round(
                by_bits[default]["random_nmse_cin512"] / by_bits[24]["random_nmse_cin512"], 4
            ),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "zbits.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / "zbits.md", markdown(result))
    plot(result, args.out / "zbits.png")
    print(markdown(result))
    print(f"wrote {args.out}/zbits.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
