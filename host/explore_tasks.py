"""The work units of ``sfc-hls explore``: numerics, accuracy and hardware of one design point.

Each task is a plain function of JSON-able arguments returning a JSON-able
dict, so it runs the same in this process or on a Dask worker (a fresh
process: networks and data are rebuilt there and kept per process).  Results
are cached on disk by content (:class:`ResultCache`): a rerun, a resumed sweep
or a second worker never recomputes a point.

* :func:`numerics_task` -- per fast layer, the normalized MSE of the int8
  output when the layer runs fast with ``algorithm`` at ``bits``-bit MAC
  operands, for the explored network (its own weights or seeded random ones,
  seeded inputs; a crop of each layer's input and the first 32 output
  channels) and for the digits ResNet.
* :func:`accuracy_task` -- top-1 of the digits ResNet (450 held-out images,
  golden model) with some of its fast layers run in direct mode.
* :func:`hardware_task` -- the engine sized for the network with the point's
  per-layer modes: cycles and external bytes per frame (cycle model),
  resources (the estimator, or Yosys when asked) and ECP5 Fmax (nextpnr, when
  asked).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sfc_hls.atomic_files import write_text_atomic
from sfc_hls.cache import cache_dir
from sfc_hls.config import EngineConfig

__all__ = [
    "CROP",
    "NETWORKS",
    "ResultCache",
    "accuracy_task",
    "assign_modes",
    "user_accuracy_task",
    "conv_cost",
    "hardware_task",
    "network_engine",
    "numerics_task",
    "source_digest",
]

#: Networks explore knows (the host's model zoo; digits = the committed small_resnet).
NETWORKS = ("resnet18", "resnet34", "small_resnet")
#: Spatial crop of each layer's input and output channels kept for the layer errors.
CROP = 14
COUT_SAMPLE = 32
NETWORK_SEED = 0


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 of every Python source of the package: a cached result is never stale."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for folder in ("sfc_hls", "hw", "host"):
        for path in sorted((root / folder).glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    model = root / "hw" / "estimator_model.json"
    if model.is_file():
        h.update(model.read_bytes())
    return h.hexdigest()


class ResultCache:
    """JSON results by content key under ``$SFC_HLS_CACHE/explore`` (atomic writes)."""

    def __init__(self, root: Path | None = None, *, enabled: bool = True) -> None:
        self.root = Path(root) if root is not None else cache_dir("explore")
        self.enabled = enabled

    @staticmethod
    def key(kind: str, args: dict[str, Any]) -> str:
        text = json.dumps([kind, args, source_digest()], sort_keys=True)
        return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.root / f"{key}.json"
        if not self.enabled or not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError:  # a damaged entry is recomputed
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.enabled:
            self.root.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.root / f"{key}.json", json.dumps(value))


# ----------------------------------------------------------------------------- networks
@functools.lru_cache(maxsize=4)
def _torch_model(name: str, weights: str | None) -> tuple[Any, dict[str, Any] | None]:
    """The PyTorch model (eval mode) and its checkpoint metadata (digits weights only)."""
    import torch

    from sfc_hls.host import models
    from sfc_hls.host.checkpoint import load_checkpoint, load_digits_small_resnet

    if name not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {name!r}")
    if name == "small_resnet" and weights is None:
        model, meta = load_digits_small_resnet()
        return model.eval(), meta
    torch.manual_seed(NETWORK_SEED)
    model = getattr(models, name)()
    if weights is not None:
        load_checkpoint(model, weights)
    return model.eval(), None


def input_size(name: str) -> int:
    return 28 if name == "small_resnet" else 224


@functools.lru_cache(maxsize=4)
def load_network(name: str, weights: str | None = None) -> Any:
    """The lowered network (fast algorithm: the default, modes reassigned per point)."""
    from sfc_hls.host.lowering import lower_model

    model, _ = _torch_model(name, weights)
    size = input_size(name)
    return lower_model(model, (model.conv1.in_channels, size, size), name=name)


def with_modes(network: Any, algorithm: str, direct: set[str] | frozenset[str]) -> Any:
    """A copy of ``network`` on ``algorithm`` whose fast convs in ``direct`` run in direct mode."""
    from sfc_hls.host.lowering import choose_mode

    layers = []
    for layer in network.layers:
        if getattr(layer, "op", None) == "conv":
            mode = choose_mode(layer.kernel, layer.stride, algorithm)
            if layer.name in direct and mode == "fast":
                mode = "direct"
            layer = dataclasses.replace(layer, algorithm=algorithm, mode=mode)
        layers.append(layer)
    return dataclasses.replace(network, layers=layers)


def network_engine(network: Any, point: dict[str, Any]) -> EngineConfig:
    """The one engine of ``point`` sized for ``network`` (as ``sfc-hls run`` sizes it);
    ``point["backend_width"]`` None or absent: the engine's default output-path width."""
    from sfc_hls.host.calibration import engine_config

    fields = {"act_bits": point["bits"], "weight_bits": point["bits"],
              "macs_per_dsp": point["macs_per_dsp"]}  # fmt: skip
    if point.get("backend_width") is not None:
        fields["backend_width"] = point["backend_width"]
    return engine_config(network, pco=point["pco"], scale_mode=point["scale_mode"], **fields)


