"""Import a torch CNN and lower it to the host IR (:class:`~sfc_hls.host.ir.Network`).

:func:`lower_model` traces the model with ``torch.fx``, propagates the shapes
of one input, and walks the graph in execution order:

* ``Conv2d`` -> :class:`~sfc_hls.host.ir.Conv`; a ``BatchNorm2d`` whose only
  input is a conv used nowhere else is folded into it
  (:func:`sfc_hls.quantize.fold_batchnorm`), a ReLU after it is fused (the
  engine's output saturation clamps at 0);
* one engine for every conv, the mode per layer (:func:`choose_mode`):
  stride-1 convs with the fast algorithm's kernel (3x3 for the default
  ``sfc6-7x7-3x3``) run in fast mode; every other conv (stride-2 3x3, 1x1
  downsample, 7x7 stem) in direct mode on the same MAC array;
* ``x + y`` -> :class:`~sfc_hls.host.ir.Add` (a ReLU after it fused);
  ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d(1)``, flatten (after global
  pooling or of a whole feature map), a final ``Linear`` -> host layers;
  ``Identity``/``Dropout`` vanish.

Anything else raises :class:`UnsupportedLayerError` naming the layer.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from sfc_hls.catalog import get_algorithm
from sfc_hls.host.ir import (
    INPUT,
    Add,
    AvgPool,
    Conv,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool,
    Network,
)
from sfc_hls.quantize import fold_batchnorm

__all__ = [
    "DEFAULT_ALGORITHM",
    "UnsupportedLayerError",
    "choose_mode",
    "lower_model",
]

#: The fast algorithm of stride-1 convs (SFC-6(7x7,3x3), the paper's choice for ResNet).
DEFAULT_ALGORITHM = "sfc6-7x7-3x3"

SUPPORTED = (
    "Conv2d (groups 1, no dilation, square kernel/stride/padding, zero padding), "
    "BatchNorm2d after a conv, ReLU, residual add, MaxPool2d, AvgPool2d, "
    "AdaptiveAvgPool2d(1), flatten, a final Linear, Identity, Dropout"
)


class UnsupportedLayerError(ValueError):
    """A layer of the model has no lowering (the message names it)."""


def choose_mode(kernel: int, stride: int, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """Engine mode of a ``kernel x kernel`` conv with ``stride`` on the ``algorithm`` engine.

    ``fast`` for stride-1 convs with the algorithm's kernel (the fast
    algorithm), ``direct`` for every other conv (1x1, stride 2, the 7x7
    stem, ...): the same MAC array, transforms bypassed (docs/datapath.md).
    """
    try:
        algo = get_algorithm(algorithm)
    except ValueError as exc:
        raise ValueError(f"algorithm {algorithm!r}: {exc}") from None
    if algo.dims != 2:
        raise ValueError(f"algorithm must be a 2D algorithm, got {algorithm!r}")
    return "fast" if stride == 1 and kernel == algo.kernel else "direct"


def _square(mod: Any, attr: str, name: str) -> int:
    value = getattr(mod, attr)
    if isinstance(value, str):
        raise UnsupportedLayerError(f"layer {name!r}: {attr}={value!r} is not supported")
    value = tuple(value) if isinstance(value, tuple | list) else (value, value)
    if value[0] != value[1]:
        raise UnsupportedLayerError(
            f"layer {name!r}: non-square {attr} {value} is not supported ({SUPPORTED})"
        )
    return int(value[0])


def _module_path(node: Any) -> str:
    stack = node.meta.get("nn_module_stack")
    if stack:
        return next(reversed(stack.values()))[0]
    return ""


def lower_model(
    model: Any,
    input_shape: tuple[int, ...],
    *,
    algorithm: str = DEFAULT_ALGORITHM,
    name: str | None = None,
) -> Network:
    """Trace ``model`` (eval mode) and lower it to a :class:`~sfc_hls.host.ir.Network`.

    Args:
        model: a ``torch.nn.Module`` (e.g. :func:`sfc_hls.host.models.resnet18`).
        input_shape: ``(C, H, W)`` of one input image.
        algorithm: fast algorithm for stride-1 convs with its kernel (any 2D
            algorithm name, e.g. ``sfc6-7x7-3x3``, ``wino-4x4-3x3``, ``direct-3x3``).
        name: network name (default: the model's class name).

    Raises:
        UnsupportedLayerError: a layer has no lowering (named in the message).
        ValueError: bad ``input_shape`` (e.g. too small for a layer, wrong channels).
    """
    import torch
    import torch.fx
    from torch import nn
    from torch.fx.passes.shape_prop import ShapeProp

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"input_shape must be (C, H, W) positive ints, got {input_shape!r}")
    choose_mode(3, 1, algorithm)  # validates the name
    model = model.eval()
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many kinds for untraceable code
        raise UnsupportedLayerError(
            f"cannot trace {type(model).__name__} with torch.fx: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, *shape))
    except Exception as exc:
        raise ValueError(
            f"{type(model).__name__} does not accept inputs of shape {shape} (C, H, W): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return _Lowering(gm, shape, algorithm, name or type(model).__name__).run()


class _Lowering:
    def __init__(self, gm: Any, shape: tuple[int, int, int], algorithm: str, name: str) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.shape = shape
        self.algorithm = algorithm
        self.name = name
        self.layers: list[Any] = []
        self.tensor: dict[Any, str] = {}  # fx node -> IR tensor name
        self.producer: dict[str, Any] = {}  # IR tensor -> layer
        self.used_names: set[str] = set()

    # ------------------------------------------------------------------ helpers
    def _shape(self, node: Any) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise UnsupportedLayerError(f"layer {node.name!r} does not produce a single tensor")
        return tuple(int(s) for s in meta.shape[1:])

    def _unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.used_names:
            name = f"{base}_{k}"
            k += 1
        self.used_names.add(name)
        return name

    def _input(self, node: Any, owner: str) -> str:
        if node not in self.tensor:
            raise UnsupportedLayerError(
                f"layer {owner!r} reads {node.name!r}, which is not a lowered tensor"
            )
        return self.tensor[node]

    def _add(self, layer: Any, node: Any) -> None:
        self.layers.append(layer)
        self.tensor[node] = layer.output
        self.producer[layer.output] = layer

    def _single_use(self, node: Any) -> bool:
        return len(node.users) == 1

    def _fusable(self, node: Any, kinds: tuple[type[Conv | Add], ...]) -> Any | None:
        """The layer producing ``node``'s input if ReLU/BN may fuse into it."""
        (arg,) = node.all_input_nodes
        layer = self.producer.get(self.tensor.get(arg, ""))
        if isinstance(layer, kinds) and self._single_use(arg) and not layer.relu:
            return layer, arg
        return None

    # ------------------------------------------------------------------ the walk
    def run(self) -> Network:
        output = ""  # set by the graph's output node (a traced graph has one)
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if self.tensor:
                    raise UnsupportedLayerError(
                        f"model has more than one input ({node.name!r}); only one image input"
                    )
                self.tensor[node] = INPUT
            elif node.op == "call_module":
                self._module(node, self.modules[node.target])
            elif node.op in ("call_function", "call_method"):
                self._function(node)
            elif node.op == "output":
                (result,) = node.all_input_nodes
                output = self._input(result, "output")
            elif node.op == "get_attr":
                raise UnsupportedLayerError(
                    f"layer {node.target!r}: direct parameter access in forward() is not supported"
                )
        return Network(self.name, self.shape, self.layers, output)

    def _module(self, node: Any, mod: Any) -> None:
        from torch import nn

        path = str(node.target)
        if isinstance(mod, nn.Conv2d):
            self._conv(node, mod, path)
        elif isinstance(mod, nn.BatchNorm2d):
            self._batchnorm(node, mod, path)
        elif isinstance(mod, nn.ReLU):
            self._relu(node, path)
        elif isinstance(mod, nn.Identity | nn.Dropout):
            (arg,) = node.all_input_nodes
            self.tensor[node] = self._input(arg, path)
        elif isinstance(mod, nn.MaxPool2d):
            self._maxpool(node, mod, path)
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            size = mod.output_size
            pooled = tuple(size) if isinstance(size, tuple | list) else (size, size)
            if pooled != (1, 1):
                raise UnsupportedLayerError(
                    f"layer {path!r}: AdaptiveAvgPool2d({mod.output_size}) is not supported, "
                    "only global average pooling (output size 1)"
                )
            (arg,) = node.all_input_nodes
            src = self._input(arg, path)
            in_shape = self._shape(arg)
            out = self._unique(path)
            self._add(GlobalAvgPool(out, src, out, in_shape, (in_shape[0],)), node)
        elif isinstance(mod, nn.AvgPool2d):
            self._avgpool(node, mod, path)
        elif isinstance(mod, nn.Flatten):
            self._flatten(node, path)
        elif isinstance(mod, nn.Linear):
            (arg,) = node.all_input_nodes
            src = self._input(arg, path)
            if len(self._shape(arg)) != 1:
                raise UnsupportedLayerError(
                    f"layer {path!r}: Linear on a {self._shape(arg)} tensor; only on a vector "
                    "(after global average pooling or flatten)"
                )
            w = mod.weight.detach().double().cpu().numpy().copy()
            b = (
                mod.bias.detach().double().cpu().numpy().copy()
                if mod.bias is not None
                else np.zeros(mod.out_features)
            )
            out = self._unique(path)
            self._add(
                Linear(out, src, out, (mod.in_features,), (mod.out_features,), w, b),
                node,
            )
        else:
            raise UnsupportedLayerError(
                f"layer {path!r} ({type(mod).__name__}) is not supported by the host driver; "
                f"supported: {SUPPORTED}"
            )

    def _conv(self, node: Any, mod: Any, path: str) -> None:
        if mod.groups != 1:
            raise UnsupportedLayerError(f"layer {path!r}: grouped conv (groups={mod.groups})")
        if _square(mod, "dilation", path) != 1:
            raise UnsupportedLayerError(f"layer {path!r}: dilated conv ({mod.dilation})")
        if mod.padding_mode != "zeros":
            raise UnsupportedLayerError(f"layer {path!r}: padding_mode={mod.padding_mode!r}")
        kernel = _square(mod, "kernel_size", path)
        stride = _square(mod, "stride", path)
        padding = _square(mod, "padding", path)
        (arg,) = node.all_input_nodes
        src = self._input(arg, path)
        in_shape = self._shape(arg)
        out_shape = self._shape(node)
        if len(in_shape) != 3 or len(out_shape) != 3:  # (C, H, W) in gives (C, H, W) out
            raise UnsupportedLayerError(f"layer {path!r}: input shape {in_shape} is not (C, H, W)")
        w, b = fold_batchnorm(mod, None, layer=path)
        name = self._unique(path)
        conv = Conv(
            name=name,
            input=src,
            output=name,
            in_shape=in_shape,
            out_shape=out_shape,
            kernel=kernel,
            stride=stride,
            padding=padding,
            relu=False,
            algorithm=self.algorithm,
            weight=w,
            bias=b,
            mode=choose_mode(kernel, stride, self.algorithm),
        )
        self._add(conv, node)

    def _batchnorm(self, node: Any, mod: Any, path: str) -> None:
        (arg,) = node.all_input_nodes
        conv = self.producer.get(self.tensor.get(arg, ""))
        if not (isinstance(conv, Conv) and conv.bn is None and not conv.relu):
            raise UnsupportedLayerError(
                f"layer {path!r} (BatchNorm2d) does not directly follow a conv; only "
                "BatchNorm folded into the conv before it is supported"
            )
        if not self._single_use(arg):
            raise UnsupportedLayerError(
                f"layer {path!r} (BatchNorm2d): the conv {conv.name!r} output is also used "
                "elsewhere, so the BatchNorm cannot be folded"
            )
        if not mod.track_running_stats or mod.running_mean is None:
            raise UnsupportedLayerError(
                f"layer {path!r} (BatchNorm2d) has no running statistics to fold"
            )
        assert conv.weight is not None and conv.bias is not None  # set by _conv
        shim = _ConvArrays(conv.weight, conv.bias)
        conv.weight, conv.bias = fold_batchnorm(shim, mod, layer=path)
        conv.bn = path
        self.tensor[node] = conv.output

    def _relu(self, node: Any, path: str) -> None:
        fused = self._fusable(node, (Conv, Add))
        if fused is None:
            (arg,) = node.all_input_nodes
            raise UnsupportedLayerError(
                f"layer {path!r} (ReLU) on {arg.name!r}: a ReLU is supported only right after a "
                "conv (+BatchNorm) or a residual add whose result is used only by the ReLU"
            )
        layer, _ = fused
        layer.relu = True
        self.tensor[node] = layer.output

    def _maxpool(self, node: Any, mod: Any, path: str) -> None:
        if mod.ceil_mode or _square(mod, "dilation", path) != 1:
            raise UnsupportedLayerError(f"layer {path!r}: MaxPool2d with ceil_mode or dilation")
        if mod.return_indices:
            raise UnsupportedLayerError(f"layer {path!r}: MaxPool2d with return_indices")
        (arg,) = node.all_input_nodes
        src = self._input(arg, path)
        out = self._unique(path)
        stride = mod.stride if mod.stride is not None else mod.kernel_size
        self._add(
            MaxPool(
                out,
                src,
                out,
                self._shape(arg),
                self._shape(node),
                _square(mod, "kernel_size", path),
                _square(_Attr(stride=stride), "stride", path),
                _square(mod, "padding", path),
            ),
            node,
        )

    def _flatten(self, node: Any, path: str) -> None:
        arg = node.all_input_nodes[0]
        src = self._input(arg, path)
        shape = self._shape(arg)
        if len(shape) == 1 or (len(shape) == 3 and shape[1:] == (1, 1)):
            producer = self.producer.get(src)
            if len(shape) == 1 or isinstance(producer, GlobalAvgPool):
                self.tensor[node] = src
                return
        if len(shape) != 3:
            raise UnsupportedLayerError(f"layer {path!r} (flatten) of a {shape} tensor")
        out = self._unique(path)
        self._add(Flatten(out, src, out, shape, (shape[0] * shape[1] * shape[2],)), node)

    def _avgpool(self, node: Any, mod: Any, path: str) -> None:
        kernel = _square(mod, "kernel_size", path)
        stride = _square(_Attr(stride=mod.stride or mod.kernel_size), "stride", path)
        if _square(mod, "padding", path) or mod.ceil_mode or mod.divisor_override:
            raise UnsupportedLayerError(
                f"layer {path!r}: AvgPool2d with padding, ceil_mode or divisor_override"
            )
        (arg,) = node.all_input_nodes
        src = self._input(arg, path)
        out = self._unique(path)
        self._add(AvgPool(out, src, out, self._shape(arg), self._shape(node), kernel, stride), node)

    def _function(self, node: Any) -> None:
        import torch
        import torch.nn.functional as F

        target = node.target
        path = _module_path(node)
        label = f"{path}.{node.name}" if path else node.name
        if target in (operator.add, torch.add, operator.iadd) or target in ("add", "add_"):
            args = node.all_input_nodes
            if len(args) != 2 or len(node.args) != 2 or node.kwargs:
                raise UnsupportedLayerError(
                    f"layer {label!r}: only the sum of two tensors (x + y) is supported"
                )
            a, b = (self._input(arg, label) for arg in args)
            if self._shape(args[0]) != self._shape(args[1]):
                raise UnsupportedLayerError(
                    f"layer {label!r}: adding tensors of different shapes "
                    f"{self._shape(args[0])} and {self._shape(args[1])} (broadcast) is not supported"
                )
            name = self._unique(f"{path}.add" if path else node.name)
            shape = self._shape(node)
            self._add(Add(name, (a, b), name, shape, shape, relu=False), node)
        elif target in (torch.relu, F.relu, "relu", "relu_"):
            self._relu(node, label)
        elif target in (torch.flatten, "flatten"):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            if target == torch.flatten and start != 1:
                raise UnsupportedLayerError(
                    f"layer {label!r}: torch.flatten(start_dim={start}); only start_dim=1"
                )
            self._flatten(node, label)
        else:
            what = getattr(target, "__name__", str(target))
            raise UnsupportedLayerError(
                f"layer {label!r} (function {what}) is not supported by the host driver; "
                f"supported: {SUPPORTED}"
            )


class _ConvArrays:
    """Stand-in conv with the (already folded) arrays, for :func:`fold_batchnorm`."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight = weight
        self.bias = bias


class _Attr:
    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)
