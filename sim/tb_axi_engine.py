"""cocotb test of the AXI top (:class:`~sfc_hls.hw.axi_engine.AxiConvEngine`) with cocotbext-axi.

Run through :func:`sfc_hls.sim.verilator.run_cocotb` (see
``tests/test_axi_engine.py``) with a configuration::

    {"engine": {EngineConfig fields}, "layers": [{"params": ..., "input": ..., "stride": 1}, ...],
     "seed": 1, "pause": 0.2, "report_file": "report.json"}

Verification components nobody here wrote: cocotbext-axi's ``AxiLiteMaster``
writes the descriptors and reads the registers back; one ``AxiStreamSource``
per input port gets every layer's beats at once, in each stream's natural
order, as a DMA channel would send them; an ``AxiStreamSink`` takes the
outputs.  Every source and the sink idle on a seeded random fraction of the
cycles.  The second layer's descriptor is written and committed while the
first layer runs; it must start at once when the first ends.  The outputs
are compared, whole feature map by feature map, with the golden model.
"""

from __future__ import annotations

import itertools
import logging
import random
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiResp,
    AxiStreamBus,
    AxiStreamSink,
    AxiStreamSource,
)

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant
from sfc_hls.golden import conv2d_int8
from sfc_hls.hw.axi_engine import axi_stream_widths
from sfc_hls.hw.axi_registers import (
    AXI_ID,
    AXI_REGISTERS,
    ERROR_BITS,
    IRQ_BITS,
    STATUS_BITS,
    build_parameters,
    descriptor_address,
)
from sfc_hls.hw.engine_streams import EngineStreams, unpack
from sfc_hls.hw.interface import EngineInterface
from sfc_hls.hw.register_map import REGISTERS
from sfc_hls.sim.streams import Scoreboard, within_cycles
from sfc_hls.sim.verilator import tb_config, tb_report

STREAMS = {"chan": "s_axis_chan", "weight": "s_axis_weight", "act": "s_axis_act"}