# ----------------------------------------------------------------------------- numerics
@functools.lru_cache(maxsize=2)
def _layer_inputs(name: str, weights: str | None) -> tuple[Any, dict[str, np.ndarray]]:
    """Each fast conv's float input for two seeded images (digits: two test digits)."""
    import torch

    from sfc_hls.host.error_study import capture_inputs

    network = load_network(name, weights)
    convs = [c for c in network.convs if c.mode == "fast"]
    if name == "small_resnet":
        from sfc_hls.host.digits import load_digits_split

        images = load_digits_split().x_test[:2]
    else:
        gen = torch.Generator().manual_seed(NETWORK_SEED)
        images = torch.randn(2, *network.layers[0].in_shape, generator=gen)
    return network, capture_inputs(network, convs, images)


def numerics_task(
    network: str, weights: str | None, algorithm: str, bits: int, scale_mode: str
) -> dict[str, Any]:
    """``{"layers": {name: nmse of the int8 output}}`` of every fast conv (one image
    calibrates, the other is measured; see the module docstring)."""
    from sfc_hls.host.error_study import layer_errors

    net, inputs = _layer_inputs(network, weights)
    out = {}
    for conv in net.convs:
        if conv.mode != "fast":
            continue
        x = inputs[conv.name][:, :, :CROP, :CROP]
        k = min(COUT_SAMPLE, conv.cout)
        sample = dataclasses.replace(conv, weight=conv.weight[:k], bias=conv.bias[:k])
        out[conv.name] = layer_errors(sample, x[:1], x[1:], algorithm, bits, scale_mode)
    return {"layers": out}


def accuracy_task(algorithm: str, bits: int, scale_mode: str, direct: list[str]) -> dict[str, Any]:
    """Digits top-1 (golden model) with the fast convs in ``direct`` run in direct mode."""
    from sfc_hls.host.calibration import calibrate
    from sfc_hls.host.device import GoldenDevice
    from sfc_hls.host.digits import load_digits_split
    from sfc_hls.host.inference import run_int8

    split = load_digits_split()
    net = with_modes(load_network("small_resnet"), algorithm, set(direct))
    point = {"pco": 4, "scale_mode": scale_mode, "bits": bits, "macs_per_dsp": 1}
    qnet = calibrate(net, split.x_train, engines=[network_engine(net, point)])
    result = run_int8(qnet, GoldenDevice(list(qnet.engines.values())), split.x_test)
    return {"top1": float((result.predictions == split.y_test.numpy()).mean())}


@functools.lru_cache(maxsize=1)
def _folder(network: str, weights: str | None, images: str) -> tuple[Any, np.ndarray]:
    from sfc_hls.host.run import labelled_folder

    model, meta = _torch_model(network, weights)
    return labelled_folder(Path(images), network, model.conv1.in_channels,
                           model.fc.out_features, input_size(network), meta)  # fmt: skip


def user_accuracy_task(
    network: str, weights: str | None, images: str, algorithm: str, bits: int, scale_mode: str,
    direct: list[str],
) -> dict[str, Any]:  # fmt: skip
    """Top-1 of the explored network on the user's ``images`` folder (calibrated on it, as
    ``sfc-hls run --images`` does), the convs in ``direct`` in direct mode."""
    from sfc_hls.host.calibration import calibrate
    from sfc_hls.host.device import GoldenDevice
    from sfc_hls.host.inference import run_int8

    x, labels = _folder(network, weights, images)
    net = with_modes(load_network(network, weights), algorithm, set(direct))
    point = {"pco": 4, "scale_mode": scale_mode, "bits": bits, "macs_per_dsp": 1}
    qnet = calibrate(net, x, engines=[network_engine(net, point)])
    result = run_int8(qnet, GoldenDevice(list(qnet.engines.values())), x)
    return {"top1": float((result.predictions == labels).mean()), "images": len(labels)}


# ----------------------------------------------------------------------------- hardware
def conv_cost(
    iface: Any, conv: Any, bytes_per_cycle: float | None = None
) -> tuple[int, float, int]:
    """(cycles, external bytes, cycles with ``bytes_per_cycle`` of memory bandwidth) of one
    conv on the engine ``iface`` (cycle model; no bandwidth limit: the cycles again)."""
    from sfc_hls.schedule import direct_schedule

    _, ho, wo = conv.out_shape
    if conv.mode == "fast":
        desc = ("fast", iface.algo.tiles(ho, wo), 1, 1)
    else:
        sched = direct_schedule(positions=iface.positions, width=iface.width, lanes=iface.lanes,
                                cout=conv.cout, pixels=ho * wo)  # fmt: skip
        desc = ("direct", sched.tiles, conv.kernel**2, sched.replicas)
    return _layer_cost(iface.timing(), iface.stream_bits(), conv.cin, conv.cout, *desc,
                       bytes_per_cycle)  # fmt: skip


