"""The AXI top: cocotbext-axi against the golden model in Verilator, lint, C header, manifest."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sfc_hls.cli import main
from sfc_hls.config import EngineConfig
from sfc_hls.golden import conv2d_int8
from sfc_hls.hw.axi_registers import (
    AXI_REGISTER_TABLE,
    DESCRIPTOR_WINDOW,
    build_parameters,
    c_header,
    descriptor_address,
)
from sfc_hls.hw.engine_streams import EngineStreams
from sfc_hls.hw.generate import generate_engine
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.hw.register_map import REGISTERS, START
from sfc_hls.sim.engine_regression import LayerShape, random_layer
from sfc_hls.sim.native import NativeRunError, engine_model, run_layer
from sfc_hls.sim.verilator import lint_verilog, run_cocotb

# Four output-channel groups in the first layer (cout 7, P_co 2): more than the two banks.
SMALL = EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=16, cout_max=8)
LAYERS = [
    LayerShape(1, 16, 7, 8, 8, True),  # fast, 4 groups, 16 tiles: long enough to stage the next
    LayerShape(1, 5, 3, 9, 7, False, "direct", 3, 2),  # direct 3x3 stride 2
]


def _write_layers(tmp_path, rng):
    entries = []
    for k, shape in enumerate(LAYERS):
        params, x = random_layer(SMALL, shape, rng)
        params.save(tmp_path / f"l{k}.json")
        np.save(tmp_path / f"l{k}.npy", x.astype(np.int8))
        entries.append({"params": str(tmp_path / f"l{k}.json"),
                        "input": str(tmp_path / f"l{k}.npy"), "stride": shape.stride})  # fmt: skip
    return entries


@pytest.mark.parametrize("seed", [5], ids=lambda s: f"seed{s}")
def test_cocotbext_axi_runs_layers_in_dma_order(tmp_path, seed):
    gen = generate_engine(SMALL, name="axi_engine", axi=True)
    report_file = tmp_path / "report.json"
    config = {"engine": SMALL.to_dict(), "layers": _write_layers(tmp_path, np.random.default_rng(seed)),
              "seed": seed, "pause": 0.2, "report_file": str(report_file)}  # fmt: skip
    result = run_cocotb([gen.verilog], "axi_engine", "sfc_hls.sim.tb_axi_engine",
                        config=config, seed=seed)  # fmt: skip
    assert result.tests == ("layers_in_dma_order_with_staged_descriptor",), result.tests
    report = json.loads(report_file.read_text())
    assert report["bit_exact"] and report["gap_cycles"] <= 6  # sim/tb_axi_engine.py says why
    assert report["build_parameters"]["PCO"] == 2
    assert report["registers"]["LAYERS_DONE"] == 2


def test_axi_top_lints_clean_with_the_shipped_vlt(tmp_path):
    main(["generate", "--algo", "wino-2x2-3x3", "--pco", "2", "--cin-max", "16", "--cout-max", "8",
          "--name", "eng", "--axi", "-o", str(tmp_path / "eng")])  # fmt: skip
    out = tmp_path / "eng"
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert files == ["eng.json", "eng.v", "eng.vlt", "eng_regs.h"]
    # Nothing waived on the command line: the shipped .vlt alone makes -Wall clean.
    assert (
        lint_verilog(out / "eng.v", toplevel="eng", waivers=(), config_files=[out / "eng.vlt"])
        == ""
    )
    manifest = json.loads((out / "eng.json").read_text())
    assert manifest["interface"] == "axi" and manifest["toplevel"] == "eng"
    ports = manifest["ports"]
    assert {"aclk", "aresetn", "irq", "s_axi_control_awaddr", "m_axis_out_tlast"} <= set(ports)
    assert all(ports[p]["bits"] % 8 == 0 for p in ports if p.endswith("_tdata"))
    assert manifest["axi"]["build_parameters"] == build_parameters(
        EngineInterface.from_config(SMALL)
    )


def test_c_header_compiles_and_matches_the_table(tmp_path):
    header = c_header(EngineInterface.from_config(SMALL), "eng")
    (tmp_path / "eng_regs.h").write_text(header)
    program = tmp_path / "main.c"
    program.write_text(
        '#include <stdio.h>\n#include "eng_regs.h"\n'
        'int main(void) { printf("%u %u %u %u\\n", ENG_STATUS, ENG_CONFIG_HASH, '
        "ENG_DESC(ENG_DESC_CIN), ENG_VALUE_PCO); return 0; }\n"
    )
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(tmp_path / "main"), str(program)],
                   check=True, cwd=tmp_path)  # fmt: skip
    out = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, check=True)
    offsets = {r.name: r.offset for r in AXI_REGISTER_TABLE}
    assert out.stdout.split() == [str(offsets["STATUS"]), str(offsets["CONFIG_HASH"]),
                                  str(DESCRIPTOR_WINDOW + 4), "2"]  # fmt: skip


def test_descriptor_address_checks_its_argument():
    assert descriptor_address(0x2003) == DESCRIPTOR_WINDOW + 4 * 0x2003
    with pytest.raises(ValueError, match="engine register address must be in"):
        descriptor_address(0x4000)


def test_integration_doc_lists_every_register():
    text = (Path(__file__).resolve().parents[1] / "docs" / "integration.md").read_text()
    for reg in AXI_REGISTER_TABLE:
        assert f"| 0x{reg.offset:02X} | {reg.name} | {reg.access} |" in text, reg.name


def test_native_runner_drives_the_axi_top_bit_exact():
    """The host's RTL backend path (``sfc-hls run --backend rtl --axi``): the native runner
    writes the registers over AXI4-Lite and streams the beats over AXI4-Stream."""
    model, bare = engine_model(SMALL, axi=True), engine_model(SMALL)
    streams = EngineStreams(SMALL)
    rng = np.random.default_rng(7)
    for k, shape in enumerate(LAYERS):
        params, x = random_layer(SMALL, shape, rng)
        want = conv2d_int8(x, params, stride=shape.stride)
        out, run = run_layer(model, streams, params, x, stride=shape.stride, seed=k,
                             input_pause=0.2, output_pause=0.2)  # fmt: skip
        assert np.array_equal(out, want) and run.status["ERROR"] == 0
        _, ref = run_layer(bare, streams, params, x, stride=shape.stride)
        _, fast = run_layer(model, streams, params, x, stride=shape.stride)
        # the same engine behind the bus: only the register writes take longer (3 cycles each)
        writes = len(streams.layer_beats(params, x, stride=shape.stride).cfg)
        assert ref.cycles < fast.cycles <= ref.cycles + 2 * writes + 4, (ref.cycles, fast.cycles)


def test_native_runner_reports_a_refused_register_write():
    model = engine_model(SMALL, axi=True)
    streams = EngineStreams(SMALL)
    params, x = random_layer(SMALL, LAYERS[0], np.random.default_rng(8))
    beats = streams.layer_beats(params, x)
    cfg = EngineInterface.from_config(SMALL).layouts["cfg"]
    start = cfg.const({"addr": REGISTERS["CONTROL"], "data": START}).as_value().value
    cin = cfg.const({"addr": REGISTERS["CIN"], "data": 1}).as_value().value
    # START again while the layer runs commits a second layer (pending); the next write is refused
    inputs = {"i_cfg": [*beats.cfg, start, cin], "i_chan": beats.chan,
              "i_weight": beats.weight, "i_act": beats.act}  # fmt: skip
    with pytest.raises(NativeRunError, match="1 bus error responses"):
        model.run(inputs, {"o_out": beats.expected_outputs})
