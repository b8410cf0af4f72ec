"""The accelerator as the host sees it: one interface, a golden and an RTL backend.

A :class:`ConvDevice` holds one conv engine per algorithm (an
:class:`~sfc_hls.config.EngineConfig` each) and runs a layer in four steps,
as a driver for a board would::

    dev.load_weights(name, params)     # transformed int8 weights + per-channel parameters
    dev.configure(name, stride=1)      # layer descriptor (registers) for the next run
    dev.stream_input(x_int8)           # input tiles (N, Cin, H, W), tile-major
    result = dev.read_output()         # output tiles -> (N, Cout, Ho, Wo) int8 codes

:meth:`ConvDevice.run_conv` does the four in order.  Backends:

* :class:`GoldenDevice` -- the bit-accurate NumPy model
  (:func:`sfc_hls.golden.conv2d_int8`); large layers are computed in bands of
  tile rows (tiles are independent, so the result is the same);
* :class:`RtlDevice` -- the generated engines (:func:`sfc_hls.hw.generate.generate_engine`)
  in Verilator, driven by the native stream runner (:mod:`sfc_hls.sim.native`):
  each :meth:`~ConvDevice.read_output` runs the simulator once on the
  configured layer; the stream encoding is
  :class:`sfc_hls.hw.engine_streams.EngineStreams`.  :meth:`RtlDevice.run_layers`
  runs independent layers in parallel processes.

Both return the same int8 codes for the same parameters and input (tested
end to end on the digits ResNet).
"""

from __future__ import annotations

import abc
import dataclasses
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant
from sfc_hls.golden import check_input, conv2d_int8
from sfc_hls.reference import check_stride, output_size

__all__ = [
    "BACKENDS",
    "ConvDevice",
    "ConvResult",
    "GoldenDevice",
    "LayerRequest",
    "RtlDevice",
    "make_device",
]

BACKENDS = ("golden", "rtl")


@dataclass(frozen=True)
class ConvResult:
    """Output of one layer run: int8 codes (int64 array), wall time, engine cycles (RTL only)."""

    output: np.ndarray
    seconds: float
    cycles: int | None = None


@dataclass(frozen=True)
class LayerRequest:
    """One layer for :meth:`RtlDevice.run_layers`."""

    name: str
    params: LayerQuant
    x: np.ndarray
    stride: int = 1


class ConvDevice(abc.ABC):
    """A set of conv engines (one per algorithm) behind the load/configure/stream/read steps.

    Args:
        engines: engine configurations; their algorithms must differ.
    """

    backend: ClassVar[str]

    def __init__(self, engines: Sequence[EngineConfig]) -> None:
        self.engines: dict[str, EngineConfig] = {}
        for config in engines:
            if not isinstance(config, EngineConfig):
                raise TypeError(f"engines must be EngineConfig, got {type(config).__name__}")
            if config.algorithm in self.engines:
                raise ValueError(f"two engines for algorithm {config.algorithm!r}")
            self.engines[config.algorithm] = config
        if not self.engines:
            raise ValueError("engines must name at least one EngineConfig")
        self._weights: dict[str, LayerQuant] = {}
        self._current: tuple[str, int] | None = None
        self._input: np.ndarray | None = None

    # ------------------------------------------------------------------ the four steps
    def engine_for(self, name: str, params: LayerQuant) -> EngineConfig:
        """The engine that runs ``params``; ValueError naming the layer when none fits."""
        config = self.engines.get(params.config.algorithm)
        if config is None:
            raise ValueError(
                f"layer {name!r} needs an engine for {params.config.algorithm!r}; this "
                f"device has {sorted(self.engines)}"
            )
        config.check_layer(params, name=name)
        return config

    def load_weights(self, name: str, params: LayerQuant) -> None:
        """Store a layer's integer parameters on the device (checked against its engine)."""
        if not isinstance(params, LayerQuant):
            raise TypeError(f"params must be a LayerQuant, got {type(params).__name__}")
        self.engine_for(name, params)
        self._weights[name] = params

    def configure(self, name: str, *, stride: int = 1) -> None:
        """Select the loaded layer ``name`` (and its stride) for the next input."""
        if name not in self._weights:
            raise KeyError(f"layer {name!r} has no weights loaded (call load_weights first)")
        _check_layer_stride(self._weights[name], stride)
        self._current = (name, stride)
        self._input = None

    def stream_input(self, x: Any) -> None:
        """Queue the int8 input feature map (N, Cin, H, W) of the configured layer."""
        if self._current is None:
            raise RuntimeError("configure a layer before streaming its input")
        name, _ = self._current
        try:
            self._input = check_input(x, self._weights[name])
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"layer {name!r}: {exc}") from None

    def read_output(self) -> ConvResult:
        """Run the configured layer on the streamed input and return its output."""
        if self._current is None or self._input is None:
            raise RuntimeError("configure a layer and stream its input before reading outputs")
        name, stride = self._current
        x, self._input = self._input, None
        return self._compute(name, self._weights[name], x, stride)

    def run_conv(self, name: str, params: LayerQuant, x: Any, *, stride: int = 1) -> ConvResult:
        """``load_weights`` (if not loaded), ``configure``, ``stream_input``, ``read_output``."""
        if self._weights.get(name) is not params:
            self.load_weights(name, params)
        self.configure(name, stride=stride)
        self.stream_input(x)
        return self.read_output()

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release backend resources (nothing for most backends)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def _compute(self, name: str, params: LayerQuant, x: np.ndarray, stride: int) -> ConvResult:
        """Backend: the layer's output for a validated input."""


