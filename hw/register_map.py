"""The conv engine's layer-descriptor registers and stream formats (no Amaranth needed).

Shared by the RTL (:class:`~sfc_hls.hw.descriptor.DescriptorRegisters` decodes
writes from :data:`REGISTER_TABLE`), the testbenches, the manifest and the
host driver.  Registers are written through the engine's ``i_cfg`` stream of
``{addr: 16 bits, data: 32 bits}`` beats:

=============  ===============  ==========================================================
address        name             meaning
=============  ===============  ==========================================================
0x0000         CONTROL          write 1: start the layer described by the registers
0x0001         CIN              input channels, 1 .. cin_max
0x0002         COUT             output channels, 1 .. cout_max
0x0003         TILES            output tiles of the layer (per output-channel group), >= 1
0x0004         FLAGS            bit 0: ReLU
0x0005         RESCALE_SHIFT    rescale shift (per layer)
0x0006         MODE             0: fast (the engine's algorithm), 1: direct convolution
0x0007         TAPS             direct mode: kernel taps K*K (1 .. direct_reduction_max / CIN)
0x0008         REPLICAS         direct mode: output-channel replicas R (a divisor of m / W)
0x0009         MAP_INPUT        1: the layer's input map on ``i_map`` (map-buffer engines only)
0x000A         IMAGES           map input: images N of the map
0x000B         HEIGHT           map input: rows H of the map
0x000C         WIDTH            map input: columns W of the map
0x000D         PADDING          map input: zero padding P on each side (<= L - M)
0x000E         SPATIAL_WEIGHTS  1: spatial weights on ``i_weight`` (weight-transform engines only)
0x000F         ACT_REPLAY       1: ``i_act`` beats once, replayed per group (replay engines only)
0x1000 + j     ACT_MULT[j]      activation multiplier of transform position j (fixed mode)
0x2000 + j     ACT_SHIFT[j]     activation shift of transform position j
=============  ===============  ==========================================================

A layer then runs, for each output-channel group ``g`` (``ceil(COUT / P_co)``
groups), as: ``P_co`` beats on ``i_chan`` (per lane: rescale multipliers,
bias, output multiplier and shift; lanes past COUT are ignored), ``CIN``
beats on ``i_weight`` (row ``ci``: weights[lane][j]), then ``TILES * CIN``
beats on ``i_act`` (tile-major, input channel innermost).  Outputs come on
``o_out``, per tile one beat per valid lane (channel ``g * P_co + lane``).
The streams are independent: the engine takes group ``g + 1``'s ``i_chan``
and ``i_weight`` beats while group ``g``'s activations run (two banks), so a
host can keep all three streams queued.

An engine generated with a feature-map buffer (``EngineConfig.map_kib``)
also decodes MAP_INPUT .. PADDING (rows with ``feature="map"``; elsewhere
they are unmapped).  With MAP_INPUT set, a fast-mode layer takes its input
map once on ``i_map`` (:mod:`sfc_hls.map_input`) instead of ``TILES * CIN``
beats per group on ``i_act``; TILES must then be ``N * ceil(Ho/M) * ceil(Wo/M)``.

An engine generated with an on-chip weight transform
(``EngineConfig.weight_transform``) also decodes SPATIAL_WEIGHTS (``feature="weights"``).
With it set, a fast-mode layer's ``i_weight`` beats per group are one header of
shifts and ``ceil(CIN / k)`` beats of ``k`` spatial rows
(:class:`~sfc_hls.hw.weight_transform.SpatialWeightTransform`) instead of ``CIN``
transform-domain rows.

An engine generated with an activation replay buffer (``EngineConfig.replay_beats``)
also decodes ACT_REPLAY (``feature="replay"``): with it set, the layer's ``i_act``
beats are sent once (the first group's ``TILES * reduction``) and replayed on chip
for the other groups (:class:`~sfc_hls.hw.act_replay.ActReplay`); not with MAP_INPUT.

Writing CONTROL with a descriptor beyond the generated limits (CIN, COUT,
TILES, shifts) does not start the layer: the status port's ``desc_error``
bit is set instead.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ADDR_BITS",
    "DATA_BITS",
    "FLAG_RELU",
    "REGISTERS",
    "REGISTER_TABLE",
    "START",
    "Register",
    "RegisterMap",
    "layer_register_writes",
]

ADDR_BITS = 16
DATA_BITS = 32
FLAG_RELU = 1 << 0
START = 1


@dataclass(frozen=True)
class Register:
    """One row of the register map.

    Attributes:
        name: register name (``ACT_MULT`` for the array ``ACT_MULT[j]``).
        address: address of the register (of element 0 for an array).
        field: the descriptor field it writes (``None``: CONTROL, a strobe).
        per_position: an array with one register per transform position.
        limit: key of the engine's limits that the written value must not
            exceed (``None``: no check).
        bit: for a flag, the data bit it takes (``None``: the whole value).
        meaning: one line for documentation and the manifest.
        feature: ``"map"``: decoded only by engines with a feature-map buffer;
            ``"weights"``: only by engines with a weight transform; ``"replay"``: only by
            engines with an activation replay buffer (``None``: by every engine).
    """

    name: str
    address: int
    field: str | None
    per_position: bool = False
    limit: str | None = None
    bit: int | None = None
    meaning: str = ""
    feature: str | None = None


#: The register map, as the RTL decodes it.
REGISTER_TABLE: tuple[Register, ...] = (
    Register("CONTROL", 0x0000, None, meaning="write 1 (START): start the layer"),
    Register("CIN", 0x0001, "cin", limit="cin", meaning="input channels, 1 .. cin_max"),
    Register("COUT", 0x0002, "cout", limit="cout", meaning="output channels, 1 .. cout_max"),
    Register("TILES", 0x0003, "tiles", limit="tiles", meaning="output tiles per group, >= 1"),
    Register("FLAGS", 0x0004, "relu", bit=0, meaning="bit 0: ReLU"),
    Register(
        "RESCALE_SHIFT",
        0x0005,
        "rescale_shift",
        limit="rescale_shift",
        meaning="rescale shift of the layer",
    ),
    Register("MODE", 0x0006, "direct", limit="mode", meaning="0: fast, 1: direct convolution"),
    Register("TAPS", 0x0007, "taps", limit="taps", meaning="direct mode: kernel taps K*K"),
    Register(
        "REPLICAS",
        0x0008,
        "replicas",
        limit="replicas",
        meaning="direct mode: output-channel replicas (a divisor of m / W)",
    ),
    Register(
        "MAP_INPUT", 0x0009, "map_input", bit=0, meaning="1: the input map on i_map", feature="map"
    ),  # fmt: skip
    Register(
        "IMAGES", 0x000A, "images", limit="images", meaning="map input: images N", feature="map"
    ),  # fmt: skip
    Register(
        "HEIGHT", 0x000B, "height", limit="height", meaning="map input: rows H", feature="map"
    ),  # fmt: skip
    Register(
        "WIDTH", 0x000C, "width", limit="width", meaning="map input: columns W", feature="map"
    ),  # fmt: skip
    Register(
        "PADDING",
        0x000D,
        "padding",
        limit="padding",
        meaning="map input: zero padding on each side, <= L - M",
        feature="map",
    ),  # fmt: skip
    Register(
        "SPATIAL_WEIGHTS",
        0x000E,
        "spatial_weights",
        bit=0,
        meaning="1: spatial weights and shifts on i_weight (fast mode)",
        feature="weights",
    ),
    Register(
        "ACT_REPLAY",
        0x000F,
        "act_replay",
        bit=0,
        meaning="1: the first group's i_act beats only, replayed for the other groups",
        feature="replay",
    ),
    Register(
        "ACT_MULT",
        0x1000,
        "act_mult",
        per_position=True,
        limit="act_mult",
        meaning="activation multiplier of transform position j (fixed mode)",
    ),
    Register(
        "ACT_SHIFT",
        0x2000,
        "act_shift",
        per_position=True,
        limit="act_shift",
        meaning="activation shift of transform position j",
    ),
)

#: Address of every register (of element 0 for the per-position arrays).
REGISTERS = {reg.name: reg.address for reg in REGISTER_TABLE}


@dataclass(frozen=True)
class RegisterMap:
    """Addresses for an engine with ``positions`` transform positions (a map buffer, a weight transform)."""

    positions: int
    map_input: bool = False
    weight_transform: bool = False
    act_replay: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.positions <= 0x1000:
            raise ValueError(f"positions must be in [1, 4096], got {self.positions}")

    @property
    def table(self) -> tuple[Register, ...]:
        """The rows this engine decodes: every row, less those of features it does not have."""
        features = {"map": self.map_input, "weights": self.weight_transform,
                    "replay": self.act_replay}  # fmt: skip
        return tuple(r for r in REGISTER_TABLE if r.feature is None or features[r.feature])

    def act_mult(self, j: int) -> int:
        return REGISTERS["ACT_MULT"] + j

    def act_shift(self, j: int) -> int:
        return REGISTERS["ACT_SHIFT"] + j

    def count(self, register: Register) -> int:
        """Registers in the row: ``positions`` for per-position arrays, else 1."""
        return self.positions if register.per_position else 1

    def layer_addresses(self) -> list[int]:
        """Addresses a layer writes before CONTROL, in the order :func:`layer_register_writes` uses."""
        scalars = [r.address for r in self.table if r.field and not r.per_position]
        arrays = [
            self.act_mult(j) if k == 0 else self.act_shift(j)
            for j in range(self.positions)
            for k in range(2)
        ]
        return scalars + arrays

    def describe(self) -> list[dict]:
        """The memory map as JSON-friendly rows (for the generated manifest)."""
        return [
            {
                "name": reg.name,
                "address": reg.address,
                "count": self.count(reg),
                "field": reg.field,
                "limit": reg.limit,
                "meaning": reg.meaning,
            }
            for reg in self.table
        ]


def layer_register_writes(
    params,
    tiles: int,
    *,
    replicas: int = 1,
    registers: RegisterMap | None = None,
    map_shape: tuple[int, int, int] | None = None,
    spatial_weights: bool = False,
    act_replay: bool = False,
) -> list[tuple[int, int]]:
    """``(addr, data)`` writes describing a :class:`~sfc_hls.datapath.LayerQuant` layer, START last.

    ``replicas``: the direct-mode schedule's output-channel replicas (1 in fast mode).
    ``registers``: the engine's register map (default: an engine without a map
    buffer).  ``map_shape``: ``(images, height, width)`` of the input map when the
    layer takes it on ``i_map`` (needs a map-buffer engine).  ``spatial_weights``: the
    layer's ``i_weight`` beats carry spatial weights (needs a weight-transform engine).
    ``act_replay``: the layer's ``i_act`` beats come once (needs a replay engine).
    """
    regs = registers if registers is not None else RegisterMap(params.algo.mults)
    if map_shape is not None and not regs.map_input:
        raise ValueError("map_shape needs an engine with a feature-map buffer (map_kib > 0)")
    if spatial_weights and not regs.weight_transform:
        raise ValueError("spatial_weights needs an engine with a weight transform")
    if act_replay and not regs.act_replay:
        raise ValueError("act_replay needs an engine with an activation replay buffer")
    direct = params.mode == "direct"
    writes = [
        (REGISTERS["CIN"], params.cin),
        (REGISTERS["COUT"], params.cout),
        (REGISTERS["TILES"], tiles),
        (REGISTERS["FLAGS"], FLAG_RELU if params.relu else 0),
        (REGISTERS["RESCALE_SHIFT"], params.rescale_shift),
        (REGISTERS["MODE"], int(direct)),
        (REGISTERS["TAPS"], params.kernel**2 if direct else 1),
        (REGISTERS["REPLICAS"], replicas if direct else 1),
    ]
    if regs.map_input:
        images, height, width = map_shape if map_shape is not None else (0, 0, 0)
        writes += [
            (REGISTERS["MAP_INPUT"], int(map_shape is not None)),
            (REGISTERS["IMAGES"], images),
            (REGISTERS["HEIGHT"], height),
            (REGISTERS["WIDTH"], width),
            (REGISTERS["PADDING"], params.padding if map_shape is not None else 0),
        ]
    if regs.weight_transform:
        writes.append((REGISTERS["SPATIAL_WEIGHTS"], int(spatial_weights)))
    if regs.act_replay:
        writes.append((REGISTERS["ACT_REPLAY"], int(act_replay)))
    for j in range(params.algo.mults):
        writes.append((regs.act_mult(j), int(params.act_mult[j])))
        writes.append((regs.act_shift(j), int(params.act_shift[j])))
    writes.append((REGISTERS["CONTROL"], START))
    if [a for a, _ in writes[:-1]] != regs.layer_addresses():  # one order, stated once
        raise AssertionError("layer_register_writes disagrees with RegisterMap.layer_addresses")
    return writes
