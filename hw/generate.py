"""Verilog generation of a conv engine, with a JSON manifest and a content cache.

``sfc-hls generate --algo sfc6-7x7-3x3 --pco 4 -o DIR`` writes ``DIR/conv_engine.v``,
``DIR/conv_engine.json`` (ports, parameters, widths, latency, memory map,
limits) and ``DIR/conv_engine.vlt`` (the Verilator lint waivers, each
justified: ``verilator --lint-only -Wall conv_engine.vlt conv_engine.v`` is
clean).  ``--name NAME`` names the top module ``NAME`` and every submodule
``NAME.<block>``, so engines of different names coexist in one design.
``--axi`` wraps the engine in AXI4-Lite registers and AXI4-Stream ports
(:class:`~sfc_hls.hw.axi_engine.AxiConvEngine`, top ``NAME``, the engine
``NAME.engine``) and adds ``NAME_regs.h``, the register map as a C header.
Generation is cached under ``~/.cache/sfc-hls`` (or
``$SFC_HLS_CACHE``) by a hash of the configuration and of the generator's
own source, so an unchanged engine is not re-elaborated.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfc_hls.atomic_files import atomic_directory, write_text_atomic
from sfc_hls.cache import cache_dir
from sfc_hls.config import EngineConfig
from sfc_hls.hw.lint_waivers import lint_config

__all__ = ["GeneratedEngine", "generate_engine", "engine_manifest", "check_engine_name", "TOPLEVEL"]

#: Default name of the generated top module (``--name`` changes it).
TOPLEVEL = "conv_engine"
_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: SystemVerilog keywords a module cannot be named (the ones a user might try).
_KEYWORDS = frozenset(
    {
        "always",
        "and",
        "assign",
        "begin",
        "bit",
        "buf",
        "byte",
        "case",
        "class",
        "default",
        "do",
        "edge",
        "else",
        "end",
        "endmodule",
        "for",
        "function",
        "generate",
        "if",
        "initial",
        "inout",
        "input",
        "int",
        "integer",
        "interface",
        "logic",
        "module",
        "negedge",
        "not",
        "or",
        "output",
        "package",
        "parameter",
        "posedge",
        "program",
        "reg",
        "signed",
        "static",
        "string",
        "task",
        "time",
        "type",
        "unsigned",
        "void",
        "while",
        "wire",
        "xor",
    }
)


def check_engine_name(name: object) -> str:
    """``name`` if it can name the top module (a plain Verilog identifier of at most 63
    characters, not a keyword); ValueError naming the rule otherwise."""
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name) or name in _KEYWORDS:
        raise ValueError(
            f"--name must be a Verilog identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 "
            f"characters, not a keyword), got {name!r}"
        )
    return name


#: Simulation model of the ECP5 multiplier blocks an ECP5 engine instantiates.
ECP5_CELLS = Path(str(importlib.resources.files("sfc_hls.sim") / "ecp5_cells.v"))

_SOURCES = [
    Path(__file__).resolve().parent,  # hw/
    Path(__file__).resolve().parents[1] / "sfc_hls",  # algorithms, datapath
]


def _source_digest() -> str:
    h = hashlib.sha256()
    for root in _SOURCES:
        for path in sorted(root.glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _cache_root() -> Path:
    return cache_dir("engines")


@dataclass(frozen=True)
class GeneratedEngine:
    """Paths of a generated engine and its manifest (as a dict)."""

    verilog: Path
    manifest_path: Path
    manifest: dict
    cached: bool
    seconds: float

    @property
    def simulation_sources(self) -> list[Path]:
        """The Verilog a simulator reads: the engine, and for an ECP5 engine the model
        of its MULT18X18D and DP16KD blocks (``sim/ecp5_cells.v``; synthesis uses the
        primitives)."""
        if self.manifest["config"].get("target") == "ecp5":
            return [self.verilog, ECP5_CELLS]
        return [self.verilog]


def _layout_json(layout) -> object:
    from amaranth.hdl import Shape
    from amaranth.lib import data

    if isinstance(layout, data.ArrayLayout):
        return {"array": _layout_json(layout.elem_shape), "length": layout.length}
    if isinstance(layout, data.StructLayout):
        return {name: _layout_json(f.shape) for name, f in layout}
    s = Shape.cast(layout)
    return f"{'signed' if s.signed else 'unsigned'}({s.width})"


def engine_manifest(interface, *, name: str = TOPLEVEL, axi: bool = False) -> dict:
    """Ports, parameters, widths, latency, limits and register map of an engine.

    ``interface`` is the engine's :class:`~sfc_hls.hw.interface.EngineInterface`
    (or an :class:`~sfc_hls.config.EngineConfig`); nothing is elaborated.  With
    ``axi`` the ports are the AXI top's and an ``axi`` section gives its
    register map and stream widths.
    """
    from amaranth.hdl import Shape

    from sfc_hls.datapath import DatapathWidths, minimum_rescale_shift
    from sfc_hls.hw.axi_engine import axi_signature
    from sfc_hls.hw.engine import ConvEngine
    from sfc_hls.hw.interface import EngineInterface

    if isinstance(interface, EngineConfig):
        interface = EngineInterface.from_config(interface)
    cfg = interface.config
    algo = interface.algo
    widths = DatapathWidths.derive(algo, cfg, cfg.cin_max, minimum_rescale_shift(cfg.cin_max, cfg))
    ports = {}
    signature = axi_signature(interface) if axi else ConvEngine.signature_of(interface)
    for port, member in signature.members.items():
        if member.is_port:
            ports[port] = {
                "direction": str(member.flow.value),
                "bits": Shape.cast(member.shape).width,
                "shape": _layout_json(member.shape),
            }
        else:
            payload = member.signature.members["payload"].shape
            ports[port] = {
                "direction": str(member.flow.value),
                "stream": True,
                "payload_bits": Shape.cast(payload).width,
                "payload": _layout_json(payload),
            }
    return (
        {
            "format": "sfc-hls.engine/1",
            "toplevel": name,
            "lint": {
                "config": f"{name}.vlt",
                "command": f"verilator --lint-only -Wall {name}.vlt {name}.v",
            },
            "config": cfg.to_dict(),
            "algorithm": {
                "name": algo.name,
                "title": algo.title,
                "mults": algo.mults,
                "input_tile": algo.input_tile,
                "output_tile": algo.output_tile,
                "kernel": algo.kernel,
            },
            "multipliers": interface.multipliers,
            "adders": {
                "input_transform": interface.input_netlist.adders,
                "output_transform": interface.output_digit_netlist.adders,
            },
            "widths": {
                "v_bits": interface.v_bits,
                "act_bits": cfg.act_bits,
                "acc_bits": interface.acc_bits,
                "z_bits": cfg.z_bits,
                "y_bits": interface.y_bits,
                "out_bits": cfg.out_bits,
                "datapath_at_cin_max": widths.as_dict(),
            },
            "latency": {**interface.latency, "total": interface.total_latency},
            "limits": interface.limits,
            "registers": interface.registers.describe(),
            "ports": ports,
            "clock": "clk (rising edge), synchronous active-high reset rst",
        }
        | (_axi_manifest(interface, name) if axi else {})
        | _map_manifest(interface)
        | _weight_transform_manifest(interface)
        | _replay_manifest(interface)
    )


def _map_manifest(interface) -> dict:
    """The feature-map buffer (engines with one): geometry and what fits (docs/datapath.md)."""
    cfg = interface.config
    if not cfg.map_kib:
        return {}
    tile, pairs = interface.algo.input_tile, cfg.map_pairs
    return {
        "map_buffer": {
            "kib": cfg.map_kib,
            "memories": 2 * tile * pairs,
            "word_pixels": tile,
            "words_per_memory": cfg.map_depth,
            "beat_pixels": 2 * tile * pairs,
            "fits": "images * cin * ceil(height / L) * ceil(width / beat_pixels) "
            "<= words_per_memory",
            "largest_width": interface.map_limits["width"],
        }
    }


def _weight_transform_manifest(interface) -> dict:
    """The weight transform (engines with one): the spatial-weight beats (docs/datapath.md)."""
    cfg = interface.config
    if not cfg.weight_transform:
        return {}
    from sfc_hls.hw.weight_transform import SpatialWeightTransform
    from sfc_hls.weight_transform import max_weight_shift, weight_shift_bits

    algo, wb = interface.algo, cfg.weight_bits
    return {
        "weight_transform": {
            "rows_per_beat": algo.mults // algo.kernel**2,
            "shift_bits": weight_shift_bits(algo, wb),
            "max_shift": max_weight_shift(algo, wb),
            "g_denominator": algo.g_denominator,
            "latency": SpatialWeightTransform.latency_of(algo, wb),
            "group_beats": "1 + ceil(cin / rows_per_beat)",
        }
    }


def _replay_manifest(interface) -> dict:
    """The activation replay buffer (engines with one): its size and what fits."""
    cfg = interface.config
    if not cfg.replay_beats:
        return {}
    beat_bits = interface.layouts["act"].size
    return {
        "act_replay": {
            "beats": cfg.replay_beats,
            "beat_bits": beat_bits,
            "memory_bits": cfg.replay_beats * beat_bits,
            "fits": "TILES * reduction <= beats (reduction: CIN, or TAPS * CIN in direct mode)",
        }
    }


def _axi_manifest(interface, name: str) -> dict:
    """The AXI top's part of the manifest: clock, register map, stream widths, C header."""
    from sfc_hls.hw.axi_engine import axi_stream_widths
    from sfc_hls.hw.axi_registers import (
        AXI_ADDR_BITS,
        AXI_REGISTER_TABLE,
        DESCRIPTOR_WINDOW,
        ERROR_BITS,  # fmt: skip
        IRQ_BITS,
        STATUS_BITS,
        build_parameters,
    )

    tag = interface.layouts["out"].members["meta"]
    return {
        "interface": "axi",
        "clock": "aclk (rising edge), synchronous active-low reset aresetn",
        "axi": {
            "address_bits": AXI_ADDR_BITS,
            "descriptor_window": DESCRIPTOR_WINDOW,
            "registers": [
                {
                    "name": r.name,
                    "offset": r.offset,
                    "access": r.access,
                    "reset": r.reset,
                    "meaning": r.meaning,
                }
                for r in AXI_REGISTER_TABLE
            ],  # fmt: skip
            "status_bits": STATUS_BITS,
            "error_bits": ERROR_BITS,
            "irq_bits": IRQ_BITS,
            "build_parameters": build_parameters(interface),
            "tdata_bits": axi_stream_widths(interface),
            "engine_payload_bits": {
                name: interface.layouts[name[2:]].size
                for name in ("i_cfg", "i_chan", "i_weight", "i_act", "o_out")
            },
            "out_data_bits": interface.width * interface.config.out_bits,
            "tuser": {k: _layout_json(f.shape) for k, f in tag if k != "last"},
            "c_header": f"{name}_regs.h",
        },
    }