class GoldenDevice(ConvDevice):
    """The bit-accurate NumPy model of the engines (:func:`sfc_hls.golden.conv2d_int8`).

    ``max_elements`` bounds the size of the per-position intermediate arrays
    (``N * Cout * tiles * m``); a larger layer is computed in bands of tile
    rows, with identical results.
    """

    backend = "golden"

    def __init__(self, engines: Sequence[EngineConfig], *, max_elements: int = 1 << 22) -> None:
        super().__init__(engines)
        self.max_elements = max_elements

    def _compute(self, name: str, params: LayerQuant, x: np.ndarray, stride: int) -> ConvResult:
        t0 = time.perf_counter()
        if params.mode == "direct":
            out = conv2d_int8(x, params, stride=stride)
        else:
            out = _conv_in_bands(x, params, stride, self.max_elements)
        return ConvResult(out, time.perf_counter() - t0)


def _check_layer_stride(params: LayerQuant, stride: int) -> None:
    """Fast mode: only 1x1-output-tile algorithms take a stride; direct mode: any stride >= 1."""
    if params.mode == "fast":
        check_stride(params.algo, stride)
    elif not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
        raise ValueError(f"stride must be an int >= 1, got {stride!r}")


def _conv_in_bands(x: np.ndarray, params: LayerQuant, stride: int, max_elements: int):
    algo = params.algo
    m, r, l_tile = algo.output_tile, algo.kernel, algo.input_tile
    n, _, h, w = x.shape
    pad = params.padding
    ho, wo = output_size(h, r, pad, stride), output_size(w, r, pad, stride)
    th, tw = algo.tiles(ho, 1), algo.tiles(wo, 1)
    per_row = n * params.cout * tw * algo.mults
    rows = max(1, max_elements // max(per_row, 1))
    if rows >= th:
        return conv2d_int8(x, params, stride=stride)
    # Zero-pad once (padding plus the edge tiles' overhang), then run bands of
    # tile rows with padding 0: tile (ty, tx) reads the same pixels either way.
    step = m * stride
    need_h = (th - 1) * step + l_tile
    need_w = (tw - 1) * step + l_tile
    xp = np.zeros((n, x.shape[1], max(need_h, h + pad), max(need_w, w + pad)), dtype=x.dtype)
    xp[:, :, pad : pad + h, pad : pad + w] = x
    unpadded = dataclasses.replace(params, padding=0)
    bands = []
    for t0 in range(0, th, rows):
        t1 = min(th, t0 + rows)
        band = xp[:, :, t0 * step : (t1 - 1) * step + l_tile, :need_w]
        y = conv2d_int8(band, unpadded, stride=stride)
        bands.append(y[:, :, : (t1 - t0) * m])
    return np.concatenate(bands, axis=2)[:, :, :ho, :wo]


class RtlDevice(ConvDevice):
    """The generated engines in Verilator, run by the native stream runner (:mod:`sfc_hls.sim.native`).

    Each engine is generated and its native simulator built on first use (both
    cached, see :func:`sfc_hls.hw.generate.generate_engine` and
    :func:`sfc_hls.sim.native.build_native`).  A layer is encoded into beats
    (:class:`~sfc_hls.hw.engine_streams.EngineStreams`), replayed on the
    engine's ports by the simulator in a process of its own, and its output
    beats are assembled into the feature map; :meth:`run_layers` runs
    independent layers in ``jobs`` parallel processes.

    Args:
        engines: engine configurations.
        work_dir: where the beat files of a run go (a temporary folder per run by default).
        build_root: Verilator build cache (default :func:`sfc_hls.cache.sim_build_root`).
        input_pause, output_pause: probability of an idle cycle on each input
            stream / of back-pressure on the output (0: full speed).
        seed: seed of the pause generators.
        jobs: simulator processes :meth:`run_layers` runs at once.
        axi: drive each engine's AXI top (:class:`~sfc_hls.hw.axi_engine.AxiConvEngine`:
            register writes over AXI4-Lite, data over AXI4-Stream) instead of its bare streams.
    """

    backend = "rtl"

    def __init__(
        self,
        engines: Sequence[EngineConfig],
        *,
        work_dir: str | os.PathLike[str] | None = None,
        build_root: str | os.PathLike[str] | None = None,
        input_pause: float = 0.0,
        output_pause: float = 0.0,
        seed: int = 0,
        jobs: int = 1,
        axi: bool = False,
    ) -> None:
        super().__init__(engines)
        for name, value in (("input_pause", input_pause), ("output_pause", output_pause)):
            if not 0 <= float(value) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
            raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
        self.work_dir = None if work_dir is None else Path(work_dir).resolve()
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        self.build_root = build_root
        self.input_pause = float(input_pause)
        self.output_pause = float(output_pause)
        self.seed = int(seed)
        self.jobs = jobs
        self.axi = bool(axi)
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: Seconds spent generating and building engines (not in the layer times).
        self.build_seconds = 0.0

    def prepare(self, algorithms: Sequence[str] | None = None) -> None:
        """Generate and build the engines now (else on first use)."""
        for algorithm in algorithms or list(self.engines):
            self._model(algorithm)

    def _model(self, algorithm: str) -> Any:
        with self._lock:
            if algorithm not in self._models:
                from sfc_hls.sim.native import engine_model

                t0 = time.perf_counter()
                self._models[algorithm] = engine_model(
                    self.engines[algorithm], build_root=self.build_root, axi=self.axi
                )
                self.build_seconds += time.perf_counter() - t0
            return self._models[algorithm]

    def _compute(self, name: str, params: LayerQuant, x: np.ndarray, stride: int) -> ConvResult:
        (result,) = self.run_layers([LayerRequest(name, params, x, stride)])
        return result

    def run_layers(
        self, requests: Sequence[LayerRequest], *, progress: bool = False
    ) -> list[ConvResult]:
        """Run layers (of any engines), ``jobs`` at a time; results in request order."""
        checked = []
        for req in requests:
            self.engine_for(req.name, req.params)
            _check_layer_stride(req.params, req.stride)
            checked.append(dataclasses.replace(req, x=check_input(req.x, req.params)))
        for algorithm in {req.params.config.algorithm for req in checked}:
            self._model(algorithm)  # build before the parallel runs
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(checked), desc="rtl layers", unit="layer")
        try:
            if self.jobs == 1 or len(checked) == 1:
                results = [self._run_one(req, bar) for req in checked]
            else:
                with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                    results = list(pool.map(lambda req: self._run_one(req, bar), checked))
        finally:
            if bar is not None:
                bar.close()
        return results

    def _run_one(self, req: LayerRequest, bar: Any = None) -> ConvResult:
        from sfc_hls.hw.engine_streams import EngineStreams
        from sfc_hls.sim.native import NativeRunError, run_layer

        config = self.engines[req.params.config.algorithm]
        t0 = time.perf_counter()
        try:
            out, run = run_layer(
                self._model(config.algorithm),
                EngineStreams(config),
                req.params,
                req.x,
                stride=req.stride,
                seed=self.seed,
                input_pause=self.input_pause,
                output_pause=self.output_pause,
                work_dir=self.work_dir,
            )
        except NativeRunError as exc:
            raise RuntimeError(
                f"layer {req.name!r} on the {config.algorithm} engine: {exc}"
            ) from None
        if bar is not None:
            bar.update(1)
        return ConvResult(out, time.perf_counter() - t0, run.cycles)


def make_device(backend: str, engines: Sequence[EngineConfig], **kwargs: Any) -> ConvDevice:
    """``golden`` -> :class:`GoldenDevice`, ``rtl`` -> :class:`RtlDevice` (kwargs passed on)."""
    if backend == "golden":
        return GoldenDevice(engines, **kwargs)
    if backend == "rtl":
        return RtlDevice(engines, **kwargs)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
