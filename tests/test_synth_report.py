# amaranth: UnusedElaboratable=no

"""`sfc-hls synth` report: real Yosys runs on a small engine's blocks, argument errors."""

import argparse
import json

import pytest

from sfc_hls.config import EngineConfig
from sfc_hls.hw.synth_report import (
    BLOCKS,
    RESOURCES,
    add_arguments,
    ecp5_fmax,
    ecp5_fmax_cached,
    format_report,
    logic_depth,
    logic_depth_cached,
    run,
    synth_report,
    yosys_version,
)
from sfc_hls.hw.synthesis import SynthesisError, SynthesisResult

SMALL = EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=16, cout_max=4)


def test_memories_counted_as_the_device_spends_them():
    # Distributed RAM is LUTs (8 per RAM64M8/RAM32M16 slice), block RAM in 18 Kb units.
    cells = {"LUT6": 10, "LUT3": 5, "RAM64M8": 2, "RAM32M16": 1, "RAMB36E2": 3, "RAMB18E2": 4}
    result = SynthesisResult("xcup", "top", cells, 1.0)
    assert (result.luts, result.lutram_luts, result.brams) == (15 + 24, 24, 10)
    ecp5 = SynthesisResult("ecp5", "top", {"LUT4": 7, "TRELLIS_DPR16X4": 2, "DP16KD": 3}, 1.0)
    assert (ecp5.luts, ecp5.lutram_luts, ecp5.brams) == (7 + 12, 12, 3)
    summary = result.summary()
    assert (summary["LUT"], summary["LUTRAM"], summary["BRAM"]) == (39, 24, 10)


def test_unknown_memory_cell_is_an_error_not_a_silent_zero():
    result = SynthesisResult("xcup", "top", {"LUT6": 1, "RAM16X8Q": 1}, 1.0)
    with pytest.raises(SynthesisError, match="memory cell 'RAM16X8Q' of top .* not counted"):
        result.summary()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_blocks_from_real_yosys_runs():
    # cache=False: every number below comes from a Yosys run in this test.
    report = synth_report(
        SMALL,
        blocks=("mac_array", "input_transform", "output_transform"),
        whole=False,
        cache=False,
        jobs=2,
    )
    assert "Yosys" in report["tool"]["yosys"] == yosys_version()
    blocks = report["blocks"]
    assert set(blocks) == {"mac_array", "input_transform", "output_transform"}
    # The MAC array's multipliers map to DSPs, one per packed pair of products
    # (P_co = 2: one pair per position, macs_per_dsp = 2 by default).
    assert report["multipliers"]["mac_array"] == 16 * 2
    assert blocks["mac_array"]["DSP"] == report["multipliers"]["mac_array_dsp"] == 16
    # Adder-only transforms: no DSP, some LUTs.
    for name in ("input_transform", "output_transform"):
        assert blocks[name]["DSP"] == 0 and blocks[name]["LUT"] > 0, blocks[name]
    assert report["transforms"]["DSP"] == 0
    assert "LUT_share_of_engine" not in report["transforms"]  # no whole-engine run
    text = format_report(report)
    assert "mac_array" in text and "adder-only transforms" in text


def test_xc7_family_maps_the_mac_array_to_dsp48e1():
    # 7-series: the same blocks through `synth_xilinx -family xc7` (DSP48E1, RAMB18E1).
    report = synth_report(
        SMALL, family="xc7", blocks=("mac_array", "input_transform"), whole=False, cache=False
    )
    assert report["family"] == "xc7"
    assert report["blocks"]["mac_array"]["DSP"] == 16  # the 25-bit packed weight fits A
    assert report["blocks"]["input_transform"]["DSP"] == 0


