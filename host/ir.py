"""The host driver's intermediate representation: a network as a list of layer descriptors.

:func:`sfc_hls.host.lowering.lower_model` produces a :class:`Network` from a
torch model; calibration (:mod:`sfc_hls.host.calibration`) and the runner
(:mod:`sfc_hls.host.inference`) consume it.  Layers are in execution order
and connected by tensor names (a layer's ``output`` is the tensor it
produces; every tensor has exactly one producer, the network input
``"input"`` none).  Shapes are per image: ``(C, H, W)`` for feature maps,
``(features,)`` after global pooling.

Layer kinds:

* :class:`Conv` -- a convolution with BatchNorm folded in (float64 weights and
  bias) and ReLU fused when it follows directly; runs on the accelerator's
  one engine (fast algorithm ``algorithm``) in the layer's ``mode``: ``fast``
  for stride-1 convs with the algorithm's kernel, ``direct`` for every other;
* :class:`Add` -- residual addition (ReLU fused), on the host;
* :class:`MaxPool`, :class:`AvgPool`, :class:`GlobalAvgPool`, :class:`Flatten`,
  :class:`Linear` -- on the host.

Every descriptor prints as one table row (:meth:`Network.table`) and
serializes to JSON (:meth:`Network.to_dict`, format ``sfc-hls.network/1``);
weights are included only on request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sfc_hls.catalog import get_algorithm
from sfc_hls.text_table import format_table

__all__ = [
    "FORMAT",
    "INPUT",
    "Add",
    "AvgPool",
    "Conv",
    "Flatten",
    "GlobalAvgPool",
    "Layer",
    "Linear",
    "MaxPool",
    "Network",
]

FORMAT = "sfc-hls.network/1"
#: Name of the network's input tensor.
INPUT = "input"


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


class _OneInput:
    """Ops with one input tensor, named by their ``input`` field."""

    input: str

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass(eq=False)
class Conv(_OneInput):
    """Conv2d (+ folded BatchNorm, + fused ReLU) on the engine of fast algorithm ``algorithm``.

    ``weight`` (cout, cin, K, K) and ``bias`` (cout,) are float64 with the
    BatchNorm folded in (``bn`` names the folded module, ``None`` if none).
    ``mode`` is ``"fast"`` (stride 1, the algorithm's kernel) or ``"direct"``
    (any kernel and stride, :func:`sfc_hls.host.lowering.choose_mode`).
    """

    op: ClassVar[str] = "conv"
    name: str
    input: str
    output: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: int
    stride: int
    padding: int
    relu: bool
    algorithm: str
    bn: str | None = None
    weight: np.ndarray | None = field(default=None, repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    mode: str = "fast"

    @property
    def cin(self) -> int:
        return self.in_shape[0]

    @property
    def cout(self) -> int:
        return self.out_shape[0]

    @property
    def reduction(self) -> int:
        """Products per accumulator on the engine: ``cin`` (fast) or ``K^2 cin`` (direct)."""
        return self.cin if self.mode == "fast" else self.kernel**2 * self.cin

    @property
    def tiles(self) -> int:
        """Fast-mode tiles per image (edge tiles included); direct mode: output pixels."""
        if self.mode == "direct":
            return self.out_shape[1] * self.out_shape[2]
        return get_algorithm(self.algorithm).tiles(self.out_shape[1], self.out_shape[2])

    @property
    def macs(self) -> int:
        """Multiply-accumulates of direct convolution, per image."""
        return self.out_shape[1] * self.out_shape[2] * self.cout * self.cin * self.kernel**2

    @property
    def mults(self) -> int:
        """Multiplications the engine performs, per image: whole edge tiles in fast mode,
        the convolution's own in direct mode."""
        if self.mode == "direct":
            return self.macs
        return self.tiles * get_algorithm(self.algorithm).mults * self.cin * self.cout

    def describe(self) -> str:
        act = " +relu" if self.relu else ""
        return f"{self.kernel}x{self.kernel}/{self.stride} pad {self.padding}, {self.mode}{act}"


@dataclass(eq=False)
class Add:
    """Residual addition of two tensors of equal shape (+ fused ReLU), on the host."""

    op: ClassVar[str] = "add"
    name: str
    inputs: tuple[str, str]
    output: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    relu: bool

    def describe(self) -> str:
        return " + ".join(self.inputs) + (" +relu" if self.relu else "")


@dataclass(eq=False)
class MaxPool(_OneInput):
    """Max pooling (square window; padded positions never win, as torch's ``-inf`` padding), on the host."""

    op: ClassVar[str] = "maxpool"
    name: str
    input: str
    output: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int
    stride: int
    padding: int

    def describe(self) -> str:
        return f"{self.kernel}x{self.kernel}/{self.stride} pad {self.padding}"


@dataclass(eq=False)
class GlobalAvgPool(_OneInput):
    """Average over all pixels of each channel, flattened: (C, H, W) -> (C,), on the host."""

    op: ClassVar[str] = "avgpool"
    name: str
    input: str
    output: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int]

    def describe(self) -> str:
        return f"mean over {self.in_shape[1]}x{self.in_shape[2]}"


