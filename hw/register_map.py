"""The conv engine's layer-descriptor registers and stream formats (no Amaranth needed).

Shared by the RTL (:mod:`sfc_hls.hw.engine`), the cocotb testbenches and the
host driver.  Registers are written through the engine's ``i_cfg`` stream of
``{addr: 16 bits, data: 32 bits}`` beats:

=============  ===========  ==========================================================
address        name         meaning
=============  ===========  ==========================================================
0x0000         CONTROL      write 1: start the layer described by the registers
0x0001         CIN          input channels, 1 .. cin_max
0x0002         COUT         output channels, 1 .. cout_max
0x0003         TILES        output tiles of the layer (per output-channel group), >= 1
0x0004         FLAGS        bit 0: ReLU
0x0005         RESCALE_SHIFT  rescale shift (per layer)
0x1000 + j     ACT_MULT[j]  activation multiplier of transform position j (fixed mode)
0x2000 + j     ACT_SHIFT[j] activation shift of transform position j
=============  ===========  ==========================================================

A layer then runs, for each output-channel group ``g`` (``ceil(COUT / P_co)``
groups), as: ``P_co`` beats on ``i_chan`` (per lane: rescale multipliers,
bias, output multiplier and shift; lanes past COUT are ignored), ``CIN``
beats on ``i_weight`` (row ``ci``: weights[lane][j]), then ``TILES * CIN``
beats on ``i_act`` (tile-major, input channel innermost).  Outputs come on
``o_out``, per tile one beat per valid lane (channel ``g * P_co + lane``).
The streams are independent: the engine takes group ``g + 1``'s ``i_chan``
and ``i_weight`` beats while group ``g``'s activations run (two banks), so a
host can keep all three streams queued.

Writing CONTROL with a descriptor beyond the generated limits (CIN, COUT,
TILES, shifts) does not start the layer: the status port's ``desc_error``
bit is set instead.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REGISTERS", "ADDR_BITS", "DATA_BITS", "RegisterMap", "layer_register_writes"]

ADDR_BITS = 16
DATA_BITS = 32

REGISTERS = {
    "CONTROL": 0x0000,
    "CIN": 0x0001,
    "COUT": 0x0002,
    "TILES": 0x0003,
    "FLAGS": 0x0004,
    "RESCALE_SHIFT": 0x0005,
    "ACT_MULT": 0x1000,
    "ACT_SHIFT": 0x2000,
}
FLAG_RELU = 1 << 0
START = 1


@dataclass(frozen=True)
class RegisterMap:
    """Addresses for an engine with ``positions`` transform positions."""

    positions: int

    def __post_init__(self) -> None:
        if not 1 <= self.positions <= 0x1000:
            raise ValueError(f"positions must be in [1, 4096], got {self.positions}")

    def act_mult(self, j: int) -> int:
        return REGISTERS["ACT_MULT"] + j

    def act_shift(self, j: int) -> int:
        return REGISTERS["ACT_SHIFT"] + j

    def describe(self) -> list[dict]:
        """The memory map as JSON-friendly rows (for the generated manifest)."""
        rows = [
            {"name": name, "address": addr, "count": 1}
            for name, addr in REGISTERS.items()
            if name not in ("ACT_MULT", "ACT_SHIFT")
        ]
        rows += [
            {"name": "ACT_MULT", "address": REGISTERS["ACT_MULT"], "count": self.positions},
            {"name": "ACT_SHIFT", "address": REGISTERS["ACT_SHIFT"], "count": self.positions},
        ]
        return rows


def layer_register_writes(params, tiles: int) -> list[tuple[int, int]]:
    """``(addr, data)`` writes describing a :class:`~sfc_hls.datapath.LayerQuant` layer, START last."""
    regs = RegisterMap(params.algo.mults)
    writes = [
        (REGISTERS["CIN"], params.cin),
        (REGISTERS["COUT"], params.cout),
        (REGISTERS["TILES"], tiles),
        (REGISTERS["FLAGS"], FLAG_RELU if params.relu else 0),
        (REGISTERS["RESCALE_SHIFT"], params.rescale_shift),
    ]
    for j in range(params.algo.mults):
        writes.append((regs.act_mult(j), int(params.act_mult[j])))
        writes.append((regs.act_shift(j), int(params.act_shift[j])))
    writes.append((REGISTERS["CONTROL"], START))
    return writes
