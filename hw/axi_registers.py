"""The AXI4-Lite register map of the AXI top (:class:`~sfc_hls.hw.axi_engine.AxiConvEngine`).

No Amaranth needed: the RTL decodes this table, the C header, the manifest,
docs/integration.md and the cocotbext-axi test read it.  Byte addresses,
32-bit registers, full-word accesses (``WSTRB = 0xF``):

* ``0x0000 .. 0x00FF``: the wrapper's own registers (:data:`AXI_REGISTER_TABLE`):
  identification, status, error causes, interrupt, layer and cycle counters,
  and the engine's build parameters (read-only, from the generator).
* ``DESCRIPTOR_WINDOW + 4 * a``: the engine's register ``a``
  (:mod:`sfc_hls.hw.register_map`: CIN at ``a = 1``, ACT_SHIFT[j] at
  ``a = 0x2000 + j``, CONTROL at ``a = 0``).  A write goes to the engine's
  *staged* descriptor at once, also while a layer runs; writing START to
  CONTROL commits it, and the layer starts as soon as the engine is idle
  (one cycle after the previous layer ends).  Until then the staged
  descriptor is locked: a write to the window while ``STATUS.START_PENDING``
  is set is dropped, answered with SLVERR and recorded in ``ERROR.LOCKED``.
  A read returns the last value written to that address (reset: 0).

Every other address, a partial write, or a write to a read-only register
answers SLVERR and sets ``ERROR.ACCESS``; no access ever stalls the bus for
longer than a few cycles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

__all__ = [
    "AXI_ADDR_BITS",
    "AXI_ID",
    "AXI_MAP_VERSION",
    "AXI_REGISTER_TABLE",
    "AXI_REGISTERS",
    "DESCRIPTOR_WINDOW",
    "ERROR_BITS",
    "IRQ_BITS",
    "WINDOW_WORDS",
    "STATUS_BITS",
    "AxiRegister",
    "build_parameters",
    "c_header",
    "config_hash",
    "descriptor_address",
]

#: ``ID`` register value: ASCII "SFCH".
AXI_ID = 0x53464348
#: Version of this register map (``VERSION``).
AXI_MAP_VERSION = 1
#: Byte address of the engine's register 0 (CONTROL).
DESCRIPTOR_WINDOW = 0x10000
#: AXI4-Lite address width: the window holds engine addresses up to 0x3FFF.
AXI_ADDR_BITS = 17
#: Engine registers the window holds (addresses 0 .. WINDOW_WORDS - 1).
WINDOW_WORDS = ((1 << AXI_ADDR_BITS) - DESCRIPTOR_WINDOW) // 4

#: Bits of STATUS (read-only, live).
STATUS_BITS = {"BUSY": 0, "START_PENDING": 1, "DESC_ERROR": 2, "OVERFLOW": 3}
#: Bits of ERROR (sticky, write 1 to clear).
ERROR_BITS = {"DESCRIPTOR": 0, "LOCKED": 1, "ACCESS": 2, "OVERFLOW": 3}
#: Bits of IRQ_ENABLE and IRQ_STATUS (write 1 to clear).
IRQ_BITS = {"DONE": 0, "ERROR": 1}


@dataclass(frozen=True)
class AxiRegister:
    """One register of the wrapper: byte ``offset``, ``access`` (``ro``, ``rw``, ``w1c``,
    ``wo``), ``reset`` value (``None``: a build parameter, see :func:`build_parameters`)."""

    name: str
    offset: int
    access: str
    reset: int | None
    meaning: str


AXI_REGISTER_TABLE: tuple[AxiRegister, ...] = (
    AxiRegister("ID", 0x00, "ro", AXI_ID, 'identification, ASCII "SFCH"'),
    AxiRegister("VERSION", 0x04, "ro", AXI_MAP_VERSION, "version of this register map"),
    AxiRegister("STATUS", 0x08, "ro", 0, "bit 0 BUSY: a layer runs; bit 1 START_PENDING: a "
                "committed descriptor waits (window locked); bit 2 DESC_ERROR: the last commit "
                "was invalid; bit 3 OVERFLOW: the running/last layer saturated the rescale"),
    AxiRegister("ERROR", 0x0C, "w1c", 0, "sticky causes: bit 0 DESCRIPTOR (a commit found an "
                "invalid descriptor, no layer started), bit 1 LOCKED (window write dropped while "
                "START_PENDING), bit 2 ACCESS (unmapped, read-only or partial write), bit 3 "
                "OVERFLOW (a layer saturated the rescale)"),
    AxiRegister("IRQ_ENABLE", 0x10, "rw", 0, "bit 0: interrupt on DONE, bit 1: on ERROR"),
    AxiRegister("IRQ_STATUS", 0x14, "w1c", 0, "bit 0 DONE: a layer ended; bit 1 ERROR: a "
                "bit of ERROR was set; the `irq` port = |(IRQ_STATUS & IRQ_ENABLE)"),
    AxiRegister("LAYERS_DONE", 0x18, "ro", 0, "layers completed since reset"),
    AxiRegister("LAST_LAYER_CYCLES", 0x1C, "ro", 0, "cycles of the last completed layer, "
                "start to last output"),
    AxiRegister("BUSY_CYCLES_LO", 0x20, "ro", 0, "cycles with BUSY since reset, bits 31:0; "
                "reading it latches bits 63:32 into BUSY_CYCLES_HI"),
    AxiRegister("BUSY_CYCLES_HI", 0x24, "ro", 0, "bits 63:32, as latched by the last "
                "BUSY_CYCLES_LO read"),
    AxiRegister("POSITIONS", 0x40, "ro", None, "transform positions m (MACs per lane)"),
    AxiRegister("PCO", 0x44, "ro", None, "output-channel lanes P_co"),
    AxiRegister("CIN_MAX", 0x48, "ro", None, "largest CIN"),
    AxiRegister("COUT_MAX", 0x4C, "ro", None, "largest COUT"),
    AxiRegister("TILES_MAX", 0x50, "ro", None, "largest TILES"),
    AxiRegister("REDUCTION_MAX", 0x54, "ro", None, "largest TAPS * CIN in direct mode"),
    AxiRegister("TILE", 0x58, "ro", None, "bits 7:0 input tile L, 15:8 output tile M, "
                "23:16 kernel K of the fast mode"),
    AxiRegister("BITS", 0x5C, "ro", None, "bits 7:0 activation, 15:8 weight, 23:16 input, "
                "31:24 output bits"),
    AxiRegister("OUTPUT_WIDTH", 0x60, "ro", None, "output pixels per o_out beat W"),
    AxiRegister("MACS_PER_DSP", 0x64, "ro", None, "int8 products per DSP multiplier"),
    AxiRegister("CONFIG_HASH", 0x68, "ro", None, "first 32 bits of the sha256 of the "
                "engine configuration (the manifest's `config_hash`)"),
)  # fmt: skip

#: Byte offset of every wrapper register.
AXI_REGISTERS = {reg.name: reg.offset for reg in AXI_REGISTER_TABLE}


def descriptor_address(engine_address: int) -> int:
    """AXI byte address of the engine register ``engine_address`` (in the descriptor window)."""
    if not 0 <= engine_address < WINDOW_WORDS:
        raise ValueError(f"engine register address must be in [0, 0x3FFF], got {engine_address:#x}")
    return DESCRIPTOR_WINDOW + 4 * engine_address


def config_hash(config) -> int:
    """First 32 bits of the sha256 of ``config``'s canonical JSON (``CONFIG_HASH``)."""
    text = json.dumps(config.to_dict(), sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "big")


