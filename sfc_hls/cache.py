"""Where sfc-hls keeps what it can rebuild: generated engines, synthesis results, Verilator builds.

Everything lives under one root, ``$SFC_HLS_CACHE`` (default
``~/.cache/sfc-hls``), in one folder per kind: ``engines/`` (Verilog and
manifests, :mod:`sfc_hls.hw.generate`), ``synth/`` (Yosys and nextpnr results),
``sim_build/`` (Verilator builds, also ``$SFC_HLS_SIM_BUILD``), ``explore/``
(design points of ``sfc-hls explore``).  Entries are
named by a hash of everything that decides their content, so a stale entry is
never reused and the whole root can be deleted at any time.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_KINDS", "cache_dir", "sim_build_root"]

CACHE_KINDS = ("engines", "synth", "sim_build", "explore")


def cache_dir(kind: str) -> Path:
    """The folder of one kind of cache entry (not created here)."""
    if kind not in CACHE_KINDS:
        raise ValueError(f"kind must be one of {CACHE_KINDS}, got {kind!r}")
    root = os.environ.get("SFC_HLS_CACHE") or Path.home() / ".cache" / "sfc-hls"
    return Path(root) / kind


def sim_build_root() -> Path:
    """Root of the Verilator builds: ``$SFC_HLS_SIM_BUILD``, else ``cache_dir("sim_build")``."""
    override = os.environ.get("SFC_HLS_SIM_BUILD")
    return Path(override) if override else cache_dir("sim_build")
