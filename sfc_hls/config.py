"""Engine and layer parameters shared by the golden model, hw/, sim/ and host/.

:class:`EngineConfig` fixes what is generated in hardware (algorithm,
parallelism, widths, limits); :class:`LayerSpec` describes one convolution
layer run on an engine.  Both validate their fields and serialize to JSON.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import Field, asdict, dataclass, fields
from typing import Any, ClassVar, Self

from sfc_hls import map_input
from sfc_hls.arguments import check_int
from sfc_hls.bilinear import BilinearAlgorithm
from sfc_hls.catalog import get_algorithm
from sfc_hls.dsp_packing import packing_fits

__all__ = [
    "CHANNELS_MAX",
    "MAP_KIB_MAX",
    "MAP_PAIRS",
    "DATAPATH_FIELDS",
    "SCALE_MODES",
    "EngineConfig",
    "LayerSpec",
    "add_engine_arguments",
]

#: Largest ``cin_max`` / ``cout_max`` of an engine (bounds generation time and memory).
CHANNELS_MAX = 4096
#: Largest feature-map buffer, KiB (``EngineConfig.map_kib``).
MAP_KIB_MAX = 16384
#: Largest activation replay buffer, beats (``EngineConfig.replay_beats``).
REPLAY_BEATS_MAX = 1 << 16
#: Column pairs per ``i_map`` beat (``EngineConfig.map_pairs``).
MAP_PAIRS = (1, 2, 4)

#: Transform-domain activation requantization: ``pow2`` = rounding shift,
#: ``fixed`` = unsigned fixed-point multiplier then rounding shift.
SCALE_MODES = ("pow2", "fixed")
#: Device families the generated Verilog is written for (``EngineConfig.target``).
TARGETS = ("xilinx", "ecp5")


def check_target(target: object) -> None:
    """ValueError naming the allowed values unless ``target`` is one of :data:`TARGETS`."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")


#: Engine fields a layer's parameters must share with the engine that runs them
#: (the datapath widths and modes its integers were computed for).
DATAPATH_FIELDS = (
    "algorithm",
    "act_bits",
    "weight_bits",
    "scale_mode",
    "act_mult_bits",
    "rescale_bits",
    "z_bits",
    "out_mult_bits",
    "in_bits",
    "out_bits",
)