@dataclass(eq=False)
class AvgPool(_OneInput):
    """Average pooling over ``kernel x kernel`` windows (no padding), on the host."""

    op: ClassVar[str] = "avgpool2d"
    name: str
    input: str
    output: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int
    stride: int

    def describe(self) -> str:
        return f"mean over {self.kernel}x{self.kernel}/{self.stride}"


@dataclass(eq=False)
class Flatten(_OneInput):
    """A feature map read as a vector, (C, H, W) -> (C*H*W,) (no arithmetic), on the host."""

    op: ClassVar[str] = "flatten"
    name: str
    input: str
    output: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int]

    def describe(self) -> str:
        return "C x H x W -> vector"


@dataclass(eq=False)
class Linear(_OneInput):
    """Fully connected layer (the classifier), on the host; float64 ``weight`` (out, in)."""

    op: ClassVar[str] = "linear"
    name: str
    input: str
    output: str
    in_shape: tuple[int]
    out_shape: tuple[int]
    weight: np.ndarray | None = field(default=None, repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)

    @property
    def macs(self) -> int:
        return self.in_shape[0] * self.out_shape[0]

    def describe(self) -> str:
        return f"{self.in_shape[0]} -> {self.out_shape[0]}"


Layer = Conv | Add | MaxPool | GlobalAvgPool | AvgPool | Flatten | Linear
_KINDS: dict[str, type[Layer]] = {
    k.op: k for k in (Conv, Add, MaxPool, GlobalAvgPool, AvgPool, Flatten, Linear)
}
_ARRAYS = ("weight", "bias")


def _layer_dict(layer: Layer, weights: bool) -> dict[str, Any]:
    d: dict[str, Any] = {"op": layer.op}
    for name in layer.__dataclass_fields__:
        value = getattr(layer, name)
        if name in _ARRAYS:
            if weights and value is not None:
                d[name] = np.asarray(value).tolist()
            continue
        d[name] = list(value) if isinstance(value, tuple) else value
    if isinstance(layer, Conv | Linear):
        d["macs"] = layer.macs
    if isinstance(layer, Conv):
        d["mults"] = layer.mults
    return d


def _layer_from_dict(d: dict[str, Any]) -> Layer:
    d = dict(d)
    kind = _KINDS.get(d.pop("op", None))
    if kind is None:
        raise ValueError(f"unknown layer op in {d.get('name', '?')!r}; known: {sorted(_KINDS)}")
    d.pop("macs", None)
    d.pop("mults", None)
    known = set(kind.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"layer {d.get('name', '?')!r}: unknown fields {sorted(unknown)}")
    for key in ("in_shape", "out_shape", "inputs"):
        if key in d:
            d[key] = tuple(d[key]) if key == "inputs" else _shape(d[key])
    for key in _ARRAYS:
        if key in d:
            d[key] = np.asarray(d[key], dtype=np.float64)
    try:
        return kind(**d)
    except TypeError as exc:
        raise ValueError(f"layer {d.get('name', '?')!r}: {exc}") from None


