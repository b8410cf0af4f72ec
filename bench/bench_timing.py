"""Benchmark: timing (Fmax) of generated engines after place and route on ECP5.

Runs ``synth_ecp5`` + ``nextpnr-ecp5`` (out of context, LFE5U-85F,
CABGA381, seed 1; :func:`sfc_hls.hw.synth_report.ecp5_fmax`) on

* the adder-only input and output transform units of the six engines of
  ``bench/bench_engines.py`` (same algorithms and configurations), and
* whole engines small enough for the device's 156 MULT18X18D multipliers
  (:data:`WHOLE_ENGINES`): the equal-budget engines of the throughput
  benchmark need 536-758 DSPs and do not fit any ECP5, so their Fmax is
  bounded here by their blocks; a small engine shows the control and
  handshake paths.

Fmax is nextpnr's timing analysis of the register-to-register paths (ports
are not timed out of context).  The longest register-to-register path in
cells (Yosys ``ltp`` after ``synth_xilinx``, :data:`DEPTH_ENGINES`) is the
technology-independent proxy of issue 13 (``acceptance.max_logic_depth``).  Results are cached by Verilog content,
seed and tool versions (``$SFC_HLS_CACHE/synth``).  Writes
bench/results/timing.{json,md,png}.

    python bench/bench_timing.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engines import ENGINES, engine_config, resnet18_layers  # noqa: E402
from provenance import RESULTS, git_commit, tool_versions  # noqa: E402

from sfc_hls.catalog import get_algorithm  # noqa: E402
from sfc_hls.config import EngineConfig  # noqa: E402

SEED = 1  # nextpnr placement seed
#: Whole engines that place on an LFE5U-85F (156 MULT18X18D): (algorithm, P_co, cin_max),
#: generated for ECP5 (``target="ecp5"``: one MAC per MULT18X18D, the blocks'
#: input and output registers used; the packed multiply needs a DSP48E2's 27 x 18 bits).
WHOLE_ENGINES = [("wino-2x2-3x3", 2, 64), ("direct-3x3", 4, 64)]


def whole_engine_config(algorithm: str, pco: int, cin_max: int) -> EngineConfig:
    """The ECP5 engine of a :data:`WHOLE_ENGINES` row."""
    return EngineConfig(
        algorithm=algorithm, pco=pco, cin_max=cin_max, cout_max=cin_max, target="ecp5"
    )


#: Whole tops whose longest register-to-register path (Yosys ``ltp`` after
#: ``synth_xilinx``) is measured: the ECP5 engines and the default engine.
DEPTH_ENGINES = [
    *WHOLE_ENGINES,
    (EngineConfig().algorithm, EngineConfig().pco, EngineConfig().cin_max),
]


def _row(label: str, kind: str, res: dict) -> dict:
    util = res.get("utilization", {})
    return {
        "engine": label,
        "unit": kind,
        "fmax_mhz": res.get("fmax_mhz"),
        "error": res.get("error"),
        "luts": util.get("TRELLIS_COMB", {}).get("used"),
        "ffs": util.get("TRELLIS_FF", {}).get("used"),
        "mults": util.get("MULT18X18D", {}).get("used"),
        "seconds": res.get("seconds"),
        "cached": res.get("cached"),
        "device": res.get("device"),
        "nextpnr": res.get("nextpnr"),
        "critical_path": res.get("critical_path"),
    }


def logic_depth_row(algorithm: str, pco: int, cin_max: int) -> dict:
    """Longest register-to-register path (cells) of a whole generated top after synth_xilinx."""
    from sfc_hls.hw.generate import TOPLEVEL, generate_engine
    from sfc_hls.hw.synth_report import logic_depth_cached

    config = EngineConfig(algorithm=algorithm, pco=pco, cin_max=cin_max, cout_max=cin_max)
    label = f"{config.algo.title}, P_co={pco}, cin_max={cin_max}"
    res = logic_depth_cached(generate_engine(config).verilog.read_text(), TOPLEVEL)
    how = "cached" if res["cached"] else f"{res['seconds']:.0f} s"
    print(f"{label:40s} logic depth {res['max_logic_depth']} cells ({how})", flush=True)
    deepest = dict(list(res["deepest"].items())[:4])
    return {
        "engine": label,
        "family": res["family"],
        "max_logic_depth": res["max_logic_depth"],
        "deepest": deepest,
    }


def acceptance(rows: list[dict], depths: list[dict]) -> dict:
    """Issue 13's timing keys: ECP5 Fmax of the largest whole engine that placed, logic depth."""
    placed = [r for r in rows if r["unit"] == "whole engine" and r["fmax_mhz"] is not None]
    out: dict = {}
    if placed:
        largest = max(placed, key=lambda r: r["luts"] or 0)
        out["ecp5_fmax_mhz"] = round(largest["fmax_mhz"], 1)
        out["ecp5_fmax_engine"] = largest["engine"]
    if depths:
        deepest = max(depths, key=lambda d: d["max_logic_depth"])
        out["max_logic_depth"] = deepest["max_logic_depth"]
        out["max_logic_depth_engine"] = deepest["engine"]
    return out


