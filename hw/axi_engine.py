"""The conv engine as an SoC block: AXI4-Lite registers, AXI4-Stream data, an interrupt.

Ports (Xilinx naming, so that Vivado's IP packager infers the interfaces):

* ``aclk``, ``aresetn`` (synchronous, active low): the one clock domain.
* ``s_axi_control_*``: AXI4-Lite slave, 32-bit data, ``AXI_ADDR_BITS``-bit
  byte addresses; register map in :mod:`sfc_hls.hw.axi_registers`.
* ``s_axis_chan_*``, ``s_axis_weight_*``, ``s_axis_act_*``: AXI4-Stream
  slaves (``tdata``, ``tvalid``, ``tready``): each beat is the engine's
  ``i_chan`` / ``i_weight`` / ``i_act`` payload in the low bits of ``tdata``,
  zero-padded to whole bytes (the beats of ``sfc-hls vectors --engine``).
  The engine counts beats from the descriptor, so there is no ``tlast``.
* ``m_axis_out_*``: AXI4-Stream master: ``tdata`` the ``W`` output pixels
  (``out_bits`` each, zero-padded to bytes), ``tuser`` the beat's
  ``{channel, tile, index, end}`` (manifest ``axi.tuser``), ``tlast`` the
  layer's last beat.
* ``irq``: level (the interrupt), high while ``IRQ_STATUS & IRQ_ENABLE`` is not zero.

The three input streams are independent (one DMA channel each, every one in
its natural order: the engine takes group ``g + 1``'s parameters and weights
while group ``g`` computes).  A descriptor written while a layer runs is
staged and starts one cycle after that layer ends.

Latency: an AXI4-Lite write is answered (``bvalid``) two cycles after its
address and data are both valid; a read (``rvalid``) two cycles after
``arvalid``.  The streams pass straight to the engine (no added latency).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sfc_hls.config import EngineConfig
from sfc_hls.hw.axi_registers import (
    AXI_ADDR_BITS,
    AXI_REGISTER_TABLE,
    AXI_REGISTERS,
    DESCRIPTOR_WINDOW,
    ERROR_BITS,
    IRQ_BITS,
    STATUS_BITS,
    build_parameters,
)
from sfc_hls.hw.engine import ConvEngine
from sfc_hls.hw.interface import EngineInterface

__all__ = ["AxiConvEngine", "INPUT_STREAMS", "axi_signature", "axi_stream_widths"]

#: The engine's input streams and their AXI4-Stream ports.
INPUT_STREAMS = {"i_chan": "s_axis_chan", "i_weight": "s_axis_weight", "i_act": "s_axis_act"}
#: Engine registers below this address are scalars (mirror index = address).
_SCALAR_SPAN = 16
_OKAY, _SLVERR = 0b00, 0b10


def _bytes(bits: int) -> int:
    return 8 * -(-bits // 8)


def axi_stream_widths(interface: EngineInterface) -> dict[str, int]:
    """``tdata`` bits of every AXI4-Stream port (and ``m_axis_out_tuser``): byte multiples."""
    lay, cfg = interface.layouts, interface.config
    tag = lay["out"].members["meta"]
    widths = {port: _bytes(lay[name[2:]].size) for name, port in INPUT_STREAMS.items()}
    widths["m_axis_out"] = _bytes(interface.width * cfg.out_bits)
    widths["m_axis_out_tuser"] = tag.size - 1  # every tag field but `last` (that is tlast)
    return widths


def axi_signature(interface: EngineInterface) -> wiring.Signature:
    """The AXI top's ports (a signature, nothing to elaborate): for manifests."""
    widths = axi_stream_widths(interface)
    members: dict = {"aclk": In(1), "aresetn": In(1), "irq": Out(1)}
    axil = "s_axi_control_"
    members |= {
        axil + "awaddr": In(AXI_ADDR_BITS), axil + "awprot": In(3), axil + "awvalid": In(1),
        axil + "awready": Out(1), axil + "wdata": In(32), axil + "wstrb": In(4),
        axil + "wvalid": In(1), axil + "wready": Out(1), axil + "bresp": Out(2),
        axil + "bvalid": Out(1), axil + "bready": In(1), axil + "araddr": In(AXI_ADDR_BITS),
        axil + "arprot": In(3), axil + "arvalid": In(1), axil + "arready": Out(1),
        axil + "rdata": Out(32), axil + "rresp": Out(2), axil + "rvalid": Out(1),
        axil + "rready": In(1),
    }  # fmt: skip
    for port in INPUT_STREAMS.values():
        members |= {port + "_tdata": In(widths[port]), port + "_tvalid": In(1),
                    port + "_tready": Out(1)}  # fmt: skip
    members |= {
        "m_axis_out_tdata": Out(widths["m_axis_out"]),
        "m_axis_out_tuser": Out(widths["m_axis_out_tuser"]),
        "m_axis_out_tvalid": Out(1),
        "m_axis_out_tready": In(1),
        "m_axis_out_tlast": Out(1),
    }
    return wiring.Signature(members)