def build_parameters(interface) -> dict[str, int]:
    """Value of every build-parameter register of ``interface``'s engine."""
    cfg, algo, limits = interface.config, interface.algo, interface.limits
    values = {
        "POSITIONS": interface.positions,
        "PCO": interface.lanes,
        "CIN_MAX": limits["cin"],
        "COUT_MAX": limits["cout"],
        "TILES_MAX": limits["tiles"],
        "REDUCTION_MAX": limits["direct_reduction"],
        "TILE": algo.input_tile | algo.output_tile << 8 | algo.kernel << 16,
        "BITS": cfg.act_bits | cfg.weight_bits << 8 | cfg.in_bits << 16 | cfg.out_bits << 24,
        "OUTPUT_WIDTH": interface.width,
        "MACS_PER_DSP": cfg.macs_per_dsp,
        "CONFIG_HASH": config_hash(cfg),
    }
    missing = {r.name for r in AXI_REGISTER_TABLE if r.reset is None} ^ set(values)
    if missing:
        raise AssertionError(f"build parameters and the register table disagree on {missing}")
    for name, value in values.items():
        if not 0 <= value < 1 << 32:
            raise ValueError(f"build parameter {name} = {value} does not fit 32 bits")
    return values


def c_header(interface, name: str) -> str:
    """A C header with the register map of the AXI top ``name`` and its build parameters."""
    p = name.upper()
    lines = [
        f"/* Register map of the sfc-hls AXI engine `{name}` (generated; do not edit). */",
        f"#ifndef {p}_REGS_H",
        f"#define {p}_REGS_H",
        "",
        "/* Wrapper registers: byte offsets from the AXI4-Lite base address. */",
    ]
    for reg in AXI_REGISTER_TABLE:
        lines.append(f"#define {p}_{reg.name} 0x{reg.offset:04X}u /* {reg.access} */")
    for group, bits in (("STATUS", STATUS_BITS), ("ERROR", ERROR_BITS), ("IRQ", IRQ_BITS)):
        for bit_name, bit in bits.items():
            lines.append(f"#define {p}_{group}_{bit_name} (1u << {bit})")
    lines += ["", "/* Build parameters of this engine (the values the registers return). */"]
    for reg_name, value in build_parameters(interface).items():
        lines.append(f"#define {p}_VALUE_{reg_name} 0x{value:08X}u")
    lines += [
        "",
        "/* Engine registers (the layer descriptor) in the descriptor window. */",
        f"#define {p}_DESCRIPTOR_WINDOW 0x{DESCRIPTOR_WINDOW:05X}u",
        f"#define {p}_DESC(a) ({p}_DESCRIPTOR_WINDOW + 4u * (a))",
    ]
    regs = interface.registers
    for row in regs.table:
        lines.append(f"#define {p}_DESC_{row.name} 0x{row.address:04X}u /* {row.meaning} */")
    lines += [
        f"#define {p}_DESC_POSITIONS {regs.positions}u",
        f"#define {p}_DESC_START 1u",
        f"#define {p}_DESC_FLAG_RELU 1u",
        "",
        f"#endif /* {p}_REGS_H */",
        "",
    ]
    return "\n".join(lines)
