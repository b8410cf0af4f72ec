"""Cycle model against the RTL: layers run in Verilator without stalls, cycles compared.

:func:`measure_layers` runs layer shapes through the generated engine with the
native stream runner (:mod:`sfc_hls.sim.native`, streams that never pause),
checks every output bit-exactly against the golden model, and returns the
cycles it measured; :func:`compare` puts them next to
:func:`sfc_hls.cycle_model.layer_cycles`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from sfc_hls.config import EngineConfig
from sfc_hls.cycle_model import layer_cycles
from sfc_hls.datapath import random_layer_quant
from sfc_hls.golden import conv2d_int8
from sfc_hls.hw.engine_streams import EngineStreams
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.sim.engine_regression import LayerShape
from sfc_hls.sim.native import engine_model, run_layer

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
    """Run ``shapes`` on ``config``'s engine (native runner, no stalls); per layer the
    tiles, the measured cycles and whether the output equals the golden model."""
    model = engine_model(config, build_root=build_root)
    streams = EngineStreams(config)
    rng = np.random.default_rng(seed)
    results = []
    for shape in shapes:
        params = random_layer_quant(
            config, shape.cin, shape.cout, rng, padding=config.algo.kernel // 2, relu=shape.relu
        )
        x = rng.integers(-128, 128, size=(shape.batch, shape.cin, shape.height, shape.width))
        out, run = run_layer(model, streams, params, x)
        results.append(
            {
                "tiles": layer_tiles(config, shape),
                "cycles": run.cycles,
                "bit_exact": bool(np.array_equal(out, conv2d_int8(x, params))),
            }
        )
    return results


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
