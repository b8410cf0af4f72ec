"""Stall-together stream pipelines for the engine's datapath blocks.

Every datapath block of the engine (transforms, quantizers) is a fixed-depth
pipeline between an input and an output stream.  :class:`StallPipeline`
builds the control: a valid bit per stage and one ``advance`` enable shared by
all stage registers, ``advance = ~o.valid | o.ready``.  Consequences, stated
once for all blocks built with it:

* latency: ``depth`` cycles from an input handshake to ``o.valid``;
* throughput: one beat per cycle while ``o.ready`` is high;
* backpressure: when ``o.valid & ~o.ready`` the whole pipeline holds, and
  ``i.ready`` is low in that cycle (``i.ready`` depends combinationally on
  ``o.ready``; ``o.valid`` comes from a register and never waits for ``ready``);
* bubbles are not squeezed out: a stall holds empty stages too.

``depth = 0`` gives a combinational block (``o.valid = i.valid``, ``i.ready = o.ready``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value

__all__ = ["StallPipeline"]


class StallPipeline:
    """Control for a ``depth``-stage pipeline from stream ``i`` to stream ``o``.

    Use :meth:`register` to put values into stage registers (they load when
    :attr:`advance` is high) and drive ``o.payload`` from the last stage.
    """

    def __init__(self, m: Module, *, i, o, depth: int, name: str = "pipe") -> None:
        if not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be an int >= 0, got {depth!r}")
        self.depth = depth
        self.advance = Signal(name=f"{name}_advance")
        if depth == 0:
            m.d.comb += [
                o.valid.eq(i.valid),
                i.ready.eq(o.ready),
                self.advance.eq(o.ready),
            ]
            return
        valid = [Signal(name=f"{name}_valid{k}") for k in range(depth)]
        m.d.comb += [
            self.advance.eq(~o.valid | o.ready),
            i.ready.eq(self.advance),
            o.valid.eq(valid[-1]),
        ]
        with m.If(self.advance):
            m.d.sync += valid[0].eq(i.valid)
            for k in range(1, depth):
                m.d.sync += valid[k].eq(valid[k - 1])

    def register(self, m: Module, value: Value, *, name: str, shape=None) -> Signal:
        """A stage register loaded with ``value`` on every advance (reset value 0)."""
        reg = Signal(shape if shape is not None else Value.cast(value).shape(), name=name)
        with m.If(self.advance):
            m.d.sync += reg.eq(value)
        return reg

    def delay(self, m: Module, value: Value, stages: int, *, name: str) -> Value:
        """``value`` carried through ``stages`` stage registers (sideband/meta alignment)."""
        for k in range(stages):
            value = self.register(m, value, name=f"{name}_d{k}")
        return value