@functools.lru_cache(maxsize=65536)
def _layer_cost(timing: Any, bits: Any, cin: int, cout: int, mode: str, tiles: int, taps: int,
                replicas: int, bytes_per_cycle: float | None) -> tuple[int, float, int]:  # fmt: skip
    """The cycle model of one layer, memoized (a sweep asks for the same layer many times)."""
    from sfc_hls.cycle_model import bandwidth_bound_cycles, layer_cycles, layer_traffic

    desc: dict[str, Any] = {"cin": cin, "cout": cout, "mode": mode, "tiles": tiles,
                            "taps": taps, "replicas": replicas}  # fmt: skip
    cycles = layer_cycles(timing, **desc)
    traffic = layer_traffic(timing, bits, **desc)
    bound = cycles.cycles
    if bytes_per_cycle is not None:
        bound = bandwidth_bound_cycles(cycles, traffic, bytes_per_cycle)
    return cycles.cycles, traffic.total_bytes, bound


def assign_modes(
    network: str,
    weights: str | None,
    point: dict[str, Any],
    errors: dict[str, float],
    threshold: float | None,
    bytes_per_cycle: float | None = None,
) -> list[str]:
    """The fast-eligible convs of ``network`` that ``point`` runs in direct mode.

    By error: a layer whose fast-mode error (``errors``) exceeds ``threshold``.
    By cost: a layer the cycle model finds faster in direct mode on the
    point's engine (a stem with one input channel, a layer on a tiny map, or,
    with ``bytes_per_cycle`` of memory bandwidth, a layer whose transform-domain
    weights cost more transfer time than the direct mode's slower compute).
    """
    direct = {name for name, nmse in errors.items() if threshold is not None and nmse > threshold}
    net = with_modes(load_network(network, weights), point["algorithm"], direct)
    iface = _interface(network_engine(net, point))
    for conv in net.convs:
        if conv.mode == "fast":
            as_direct = dataclasses.replace(conv, mode="direct")
            if (
                conv_cost(iface, as_direct, bytes_per_cycle)[2]
                < conv_cost(iface, conv, bytes_per_cycle)[2]
            ):
                direct.add(conv.name)
    return sorted(direct)


def _interface(config: EngineConfig) -> Any:
    from sfc_hls.hw.interface import EngineInterface

    return EngineInterface.from_config(config)


def hardware_task(
    network: str,
    weights: str | None,
    point: dict[str, Any],
    direct: list[str],
    *,
    bytes_per_cycle: float | None = None,
    synth: bool = False,
    fmax: bool = False,
) -> dict[str, Any]:
    """Engine, cycles and bytes per frame (and cycles with ``bytes_per_cycle`` of memory
    bandwidth), resources (estimate; Yosys if ``synth``), Fmax."""
    from sfc_hls.hw.estimate import estimate

    net = with_modes(load_network(network, weights), point["algorithm"], set(direct))
    config = network_engine(net, point)
    iface = _interface(config)
    costs = [conv_cost(iface, conv, bytes_per_cycle) for conv in net.convs]
    est = estimate(config)
    out: dict[str, Any] = {
        "engine": config.to_dict(),
        "cycles_per_frame": sum(c for c, _, _ in costs),
        "cycles_per_frame_at_bandwidth": sum(c for _, _, c in costs),
        "mb_per_frame": sum(b for _, b, _ in costs) / 1e6,
        "mac_multipliers": iface.multipliers["mac_array"],
        "estimate": est.total,
        "estimate_ms": round(1000 * est.seconds, 2),
        "yosys": None,
        "ecp5_fmax_mhz": None,
    }
    if synth:
        from sfc_hls.hw.synth_report import synth_report

        out["yosys"] = synth_report(config, blocks=False)["total"]
    if fmax:
        out["ecp5_fmax_mhz"] = _ecp5_fmax(config)
    return out


def _ecp5_fmax(config: EngineConfig) -> float | None:
    """nextpnr's Fmax of the point's ECP5 engine (``target="ecp5"``) on an LFE5U-85F,
    or None when the engine does not fit (MULT18X18D)."""
    from sfc_hls.hw.generate import generate_engine
    from sfc_hls.hw.synth_report import ecp5_fmax_cached

    if config.macs_per_dsp != 1:
        return None  # the packed multiply needs two 18x18 blocks on ECP5
    gen = generate_engine(dataclasses.replace(config, target="ecp5"))
    try:
        result = ecp5_fmax_cached(gen.verilog.read_text(), "conv_engine")
    except RuntimeError:
        return None
    value = result.get("fmax_mhz")
    return None if value is None or not math.isfinite(value) else float(value)
