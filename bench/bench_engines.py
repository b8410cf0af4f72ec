"""Benchmark: one accelerator for the whole of ResNet-18 -- cycles, resources, throughput.

Every conv of ResNet-18 (224x224, batch 1) runs on one generated engine:
the 13 stride-1 3x3 convs in fast mode, the stem, the stride-2 3x3 convs and
the 1x1 downsamples in direct mode (:mod:`sfc_hls.schedule`, docs/datapath.md).
For the default accelerator (SFC-6(7x7,3x3), P_co=4) and the same one-engine
accelerator built on the other algorithms at an equal MAC-multiplier budget
(:data:`ENGINES`), it reports

* cycles per layer and per frame from the cycle model
  (:mod:`sfc_hls.cycle_model`, equal to Verilator's cycles in
  ``tests/test_cycle_model.py``);
* effective standard MACs per MAC multiplier per cycle (network and stride-1
  3x3 layers);
* every LUT, FF, DSP and BRAM of the generated top (Yosys ``synth_xilinx``,
  :mod:`sfc_hls.hw.synth_report`, cached by Verilog content) and standard
  MACs per DSP per cycle, per kLUT;
* with ``--verify``: one ResNet-18 layer of each mode (stem, stride-2 3x3,
  1x1 stride 2, stride-1 3x3; random weights, seeded) through the default
  accelerator's RTL in the native runner, bit-exact against the golden
  model, cycles next to the model's.

The previous accelerator (three engines) is quoted from its benchmark for
comparison.  Writes bench/results/engines.{json,md,png} with the
``acceptance`` keys of issue #12.

    python bench/bench_engines.py [--synth default|all|none] [--verify] [--family xcup]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provenance import RESULTS, git_commit, tool_versions  # noqa: E402

from sfc_hls.atomic_files import write_text_atomic  # noqa: E402
from sfc_hls.config import EngineConfig  # noqa: E402
from sfc_hls.cycle_model import LayerCycles, layer_cycles  # noqa: E402
from sfc_hls.hw.interface import EngineInterface  # noqa: E402
from sfc_hls.hw.synthesis import WIDEMUX  # noqa: E402
from sfc_hls.schedule import direct_schedule  # noqa: E402
from sfc_hls.text_table import format_table  # noqa: E402

SEED = 0
#: (algorithm, P_co): MAC multipliers = mults per tile x P_co, 512..576.
ENGINES = [
    ("sfc6-7x7-3x3", 4),  # 132 x 4 = 528 (the default)
    ("wino-4x4-3x3", 16),  # 36 x 16 = 576
    ("wino-2x2-3x3", 32),  # 16 x 32 = 512
    ("sfc4-4x4-3x3", 12),  # 46 x 12 = 552
    ("sfc6-6x6-3x3", 6),  # 88 x 6 = 528
    ("direct-3x3", 64),  # 9 x 64 = 576
]
DEFAULT = ENGINES[0]
#: The accelerator before this one (commit 6722ac7, bench/results/engines.{md,json} there and
#: issue #12): SFC-6(7x7) P_co=4 for the stride-1 3x3 convs, direct-3x3 P_co=64 for the
#: stride-2 and (embedded) 1x1 convs, direct-7x7 P_co=11 for the stem.
PREVIOUS = {
    "commit": "6722ac7",
    "engines": 3,
    "dsp": 1935,
    "frame_cycles": 2267770,
    "network_macs_per_dsp": 0.41,
    "stride1_effective": 3.31,
}


@dataclass(frozen=True)
class ConvLayer:
    """One conv layer of ResNet-18 (batch 1)."""

    name: str
    kernel: int
    stride: int
    cin: int
    cout: int
    out_size: int

    @property
    def macs(self) -> int:
        return self.out_size**2 * self.cin * self.cout * self.kernel**2

    @property
    def mode(self) -> str:
        return "fast" if (self.kernel, self.stride) == (3, 1) else "direct"


def resnet18_layers(size: int = 224) -> list[ConvLayer]:
    """The 20 conv layers of torchvision's ResNet-18 at ``size`` x ``size``."""
    layers = [ConvLayer("conv1", 7, 2, 3, 64, size // 2)]
    s, cin = size // 4, 64  # after the stem and the max-pool: 56
    for stage, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if (stage > 1 and block == 0) else 1
            out = s // stride
            p = f"layer{stage}.{block}"
            layers.append(ConvLayer(f"{p}.conv1", 3, stride, cin, cout, out))
            layers.append(ConvLayer(f"{p}.conv2", 3, 1, cout, cout, out))
            if stride == 2:
                layers.append(ConvLayer(f"{p}.downsample.0", 1, 2, cin, cout, out))
            cin, s = cout, out
    return layers


def engine_config(algorithm: str, pco: int, layers: list[ConvLayer]) -> EngineConfig:
    """The one engine for ``layers`` (as ``sfc_hls.host.calibration.engine_config`` sizes it)."""
    cout_max = -(-max(ly.cout for ly in layers) // pco) * pco
    direct = max(ly.kernel**2 * ly.cin for ly in layers if ly.mode == "direct")
    base = EngineConfig(algorithm=algorithm, pco=pco, cin_max=max(ly.cin for ly in layers),
                        cout_max=cout_max)  # fmt: skip
    cin_max = max(base.cin_max, -(-direct // base.backend_width))
    return EngineConfig(algorithm=algorithm, pco=pco, cin_max=cin_max, cout_max=cout_max,
                        direct_reduction_max=direct)  # fmt: skip


@dataclass(frozen=True)
class LayerDescriptor:
    """How one conv runs on an engine: the descriptor's mode, tiles, taps, replicas."""

    mode: str
    tiles: int
    taps: int
    replicas: int
    map_beats: int = 0  # i_map beats (the map input), 0: tiles on i_act
    spatial_weights: bool = False  # spatial weights into the engine's weight transform
    act_replay: bool = False  # i_act beats once, replayed on chip for the other groups
    chunks: tuple[int, ...] = ()  # tiles of each engine layer of a layer run in chunks

    def parts(self) -> list[LayerDescriptor]:
        """The engine layers: this one, or one per chunk (``EngineStreams.layer_chunks``)."""
        return [replace(self, tiles=n, chunks=()) for n in self.chunks] or [self]

    def cycles(self, interface: EngineInterface, layer: ConvLayer) -> LayerCycles:
        parts = [layer_cycles(interface.timing(), cin=layer.cin, cout=layer.cout, tiles=d.tiles,
                              mode=d.mode, taps=d.taps, replicas=d.replicas,
                              map_beats=d.map_beats, spatial_weights=d.spatial_weights,
                              act_replay=d.act_replay) for d in self.parts()]  # fmt: skip
        if len(parts) == 1:
            return parts[0]
        return replace(parts[0], tiles=self.tiles, act_beats=sum(p.act_beats for p in parts),
                       cycles=sum(p.cycles for p in parts),
                       breakdown={k: sum(p.breakdown[k] for p in parts)
                                  for k in parts[0].breakdown})  # fmt: skip


def layer_descriptor(
    interface: EngineInterface, layer: ConvLayer, batch: int = 1
) -> LayerDescriptor:
    """Fast mode for the stride-1 convs with the algorithm's kernel, direct mode otherwise;
    ``batch`` images as one layer.  On an engine with a feature-map buffer a fast layer
    takes its input map on ``i_map`` when the batch's map fits, and on an engine with a
    weight transform spatial weights; on an engine with a replay buffer the other layers
    send their activation beats once where a group's beats fit."""
    algo = interface.algo
    if layer.mode == "fast" and algo.kernel == 3:
        tiles = batch * algo.tiles(layer.out_size, layer.out_size)
        size, cfg = layer.out_size, interface.config  # stride 1, padding 1: input = output
        fits = 0 < cfg.map_words(batch, layer.cin, size, size) <= cfg.map_depth
        beats = cfg.map_beats(batch, layer.cin, size, size) if fits else 0
        desc = LayerDescriptor("fast", tiles, 1, 1, beats, cfg.weight_transform)
        return _with_replay(interface, desc, layer.cin)
    taps = layer.kernel**2
    sched = direct_schedule(positions=interface.positions, width=interface.width,
                            lanes=interface.lanes, cout=layer.cout,
                            pixels=batch * layer.out_size**2,
                            max_tiles=interface.replay_tiles(taps * layer.cin))  # fmt: skip
    desc = LayerDescriptor("direct", sched.tiles, taps, sched.replicas)
    return _with_replay(interface, desc, taps * layer.cin)


def _with_replay(interface: EngineInterface, desc: LayerDescriptor, reduction: int):
    """``desc`` with its activations replayed where a group's beats fit the replay buffer,
    else in chunks of tiles that fit (as ``EngineStreams.layer_chunks`` runs it)."""
    chunks = () if desc.map_beats else interface.replay_chunks(desc.tiles, reduction)
    if not chunks:
        return desc
    return replace(desc, act_replay=True, chunks=chunks if len(chunks) > 1 else ())


def layer_row(interface: EngineInterface, layer: ConvLayer) -> dict:
    """Cycles (cycle model) and effective MACs per multiplier of one layer."""
    desc = layer_descriptor(interface, layer)
    lc = desc.cycles(interface, layer)
    mults = interface.positions * interface.lanes
    return {
        **asdict(layer),
        "mode": desc.mode,
        "macs": layer.macs,
        "tiles": desc.tiles,
        "replicas": desc.replicas,
        "cycles": lc.cycles,
        "effective": layer.macs / (mults * lc.cycles),
    }


def engine_entry(algorithm: str, pco: int, layers: list[ConvLayer], synth: bool, family: str):
    config = engine_config(algorithm, pco, layers)
    iface = EngineInterface.from_config(config)
    rows = [layer_row(iface, ly) for ly in layers]
    mults = iface.positions * iface.lanes
    cycles = sum(r["cycles"] for r in rows)
    macs = sum(r["macs"] for r in rows)
    fast = [r for r in rows if r["mode"] == "fast"]
    entry = {
        "algorithm": algorithm,
        "title": iface.algo.title,
        "pco": pco,
        "config": config.to_dict(),
        "multipliers": mults,
        "macs_per_dsp": config.macs_per_dsp,
        "mac_array_dsp": iface.multipliers["mac_array_dsp"],
        "limit": iface.algo.ratio,
        "layers": rows,
        "frame_cycles": cycles,
        "network_effective": macs / (mults * cycles),
        "stride1_effective": (
            sum(r["macs"] for r in fast) / (mults * sum(r["cycles"] for r in fast)) if fast else 0
        ),
        "synthesis": synthesize(config, family) if synth else None,
    }
    if entry["synthesis"]:
        res = entry["synthesis"]
        entry["network_macs_per_dsp"] = macs / cycles / res["DSP"]
        entry["stride1_macs_per_dsp"] = entry["stride1_effective"] * mults / res["DSP"]
        entry["network_macs_per_klut"] = macs / cycles / (res["LUT"] / 1000)
        entry["lut_per_mac_multiplier"] = res["LUT"] / mults
    return entry


def synthesize(config: EngineConfig, family: str) -> dict:
    """Every resource of the generated top (Yosys; cached by Verilog content)."""
    from sfc_hls.hw.generate import TOPLEVEL, generate_engine
    from sfc_hls.hw.synth_report import synth_cached

    gen = generate_engine(config)
    print(f"  synthesizing {config.algorithm} P_co={config.pco} (whole top) ...", flush=True)
    out = synth_cached(gen.verilog.read_text(), TOPLEVEL, family)
    keys = ("LUT", "LUTRAM", "FF", "DSP", "CARRY", "MUXF", "BRAM", "seconds", "cached")
    return {k: out[k] for k in keys}


def verify(layers: list[ConvLayer]) -> list[dict]:
    """One layer of each mode through the default accelerator's RTL (native runner)."""
    import numpy as np

    from sfc_hls.datapath import random_layer_quant
    from sfc_hls.golden import conv2d_int8
    from sfc_hls.hw.engine_streams import EngineStreams
    from sfc_hls.sim.native import engine_model, run_layer

    config = engine_config(*DEFAULT, layers)
    iface = EngineInterface.from_config(config)
    model, streams = engine_model(config), EngineStreams(config)
    picks = ["conv1", "layer2.0.conv1", "layer2.0.downsample.0", "layer1.0.conv1"]
    out = []
    for k, name in enumerate(picks):
        ly = next(ly for ly in layers if ly.name == name)
        rng = np.random.default_rng(SEED + k)
        params = random_layer_quant(config, ly.cin, ly.cout, rng, padding=ly.kernel // 2,
                                    mode=ly.mode, kernel=ly.kernel)  # fmt: skip
        size = ly.out_size * ly.stride
        x = rng.integers(-128, 128, size=(1, ly.cin, size, size))
        t0 = time.perf_counter()
        got, run = run_layer(model, streams, params, x, stride=ly.stride)
        exact = bool(np.array_equal(got, conv2d_int8(x, params, stride=ly.stride)))
        row = layer_row(iface, ly)
        out.append({"layer": name, "mode": ly.mode, "kind": f"{ly.kernel}x{ly.kernel}/{ly.stride}",
                    "bit_exact": exact, "rtl_cycles": run.cycles, "model_cycles": row["cycles"],
                    "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
        print(f"  verify {name}: bit-exact {exact}, RTL {run.cycles} cycles, model "
              f"{row['cycles']}", flush=True)  # fmt: skip
    return out


def markdown(result: dict) -> str:
    meta = result["meta"]

    def num(entry: dict, key: str, fmt: str) -> str:
        value = entry.get(key)
        return "-" if value is None else format(value, fmt)

    rows = []
    for e in result["engines"]:
        res = e["synthesis"] or {}
        rows.append([
            e["title"], str(e["pco"]), str(e["multipliers"]), str(e["macs_per_dsp"]),
            f"{e['frame_cycles'] / 1e6:.3f}",
            f"{e['network_effective']:.2f}", f"{e['stride1_effective']:.2f}",
            *(str(res.get(k, "-")) for k in ("LUT", "LUTRAM", "MUXF", "CARRY", "FF", "DSP", "BRAM")),
            num(e, "network_macs_per_dsp", ".2f"), num(e, "stride1_macs_per_dsp", ".2f"),
            num(e, "lut_per_mac_multiplier", ".0f"),
        ])  # fmt: skip
    prev = PREVIOUS
    rows.append([f"previous: 3 engines (commit {prev['commit']})", "4/64/11", "1643", "1",
                 f"{prev['frame_cycles'] / 1e6:.3f}", "-", f"{prev['stride1_effective']:.2f}",
                 "-", "-", "-", "-", "-", f"~{prev['dsp']}", "-",
                 f"{prev['network_macs_per_dsp']:.2f}",
                 "-", "-"])  # fmt: skip
    header = ["accelerator", "P_co", "MAC mults", "MACs per DSP mult", "Mcycles/frame", "eff. network",
              "eff. stride-1 3x3", "LUT", "of which LUTRAM", "MUXF", "CARRY", "FF", "DSP",
              "BRAM (18 Kb)",
              "MACs/DSP/cycle network",
              "MACs/DSP/cycle stride-1", "LUT per MAC mult"]  # fmt: skip
    default = result["engines"][0]
    layer_rows = [
        [r["name"], f"{r['kernel']}x{r['kernel']}/{r['stride']}", r["mode"], str(r["cin"]),
         str(r["cout"]), f"{r['out_size']}x{r['out_size']}", str(r["tiles"]), str(r["replicas"]),
         f"{r['cycles']:,}", f"{r['effective']:.2f}"]
        for r in default["layers"]
    ]  # fmt: skip
    out = [
        "# One accelerator for ResNet-18 (224x224, batch 1)",
        "",
        f"Commit `{meta['git_commit']}`; {meta['versions']['yosys']}; synthesis `synth_xilinx "
        f"-family {meta['family']} -widemux {WIDEMUX}` of the whole generated top (wide "
        "multiplexers on the slices' MUXF7/F8/F9, as Vivado maps them: counted in *MUXF*, not in "
        "*LUT*, like the CARRY8 chains; *LUT* counts the LUTs of distributed RAM too, "
        "*of which LUTRAM* says how many, and *BRAM* is block RAM in 18 Kb units, a RAMB36E2 "
        "counting 2); cycles from `sfc_hls.cycle_model` "
        "(equal to Verilator's in tests/test_cycle_model.py). Regenerate: `make bench` "
        "(`python bench/bench_engines.py`).",
        "",
        "Every conv runs on one engine: stride-1 3x3 in fast mode, the stem, stride-2 and 1x1 "
        "convs in direct mode on the same multipliers. *eff.* = standard MACs / (MAC multipliers "
        "x cycles); *MACs/DSP/cycle* divides the standard MACs per cycle by every DSP of the top "
        "(MAC array, rescale and output quantizer). *MACs per DSP mult*: 2 = two int8 "
        "products per DSP48E2 (packed multiply, `macs_per_dsp`). '-': not synthesized in this run.",
        "",
        format_table(header, rows, align="l" + "r" * (len(header) - 1), markdown=True),
        "",
        f"## Layers on the default accelerator ({default['title']}, P_co={default['pco']})",
        "",
        format_table(
            ["layer", "kind", "mode", "cin", "cout", "out", "tiles", "replicas", "cycles", "eff."],
            layer_rows,
            align="lllrrlrrrr",
            markdown=True,
        ),  # fmt: skip
    ]
    if result.get("verification"):
        ver = [[v["layer"], v["kind"], v["mode"], "yes" if v["bit_exact"] else "NO",
                f"{v['rtl_cycles']:,}", f"{v['model_cycles']:,}"] for v in result["verification"]]  # fmt: skip
        out += ["", "## Verification: one layer of each mode in Verilator (native runner)", "",
                format_table(["layer", "kind", "mode", "bit-exact", "RTL cycles",
                              "model cycles"], ver, align="lllrrr", markdown=True)]  # fmt: skip
    return "\n".join(out) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), width_ratios=(2, 1))
    default = result["engines"][0]
    names = [r["name"].replace(".downsample.0", ".ds") for r in default["layers"]]
    colors = ["tab:blue" if r["mode"] == "fast" else "tab:orange" for r in default["layers"]]
    ax1.bar(range(len(names)), [r["effective"] for r in default["layers"]], color=colors)
    ax1.set_xticks(range(len(names)), names, rotation=70, fontsize=7)
    ax1.set_ylabel("standard MACs / multiplier / cycle")
    ax1.set_title(f"{default['title']} P_co={default['pco']}: fast (blue), direct (orange)")
    titles = [e["title"] for e in result["engines"]]
    ax2.barh(titles, [e["network_effective"] for e in result["engines"]], color="tab:green")
    ax2.set_xlabel("ResNet-18: standard MACs / multiplier / cycle")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synth", choices=("default", "all", "none"), default="default",
                        help="synthesize the default accelerator, every one, or none")  # fmt: skip
    parser.add_argument("--verify", action="store_true", help="one layer per mode in Verilator")
    parser.add_argument("--family", default="xcup", choices=("xcup", "xc7"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    layers = resnet18_layers()
    engines = []
    for k, (algorithm, pco) in enumerate(ENGINES):
        synth = args.synth == "all" or (args.synth == "default" and k == 0)
        entry = engine_entry(algorithm, pco, layers, synth, args.family)
        engines.append(entry)
        print(f"{entry['title']:24s} P_co={pco:3d}: network {entry['network_effective']:.3f}, "
              f"stride-1 {entry['stride1_effective']:.3f}, {entry['frame_cycles']:,} cycles", flush=True)  # fmt: skip
    default = engines[0]
    result = {
        "meta": {
            "benchmark": "bench/bench_engines.py",
            "git_commit": git_commit(),
            "versions": tool_versions(),
            "family": args.family,
            "seed": SEED,
            "network": "resnet18 224x224 batch 1",
            "previous_accelerator": PREVIOUS,
        },
        "engines": engines,
        "verification": verify(layers) if args.verify else None,
        "acceptance": {
            "network_effective_per_multiplier": round(default["network_effective"], 4),
            "network_macs_per_dsp": (
                round(default["network_macs_per_dsp"], 4) if default["synthesis"] else None
            ),
            "stride1_macs_per_dsp": (
                round(default["stride1_macs_per_dsp"], 4) if default["synthesis"] else None
            ),
            "lut_per_mac_multiplier": (
                round(default["lut_per_mac_multiplier"], 1) if default["synthesis"] else None
            ),
        },
    }
    result["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "engines.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / "engines.md", markdown(result))
    plot(result, args.out / "engines.png")
    print(json.dumps(result["acceptance"], indent=2))
    print(f"wrote {args.out}/engines.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
