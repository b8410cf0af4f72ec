"""Engine regression: generated Verilog in Verilator against the golden model.

``python -m sfc_hls.sim.engine_regression`` (what ``make sim`` runs) generates
the default engine (SFC-6(7x7,3x3), see :class:`~sfc_hls.config.EngineConfig`),
draws random quantized layers (random Cin, Cout, H, W including sizes that are
not multiples of the tile, ReLU on and off), runs them through the RTL with
random stalls on every stream, a reset in the middle of a layer and a bad
descriptor, checks every output bit-exactly against the golden model and
prints a summary.  ``--waves`` (or ``WAVES=1``) writes a waveform.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sfc_hls.config import EngineConfig, add_engine_arguments
from sfc_hls.datapath import random_layer_quant
from sfc_hls.hw.generate import TOPLEVEL, generate_engine
from sfc_hls.sim.verilator import run_cocotb

__all__ = ["LayerShape", "default_layers", "run_regression", "main"]


@dataclass(frozen=True)
class LayerShape:
    batch: int
    cin: int
    cout: int
    height: int
    width: int
    relu: bool


def default_layers(config: EngineConfig, count: int, rng: np.random.Generator) -> list[LayerShape]:
    """``count`` random layer shapes that fit ``config`` (first ones cover the corner cases)."""
    m_out = config.algo.output_tile
    shapes = [
        # cout not a multiple of P_co, map not a multiple of the tile, ReLU
        LayerShape(
            1,
            min(8, config.cin_max),
            min(config.pco + 2, config.cout_max),
            2 * m_out + 3,
            m_out + 2,
            True,
        ),  # fmt: skip
        # fewer input channels than lanes (first layer of a network), batch of 2
        LayerShape(
            2,
            min(3, config.cin_max),
            min(config.pco, config.cout_max),
            m_out + 1,
            2 * m_out - 1,
            False,
        ),  # fmt: skip
    ]
    while len(shapes) < count:
        shapes.append(
            LayerShape(
                1,
                int(rng.integers(1, min(config.cin_max, 32) + 1)),
                int(rng.integers(1, min(config.cout_max, 3 * config.pco) + 1)),
                int(rng.integers(1, 3 * m_out + 1)),
                int(rng.integers(1, 3 * m_out + 1)),
                bool(rng.integers(0, 2)),
            )
        )
    return shapes[:count]


def _write_layer(work: Path, name: str, config: EngineConfig, shape: LayerShape, rng) -> dict:
    params = random_layer_quant(
        config, shape.cin, shape.cout, rng, padding=config.algo.kernel // 2, relu=shape.relu
    )
    x = rng.integers(-128, 128, size=(shape.batch, shape.cin, shape.height, shape.width))
    params.save(work / f"{name}.json")
    np.save(work / f"{name}.npy", x.astype(np.int8))
    return {"name": name, "params": str(work / f"{name}.json"), "input": str(work / f"{name}.npy")}


def run_regression(
    config: EngineConfig,
    *,
    layers: int = 4,
    seed: int = 1,
    input_pause: float = 0.2,
    output_pause: float = 0.3,
    throughput_cin: int = 64,
    waves: bool = False,
    build_root: Path | None = None,
    tests: tuple[str, ...] | None = None,
) -> dict:
    """Generate, build and run; returns the report (raises on any mismatch)."""
    t0 = time.perf_counter()
    gen = generate_engine(config)
    rng = np.random.default_rng(seed)
    build_root = Path(build_root or os.environ.get("SFC_HLS_SIM_BUILD", "sim_build"))
    work = (
        build_root / "regression" / gen.manifest["verilog_sha256"][:16] / f"seed{seed}"
    ).resolve()
    work.mkdir(parents=True, exist_ok=True)
    entries = [
        _write_layer(work, f"layer{k}", config, shape, rng)
        for k, shape in enumerate(default_layers(config, layers, rng))
    ]
    m_out = config.algo.output_tile
    cin_t = min(throughput_cin, config.cin_max)
    throughput = _write_layer(
        work,
        "throughput",
        config,
        LayerShape(1, cin_t, min(config.pco, config.cout_max), 3 * m_out, 3 * m_out, False),
        rng,
    )
    report_file = work / "report.json"
    report_file.unlink(missing_ok=True)
    tb_cfg = {
        "engine": config.to_dict(),
        "layers": entries,
        "throughput_layer": throughput,
        "seed": seed,
        "input_pause": input_pause,
        "output_pause": output_pause,
        "report_file": str(report_file),
    }
    result = run_cocotb(
        [gen.verilog],
        TOPLEVEL,
        "sfc_hls.sim.tb_engine",
        build_root=build_root,
        config=tb_cfg,
        seed=seed,
        waves=waves,
        testcase=list(tests) if tests else None,
    )
    report = json.loads(report_file.read_text())
    report.update(
        engine=config.to_dict(),
        generation_seconds=gen.seconds,
        build_seconds=result.build_seconds,
        test_seconds=result.test_seconds,
        rebuilt=result.rebuilt,
        tests=list(result.tests),
        wall_seconds=time.perf_counter() - t0,
        verilog=str(gen.verilog),
        report_file=str(report_file),
        waves=[str(p) for p in sorted(Path(result.test_dir).glob("*.[fv][sc][td]"))],
    )
    report_file.write_text(json.dumps(report, indent=2))
    return report


def summary_table(report: dict) -> str:
    rows = [("layer", "batch", "cin", "cout", "HxW", "tiles", "act beats", "cycles",
             "beats/cycle", "bit-exact")]  # fmt: skip
    entries = list(report.get("layers", []))
    for key in ("throughput", "reset"):
        if key in report:
            entries.append(report[key])
    for e in entries:
        rows.append(
            (
                e["name"],
                str(e["batch"]),
                str(e["cin"]),
                str(e["cout"]),
                f"{e['height']}x{e['width']}",
                str(e["tiles"]),
                str(e["act_beats"]),
                str(e["cycles"]),
                f"{e['act_beats'] / e['cycles']:.3f}",
                "yes" if e["bit_exact"] else "NO",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_engine_arguments(parser)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--waves", action="store_true", default=os.environ.get("WAVES") == "1")
    args = parser.parse_args(argv)
    try:
        config = EngineConfig.from_args(args)
    except (TypeError, ValueError) as exc:
        print(f"engine_regression: error: {exc}", file=sys.stderr)
        return 2
    print(f"engine: {config.algo.title}, P_co={config.pco}, {config.scale_mode} scales, "
          f"cin_max={config.cin_max}, cout_max={config.cout_max}")  # fmt: skip
    report = run_regression(config, layers=args.layers, seed=args.seed, waves=args.waves)
    print(summary_table(report))
    thr = report["throughput"]
    worst = max(thr["group_cycles_per_beat"])
    all_exact = all(e["bit_exact"] for e in report["layers"]) and thr["bit_exact"]
    print(
        f"\nlayers: {len(report['layers']) + 2}  tiles: "
        f"{sum(e['tiles'] for e in report['layers']) + thr['tiles']}  "
        f"steady-state cycles per act beat (cin={thr['cin']}): {worst:.3f}  "
        f"bit-exact: {'yes' if all_exact else 'NO'}"
    )
    print(
        f"generation {report['generation_seconds']:.1f} s, Verilator build "
        f"{report['build_seconds']:.1f} s, simulation {report['test_seconds']:.1f} s, "
        f"total {report['wall_seconds']:.1f} s\nVerilog: {report['verilog']}\n"
        f"report: {report['report_file']}" + "".join(f"\nwaveform: {w}" for w in report["waves"])
    )
    return 0 if all_exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
