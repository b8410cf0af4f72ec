"""A distributed-RAM memory whose read address is a register, one copy per slice of the word.

The engine's parameter memory is a few words deep and hundreds of bits wide: every
distributed-RAM cell of it reads the same address.  Computed from the serializer's
counters and driven from one net, that address was the whole ECP5 engine's longest
path (``serializer.lane`` -> address -> distributed-RAM read -> register: 8.2 ns of
route in 9.2 ns, the address reaching ~100 cells across the device).
:class:`RegisteredAddressMemory` takes the *next* read address and holds it in a
register per slice of ``slice_bits`` bits of the word, so that each copy drives only
its slice's cells and is placed beside them, and reads asynchronously: the word is
valid while the address registers hold (the serializer loads them with the beat it
issues, so its wide output register needs no enable for the parameters).

The back end's credit FIFOs (:class:`~sfc_hls.hw.port_buffers.CreditFifo`) read their
entries the same way, with ``registered_write=False`` and the next read pointer as the
address, loaded every cycle.

Yosys' ``opt_merge`` merges registers with equal inputs, so copy ``j`` stores the
address XOR a constant pattern ``j`` and its slice is stored at the same permuted
addresses (the write address goes through the same XOR): the permutation is invisible
at the ports.  The patterns need a power-of-two depth; the memory rounds its depth up.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, ShapeLike, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from sfc_hls.arguments import check_int

__all__ = ["RegisteredAddressMemory"]


class RegisteredAddressMemory(wiring.Component):
    """``depth`` words of ``shape`` in distributed RAM: registered write, registered address.

    Parameters
    ----------
    shape : ShapeLike
        A word.
    depth : int
        Words.
    slice_bits : int
        Bits of the word behind one copy of the read and write addresses (the word is cut
        into ``ceil(width / slice_bits)`` slices, each its own memory).
    registered_write : bool
        Register the write port's inputs (default) or write at the edge they arrive.

    Ports
    -----
    w_addr : In(range(depth)), w_data : In(shape), w_en : In(1)
        A write, registered: the word is written one edge after ``w_en`` is high
        (with ``registered_write=False``, at the edge where it is high).
    r_addr : In(range(depth)), r_load : In(1)
        At an edge with ``r_load`` high the read address registers take ``r_addr``.
    r_data : Out(shape)
        The word at the read address registers (an asynchronous read).  A word written
        at an edge is read from that edge on.

    Attributes
    ----------
    slices : int
        Address copies (and memories).
    latency : int
        1 (edges with ``r_load`` from ``r_addr`` to ``r_data``).
    """

    latency = 1

    def __init__(
        self, shape: ShapeLike, depth: int, *, slice_bits: int, registered_write: bool = True
    ) -> None:
        self.shape = shape  # the ports keep a layout's view
        self.width = Shape.cast(shape).width
        self.depth = check_int("depth", depth, 1)
        self.slice_bits = check_int("slice_bits", slice_bits, 1)
        if not isinstance(registered_write, bool):
            raise TypeError(f"registered_write must be a bool, got {registered_write!r}")
        self.registered_write = registered_write
        self.slices = -(-self.width // self.slice_bits)
        super().__init__(
            {
                "w_addr": In(range(self.depth)),
                "w_data": In(self.shape),
                "w_en": In(1),
                "r_addr": In(range(self.depth)),
                "r_load": In(1),
                "r_data": Out(self.shape),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        addr_bits = max(ceil_log2(self.depth), 1)
        # One slice: the depth as asked; more: a power of two, for the XOR patterns.
        depth = self.depth if self.slices == 1 else 1 << addr_bits
        w_data, w_en = Signal.like(self.w_data), Signal()
        write_domain = m.d.sync if self.registered_write else m.d.comb
        write_domain += [w_data.eq(self.w_data), w_en.eq(self.w_en)]
        r_data = Signal(self.width)
        for j in range(self.slices):
            pattern = j % depth
            low, high = j * self.slice_bits, min(self.width, (j + 1) * self.slice_bits)
            w_addr = Signal(addr_bits, name=f"w_addr{j}")
            r_addr = Signal(addr_bits, name=f"r_addr{j}")
            write_domain += w_addr.eq(self.w_addr ^ pattern)
            with m.If(self.r_load):
                m.d.sync += r_addr.eq(self.r_addr ^ pattern)
            mem = Memory(shape=high - low, depth=depth, init=[])
            m.submodules[f"slice{j}"] = mem
            wr = mem.write_port()
            rd = mem.read_port(domain="comb")
            m.d.comb += [
                wr.addr.eq(w_addr),
                wr.data.eq(Value.cast(w_data)[low:high]),
                wr.en.eq(w_en),
                rd.addr.eq(r_addr),
                r_data[low:high].eq(rd.data),
            ]
        m.d.comb += self.r_data.eq(r_data)
        return m
