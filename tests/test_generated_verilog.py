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
from sfc_hls.sim.verilator import LINT_WAIVERS, lint_verilog

SMALL = EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=16, cout_max=4, scale_mode="fixed")
DEFAULT = EngineConfig()


@pytest.fixture(scope="module")
def small_engine():
    return generate_engine(SMALL)


def test_lint_with_documented_waivers(small_engine):
    # Every waiver carries its reason; CASEINCOMPLETE etc. are Amaranth/Yosys idioms.
    assert all(len(reason) > 40 for reason in LINT_WAIVERS.values())
    lint_verilog(small_engine.verilog, toplevel=TOPLEVEL)


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