@dataclass(eq=False)
class Network:
    """A lowered network: input shape, layers in execution order, output tensor name."""

    name: str
    input_shape: tuple[int, ...]
    layers: list[Layer]
    output: str

    def __post_init__(self) -> None:
        self.input_shape = _shape(self.input_shape)
        produced = {INPUT}
        for layer in self.layers:
            for t in layer.inputs:
                if t not in produced:
                    raise ValueError(
                        f"layer {layer.name!r} reads tensor {t!r} before any layer produces it"
                    )
            if layer.output in produced:
                raise ValueError(f"tensor {layer.output!r} is produced twice")
            produced.add(layer.output)
        if self.output not in produced:
            raise ValueError(f"network output {self.output!r} is not produced by any layer")

    def __getitem__(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}")

    @property
    def convs(self) -> list[Conv]:
        return [layer for layer in self.layers if isinstance(layer, Conv)]

    @property
    def algorithm(self) -> str | None:
        """The fast algorithm of the network's engine (every conv runs on that one engine)."""
        names = {conv.algorithm for conv in self.convs}
        if len(names) > 1:
            raise ValueError(f"the convs name several engine algorithms: {sorted(names)}")
        return next(iter(names), None)

    def producer(self, tensor: str) -> Layer | None:
        for layer in self.layers:
            if layer.output == tensor:
                return layer
        return None

    def shape_of(self, tensor: str) -> tuple[int, ...]:
        if tensor == INPUT:
            return self.input_shape
        layer = self.producer(tensor)
        if layer is None:
            raise KeyError(f"no tensor named {tensor!r}")
        return layer.out_shape

    def last_uses(self) -> dict[str, int]:
        """Index of the last layer reading each tensor (for freeing memory)."""
        last: dict[str, int] = {}
        for k, layer in enumerate(self.layers):
            for t in layer.inputs:
                last[t] = k
        return last

    def evaluate(
        self,
        x: Any,
        compute: Callable[[Layer, list[Any]], Any],
        *,
        visit: Callable[[str, Any], None] | None = None,
        layers: Iterable[Layer] | None = None,
    ) -> Any:
        """Walk the layers in order: ``y = compute(layer, [values of layer.inputs])``.

        The one network walker of the host (float reference, calibration,
        integer runs): ``x`` is the value of :data:`INPUT`, each tensor is
        freed after its last reader, ``visit(tensor, value)`` sees every
        tensor as it is produced (the input first).  ``layers`` may wrap
        :attr:`layers` (e.g. in a progress bar); it must yield the same
        layers in the same order.  Returns the value of :attr:`output`.
        """
        values: dict[str, Any] = {INPUT: x}
        last = self.last_uses()
        if visit is not None:
            visit(INPUT, x)
        for k, layer in enumerate(self.layers if layers is None else layers):
            if layer is not self.layers[k]:
                raise ValueError(f"layers must follow the network's order; got {layer.name!r}")
            y = compute(layer, [values[t] for t in layer.inputs])
            values[layer.output] = y
            if visit is not None:
                visit(layer.output, y)
            for t in layer.inputs:
                if last.get(t) == k and t != self.output:
                    del values[t]
        return values[self.output]

    # ------------------------------------------------------------------ printing
    def table(self) -> str:
        header = ["#", "layer", "op", "engine / host", "in", "out", "details", "MACs", "mults"]
        rows = []
        for k, layer in enumerate(self.layers):
            rows.append(
                [
                    str(k),
                    layer.name,
                    layer.op,
                    f"{layer.algorithm} ({layer.mode})" if isinstance(layer, Conv) else "host",
                    "x".join(map(str, layer.in_shape)),
                    "x".join(map(str, layer.out_shape)),
                    layer.describe(),
                    f"{layer.macs:,}" if isinstance(layer, Conv | Linear) else "-",
                    f"{layer.mults:,}" if isinstance(layer, Conv) else "-",
                ]
            )
        convs = self.convs
        total_macs = sum(c.macs for c in convs)
        total_mults = sum(c.mults for c in convs)
        fast = sum(c.mode == "fast" for c in convs)
        return (
            format_table(header, rows, align="lllllllrr")
            + f"\n{len(self.layers)} layers, {len(convs)} convs on one {self.algorithm} engine "
            f"({fast} fast, {len(convs) - fast} direct); conv MACs {total_macs:,}, engine "
            f"multiplications {total_mults:,} ({total_macs / max(total_mults, 1):.2f}x fewer) "
            "per image"
        )

    def __str__(self) -> str:
        return self.table()

    # ------------------------------------------------------------------ JSON
    def to_dict(self, *, weights: bool = False) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "input_shape": list(self.input_shape),
            "output": self.output,
            "layers": [_layer_dict(layer, weights) for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Network:
        if d.get("format") != FORMAT:
            raise ValueError(
                f"not a network record (format={d.get('format')!r}, expected {FORMAT!r})"
            )
        try:
            return cls(
                name=d["name"],
                input_shape=d["input_shape"],
                layers=[_layer_from_dict(layer) for layer in d["layers"]],
                output=d["output"],
            )
        except KeyError as exc:
            raise ValueError(f"network record is missing the field {exc.args[0]!r}") from None

    def save(self, path: str | Path, *, weights: bool = False) -> None:
        """Write JSON atomically."""
        from sfc_hls.atomic_files import write_text_atomic

        write_text_atomic(Path(path), json.dumps(self.to_dict(weights=weights), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Network:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read network file {str(path)!r}: {exc}") from None
        return cls.from_dict(data)
