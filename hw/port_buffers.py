"""Registers at the engine's stream ports: no combinational path from a port into the datapath.

Two stream buffers, both one beat per cycle at full rate:

* :class:`RegisterSlice` registers ``valid`` and ``payload`` (forward path);
  ``i.ready = ~o.valid | o.ready`` stays combinational, from the block behind
  it.  One payload register: for pipeline cuts inside the engine (in front of
  the output quantizer), where a long wire, not the ``ready`` chain, sets the
  clock.
* :class:`SkidBuffer` registers both directions: ``o.valid``/``o.payload``
  (a select of two registers by a register) and ``i.ready`` come from
  registers, so the ready chain of the pipeline in front of it ends here, and
  ``o.ready`` reaches only its pointers, not its payload registers.  Two payload
  registers: for the ports (``i_act``, ``o_out``), whose ``ready`` otherwise
  reaches through the scheduler or every stall-together pipeline of the
  back-end, and for the ends of the engine's inner backpressure chains.

Registered ports are what timing closure asks for (no path crosses from a
port into a block) and what makes the simulation fast: Verilator evaluates
the logic that depends combinationally on top-level inputs on every
``eval()``, twice per clock cycle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, ShapeLike, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterSlice", "SkidBuffer"]


class _StreamBuffer(wiring.Component):
    """A one-cycle buffer from stream ``i`` to stream ``o`` of the same ``layout``."""

    latency = 1

    def __init__(self, layout: ShapeLike) -> None:
        self.layout = layout
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})


class RegisterSlice(_StreamBuffer):
    """A pipeline register on a stream (forward path registered).

    Ports: ``i`` (In stream ``layout``), ``o`` (Out stream ``layout``).

    Latency: 1 (a beat taken on ``i`` in cycle ``t`` is offered on ``o`` from
    cycle ``t + 1``).  Throughput: one beat per cycle while ``o.ready``.
    Backpressure: ``i.ready = ~o.valid | o.ready`` (combinational from ``o``);
    ``o.valid`` and ``o.payload`` come from registers.
    """

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        return m


class SkidBuffer(_StreamBuffer):
    """A two-entry stream buffer whose ``ready`` and stored beats do not wait on ``o.ready``.

    Ports: ``i`` (In stream ``layout``), ``o`` (Out stream ``layout``).

    Latency: 1.  Throughput: one beat per cycle while ``o.ready``.
    Backpressure: ``i.ready`` comes from registers (low only while both entries
    hold a beat); ``o.valid`` and ``o.payload`` are the entry at the read
    pointer (a 2:1 select of registers by a register).  Beats leave in order,
    none is lost or doubled.

    Structure: a two-entry FIFO.  The entries load on the write side only
    (``i.valid & i.ready`` and the write pointer), so ``o.ready``, which may come
    through a chain of stall-together pipelines, drives only the read pointer and
    the two full flags: not the enables of every payload bit, the fan-out that set
    the clock of whole engines on ECP5 (bench/results/timing.md).
    """

    def elaborate(self, platform) -> Module:
        m = Module()
        entries = [Signal.like(self.i.payload, name=f"entry{k}") for k in range(2)]
        full = [Signal(name=f"full{k}") for k in range(2)]
        write_at, read_at = Signal(name="write_at"), Signal(name="read_at")
        write = self.i.valid & self.i.ready
        read = self.o.valid & self.o.ready
        m.d.comb += [
            self.i.ready.eq(~(full[0] & full[1])),
            self.o.valid.eq(Mux(read_at, full[1], full[0])),
            self.o.payload.eq(Mux(read_at, entries[1], entries[0])),
        ]
        with m.If(write):
            m.d.sync += write_at.eq(~write_at)
        with m.If(read):
            m.d.sync += read_at.eq(~read_at)
        for k in range(2):
            # A write and a read never meet in one entry: a write goes to an empty
            # entry, a read leaves a full one.
            with m.If(write & (write_at == k)):
                m.d.sync += [entries[k].eq(self.i.payload), full[k].eq(1)]
            with m.If(read & (read_at == k)):
                m.d.sync += full[k].eq(0)
        return m