class AxiConvEngine(wiring.Component):
    """:class:`~sfc_hls.hw.engine.ConvEngine` behind AXI4-Lite and AXI4-Stream ports (module doc)."""

    def __init__(self, config: EngineConfig) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, got {type(config).__name__}")
        if config.map_kib:
            raise ValueError(
                f"map_kib={config.map_kib}: the AXI top has no map stream yet; generate the "
                "engine without --axi, or with --map-kib 0"
            )
        if config.replay_beats:
            raise ValueError(
                f"replay_beats={config.replay_beats}: the AXI top does not decode ACT_REPLAY "
                "yet; generate the engine without --axi, or with --replay-beats 0"
            )
        if config.weight_transform:
            raise ValueError(
                "weight_transform=True: the AXI top does not decode SPATIAL_WEIGHTS yet; "
                "generate the engine without --axi, or without --weight-transform"
            )
        self.config = config
        self.interface = EngineInterface.from_config(config)
        self.parameters = build_parameters(self.interface)
        tag = [name for name, _ in self.interface.layouts["tag"]]
        if tag[-1] != "last":  # tdata | tuser | tlast is then the engine's o_out payload
            raise AssertionError(f"the output tag must end with `last`, got {tag}")
        super().__init__(axi_signature(self.interface))

    def _port(self, name: str):
        return getattr(self, name)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.aclk), ResetSignal("sync").eq(~self.aresetn)]
        m.submodules.engine = engine = ConvEngine(self.config)
        self._streams(m, engine)
        events = self._events(m, engine)
        m.submodules.mirror = mirror = Memory(shape=32, depth=self._mirror_depth(), init=[])
        self._write_channel(m, engine, mirror, events)
        self._read_channel(m, mirror, events)
        return m

    def _streams(self, m: Module, engine: ConvEngine) -> None:
        """AXI4-Stream ports <-> the engine's streams (payload in the low bits of tdata)."""
        for name, port in INPUT_STREAMS.items():
            stream = getattr(engine, name)
            m.d.comb += [
                stream.payload.eq(self._port(port + "_tdata")[: len(stream.payload.as_value())]),
                stream.valid.eq(self._port(port + "_tvalid")),
                self._port(port + "_tready").eq(stream.ready),
            ]
        out = engine.o_out
        meta = out.payload.meta
        user = Cat(*(meta[name] for name, _ in meta.shape() if name != "last"))
        m.d.comb += [
            self.m_axis_out_tdata.eq(out.payload.data.as_value()),
            self.m_axis_out_tuser.eq(user),
            self.m_axis_out_tlast.eq(meta.last),
            self.m_axis_out_tvalid.eq(out.valid),
            out.ready.eq(self.m_axis_out_tready),
        ]

    def _mirror_depth(self) -> int:
        arrays = sum(1 for reg in self.interface.registers.table if reg.per_position)
        return _SCALAR_SPAN + arrays * self.interface.positions

    def _mirror_index(self, m: Module, engine_addr) -> tuple[Signal, Signal]:
        """``(index, mapped)``: the mirror word of engine register ``engine_addr``."""
        index = Signal(range(self._mirror_depth()))
        mapped = Signal()
        n = self.interface.positions
        scalars = [reg.address for reg in self.interface.registers.table if not reg.per_position]
        assert max(scalars) < _SCALAR_SPAN, "scalar engine registers must be below 16"
        with m.If(engine_addr < _SCALAR_SPAN):
            m.d.comb += [index.eq(engine_addr), mapped.eq(1)]
        arrays = [reg for reg in self.interface.registers.table if reg.per_position]
        for k, reg in enumerate(arrays):
            with m.If((engine_addr >= reg.address) & (engine_addr < reg.address + n)):
                m.d.comb += [index.eq(_SCALAR_SPAN + k * n + engine_addr - reg.address),
                             mapped.eq(1)]  # fmt: skip
        return index, mapped

    def _events(self, m: Module, engine: ConvEngine) -> dict:
        """Status, sticky error causes, interrupt, counters; returns the registers' signals."""
        status = engine.status
        r = {
            "error": Signal(len(ERROR_BITS)),
            "irq_enable": Signal(len(IRQ_BITS)),
            "irq_status": Signal(len(IRQ_BITS)),
            "layers_done": Signal(32),
            "last_layer_cycles": Signal(32),
            "busy_cycles": Signal(64),
            "busy_cycles_hi": Signal(32),
            "status": Signal(len(STATUS_BITS)),
            "error_set": Signal(len(ERROR_BITS)),  # causes raised this cycle (write channel too)
        }
        bits = {"BUSY": status.busy, "START_PENDING": status.start_pending,
                "DESC_ERROR": status.desc_error, "OVERFLOW": status.overflow}  # fmt: skip
        for name, bit in STATUS_BITS.items():
            m.d.comb += r["status"][bit].eq(bits[name])
        prev = Signal.like(status)
        m.d.sync += prev.eq(status)
        done = status.layers_done != prev.layers_done
        m.d.comb += [
            r["error_set"][ERROR_BITS["DESCRIPTOR"]].eq(status.desc_error & ~prev.desc_error),
            r["error_set"][ERROR_BITS["OVERFLOW"]].eq(status.overflow & ~prev.overflow),
        ]
        layer_cycles = Signal(32)
        with m.If(status.busy):
            m.d.sync += [r["busy_cycles"].eq(r["busy_cycles"] + 1),
                         layer_cycles.eq(layer_cycles + 1)]  # fmt: skip
        with m.If(done):
            m.d.sync += [
                r["layers_done"].eq(r["layers_done"] + 1),
                r["last_layer_cycles"].eq(layer_cycles),
                layer_cycles.eq(0),
            ]
        irq_set = Signal.like(r["irq_status"])
        m.d.comb += [
            irq_set[IRQ_BITS["DONE"]].eq(done),
            irq_set[IRQ_BITS["ERROR"]].eq(r["error_set"].any()),
            self.irq.eq((r["irq_status"] & r["irq_enable"]).any()),
        ]
        r["irq_set"] = irq_set
        return r

    def _write_channel(self, m: Module, engine: ConvEngine, mirror: Memory, r: dict) -> None:
        """AXI4-Lite writes: accept address and data together, execute, respond."""
        p = "s_axi_control_"
        addr, wdata, wstrb = Signal(AXI_ADDR_BITS), Signal(32), Signal(4)
        bresp = Signal(2)
        error_clear, irq_clear = Signal.like(r["error"]), Signal.like(r["irq_status"])
        port = mirror.write_port()
        window = addr >= DESCRIPTOR_WINDOW
        engine_addr = (addr - DESCRIPTOR_WINDOW)[2:]
        index, mapped = self._mirror_index(m, engine_addr)
        full = (wstrb == 0b1111) & (addr[:2] == 0)
        m.d.comb += [self._port(p + "bresp").eq(bresp),
                     engine.i_cfg.payload.addr.eq(engine_addr),
                     engine.i_cfg.payload.data.eq(wdata),
                     port.addr.eq(index), port.data.eq(wdata)]  # fmt: skip
        access_error = Signal()
        with m.FSM(name="axil_write"):
            with m.State("IDLE"):
                both = self._port(p + "awvalid") & self._port(p + "wvalid")
                m.d.comb += [self._port(p + "awready").eq(both),
                             self._port(p + "wready").eq(both)]  # fmt: skip
                with m.If(both):
                    m.d.sync += [addr.eq(self._port(p + "awaddr")),
                                 wdata.eq(self._port(p + "wdata")),
                                 wstrb.eq(self._port(p + "wstrb"))]  # fmt: skip
                    m.next = "EXECUTE"
            with m.State("EXECUTE"):
                with m.If(~full):
                    m.d.comb += access_error.eq(1)
                with m.Elif(window & engine.i_cfg.ready):
                    m.d.comb += [engine.i_cfg.valid.eq(1), port.en.eq(mapped)]
                with m.Elif(window):
                    m.d.comb += r["error_set"][ERROR_BITS["LOCKED"]].eq(1)
                with m.Else():
                    self._register_write(m, addr, wdata, r, error_clear, irq_clear, access_error)
                dropped = access_error | (window & ~engine.i_cfg.ready)
                m.d.sync += bresp.eq(dropped.replicate(2) & _SLVERR)
                m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.comb += self._port(p + "bvalid").eq(1)
                with m.If(self._port(p + "bready")):
                    m.next = "IDLE"
        m.d.comb += r["error_set"][ERROR_BITS["ACCESS"]].eq(access_error)
        m.d.sync += [
            r["error"].eq((r["error"] & ~error_clear) | r["error_set"]),
            r["irq_status"].eq((r["irq_status"] & ~irq_clear) | r["irq_set"]),
        ]

    def _register_write(self, m, addr, wdata, r, error_clear, irq_clear, access_error) -> None:
        """A write to a wrapper register: IRQ_ENABLE, the write-1-to-clear ones; others refused."""
        with m.Switch(addr):
            with m.Case(AXI_REGISTERS["IRQ_ENABLE"]):
                m.d.sync += r["irq_enable"].eq(wdata)
            with m.Case(AXI_REGISTERS["ERROR"]):
                m.d.comb += error_clear.eq(wdata)
            with m.Case(AXI_REGISTERS["IRQ_STATUS"]):
                m.d.comb += irq_clear.eq(wdata)
            with m.Default():
                m.d.comb += access_error.eq(1)

    def _read_channel(self, m: Module, mirror: Memory, r: dict) -> None:
        """AXI4-Lite reads: take the address, capture the value, hold it until taken."""
        p = "s_axi_control_"
        addr = Signal(AXI_ADDR_BITS)
        rdata, rresp = Signal(32), Signal(2)
        port = mirror.read_port(domain="comb")
        index, mapped = self._mirror_index(m, (addr - DESCRIPTOR_WINDOW)[2:])
        m.d.comb += [port.addr.eq(index), self._port(p + "rdata").eq(rdata),
                     self._port(p + "rresp").eq(rresp)]  # fmt: skip
        values = {
            "STATUS": r["status"], "ERROR": r["error"], "IRQ_ENABLE": r["irq_enable"],
            "IRQ_STATUS": r["irq_status"], "LAYERS_DONE": r["layers_done"],
            "LAST_LAYER_CYCLES": r["last_layer_cycles"], "BUSY_CYCLES_LO": r["busy_cycles"][:32],
            "BUSY_CYCLES_HI": r["busy_cycles_hi"],
        }  # fmt: skip
        for reg in AXI_REGISTER_TABLE:
            if reg.name not in values:
                values[reg.name] = Const(self.parameters.get(reg.name, reg.reset), 32)
        with m.FSM(name="axil_read"):
            with m.State("IDLE"):
                m.d.comb += self._port(p + "arready").eq(1)
                with m.If(self._port(p + "arvalid")):
                    m.d.sync += addr.eq(self._port(p + "araddr"))
                    m.next = "CAPTURE"
            with m.State("CAPTURE"):
                m.d.sync += rresp.eq(_SLVERR)
                with m.If((addr >= DESCRIPTOR_WINDOW) & (addr[:2] == 0)):
                    m.d.sync += [rdata.eq(port.data & mapped.replicate(32)), rresp.eq(_OKAY)]
                with m.Else(), m.Switch(addr):
                    for reg in AXI_REGISTER_TABLE:
                        with m.Case(reg.offset):
                            m.d.sync += [rdata.eq(values[reg.name]), rresp.eq(_OKAY)]
                    with m.Default():
                        m.d.sync += rdata.eq(0)
                with m.If(addr == AXI_REGISTERS["BUSY_CYCLES_LO"]):
                    m.d.sync += r["busy_cycles_hi"].eq(r["busy_cycles"][32:])
                m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.comb += self._port(p + "rvalid").eq(1)
                with m.If(self._port(p + "rready")):
                    m.next = "IDLE"
