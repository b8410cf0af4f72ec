# amaranth: UnusedElaboratable=no

"""Generated engine Verilog: Verilator lint, Icarus compile, Yosys synth_xilinx to the end."""

import shutil
import subprocess

import pytest
from amaranth.back import verilog

from sfc_hls.config import EngineConfig
from sfc_hls.hw.generate import TOPLEVEL, generate_engine
from sfc_hls.hw.synthesis import SynthesisError, synthesize
from sfc_hls.hw.transform import InputTransform, OutputTransform
from sfc_hls.sim.verilator import LINT_WAIVERS, LintError, lint_verilog

SMALL = EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=16, cout_max=4, scale_mode="fixed")
DEFAULT = EngineConfig()


@pytest.fixture(scope="module")
def small_engine():
    return generate_engine(SMALL)


def test_lint_with_documented_waivers(small_engine):
    # Every waiver carries its reason; CASEINCOMPLETE etc. are Amaranth/Yosys idioms.
    assert all(len(reason) > 40 for reason in LINT_WAIVERS.values())
    lint_verilog(small_engine.verilog, toplevel=TOPLEVEL)


@pytest.mark.parametrize("algorithm", ["wino-2x2-3x3", "sfc6-7x7-3x3"])
def test_engine_with_every_buffer_lints(algorithm):
    """An engine with a feature-map buffer (its i_map port, banks and tile window), a
    weight transform (row select, D G networks, shift choice) and a replay buffer is as clean."""
    config = EngineConfig(algorithm=algorithm, pco=2, cin_max=16, cout_max=4, map_kib=8,
                          weight_transform=True, replay_beats=64)  # fmt: skip
    lint_verilog(generate_engine(config).verilog, toplevel=TOPLEVEL)


def test_default_engine_lints():
    gen = generate_engine(DEFAULT)
    lint_verilog(gen.verilog, toplevel=TOPLEVEL)
    assert gen.manifest["multipliers"]["mac_array"] == 132 * 4
    assert gen.manifest["multipliers"]["mac_array_dsp"] == 132 * 2  # two MACs per DSP
    # The longest accumulation is a direct 3x3 layer at cin_max = 256: 2304 products of at
    # most 128 * 128, 37,748,736 < 2^26, so 27 bits (a fast layer alone would need 24).
    assert gen.manifest["widths"]["acc_bits"] == 27


def test_icarus_compiles(small_engine, tmp_path):
    iverilog = shutil.which("iverilog")
    assert iverilog, "iverilog missing: `make toolchain` installs it"
    proc = subprocess.run(
        [
            iverilog,
            "-g2012",
            "-o",
            str(tmp_path / "engine.vvp"),
            "-s",
            TOPLEVEL,
            str(small_engine.verilog),
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_synth_xilinx_maps_macs_to_dsps(small_engine):
    result = synthesize(small_engine.verilog, TOPLEVEL, family="xcup")
    man = small_engine.manifest
    # MAC products, rescale products (one per position) and output products
    # (two DSPs each for 32x16) are the only multipliers in the design.
    assert result.dsps >= man["multipliers"]["mac_array_dsp"]
    assert result.luts > 0 and result.ffs > 0


def test_transform_units_use_no_dsp(tmp_path):
    # Adder-only transforms: synthesis finds no multiplier to map.
    for unit in (InputTransform("sfc4-4x4-3x3"), OutputTransform("sfc4-4x4-3x3", z_bits=24)):
        path = tmp_path / f"{type(unit).__name__}.v"
        path.write_text(verilog.convert(unit, name="unit", emit_src=False))
        result = synthesize(path, "unit", family="xcup")
        assert result.dsps == 0, result.cells
        assert result.luts > 0


def test_synthesis_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="family must be one of"):
        synthesize(tmp_path / "x.v", "top", family="stratix")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        synthesize(tmp_path / "missing.v", "top")
    bad = tmp_path / "bad.v"
    bad.write_text("module top(input a; endmodule\n")
    with pytest.raises(SynthesisError, match="failed"):
        synthesize(bad, "top")


# -- engine names and the shipped lint config (issue #15) ---------------------------------

OTHER = EngineConfig(algorithm="sfc4-4x4-3x3", pco=2, cin_max=8, cout_max=4)


def test_shipped_lint_config_makes_wall_clean(tmp_path):
    gen = generate_engine(SMALL, tmp_path / "out", name="eng_a")
    vlt = tmp_path / "out" / "eng_a.vlt"
    assert gen.manifest["toplevel"] == "eng_a"
    assert gen.manifest["lint"]["command"] == "verilator --lint-only -Wall eng_a.vlt eng_a.v"
    # Every waiver is justified by a comment right above it.
    lines = vlt.read_text().splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("lint_off")]
    assert len(rules) == len(LINT_WAIVERS) and all(lines[i - 1].startswith("//") for i in rules)
    # Nothing waived on the command line: the .vlt alone makes -Wall clean.
    assert lint_verilog(gen.verilog, toplevel="eng_a", waivers=(), config_files=[vlt]) == ""
    with pytest.raises(LintError, match="WIDTHEXPAND"):  # and it is needed
        lint_verilog(gen.verilog, toplevel="eng_a", waivers=())


def _icarus(tmp_path, sources, tops):
    cmd = ["iverilog", "-g2012", "-o", str(tmp_path / "both.vvp")]
    cmd += [arg for top in tops for arg in ("-s", top)] + [str(s) for s in sources]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_two_engines_with_different_names_elaborate_together(tmp_path):
    a = generate_engine(SMALL, tmp_path / "a", name="eng_a")
    b = generate_engine(OTHER, tmp_path / "b", name="eng_b")
    text = b.verilog.read_text()
    assert "module eng_b" in text and "module \\eng_b.mac_array" in text
    proc = _icarus(tmp_path, [a.verilog, b.verilog], ["eng_a", "eng_b"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    vlts = [tmp_path / "a" / "eng_a.vlt", tmp_path / "b" / "eng_b.vlt"]
    out = lint_verilog(a.verilog, waivers=(), config_files=vlts, extra_sources=[b.verilog],
                       flags=["-Wno-MULTITOP"])  # fmt: skip
    assert out == ""
    # The same name twice collides, which is what the names are for.
    c = generate_engine(OTHER, tmp_path / "c", name="eng_a")
    clash = _icarus(tmp_path, [a.verilog, c.verilog], ["eng_a"])
    assert clash.returncode != 0 and "already" in clash.stderr


@pytest.mark.parametrize("name", ["9lives", "has-dash", "module", "", "x" * 64, "a.b"])
def test_bad_engine_name_is_one_line_before_any_work(name, tmp_path, capsys):
    from sfc_hls.cli import main

    status = main(["generate", "--algo", "wino-2x2-3x3", "--pco", "2", "--name", name,
                   "-o", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and "--name must be a Verilog identifier" in err
    assert not (tmp_path / "out").exists()