class AxiEngineTestbench:
    """Clock, reset, the cocotbext-axi components and cycle-stamped handshakes."""

    def __init__(self, dut: Any, config: dict[str, Any]) -> None:
        self.dut = dut
        self.engine = EngineConfig.from_dict(config["engine"])
        self.interface = EngineInterface.from_config(self.engine)
        self.streams = EngineStreams(self.interface)
        self.widths = axi_stream_widths(self.interface)
        self.rng = random.Random(config["seed"])
        self.pause = float(config.get("pause", 0.0))
        clk, rst = dut.aclk, dut.aresetn
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), clk, rst,
                                  reset_active_level=False)  # fmt: skip
        self.sources = {
            name: AxiStreamSource(
                AxiStreamBus.from_prefix(dut, port), clk, rst, reset_active_level=False
            )  # fmt: skip
            for name, port in STREAMS.items()
        }
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_out"), clk, rst,
                                  reset_active_level=False)  # fmt: skip
        for component in (*self.sources.values(), self.sink):
            component.set_pause_generator(self._pauses())
            component.log.setLevel(logging.WARNING)
        self.axil.write_if.log.setLevel(logging.WARNING)
        self.axil.read_if.log.setLevel(logging.WARNING)
        self.cycle = 0
        self.handshakes: dict[str, list[int]] = {"s_axis_chan": [], "m_axis_out": []}

    def _pauses(self):
        seed = self.rng.randrange(1 << 30)
        rng = random.Random(seed)
        return (rng.random() < self.pause for _ in itertools.repeat(None))

    async def start(self) -> None:
        Clock(self.dut.aclk, 10, unit="ns").start()
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, 5)
        self.dut.aresetn.value = 1
        cocotb.start_soon(self._count())
        await ClockCycles(self.dut.aclk, 2)

    async def _count(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.aclk)
            self.cycle += 1
            for port, cycles in self.handshakes.items():
                if getattr(dut, port + "_tvalid").value and getattr(dut, port + "_tready").value:
                    cycles.append(self.cycle)

    async def read(self, name: str) -> int:
        return await self.axil.read_dword(AXI_REGISTERS[name])

    async def write(self, address: int, value: int) -> AxiResp:
        resp = await self.axil.write(address, int(value).to_bytes(4, "little"))
        return resp.resp

    async def write_descriptor(self, beats) -> None:
        """Every register write of the layer into the descriptor window, START last, once no
        START is pending (as the documented driver does: the window is locked until then)."""
        while await self.read("STATUS") >> STATUS_BITS["START_PENDING"] & 1:
            pass
        cfg = unpack(self.interface.layouts["cfg"], beats.cfg)
        for addr, value in zip(cfg["addr"][:, 0].tolist(), cfg["data"][:, 0].tolist(), strict=True):
            assert await self.write(descriptor_address(addr), value) == AxiResp.OKAY, addr

    def queue_streams(self, beats) -> None:
        """One frame per stream of the layer, beat after beat in the stream's own order."""
        for name, source in self.sources.items():
            nbytes = self.widths[STREAMS[name]] // 8
            payloads = getattr(beats, name)
            source.send_nowait(b"".join(int(p).to_bytes(nbytes, "little") for p in payloads))

    async def receive_layer(self, beats) -> list[int]:
        """The layer's output beats (one frame: ``tlast`` ends the layer) as engine payloads."""
        frame = await within_cycles(self.sink.recv(), 400 * len(beats.act) + 20_000)
        nbytes = self.widths["m_axis_out"] // 8
        assert len(frame.tdata) == nbytes * beats.expected_outputs, len(frame.tdata)
        beats_in = len(frame.tdata) // nbytes
        # cocotbext-axi keeps tuser per byte (one int when all bytes have the same value)
        users = (frame.tuser[::nbytes] if isinstance(frame.tuser, list)
                 else [frame.tuser] * beats_in)  # fmt: skip
        assert len(users) == beats_in, (len(users), beats_in)
        payloads = []
        for k, user in enumerate(users):
            data = int.from_bytes(frame.tdata[k * nbytes : (k + 1) * nbytes], "little")
            payloads.append(self._out_payload(data, user, last=int(k == len(users) - 1)))
        return payloads

    def _out_payload(self, data: int, user: int, last: int) -> int:
        """The engine's ``o_out`` payload from ``tdata``, ``tuser`` (the tag without ``last``)
        and ``tlast``."""
        meta, pos = 0, 0
        for name, f in self.interface.layouts["tag"]:
            if name == "last":
                value = last
            else:
                value, pos = (user >> pos) & ((1 << f.width) - 1), pos + f.width
            meta |= value << f.offset
        return data | meta << (self.interface.width * self.engine.out_bits)


def _load_layers(config: dict[str, Any]) -> list[tuple[LayerQuant, np.ndarray, int]]:
    return [(LayerQuant.load(e["params"]), np.load(e["input"]), int(e.get("stride", 1)))
            for e in config["layers"]]  # fmt: skip


async def _check_build_parameters(tb: AxiEngineTestbench) -> dict[str, int]:
    read = {
        name: await tb.read(name) for name in ("ID", "VERSION", *build_parameters(tb.interface))
    }
    want = {"ID": AXI_ID, "VERSION": 1, **build_parameters(tb.interface)}
    assert read == want, (read, want)
    return read


async def _bad_accesses_are_refused(tb: AxiEngineTestbench) -> dict[str, int]:
    """A write to a read-only register, a partial write and an unmapped read answer SLVERR,
    set ERROR.ACCESS (W1C) and change nothing."""
    resps = {
        "write_ro": await tb.write(AXI_REGISTERS["ID"], 0),
        "partial": (await tb.axil.write(AXI_REGISTERS["IRQ_ENABLE"], b"\x01")).resp,
        "read_unmapped": (await tb.axil.read(0x30, 4)).resp,
    }
    assert all(r == AxiResp.SLVERR for r in resps.values()), resps
    error, enable = await tb.read("ERROR"), await tb.read("IRQ_ENABLE")
    assert error == 1 << ERROR_BITS["ACCESS"] and enable == 0, (error, enable)
    assert await tb.read("ID") == AXI_ID
    await tb.write(AXI_REGISTERS["ERROR"], error)
    await tb.write(AXI_REGISTERS["IRQ_STATUS"], 1 << IRQ_BITS["ERROR"])
    assert (await tb.read("ERROR"), await tb.read("IRQ_STATUS")) == (0, 0)
    return {name: int(r) for name, r in resps.items()}