def _path_text(path: dict | None) -> str:
    if not path:
        return "-"
    return (
        f"`{path['from']}` -> `{path['to']}`: {path['delay_ns']:.1f} ns, "
        f"{path['logic_levels']} logic levels ({path['logic_ns']:.1f} ns logic, "
        f"{path['routing_ns']:.1f} ns routing)"
    )


def markdown(result: dict) -> str:
    meta = result["meta"]
    out = [
        "# ECP5 timing of generated engines",
        "",
        f"Commit `{meta['git_commit']}`; {meta['versions']['yosys']}; "
        f"{meta['nextpnr']}; {meta['device']}, out of context, seed {meta['seed']}. "
        "Regenerate: `make bench` (`python bench/bench_timing.py`).",
        "",
        "| engine | unit | Fmax (MHz) | LUT4 (TRELLIS_COMB) | FF | MULT18X18D | critical path |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        fmax = f"{r['fmax_mhz']:.1f}" if r["fmax_mhz"] is not None else f"no Fmax: {r['error']}"
        out.append(
            f"| {r['engine']} | {r['unit']} | {fmax} | {r['luts']} | {r['ffs']} | {r['mults']} | "
            f"{_path_text(r['critical_path'])} |"
        )
    if result.get("logic_depth"):
        out += [
            "",
            "Longest register-to-register path of whole generated tops, in cells (Yosys "
            "`synth_xilinx -family xcup -flatten`, flip-flops, SRLs and block RAMs removed, "
            "`ltp -noff`; a LUT, CARRY8, mux or DSP48E2 each count one):",
            "",
            "| engine | cells | deepest registers (cells) |",
            "|---|---|---|",
            *(
                f"| {d['engine']} | {d['max_logic_depth']} | "
                + ", ".join(f"`{name}` ({n})" for name, n in d["deepest"].items())
                + " |"
                for d in result["logic_depth"]
            ),
        ]
    out += [
        "",
        "Acceptance (issue 13): "
        + ", ".join(f"`{k}` = {v}" for k, v in result.get("acceptance", {}).items()),
        "",
        "Transform units: the engines of `bench/results/engines.md` (they do not depend on "
        "P_co: one tile of one channel per cycle). Whole engines: small configurations that "
        "fit the device's multipliers (the equal-budget engines need 536-758 DSPs), generated "
        "for ECP5 (`--target ecp5`: MULT18X18D blocks with their input and output registers, "
        "one MAC per block). Logic depth: the Xilinx engines of the same configurations. Fmax is "
        "nextpnr's timing analysis after routing, speed grade 6 (nextpnr's default, the "
        "slowest).",
        "",
    ]
    return "\n".join(out)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["fmax_mhz"] is not None]
    fig, ax = plt.subplots(figsize=(10, 4))
    labels = [f"{r['engine']}\n{r['unit']}" for r in rows]
    ax.bar(range(len(rows)), [r["fmax_mhz"] for r in rows], color="tab:blue")
    ax.set_xticks(range(len(rows)), labels, fontsize=6, rotation=60, ha="right")
    ax.set_ylabel("Fmax (MHz), nextpnr-ecp5")
    ax.set_title(f"ECP5 {result['meta']['device']}, out of context")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    from sfc_hls.atomic_files import write_text_atomic
    from sfc_hls.hw.generate import TOPLEVEL, generate_engine
    from sfc_hls.hw.synth_report import TRANSFORM_BLOCKS, block_verilog, ecp5_fmax_cached

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-whole", action="store_true", help="transform units only")
    parser.add_argument("--jobs", type=int, default=2, help="parallel nextpnr runs")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    units = []  # (engine label, unit, Verilog, top)
    for algorithm, pco in ENGINES:
        title = get_algorithm(algorithm).title
        texts = block_verilog(engine_config(algorithm, pco, resnet18_layers()), TRANSFORM_BLOCKS)
        units += [(title, block, texts[block], block) for block in TRANSFORM_BLOCKS]
    if not args.no_whole:
        for algorithm, pco, cin_max in WHOLE_ENGINES:
            config = whole_engine_config(algorithm, pco, cin_max)
            text = generate_engine(config).verilog.read_text()
            label = f"{config.algo.title}, P_co={pco}, cin_max={cin_max}"
            units.append((label, "whole engine", text, TOPLEVEL))

    def one(unit: tuple[str, str, str, str]) -> dict:
        label, kind, text, top = unit
        res = ecp5_fmax_cached(text, top, seed=SEED)
        how = "cached" if res["cached"] else f"{res['seconds']:.0f} s"
        print(f"{label:40s} {kind:18s} {res.get('fmax_mhz')} MHz ({how})", flush=True)
        return _row(label, kind, res)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(one, units))
    depths = [] if args.no_whole else [logic_depth_row(*engine) for engine in DEPTH_ENGINES]
    first = rows[0]
    result = {
        "meta": {
            "benchmark": "bench/bench_timing.py",
            "git_commit": git_commit(),
            "versions": tool_versions(),
            "nextpnr": first["nextpnr"],
            "device": first["device"],
            "seed": SEED,
            "seconds": round(time.perf_counter() - t0, 1),
        },
        "rows": rows,
        "logic_depth": depths,
        "acceptance": acceptance(rows, depths),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "timing.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(args.out / "timing.md", markdown(result))
    plot(result, args.out / "timing.png")
    print(f"wrote {args.out}/timing.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
