"""Engine-level test vectors: one layer as the beats on a generated engine's ports.

``sfc-hls vectors --engine ENG -o DIR`` (``ENG`` written by ``sfc-hls generate -o ENG``)
writes into ``DIR`` (atomically) everything a plain Verilog/SystemVerilog
testbench needs to replay one layer with no knowledge of the packing:

* ``i_cfg.hex``, ``i_chan.hex``, ``i_weight.hex``, ``i_act.hex`` -- every
  beat of each input stream in order, the raw payload as the port carries it
  (``ceil(bits / 4)`` hex digits per line, MSB first, ``$readmemh``);
  ``i_cfg`` holds the layer's register writes;
* ``o_out.hex`` -- the expected output beats in the order the engine emits
  them, and ``o_out.mask.hex`` -- per beat, the payload bits that must match
  (every ``meta`` bit and the data lanes holding an output pixel); both are
  derived from the golden model (:func:`sfc_hls.golden.conv2d_int8`) and the
  protocol (:meth:`~sfc_hls.hw.engine_streams.EngineStreams.expected_output_beats`),
  never from running the RTL;
* ``replay_params.svh`` -- the top module's name, the port widths, the beat
  counts and the status bits, as macros for ``replay_tb.sv``;
* ``replay_tb.sv`` -- a copy of the testbench shipped in ``sfc_hls/sim``;
* ``params.json`` (the layer), ``layer.npz`` (input and golden output) and
  ``manifest.json`` (engine, layer, counts, sha256 of every file, the command
  that replays it).

Replay: ``iverilog -g2012 -I DIR -o tb DIR/replay_tb.sv ENG/NAME.v && vvp tb +vectors=DIR``
(docs/integration.md, "Replaying a layer without Python").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sfc_hls.atomic_files import atomic_directory, check_output_directory
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant

__all__ = [
    "ENGINE_PORTS",
    "REPLAY_TB",
    "EngineVectorSet",
    "LoadedEngine",
    "load_engine",
    "replay_command",
    "write_engine_vectors",
]

#: The stream ports a generated engine has (and the testbench drives), and its status port.
ENGINE_PORTS = ("i_cfg", "i_chan", "i_weight", "i_act", "o_out", "status")
_INPUTS = ENGINE_PORTS[:4]
#: The SystemVerilog testbench that replays a vectors directory (package data of sfc_hls.sim).
REPLAY_TB = Path(__file__).with_name("replay_tb.sv")
_ENGINE_FORMAT = "sfc-hls.engine/1"
#: Port -> its payload layout in :attr:`EngineInterface.layouts`.
_LAYOUTS = {"i_cfg": "cfg", "i_chan": "chan", "i_weight": "weight", "i_act": "act",
            "o_out": "out", "status": "status"}  # fmt: skip


@dataclass(frozen=True)
class LoadedEngine:
    """A generated engine directory: its Verilog, manifest and configuration."""

    verilog: Path
    manifest: dict[str, Any]
    config: EngineConfig

    @property
    def toplevel(self) -> str:
        return str(self.manifest["toplevel"])


@dataclass(frozen=True)
class EngineVectorSet:
    """What :func:`write_engine_vectors` wrote: the directory and its manifest."""

    path: Path
    manifest: dict[str, Any]


def _engine_manifest_path(directory: Path) -> Path:
    """The one ``sfc-hls generate`` manifest in ``directory``; ValueError naming --engine."""
    if not directory.is_dir():
        raise ValueError(
            f"--engine {directory} is not a directory (give the -o of sfc-hls generate)"
        )
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("format") == _ENGINE_FORMAT:
            found.append(path)
    if not found:
        raise ValueError(
            f"--engine {directory} holds no engine manifest (NAME.json written by sfc-hls generate)"
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ValueError(f"--engine {directory} holds several engine manifests ({names})")
    return found[0]


def load_engine(directory: str | Path) -> LoadedEngine:
    """Read and check the output of ``sfc-hls generate -o DIRECTORY [--name NAME]``.

    ValueError (naming ``--engine``) unless the directory holds exactly one
    engine manifest, its Verilog ``NAME.v`` with the sha256 the manifest
    records, the ports the testbench drives, and payload widths that this
    version of sfc-hls computes for the same configuration.
    """
    from sfc_hls.hw.interface import EngineInterface

    directory = Path(directory)
    manifest_path = _engine_manifest_path(directory)
    manifest = json.loads(manifest_path.read_text())
    where = f"--engine {manifest_path}"
    try:
        config = EngineConfig.from_dict(manifest["config"])
        toplevel = manifest["toplevel"]
        ports = manifest["ports"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not a valid engine manifest ({exc})") from None
    verilog = directory / f"{toplevel}.v"
    if not verilog.is_file():
        raise ValueError(f"{where}: the Verilog {verilog.name} is missing")
    if hashlib.sha256(verilog.read_bytes()).hexdigest() != manifest.get("verilog_sha256"):
        raise ValueError(f"{where}: {verilog.name} differs from the Verilog the manifest describes")
    if sorted(ports) != sorted(ENGINE_PORTS):
        raise ValueError(f"{where}: ports {sorted(ports)}, expected {sorted(ENGINE_PORTS)}")
    layouts = EngineInterface.from_config(config).layouts
    for name in ENGINE_PORTS:
        bits = ports[name].get("payload_bits", ports[name].get("bits"))
        expected = layouts[_LAYOUTS[name]].size
        if bits != expected:
            raise ValueError(f"{where}: port {name} has {bits} bits, this version of sfc-hls "
                             f"makes {expected} for its configuration: regenerate the engine")  # fmt: skip
    return LoadedEngine(verilog, manifest, config)


# ---------------------------------------------------------------------- the layer
#: Most hex characters :func:`write_engine_vectors` writes over all beat files (256 MiB).
MAX_HEX_CHARS = 1 << 28


@dataclass(frozen=True)
class LayerSpec:
    """A layer to draw at random (unless :func:`write_engine_vectors` gets ``params``)."""

    cin: int = 4
    cout: int = 4
    height: int = 14
    width: int = 14
    batch: int = 1
    seed: int = 0
    relu: bool = False
    padding: int | None = None
    mode: str = "fast"
    kernel: int | None = None
    stride: int = 1
    replicas: int | None = None


def _layer(
    config: EngineConfig, spec: LayerSpec, params: LayerQuant | None, x: np.ndarray | None
) -> tuple[LayerQuant, np.ndarray]:
    """The layer (given or random from ``spec.seed``) and its input (given or random), checked."""
    from sfc_hls.arguments import check_int
    from sfc_hls.datapath import random_layer_quant
    from sfc_hls.golden import check_input
    from sfc_hls.vectors import MAX_SEED

    check_int("seed", spec.seed, 0, MAX_SEED)
    check_int("stride", spec.stride, 1)
    rng = np.random.default_rng(spec.seed)
    if params is None:
        for name in ("cin", "cout"):
            check_int(name, getattr(spec, name), 1)
        kernel = spec.kernel or config.algo.kernel
        padding = kernel // 2 if spec.padding is None else spec.padding
        check_int("padding", padding, 0, kernel - 1)
        params = random_layer_quant(config, spec.cin, spec.cout, rng, padding=padding,
                                    relu=spec.relu, mode=spec.mode, kernel=kernel)  # fmt: skip
    config.check_layer(params)
    if x is None:
        for name in ("batch", "height", "width"):
            check_int(name, getattr(spec, name), 1)
        lo, hi = -(1 << (config.in_bits - 1)), 1 << (config.in_bits - 1)
        x = rng.integers(lo, hi, size=(spec.batch, params.cin, spec.height, spec.width))
    return params, check_input(x, params)


def _status_macros(config: EngineConfig) -> dict[str, str]:
    """``REPLAY_STATUS_*`` macros: the busy bit and the mask of the error bits of ``status``."""
    from sfc_hls.hw.engine_streams import flat_fields
    from sfc_hls.hw.interface import EngineInterface

    layout = EngineInterface.from_config(config).layouts["status"]
    offsets = {path: (offset, width) for path, offset, width, _, _ in flat_fields(layout)}
    errors = sum(((1 << w) - 1) << o for name, (o, w) in offsets.items()
                 if name in ("desc_error", "overflow"))  # fmt: skip
    return {
        "STATUS_BITS": str(layout.size),
        "STATUS_BUSY": str(offsets["busy"][0]),
        "STATUS_ERRORS": f"{layout.size}'h{errors:x}",
    }


def _params_header(
    engine: LoadedEngine, beats: dict[str, list[int]], bits: dict[str, int], max_cycles: int
) -> str:
    """``replay_params.svh``: the top module, widths and beat counts as macros."""
    macros = {"TOP": engine.toplevel}
    for name, payloads in beats.items():
        key = name[2:].upper()
        macros[f"{key}_BITS"] = str(bits[name])
        macros[f"{key}_BEATS"] = str(len(payloads))
    macros.update(_status_macros(engine.config))
    macros["MAX_CYCLES"] = str(max_cycles)
    lines = [f"// generated by sfc-hls vectors --engine for {engine.toplevel}: see manifest.json",
             *(f"`define REPLAY_{k} {v}" for k, v in macros.items()), ""]  # fmt: skip
    return "\n".join(lines)


def replay_command(vectors_dir: str | Path, verilog: str | Path) -> str:
    """The shell command that replays ``vectors_dir`` on ``verilog`` with Icarus Verilog."""
    d = Path(vectors_dir)
    return (f"iverilog -g2012 -I {d} -o replay.vvp {d / 'replay_tb.sv'} {verilog} && "
            f"vvp -n replay.vvp +vectors={d}")  # fmt: skip


def _hex_text(payloads: list[int], bits: int) -> str:
    """``$readmemh`` lines: ``ceil(bits / 4)`` digits per beat, MSB first (as ``write_hex``)."""
    digits = (bits + 3) // 4
    return "".join(f"{int(p):0{digits}x}\n" for p in payloads)


def write_engine_vectors(
    engine_dir: str | Path,
    out_dir: str | Path,
    spec: LayerSpec = LayerSpec(),
    *,
    params: LayerQuant | None = None,
    x: np.ndarray | None = None,
    overwrite: bool = False,
) -> EngineVectorSet:
    """Write the port-level vectors of one layer on the engine in ``engine_dir`` (module docstring).

    The layer is ``params`` or drawn from ``spec`` (``spec.mode`` ``fast`` or
    ``direct``, ``spec.kernel``), its input ``x`` (N, Cin, H, W) or random;
    ``spec.stride`` and ``spec.replicas`` as for
    :meth:`~sfc_hls.hw.engine_streams.EngineStreams.layer_beats`.  Everything
    (engine directory, output directory, layer against the engine's limits,
    size of the files) is checked before the golden model runs; ValueError
    names the option.  ``overwrite`` replaces only an earlier sfc-hls output.
    """
    from sfc_hls.golden import conv2d_int8
    from sfc_hls.hw.engine_streams import EngineStreams

    engine = load_engine(engine_dir)
    check_output_directory(out_dir, overwrite=overwrite)
    params, x = _layer(engine.config, spec, params, x)
    streams = EngineStreams(engine.config)
    beats = streams.layer_beats(params, x, stride=spec.stride, replicas=spec.replicas)
    bits = {name: int(engine.manifest["ports"][name]["payload_bits"]) for name in ENGINE_PORTS[:5]}
    inputs = {"i_cfg": beats.cfg, "i_chan": beats.chan, "i_weight": beats.weight,
              "i_act": beats.act}  # fmt: skip
    total = sum(len(v) * (bits[k] + 4) // 4 for k, v in inputs.items())
    total += 2 * beats.expected_outputs * (bits["o_out"] + 4) // 4
    if total > MAX_HEX_CHARS:
        raise ValueError(f"the vectors would be {total:,} characters, more than {MAX_HEX_CHARS:,}: "
                         "use fewer channels, a smaller batch or a smaller input")  # fmt: skip
    out = conv2d_int8(x, params, stride=spec.stride)
    expected, masks = streams.expected_output_beats(out, params, schedule=beats.schedule)
    if len(expected) != beats.expected_outputs:  # the encoder and the inverse disagree: a bug
        raise AssertionError(f"{len(expected)} expected beats, the protocol says "
                             f"{beats.expected_outputs}")  # fmt: skip
    max_cycles = 20 * (sum(len(v) for v in inputs.values()) + len(expected)) + 100_000
    texts = {f"{k}.hex": _hex_text(v, bits[k]) for k, v in inputs.items()}
    texts["o_out.hex"] = _hex_text(expected, bits["o_out"])
    texts["o_out.mask.hex"] = _hex_text(masks, bits["o_out"])
    texts["replay_params.svh"] = _params_header(engine, {**inputs, "o_out": expected}, bits,
                                                max_cycles)  # fmt: skip
    texts["replay_tb.sv"] = REPLAY_TB.read_text()
    texts["params.json"] = json.dumps(params.to_dict())
    manifest = _vectors_manifest(engine, params, x, spec, beats, texts, Path(out_dir))
    with atomic_directory(Path(out_dir), overwrite=overwrite) as tmp:
        for name, text in texts.items():
            (tmp / name).write_text(text)
        np.savez(tmp / "layer.npz", input=np.asarray(x, dtype=np.int64), output=out)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return EngineVectorSet(Path(out_dir), manifest)


def _vectors_manifest(
    engine: LoadedEngine,
    params: LayerQuant,
    x: np.ndarray,
    spec: LayerSpec,
    beats: Any,
    texts: dict[str, str],
    out_dir: Path,
) -> dict[str, Any]:
    """The vectors' manifest: engine, layer, beat counts, files with their sha256, replay command."""
    sched = beats.schedule
    return {
        "format": "sfc-hls.engine-vectors/1",
        "engine": {
            "toplevel": engine.toplevel,
            "verilog": str(engine.verilog),
            "verilog_sha256": engine.manifest["verilog_sha256"],
            "config": engine.config.to_dict(),
        },  # fmt: skip
        "seed": spec.seed,
        "layer": {
            "mode": params.mode,
            "batch": int(x.shape[0]),
            "cin": params.cin,
            "cout": params.cout,
            "height": int(x.shape[2]),
            "width": int(x.shape[3]),
            "kernel": params.kernel,
            "padding": params.padding,
            "stride": spec.stride,
            "relu": params.relu,
            "groups": beats.groups,
            "tiles": beats.tiles,
            "replicas": sched.replicas if sched else None,
        },
        "beats": {
            "i_cfg": len(beats.cfg),
            "i_chan": len(beats.chan),
            "i_weight": len(beats.weight),
            "i_act": len(beats.act),
            "o_out": beats.expected_outputs,
        },  # fmt: skip
        "files": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in texts.items()},
        "replay": replay_command(out_dir, engine.verilog),
    }
