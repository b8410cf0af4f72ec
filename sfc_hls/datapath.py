"""The integer datapath of one conv layer: arithmetic primitives, parameters, widths.

This module is the executable form of docs/datapath.md.  Stages, for one tile
of one image (``m`` transform positions, ``L x L`` input tile, ``M x M``
output tile)::

    x      int8 input tile (zero padded)                         in_bits
    v      = B^T x                      exact                    v_bits   (row L1 norms)
    q      = sat(rshift(v * act_mult[j], act_shift[j]), act_bits)          act_bits
    acc    = sum_ci q[ci] * W[j, co, ci]                         acc_bits (cin bound)
    z      = rshift(acc * rescale_mult[j, co], rescale_shift)    z_bits   (checked)
    y      = A^T z                      exact (adds, shifts)     y_bits   (row L1 norms)
    out    = sat(rshift((y + bias[co]) * out_mult[co], out_shift[co]), out_bits), ReLU

``rshift(v, s) = floor((v + 2^(s-1)) / 2^s)`` for ``s > 0`` (round half up,
an add and an arithmetic shift in hardware) and ``v`` for ``s = 0``.
``sat`` clamps to the signed range of the width (``[0, max]`` with ReLU).
``pow2`` mode has ``act_mult = 1`` (a shift, no multiplier).

Every width is derived from a bound (:class:`DatapathWidths`), never chosen;
the golden models assert the bounds on the data they compute.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sfc_hls.bilinear import BilinearAlgorithm, signed_width
from sfc_hls.catalog import get_algorithm
from sfc_hls.config import EngineConfig

__all__ = [
    "DatapathWidths",
    "LayerQuant",
    "BoundError",
    "rshift_round",
    "rshift_round_bound",
    "saturate",
    "signed_range",
    "MODES",
    "layer_reduction",
    "minimum_rescale_shift",
    "accumulation_bound",
    "no_saturation_shift",
    "check_bound",
    "random_layer_quant",
]

MAX_SHIFT = 62


class BoundError(ArithmeticError):
    """A value left the range its derived width can hold (would wrap in hardware)."""


def signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def rshift_round(v: np.ndarray, shift) -> np.ndarray:
    """Round-half-up arithmetic right shift, elementwise; ``shift`` broadcasts, >= 0."""
    v = np.asarray(v)
    shift = np.asarray(shift)
    if v.dtype == object or shift.dtype == object:
        return _rshift_round_object(v, shift)
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift, 1) - 1), 0)
    return np.right_shift(v + half, shift)


def no_saturation_shift(lo: int, hi: int, bits: int) -> int:
    """Smallest ``s`` at which ``rshift_round(v, s)`` lies in ``signed(bits)`` for every
    ``v`` in ``[lo, hi]`` (``lo <= 0 <= hi``).

    A larger shift cannot help a requantizer: nothing saturates at ``s`` already, and
    each further bit only doubles the rounding step.
    """
    q_lo, q_hi = signed_range(bits)
    s = 0
    while (hi + (1 << s >> 1)) >> s > q_hi or (lo + (1 << s >> 1)) >> s < q_lo:
        s += 1
    return s


def _rshift_round_object(v: np.ndarray, shift: np.ndarray) -> np.ndarray:
    v, shift = np.broadcast_arrays(np.asarray(v, dtype=object), np.asarray(shift, dtype=object))
    out = np.empty(v.shape, dtype=object)
    for idx in np.ndindex(v.shape):
        s = int(shift[idx])
        out[idx] = (int(v[idx]) + (1 << (s - 1))) >> s if s > 0 else int(v[idx])
    return out


def rshift_round_bound(bound: int, shift: int) -> int:
    """Largest |rshift_round(v, shift)| for |v| <= bound."""
    if shift == 0:
        return bound
    return (bound + (1 << (shift - 1))) >> shift


def saturate(v: np.ndarray, bits: int, relu: bool = False) -> np.ndarray:
    lo, hi = signed_range(bits)
    return np.clip(v, 0 if relu else lo, hi)


#: Layer modes of the engine: ``fast`` (the algorithm's transforms, stride-1 convs with its
#: kernel) and ``direct`` (any kernel and stride; transform positions are output pixels).
MODES = ("fast", "direct")


def layer_reduction(mode: str, cin: int, kernel: int | None = None) -> int:
    """Products summed into one accumulator: ``cin`` (fast) or ``kernel^2 * cin`` (direct)."""
    if mode == "fast":
        return cin
    if mode == "direct":
        if kernel is None:
            raise ValueError("a direct-mode layer needs its kernel size")
        return kernel * kernel * cin
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def accumulation_bound(cin: int, act_bits: int, weight_bits: int) -> int:
    """|sum of cin products| <= cin * 2^(a-1) * 2^(w-1) (the -2^(a-1) * -2^(w-1) corner)."""
    return cin * (1 << (act_bits - 1)) * (1 << (weight_bits - 1))


def minimum_rescale_shift(reduction: int, config: EngineConfig) -> int:
    """Smallest rescale shift for which every rescaled accumulator fits ``z_bits``.

    ``reduction``: products per accumulator (``cin`` in fast mode, ``K^2 cin`` in direct mode).
    """
    acc = accumulation_bound(reduction, config.act_bits, config.weight_bits)
    bound = acc * ((1 << config.rescale_bits) - 1)
    _, hi = signed_range(config.z_bits)
    for s in range(MAX_SHIFT + 1):
        if rshift_round_bound(bound, s) <= hi:
            return s
    raise ValueError(f"no rescale shift <= {MAX_SHIFT} fits z_bits={config.z_bits}")


@dataclass(frozen=True)
class DatapathWidths:
    """Bounds (max magnitude) and signed widths of every stage, for one layer.

    Derived from the algorithm's matrices, the engine config and the layer's
    ``cin`` and ``rescale_shift``: ``*_bound`` are inclusive magnitude bounds,
    ``*_bits`` the signed widths holding ``[-bound, bound]``.  A rounding
    shift adds ``2^(s-1)`` before shifting; shift amounts are limited to the
    width of the value shifted, so the rounded sum needs one more bit
    (``*_round_bits``).
    """

    in_bits: int
    v_lo: np.ndarray = field(repr=False)  # per position
    v_hi: np.ndarray = field(repr=False)
    v_bits: int
    act_mult_max: int  # 1 in pow2 mode
    act_product_bound: int  # |v * act_mult|
    act_product_bits: int
    act_bits: int
    acc_bound: int
    acc_bits: int
    rescaled_bound: int  # |acc * rescale_mult|
    rescaled_bits: int
    z_bound: int
    z_bits: int
    y_bound: np.ndarray = field(repr=False)  # per output position of the tile
    y_bits: int
    bias_bound: int
    biased_bound: int
    biased_bits: int
    out_product_bound: int
    out_product_bits: int
    out_bits: int

    @classmethod
    def derive(
        cls,
        algo: BilinearAlgorithm,
        config: EngineConfig,
        cin: int,
        rescale_shift: int,
        *,
        mode: str = "fast",
        kernel: int | None = None,
    ) -> DatapathWidths:
        """Widths of a layer with ``cin`` input channels and ``rescale_shift``.

        ``mode="fast"``: the algorithm's transforms (``v = B^T x``, ``y = A^T z``),
        a reduction over ``cin`` products.  ``mode="direct"`` (``kernel`` K):
        ``v = x``, ``y = z``, a reduction over ``K^2 cin`` products.
        """
        reduction = layer_reduction(mode, cin, kernel)
        if mode == "fast":
            v_lo, v_hi = algo.input_transform_range(config.in_bits)
            v_bits = int(algo.input_transform_width(config.in_bits))
        else:
            lo, hi = signed_range(config.in_bits)
            v_lo, v_hi, v_bits = np.array([lo]), np.array([hi]), config.in_bits
        v_bound = int(max(np.max(np.abs(v_lo)), np.max(np.abs(v_hi))))
        act_mult_max = 1 if config.scale_mode == "pow2" else (1 << config.act_mult_bits) - 1
        act_product_bound = v_bound * act_mult_max
        acc_bound = accumulation_bound(reduction, config.act_bits, config.weight_bits)
        rescaled_bound = acc_bound * ((1 << config.rescale_bits) - 1)
        z_bound = rshift_round_bound(rescaled_bound, rescale_shift)
        if z_bound > signed_range(config.z_bits)[1]:
            raise ValueError(
                f"rescale_shift={rescale_shift} leaves rescaled values up to {z_bound}, beyond "
                f"z_bits={config.z_bits}; the minimum for a reduction over {reduction} "
                f"products is {minimum_rescale_shift(reduction, config)}"
            )
        if mode == "fast":
            y_bound = np.abs(algo.at_int).sum(axis=1) * z_bound
        else:
            y_bound = np.array([z_bound])
        y_max = int(y_bound.max())
        biased_bound = 2 * y_max  # |bias| <= y bound
        out_product_bound = biased_bound * ((1 << config.out_mult_bits) - 1)

        def width(bound: int) -> int:
            return signed_width(-bound, bound)

        return cls(
            in_bits=config.in_bits,
            v_lo=v_lo,
            v_hi=v_hi,
            v_bits=v_bits,
            act_mult_max=act_mult_max,
            act_product_bound=act_product_bound,
            act_product_bits=width(act_product_bound),
            act_bits=config.act_bits,
            acc_bound=acc_bound,
            acc_bits=width(acc_bound),
            rescaled_bound=rescaled_bound,
            rescaled_bits=width(rescaled_bound),
            z_bound=z_bound,
            z_bits=config.z_bits,
            y_bound=y_bound,
            y_bits=width(y_max),
            bias_bound=y_max,
            biased_bound=biased_bound,
            biased_bits=width(biased_bound),
            out_product_bound=out_product_bound,
            out_product_bits=width(out_product_bound),
            out_bits=config.out_bits,
        )

    @property
    def act_shift_max(self) -> np.ndarray:
        """Largest legal ``act_shift`` per position (``(m,)``; direct mode ``(1,)``): the
        smallest shift at which no product ``v * act_mult`` of the position (``v`` in its
        range, any legal ``act_mult``) saturates ``act_bits`` (:func:`no_saturation_shift`;
        a larger shift only loses precision, and the requantizer need not build it)."""
        return np.array(
            [no_saturation_shift(int(lo) * self.act_mult_max, int(hi) * self.act_mult_max,
                                 self.act_bits) for lo, hi in zip(self.v_lo, self.v_hi, strict=True)],
            dtype=np.int64,
        )  # fmt: skip

    @property
    def act_round_bits(self) -> int:
        return self.act_product_bits + 1

    @property
    def rescaled_round_bits(self) -> int:
        return self.rescaled_bits + 1

    @property
    def out_round_bits(self) -> int:
        return self.out_product_bits + 1

    def as_dict(self) -> dict[str, int]:
        """Stage widths in datapath order (for manifests and reports)."""
        return {
            "in_bits": self.in_bits,
            "v_bits": self.v_bits,
            "act_product_bits": self.act_product_bits,
            "act_round_bits": self.act_round_bits,
            "act_bits": self.act_bits,
            "acc_bits": self.acc_bits,
            "rescaled_bits": self.rescaled_bits,
            "rescaled_round_bits": self.rescaled_round_bits,
            "z_bits": self.z_bits,
            "y_bits": self.y_bits,
            "biased_bits": self.biased_bits,
            "out_product_bits": self.out_product_bits,
            "out_round_bits": self.out_round_bits,
            "out_bits": self.out_bits,
        }


def check_bound(name: str, values: np.ndarray, lo, hi) -> None:
    """Raise BoundError if any value is outside ``[lo, hi]`` (broadcasting)."""
    values = np.asarray(values)
    if values.size == 0:
        return
    bad = (values < lo) | (values > hi)
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise BoundError(
            f"{name}: value {values[idx]} at {idx} is outside its derived range "
            f"[{np.broadcast_to(lo, values.shape)[idx]}, {np.broadcast_to(hi, values.shape)[idx]}]"
        )


_ARRAY_FIELDS = (
    "act_mult",
    "act_shift",
    "weights",
    "rescale_mult",
    "bias",
    "out_mult",
    "out_shift",
)


_INT_FIELDS = ("cin", "cout", "padding", "rescale_shift")
#: Optional arrays: the spatial source of a fast layer's weights (both or neither).
_SPATIAL_FIELDS = ("spatial_weights", "weight_shift")


def _integer_array(name: str, value: Any) -> np.ndarray:
    """``value`` as an int64 array; ValueError naming ``name`` unless it holds only integers."""
    try:
        arr = np.asarray(value)
    except ValueError:
        raise ValueError(f"{name} is ragged (not a rectangular nested list)") from None
    if arr.dtype.kind not in "iu" and arr.size:
        raise ValueError(f"{name} must hold integers only (int64), got {arr.dtype} values")
    return arr.astype(np.int64)


def _integer_field(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def _bool_field(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _finite_field(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, eq=False)
class LayerQuant:
    """Integer parameters of one quantized conv layer on an engine (the layer descriptor data).

    Two modes (docs/datapath.md): ``fast`` runs the engine's algorithm (its
    kernel, stride 1 -- or any stride for a 1x1-output-tile algorithm); ``direct``
    runs any ``K x K`` kernel at any stride on the same MAC array, the
    transform positions holding output pixels.

    Attributes:
        config: the engine (algorithm, widths, scale mode).
        cin, cout, padding, relu: the layer.
        act_mult, act_shift: per transform position ``(m,)``; ``act_mult == 1`` in pow2
            mode; in direct mode every position has the same values (they act on pixels).
        weights: quantized weights, symmetric ``[-(2^(w-1) - 1), 2^(w-1) - 1]``: fast mode
            the transformed weights ``(m, cout, cin)``; direct mode the spatial weights
            ``(cout, cin, K, K)``.
        rescale_mult: unsigned, ``< 2^rescale_bits``: ``(m, cout)`` (fast) or ``(cout,)`` (direct).
        rescale_shift: per layer, ``>= minimum_rescale_shift(reduction, config)``.
        bias: ``(cout,)`` in the ``y`` scale.
        out_mult, out_shift: ``(cout,)`` output requantization.
        input_scale, output_scale: real value of one LSB of the int8 input / output
            (metadata for dequantization; the integer datapath does not use them).
        mode: ``"fast"`` or ``"direct"``.
        spatial_weights, weight_shift: optional, fast mode: the layer's weights as int8
            spatial weights ``(cout, cin, R, R)`` and a shift per (position, output channel)
            ``(m, cout)``; then ``weights`` must equal their on-chip transform
            (:func:`sfc_hls.weight_transform.transform_spatial_weights`), which an engine
            with a weight transform computes from them (docs/datapath.md, "Spatial weights").
    """

    config: EngineConfig
    cin: int
    cout: int
    act_mult: np.ndarray
    act_shift: np.ndarray
    weights: np.ndarray
    rescale_mult: np.ndarray
    rescale_shift: int
    bias: np.ndarray
    out_mult: np.ndarray
    out_shift: np.ndarray
    padding: int = 1
    relu: bool = False
    input_scale: float = 1.0
    output_scale: float = 1.0
    mode: str = "fast"
    spatial_weights: np.ndarray | None = None
    weight_shift: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in _ARRAY_FIELDS + _SPATIAL_FIELDS:
            if getattr(self, name) is None and name in _SPATIAL_FIELDS:
                continue
            arr = np.asarray(getattr(self, name))
            if arr.dtype.kind not in "iu":
                raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
            object.__setattr__(self, name, arr.astype(np.int64))
        self.validate()

    @property
    def algo(self) -> BilinearAlgorithm:
        return self.config.algo

    @property
    def kernel(self) -> int:
        """Kernel size: the algorithm's (fast) or the weights' (direct)."""
        if self.mode == "direct":
            return int(self.weights.shape[-1]) if self.weights.ndim == 4 else 0
        return self.algo.kernel

    @property
    def reduction(self) -> int:
        """Products per accumulator: ``cin`` (fast) or ``K^2 cin`` (direct)."""
        return layer_reduction(self.mode, self.cin, self.kernel)

    @property
    def widths(self) -> DatapathWidths:
        return DatapathWidths.derive(
            self.algo, self.config, self.cin, self.rescale_shift, mode=self.mode, kernel=self.kernel
        )

    def validate(self) -> None:
        """Check shapes and ranges against the config; ValueError naming the field."""
        cfg = self.config
        m = self.algo.mults
        for name, value in (("cin", self.cin), ("cout", self.cout), ("padding", self.padding)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if self.cin < 1 or self.cout < 1 or self.padding < 0:
            raise ValueError(
                f"cin, cout must be >= 1 and padding >= 0, got {self.cin}, {self.cout}, {self.padding}"
            )
        k = self.kernel
        direct = self.mode == "direct"
        shapes = {
            "act_mult": (m,),
            "act_shift": (m,),
            "weights": (self.cout, self.cin, k, k) if direct else (m, self.cout, self.cin),
            "rescale_mult": (self.cout,) if direct else (m, self.cout),
            "bias": (self.cout,),
            "out_mult": (self.cout,),
            "out_shift": (self.cout,),
        }
        if direct and (self.weights.ndim != 4 or k < 1 or self.weights.shape[2] != k):
            raise ValueError(
                f"weights of a direct-mode layer must have shape (cout, cin, K, K), got "
                f"{self.weights.shape}"
            )
        if direct:
            for name in ("act_mult", "act_shift"):
                arr = getattr(self, name)
                if arr.size and np.any(arr != arr.flat[0]):
                    raise ValueError(
                        f"{name} must be the same at every position in direct mode "
                        "(positions hold pixels); got several values"
                    )
        for name, shape in shapes.items():
            got = getattr(self, name).shape
            if got != shape:
                raise ValueError(
                    f"{name} has shape {got}, expected {shape} ({self.mode} mode, "
                    f"{self.algo.name}: m={m}, cout={self.cout}, cin={self.cin})"
                )
        wmax = (1 << (cfg.weight_bits - 1)) - 1
        limits = {
            "act_mult": (1, 1) if cfg.scale_mode == "pow2" else (0, (1 << cfg.act_mult_bits) - 1),
            "weights": (-wmax, wmax),
            "rescale_mult": (0, (1 << cfg.rescale_bits) - 1),
            "out_mult": (0, (1 << cfg.out_mult_bits) - 1),
        }
        for name, (lo, hi) in limits.items():
            arr = getattr(self, name)
            if arr.size and (arr.min() < lo or arr.max() > hi):
                raise ValueError(
                    f"{name} must be in [{lo}, {hi}] ({cfg.scale_mode} mode, "
                    f"{cfg.weight_bits}-bit weights); got [{arr.min()}, {arr.max()}]"
                )
        if not isinstance(self.rescale_shift, int) or isinstance(self.rescale_shift, bool):
            raise TypeError(f"rescale_shift must be an int, got {self.rescale_shift!r}")
        widths = self.widths  # raises when the shift leaves z beyond z_bits
        self._check_act_shift_limits(widths)
        shift_limits = {
            "act_shift": (self.act_shift, widths.act_product_bits),
            "rescale_shift": (np.array([self.rescale_shift]), widths.rescaled_bits),
            "out_shift": (self.out_shift, widths.out_product_bits),
        }
        for name, (arr, hi) in shift_limits.items():
            if arr.size and (arr.min() < 0 or arr.max() > hi):
                raise ValueError(
                    f"{name} must be in [0, {hi}] (the width of the value it shifts); "
                    f"got [{arr.min()}, {arr.max()}]"
                )
        if self.bias.size and np.abs(self.bias).max() > widths.bias_bound:
            raise ValueError(
                f"bias magnitude must be <= {widths.bias_bound} (the y bound); "
                f"got {np.abs(self.bias).max()}"
            )
        if not isinstance(self.relu, bool):
            raise TypeError(f"relu must be a bool, got {self.relu!r}")
        self._validate_spatial()

    @property
    def has_spatial_weights(self) -> bool:
        """True when the weights come from spatial weights and shifts (an on-chip transform)."""
        return self.spatial_weights is not None

    def _check_act_shift_limits(self, widths: DatapathWidths) -> None:
        """``act_shift[j] <= widths.act_shift_max[j]``: a shift beyond the position's
        no-saturation shift only loses precision (and the requantizer does not build it)."""
        limit = np.broadcast_to(widths.act_shift_max, self.act_shift.shape)
        over = np.flatnonzero(self.act_shift > limit)
        if over.size:
            j = int(over[0])
            raise ValueError(
                f"act_shift at position {j} is {int(self.act_shift[j])}, above {int(limit[j])}, "
                f"the smallest shift at which no activation of that position saturates "
                f"{self.config.act_bits} bits ({self.mode} mode; a larger shift only loses "
                "precision)"
            )

    def _validate_spatial(self) -> None:
        from sfc_hls.weight_transform import shift_window, transform_spatial_weights

        given = [name for name in _SPATIAL_FIELDS if getattr(self, name) is not None]
        if not given:
            return
        if len(given) == 1:
            missing = next(name for name in _SPATIAL_FIELDS if name not in given)
            raise ValueError(f"{given[0]} is given without {missing}; give both or neither")
        if self.mode != "fast":
            raise ValueError("spatial_weights apply to fast-mode layers only")
        algo, bits = self.algo, self.config.weight_bits
        spatial, shift = self.spatial_weights, self.weight_shift
        assert spatial is not None and shift is not None
        r = algo.kernel
        for name, arr, shape in (
            ("spatial_weights", spatial, (self.cout, self.cin, r, r)),
            ("weight_shift", shift, (algo.mults, self.cout)),
        ):
            if arr.shape != shape:
                raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
        wmax = (1 << (bits - 1)) - 1
        if spatial.size and np.abs(spatial).max() > wmax:
            raise ValueError(f"spatial_weights must be in [{-wmax}, {wmax}]; got "
                             f"[{spatial.min()}, {spatial.max()}]")  # fmt: skip
        lo, hi = shift_window(algo, bits)
        bad = (shift < lo[:, None]) | (shift > hi[:, None])
        if bad.any():
            j, co = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"weight_shift[{j}, {co}] = {shift[j, co]} is outside position {j}'s window "
                f"[{lo[j]}, {hi[j]}]"
            )
        try:
            derived = transform_spatial_weights(spatial, shift, algo, bits)
        except BoundError as exc:
            raise ValueError(f"weight_shift too small for spatial_weights: {exc}") from None
        if not np.array_equal(derived, self.weights):
            idx = tuple(int(i) for i in np.argwhere(derived != self.weights)[0])
            raise ValueError(
                f"weights{list(idx)} = {self.weights[idx]} is not the transform of "
                f"spatial_weights and weight_shift ({derived[idx]})"
            )

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": "sfc-hls.layer-quant/1",
            "config": self.config.to_dict(),
            "cin": self.cin,
            "cout": self.cout,
            "padding": self.padding,
            "relu": self.relu,
            "rescale_shift": self.rescale_shift,
            "input_scale": self.input_scale,
            "output_scale": self.output_scale,
            "mode": self.mode,
        }
        for name in _ARRAY_FIELDS:
            d[name] = getattr(self, name).tolist()
        for name in _SPATIAL_FIELDS:
            if getattr(self, name) is not None:
                d[name] = getattr(self, name).tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerQuant:
        """Rebuild from :meth:`to_dict`'s record; ValueError names a missing or ill-typed field.

        Arrays must hold integers (a JSON 34.7 is an error, never truncated),
        scalars their JSON type; the record's invariants are then checked by
        ``__post_init__``.
        """
        if not isinstance(d, dict) or d.get("format") != "sfc-hls.layer-quant/1":
            found = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise ValueError(
                f"not a layer-quant record (format={found!r}, expected 'sfc-hls.layer-quant/1')"
            )
        try:
            if not isinstance(d["config"], dict):
                raise ValueError(f"config must be an object, got {type(d['config']).__name__}")
            kwargs: dict[str, Any] = {name: _integer_array(name, d[name]) for name in _ARRAY_FIELDS}
            for name in _SPATIAL_FIELDS:
                if name in d:
                    kwargs[name] = _integer_array(name, d[name])
            ints: dict[str, Any] = {name: _integer_field(name, d[name]) for name in _INT_FIELDS}
            return cls(
                config=EngineConfig.from_dict(d["config"]),
                relu=_bool_field("relu", d["relu"]),
                input_scale=_finite_field("input_scale", d["input_scale"]),
                output_scale=_finite_field("output_scale", d["output_scale"]),
                mode=d.get("mode", "fast"),
                **ints,
                **kwargs,
            )
        except KeyError as exc:
            raise ValueError(f"layer-quant record is missing the field {exc.args[0]!r}") from None

    def save(self, path: str | Path) -> None:
        """Write JSON atomically (temp file + rename)."""
        from sfc_hls.atomic_files import write_text_atomic

        write_text_atomic(Path(path), json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> LayerQuant:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read layer-quant file {path}: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def lossless(
        cls, algorithm: str, w: np.ndarray, *, padding: int = 1, in_bits: int = 8
    ) -> tuple[LayerQuant, np.ndarray]:
        """Parameters under which the datapath is exact: returns ``(params, w_int)``.

        Integer weights ``w`` (cout, cin, R, R) are scaled by ``D`` (LCM of
        ``G``'s denominators) so that ``G (D w)`` is integral; it is stored
        unquantized, act/weight/z/output widths are made wide enough, and every
        multiplier is 1 with shift 0.  The output then equals integer direct
        convolution with ``w_int = D w``.
        """
        algo = get_algorithm(algorithm)
        w = np.asarray(w, dtype=np.int64)
        cout, cin = w.shape[:2]
        w_int = w * algo.g_denominator
        u = w.reshape(cout, cin, -1).astype(object) @ algo.g_scaled_int.T
        weights = np.ascontiguousarray(u.astype(np.int64).transpose(2, 0, 1))  # (m, cout, cin)
        w_max = max(int(np.abs(weights).max()), 1)
        weight_bits = signed_width(-w_max, w_max)
        act_bits = algo.input_transform_width(in_bits)
        acc = accumulation_bound(cin, act_bits, weight_bits)
        y = int(np.abs(algo.at_int).sum(axis=1).max()) * acc
        config = EngineConfig(
            algorithm=algorithm,
            pco=1,
            act_bits=act_bits,
            weight_bits=weight_bits,
            scale_mode="pow2",
            cin_max=cin,
            cout_max=cout,
            rescale_bits=1,
            z_bits=max(signed_width(-acc, acc), 8),
            out_mult_bits=1,
            in_bits=in_bits,
            out_bits=signed_width(-y, y),
        )
        m = algo.mults
        params = cls(
            config=config,
            cin=cin,
            cout=cout,
            act_mult=np.ones(m, dtype=np.int64),
            act_shift=np.zeros(m, dtype=np.int64),
            weights=weights,
            rescale_mult=np.ones((m, cout), dtype=np.int64),
            rescale_shift=0,
            bias=np.zeros(cout, dtype=np.int64),
            out_mult=np.ones(cout, dtype=np.int64),
            out_shift=np.zeros(cout, dtype=np.int64),
            padding=padding,
        )
        return params, w_int


def random_layer_quant(
    config: EngineConfig,
    cin: int,
    cout: int,
    rng: np.random.Generator,
    *,
    padding: int = 1,
    relu: bool = False,
    mode: str = "fast",
    kernel: int | None = None,
    spatial: bool | None = None,
) -> LayerQuant:
    """Valid random integer parameters for ``config`` (for tests and test vectors).

    Multipliers are drawn over their full range; shifts are placed so that
    typical values land near the top of the next stage's range, so that both
    rounding and saturation are exercised.  ``mode="direct"`` draws a direct-mode
    layer with a ``kernel x kernel`` kernel (default: the algorithm's).
    ``spatial``: a fast layer's weights from random spatial weights and shifts
    (every shift, clamping included; default: when the engine has a weight transform).
    """
    if mode == "direct":
        return _random_direct_layer(
            config, cin, cout, rng, kernel or config.algo.kernel, padding=padding, relu=relu
        )
    if mode != "fast":
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    algo = config.algo
    m = algo.mults
    if config.scale_mode == "pow2":
        act_mult = np.ones(m, dtype=np.int64)
    else:
        act_mult = rng.integers(1 << (config.act_mult_bits - 1), 1 << config.act_mult_bits, m)
    widths0 = DatapathWidths.derive(algo, config, cin, minimum_rescale_shift(cin, config))
    v_peak = np.maximum(np.abs(widths0.v_lo), np.abs(widths0.v_hi))
    # Typical |v| is well below the worst case: aim the shift at a quarter of it.
    typical = np.maximum(v_peak * act_mult // 4, 1)
    act_shift = np.array([int(t).bit_length() for t in typical]) - (config.act_bits - 1)
    act_shift = np.clip(act_shift + rng.integers(-1, 2, m), 0, widths0.act_shift_max)
    wmax = (1 << (config.weight_bits - 1)) - 1
    spatial_weights = weight_shift = None
    if config.weight_transform if spatial is None else spatial:
        from sfc_hls.weight_transform import (
            exact_transform,
            fitting_shifts,
            requantize_transformed,
            shift_window,
        )

        r, bits = algo.kernel, config.weight_bits
        spatial_weights = rng.integers(-wmax, wmax + 1, size=(cout, cin, r, r))
        u = exact_transform(spatial_weights, algo, bits)
        # The smallest shift that fits, or a random larger one in the window.
        fit, hi = fitting_shifts(u, algo, bits), shift_window(algo, bits)[1][:, None]
        weight_shift = np.minimum(fit + rng.integers(0, 2, size=fit.shape), hi)
        weights = requantize_transformed(u, weight_shift, bits)
    else:
        weights = rng.integers(-wmax, wmax + 1, size=(m, cout, cin))
    rescale_mult = rng.integers(0, 1 << config.rescale_bits, size=(m, cout))
    rescale_shift = minimum_rescale_shift(cin, config) + int(rng.integers(0, 3))
    wd = DatapathWidths.derive(algo, config, cin, rescale_shift)
    # Typical magnitudes of a random layer: sums of cin and of |A^T| row terms.
    acc_typ = np.sqrt(cin) * (1 << (config.act_bits - 2)) * (wmax / 2)
    z_typ = acc_typ * (1 << (config.rescale_bits - 1)) / (1 << rescale_shift)
    y_typ = z_typ * np.sqrt(np.abs(algo.at_int).sum(axis=1).mean())
    bias = rng.integers(-int(y_typ) - 1, int(y_typ) + 2, size=cout)
    bias = np.clip(bias, -wd.bias_bound, wd.bias_bound)
    out_mult = rng.integers(1 << (config.out_mult_bits - 1), 1 << config.out_mult_bits, cout)
    prod_typ = y_typ * (1 << config.out_mult_bits)
    shift_typ = int(max(prod_typ, 1)).bit_length() - (config.out_bits - 1)
    out_shift = np.clip(shift_typ + rng.integers(-1, 2, cout), 0, wd.out_product_bits)
    return LayerQuant(
        config=config,
        cin=cin,
        cout=cout,
        act_mult=act_mult,
        act_shift=act_shift,
        weights=weights,
        rescale_mult=rescale_mult,
        rescale_shift=rescale_shift,
        bias=bias,
        out_mult=out_mult,
        out_shift=out_shift,
        padding=padding,
        relu=relu,
        spatial_weights=spatial_weights,
        weight_shift=weight_shift,
    )


def _random_direct_layer(
    config: EngineConfig,
    cin: int,
    cout: int,
    rng: np.random.Generator,
    kernel: int,
    *,
    padding: int,
    relu: bool,
) -> LayerQuant:
    """:func:`random_layer_quant` of a direct-mode layer (the same placement of the shifts)."""
    m = config.algo.mults
    reduction = layer_reduction("direct", cin, kernel)
    if config.scale_mode == "pow2":
        act_mult = 1
    else:
        act_mult = int(rng.integers(1 << (config.act_mult_bits - 1), 1 << config.act_mult_bits))
    widths0 = DatapathWidths.derive(
        config.algo, config, cin, minimum_rescale_shift(reduction, config), mode="direct",
        kernel=kernel,
    )  # fmt: skip
    typical = max((1 << (config.in_bits - 2)) * act_mult, 1)
    act_shift = int(np.clip(typical.bit_length() - (config.act_bits - 1) + rng.integers(-1, 2),
                            0, int(widths0.act_shift_max[0])))  # fmt: skip
    wmax = (1 << (config.weight_bits - 1)) - 1
    weights = rng.integers(-wmax, wmax + 1, size=(cout, cin, kernel, kernel))
    rescale_mult = rng.integers(0, 1 << config.rescale_bits, size=cout)
    rescale_shift = minimum_rescale_shift(reduction, config) + int(rng.integers(0, 3))
    wd = DatapathWidths.derive(
        config.algo, config, cin, rescale_shift, mode="direct", kernel=kernel
    )
    acc_typ = np.sqrt(reduction) * (1 << (config.act_bits - 2)) * (wmax / 2)
    y_typ = acc_typ * (1 << (config.rescale_bits - 1)) / (1 << rescale_shift)
    bias = np.clip(rng.integers(-int(y_typ) - 1, int(y_typ) + 2, size=cout),
                   -wd.bias_bound, wd.bias_bound)  # fmt: skip
    out_mult = rng.integers(1 << (config.out_mult_bits - 1), 1 << config.out_mult_bits, cout)
    shift_typ = int(max(y_typ * (1 << config.out_mult_bits), 1)).bit_length() - (
        config.out_bits - 1
    )
    out_shift = np.clip(shift_typ + rng.integers(-1, 2, cout), 0, wd.out_product_bits)
    return LayerQuant(
        config=config,
        cin=cin,
        cout=cout,
        act_mult=np.full(m, act_mult),
        act_shift=np.full(m, act_shift),
        weights=weights,
        rescale_mult=rescale_mult,
        rescale_shift=rescale_shift,
        bias=bias,
        out_mult=out_mult,
        out_shift=out_shift,
        padding=padding,
        relu=relu,
        mode="direct",
    )
