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
  in Verilator through cocotb (:mod:`sfc_hls.sim.tb_host`): each
  :meth:`~ConvDevice.read_output` runs the simulator once on the configured
  layer; the stream encoding is :class:`sfc_hls.hw.engine_streams.EngineStreams`.
  :meth:`RtlDevice.run_layers` runs several layers of one engine in one
  simulator invocation.

Both return the same int8 codes for the same parameters and input (tested
end to end on the digits ResNet).
"""

from __future__ import annotations

import abc
import dataclasses
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sfc_hls.atomic_files import write_text_atomic
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
        check_stride(self._weights[name].algo, stride)
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

    def __enter__(self) -> ConvDevice:
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
        out = _conv_in_bands(x, params, stride, self.max_elements)
        return ConvResult(out, time.perf_counter() - t0)


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


class _EngineServer:
    """One simulator process running :func:`sfc_hls.sim.tb_host.serve` for one engine."""

    def __init__(self, device: RtlDevice, algorithm: str, verilog: Path) -> None:
        from sfc_hls.hw.generate import TOPLEVEL
        from sfc_hls.sim.verilator import run_cocotb

        self.algorithm = algorithm
        self.directory = device.work_dir / f"engine-{algorithm}"
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self.next = 0
        self.error: BaseException | None = None
        config = {
            "engine": device.engines[algorithm].to_dict(),
            "requests": str(self.directory),
            "idle_timeout": device.idle_timeout,
            "input_pause": device.input_pause,
            "output_pause": device.output_pause,
        }

        def target() -> None:
            try:
                run_cocotb(
                    [verilog],
                    TOPLEVEL,
                    "sfc_hls.sim.tb_host",
                    build_root=device.build_root,
                    config=config,
                    seed=device.seed,
                    testcase="serve",
                    test_dir=self.directory / "sim",
                )
            except BaseException as exc:  # reported to the caller by request()/close()
                self.error = exc

        self.thread = threading.Thread(target=target, name=f"rtl-{algorithm}", daemon=True)
        self.thread.start()

    def request(self, entry: dict[str, Any]) -> dict[str, Any]:
        from sfc_hls.sim.tb_host import request_path, response_path

        index = self.next
        self.next += 1
        write_text_atomic(request_path(self.directory, index), json.dumps(entry))
        response = response_path(self.directory, index)
        while not response.exists():
            if not self.thread.is_alive():
                if response.exists():
                    break
                raise RuntimeError(
                    f"the {self.algorithm} engine simulation stopped before answering layer "
                    f"{entry.get('name')!r}: {self.error}"
                )
            time.sleep(0.002)
        return json.loads(response.read_text())

    def close(self, timeout: float = 120.0) -> None:
        from sfc_hls.sim.tb_host import request_path

        if self.thread.is_alive():
            write_text_atomic(request_path(self.directory, self.next), '{"quit": true}')
            self.thread.join(timeout)
        if self.error is not None:
            raise RuntimeError(f"the {self.algorithm} engine simulation failed: {self.error}")


class RtlDevice(ConvDevice):
    """The generated engines in Verilator (cocotb module :mod:`sfc_hls.sim.tb_host`).

    Each engine is generated and built on first use (both cached, see
    :func:`sfc_hls.hw.generate.generate_engine` and
    :func:`sfc_hls.sim.verilator.run_cocotb`); then one simulator per engine
    runs in the background and serves the layers of the whole network (the
    simulator starts once, not once per layer).  Layer files (parameters
    JSON, input/output ``.npy``, requests, responses, simulator log) go to
    ``work_dir`` (a temporary directory by default, removed by :meth:`close`).
    Always :meth:`close` the device (or use it as a context manager): that
    stops the simulators and reports a failed engine status.

    Args:
        engines: engine configurations.
        work_dir: where layer files and simulator runs go.
        build_root: Verilator build cache (default ``$SFC_HLS_SIM_BUILD`` or ``sim_build``).
        input_pause, output_pause: probability of an idle cycle on the input
            streams / of back-pressure on the output (0: full speed).
        seed: seed of the pause generators.
        idle_timeout: a simulator without a request for this long stops.
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
        idle_timeout: float = 600.0,
    ) -> None:
        super().__init__(engines)
        self._tmp = None
        if work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sfc-hls-rtl-")
            work_dir = self._tmp.name
        self.work_dir = Path(work_dir).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.build_root = build_root
        self.input_pause = float(input_pause)
        self.output_pause = float(output_pause)
        self.seed = int(seed)
        self.idle_timeout = float(idle_timeout)
        self._servers: dict[str, _EngineServer] = {}
        self._layers = 0
        #: Seconds spent generating and building engines (not in the layer times).
        self.build_seconds = 0.0

    def prepare(self, algorithms: Sequence[str] | None = None) -> None:
        """Generate and build the engines and start their simulators now (else on first use)."""
        for algorithm in algorithms or list(self.engines):
            self._server(algorithm)

    def _server(self, algorithm: str) -> _EngineServer:
        if algorithm not in self._servers:
            from sfc_hls.hw.generate import TOPLEVEL, generate_engine
            from sfc_hls.sim.verilator import build_verilator

            t0 = time.perf_counter()
            gen = generate_engine(self.engines[algorithm])
            build_verilator([gen.verilog], TOPLEVEL, build_root=self.build_root)
            self.build_seconds += time.perf_counter() - t0
            self._servers[algorithm] = _EngineServer(self, algorithm, gen.verilog)
        return self._servers[algorithm]

    def close(self) -> None:
        """Stop the simulators; RuntimeError if one of them failed."""
        errors = []
        for server in self._servers.values():
            try:
                server.close()
            except RuntimeError as exc:
                errors.append(str(exc))
        self._servers.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if errors:
            raise RuntimeError("; ".join(errors))

    def _compute(self, name: str, params: LayerQuant, x: np.ndarray, stride: int) -> ConvResult:
        (result,) = self.run_layers([LayerRequest(name, params, x, stride)])
        return result

    def run_layers(self, requests: Sequence[LayerRequest]) -> list[ConvResult]:
        """Run layers (of any engines) in order; each goes to its engine's simulator."""
        results = []
        for req in requests:
            self.engine_for(req.name, req.params)
            check_stride(req.params.algo, req.stride)
            x = check_input(req.x, req.params)
            server = self._server(req.params.config.algorithm)
            self._layers += 1
            stem = server.directory / f"layer{self._layers:05d}"
            req.params.save(stem.with_suffix(".json"))
            np.save(stem.with_suffix(".in.npy"), x.astype(np.int8))
            t0 = time.perf_counter()
            response = server.request(
                {
                    "name": req.name,
                    "params": str(stem.with_suffix(".json")),
                    "input": str(stem.with_suffix(".in.npy")),
                    "output": str(stem.with_suffix(".out.npy")),
                    "stride": req.stride,
                }
            )
            seconds = time.perf_counter() - t0
            out = np.load(stem.with_suffix(".out.npy")).astype(np.int64)
            results.append(ConvResult(out, seconds, int(response["cycles"])))
        return results


def make_device(backend: str, engines: Sequence[EngineConfig], **kwargs: Any) -> ConvDevice:
    """``golden`` -> :class:`GoldenDevice`, ``rtl`` -> :class:`RtlDevice` (kwargs passed on)."""
    if backend == "golden":
        return GoldenDevice(engines, **kwargs)
    if backend == "rtl":
        return RtlDevice(engines, **kwargs)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