async def _locked_write_is_refused(tb: AxiEngineTestbench) -> dict[str, int]:
    """While a START waits: a window write answers SLVERR and sets ERROR.LOCKED (W1C)."""
    status = await tb.read("STATUS")
    assert status >> STATUS_BITS["START_PENDING"] & 1, f"STATUS {status:#x}: no START pending"
    resp = await tb.write(descriptor_address(REGISTERS["CIN"]), 1)
    error = await tb.read("ERROR")
    assert resp == AxiResp.SLVERR and error == 1 << ERROR_BITS["LOCKED"], (resp, error)
    assert tb.dut.irq.value == 1  # IRQ_ENABLE has ERROR
    await tb.write(AXI_REGISTERS["ERROR"], error)
    await tb.write(AXI_REGISTERS["IRQ_STATUS"], 1 << IRQ_BITS["ERROR"])
    after = await tb.read("ERROR"), await tb.read("IRQ_STATUS") >> IRQ_BITS["ERROR"] & 1
    assert after == (0, 0), after
    return {"status": status, "error": error}


@cocotb.test()
async def layers_in_dma_order_with_staged_descriptor(dut: Any) -> None:
    """Two layers (the first with more than two output-channel groups), all streams queued at
    once, the second descriptor committed while the first runs; bit-exact; registers read back."""
    config = tb_config("engine", "layers", "seed")
    tb = AxiEngineTestbench(dut, config)
    await tb.start()
    report: dict[str, Any] = {"build_parameters": await _check_build_parameters(tb)}
    report["refused"] = await _bad_accesses_are_refused(tb)
    await tb.write(AXI_REGISTERS["IRQ_ENABLE"], 1 << IRQ_BITS["DONE"] | 1 << IRQ_BITS["ERROR"])
    layers = _load_layers(config)
    assert layers[0][0].cout > 2 * tb.engine.pco, "the first layer must have > 2 groups"
    beats = [tb.streams.layer_beats(p, x, stride=s) for p, x, s in layers]
    for b in beats:
        tb.queue_streams(b)  # every stream gets both layers at once, in its own order
    await tb.write_descriptor(beats[0])
    await tb.write_descriptor(beats[1])  # staged: commits when the first layer ends
    report["locked"] = await _locked_write_is_refused(tb)
    scoreboard = Scoreboard()
    for k, ((params, x, stride), b) in enumerate(zip(layers, beats, strict=True)):
        payloads = await tb.receive_layer(b)
        n, _, h, w = x.shape
        got = tb.streams.assemble(payloads, params, n, h, w, stride=stride, schedule=b.schedule)
        assert scoreboard.compare(f"layer{k}", got, conv2d_int8(x, params, stride=stride))
    await ClockCycles(dut.aclk, 10)
    outs, chans = tb.handshakes["m_axis_out"], tb.handshakes["s_axis_chan"]
    first_out_end = outs[beats[0].expected_outputs - 1]
    second_chan = chans[len(beats[0].chan)]
    report["gap_cycles"] = second_chan - first_out_end
    # The staged layer starts at once: after the last output beat, the layer's end (the
    # packet count, registered), the commit and the descriptor's load (registered), then
    # the first chan beat; 4 cycles before both registers were added (hw/scheduler.py,
    # hw/descriptor.py).
    assert report["gap_cycles"] <= 6, report["gap_cycles"]
    report["registers"] = {
        name: await tb.read(name)
        for name in ("STATUS", "ERROR", "IRQ_STATUS", "LAYERS_DONE", "LAST_LAYER_CYCLES",
                     "BUSY_CYCLES_LO", "BUSY_CYCLES_HI")
    }  # fmt: skip
    regs = report["registers"]
    assert regs["LAYERS_DONE"] == 2 and regs["STATUS"] == 0 and regs["ERROR"] == 0, regs
    assert regs["IRQ_STATUS"] == 1 << IRQ_BITS["DONE"] and dut.irq.value == 1, regs
    assert 0 < regs["LAST_LAYER_CYCLES"] < regs["BUSY_CYCLES_LO"], regs
    await tb.write(AXI_REGISTERS["IRQ_STATUS"], 1 << IRQ_BITS["DONE"])
    await ClockCycles(dut.aclk, 2)
    assert dut.irq.value == 0
    report["bit_exact"] = True
    report["cycles"] = tb.cycle
    tb_report(config, **report)