@pytest.mark.slow
def test_whole_engine_report_and_cli_json(tmp_path, capsys):
    out = tmp_path / "synth.json"
    assert run(_args("--algo", "wino-2x2-3x3", "--pco", "2", "--cin-max", "16",
                     "--cout-max", "4", "--json", str(out), "--jobs", "2")) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert set(report["blocks"]) == set(BLOCKS)
    total, other = report["total"], report["other"]
    for k in RESOURCES:
        assert total[k] == other[k] + sum(b[k] for b in report["blocks"].values())
    assert total["DSP"] >= report["multipliers"]["mac_array_dsp"] > 0
    share = report["transforms"]["LUT_share_of_engine"]
    assert 0 < share < 1 and report["transforms"]["DSP"] == 0
    assert "total (whole engine)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "nosuch-3x3", "--pco", "2"], "nosuch"),
        (["--algo", "wino-2x2-3x3", "--pco", "0"], "pco must be an int in"),
        (["--algo", "wino-2x2-3x3", "--pco", "3", "--cout-max", "4"], "pco must divide cout_max"),
        (["--algo", "wino-2x2-3x3", "--pco", "2", "--jobs", "0"], "--jobs must be >= 1"),
        (["--algo", "wino-2x2-3x3", "--pco", "2", "--no-blocks", "--blocks-only"], "nothing"),
        (["--algo", "sfc6-7-3", "--pco", "2"], "2D"),
        (
            [
                "--algo",
                "wino-2x2-3x3",
                "--pco",
                "2",
                "--target",
                "ecp5",
                "--blocks-only",
                "--logic-depth",
            ],
            "--blocks-only, --logic-depth: Xilinx synthesis options",
        ),
        (
            ["--algo", "wino-2x2-3x3", "--pco", "2", "--target", "ecp5", "--macs-per-dsp", "2"],
            "target='ecp5' has 18x18 multipliers",
        ),
    ],
)
def test_argument_errors(argv, message, capsys, tmp_path):
    from sfc_hls.cli import main

    assert main(["synth", *argv, "--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sfc-hls synth: error:") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "r.json").exists()


def test_json_directory_refused_before_synthesis(capsys, tmp_path):
    from sfc_hls.cli import main

    argv = ["synth", "--algo", "wino-2x2-3x3", "--pco", "2", "--json", str(tmp_path)]
    assert main(argv) == 2  # would take minutes of Yosys if checked only at the end
    assert "is a directory" in capsys.readouterr().err


def test_parser_rejects_bad_choices(capsys):
    with pytest.raises(SystemExit):
        _args("--algo", "wino-2x2-3x3", "--pco", "2", "--family", "stratix")
    with pytest.raises(SystemExit):
        _args("--pco", "2")  # --algo is required
    with pytest.raises(SystemExit):
        _args("--algo", "wino-2x2-3x3", "--pco", "2", "--blocks", "fpu")


def test_synth_report_errors():
    with pytest.raises(TypeError, match="config must be an EngineConfig"):
        synth_report({"algorithm": "wino-2x2-3x3"})
    with pytest.raises(ValueError, match="family must be one of"):
        synth_report(SMALL, family="ecp5")
    with pytest.raises(ValueError, match="unknown blocks"):
        synth_report(SMALL, blocks=("fpu",))
    with pytest.raises(ValueError, match="nothing to synthesize"):
        synth_report(SMALL, blocks=False, whole=False)
    with pytest.raises(ValueError, match="jobs must be"):
        synth_report(SMALL, jobs=0)


PIPELINED_ADDER = """
module pipelined_adder(input clk, input [15:0] a, input [15:0] b, output reg [16:0] s);
  reg [15:0] ra, rb;
  always @(posedge clk) begin ra <= a; rb <= b; s <= ra + rb; end
endmodule
"""


def test_ecp5_fmax_places_and_routes(tmp_path):
    # A real synth_ecp5 + nextpnr-ecp5 run (the path `sfc-hls synth --ecp5`
    # takes on a whole engine) on a design small enough for a test.
    src = tmp_path / "adder.v"
    src.write_text(PIPELINED_ADDER)
    out = ecp5_fmax(src, "pipelined_adder")
    assert out["fmax_mhz"] is not None, out
    # A registered 16-bit carry chain runs well above 100 MHz on any ECP5
    # speed grade and far below the fabric limit.
    assert 100 < out["fmax_mhz"] < 1000
    assert out["device"] == "LFE5U-85F CABGA381"
    assert out["utilization"]["TRELLIS_FF"]["used"] >= 17
    path = out["critical_path"]
    # The path starts at an input register of the adder and runs through the carry chain.
    assert path["from"].startswith(("ra", "rb")) and path["logic_levels"] >= 2
    assert abs(path["delay_ns"] - path["logic_ns"] - path["routing_ns"]) < 2.0  # + clk-to-q, setup
    assert path["delay_ns"] <= 1000 / out["fmax_mhz"] + 1e-3


