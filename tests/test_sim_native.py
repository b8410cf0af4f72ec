"""sfc_hls.sim.native: the C++ stream runner on a small hand-written design and on an engine."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import random_layer_quant
from sfc_hls.golden import conv2d_int8
from sfc_hls.hw.engine_streams import EngineStreams
from sfc_hls.sim.native import (
    NativeRunError,
    PortSpec,
    build_native,
    engine_model,
    read_hex,
    run_layer,
    write_hex,
)

# A two-stage stream pipeline adding 1 to 70-bit beats (a wide port), with a
# status output counting the transfers: enough to check ordering, stalls and widths.
ADDER_V = textwrap.dedent(
    """\
    module adder (
        input  wire        clk,
        input  wire        rst,
        input  wire [69:0] i_x__payload,
        input  wire        i_x__valid,
        output wire        i_x__ready,
        output reg  [69:0] o_y__payload,
        output reg         o_y__valid,
        input  wire        o_y__ready,
        output reg  [15:0] count
    );
        assign i_x__ready = ~o_y__valid | o_y__ready;
        always @(posedge clk) begin
            if (rst) begin
                o_y__valid <= 1'b0;
                count <= 16'd0;
            end else if (i_x__ready) begin
                o_y__valid <= i_x__valid;
                o_y__payload <= i_x__payload + 70'd1;
                if (i_x__valid) count <= count + 16'd1;
            end
        end
    endmodule
    """
)
PORTS = (
    PortSpec("i_x", "source", 70),
    PortSpec("o_y", "sink", 70),
    PortSpec("count", "status", 16),
)


@pytest.fixture(scope="module")
def adder(tmp_path_factory):
    path = tmp_path_factory.mktemp("native")
    (path / "adder.v").write_text(ADDER_V)
    return build_native(path / "adder.v", "adder", PORTS, build_root=path / "build")


@pytest.mark.parametrize("pause", [0.0, 0.4])
def test_beats_in_order_with_stalls(adder, pause):
    rng = np.random.default_rng(5)
    beats = [int(v) for v in rng.integers(0, 1 << 62, 200)] + [(1 << 70) - 2, (1 << 69) + 12345]
    run = adder.run({"i_x": beats}, {"o_y": len(beats)}, seed=7, input_pause=pause,
                    output_pause=pause)  # fmt: skip
    assert run.outputs["o_y"] == [b + 1 for b in beats]
    assert run.status["count"] == len(beats)
    assert run.ports["i_x"]["beats"] == len(beats)
    if pause == 0:
        assert run.cycles == len(beats) + 1  # one beat per cycle, one cycle of latency
    else:
        assert run.cycles > 1.5 * len(beats)  # stalls on both sides


def test_same_seed_same_stalls(adder):
    beats = list(range(300))
    runs = [adder.run({"i_x": beats}, {"o_y": 300}, seed=s, input_pause=0.3, output_pause=0.3)
            for s in (1, 1, 2)]  # fmt: skip
    assert runs[0].cycles == runs[1].cycles != runs[2].cycles


def test_incomplete_outputs_and_bad_arguments(adder):
    with pytest.raises(NativeRunError, match=r"outputs incomplete .*'o_y': \(3, 5\)"):
        adder.run({"i_x": [1, 2, 3]}, {"o_y": 5}, max_cycles=200)
    with pytest.raises(ValueError, match="'o_y' is not an input stream of adder"):
        adder.run({"o_y": [1]}, {})
    with pytest.raises(ValueError, match="'i_x' is not an output stream of adder"):
        adder.run({}, {"i_x": 1})


def test_hex_files_round_trip(tmp_path):
    values = [0, 1, (1 << 70) - 1, 0xABC]
    write_hex(tmp_path / "x.hex", values, 70)
    assert (tmp_path / "x.hex").read_text().splitlines()[1] == "0" * 17 + "1"  # 70 bits: 18 digits
    assert read_hex(tmp_path / "x.hex") == values


def test_engine_layer_bit_exact_with_stalls():
    """A generated engine through run_layer: output equals the golden model, stalls included."""
    config = EngineConfig(algorithm="wino-2x2-3x3", pco=2, cin_max=16, cout_max=8)
    model = engine_model(config)
    rng = np.random.default_rng(3)
    params = random_layer_quant(config, 5, 7, rng)
    x = rng.integers(-128, 128, size=(2, 5, 9, 6))
    out, run = run_layer(model, EngineStreams(config), params, x, seed=4, input_pause=0.3,
                         output_pause=0.3)  # fmt: skip
    assert np.array_equal(out, conv2d_int8(x, params))
    assert run.ports["o_out"]["beats"] == 2 * 5 * 3 * 7
