"""Routing of the engine's streams by layer mode: one stream to two (split), two to one (select).

The engine runs one mode per layer (``direct`` low: the fast algorithm;
high: direct convolution), and a layer starts only when the previous one has
left the engine, so routing by a per-layer signal never reorders beats.
Payloads are ``{data, meta}`` (see :mod:`sfc_hls.hw.pipeline`): ``meta`` is
copied as is; ``data`` arrays are copied element by element, sign-extended
to a wider element and cut to a shorter array (the fast-mode input tile is
the first ``L*L`` values of the input beat).  Both blocks are combinational
(latency 0) and pass ``valid``/``ready`` through unchanged on the selected side.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamSelect", "StreamSplit"]


def _copy_payload(m: Module, dst, src) -> None:
    """``dst = src`` for ``{data, meta}`` payloads whose ``data`` arrays may differ in widths."""
    dst_members = dict(dst.shape().members)
    src_members = dict(src.shape().members)
    for name in dst_members:
        if name not in src_members:
            raise ValueError(f"payload field {name!r} missing on the source side")
        if name == "data" and isinstance(dst_members[name], data.ArrayLayout):
            length = min(dst_members[name].length, src_members[name].length)
            m.d.comb += [dst.data[k].eq(src.data[k]) for k in range(length)]
        else:
            m.d.comb += getattr(dst, name).eq(getattr(src, name))


class StreamSplit(wiring.Component):
    """``i`` goes to ``o_fast`` while ``direct`` is low, to ``o_direct`` while it is high."""

    def __init__(self, i_layout, fast_layout, direct_layout) -> None:
        super().__init__(
            {
                "i": In(stream.Signature(i_layout)),
                "o_fast": Out(stream.Signature(fast_layout)),
                "o_direct": Out(stream.Signature(direct_layout)),
                "direct": In(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        _copy_payload(m, self.o_fast.payload, self.i.payload)
        _copy_payload(m, self.o_direct.payload, self.i.payload)
        m.d.comb += [
            self.o_fast.valid.eq(self.i.valid & ~self.direct),
            self.o_direct.valid.eq(self.i.valid & self.direct),
            self.i.ready.eq(
                (self.o_direct.ready & self.direct) | (self.o_fast.ready & ~self.direct)
            ),
        ]
        return m


class StreamSelect(wiring.Component):
    """``o`` takes ``i_fast`` while ``direct`` is low, ``i_direct`` while it is high."""

    def __init__(self, fast_layout, direct_layout, o_layout) -> None:
        super().__init__(
            {
                "i_fast": In(stream.Signature(fast_layout)),
                "i_direct": In(stream.Signature(direct_layout)),
                "o": Out(stream.Signature(o_layout)),
                "direct": In(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        # The handshake as continuous assignments: under `m.If` it would be an
        # `always @*` that Icarus does not run at time 0, and an X `valid` until the
        # inputs change corrupts a counter behind it (the credit FIFO's pointers).
        m.d.comb += [
            self.o.valid.eq(Mux(self.direct, self.i_direct.valid, self.i_fast.valid)),
            self.i_direct.ready.eq(self.direct & self.o.ready),
            self.i_fast.ready.eq(~self.direct & self.o.ready),
        ]
        with m.If(self.direct):
            _copy_payload(m, self.o.payload, self.i_direct.payload)
        with m.Else():
            _copy_payload(m, self.o.payload, self.i_fast.payload)
        return m