def test_ecp5_fmax_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ecp5_fmax(tmp_path / "missing.v", "top")
    src = tmp_path / "adder.v"
    src.write_text(PIPELINED_ADDER)
    with pytest.raises(
        ValueError, match=r"device must be one of \('25k', '45k', '85k'\), got '12k'"
    ):
        ecp5_fmax(src, "pipelined_adder", device="12k")


def test_ecp5_fmax_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("SFC_HLS_CACHE", str(tmp_path))
    first = ecp5_fmax_cached(PIPELINED_ADDER, "pipelined_adder")
    again = ecp5_fmax_cached(PIPELINED_ADDER, "pipelined_adder")
    assert (first["cached"], again["cached"]) == (False, True)
    assert again["fmax_mhz"] == first["fmax_mhz"] is not None
    # Different Verilog: a new run, not the cached result.
    other = ecp5_fmax_cached(PIPELINED_ADDER.replace("ra + rb", "ra - rb"), "pipelined_adder")
    assert other["cached"] is False
    assert len(list((tmp_path / "synth").glob("pipelined_adder-ecp5-*.json"))) == 2


def _adder(width: int, *, split: bool = False) -> str:
    """A registered ``width``-bit adder; ``split`` adds the halves in two register stages."""
    if not split:
        body = "s <= ra + rb;"
    else:
        h = width // 2
        body = (
            f"lo <= ra[{h - 1}:0] + rb[{h - 1}:0]; hi_a <= ra[{width - 1}:{h}]; "
            f"hi_b <= rb[{width - 1}:{h}]; s <= {{hi_a + hi_b + lo[{h}], lo[{h - 1}:0]}};"
        )
    return f"""
module adder(input clk, input [{width - 1}:0] a, b, output reg [{width}:0] s);
  reg [{width - 1}:0] ra, rb; reg [{width // 2}:0] lo; reg [{width // 2 - 1}:0] hi_a, hi_b;
  always @(posedge clk) begin ra <= a; rb <= b; {body} end
endmodule
"""


def test_logic_depth_counts_cells_between_registers(tmp_path, monkeypatch):
    # Real synth_xilinx + ltp runs: an AND of two registers is one LUT; a
    # 64-bit add is a LUT level and a carry chain (Yosys 0.23 maps xcup adders
    # to CARRY4 cells, 4 bits each: 1 + 17 cells; CARRY8 would give 1 + 9); the
    # same add split by a register stage costs one 32-bit chain (1 + 9).
    monkeypatch.setenv("SFC_HLS_CACHE", str(tmp_path))
    and_gate = """
module and_gate(input clk, input a, b, output reg y);
  reg ra, rb;
  always @(posedge clk) begin ra <= a; rb <= b; y <= ra & rb; end
endmodule
"""
    assert logic_depth_cached(and_gate, "and_gate")["max_logic_depth"] == 1
    whole = logic_depth_cached(_adder(64), "adder")
    split = logic_depth_cached(_adder(64, split=True), "adder")
    assert whole["max_logic_depth"] in (1 + 9, 1 + 17), whole
    assert split["max_logic_depth"] in (1 + 5, 1 + 9), split
    assert split["max_logic_depth"] < whole["max_logic_depth"]
    # The per-register view agrees with ltp and names the register at the end of the path.
    assert max(whole["deepest"].values()) == whole["max_logic_depth"] == whole["deepest"]["s"]
    assert split["deepest"]["lo"] <= split["max_logic_depth"]
    again = logic_depth_cached(_adder(64), "adder")
    assert (whole["cached"], again["cached"]) == (False, True)
    assert again["max_logic_depth"] == whole["max_logic_depth"]


def test_logic_depth_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        logic_depth(tmp_path / "missing.v", "top")
    src = tmp_path / "adder.v"
    src.write_text(PIPELINED_ADDER)
    with pytest.raises(ValueError, match=r"family must be one of \('xcup', 'xc7'\), got 'ecp5'"):
        logic_depth(src, "pipelined_adder", family="ecp5")


def test_xilinx_report_refuses_an_ecp5_engine():
    # The ECP5 netlist instantiates MULT18X18D blocks synth_xilinx cannot map.
    with pytest.raises(ValueError, match=r"config.target='ecp5' instantiates ECP5 blocks"):
        synth_report(EngineConfig(algorithm="wino-2x2-3x3", pco=2, target="ecp5"))
