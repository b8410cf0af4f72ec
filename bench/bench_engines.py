"""Benchmark: resources and effective throughput of generated engines on ResNet-18.

For engines generated with direct 3x3, Winograd F(2x2,3x3), F(4x4,3x3),
SFC-4(4x4,3x3), SFC-6(6x6,3x3) and SFC-6(7x7,3x3) at an equal MAC multiplier
budget (P_co per algorithm, see :data:`ENGINES`), and ResNet-18's conv
layers at 224x224 (batch 1, :func:`resnet18_layers`), reports:

* resources from real Yosys runs (``synth_xilinx -family xcup``, Debian's
  Yosys; :mod:`sfc_hls.hw.synth_report`): DSP, LUT, FF, CARRY, BRAM of the
  whole engine, and the LUT share of the adder-only transforms (0 DSP);
* cycles per layer and per network from the cycle model
  (:mod:`sfc_hls.cycle_model`, validated against Verilator in
  ``tests/test_cycle_model.py``), for the current engine (two weight banks:
  the next group's weights load while the current group computes) and for
  the serial engine of commit cc3d92d (one bank);
* effective MACs per multiplier per cycle = standard MACs of the layer /
  (MAC multipliers x cycles), which includes edge-tile waste, unused lanes
  of the last output-channel group, configuration, pipeline fill/drain and
  group overheads; and its decomposition against the algorithmic limit
  (the reduction ratio).

Layers a 3x3 fast engine cannot run (7x7/2 stem, stride-2 3x3, 1x1/2
downsample) run, as the host lowering does (``sfc_hls.host.lowering``), on
direct engines with the same multiplier budget: stride-2 3x3 and 1x1
(kernel at the centre of a 3x3) on the direct-3x3 engine (P_co=64, 576
multipliers), the stem on a direct-7x7 engine (P_co=11, 539 multipliers),
one input patch per output pixel.  Whole-network rate = all standard MACs /
sum over layers of (multipliers of the engine running it x its cycles).

Writes bench/results/engines.{json,md,png} (JSON with seeds, tool versions
and the git commit).  Synthesis is cached by Verilog content (first run:
long; ``--no-synth`` skips it and keeps the cycle numbers).

    python bench/bench_engines.py [--no-synth] [--jobs 2] [--family xcup]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sfc_hls.catalog import get_algorithm
from sfc_hls.config import EngineConfig
from sfc_hls.cycle_model import EngineTiming, layer_cycles
from sfc_hls.hw.interface import EngineInterface

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
CIN_MAX = 512  # ResNet-18's widest layer
SEED = 0  # synthesis and the cycle model are deterministic; recorded for completeness

#: (algorithm, P_co): MAC multipliers = mults per tile x P_co, 512..576.
ENGINES = [
    ("direct-3x3", 64),  # 9 x 64 = 576
    ("wino-2x2-3x3", 32),  # 16 x 32 = 512
    ("wino-4x4-3x3", 16),  # 36 x 16 = 576
    ("sfc4-4x4-3x3", 12),  # 46 x 12 = 552
    ("sfc6-6x6-3x3", 6),  # 88 x 6 = 528
    ("sfc6-7x7-3x3", 4),  # 132 x 4 = 528
]
#: Blocks synthesized alone in the bench (whole engine always): the adder-only
#: transforms (their LUT share, 0 DSP).  All blocks: ``sfc-hls synth --algo
#: NAME --pco N``.
BENCH_BLOCKS = ("input_transform", "output_transform")
#: The engine whose every block is synthesized too, for the by-block table
#: (the ``other`` row: control, descriptor registers, channel serializer) and
#: the MAC array's DSP count (a MAC array alone takes Yosys about as long as a
#: whole engine, so the other engines' are not synthesized separately).
BREAKDOWN_ENGINE = "sfc6-7x7-3x3"
#: Direct engines for the layers a 3x3 fast engine cannot run (same budget).
DIRECT_ENGINES = {3: ("direct-3x3", 64), 7: ("direct-7x7", 11)}  # 576, 539


@dataclass(frozen=True)
class ConvLayer:
    """One conv layer of the network (batch 1)."""

    name: str
    kernel: int
    stride: int
    cin: int
    cout: int
    in_size: int
    out_size: int

    @property
    def macs(self) -> int:
        return self.out_size**2 * self.cin * self.cout * self.kernel**2

    @property
    def fast(self) -> bool:
        """Runs on the 3x3 fast engine (stride-1 3x3)."""
        return self.kernel == 3 and self.stride == 1

    @property
    def kind(self) -> str:
        return f"{self.kernel}x{self.kernel}/{self.stride}"


def resnet18_layers(size: int = 224) -> list[ConvLayer]:
    """The 20 conv layers of torchvision's ResNet-18 at ``size`` x ``size``."""
    layers = [ConvLayer("conv1", 7, 2, 3, 64, size, size // 2)]
    s = size // 4  # after the stem and the max-pool: 56
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if (stage > 1 and block == 0) else 1
            out = s // stride
            p = f"layer{stage}.{block}"
            layers.append(ConvLayer(f"{p}.conv1", 3, stride, cin, cout, s, out))
            layers.append(ConvLayer(f"{p}.conv2", 3, 1, cout, cout, out, out))
            if stride == 2:
                layers.append(ConvLayer(f"{p}.downsample", 1, 2, cin, cout, s, out))
            cin, s = cout, out
    return layers


def engine_config(algorithm: str, pco: int) -> EngineConfig:
    return EngineConfig(
        algorithm=algorithm, pco=pco, cin_max=CIN_MAX, cout_max=math.ceil(CIN_MAX / pco) * pco
    )


@functools.cache
def _timing(algorithm: str, pco: int, banks: int) -> EngineTiming:
    return EngineInterface.from_config(engine_config(algorithm, pco)).timing(weight_banks=banks)


def layer_run(layer: ConvLayer, algorithm: str, pco: int, banks: int) -> dict:
    """Cycles and effective rate of ``layer`` on the engine (``algorithm``, ``pco``)."""
    algo = get_algorithm(algorithm)
    m_out = algo.output_tile
    if layer.fast:
        tiles = math.ceil(layer.out_size / m_out) ** 2
    else:
        assert m_out == 1, algorithm  # direct engine, one patch per output pixel
        tiles = layer.out_size**2
    res = layer_cycles(_timing(algorithm, pco, banks), cin=layer.cin, cout=layer.cout, tiles=tiles)
    multipliers = algo.mults * pco
    return {
        "layer": layer.name,
        "engine": f"{algorithm}/P{pco}",
        "multipliers": multipliers,
        "tiles": tiles,
        "groups": res.groups,
        "cycles": res.cycles,
        "macs": layer.macs,
        "effective": layer.macs / (multipliers * res.cycles),
        "computed_outputs": tiles * m_out**2,
        "breakdown": res.breakdown,
    }


def network_runs(algorithm: str, pco: int, banks: int, layers: list[ConvLayer]) -> list[dict]:
    runs = []
    for layer in layers:
        if layer.fast:
            runs.append(layer_run(layer, algorithm, pco, banks))
        else:
            k = 7 if layer.kernel == 7 else 3  # 1x1 embedded in a 3x3 kernel
            d_algo, d_pco = DIRECT_ENGINES[k]
            runs.append(layer_run(layer, d_algo, d_pco, banks))
    return runs


def summarize(algorithm: str, pco: int, runs: list[dict], layers: list[ConvLayer]) -> dict:
    """Stride-1 3x3 and whole-network rates with the gap decomposition."""
    algo = get_algorithm(algorithm)
    fast = [(r, ly) for r, ly in zip(runs, layers, strict=True) if ly.fast]
    macs = sum(ly.macs for _, ly in fast)
    cycles = sum(r["cycles"] for r, _ in fast)
    mults = algo.mults * pco
    act_beats = sum(r["breakdown"]["act_beats"] for r, _ in fast)
    # Output counts weighted by cin (each output costs cin x R^2 standard MACs),
    # so that limit x edge x lanes x busy is exactly the effective rate.
    useful_outputs = sum(ly.out_size**2 * ly.cout * ly.cin for _, ly in fast)
    computed = sum(r["computed_outputs"] * ly.cout * ly.cin for r, ly in fast)
    lane_slots = sum(r["groups"] * pco * r["computed_outputs"] * ly.cin for r, ly in fast)
    overhead = {}
    for key in ("config", "first_load", "between_groups", "serializer", "drain"):
        overhead[key] = sum(r["breakdown"][key] for r, _ in fast)
    limit = algo.ratio
    edge = useful_outputs / computed  # outputs of edge tiles beyond the map
    lanes = computed / lane_slots  # lanes of partial last groups
    busy = act_beats / cycles  # act beats / cycles
    if not math.isclose(limit * edge * lanes * busy, macs / (mults * cycles), rel_tol=1e-9):
        raise AssertionError(f"{algorithm}: the gap factors do not multiply to the rate")
    all_macs = sum(ly.macs for ly in layers)
    all_mult_cycles = sum(r["multipliers"] * r["cycles"] for r in runs)
    # Bound: the other layers at 1 MAC per multiplier per cycle on this engine's multipliers.
    ideal_other = sum(ly.macs for ly in layers if not ly.fast) / mults
    return {
        "stride1_3x3": {
            "macs": macs,
            "cycles": cycles,
            "effective": macs / (mults * cycles),
            "limit": limit,
            "factors": {"edge_tiles": edge, "lane_use": lanes, "busy": busy},
            "overhead_cycles": overhead,
        },
        "network": {
            "macs": all_macs,
            "cycles": sum(r["cycles"] for r in runs),
            "cycles_fast_engine": cycles,
            "cycles_direct_engines": sum(
                r["cycles"] for r, ly in zip(runs, layers, strict=True) if not ly.fast
            ),
            "effective": all_macs / all_mult_cycles,
            "effective_ideal_direct_layers": all_macs / (mults * (cycles + ideal_other)),
        },
    }


def _cached_blocks(config: EngineConfig, kwargs: dict) -> dict | None:
    """Report of the bench blocks whose synthesis is cached (no whole engine), or None."""
    from sfc_hls.hw.synth_report import TRANSFORM_BLOCKS, synth_report

    report = None
    for block in BENCH_BLOCKS:
        try:
            one = synth_report(config, whole=False, **{**kwargs, "blocks": (block,)})
        except LookupError as exc:
            print(f"  skipped: {exc}", file=sys.stderr, flush=True)
            continue
        if report is None:
            report = one
        else:
            report["blocks"].update(one["blocks"])
    if report is not None and all(b in report["blocks"] for b in TRANSFORM_BLOCKS):
        report["transforms"] = {
            "LUT": sum(report["blocks"][b]["LUT"] for b in TRANSFORM_BLOCKS),
            "DSP": sum(report["blocks"][b]["DSP"] for b in TRANSFORM_BLOCKS),
        }
    return report


def git_commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "hw", "sfc_hls", "bench", ":!bench/results"],
            cwd=REPO, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def tool_versions() -> dict:
    import amaranth

    from sfc_hls.hw.synth_report import yosys_version

    return {
        "python": platform.python_version(),
        "amaranth": amaranth.__version__,
        "yosys": yosys_version(),
        "platform": platform.platform(),
    }


def _fmt(v: float, nd: int = 2) -> str:
    return f"{v:.{nd}f}"


def markdown(result: dict) -> str:
    layers = result["layers"]
    out = [
        "# Generated engines on ResNet-18 (224x224, batch 1)",
        "",
        f"Commit `{result['meta']['git_commit']}`; {result['meta']['versions']['yosys']}; "
        f"synthesis `synth_xilinx -family {result['meta']['family']}`; cycles from "
        "`sfc_hls.cycle_model` (validated against Verilator within 2%). "
        "Regenerate: `make bench` (`python bench/bench_engines.py`).",
        "",
        "## Engines at an equal multiplier budget (512-576 MAC multipliers)",
        "",
        "| engine | P_co | MAC mults | MAC array DSP | DSP (engine) | LUT | FF | BRAM "
        "| transforms LUT (share) "
        "| transforms DSP | limit | eff. stride-1 3x3 | eff. network | network Mcycles | "
        "eff. network, ideal direct layers | stride-1 3x3, serial engine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["engines"]:
        s = e["synthesis"]
        if s and "total" in s:
            t = s["total"]
            tr = s.get("transforms", {})
            share = tr.get("LUT_share_of_engine")
            mac = s["blocks"].get("mac_array", {}).get("DSP", "-")
            res = (
                f"{mac} | {t['DSP']} | {t['LUT']} | {t['FF']} | {t['BRAM']} | "
                f"{tr.get('LUT', '-')} ({100 * share:.1f}%) | {tr.get('DSP', '-')}"
                if share is not None
                else f"{mac} | {t['DSP']} | {t['LUT']} | {t['FF']} | {t['BRAM']} | - | -"
            )
        elif s:
            mac = s["blocks"].get("mac_array", {}).get("DSP", "-")
            tr = s.get("transforms", {})
            res = (
                f"{mac} | pending | pending | pending | pending | {tr.get('LUT', '-')} "
                f"(share pending) | {tr.get('DSP', '-')}"
            )
        else:
            res = "pending | | | | | | "
        cur, ser = e["current"], e["serial"]
        out.append(
            f"| {e['title']} | {e['pco']} | {e['multipliers']} | {res} | "
            f"{_fmt(e['limit'])} | **{_fmt(cur['stride1_3x3']['effective'])}** | "
            f"{_fmt(cur['network']['effective'])} | {cur['network']['cycles'] / 1e6:.3f} | "
            f"{_fmt(cur['network']['effective_ideal_direct_layers'])} | "
            f"{_fmt(ser['stride1_3x3']['effective'])} |"
        )
    out += [
        "",
        "eff. = standard MACs / (MAC multipliers x cycles). *limit* = the algorithm's "
        "reduction ratio (standard / fast multiplications per tile). *serial engine* = "
        "one weight bank (commit cc3d92d: load, compute, drain per output-channel group). "
        "*eff. network* runs the stem, stride-2 3x3 and 1x1 layers on the direct engines "
        "(below); *ideal direct layers* instead charges them MACs / multipliers cycles on "
        "the fast engine's multipliers (an upper bound for any direct engine). "
        "DSP counts include the rescale (one multiplier per transform position) and output "
        "quantizer multipliers; *MAC array DSP* is the MAC array synthesized alone (for "
        "the engine broken down by block below: one DSP per MAC multiplier). *transforms "
        "LUT* are the input and output transform units synthesized alone, their share of "
        "the whole engine's LUTs in parentheses."
        + (
            " *pending*: that Yosys run had not finished when these results were written "
            "(`--synth-cached-only`); `make bench` runs it (cached by Verilog content)."
            if any(not (e["synthesis"] and "total" in e["synthesis"]) for e in result["engines"])
            else ""
        ),
        "",
        "## Throughput per resource (stride-1 3x3 layers, current engine)",
        "",
        "| engine | standard MACs per cycle | per DSP (whole engine) | per kLUT | LUT per MAC "
        "multiplier |",
        "|---|---|---|---|---|",
    ]
    for e in result["engines"]:
        s = e["synthesis"]
        macs = e["current"]["stride1_3x3"]["effective"] * e["multipliers"]
        if s and "total" in s:
            t = s["total"]
            res = (
                f"{macs / t['DSP']:.2f} | {1000 * macs / t['LUT']:.1f} | "
                f"{t['LUT'] / e['multipliers']:.0f}"
            )
        else:
            res = "pending | pending | pending"
        out.append(f"| {e['title']} | {macs:.0f} | {res} |")
    out += [
        "",
        "Standard MACs per cycle = effective MACs per multiplier per cycle x MAC multipliers; "
        "per DSP divides by every DSP of the engine (MAC array, rescale, output quantizer).",
        "",
        "## Where the gap to the limit goes (stride-1 3x3 layers, current engine)",
        "",
        "eff. = limit x edge-tile use x lane use x busy, busy = act beats / cycles.",
        "",
        "| engine | limit | edge-tile use | lane use | busy | eff. | overhead cycles: config "
        "| first load | between groups | serializer | drain |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["engines"]:
        s = e["current"]["stride1_3x3"]
        f, o = s["factors"], s["overhead_cycles"]
        out.append(
            f"| {e['title']} | {_fmt(s['limit'])} | {_fmt(f['edge_tiles'], 3)} | "
            f"{_fmt(f['lane_use'], 3)} | {_fmt(f['busy'], 3)} | {_fmt(s['effective'])} | "
            f"{o['config']} | {o['first_load']} | {o['between_groups']} | {o['serializer']} | "
            f"{o['drain']} |"
        )
    out += [
        "",
        "## Cycles per layer (current engine; non-3x3 and stride-2 layers on direct engines)",
        "",
        "| layer | kind | cin | cout | out | MMACs | "
        + " | ".join(e["title"] for e in result["engines"])
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(result["engines"]),
    ]
    for i, ly in enumerate(layers):
        cells = []
        for e in result["engines"]:
            r = e["current"]["runs"][i]
            cells.append(f"{r['cycles']} ({_fmt(r['effective'])})")
        out.append(
            f"| {ly['name']} | {ly['kind']} | {ly['cin']} | {ly['cout']} | "
            f"{ly['out_size']}x{ly['out_size']} | {ly['macs'] / 1e6:.1f} | "
            + " | ".join(cells)
            + " |"
        )
    out += [
        "",
        "Cells: cycles (effective MACs per multiplier per cycle). Stem on direct-7x7 "
        "(P_co=11, 539 multipliers); stride-2 3x3 and 1x1 downsample (kernel at the centre of "
        "a 3x3) on direct-3x3 (P_co=64, 576 multipliers); one input patch per output pixel. "
        "The stem is output-bound: the engine emits one output channel of one tile per cycle "
        "(1 pixel for a direct engine), and cin = 3 < P_co, so it takes tiles x cout cycles; "
        "the 1x1 layers use 1 of the 9 taps of the 3x3 direct engine.",
        "",
    ]
    acc = result["acceptance"]
    out.append(
        f"Acceptance: SFC-6(7x7,3x3) on the stride-1 3x3 layers: "
        f"{acc['sfc6_7x7_stride1_effective']:.3f} effective MACs per multiplier per cycle "
        f"(>= 3.0 required, limit {acc['limit']:.2f}): {'PASS' if acc['pass'] else 'FAIL'}; "
        f"serial engine (one weight bank): {acc['serial_engine_effective']:.3f}."
    )
    out += _breakdown_markdown(result)
    return "\n".join(out) + "\n"


def _outputs_per_tile(engine: dict) -> int:
    return get_algorithm(engine["algorithm"]).output_tile ** 2


def _breakdown_markdown(result: dict) -> list[str]:
    """By-block table of the engine whose every block was synthesized (or nothing)."""
    from sfc_hls.hw.synth_report import RESOURCES

    e = next((e for e in result["engines"] if e["algorithm"] == BREAKDOWN_ENGINE), None)
    s = e and e["synthesis"]
    if not s or "other" not in s:
        return []
    rows = [(name, s["blocks"][name]) for name in s["blocks"]]
    rows += [("other (total - blocks)", s["other"]), ("**total (whole engine)**", s["total"])]
    out = [
        "",
        f"## {e['title']} engine by block (P_co={e['pco']}, cin_max={e['config']['cin_max']})",
        "",
        "| block | " + " | ".join(RESOURCES) + " | LUT share |",
        "|---|" + "---|" * (len(RESOURCES) + 1),
    ]
    for name, r in rows:
        share = 100 * r["LUT"] / s["total"]["LUT"]
        out.append(f"| {name} | " + " | ".join(str(r[k]) for k in RESOURCES) + f" | {share:.1f}% |")
    out += [
        "",
        "Each block is synthesized alone from the generated Verilog (`sfc-hls synth`), so it "
        "is not optimized across its ports; *other* is the whole engine minus the blocks: "
        "control, descriptor registers, the channel serializer and the cross-boundary "
        "difference. BRAM is the two weight banks (positions x P_co x cin_max int8 each).",
    ]
    quant = [b for b in ("act_quantizer", "rescale", "output_quantizer") if b in s["blocks"]]
    q_luts = sum(s["blocks"][b]["LUT"] for b in quant)
    out += [
        "",
        f"The per-position quantization ({', '.join(quant)}: per value a rounding add, a "
        "barrel shifter for the layer's runtime shift and a clamp (after a DSP multiply in the rescale "
        "and output quantizer); "
        f"{e['multipliers'] // e['pco']} transform positions, {_outputs_per_tile(e)} "
        f"outputs per tile for the output quantizer) takes {q_luts} LUT = "
        f"{100 * q_luts / s['total']['LUT']:.1f}% "
        "of the engine, the adder-only transforms "
        f"{100 * s['transforms']['LUT_share_of_engine']:.1f}%: LUTs grow with the number "
        "of transform-domain positions (per-frequency scales), DSPs with the multipliers.",
    ]
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = result["engines"]
    titles = [e["title"].replace(" ", "\n", 1) for e in engines]
    x = range(len(engines))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    ax = axes[0]
    w = 0.2
    series = [
        ("limit (reduction ratio)", [e["limit"] for e in engines]),
        ("stride-1 3x3, current", [e["current"]["stride1_3x3"]["effective"] for e in engines]),
        ("stride-1 3x3, serial", [e["serial"]["stride1_3x3"]["effective"] for e in engines]),
        ("whole network, current", [e["current"]["network"]["effective"] for e in engines]),
    ]
    for k, (label, vals) in enumerate(series):
        ax.bar([i + (k - 1.5) * w for i in x], vals, w, label=label)
    ax.axhline(3.0, color="k", lw=0.8, ls="--")
    ax.set_xticks(list(x), titles, fontsize=7)
    ax.set_ylabel("effective MACs / multiplier / cycle")
    ax.set_title("ResNet-18 224x224, equal multiplier budget")
    ax.legend(fontsize=7)
    ax = axes[1]
    has = [e for e in engines if e["synthesis"] and "total" in e["synthesis"]]
    if has:
        luts = [e["synthesis"]["total"]["LUT"] / 1000 for e in has]
        tl = [e["synthesis"].get("transforms", {}).get("LUT", 0) / 1000 for e in has]
        xs = range(len(has))
        ax.bar(xs, luts, 0.6, label="engine LUT (k)")
        ax.bar(xs, tl, 0.6, label="transform LUT (k)")
        ax.set_xticks(list(xs), [e["title"].replace(" ", "\n", 1) for e in has], fontsize=7)
        ax.set_ylabel("kLUT (Yosys synth_xilinx)")
        ax.legend(fontsize=7)
        ax.set_title("resources")
    else:
        ax.text(0.5, 0.5, "synthesis not run", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-synth", action="store_true", help="cycle model only")
    parser.add_argument(
        "--synth-cached-only",
        action="store_true",
        help="report only engines whose synthesis is cached (no new Yosys runs)",
    )
    parser.add_argument("--family", default="xcup", choices=("xcup", "xc7"))
    parser.add_argument("--jobs", type=int, default=2, help="parallel Yosys runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    layers = resnet18_layers()
    engines = []
    for algorithm, pco in ENGINES:
        algo = get_algorithm(algorithm)
        entry = {
            "algorithm": algorithm,
            "title": algo.title,
            "pco": pco,
            "multipliers": algo.mults * pco,
            "limit": algo.ratio,
            "config": engine_config(algorithm, pco).to_dict(),
        }
        for label, banks in (("current", 2), ("serial", 1)):
            runs = network_runs(algorithm, pco, banks, layers)
            entry[label] = {
                "weight_banks": banks,
                "runs": runs,
                **summarize(algorithm, pco, runs, layers),
            }
        entry["synthesis"] = None
        if not args.no_synth:
            from sfc_hls.hw.synth_report import BLOCKS, synth_report

            print(f"synthesizing {algo.title} P_co={pco} ...", file=sys.stderr, flush=True)
            kwargs = {
                "family": args.family,
                "blocks": BLOCKS if algorithm == BREAKDOWN_ENGINE else BENCH_BLOCKS,
                "cache_only": args.synth_cached_only,
                "jobs": args.jobs,
                "log": lambda msg: print(msg, file=sys.stderr, flush=True),
            }
            try:
                entry["synthesis"] = synth_report(engine_config(algorithm, pco), **kwargs)
            except LookupError as exc:
                print(f"  whole engine skipped: {exc}", file=sys.stderr, flush=True)
                entry["synthesis"] = _cached_blocks(engine_config(algorithm, pco), kwargs)
        engines.append(entry)
        cur = entry["current"]
        print(
            f"{algo.title:24s} P_co={pco:3d} mults={entry['multipliers']}: stride-1 3x3 "
            f"{cur['stride1_3x3']['effective']:.3f} (limit {algo.ratio:.2f}, serial "
            f"{entry['serial']['stride1_3x3']['effective']:.3f}), network "
            f"{cur['network']['effective']:.3f}, {cur['network']['cycles']} cycles",
            flush=True,
        )
    sfc = next(e for e in engines if e["algorithm"] == "sfc6-7x7-3x3")
    eff = sfc["current"]["stride1_3x3"]["effective"]
    result = {
        "meta": {
            "benchmark": "bench/bench_engines.py",
            "git_commit": git_commit(),
            "versions": tool_versions(),
            "family": args.family,
            "seed": SEED,
            "batch": 1,
            "image": 224,
            "cin_max": CIN_MAX,
            "direct_engines": {f"{k}x{k}": list(v) for k, v in DIRECT_ENGINES.items()},
            "cycle_model": "sfc_hls.cycle_model (validated: tests/test_cycle_model.py)",
            "seconds": round(time.perf_counter() - t0, 1),
        },
        "layers": [
            {**ly.__dict__, "kind": ly.kind, "macs": ly.macs, "fast_engine": ly.fast}
            for ly in layers
        ],
        "engines": engines,
        "acceptance": {
            "sfc6_7x7_stride1_effective": eff,
            "limit": sfc["limit"],
            "required": 3.0,
            "pass": eff >= 3.0,
            "serial_engine_effective": sfc["serial"]["stride1_3x3"]["effective"],
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engines.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "engines.md").write_text(markdown(result))
    plot(result, args.out / "engines.png")
    print(f"wrote {args.out}/engines.{{json,md,png}}")
    return 0 if result["acceptance"]["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
