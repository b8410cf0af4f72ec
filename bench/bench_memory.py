"""Benchmark: external memory traffic of the one-engine accelerator on ResNet-18.

For every conv of ResNet-18 (224x224) on the default accelerator
(:data:`bench_engines.DEFAULT`, sized by :func:`bench_engines.engine_config`)
this counts the bytes of every external stream as the stream protocol
defines them (:func:`sfc_hls.cycle_model.layer_traffic`, equal to the beats
``hw/engine_streams.py`` produces: ``tests/test_traffic.py``):
configuration writes, per-channel parameters, weights, activations in,
outputs.  It reports

* MB per frame at batch 1 and batch 8 (a batch runs as one layer: weights
  and parameters load once per batch) against the floor (every tensor moved
  once: input and output feature maps, spatial int8 weights);
* per-layer bandwidth at a 200 MHz engine clock (bytes / compute time) and
  the peak layer;
* the frame's cycles when the streams share one DDR4-2400 x64 channel
  (19.2 GB/s, 96 bytes per cycle at 200 MHz; a layer takes the larger of
  compute and transfer, :func:`sfc_hls.cycle_model.bandwidth_bound_cycles`);
* a roofline plot (PNG): standard MACs per cycle against MACs per external
  byte, with the compute roofs and the DDR4 roof.

Three accelerators: activations as tiles on ``i_act``; with a feature-map
buffer (``map``); with the buffer and a weight transform (``map + spatial
weights``: the fast layers stream int8 spatial weights, sfc_hls/weight_transform.py),
whose figures are the acceptance keys.  Writes bench/results/memory.{json,md,png}
with the ``acceptance`` keys of issue #14 (``resnet18_mb_per_frame``,
``peak_layer_gbps_at_200mhz``).

    python bench/bench_memory.py [--clock-mhz 200] [--bandwidth-gbps 19.2]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engines import DEFAULT, ConvLayer, engine_config, layer_descriptor, resnet18_layers  # noqa: E402
from provenance import RESULTS, git_commit, tool_versions  # noqa: E402

from sfc_hls.atomic_files import write_text_atomic  # noqa: E402
from sfc_hls.config import EngineConfig  # noqa: E402
from sfc_hls.cycle_model import (  # noqa: E402
    DDR4_2400_BYTES_PER_SECOND,
    bandwidth_bound_cycles,
    layer_traffic,
)
from sfc_hls.hw.interface import EngineInterface  # noqa: E402
from sfc_hls.text_table import format_table  # noqa: E402

STREAMS = ("cfg", "chan", "weight", "act", "map", "out")
#: The engine whose figures are the acceptance keys: map buffer, weight transform, replay buffer.
ACCEPTED = "map + spatial weights + replay"
#: Largest replay buffer the bench sizes (beats of 1056 bits: 4096 are 120 RAMB36); the stem's
#: 14,112 beats per group would need 3.4x that: it streams its beats once per group.
REPLAY_CAP = 4096


def floor_bytes(layer: ConvLayer) -> int:
    """Every tensor of the layer once: input map, int8 spatial weights, output map."""
    size_in = layer.out_size * layer.stride
    return (
        layer.cin * size_in**2
        + layer.cin * layer.cout * layer.kernel**2
        + (layer.cout * layer.out_size**2)
    )


def layer_entry(iface: EngineInterface, layer: ConvLayer, batch: int, clock_hz: float,
                bytes_per_cycle: float) -> dict:  # fmt: skip
    """Traffic, cycles and bandwidth of one layer on ``batch`` images."""
    desc = layer_descriptor(iface, layer, batch)
    lc = desc.cycles(iface, layer)
    map_bytes = batch * layer.cin * layer.out_size**2 if desc.map_beats else None
    traffic, bound = [], 0
    for part in desc.parts():  # the engine layers (chunks of tiles, or the layer)
        tr = layer_traffic(iface.timing(), iface.stream_bits(), cin=layer.cin, cout=layer.cout,
                           tiles=part.tiles, mode=part.mode, taps=part.taps,
                           replicas=part.replicas, map_beats=part.map_beats, map_bytes=map_bytes,
                           spatial_weights=part.spatial_weights, act_replay=part.act_replay)  # fmt: skip
        bound += bandwidth_bound_cycles(part.cycles(iface, layer), tr, bytes_per_cycle)
        traffic.append(tr)
    tr = replace(traffic[0], beats={k: sum(t.beats[k] for t in traffic) for k in traffic[0].beats},
                 bytes={k: sum(t.bytes[k] for t in traffic) for k in traffic[0].bytes})  # fmt: skip
    return {
        "name": layer.name,
        "mode": desc.mode,
        "map_input": desc.map_beats > 0,
        "act_replay": desc.act_replay,
        "chunks": len(desc.parts()),
        "macs": layer.macs * batch,
        "bytes": tr.bytes,
        "total_bytes": tr.total_bytes,
        "floor_bytes": floor_bytes(layer) * batch,
        "cycles": lc.cycles,
        "cycles_at_bandwidth": bound,
        "gbps": tr.total_bytes / (lc.cycles / clock_hz) / 1e9,
        "macs_per_byte": layer.macs * batch / tr.total_bytes,
    }


def frame(iface: EngineInterface, layers: list[ConvLayer], batch: int, clock_hz: float,
          bytes_per_cycle: float) -> dict:  # fmt: skip
    rows = [layer_entry(iface, ly, batch, clock_hz, bytes_per_cycle) for ly in layers]
    total = sum(r["total_bytes"] for r in rows)
    return {
        "batch": batch,
        "layers": rows,
        "mb_per_frame": total / batch / 1e6,
        "mb_per_frame_by_stream": {
            s: sum(r["bytes"][s] for r in rows) / batch / 1e6 for s in STREAMS
        },
        "floor_mb_per_frame": sum(r["floor_bytes"] for r in rows) / batch / 1e6,
        "cycles_per_frame": sum(r["cycles"] for r in rows) / batch,
        "cycles_per_frame_at_bandwidth": sum(r["cycles_at_bandwidth"] for r in rows) / batch,
        "peak_layer_gbps": max(r["gbps"] for r in rows),
        "bandwidth_bound_layers": sum(r["cycles_at_bandwidth"] > r["cycles"] for r in rows),
    }


def markdown(result: dict) -> str:
    meta = result["meta"]
    summary = [
        [name, str(f["batch"]), f"{f['mb_per_frame']:.1f}", f"{f['floor_mb_per_frame']:.1f}",
         *(f"{f['mb_per_frame_by_stream'][s]:.1f}" for s in STREAMS),
         f"{f['peak_layer_gbps']:.1f}", f"{f['cycles_per_frame'] / 1e6:.3f}",
         f"{f['cycles_per_frame_at_bandwidth'] / 1e6:.3f}", str(f["bandwidth_bound_layers"])]
        for name, engine in result["engines"].items()
        for f in engine["batches"]
    ]  # fmt: skip
    head = ["activations in", "batch", "MB/frame", "floor MB/frame", *(f"{s} MB" for s in STREAMS),
            "peak layer GB/s", "Mcycles/frame (compute)", "Mcycles/frame at DDR4",
            "layers bandwidth-bound"]  # fmt: skip
    best = result["engines"][meta["accepted_engine"]]
    layer_rows = [
        [r["name"], r["mode"] + (" (map)" if r["map_input"] else ""),
         f"{r['total_bytes'] / 1e6:.2f}", f"{r['floor_bytes'] / 1e6:.2f}",
         f"{r['bytes']['weight'] / 1e6:.2f}", f"{(r['bytes']['act'] + r['bytes']['map']) / 1e6:.2f}",
         f"{r['gbps']:.1f}", f"{r['cycles']:,}", f"{r['cycles_at_bandwidth']:,}"]
        for r in best["batches"][0]["layers"]
    ]  # fmt: skip
    eng = best["engine"]
    return "\n".join([
        "# External memory traffic: ResNet-18 (224x224) on the one-engine accelerator",
        "",
        f"Engine {eng['algorithm']}, P_co={eng['pco']}, cin_max={eng['cin_max']}; clock "
        f"{meta['clock_mhz']:.0f} MHz; memory {meta['bandwidth_gbps']} GB/s (one DDR4-2400 x64 "
        f"channel, theoretical). Bytes of every external stream as the protocol defines them "
        f"(`sfc_hls.cycle_model.layer_traffic`); *floor* moves every tensor once. "
        f"*tiles*: the activations as overlapping tiles on `i_act`, once per output-channel "
        f"group; *map*: the same engine with a {eng['map_kib']} KiB feature-map buffer "
        f"(`--map-kib`), the stride-1 fast layers' input maps once on `i_map` (rows of "
        f"{2 * eng['map_pairs']}L pixels) and their tiles built on chip; *map + spatial weights*: "
        f"also a weight transform (`--weight-transform`), the fast layers' weights as int8 "
        f"spatial weights and shifts (a header and 14 rows per `i_weight` beat, whole beats "
        f"counted) instead of transform-domain rows; *+ replay*: also an activation replay "
        f"buffer of {eng['replay_beats']} beats (`--replay-beats`): a layer whose group's "
        f"`i_act` beats fit sends them once and the engine replays them for the other groups. "
        f"Commit `{meta['git_commit']}`. "
        f"Regenerate: `python bench/bench_memory.py`.",
        "",
        format_table(head, summary, align="l" + "r" * (len(head) - 1), markdown=True),
        "",
        f"## Layers ({meta['accepted_engine']}, batch 1)",
        "",
        format_table(["layer", "mode", "MB", "floor MB", "weight MB", "act + map MB", "GB/s",
                      "cycles", "cycles at DDR4"], layer_rows, align="llrrrrrrr",
                     markdown=True),  # fmt: skip
    ]) + "\n"  # fmt: skip


def map_kib_for(config: EngineConfig, layers: list[ConvLayer]) -> int:
    """The smallest ``map_kib`` whose buffer holds every fast layer's input map (batch 1)."""
    tile, pairs = config.algo.input_tile, config.map_pairs
    words = max(config.map_words(1, ly.cin, ly.out_size, ly.out_size)
                for ly in layers if ly.mode == "fast")  # fmt: skip
    return -(-words * 2 * tile * tile * pairs // 1024)


def replay_beats_for(config: EngineConfig, layers: list[ConvLayer]) -> int:
    """The smallest multiple of 512 beats holding one group's ``i_act`` beats of every layer
    without map input whose group takes at most :data:`REPLAY_CAP` beats (batch 1)."""
    iface = EngineInterface.from_config(config)
    beats = []
    for layer in layers:
        desc = layer_descriptor(iface, layer)
        if not desc.map_beats:
            reduction = layer.cin * (desc.taps if desc.mode == "direct" else 1)
            beats.append(desc.tiles * reduction)
    return -(-max(b for b in beats if b <= REPLAY_CAP) // 512) * 512


def plot(result: dict, path: Path, iface: EngineInterface, bytes_per_cycle: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = result["engines"][result["meta"]["accepted_engine"]]["batches"][0]["layers"]
    mults = iface.positions * iface.lanes
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, color in (("fast", "tab:blue"), ("direct", "tab:orange")):
        mine = [r for r in rows if r["mode"] == mode]
        x = [r["macs_per_byte"] for r in mine]
        ax.scatter(x, [r["macs"] / r["cycles"] for r in mine], color=color, zorder=3,
                   label=f"{mode} layers, unlimited memory")  # fmt: skip
        ax.scatter(x, [r["macs"] / r["cycles_at_bandwidth"] for r in mine], zorder=3,
                   facecolors="none", edgecolors=color, label=f"{mode} layers at DDR4")  # fmt: skip
    xs = [min(r["macs_per_byte"] for r in rows) / 2, max(r["macs_per_byte"] for r in rows) * 2]
    ax.plot(xs, [x * bytes_per_cycle for x in xs], "k--", label="DDR4-2400 roof")
    ax.axhline(mults * iface.algo.ratio, color="tab:blue", ls=":", label="fast-mode compute roof")
    ax.axhline(mults, color="tab:orange", ls=":", label="direct-mode compute roof")
    ax.set(xscale="log", yscale="log", xlabel="standard MACs per external byte",
           ylabel="standard MACs per cycle", title="ResNet-18 layers (batch 1)")  # fmt: skip
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clock-mhz", type=float, default=200.0, help="engine clock (200)")
    parser.add_argument("--bandwidth-gbps", type=float, default=DDR4_2400_BYTES_PER_SECOND / 1e9,
                        help="memory bandwidth in GB/s (one DDR4-2400 channel: 19.2)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for name in ("clock_mhz", "bandwidth_gbps"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    layers = resnet18_layers()
    config = engine_config(*DEFAULT, layers)
    mapped = replace(config, map_kib=map_kib_for(config, layers))
    spatial = replace(mapped, weight_transform=True)
    engines = {"tiles": config, "map": mapped, "map + spatial weights": spatial,
               ACCEPTED: replace(spatial, replay_beats=replay_beats_for(spatial, layers))}  # fmt: skip
    clock = args.clock_mhz * 1e6
    bpc = args.bandwidth_gbps * 1e9 / clock
    results = {}
    for name, cfg in engines.items():
        iface = EngineInterface.from_config(cfg)
        results[name] = {"engine": cfg.to_dict(),
                         "batches": [frame(iface, layers, b, clock, bpc) for b in (1, 8)]}  # fmt: skip
    accepted = results[ACCEPTED]["batches"]
    result = {
        "meta": {
            "git_commit": git_commit(),
            "versions": tool_versions(),
            "clock_mhz": args.clock_mhz,
            "bandwidth_gbps": args.bandwidth_gbps,
            "bytes_per_cycle": bpc,
            "accepted_engine": ACCEPTED,
        },  # fmt: skip
        "engines": results,
        "acceptance": {
            "resnet18_mb_per_frame": round(accepted[0]["mb_per_frame"], 2),
            "resnet18_mb_per_frame_batch8": round(accepted[1]["mb_per_frame"], 2),
            "peak_layer_gbps_at_200mhz": round(accepted[0]["peak_layer_gbps"], 2)
            if args.clock_mhz == 200
            else None,
        },
    }
    iface = EngineInterface.from_config(engines[ACCEPTED])
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "memory.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / "memory.md", markdown(result))
    plot(result, args.out / "memory.png", iface, bpc)
    print(markdown(result))
    print(json.dumps(result["acceptance"], indent=2))
    print(f"wrote {args.out}/memory.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
