# amaranth: UnusedElaboratable=no

"""PipelinedMultiplier: exact products after `latency` enabled cycles, on both lowerings.

The Xilinx lowering runs in Amaranth's simulator; the ECP5 lowering (MULT18X18D
instances) runs in Icarus with the primitive model sim/ecp5_cells.v.  Both are
compared with one Python reference of the stall contract, exhaustively over
int8 x int8 and with random and extreme operands for the wide (limbed) shapes.
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Shape, signed, unsigned
from amaranth.sim import Simulator

from sfc_hls.hw.multiplier import LIMB_BITS, PipelinedMultiplier

CELLS = Path(__file__).resolve().parents[1] / "sim" / "ecp5_cells.v"

#: (a_shape, b_shape): the MAC array's int8 x int8, the rescale's acc x mult and
#: the output quantizer's (y + bias) x out_mult, and a three-limb operand.
SHAPES = [
    (signed(8), signed(8)),
    (signed(25), unsigned(16)),
    (signed(29), unsigned(16)),
    (signed(36), signed(18)),
]


def _range(shape: Shape) -> tuple[int, int]:
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def _stimulus(a_shape: Shape, b_shape: Shape, n: int, seed: int):
    """Operands (extremes first, then random) and a random enable pattern."""
    rng = np.random.default_rng(seed)
    (alo, ahi), (blo, bhi) = _range(a_shape), _range(b_shape)
    edges = [(a, b) for a in (alo, ahi, 0, -1 if a_shape.signed else 1) for b in (blo, bhi, 0, 1)]
    a = [int(x) for x in rng.integers(alo, ahi, n, endpoint=True)]
    b = [int(x) for x in rng.integers(blo, bhi, n, endpoint=True)]
    a[: len(edges)] = [e[0] for e in edges]
    b[: len(edges)] = [e[1] for e in edges]
    enable = [int(x) for x in rng.random(n) < 0.75]
    return a, b, enable


def _expected(a: list, b: list, enable: list, latency: int) -> list:
    """``p`` seen before each clock edge: the product of the operands sampled
    ``latency`` enabled edges earlier (0 until then)."""
    taken, out = [], []
    for ai, bi, en in zip(a, b, enable, strict=True):
        out.append(taken[-latency][0] * taken[-latency][1] if len(taken) >= latency else 0)
        if en:
            taken.append((ai, bi))
    return out


def _run_amaranth(dut: PipelinedMultiplier, a, b, enable) -> list:
    seen = []

    async def bench(ctx):
        for ai, bi, en in zip(a, b, enable, strict=True):
            ctx.set(dut.a, ai)
            ctx.set(dut.b, bi)
            ctx.set(dut.enable, en)
            seen.append(ctx.get(dut.p))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


_TB = """
module tb;
  reg clk = 0; reg [{aw}-1:0] a; reg [{bw}-1:0] b; reg en;
  wire [{pw}-1:0] p;
  reg [{aw}+{bw}:0] stim [0:{n}-1];
  integer i, f;
  mul dut(.clk(clk), .rst(1'b0), .a(a), .b(b), .enable(en), .p(p));
  initial begin
    $readmemh("stim.hex", stim);
    f = $fopen("p.txt", "w");
    for (i = 0; i < {n}; i = i + 1) begin
      {{en, b, a}} = stim[i];
      #1 $fdisplay(f, "%h", p);
      #1 clk = 1; #1 clk = 0;
    end
    $fclose(f);
    $finish;
  end
endmodule
"""


def _run_icarus(dut: PipelinedMultiplier, a, b, enable, tmp: Path) -> list:
    aw, bw, pw = dut.a_shape.width, dut.b_shape.width, dut.p.shape().width
    (tmp / "mul.v").write_text(verilog.convert(dut, name="mul", emit_src=False))
    (tmp / "tb.v").write_text(_TB.format(aw=aw, bw=bw, pw=pw, n=len(a)))
    words = [(en << (aw + bw)) | ((bi % (1 << bw)) << aw) | (ai % (1 << aw))
             for ai, bi, en in zip(a, b, enable, strict=True)]  # fmt: skip
    (tmp / "stim.hex").write_text("\n".join(f"{w:x}" for w in words) + "\n")
    iverilog = shutil.which("iverilog")
    assert iverilog, "iverilog missing: `make toolchain` installs it"
    for cmd in (
        [iverilog, "-g2012", "-o", "tb.vvp", "tb.v", "mul.v", str(CELLS)],
        ["vvp", "tb.vvp"],
    ):
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "MULT18X18D model" not in proc.stdout, proc.stdout
    raw = [int(x, 16) for x in (tmp / "p.txt").read_text().split()]
    return [v - (1 << pw) if v >> (pw - 1) else v for v in raw]


@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_xilinx_lowering_is_exact(shapes):
    dut = PipelinedMultiplier(*shapes, target="xilinx")
    a, b, enable = _stimulus(*shapes, n=400, seed=1)
    assert _run_amaranth(dut, a, b, enable) == _expected(a, b, enable, dut.latency)


@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_ecp5_lowering_is_exact(shapes, tmp_path):
    dut = PipelinedMultiplier(*shapes, target="ecp5")
    a, b, enable = _stimulus(*shapes, n=3000, seed=2)
    assert _run_icarus(dut, a, b, enable, tmp_path) == _expected(a, b, enable, dut.latency)


def test_ecp5_lowering_int8_exhaustive(tmp_path):
    # Every int8 x int8 pair (the MAC array's multiply), with stalls in between.
    dut = PipelinedMultiplier(signed(8), signed(8), target="ecp5")
    grid = np.arange(-128, 128)
    a = [int(x) for x in np.repeat(grid, 256)]
    b = [int(x) for x in np.tile(grid, 256)]
    enable = [int(i % 7 != 3) for i in range(len(a))]
    assert _run_icarus(dut, a, b, enable, tmp_path) == _expected(a, b, enable, dut.latency)


def test_limbs_and_latency():
    one = PipelinedMultiplier(signed(18), unsigned(17), target="ecp5")
    two = PipelinedMultiplier(signed(18 + LIMB_BITS), signed(18), target="ecp5")
    three = PipelinedMultiplier(signed(19 + LIMB_BITS), signed(18), target="ecp5")
    assert (one.limbs, one.latency) == (1, 2)
    assert (two.limbs, two.latency) == (2, 3)
    assert (three.limbs, three.latency) == (3, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"a_shape": signed(8), "b_shape": signed(19), "target": "ecp5"}, "b_shape signed(19)"),
        ({"a_shape": signed(8), "b_shape": unsigned(18), "target": "xilinx"}, "needs 19 signed"),
        ({"a_shape": signed(8), "b_shape": signed(8), "target": "ice40"}, "target must be one of"),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PipelinedMultiplier(**kwargs)
