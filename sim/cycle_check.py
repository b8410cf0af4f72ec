"""Cycle model against the RTL: layers run in Verilator without stalls, cycles compared.

:func:`measure_layers` runs layer shapes through the generated engine with the
engine testbench (:mod:`sfc_hls.sim.tb_engine`, test ``layers_bit_exact``,
streams that never pause), so every layer is also checked bit-exactly
against the golden model, and returns the cycles
:meth:`~sfc_hls.sim.tb_engine.EngineTestbench.run_layer` measured.
:func:`compare` puts them next to :func:`sfc_hls.cycle_model.layer_cycles`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sfc_hls.config import EngineConfig
from sfc_hls.cycle_model import layer_cycles
from sfc_hls.datapath import random_layer_quant
from sfc_hls.hw.generate import TOPLEVEL, generate_engine
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.sim.engine_regression import LayerShape
from sfc_hls.sim.verilator import run_cocotb

__all__ = ["CycleCheck", "measure_layers", "compare", "layer_tiles"]


@dataclass(frozen=True)
class CycleCheck:
    """One layer: its descriptor, measured and modelled cycles."""

    batch: int
    cin: int
    cout: int
    height: int
    width: int
    tiles: int
    measured: int
    modelled: int
    bit_exact: bool

    @property
    def error(self) -> float:
        """(modelled - measured) / measured."""
        return (self.modelled - self.measured) / self.measured

    def to_dict(self) -> dict:
        return {**asdict(self), "error": self.error}


def layer_tiles(config: EngineConfig, shape: LayerShape) -> int:
    """Output tiles of a stride-1 ``same`` layer (the TILES register)."""
    return shape.batch * config.algo.tiles(shape.height, shape.width)


def measure_layers(
    config: EngineConfig,
    shapes: list[LayerShape],
    *,
    seed: int = 1,
    build_root: str | os.PathLike | None = None,
) -> list[dict]:
    """Run ``shapes`` back to back on ``config``'s engine; the testbench's per-layer report."""
    gen = generate_engine(config)
    build_root = Path(build_root or os.environ.get("SFC_HLS_SIM_BUILD", "sim_build")).resolve()
    work = build_root / "cycle_check" / gen.manifest["verilog_sha256"][:16] / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    layers = []
    for k, shape in enumerate(shapes):
        params = random_layer_quant(
            config, shape.cin, shape.cout, rng, padding=config.algo.kernel // 2, relu=shape.relu
        )
        x = rng.integers(-128, 128, size=(shape.batch, shape.cin, shape.height, shape.width))
        params.save(work / f"layer{k}.json")
        np.save(work / f"layer{k}.npy", x.astype(np.int8))
        layers.append(
            {"name": f"layer{k}", "params": str(work / f"layer{k}.json"),
             "input": str(work / f"layer{k}.npy")}
        )  # fmt: skip
    report_file = work / "report.json"
    report_file.unlink(missing_ok=True)
    run_cocotb(
        [gen.verilog],
        TOPLEVEL,
        "sfc_hls.sim.tb_engine",
        build_root=build_root,
        config={
            "engine": config.to_dict(),
            "layers": layers,
            "seed": seed,
            "input_pause": 0.0,
            "output_pause": 0.0,
            "report_file": str(report_file),
        },
        seed=seed,
        testcase=["layers_bit_exact"],
    )
    return json.loads(report_file.read_text())["layers"]


def compare(
    config: EngineConfig,
    shapes: list[LayerShape],
    *,
    seed: int = 1,
    build_root: str | os.PathLike | None = None,
) -> list[CycleCheck]:
    """Measured (Verilator) and modelled cycles of ``shapes`` on ``config``'s engine."""
    timing = EngineInterface.from_config(config).timing()
    measured = measure_layers(config, shapes, seed=seed, build_root=build_root)
    out = []
    for shape, meas in zip(shapes, measured, strict=True):
        tiles = layer_tiles(config, shape)
        if tiles != meas["tiles"]:
            raise AssertionError(f"tiles: model {tiles}, testbench {meas['tiles']}")
        model = layer_cycles(timing, cin=shape.cin, cout=shape.cout, tiles=tiles)
        out.append(
            CycleCheck(
                shape.batch,
                shape.cin,
                shape.cout,
                shape.height,
                shape.width,
                tiles,
                int(meas["cycles"]),
                model.cycles,
                bool(meas["bit_exact"]),
            )  # fmt: skip
        )
    return out