class _DictFields:
    """``to_dict``/``from_dict`` of a dataclass whose fields are all JSON values."""

    # Set by @dataclass on each subclass; declared so type checkers see a dataclass.
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The instance with these fields; ValueError names any unknown field."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class EngineConfig(_DictFields):
    """Parameters of one generated conv engine (and of its golden model).

    Attributes:
        algorithm: algorithm name (see :mod:`sfc_hls.catalog`), 2D.
        pco: output channels computed in parallel (MAC lanes); divides ``cout_max``.
        act_bits: width of the requantized transform-domain activations (2..32).
        weight_bits: width of the transformed weights (2..32).
        scale_mode: ``"pow2"`` or ``"fixed"`` activation requantization.
        cin_max: largest input-channel count of a layer (sizes the accumulators).
        cout_max: largest output-channel count (sizes the weight buffer).
        act_mult_bits: width of the unsigned activation multipliers (``fixed`` mode).
        rescale_bits: width of the unsigned per-(position, channel) rescale multipliers.
        z_bits: width of the rescaled values entering ``A^T``; the per-layer
            rescale shift is derived so that they fit.
        out_mult_bits: width of the unsigned per-channel output multipliers.
        in_bits: width of the spatial input activations (int8).
        out_bits: width of the spatial outputs (int8; wider only for exact-arithmetic checks).
        backend_width: transform positions per cycle of the output path (rescale,
            output quantizer); divides ``m``.  Default (``None``): the smallest
            divisor of ``m`` with ``backend_width >= m * pco / 64`` (the output path
            keeps up with the MAC array on layers with at least 64 input channels,
            ResNet's narrowest; narrower layers are output-bound) and
            ``backend_width >= min(m, 9)`` (the weight buffer then holds a direct
            3x3 conv over ``cin_max`` channels).
        direct_reduction_max: largest ``K^2 * cin`` of a direct-mode layer
            (sizes the accumulators with ``cin_max``; the weight buffer holds
            ``backend_width`` direct-mode weight entries per row, so it is at most
            ``backend_width * cin_max``).  Default (``None``): a 3x3 conv over
            ``cin_max`` channels, ``9 * cin_max``, capped by that capacity.
        macs_per_dsp: 1, or 2 to pack the products of two output channels
            (lanes ``2j``, ``2j+1``) that share an activation into one
            DSP48E2-sized multiply (:mod:`sfc_hls.dsp_packing`; bit-exact, the
            same results).  Default (``None``): 2 when the packed multiply fits
            a DSP48E2 (``act_bits + 2 * weight_bits + 1 <= 27``, int8 does) and
            ``pco >= 2``, else 1.  Use 1 for ECP5, whose 18x18 multipliers
            need two blocks for the packed multiply.
        target: the device family the Verilog is written for (:data:`TARGETS`).
            ``"xilinx"`` (default): plain multiplies that Yosys ``synth_xilinx``
            maps onto DSP48E2 slices.  ``"ecp5"``: every multiply is
            instantiated as MULT18X18D blocks with their input and output
            registers (:mod:`sfc_hls.hw.multiplier`; Yosys does not absorb
            registers into ECP5 multipliers), which adds pipeline stages to the
            MAC array, rescale and output quantizer; ``macs_per_dsp`` must be 1.
            Same results on every target.
        map_kib: on-chip feature-map buffer in KiB (0, the default: none).  An
            engine with one has an ``i_map`` port and takes a stride-1 fast-mode
            layer's input map as rows, each pixel once per layer
            (:mod:`sfc_hls.map_input`), building the overlapping tiles of every
            output-channel group on chip; the tile stream ``i_act`` stays for
            the other layers.  The buffer has ``2LP`` memories of ``map_depth``
            words of ``L`` pixels (:attr:`map_depth`).
        map_pairs: ``P``, the ``i_map`` beat's ``2L``-pixel column pairs (1, 2 or 4,
            default 4): the map loads ``2LP`` pixels per cycle into ``P`` times as
            many memories (more read multiplexers, the same block RAM).
        replay_beats: an activation replay buffer of this many ``i_act`` beats (0, the
            default: none).  An engine with one takes a layer's activation beats once
            when they fit (``TILES * reduction <= replay_beats``) and replays them from
            block RAM for every further output-channel group
            (:class:`~sfc_hls.hw.act_replay.ActReplay`), instead of once per group.
        weight_transform: an on-chip weight transform (default False: none).  An
            engine with one takes a fast-mode layer's weights on ``i_weight`` as int8
            spatial weights and a shift per (position, channel) when the layer sets
            SPATIAL_WEIGHTS (its :class:`~sfc_hls.datapath.LayerQuant` has
            ``spatial_weights``), ``m / R^2`` times fewer bytes than transform-domain
            rows, and computes the rows exactly (:mod:`sfc_hls.weight_transform`,
            :class:`~sfc_hls.hw.weight_transform.SpatialWeightTransform`).
    """

    algorithm: str = "sfc6-7x7-3x3"
    pco: int = 4
    act_bits: int = 8
    weight_bits: int = 8
    scale_mode: str = "pow2"
    cin_max: int = 256
    cout_max: int = 256
    act_mult_bits: int = 16
    rescale_bits: int = 16
    z_bits: int = 20
    out_mult_bits: int = 16
    in_bits: int = 8
    out_bits: int = 8
    target: str = "xilinx"
    map_kib: int = 0
    map_pairs: int = 4
    weight_transform: bool = False
    replay_beats: int = 0
    # None (the default) is derived in __post_init__, which always stores an int:
    # every reader sees an int, so that is the declared type.
    backend_width: int = None  # type: ignore[assignment]  # derived in __post_init__
    direct_reduction_max: int = None  # type: ignore[assignment]  # derived in __post_init__
    macs_per_dsp: int = None  # type: ignore[assignment]  # derived in __post_init__

    def __post_init__(self) -> None:
        algo = get_algorithm(self.algorithm)  # raises ValueError for unknown names
        if algo.dims != 2:
            raise ValueError(f"algorithm must be 2D for a conv engine, got {self.algorithm}")
        check_int("pco", self.pco, 1, 256)
        check_int("act_bits", self.act_bits, 2, 32)
        check_int("weight_bits", self.weight_bits, 2, 32)
        check_int("cin_max", self.cin_max, 1, CHANNELS_MAX)
        check_int("cout_max", self.cout_max, 1, CHANNELS_MAX)
        check_int("act_mult_bits", self.act_mult_bits, 1, 32)
        check_int("rescale_bits", self.rescale_bits, 1, 32)
        check_int("z_bits", self.z_bits, 8, 128)
        check_int("out_mult_bits", self.out_mult_bits, 1, 32)
        check_int("in_bits", self.in_bits, 2, 16)
        check_int("out_bits", self.out_bits, 2, 128)
        check_target(self.target)
        check_int("map_kib", self.map_kib, 0, MAP_KIB_MAX)
        if self.map_pairs not in MAP_PAIRS:
            raise ValueError(f"map_pairs must be one of {MAP_PAIRS}, got {self.map_pairs!r}")
        check_int("replay_beats", self.replay_beats, 0, REPLAY_BEATS_MAX)
        if not isinstance(self.weight_transform, bool):
            raise TypeError(f"weight_transform must be a bool, got {self.weight_transform!r}")
        if self.scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {self.scale_mode!r}")
        if self.cout_max % self.pco:
            raise ValueError(f"pco must divide cout_max: pco={self.pco}, cout_max={self.cout_max}")
        self._derive_backend(algo.mults)
        self._derive_packing()

    def _derive_backend(self, m: int) -> None:
        """Fill in (or check) ``backend_width`` and ``direct_reduction_max``."""
        width = self.backend_width
        if width is None:
            need = max(m * self.pco / 64, min(m, 9))
            width = min(d for d in range(1, m + 1) if m % d == 0 and d >= need)
            object.__setattr__(self, "backend_width", width)
        check_int("backend_width", width, 1, m)
        if m % width:
            divisors = [d for d in range(1, m + 1) if m % d == 0]
            raise ValueError(
                f"backend_width must divide the {m} transform positions of {self.algorithm}; "
                f"got {width}, allowed {divisors}"
            )
        capacity = width * self.cin_max
        reduction = self.direct_reduction_max
        if reduction is None:
            reduction = min(9 * self.cin_max, capacity)
            object.__setattr__(self, "direct_reduction_max", reduction)
        check_int("direct_reduction_max", reduction, 1, capacity)

    def _derive_packing(self) -> None:
        """Fill in (or check) ``macs_per_dsp``."""
        fits = packing_fits(self.act_bits, self.weight_bits)
        if self.macs_per_dsp is None:
            pack = fits and self.pco >= 2 and self.target == "xilinx"
            object.__setattr__(self, "macs_per_dsp", 2 if pack else 1)
        check_int("macs_per_dsp", self.macs_per_dsp, 1, 2)
        if self.macs_per_dsp == 2 and self.target != "xilinx":
            raise ValueError(
                f"macs_per_dsp=2 packs two weights into a DSP48E2's 27-bit port; target="
                f"{self.target!r} has 18x18 multipliers: use macs_per_dsp=1"
            )
        if self.macs_per_dsp == 2 and not fits:
            raise ValueError(
                f"macs_per_dsp=2 packs two weights into a DSP48E2's 27-bit port, which needs "
                f"act_bits + 2 * weight_bits + 1 <= 27 and act_bits <= 18; got act_bits="
                f"{self.act_bits}, weight_bits={self.weight_bits}: use macs_per_dsp=1"
            )

    @property
    def algo(self) -> BilinearAlgorithm:
        return get_algorithm(self.algorithm)

    @property
    def map_depth(self) -> int:
        """Words per memory of the feature-map buffer (0 without one): ``map_kib`` KiB over
        ``2LP`` memories of ``L``-pixel words, rounded up."""
        tile = self.algo.input_tile
        return -(-self.map_kib * 1024 // (2 * tile * tile * self.map_pairs))

    def map_words(self, images: int, cin: int, height: int, width: int) -> int:
        """Words per memory a map takes in this engine's buffer (it fits up to :attr:`map_depth`)."""
        return map_input.map_words(images, cin, height, width, self.algo.input_tile, self.map_pairs)

    def map_beats(self, images: int, cin: int, height: int, width: int) -> int:
        """``i_map`` beats of a map on this engine."""
        return map_input.beat_count(
            images, cin, height, width, self.algo.input_tile, self.map_pairs
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def check_layer(self, layer: Any, *, name: str | None = None) -> None:
        """ValueError when ``layer`` does not run on this engine, naming the layer and the limit.

        ``layer`` is a :class:`LayerSpec` (shape: kernel, channels) or a
        :class:`~sfc_hls.datapath.LayerQuant` (its ``config`` must share the
        engine's :data:`DATAPATH_FIELDS`; channels).  The one check of "does
        this layer fit the engine" for the host, the stream encoder and the
        quantizer.
        """
        where = f"layer {name!r}: " if name else ""
        layer_config = getattr(layer, "config", None)
        if isinstance(layer_config, EngineConfig):
            for field in DATAPATH_FIELDS:
                ours, theirs = getattr(self, field), getattr(layer_config, field)
                if ours != theirs:
                    raise ValueError(
                        f"{where}{field}={theirs!r} differs from the engine's {ours!r}"
                    )
        kernel: Any = getattr(layer, "kernel", None)
        if getattr(layer, "mode", "fast") == "direct":
            reduction = kernel * kernel * layer.cin
            if reduction > self.direct_reduction_max:
                raise ValueError(
                    f"{where}a direct {kernel}x{kernel} conv over {layer.cin} channels sums "
                    f"{reduction} products; the engine allows direct_reduction_max="
                    f"{self.direct_reduction_max}"
                )
        elif kernel is not None and kernel != self.algo.kernel:
            raise ValueError(
                f"{where}kernel {kernel} does not match the engine's algorithm "
                f"{self.algorithm} (R={self.algo.kernel})"
            )
        for field, limit in (("cin", self.cin_max), ("cout", self.cout_max)):
            value = getattr(layer, field)
            if value > limit:
                raise ValueError(f"{where}{field}={value} exceeds the engine's {field}_max={limit}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EngineConfig:
        """The configuration given by the options of :func:`add_engine_arguments`."""
        values = {
            field.name: getattr(args, field.name)
            for field in fields(cls)
            if getattr(args, field.name, None) is not None
        }
        if values.get("cout_max") is None and "pco" in values:
            # cout_max defaults to the default rounded up to a multiple of pco.
            pco = values["pco"]
            if isinstance(pco, int) and pco >= 1:
                values["cout_max"] = -(-cls.cout_max // pco) * pco
        return cls(**values)


def add_engine_arguments(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Command-line options of an engine configuration (``EngineConfig.from_args`` reads them).

    ``--algo``, ``--pco``, ``--scale-mode``, ``--act-bits``, ``--cin-max``,
    ``--cout-max``, ``--macs-per-dsp``; with ``required`` the algorithm and ``--pco`` must be given.
    """
    defaults = EngineConfig()
    group = parser.add_argument_group("engine")
    group.add_argument(
        "--algo",
        dest="algorithm",
        required=required,
        default=None if required else defaults.algorithm,
        help="fast algorithm of the engine" + ("" if required else " (default %(default)s)"),
    )
    group.add_argument(
        "--pco",
        type=int,
        required=required,
        default=None if required else defaults.pco,
        help="output channels in parallel (MAC lanes)"
        + ("" if required else " (default %(default)s)"),
    )
    group.add_argument("--scale-mode", choices=SCALE_MODES, default=defaults.scale_mode)
    group.add_argument("--act-bits", type=int, default=defaults.act_bits)
    group.add_argument("--cin-max", type=int, default=defaults.cin_max)
    group.add_argument(
        "--cout-max",
        type=int,
        default=None,
        help=f"default: {defaults.cout_max} rounded up to a multiple of --pco",
    )
    group.add_argument(
        "--macs-per-dsp",
        type=int,
        choices=(1, 2),
        default=None,
        help="2: two int8 MACs per DSP48E2 (packed multiply); default 2 where it fits and "
        "P_co >= 2, 1 for ECP5",
    )
    group.add_argument(
        "--map-kib",
        type=int,
        default=defaults.map_kib,
        help="on-chip feature-map buffer in KiB: stride-1 fast layers read their input map "
        "once per layer as rows (an i_map port); default %(default)s: none",
    )
    group.add_argument(
        "--map-pairs",
        type=int,
        choices=MAP_PAIRS,
        default=defaults.map_pairs,
        help="2L-pixel column pairs per i_map beat (default %(default)s)",
    )
    group.add_argument(
        "--replay-beats",
        type=int,
        default=defaults.replay_beats,
        help="activation replay buffer in i_act beats: a layer whose beats fit is sent once "
        "and replayed on chip for every output-channel group; default %(default)s: none",
    )
    group.add_argument(
        "--weight-transform",
        action="store_true",
        default=None,
        help="on-chip weight transform: fast layers take int8 spatial weights on i_weight "
        "(m / R^2 times fewer bytes) and the engine computes the transform-domain rows",
    )
    group.add_argument(
        "--target",
        choices=TARGETS,
        default=defaults.target,
        help="device family: DSP48E2 multiplies (xilinx) or MULT18X18D blocks with their "
        "pipeline registers (ecp5); default %(default)s",
    )


@dataclass(frozen=True)
class LayerSpec(_DictFields):
    """One stride-1 convolution layer: shapes, padding and activation.

    Attributes:
        cin, cout: channel counts.
        height, width: input feature-map size.
        padding: zero padding on each side (1 for ResNet's 3x3 layers).
        relu: clamp the int8 output at 0.
        kernel: kernel size R (must match the engine's algorithm).
    """

    cin: int
    cout: int
    height: int
    width: int
    padding: int = 1
    relu: bool = False
    kernel: int = 3

    def __post_init__(self) -> None:
        for name in ("cin", "cout", "height", "width", "kernel"):
            check_int(name, getattr(self, name), 1)
        check_int("padding", self.padding, 0)
        if not isinstance(self.relu, bool):
            raise TypeError(f"relu must be a bool, got {self.relu!r}")
        for name, size in (("height", self.height), ("width", self.width)):
            if size + 2 * self.padding < self.kernel:
                raise ValueError(
                    f"{name}={size} with padding {self.padding} is smaller than kernel {self.kernel}"
                )

    @property
    def out_height(self) -> int:
        return self.height + 2 * self.padding - self.kernel + 1

    @property
    def out_width(self) -> int:
        return self.width + 2 * self.padding - self.kernel + 1
