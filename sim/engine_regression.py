"""Engine regression: generated Verilog in Verilator against the golden model.

``python -m sfc_hls.sim.engine_regression`` (what ``make sim`` runs) generates
the default engine (SFC-6(7x7,3x3), see :class:`~sfc_hls.config.EngineConfig`),
draws random quantized layers (random Cin, Cout, H, W including sizes that are
not multiples of the tile, ReLU on and off), runs them through the RTL with
random stalls on every stream, a reset in the middle of a layer of each mode and bad
descriptors of both modes, checks every output bit-exactly against the golden model and
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

from sfc_hls.cache import sim_build_root
from sfc_hls.config import EngineConfig, add_engine_arguments
from sfc_hls.datapath import random_layer_quant
from sfc_hls.golden import conv2d_int8
from sfc_hls.hw.engine_streams import EngineStreams
from sfc_hls.hw.generate import TOPLEVEL, generate_engine
from sfc_hls.sim.native import engine_model, run_layer
from sfc_hls.sim.verilator import run_cocotb
from sfc_hls.text_table import format_table

__all__ = ["LayerShape", "default_layers", "run_regression", "main"]


@dataclass(frozen=True)
class LayerShape:
    """A test layer: shapes, ReLU and, for direct mode, the kernel and stride."""

    batch: int
    cin: int
    cout: int
    height: int
    width: int
    relu: bool
    mode: str = "fast"
    kernel: int | None = None  # direct mode (fast: the algorithm's)
    stride: int = 1

    def padding(self, config: EngineConfig) -> int:
        return (self.kernel or config.algo.kernel) // 2


def default_layers(config: EngineConfig, count: int, rng: np.random.Generator) -> list[LayerShape]:
    """``count`` random layer shapes that fit ``config``, fast and direct mode in turn.

    The first four cover the corner cases: a fast layer with ``cout`` not a
    multiple of ``P_co`` and a map not a multiple of the tile; a 7x7 stride-2
    direct layer on 3 channels (a ResNet stem); a fast layer with one input
    channel and one tile per image on a batch of 2, over more than two
    output-channel groups (the MAC array finishes groups faster than the
    output path drains them, so the banks' reuse is exercised); a 3x3 stride-2
    direct layer with several output-channel groups.
    """
    m_out, cin_max = config.algo.output_tile, config.cin_max
    cout = min(config.pco + 2, config.cout_max)
    stem_cin = max(1, min(3, config.direct_reduction_max // 49, cin_max))
    s2_cin = max(1, min(8, config.direct_reduction_max // 9, cin_max))
    shapes = [
        LayerShape(1, min(8, cin_max), cout, 2 * m_out + 3, m_out + 2, True),
        LayerShape(1, stem_cin, min(3 * config.pco, config.cout_max), 23, 19, True, "direct", 7, 2),
        LayerShape(2, 1, min(3 * config.pco + 1, config.cout_max), m_out, max(m_out - 1, 1), False),
        LayerShape(1, s2_cin, config.cout_max, 11, 9, False, "direct", 3, 2),
    ]  # fmt: skip
    while len(shapes) < count:
        if len(shapes) % 2 == 0:
            size = rng.integers(1, 3 * m_out + 1, size=2)
            kernel, stride = None, 1
            shape_cin = int(rng.integers(1, min(cin_max, 32) + 1))
        else:
            kernel = int(rng.choice([1, 3, 5]))
            stride = int(rng.integers(1, 3))
            size = rng.integers(kernel, 20, size=2)
            shape_cin = int(rng.integers(1, max(1, min(cin_max, 32,
                                                       config.direct_reduction_max // kernel**2)) + 1))  # fmt: skip
        shapes.append(
            LayerShape(
                1,
                shape_cin,
                int(rng.integers(1, min(config.cout_max, 3 * config.pco) + 1)),
                int(size[0]),
                int(size[1]),
                bool(rng.integers(0, 2)),
                "fast" if kernel is None else "direct",
                kernel,
                stride,
            )
        )
    return shapes[:count]


def random_layer(config: EngineConfig, shape: LayerShape, rng: np.random.Generator):
    """Random quantized parameters and int8 input of a :class:`LayerShape`."""
    params = random_layer_quant(config, shape.cin, shape.cout, rng, padding=shape.padding(config),
                                relu=shape.relu, mode=shape.mode, kernel=shape.kernel)  # fmt: skip
    x = rng.integers(-128, 128, size=(shape.batch, shape.cin, shape.height, shape.width))
    return params, x


def _write_layer(work: Path, name: str, config: EngineConfig, shape: LayerShape, rng) -> dict:
    params, x = random_layer(config, shape, rng)
    params.save(work / f"{name}.json")
    np.save(work / f"{name}.npy", x.astype(np.int8))
    return {"name": name, "params": str(work / f"{name}.json"),
            "input": str(work / f"{name}.npy"), "stride": shape.stride}  # fmt: skip


def run_regression(
    config: EngineConfig,
    *,
    layers: int = 4,
    seed: int = 1,
    input_pause: float = 0.2,
    output_pause: float = 0.3,
    throughput_shape: LayerShape | None = None,
    waves: bool = False,
    build_root: Path | None = None,
    tests: tuple[str, ...] | None = None,
) -> dict:
    """Generate, build and run; returns the report (raises on any mismatch).

    The protocol tests (random layers with stalls on every stream, a reset in
    the middle of a layer, a bad descriptor) run under cocotb
    (:mod:`sfc_hls.sim.tb_engine`); the throughput layer (default: ResNet-18's
    ``layer1`` shape, 64 x 56 x 56 -> 64, clipped to the engine's limits) runs
    without stalls in the native runner (:mod:`sfc_hls.sim.native`).
    """
    t0 = time.perf_counter()
    gen = generate_engine(config)
    rng = np.random.default_rng(seed)
    build_root = Path(build_root or sim_build_root())
    work = (
        build_root / "regression" / gen.manifest["verilog_sha256"][:16] / f"seed{seed}"
    ).resolve()
    work.mkdir(parents=True, exist_ok=True)
    entries = [
        _write_layer(work, f"layer{k}", config, shape, rng)
        for k, shape in enumerate(default_layers(config, layers, rng))
    ]
    report_file = work / "report.json"
    report_file.unlink(missing_ok=True)
    tb_cfg = {
        "engine": config.to_dict(),
        "layers": entries,
        "seed": seed,
        "input_pause": input_pause,
        "output_pause": output_pause,
        "report_file": str(report_file),
    }
    result = run_cocotb(
        gen.simulation_sources,
        TOPLEVEL,
        "sfc_hls.sim.tb_engine",
        build_root=build_root,
        config=tb_cfg,
        seed=seed,
        waves=waves,
        testcase=list(tests) if tests else None,
    )
    report = json.loads(report_file.read_text())
    t_native = time.perf_counter()
    shape = throughput_shape or LayerShape(
        1, min(64, config.cin_max), min(64, config.cout_max), 56, 56, False
    )
    report["throughput"] = native_throughput(config, shape, rng, build_root=build_root)
    report.update(
        engine=config.to_dict(),
        generation_seconds=gen.seconds,
        build_seconds=result.build_seconds,
        test_seconds=result.test_seconds,
        native_seconds=time.perf_counter() - t_native,
        rebuilt=result.rebuilt,
        tests=list(result.tests),
        wall_seconds=time.perf_counter() - t0,
        verilog=str(gen.verilog),
        report_file=str(report_file),
        waves=[str(p) for p in sorted(Path(result.test_dir).glob("*.[fv][sc][td]"))],
    )
    report_file.write_text(json.dumps(report, indent=2))
    return report


def native_throughput(
    config: EngineConfig, shape: LayerShape, rng: np.random.Generator, *, build_root: Path
) -> dict:
    """One layer without stalls in the native runner: bit-exact?, cycles, cycles per act beat."""
    params, x = random_layer(config, shape, rng)
    model = engine_model(config, build_root=build_root)
    streams = EngineStreams(config)
    # the i_act stream's rate: no map input, no replay (no chunks)
    out, run = run_layer(model, streams, params, x, map_input=False, act_replay=False)
    act = run.ports["i_act"]
    return {
        "name": "throughput",
        "batch": shape.batch,
        "cin": shape.cin,
        "cout": shape.cout,
        "height": shape.height,
        "width": shape.width,
        "tiles": shape.batch * config.algo.tiles(shape.height, shape.width),
        "act_beats": act["beats"],
        "cycles": run.cycles,
        "steady_cycles_per_beat": (act["last"] - act["first"]) / max(act["beats"] - 1, 1),
        "bit_exact": bool(np.array_equal(out, conv2d_int8(x, params))),
        "native_build_seconds": model.build_seconds,
        "cycles_per_second": run.cycles_per_second,
    }


def summary_table(report: dict) -> str:
    """The per-layer table ``make sim`` prints."""
    header = ["layer", "mode", "batch", "cin", "cout", "HxW", "tiles", "act beats", "cycles",
              "beats/cycle", "bit-exact"]  # fmt: skip
    entries = list(report.get("layers", []))
    entries += report.get("resets", [])
    if "throughput" in report:
        entries.append(report["throughput"])
    rows = [
        [
            e["name"] + (" (native)" if e["name"] == "throughput" else ""),
            e.get("mode", "fast"),
            str(e["batch"]),
            str(e["cin"]),
            str(e["cout"]),
            f"{e['height']}x{e['width']}",
            str(e["tiles"]),
            str(e["act_beats"]),
            f"{e['cycles']:,}",
            f"{e['act_beats'] / e['cycles']:.3f}",
            "yes" if e["bit_exact"] else "NO",
        ]
        for e in entries
    ]
    return format_table(header, rows, align="lllrrlrrrrl")


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
    all_exact = all(e["bit_exact"] for e in report["layers"]) and thr["bit_exact"]
    print(
        f"\nlayers: {len(report['layers']) + 2}  tiles: "
        f"{sum(e['tiles'] for e in report['layers']) + thr['tiles']}  "
        f"steady-state cycles per act beat (cin={thr['cin']}): "
        f"{thr['steady_cycles_per_beat']:.3f}  bit-exact: {'yes' if all_exact else 'NO'}"
    )
    print(
        f"generation {report['generation_seconds']:.1f} s, Verilator build "
        f"{report['build_seconds']:.1f} s, cocotb simulation {report['test_seconds']:.1f} s, "
        f"native run {report['native_seconds']:.1f} s "
        f"({thr['cycles_per_second']:,.0f} cycles/s), total {report['wall_seconds']:.1f} s"
        f"\nVerilog: {report['verilog']}\n"
        f"report: {report['report_file']}" + "".join(f"\nwaveform: {w}" for w in report["waves"])
    )
    return 0 if all_exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
