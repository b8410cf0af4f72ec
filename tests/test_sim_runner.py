"""Tests of sfc_hls.sim.verilator: cached builds, failure detection, lint, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from amaranth.back import verilog

from sfc_hls.hw.mac_array import MacArray
from sfc_hls.sim.verilator import (
    LINT_WAIVERS,
    LintError,
    SimulationError,
    build_verilator,
    lint_verilog,
    run_cocotb,
)

# A small hand-written design: one build of it is shared by the tests below
# (the runner's cache), so only the first test pays for the Verilator build.
COUNTER_V = textwrap.dedent(
    """\
    module counter (
        input  wire       clk,
        input  wire       rst,
        output reg  [7:0] count
    );
        always @(posedge clk) begin
            if (rst) count <= 8'd0;
            else     count <= count + 8'd1;
        end
    endmodule
    """
)

PASSING_TB = textwrap.dedent(
    """\
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, ReadOnly

    from sfc_hls.sim.verilator import tb_config


    @cocotb.test()
    async def counts(dut):
        cycles = tb_config()["cycles"]
        Clock(dut.clk, 10, unit="ns").start()
        dut.rst.value = 1
        await ClockCycles(dut.clk, 2)
        dut.rst.value = 0
        await ClockCycles(dut.clk, cycles)
        await ReadOnly()
        assert dut.count.value.to_unsigned() == cycles
    """
)

FAILING_TB = PASSING_TB.replace("== cycles", "== cycles + 1")
NOTHING_RAN = r"on counter: (no results file|no test ran)"
IMPORT_ERROR_TB = "import cocotb\nraise ImportError('this test module is broken')\n"
NO_TESTS_TB = "import cocotb\n\nHELPER = 1\n"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runner")
    (path / "counter.v").write_text(COUNTER_V)
    for name, text in [
        ("tb_runner_pass", PASSING_TB),
        ("tb_runner_fail", FAILING_TB),
        ("tb_runner_import_error", IMPORT_ERROR_TB),
        ("tb_runner_no_tests", NO_TESTS_TB),
    ]:
        (path / f"{name}.py").write_text(text)
    return path


@pytest.fixture
def run(workspace, monkeypatch):
    # cocotb's runner exports sys.path as the simulator's PYTHONPATH.
    monkeypatch.syspath_prepend(str(workspace))

    def run(module: str, **kwargs):
        return run_cocotb(
            [workspace / "counter.v"],
            "counter",
            module,
            build_root=workspace / "build",
            config={"cycles": 5},
            **kwargs,
        )

    return run


def _snapshot(directory: Path) -> dict[str, int]:
    return {str(path): path.stat().st_mtime_ns for path in directory.rglob("*") if path.is_file()}


def test_second_run_reuses_the_build(run):
    first = run("tb_runner_pass", seed=3)
    assert first.tests == ("counts",)
    before = _snapshot(first.build_dir)

    second = run("tb_runner_pass", seed=4)
    assert not second.rebuilt
    assert second.build_dir == first.build_dir
    assert second.build_seconds < 1.0
    assert _snapshot(second.build_dir) == before  # nothing rebuilt or touched
    assert second.test_dir != first.test_dir  # a run directory per seed


def test_cache_key_follows_the_verilog_text(workspace, run):
    cached = run("tb_runner_pass").build_dir
    copy = workspace / "copy" / "counter.v"
    copy.parent.mkdir(exist_ok=True)
    copy.write_text(COUNTER_V)
    same_dir, rebuilt = build_verilator([copy], "counter", build_root=workspace / "build")
    assert (same_dir, rebuilt) == (cached, False)  # same text elsewhere: same build


def test_cache_key_follows_every_flag(workspace, run, monkeypatch):
    """A changed optimisation level or build argument rebuilds (in a build directory of its own)."""
    cached = run("tb_runner_pass").build_dir
    monkeypatch.setenv("SFC_HLS_VERILATOR_OPT", "-O1")
    optimised, rebuilt = build_verilator([workspace / "counter.v"], "counter",
                                         build_root=workspace / "build")  # fmt: skip
    assert rebuilt and optimised != cached
    assert '"OPT_FAST": "-O1"' in (optimised / "sfc_hls_build.json").read_text()
    monkeypatch.delenv("SFC_HLS_VERILATOR_OPT")
    other, rebuilt = build_verilator([workspace / "counter.v"], "counter",
                                     build_root=workspace / "build", build_args=["-DNOTHING"])  # fmt: skip
    assert rebuilt and other not in (cached, optimised)
    again, rebuilt = build_verilator([workspace / "counter.v"], "counter",
                                     build_root=workspace / "build")  # fmt: skip
    assert (again, rebuilt) == (cached, False)


def test_only_top_ports_are_public(workspace, run):
    """Builds make the top's ports visible through VPI and nothing else (no --public-flat-rw)."""
    build_dir = run("tb_runner_pass").build_dir
    vlt = (build_dir / "src" / "public_ports.vlt").read_text().splitlines()
    assert vlt[0] == "`verilator_config"
    assert sorted(line.split('"')[-2] for line in vlt[2:]) == ["clk", "count", "rst"]
    assert "--no-public-flat-rw" in (build_dir / "sfc_hls_build.json").read_text()


