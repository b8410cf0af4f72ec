"""Registers at the engine's stream ports: no combinational path from a port into the datapath.

Two stream buffers, both one beat per cycle at full rate:

* :class:`RegisterSlice` registers ``valid`` and ``payload`` (forward path);
  ``i.ready = ~o.valid | o.ready`` stays combinational, from the block behind
  it.  One payload register: for wide input ports (``i_act``), where the
  payload would otherwise run through the input transform's adders
  combinationally.
* :class:`SkidBuffer` registers both directions: ``o.valid``/``o.payload``
  and ``i.ready`` come from registers, so the ready chain of the pipeline in
  front of it ends here.  Two payload registers: for the output port
  (``o_out``), whose ``ready`` otherwise reaches through every stall-together
  pipeline of the back-end.

Registered ports are what timing closure asks for (no path crosses from a
port into a block) and what makes the simulation fast: Verilator evaluates
the logic that depends combinationally on top-level inputs on every
``eval()``, twice per clock cycle.
"""

from __future__ import annotations

from amaranth.hdl import Module, ShapeLike, Signal
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
    """A two-entry stream buffer with every output registered, ``ready`` included.

    Ports: ``i`` (In stream ``layout``), ``o`` (Out stream ``layout``).

    Latency: 1.  Throughput: one beat per cycle while ``o.ready``.
    Backpressure: ``i.ready`` is a register (low only while the second entry,
    the *skid*, holds a beat that arrived when ``o`` stalled); ``o.valid`` and
    ``o.payload`` are registers.  Beats leave in order, none is lost or doubled.
    """

    def elaborate(self, platform) -> Module:
        m = Module()
        skid_valid = Signal()
        skid = Signal.like(self.i.payload)
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(~self.o.valid | self.o.ready):  # the output register is free this cycle
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & self.i.ready):  # the output stalls: park the beat
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
