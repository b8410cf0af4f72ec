"""Engine and layer parameters shared by the golden model, hw/, sim/ and host/.

:class:`EngineConfig` fixes what is generated in hardware (algorithm,
parallelism, widths, limits); :class:`LayerSpec` describes one convolution
layer run on an engine.  Both validate their fields and serialize to JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

from sfc_hls.arguments import check_int
from sfc_hls.bilinear import BilinearAlgorithm
from sfc_hls.catalog import get_algorithm

__all__ = ["SCALE_MODES", "EngineConfig", "LayerSpec"]

#: Transform-domain activation requantization: ``pow2`` = rounding shift,
#: ``fixed`` = unsigned fixed-point multiplier then rounding shift.
SCALE_MODES = ("pow2", "fixed")


class _DictFields:
    """``to_dict``/``from_dict`` of a dataclass whose fields are all JSON values."""

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
    z_bits: int = 24
    out_mult_bits: int = 16
    in_bits: int = 8
    out_bits: int = 8

    def __post_init__(self) -> None:
        algo = get_algorithm(self.algorithm)  # raises ValueError for unknown names
        if algo.dims != 2:
            raise ValueError(f"algorithm must be 2D for a conv engine, got {self.algorithm}")
        check_int("pco", self.pco, 1, 256)
        check_int("act_bits", self.act_bits, 2, 32)
        check_int("weight_bits", self.weight_bits, 2, 32)
        check_int("cin_max", self.cin_max, 1, 1 << 16)
        check_int("cout_max", self.cout_max, 1, 1 << 16)
        check_int("act_mult_bits", self.act_mult_bits, 1, 32)
        check_int("rescale_bits", self.rescale_bits, 1, 32)
        check_int("z_bits", self.z_bits, 8, 128)
        check_int("out_mult_bits", self.out_mult_bits, 1, 32)
        check_int("in_bits", self.in_bits, 2, 16)
        check_int("out_bits", self.out_bits, 2, 128)
        if self.scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {self.scale_mode!r}")
        if self.cout_max % self.pco:
            raise ValueError(f"pco must divide cout_max: pco={self.pco}, cout_max={self.cout_max}")

    @property
    def algo(self) -> BilinearAlgorithm:
        return get_algorithm(self.algorithm)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


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

    def check_engine(self, engine: EngineConfig) -> None:
        """ValueError when this layer does not fit ``engine`` (names the limit)."""
        algo = engine.algo
        if self.kernel != algo.kernel:
            raise ValueError(
                f"kernel {self.kernel} does not match engine algorithm {algo.name} (R={algo.kernel})"
            )
        if self.cin > engine.cin_max:
            raise ValueError(f"cin={self.cin} exceeds the engine's cin_max={engine.cin_max}")
        if self.cout > engine.cout_max:
            raise ValueError(f"cout={self.cout} exceeds the engine's cout_max={engine.cout_max}")
