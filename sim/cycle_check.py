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
from sfc_hls.cycle_model import bandwidth_bound_cycles, layer_cycles, layer_traffic
from sfc_hls.golden import conv2d_int8
from sfc_hls.hw.engine_streams import EngineStreams
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.sim.engine_regression import LayerShape, random_layer
from sfc_hls.sim.native import engine_model, run_layer

__all__ = ["CycleCheck", "measure_layers", "compare"]


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
    mode: str = "fast"
    map_beats: int = 0  # i_map beats (a layer with map input)
    map_bytes: int = 0  # the map's own bytes (what a DMA moves for them)
    spatial_weights: bool = False  # spatial weights into the engine's weight transform
    act_replay: bool = False  # i_act beats once, replayed on chip for the other groups
    chunks: int = 1  # engine layers the layer ran as (chunks of tiles the replay buffer holds)

    @property
    def error(self) -> float:
        """(modelled - measured) / measured."""
        return (self.modelled - self.measured) / self.measured

    def to_dict(self) -> dict:
        return {**asdict(self), "error": self.error}


def measure_layers(
    config: EngineConfig,
    shapes: list[LayerShape],
    *,
    seed: int = 1,
    build_root: str | os.PathLike | None = None,
    bytes_per_cycle: float | None = None,
) -> list[dict]:
    """Run ``shapes`` on ``config``'s engine (native runner, no stalls; with
    ``bytes_per_cycle`` every stream shares a memory of that bandwidth); per layer
    the descriptor (tiles, taps, replicas, the ``i_map`` beats of a layer with map
    input, spatial weights and replay: wherever the engine can; the tiles of each chunk of a
    layer run in chunks), the measured cycles (all chunks) and whether the output equals the
    golden model."""
    model = engine_model(config, build_root=build_root)
    streams = EngineStreams(config)
    rng = np.random.default_rng(seed)
    results = []
    for shape in shapes:
        params, x = random_layer(config, shape, rng)
        chunks = streams.layer_chunks(params, x, stride=shape.stride)
        beats = chunks[0]
        out, run = run_layer(model, streams, params, x, stride=shape.stride,
                             bytes_per_cycle=bytes_per_cycle)  # fmt: skip
        results.append(
            {
                "tiles": sum(c.tiles for c in chunks),
                "chunk_tiles": [c.tiles for c in chunks],
                "taps": params.kernel**2 if params.mode == "direct" else 1,
                "replicas": beats.schedule.replicas if beats.schedule else 1,
                "map_beats": len(beats.map),
                "map_bytes": beats.map_bytes,
                "spatial_weights": beats.spatial_weights,
                "act_replay": beats.act_replay,
                "cycles": run.cycles,
                "bit_exact": bool(np.array_equal(out, conv2d_int8(x, params, stride=shape.stride))),
            }
        )
    return results


def compare(
    config: EngineConfig,
    shapes: list[LayerShape],
    *,
    seed: int = 1,
    build_root: str | os.PathLike | None = None,
    bytes_per_cycle: float | None = None,
) -> list[CycleCheck]:
    """Measured (Verilator) and modelled cycles of ``shapes`` on ``config``'s engine; with
    ``bytes_per_cycle`` through a memory of that bandwidth, against
    :func:`~sfc_hls.cycle_model.bandwidth_bound_cycles`."""
    interface = EngineInterface.from_config(config)
    timing, bits = interface.timing(), interface.stream_bits()
    out = []
    measured = measure_layers(config, shapes, seed=seed, build_root=build_root,
                              bytes_per_cycle=bytes_per_cycle)  # fmt: skip
    for shape, meas in zip(shapes, measured, strict=True):
        model = 0
        for tiles in meas["chunk_tiles"]:  # each chunk is a layer of its own
            descriptor = {"cin": shape.cin, "cout": shape.cout, "tiles": tiles,
                          "mode": shape.mode, "taps": meas["taps"], "replicas": meas["replicas"],
                          "map_beats": meas["map_beats"],
                          "spatial_weights": meas["spatial_weights"],
                          "act_replay": meas["act_replay"]}  # fmt: skip
            cycles = layer_cycles(timing, **descriptor)
            if bytes_per_cycle is None:
                model += cycles.cycles
                continue
            traffic = layer_traffic(timing, bits, **descriptor,
                                    map_bytes=meas["map_bytes"] if meas["map_beats"] else None)  # fmt: skip
            model += bandwidth_bound_cycles(cycles, traffic, bytes_per_cycle)
        out.append(
            CycleCheck(
                shape.batch,
                shape.cin,
                shape.cout,
                shape.height,
                shape.width,
                meas["tiles"],
                int(meas["cycles"]),
                model,
                bool(meas["bit_exact"]),
                shape.mode,
                meas["map_beats"],
                meas["map_bytes"],
                meas["spatial_weights"],
                meas["act_replay"],
                len(meas["chunk_tiles"]),
            )  # fmt: skip
        )
    return out
