"""A simple dual-port block RAM whose read runs through the block's own output register.

An ECP5 DP16KD read without its output register (``REGMODE = "NOREG"``, the only
mode Yosys 0.23 ``synth_ecp5`` infers) has a clock-to-output of 5.6-5.8 ns in
nextpnr's timing model at speed 6: with the route to the next register it was the
whole engine's longest path (the weight buffer's rows, 8.9 ns).  With the block's
output register (``REGMODE = "OUTREG"``) it is 0.96 ns.  :class:`RegisteredReadMemory`
states that register: on ECP5 it instantiates DP16KD blocks with ``OUTREG``; on
Xilinx (and wherever ``primitives=False``) it is an Amaranth ``Memory`` followed by a
fabric register with the same enable, which Yosys and Vivado map to a block RAM and
its output register.  Both have the same contract; ``sim/ecp5_cells.v`` models the
DP16KD subset used here so that ECP5 engines simulate in Verilator and Icarus.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Shape, ShapeLike, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sfc_hls.arguments import check_int
from sfc_hls.config import check_target

__all__ = ["DP16KD_MODES", "RegisteredReadMemory"]

#: DP16KD aspect ratios, widest first: ``(data bits, words, low address bits unused)``.
#: 36 bits is the pseudo-dual-port mode (write on port A, read on port B, both
#: ports' data pins); the others are the true dual-port modes, port A writing and
#: port B reading.
DP16KD_MODES = (
    (36, 512, 5),
    (18, 1024, 4),
    (9, 2048, 3),
    (4, 4096, 2),
    (2, 8192, 1),
    (1, 16384, 0),
)


class RegisteredReadMemory(wiring.Component):
    """``depth`` words of ``shape``: one write port, one read port with two registered stages.

    Parameters
    ----------
    shape : ShapeLike
        A word (any width; on ECP5 spread over DP16KD blocks side by side).
    depth : int
        Words.  On ECP5 the blocks take the widest mode with ``depth`` words (at most
        16384; a deeper memory takes the Amaranth lowering).
    target : str
        ``"xilinx"`` or ``"ecp5"``.
    primitives : bool
        ``True`` (default): on ECP5 DP16KD instances.  ``False``: the Amaranth
        lowering on every target (the same contract; it runs in Amaranth's simulator).

    Ports
    -----
    w_addr : In(range(depth)), w_data : In(shape), w_en : In(1)
        A write at the clock edge where ``w_en`` is high.
    r_addr : In(range(depth)), r_en : In(1)
        Read address and the enable of both read stages: on an edge with ``r_en``
        high the memory reads ``r_addr`` into its read register and the output
        register takes the read register (a two-stage stall-together pipeline).
    r_data : Out(shape)
        The output register: the word at the ``r_addr`` of two enabled edges ago.
        A word must not be written while a read of it is in flight.

    Attributes
    ----------
    latency : int
        2 (enabled edges from ``r_addr`` to ``r_data``).
    blocks : int
        DP16KD blocks of the ECP5 lowering (0 for the Amaranth lowering).
    """

    latency = 2

    def __init__(
        self, shape: ShapeLike, depth: int, *, target: str, primitives: bool = True
    ) -> None:
        check_target(target)
        self.shape = shape  # the ports keep a layout's view
        self.width = Shape.cast(shape).width
        self.depth = check_int("depth", depth, 1)
        self.target = target
        # Deeper than one DP16KD: the Amaranth lowering (Yosys cascades the blocks).
        fitting = [mode for mode in DP16KD_MODES if mode[1] >= self.depth]
        self.primitives = primitives and target == "ecp5" and bool(fitting)
        self.mode: tuple[int, int, int] = fitting[0] if fitting else DP16KD_MODES[-1]
        self.blocks = -(-self.width // self.mode[0]) if self.primitives else 0
        super().__init__(
            {
                "w_addr": In(range(self.depth)),
                "w_data": In(self.shape),
                "w_en": In(1),
                "r_addr": In(range(self.depth)),
                "r_en": In(1),
                "r_data": Out(self.shape),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        if self.primitives:
            out = Signal(self.blocks * self.mode[0])
            for k in range(self.blocks):
                m.submodules[f"block{k}"] = self._dp16kd(m, k, out)
            m.d.comb += self.r_data.eq(out[: self.width])
            return m
        m.submodules.mem = mem = Memory(shape=self.shape, depth=self.depth, init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=())
        m.d.comb += [
            wr.addr.eq(self.w_addr),
            wr.data.eq(self.w_data),
            wr.en.eq(self.w_en),
            rd.addr.eq(self.r_addr),
            rd.en.eq(self.r_en),
        ]
        with m.If(self.r_en):  # the block RAM's output register
            m.d.sync += self.r_data.eq(rd.data)
        return m

    def _dp16kd(self, m: Module, k: int, out: Signal) -> Instance:
        """Block ``k``: data bits ``k * width ..`` of every word, written on port A, read on B."""
        width, _, low = self.mode
        w_addr = Signal(14, name=f"block{k}_w_addr")
        r_addr = Signal(14, name=f"block{k}_r_addr")
        data_in = Signal(width, name=f"block{k}_in")
        data_out = Signal(width, name=f"block{k}_out")
        top = min(self.width, (k + 1) * width)
        m.d.comb += [
            w_addr.eq(self.w_addr << low),
            r_addr.eq(self.r_addr << low),
            data_in.eq(Value.cast(self.w_data)[k * width : top]),
            out[k * width : (k + 1) * width].eq(data_out),
        ]
        # The low address bits a mode does not use are 0, except the byte enables of
        # the 18- and 36-bit modes' write port (every byte written).
        byte_enables = {36: 4, 18: 2}.get(width, 0)
        ports = {
            "i_CLKA": ClockSignal(),
            "i_CLKB": ClockSignal(),
            "i_CEA": self.w_en,
            "i_WEA": Const(1, 1),
            "i_OCEA": self.r_en,
            "i_RSTA": Const(0, 1),
            "i_CEB": self.r_en,
            "i_WEB": Const(0, 1),
            "i_OCEB": self.r_en,
            "i_RSTB": Const(0, 1),
            **{f"i_CS{port}{j}": Const(0, 1) for port in "AB" for j in range(3)},
            **{f"i_ADA{j}": w_addr[j] if j >= low else Const(int(j < byte_enables), 1)
               for j in range(14)},
            **{f"i_ADB{j}": r_addr[j] for j in range(14)},
            **{f"i_DIA{j}": data_in[j] if j < width else Const(0, 1) for j in range(18)},
            **{f"i_DIB{j}": data_in[18 + j] if width == 36 else Const(0, 1) for j in range(18)},
        }  # fmt: skip
        if width == 36:  # pseudo dual port: the read word on both ports' data pins
            ports.update({f"o_DOA{j}": data_out[j] for j in range(18)})
            ports.update({f"o_DOB{j}": data_out[18 + j] for j in range(18)})
        else:
            ports.update({f"o_DOB{j}": data_out[j] for j in range(width)})
        return Instance(
            "DP16KD",
            p_DATA_WIDTH_A=width,
            p_DATA_WIDTH_B=width,
            # The 36-bit read uses both ports' output paths: both output registers.
            p_REGMODE_A="OUTREG" if width == 36 else "NOREG",
            p_REGMODE_B="OUTREG",
            p_RESETMODE="SYNC",
            p_ASYNC_RESET_RELEASE="SYNC",
            p_CSDECODE_A="0b000",
            p_CSDECODE_B="0b000",
            p_WRITEMODE_A="NORMAL",
            p_WRITEMODE_B="NORMAL",
            p_GSR="DISABLED",
            **ports,
        )
