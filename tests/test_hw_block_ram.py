# amaranth: UnusedElaboratable=no

"""RegisteredReadMemory: both lowerings against one Python reference of the contract.

The Amaranth lowering runs in Amaranth's simulator; the ECP5 lowering (DP16KD
instances with their output registers) runs in Icarus with the primitive model
sim/ecp5_cells.v.  Each DP16KD aspect ratio the depth selects is covered.
"""

import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from sfc_hls.hw.block_ram import DP16KD_MODES, RegisteredReadMemory

CELLS = Path(__file__).resolve().parents[1] / "sim" / "ecp5_cells.v"

#: (word bits, depth): one per DP16KD mode (36 .. 1 bits wide), words wider than a block.
CASES = [(72, 128), (40, 512), (20, 1024), (11, 2000), (5, 4096), (3, 8000), (2, 16384)]


def _stimulus(width: int, depth: int, seed: int) -> list[tuple[int, int, int, int, int]]:
    """Cycles of ``(w_en, w_addr, w_data, r_en, r_addr)``: every word written, read back in
    random order with random read enables, some words rewritten and read again.  No word
    is read while written (the contract)."""
    rng = np.random.default_rng(seed)
    bits = random.Random(seed)
    words = min(depth, 300)
    addrs = [int(a) for a in rng.choice(depth, words, replace=False)]
    addrs[:2] = [0, depth - 1] if depth > 1 else [0, 0]
    data = lambda: bits.getrandbits(width)  # noqa: E731
    cycles = [(1, a, data(), 0, 0) for a in addrs]
    for _ in range(2):
        cycles += [(0, 0, 0, int(rng.random() < 0.7), int(rng.choice(addrs))) for _ in range(400)]
        cycles += [(0, 0, 0, 0, 0)] * 3  # reads in flight leave before the rewrite
        cycles += [(1, a, data(), 0, 0) for a in addrs[: words // 2]]
    return cycles


def _expected(cycles) -> list[int]:
    """``r_data`` seen before each edge: the word of the ``r_addr`` two enabled edges ago."""
    mem: dict[int, int] = {}
    read_r = out_r = 0
    seen = []
    for w_en, w_addr, w_data, r_en, r_addr in cycles:
        seen.append(out_r)
        if r_en:
            out_r, read_r = read_r, mem.get(r_addr, 0)
        if w_en:
            mem[w_addr] = w_data
    return seen


def _run_amaranth(dut: RegisteredReadMemory, cycles) -> list[int]:
    seen = []

    async def bench(ctx):
        for w_en, w_addr, w_data, r_en, r_addr in cycles:
            for port, value in ((dut.w_en, w_en), (dut.w_addr, w_addr), (dut.w_data, w_data),
                                (dut.r_en, r_en), (dut.r_addr, r_addr)):  # fmt: skip
                ctx.set(port, value)
            seen.append(ctx.get(dut.r_data))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


_TB = """
module tb;
  reg clk = 0; reg w_en, r_en; reg [{aw}-1:0] w_addr, r_addr; reg [{dw}-1:0] w_data;
  wire [{dw}-1:0] r_data;
  reg [2*{aw}+{dw}+1:0] stim [0:{n}-1];
  integer i, f;
  ram dut(.clk(clk), .rst(1'b0), .w_en(w_en), .w_addr(w_addr), .w_data(w_data),
          .r_en(r_en), .r_addr(r_addr), .r_data(r_data));
  initial begin
    $readmemh("stim.hex", stim);
    f = $fopen("out.txt", "w");
    for (i = 0; i < {n}; i = i + 1) begin
      {{r_en, r_addr, w_en, w_addr, w_data}} = stim[i];
      #1 $fdisplay(f, "%h", r_data);
      #1 clk = 1; #1 clk = 0;
    end
    $fclose(f);
    $finish;
  end
endmodule
"""


def _run_icarus(dut: RegisteredReadMemory, cycles, tmp: Path) -> list[int]:
    aw, dw = dut.w_addr.shape().width, dut.width
    (tmp / "ram.v").write_text(verilog.convert(dut, name="ram", emit_src=False))
    (tmp / "tb.v").write_text(_TB.format(aw=aw, dw=dw, n=len(cycles)))
    words = [(((r_en << aw | r_addr) << 1 | w_en) << aw | w_addr) << dw | w_data
             for w_en, w_addr, w_data, r_en, r_addr in cycles]  # fmt: skip
    (tmp / "stim.hex").write_text("\n".join(f"{w:x}" for w in words) + "\n")
    iverilog = shutil.which("iverilog")
    assert iverilog, "iverilog missing: `make toolchain` installs it"
    for cmd in (
        [iverilog, "-g2012", "-o", "tb.vvp", "tb.v", "ram.v", str(CELLS)],
        ["vvp", "tb.vvp"],
    ):
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "DP16KD model" not in proc.stdout, proc.stdout
    return [int(x, 16) for x in (tmp / "out.txt").read_text().split()]


@pytest.mark.parametrize(("width", "depth"), CASES[:3])
def test_amaranth_lowering_meets_the_contract(width, depth):
    dut = RegisteredReadMemory(width, depth, target="xilinx")
    cycles = _stimulus(width, depth, seed=1)
    assert _run_amaranth(dut, cycles) == _expected(cycles)


@pytest.mark.parametrize(("width", "depth"), CASES, ids=lambda c: str(c))
def test_ecp5_lowering_meets_the_contract(width, depth, tmp_path):
    dut = RegisteredReadMemory(width, depth, target="ecp5")
    assert dut.primitives and dut.blocks == -(-width // dut.mode[0])
    cycles = _stimulus(width, depth, seed=2)
    assert _run_icarus(dut, cycles, tmp_path) == _expected(cycles)


def test_mode_is_the_widest_that_holds_the_depth():
    assert [RegisteredReadMemory(8, d, target="ecp5").mode[0] for d, _ in
            [(512, 0), (513, 0), (1024, 0), (1025, 0), (16384, 0)]] == [36, 18, 18, 9, 1]  # fmt: skip
    assert [mode[1] for mode in DP16KD_MODES] == [512, 1024, 2048, 4096, 8192, 16384]
    deep = RegisteredReadMemory(8, 16385, target="ecp5")
    assert (deep.primitives, deep.blocks) == (False, 0)
    assert not RegisteredReadMemory(8, 64, target="ecp5", primitives=False).primitives


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"shape": 8, "depth": 0, "target": "ecp5"}, ValueError, "depth must be an int >= 1"),
        ({"shape": 8, "depth": 16, "target": "gowin"}, ValueError, "target must be one of"),
    ],
)
def test_bad_parameters_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        RegisteredReadMemory(**kwargs)
