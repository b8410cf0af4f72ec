"""Native stream runner: a generated engine in Verilator driven by a C++ main, no Python in the loop.

cocotb evaluates a model about five times per clock cycle and runs Python
every cycle; for long runs (whole layers, whole networks) this module builds
the Verilog with a small C++ harness instead (``native_main.cpp``, generic
over the design: the ports come from the generated manifest) that replays
``$readmemh`` beat files on every input stream, with optional seeded stalls,
writes every output beat and reports the cycles.  Python keeps the packing
(:class:`~sfc_hls.hw.engine_streams.EngineStreams`), the assembly and the
golden comparison.  Measured on the default engine: ~79k cycles/s on one
core against ~400 with cocotb's defaults (bench/results/sim.json).

:func:`build_native` compiles (cached by the Verilog, the harness, every
flag and the tool versions, like :func:`sfc_hls.sim.verilator.build_verilator`);
:meth:`NativeModel.run` runs one set of streams in a fresh process, so that
independent layers run in parallel processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfc_hls.cache import sim_build_root
from sfc_hls.sim.verilator import (
    VerilatorBuildError,
    _file_lock,
    _log_tail,
    _patched_environ,
    _tool_environ,
    _verilator_version,
    top_ports,
    verilator_bin_dir,
)

__all__ = [
    "NATIVE_MAIN",
    "NativeModel",
    "NativeRun",
    "NativeRunError",
    "Clocking",
    "MemoryPort",
    "PortSpec",
    "build_native",
    "clocking_from_manifest",
    "engine_model",
    "layer_memory",
    "run_layer",
    "ports_from_manifest",
    "read_hex",
    "write_hex",
]

NATIVE_MAIN = Path(__file__).with_name("native_main.cpp")

#: C++ optimisation of the native model: the per-cycle code at -O2 (the run-once
#: constructors at -O0 build much faster and cost nothing at run time).
NATIVE_OPT = ("-O2", "-O0")


class NativeRunError(RuntimeError):
    """The native simulation failed: bad files, or the outputs did not arrive in time."""


@dataclass(frozen=True)
class PortSpec:
    """A port of the design: a stream ``source`` (input) or ``sink`` (output), or a ``status``.

    By default a stream is the ports ``NAME__valid``, ``NAME__ready`` and
    ``NAME__payload`` (an Amaranth stream) and a status the port ``NAME``.
    Other designs give the C++ the harness runs (:mod:`native_main.cpp <sfc_hls.sim>`):
    ``handshake`` = (code driving valid from ``v`` / ready from ``r``, the
    expression sampling ready / valid) and ``beat`` = code putting beat ``w``
    on the ports (source), gathering it into ``w`` (sink) or reading a status
    into ``w``; ``bits`` is the beat's width in the hex files.
    """

    name: str
    kind: str
    bits: int
    handshake: tuple[str, str] | None = None
    beat: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("source", "sink", "status"):
            raise ValueError(f"kind must be source, sink or status, got {self.kind!r}")

    @staticmethod
    def member(verilog_name: str) -> str:
        """The C++ member Verilator generates for a port (``a__b`` is encoded ``a___05Fb``)."""
        return verilog_name.replace("__", "___05F")

    def macro(self) -> str:
        if self.kind == "status":
            beat = self.beat or f"get(dut->{self.member(self.name)}, w);"
            return f'SFC_STATUS("{self.name}", {self.bits}, {beat})'
        valid, ready, payload = (
            self.member(f"{self.name}__{suffix}") for suffix in ("valid", "ready", "payload")
        )
        if self.kind == "source":
            drive, sample = self.handshake or (f"dut->{valid} = v;", f"dut->{ready}")
            beat = self.beat or f"put(dut->{payload}, w);"
            return f'SFC_SOURCE("{self.name}", {self.bits}, {drive}, {sample}, {beat})'
        drive, sample = self.handshake or (f"dut->{ready} = r;", f"dut->{valid}")
        beat = self.beat or f"get(dut->{payload}, w);"
        return f'SFC_SINK("{self.name}", {self.bits}, {drive}, {sample}, {beat})'


@dataclass(frozen=True)
class Clocking:
    """The design's clock and reset for the harness, signals it holds constant (``init``,
    C++) and an expression that flags a bus error on a cycle (``bus_error``)."""

    clock: str = "clk"
    reset: str = "rst"
    reset_active: int = 1
    init: str = ""
    bus_error: str = "false"


def ports_from_manifest(manifest: Mapping) -> tuple[PortSpec, ...]:
    """Stream and status ports of a generated engine (``sfc-hls generate`` manifest).

    For the AXI top (``--axi``) the streams keep the engine's names (``i_cfg``:
    register writes as AXI4-Lite writes into the descriptor window, ``i_chan``
    ... on the AXI4-Stream ports, ``o_out`` gathered from ``tdata``, ``tuser``
    and ``tlast``), with the same beats, and the statuses are the STATUS and
    ERROR registers, read over AXI4-Lite after the run.
    """
    if manifest.get("interface") == "axi":
        return _axi_ports(manifest["axi"])
    ports = []
    for name, port in manifest["ports"].items():
        direction = str(port["direction"]).lower()
        if port.get("stream"):
            kind = "source" if direction == "in" else "sink"
            ports.append(PortSpec(name, kind, int(port["payload_bits"])))
        elif direction == "out":
            ports.append(PortSpec(name, "status", int(port["bits"])))
        else:
            raise ValueError(f"port {name!r}: plain input ports are not supported by the runner")
    return tuple(ports)


def clocking_from_manifest(manifest: Mapping) -> Clocking:
    """Clock, reset and bus-error check of a generated engine (the AXI top's or the engine's)."""
    if manifest.get("interface") != "axi":
        return Clocking()
    axil = "dut->s_axi_control_"
    return Clocking(
        "aclk",
        "aresetn",
        0,
        init=f"{axil}wstrb = 0xF; {axil}bready = 1; {axil}arvalid = 0; {axil}rready = 0;",
        bus_error=f"({axil}bvalid && {axil}bresp != 0)",
    )


def _axi_ports(axi: Mapping) -> tuple[PortSpec, ...]:
    """The AXI top's streams under the engine's names (see :func:`ports_from_manifest`)."""
    bits = axi["engine_payload_bits"]
    axil = "dut->s_axi_control_"
    window = int(axi["descriptor_window"])
    cfg = PortSpec(
        "i_cfg", "source", bits["i_cfg"],
        handshake=(f"{axil}awvalid = v; {axil}wvalid = v;", f"{axil}awready"),
        beat=f"{axil}awaddr = {window} + 4 * slice(w, 0, 16)[0]; "
        f"put({axil}wdata, slice(w, 16, 32));",
    )  # fmt: skip
    ports = [cfg]
    for name in ("i_chan", "i_weight", "i_act"):
        port = "dut->s_axis_" + name[2:]
        handshake = (f"{port}_tvalid = v;", f"{port}_tready")
        ports.append(PortSpec(name, "source", bits[name], handshake, f"put({port}_tdata, w);"))
    data, user = int(axi["out_data_bits"]), int(axi["tdata_bits"]["m_axis_out_tuser"])
    out = "dut->m_axis_out_"
    gather = (f"get_at({out}tdata, w, 0, {data}); get_at({out}tuser, w, {data}, {user}); "
              f"get_at({out}tlast, w, {data + user}, 1);")  # fmt: skip
    ports.append(PortSpec("o_out", "sink", bits["o_out"], (f"{out}tready = r;", f"{out}tvalid"),
                          gather))  # fmt: skip
    for reg in ("STATUS", "ERROR"):
        offset = next(r["offset"] for r in axi["registers"] if r["name"] == reg)
        ports.append(PortSpec(reg, "status", 32, beat=_axil_read(offset)))
    return tuple(ports)


def _axil_read(offset: int) -> str:
    """C++ reading the 32-bit AXI4-Lite register at byte ``offset`` into ``w`` (clocks the design)."""
    a = "dut->s_axi_control_"
    return (
        f"{a}araddr = {offset}; {a}arvalid = 1; {a}rready = 0; "
        f"for (int k = 0; k < 64; ++k) {{ dut->SFC_CLOCK = 0; dut->eval(); "
        f"bool taken = {a}arready; tick(); if (taken) break; }} "
        f"{a}arvalid = 0; {a}rready = 1; "
        f"for (int k = 0; k < 64; ++k) {{ dut->SFC_CLOCK = 0; dut->eval(); "
        f"bool ready = {a}rvalid; if (ready) get({a}rdata, w); tick(); if (ready) break; }} "
        f"{a}rready = 0;"
    )


#: Cycles the simulation top holds the design in reset before cycle 0.
RESET_CYCLES = 3


def _reset_wrapper(verilog_text: str, toplevel: str, clocking: Clocking) -> tuple[str, str]:
    """``(name, Verilog)`` of the simulation top: ``toplevel`` with its reset driven inside.

    Amaranth's registers compute their next state in ``always @*`` blocks that
    read the reset; with the reset a top-level input, Verilator evaluates all
    of that logic on every ``eval()`` (its input-combinational region), twice
    per cycle.  Driven by a counter inside the top, the reset is a register
    and the next-state logic runs once per clock edge (about twice as fast).
    """
    ports = top_ports(verilog_text, toplevel)
    names = [name for name, _, _ in ports]
    for signal in (clocking.clock, clocking.reset):
        if signal not in names:
            raise ValueError(f"module {toplevel!r} has no port {signal!r} (clock and reset)")
    name = f"{toplevel}_native"
    outer = [(n, d, w) for n, d, w in ports if n != clocking.reset]
    active = "reset_count != 0" if clocking.reset_active else "reset_count == 0"
    lines = [f"// generated by sfc_hls.sim.native: {toplevel} with its reset driven inside",
             f"module {name} ({', '.join(n for n, _, _ in outer)});"]  # fmt: skip
    lines += [f"  {d} {f'[{w - 1}:0] ' if w > 1 else ''}{n};" for n, d, w in outer]
    lines += [
        f"  reg [7:0] reset_count = 8'd{RESET_CYCLES};",
        f"  wire reset_value = {active};",
        f"  always @(posedge {clocking.clock}) if (reset_count != 0) reset_count <= reset_count - 1;",
        f"  {toplevel} wrapped (",
        ",\n".join(f"    .{n}({'reset_value' if n == clocking.reset else n})" for n in names),
        "  );",
        "endmodule",
        "",
    ]
    return name, "\n".join(lines)


def _ports_header(toplevel: str, ports: Sequence[PortSpec], clocking: Clocking) -> str:
    model = f"V{toplevel}"
    lines = [
        "// generated by sfc_hls.sim.native: the design's ports for native_main.cpp",
        f"#define SFC_MODEL {model}",
        f'#define SFC_MODEL_HEADER "{model}.h"',
        f"#define SFC_CLOCK {clocking.clock}",
        f"#define SFC_RESET_CYCLES {RESET_CYCLES}",
        f"#define SFC_INIT {clocking.init}",
        f"#define SFC_BUS_ERROR {clocking.bus_error}",
        "#define SFC_PORTS \\",
        *[f"    {port.macro()} \\" for port in ports],
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class MemoryPort:
    """A memory of ``bytes_per_cycle`` bytes per cycle that every stream shares (a DMA model).

    Input beats are fetched into a prefetch buffer of ``prefetch`` beats per
    stream and offered from it; output beats go into a write buffer of as many
    beats and leave from it.  Each cycle the memory's budget grows by
    ``bytes_per_cycle`` and is spent round robin over the streams, a beat of
    stream ``s`` costing ``beat_bytes[s]`` bytes (streams not named cost nothing).
    """

    bytes_per_cycle: float
    beat_bytes: Mapping[str, float]
    prefetch: int = 4

    def __post_init__(self) -> None:
        if not self.bytes_per_cycle > 0:
            raise ValueError(f"bytes_per_cycle must be > 0, got {self.bytes_per_cycle}")
        if not isinstance(self.prefetch, int) or self.prefetch < 1:
            raise ValueError(f"prefetch must be an int >= 1, got {self.prefetch!r}")
        for name, cost in self.beat_bytes.items():
            if not cost >= 0:
                raise ValueError(f"beat_bytes[{name!r}] must be >= 0, got {cost}")

    def args(self) -> list[str]:
        """The harness options (``--bandwidth``, ``--prefetch``, ``--cost NAME=BYTES``)."""
        out = ["--bandwidth", repr(float(self.bytes_per_cycle)), "--prefetch", str(self.prefetch)]
        for name, cost in self.beat_bytes.items():
            out += ["--cost", f"{name}={float(cost)!r}"]
        return out


def layer_memory(
    interface: Any, mode: str, bytes_per_cycle: float, *, map_beat_bytes: float | None = None
) -> MemoryPort:
    """The :class:`MemoryPort` of an engine layer in ``mode``: each beat costs the data
    bytes the cycle model's traffic counts (:meth:`EngineInterface.stream_bits`);
    ``map_beat_bytes``: the mean bytes an ``i_map`` beat moves (the map's pixels over
    its beats: lanes past a row's end are not read; default: whole beats)."""
    costs = {name: b / 8 for name, b in interface.stream_bits().per_beat(mode).items()}
    port = {"cfg": "i_cfg", "chan": "i_chan", "weight": "i_weight", "act": "i_act",
            "map": "i_map", "out": "o_out"}  # fmt: skip
    if not interface.config.map_kib:
        costs.pop("map")  # no i_map port
    elif map_beat_bytes is not None:
        costs["map"] = map_beat_bytes
    return MemoryPort(bytes_per_cycle, {port[name]: cost for name, cost in costs.items()})


@dataclass(frozen=True)
class NativeRun:
    """One run: output beats per sink, cycles, per-port transfer counts, status values."""

    outputs: dict[str, list[int]]
    cycles: int
    ports: dict[str, dict[str, int]]
    status: dict[str, int]
    seconds: float
    simulated: int = 0

    @property
    def cycles_per_second(self) -> float:
        return self.simulated / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class NativeModel:
    """A built native simulator of one design."""

    binary: Path
    build_dir: Path
    toplevel: str
    ports: tuple[PortSpec, ...]
    rebuilt: bool = False
    build_seconds: float = 0.0
    _bits: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._bits.update({port.name: port.bits for port in self.ports})

    def run(
        self,
        inputs: Mapping[str, Sequence[int]],
        expect: Mapping[str, int],
        *,
        seed: int = 0,
        input_pause: float = 0.0,
        output_pause: float = 0.0,
        max_cycles: int | None = None,
        work_dir: str | os.PathLike[str] | None = None,
        memory: MemoryPort | None = None,
    ) -> NativeRun:
        """Offer ``inputs[port]`` (raw payloads) on each input stream, take ``expect[port]``
        beats from each output stream; return them with the cycle counts.

        ``max_cycles`` (default: 20 cycles per beat plus 100,000) bounds the run;
        :class:`NativeRunError` if the outputs have not all arrived by then.  With
        ``memory`` the streams share its bandwidth (``cycles`` then ends with the
        last output beat written to the memory).
        """
        kinds = {port.name: port.kind for port in self.ports}
        for name in inputs:
            if kinds.get(name) != "source":
                raise ValueError(f"{name!r} is not an input stream of {self.toplevel}")
        for name in expect:
            if kinds.get(name) != "sink":
                raise ValueError(f"{name!r} is not an output stream of {self.toplevel}")
        beats = sum(len(v) for v in inputs.values()) + sum(expect.values())
        budget = max_cycles if max_cycles is not None else 20 * beats + 100_000
        with tempfile.TemporaryDirectory(prefix="sfc-hls-native-", dir=work_dir) as tmp:
            args = [str(self.binary), "--seed", str(seed), "--max-cycles", str(budget)]
            args += ["--in-pause", str(input_pause), "--out-pause", str(output_pause)]
            if memory is not None:
                args += memory.args()
            for name, payloads in inputs.items():
                path = Path(tmp) / f"{name}.hex"
                write_hex(path, payloads, self._bits[name])
                args += ["--in", f"{name}={path}"]
            for name, count in expect.items():
                args += ["--out", f"{name}={Path(tmp) / name}.out.hex:{count}"]
            t0 = time.perf_counter()
            proc = subprocess.run(args, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - t0
            if proc.returncode not in (0, 3) or not proc.stdout.strip():
                raise NativeRunError(
                    f"{self.binary.name} failed (exit {proc.returncode}): {proc.stderr.strip()}"
                )
            report = json.loads(proc.stdout)
            outputs = {name: read_hex(Path(tmp) / f"{name}.out.hex") for name in expect}
        if report.get("bus_errors"):
            raise NativeRunError(
                f"{self.toplevel}: {report['bus_errors']} bus error responses (e.g. a register "
                f"write refused with SLVERR); ports {report['ports']}"
            )
        missing = {n: (len(outputs[n]), c) for n, c in expect.items() if len(outputs[n]) < c}
        if proc.returncode == 3 or missing:
            raise NativeRunError(
                f"{self.toplevel}: outputs incomplete after {report['simulated']} cycles "
                f"(got, expected: {missing}); ports {report['ports']}"
            )
        status = {
            port.name: int(report[port.name], 16) for port in self.ports if port.kind == "status"
        }
        return NativeRun(
            outputs, int(report["cycles"]), report["ports"], status, seconds,
            int(report["simulated"]),
        )  # fmt: skip


def write_hex(path: Path, payloads: Sequence[int], bits: int) -> None:
    """``$readmemh`` file: one beat per line, ``ceil(bits / 4)`` hex digits, MSB first."""
    digits = (bits + 3) // 4
    with open(path, "w") as f:
        f.writelines(f"{int(p):0{digits}x}\n" for p in payloads)


def read_hex(path: Path) -> list[int]:
    """The beats of a ``$readmemh`` file (as written by the runner or :func:`write_hex`)."""
    with open(path) as f:
        return [int(line, 16) for line in f if line.strip()]


def build_native(
    verilog: str | os.PathLike[str],
    toplevel: str,
    ports: Sequence[PortSpec],
    *,
    build_root: str | os.PathLike[str] | None = None,
    opt: tuple[str, str] = NATIVE_OPT,
    clocking: Clocking | None = None,
    extra_sources: Sequence[str | os.PathLike[str]] = (),
) -> NativeModel:
    """Build (or reuse) the native simulator of ``toplevel`` in ``verilog``.

    ``extra_sources``: further Verilog files (models of vendor primitives the
    design instantiates).  The build directory
    ``<build_root>/<toplevel>-native-<hash>`` is keyed by the Verilog, the
    harness, the port list, every Verilator flag, the optimisation levels and
    the Verilator version.
    """
    source = Path(verilog).resolve()
    extras = [Path(extra).resolve() for extra in extra_sources]
    for path in (source, *extras):
        if not path.is_file():
            raise FileNotFoundError(f"Verilog source {path} does not exist")
    clocking = clocking or Clocking()
    top, wrapper = _reset_wrapper(source.read_text(), toplevel, clocking)
    header = _ports_header(top, ports, clocking)
    flags = _verilator_flags(top)
    digest = hashlib.sha256()
    sources = [path.read_bytes() for path in (source, *extras)]
    for item in (*sources, NATIVE_MAIN.read_bytes(), header, wrapper, *flags, *opt):
        data = item if isinstance(item, bytes) else str(item).encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    digest.update(_verilator_version().encode())
    key = digest.hexdigest()[:16]
    root = Path(build_root or sim_build_root()).resolve()
    build_dir = root / f"{toplevel}-native-{key}"
    binary = build_dir / "obj" / "sim_main"
    with _file_lock(root / f".{build_dir.name}.lock"):
        if binary.is_file() and (build_dir / "built").is_file():
            return NativeModel(binary, build_dir, toplevel, tuple(ports))
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        shutil.copyfile(source, build_dir / f"{toplevel}.v")
        staged = [build_dir / f"extra{i}_{path.name}" for i, path in enumerate(extras)]
        for path, copy in zip(extras, staged, strict=True):
            shutil.copyfile(path, copy)
        shutil.copyfile(NATIVE_MAIN, build_dir / "sim_main.cpp")
        (build_dir / "sfc_ports.h").write_text(header)
        (build_dir / f"{top}.v").write_text(wrapper)
        command = [
            str(verilator_bin_dir() / "verilator"),
            *flags,
            "-Mdir",
            str(build_dir / "obj"),
            str(build_dir / f"{top}.v"),
            str(build_dir / f"{toplevel}.v"),
            *(str(copy) for copy in staged),
            str(build_dir / "sim_main.cpp"),
        ]
        t0 = time.perf_counter()
        log = build_dir / "build.log"
        with _patched_environ(_tool_environ(opt)), open(log, "w") as out:
            proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0 or not binary.is_file():
            raise VerilatorBuildError(
                f"native build of {toplevel!r} failed; log {log}:\n" + _log_tail(log)
            )
        seconds = time.perf_counter() - t0
        (build_dir / "built").write_text(json.dumps({"seconds": round(seconds, 2), "key": key}))
    return NativeModel(binary, build_dir, toplevel, tuple(ports), True, seconds)


def _verilator_flags(toplevel: str) -> list[str]:
    jobs = str(min(2, os.cpu_count() or 1))
    return [
        "--cc",
        "--exe",
        "--build",
        "--build-jobs",
        jobs,
        "-Wno-lint",
        "-Wno-style",
        "--top-module",
        toplevel,
        "-o",
        "sim_main",
    ]


def engine_model(
    config: Any, *, build_root: str | os.PathLike[str] | None = None, axi: bool = False
) -> NativeModel:
    """The native simulator of ``config``'s generated engine (both cached); ``axi``: of its
    AXI top, driven through the AXI4-Lite and AXI4-Stream ports."""
    from sfc_hls.hw.generate import generate_engine

    gen = generate_engine(config, axi=axi)
    return build_native(
        gen.verilog, gen.manifest["toplevel"], ports_from_manifest(gen.manifest),
        build_root=build_root, clocking=clocking_from_manifest(gen.manifest),
        extra_sources=gen.simulation_sources[1:],
    )  # fmt: skip


def run_layer(
    model: NativeModel,
    streams: Any,
    params: Any,
    x: Any,
    *,
    stride: int = 1,
    replicas: int | None = None,
    seed: int = 0,
    input_pause: float = 0.0,
    output_pause: float = 0.0,
    work_dir: str | os.PathLike[str] | None = None,
    bytes_per_cycle: float | None = None,
    map_input: bool | None = None,
    spatial_weights: bool | None = None,
    act_replay: bool | None = None,
) -> tuple[Any, NativeRun]:
    """One layer on an engine: beats (``streams``, an :class:`~sfc_hls.hw.engine_streams.EngineStreams`)
    -> native run -> the output map ``(N, Cout, Ho, Wo)`` and the run.

    ``map_input``, ``spatial_weights``, ``act_replay``: as for
    :meth:`~sfc_hls.hw.engine_streams.EngineStreams.layer_beats`; a layer whose group's
    activation beats the replay buffer cannot hold runs in chunks of output tiles
    (:meth:`~sfc_hls.hw.engine_streams.EngineStreams.layer_chunks`; not with
    ``act_replay=False``), and the run returned adds up the chunks' cycles.

    ``bytes_per_cycle``: the streams share a memory of that bandwidth
    (:func:`layer_memory`), as :func:`sfc_hls.cycle_model.bandwidth_bound_cycles` models.

    Raises :class:`NativeRunError` when the outputs do not all arrive or the
    engine's status after the layer shows an error (``desc_error``,
    ``overflow``) or a layer still running.
    """
    chunks = streams.layer_chunks(params, x, stride=stride, replicas=replicas,
                                  map_input=map_input, spatial_weights=spatial_weights,
                                  act_replay=act_replay)  # fmt: skip
    runs = []
    for beats in chunks:
        run = model.run(
            beats.inputs(),
            {"o_out": beats.expected_outputs},
            seed=seed,
            input_pause=input_pause,
            output_pause=output_pause,
            work_dir=work_dir,
            memory=None
            if bytes_per_cycle is None
            else layer_memory(
                streams.interface,
                params.mode,
                bytes_per_cycle,
                map_beat_bytes=beats.map_bytes / len(beats.map) if beats.map else None,
            ),  # fmt: skip
        )
        _check_status(streams.interface, run.status)
        runs.append(run)
    n, _, h, w = x.shape
    out = streams.assemble_chunks(
        [r.outputs["o_out"] for r in runs], [c.tile_offset for c in chunks], params, n, h, w,
        stride=stride, schedule=chunks[0].schedule,
    )  # fmt: skip
    return out, _merged(runs)


def _merged(runs: list[NativeRun]) -> NativeRun:
    """One run of a layer run in chunks: the chunks' cycles, time and outputs added up."""
    if len(runs) == 1:
        return runs[0]
    return NativeRun(
        outputs={k: [b for r in runs for b in r.outputs[k]] for k in runs[0].outputs},
        cycles=sum(r.cycles for r in runs),
        ports=runs[-1].ports,
        status=runs[-1].status,
        seconds=sum(r.seconds for r in runs),
        simulated=sum(r.simulated for r in runs),
    )


def _check_status(interface: Any, status: Mapping[str, int]) -> None:
    """:class:`NativeRunError` if the engine (or the AXI top's STATUS and ERROR registers)
    shows an error or a layer still running."""
    if "STATUS" in status:  # the AXI top
        from sfc_hls.hw.axi_registers import STATUS_BITS

        flags = {name.lower(): status["STATUS"] >> bit & 1 for name, bit in STATUS_BITS.items()}
        flags["error_register"] = status["ERROR"]
    else:
        value = interface.layouts["status"].from_bits(status["status"])
        names = ("busy", "desc_error", "overflow", "map_overflow", "replay_overflow")
        fields = {name for name, _ in interface.layouts["status"]}
        flags = {name: int(getattr(value, name)) for name in names if name in fields}
    if any(value for name, value in flags.items() if name != "start_pending"):
        raise NativeRunError(
            "status after the layer: " + " ".join(f"{k}={v}" for k, v in flags.items())
        )