def test_failing_test_raises(run):
    with pytest.raises(SimulationError, match=r"1 of 1 tests failed: counts"):
        run("tb_runner_fail")


def test_test_module_that_does_not_import_raises(run):
    with pytest.raises(
        SimulationError, match=r"tb_runner_import_error on counter: (no results file|no test ran)"
    ):
        run("tb_runner_import_error")


def test_missing_test_module_raises(run):
    with pytest.raises(SimulationError, match=NOTHING_RAN):
        run("tb_runner_does_not_exist")


def test_module_without_tests_raises(run):
    with pytest.raises(SimulationError, match=NOTHING_RAN):
        run("tb_runner_no_tests")


def test_waves_are_written(run):
    result = run("tb_runner_pass", waves=True)
    assert result.rebuilt or (result.build_dir / "counter").is_file()
    dumps = list(result.test_dir.glob("dump.*"))
    assert len(dumps) == 1 and dumps[0].stat().st_size > 0


def test_bad_waves_argument(run):
    with pytest.raises(ValueError, match=r"waves must be False, True, 'fst' or 'vcd', not 'gif'"):
        run("tb_runner_pass", waves="gif")


def test_lint_passes_with_the_documented_waivers(tmp_path):
    source = tmp_path / "mac_array.v"
    source.write_text(verilog.convert(MacArray(positions=4, lanes=2, cin_max=5), name="mac_array"))
    assert lint_verilog(source, toplevel="mac_array") == ""
    # Every waiver is documented, and the waivers are what makes it pass.
    assert all(len(reason) > 20 for reason in LINT_WAIVERS.values())
    with pytest.raises(LintError, match=r"%Warning-WIDTHEXPAND"):
        lint_verilog(source, toplevel="mac_array", waivers=[])


def test_lint_reports_real_problems(tmp_path, workspace):
    assert lint_verilog(workspace / "counter.v", waivers=[]) == ""
    broken = tmp_path / "broken.v"
    broken.write_text(COUNTER_V.replace("count <= count + 8'd1;", "count <= missing;"))
    with pytest.raises(LintError, match=r"missing"):
        lint_verilog(broken)


def test_command_line(workspace, run):
    run("tb_runner_pass")  # make sure the build is cached
    lint = subprocess.run(
        [sys.executable, "-m", "sfc_hls.sim.verilator", "lint", str(workspace / "counter.v")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stderr
    config = workspace / "cli_config.json"
    config.write_text('{"cycles": 3}')
    command = [
        sys.executable,
        "-m",
        "sfc_hls.sim.verilator",
        "run",
        str(workspace / "counter.v"),
        "--top",
        "counter",
        "--build-root",
        str(workspace / "build"),
        "--config",
        str(config),
    ]
    env_path = {"PYTHONPATH": str(workspace)}
    ok = subprocess.run(
        [*command, "--module", "tb_runner_pass"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env_path},
    )
    assert ok.returncode == 0, ok.stderr
    assert "1 tests passed (counts); build cached" in ok.stdout
    bad = subprocess.run(
        [*command, "--module", "tb_runner_import_error"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env_path},
    )
    assert bad.returncode == 1
    assert "no results file" in bad.stderr or "no test ran" in bad.stderr
