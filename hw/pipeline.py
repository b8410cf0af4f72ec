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

Payload convention of the datapath blocks: the values a block works on are
the payload field ``data``; per-beat operands it consumes have their own
fields (``mult`` of the rescale, ``params`` of the output quantizer); the
engine's control fields travel, unchanged and with their names, in the
field ``meta`` of a layout the engine chooses (:func:`meta_field`).  So
adjacent blocks have equal payload layouts and ``wiring.connect`` links them.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, ShapeLike, Signal, Value
from amaranth.lib import data

__all__ = ["Handshake", "StallPipeline", "meta_field", "meta_width", "registered"]


def meta_field(meta_layout: ShapeLike | None) -> dict[str, ShapeLike]:
    """``{"meta": meta_layout}``, or ``{}`` when there is none or it has no bits.

    A 0-bit field would appear in the Verilog as an ill-formed ``[-1:0]`` wire.
    """
    if meta_layout is None:
        return {}
    if isinstance(meta_layout, bool):
        raise TypeError(
            f"meta_layout must be a shape (e.g. a data.StructLayout), got {meta_layout!r}"
        )
    try:
        size = Shape.cast(meta_layout).width
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"meta_layout must be a shape (e.g. a data.StructLayout), got {meta_layout!r}"
        ) from exc
    return {"meta": meta_layout} if size else {}


def meta_width(layout: data.StructLayout) -> int:
    """Bits of the ``meta`` field of a payload layout (0 when it has none)."""
    members = dict(layout.members) if isinstance(layout, data.StructLayout) else {}
    return Shape.cast(members["meta"]).width if "meta" in members else 0


def registered(m: Module, value: Value, name: str) -> Signal:
    """``value`` one cycle later, in a register of its shape (no enable: outside a
    stall pipeline, or a per-layer value that every stage may read)."""
    reg = Signal.like(Value.cast(value), name=name)
    m.d.sync += reg.eq(value)
    return reg


class Handshake:
    """The valid/ready pair of an internal stream with no payload (a :class:`StallPipeline`'s
    ``i`` or ``o`` between segments of one block)."""

    def __init__(self, name: str) -> None:
        self.valid = Signal(name=f"{name}_valid")
        self.ready = Signal(name=f"{name}_ready")


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

    def carry_meta(self, m: Module, i, o, *, name: str) -> None:
        """Drive ``o.payload.meta`` with ``i.payload.meta`` delayed by :attr:`depth` stages.

        Does nothing when the payloads have no ``meta`` field (see :func:`meta_field`).
        """
        members = {name for name, _ in i.payload.shape()}
        if "meta" in members:
            meta = i.payload.meta
            shape = meta.shape() if isinstance(meta, data.View) else Value.cast(meta).shape()
            for k in range(self.depth):
                meta = self.register(m, meta, name=f"{name}_d{k}", shape=shape)
            m.d.comb += o.payload.meta.eq(meta)

    def delay(self, m: Module, value: Value, stages: int, *, name: str) -> Value:
        """``value`` carried through ``stages`` stage registers (sideband/meta alignment)."""
        for k in range(stages):
            value = self.register(m, value, name=f"{name}_d{k}")
        return value