def _verified_cache_entry(verilog_path: Path, manifest_path: Path) -> dict[str, Any] | None:
    """The cached manifest if the entry is whole (the Verilog's hash is the manifest's), else None.

    A truncated, emptied or edited file makes the entry miss, so it is rebuilt
    (and healed) instead of being copied on.
    """
    if not (verilog_path.is_file() and manifest_path.is_file()):
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        digest = hashlib.sha256(verilog_path.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("verilog_sha256") != digest:
        return None
    return manifest


def generate_engine(
    config: EngineConfig,
    out_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    name: str = TOPLEVEL,
    axi: bool = False,
) -> GeneratedEngine:
    """Generate (or take from the cache) the Verilog of ``config``'s engine, top module ``name``.

    With ``out_dir`` the Verilog, the manifest and the lint config
    (``NAME.v``, ``NAME.json``, ``NAME.vlt``; with ``axi`` also ``NAME_regs.h``)
    are also written there (atomically).  ``axi``: the AXI top
    (:class:`~sfc_hls.hw.axi_engine.AxiConvEngine`) instead of the bare engine.
    """
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, got {type(config).__name__}")
    check_engine_name(name)
    key = hashlib.sha256(
        (
            json.dumps(config.to_dict(), sort_keys=True) + name + f"axi={axi}" + _source_digest()
        ).encode()
    ).hexdigest()[:24]
    cache_dir = _cache_root() / key
    verilog_path = cache_dir / f"{name}.v"
    manifest_path = cache_dir / f"{name}.json"
    t0 = time.perf_counter()
    manifest = _verified_cache_entry(verilog_path, manifest_path)
    if axi and not (cache_dir / f"{name}_regs.h").is_file():
        manifest = None
    cached = manifest is not None
    if manifest is None:
        from amaranth.back import verilog

        from sfc_hls.hw.axi_engine import AxiConvEngine
        from sfc_hls.hw.axi_registers import c_header
        from sfc_hls.hw.engine import ConvEngine

        top = AxiConvEngine(config) if axi else ConvEngine(config)
        manifest = engine_manifest(top.interface, name=name, axi=axi)
        text = verilog.convert(top, name=name, emit_src=False)
        manifest["verilog_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        if axi:
            write_text_atomic(cache_dir / f"{name}_regs.h", c_header(top.interface, name))
        write_text_atomic(verilog_path, text)
        write_text_atomic(manifest_path, json.dumps(manifest, indent=2))
    result = GeneratedEngine(
        verilog_path, manifest_path, manifest, cached, time.perf_counter() - t0
    )
    if out_dir is not None:
        out_dir = Path(out_dir)
        with atomic_directory(out_dir, overwrite=overwrite) as tmp:
            (tmp / verilog_path.name).write_bytes(verilog_path.read_bytes())
            (tmp / manifest_path.name).write_bytes(manifest_path.read_bytes())
            (tmp / f"{name}.vlt").write_text(lint_config(verilog_path.name))
            if axi:
                header = cache_dir / f"{name}_regs.h"
                (tmp / header.name).write_bytes(header.read_bytes())
        result = GeneratedEngine(
            out_dir / verilog_path.name,
            out_dir / manifest_path.name,
            manifest,
            cached,
            result.seconds,
        )
    return result
