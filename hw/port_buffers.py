"""Stream buffers: registers at the engine's ports and at the ends of its backpressure chains.

Three stream buffers, all one beat per cycle at full rate:

* :class:`RegisterSlice` registers ``valid`` and ``payload`` (forward path);
  ``i.ready = ~o.valid | o.ready`` stays combinational, from the block behind
  it.  One payload register: for pipeline cuts where a long wire, not the
  ``ready`` chain, sets the clock (the digit-serial ``A^T``'s selected digits),
  and for ``i_act`` on Xilinx engines (half the registers of a skid buffer).
* :class:`SkidBuffer` registers both directions: ``o.valid``/``o.payload``
  (a select of two registers by a register) and ``i.ready`` come from
  registers, so the ready chain of the pipeline in front of it ends here, and
  ``o.ready`` reaches only its pointers, not its payload registers.  Two payload
  registers: for the ports (``o_out``; ``i_act`` on ECP5), whose ``ready`` otherwise
  reaches through the scheduler or every stall-together pipeline of the
  back-end, and for the ends of the engine's inner backpressure chains.
* :class:`CreditFifo` runs a pipeline without stalls: a credit gate in front
  (a registered ``ready``), a FIFO behind it with room for every beat in flight
  (the rescale's).

Registered ports are what timing closure asks for (no path crosses from a
port into a block) and what makes the simulation fast: Verilator evaluates
the logic that depends combinationally on top-level inputs on every
``eval()``, twice per clock cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, ShapeLike, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.hw.lut_memory import RegisteredAddressMemory

__all__ = ["CreditFifo", "RegisterSlice", "SkidBuffer"]


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

    Structure: a two-entry FIFO.  An entry loads the input while it is empty (its
    enable is its full flag, a register), so neither ``o.ready``, which may come
    through a chain of stall-together pipelines, nor ``i.valid`` drives the enables
    of the payload bits, only the pointers and the two full flags (the enable's
    fan-out set the clock of whole engines on ECP5, bench/results/timing.md, and a
    handshake-decoded enable put a wire across the device into the full flags'
    loop).  The payload is
    cut into chunks of at most ``chunk_bits`` bits, each a FIFO with its own
    pointers and full flags (all in lockstep: they see the same handshakes), so
    that no control register drives the enables or selects of more than one chunk
    (on ECP5 one write enable over a 400-bit payload was a 9.4 ns route);
    ``i.ready`` and ``o.valid`` come from two more copies without payload.

    With ``select_bits`` the payload's 2:1 selects are driven by copies of the read
    pointers (``select_at``, toggled by the same reads), one per ``select_bits`` bits
    of a chunk, that drive nothing else: each is placed beside its selects, while
    the read pointers and the full flags stay with the handshake's other loads.
    For a payload whose bits go to loads spread over the device (the weight
    buffer's output, to the ECP5 multipliers): the read pointer, pulled to the
    consumer's ``ready``, drove selects placed beside their multipliers across the
    device (a long route on each side of the select's LUT).
    """

    #: Payload bits per chunk by default (each chunk has its own control registers).
    CHUNK_BITS = 64

    @classmethod
    def chunk_bits_of(cls, target: str) -> int:
        """``chunk_bits`` of the engine's skid buffers on ``target``: on ECP5 16 (the
        payload of the back end's buffers is spread over the device with the
        multipliers: a chunk's enable reached 64 registers across it, 9.4 ns of route;
        a chunk of two 8-bit lanes stays beside them), else :attr:`CHUNK_BITS`."""
        return 16 if target == "ecp5" else cls.CHUNK_BITS

    def __init__(
        self,
        layout: ShapeLike,
        *,
        chunk_bits: int = CHUNK_BITS,
        select_bits: int | None = None,
    ) -> None:
        if not isinstance(chunk_bits, int) or chunk_bits < 1:
            raise ValueError(f"chunk_bits must be an int >= 1, got {chunk_bits!r}")
        if select_bits is not None and (not isinstance(select_bits, int) or select_bits < 1):
            raise ValueError(f"select_bits must be an int >= 1 or None, got {select_bits!r}")
        self.chunk_bits = chunk_bits
        self.select_bits = select_bits
        super().__init__(layout)

    def elaborate(self, platform) -> Module:
        m = Module()
        payload_in = Value.cast(self.i.payload)
        width = len(payload_in)
        payload_out = Signal(width)
        step = self.chunk_bits
        bounds = [(lo, min(lo + step, width)) for lo in range(0, width, step)]
        for c, (lo, hi) in enumerate(bounds):
            _, _, data = self._chunk(m, payload_in[lo:hi], f"c{c}")
            m.d.comb += payload_out[lo:hi].eq(data)
        # ``i.ready`` and ``o.valid`` from copies of the control without payload, each
        # placed by its own loads (the producer's, the consumer's handshake), not
        # beside a chunk of payload bits across the device from them.
        i_ready, _, _ = self._chunk(m, Const(0, 0), "ready")
        _, o_valid, _ = self._chunk(m, Const(0, 0), "valid")
        m.d.comb += [
            self.i.ready.eq(i_ready),
            self.o.valid.eq(o_valid),
            self.o.payload.eq(payload_out),
        ]
        return m

    def _chunk(self, m: Module, data_in: Value, name: str) -> tuple[Value, Value, Value]:
        """One chunk's FIFO: ``(its i.ready, its o.valid, its o.payload bits)``; a chunk
        without payload bits (``len(data_in) == 0``) has no entry registers."""
        width = len(data_in)
        entries = [Signal(width, name=f"entry{k}_{name}") for k in range(2)] if width else []
        full = [Signal(name=f"full{k}_{name}") for k in range(2)]
        write_at, read_at = Signal(name=f"write_at_{name}"), Signal(name=f"read_at_{name}")
        i_ready = ~(full[0] & full[1])
        o_valid = Mux(read_at, full[1], full[0])
        write = self.i.valid & i_ready
        read = o_valid & self.o.ready
        with m.If(write):
            m.d.sync += write_at.eq(~write_at)
        with m.If(read):
            m.d.sync += read_at.eq(~read_at)
        data: Value = Const(0, 0)
        step = self.select_bits
        if entries and step is None:
            data = Mux(read_at, entries[1], entries[0])
        elif entries and step is not None:
            selects: list[Value] = []
            for lo in range(0, width, step):
                select_at = Signal(name=f"select_at_{name}_{len(selects)}")
                with m.If(read):
                    m.d.sync += select_at.eq(~select_at)
                hi = min(lo + step, width)
                selects.append(Mux(select_at, entries[1][lo:hi], entries[0][lo:hi]))
            data = Cat(*selects)
        for k in range(2):
            # An empty entry loads the input on every cycle (what it holds matters only
            # once it is full), so the enable of its payload registers is its own full
            # flag: a register, not the handshake logic.  A write goes to the entry at
            # the write pointer, which is empty whenever ``i_ready``; a write and a
            # read never meet in one entry.
            if entries:
                with m.If(~full[k]):
                    m.d.sync += entries[k].eq(data_in)
            with m.If(write & (write_at == k)):
                m.d.sync += full[k].eq(1)
            with m.If(read & (read_at == k)):
                m.d.sync += full[k].eq(0)
        return i_ready, o_valid, data


class CreditFifo(wiring.Component):
    """The flow control of a pipeline that never stalls: a credit gate in front, a FIFO behind.

    A :class:`~sfc_hls.hw.pipeline.StallPipeline`'s ``advance`` is the clock enable
    of every one of its registers, so the ``ready`` arriving at its output reaches
    them all and, through ``i.ready``, the block in front (on ECP5 that net, from the
    rescale, set the clock of whole engines).  Around a ``CreditFifo`` the pipeline
    runs with ``ready`` constant 1 (its registers have no enable): the gate lets a
    beat in only while the FIFO has room for it and for every beat already in the
    pipeline, so the FIFO never overflows, and the ``ready`` arriving at ``o``
    drives only the FIFO's read pointer.

    A pipeline may turn several beats into fewer results (the engine's fast-mode
    back end: a packet of ``B`` rescaled blocks -> one tile -> ``S <= B`` output
    blocks).  Each beat taken holds one credit; a result read from ``o`` returns
    ``return_values[return_sel]`` credits (the engine: ``B`` on a fast packet's
    last block, 0 on its others, 1 per direct-mode block), so a FIFO entry
    always has a credit behind it.

    Parameters
    ----------
    in_layout, out_layout : ShapeLike
        Payloads of the pipeline's input and output.
    latency : int
        Cycles from a beat entering to the read of the result that returns its
        credit, at full rate (sizes the FIFO for one beat per cycle).
    return_values : tuple of int
        The credits a read may return (default ``(1,)``: one per result, no
        ``return_sel`` port).  The counters' next values are computed for each.
    slice_bits : int or None
        The FIFO is a :class:`~sfc_hls.hw.lut_memory.RegisteredAddressMemory` whose
        read address is a register per ``slice_bits`` bits of the result (default: one
        for the whole result).  On ECP5 one read pointer drove every cell of a wide
        FIFO, and the read handshake's LUT sat between the pointer and the counters.

    Ports
    -----
    i : In(stream.Signature(in_layout))
        Beats for the pipeline; ``i.ready`` is a register.
    to_pipe : Out(stream.Signature(in_layout))
        To the pipeline's input: ``valid`` on each beat taken on ``i``; its ``ready``
        is not read (the pipeline is always ready).
    from_pipe : In(stream.Signature(out_layout))
        The pipeline's results; ``ready`` is constant 1.
    o : Out(stream.Signature(out_layout))
        The results in order; ``o.valid`` is a register, ``o.payload`` the FIFO's
        entry at the read pointer (a distributed-RAM read).
    return_sel : In(range(len(return_values)))
        Only with several ``return_values``: which the read of ``o.payload`` returns.

    Attributes
    ----------
    depth : int
        FIFO entries: ``latency + 3`` rounded up to a power of two (full rate: a
        read's credits return in the next cycle but one).
    latency = 1
        A result written into the FIFO is offered on ``o`` in the next cycle.
    """

    latency = 1

    def __init__(
        self,
        in_layout: ShapeLike,
        out_layout: ShapeLike,
        *,
        latency: int,
        return_values: tuple[int, ...] = (1,),
        slice_bits: int | None = None,
    ) -> None:
        if not isinstance(latency, int) or latency < 0:
            raise ValueError(f"latency must be an int >= 0, got {latency!r}")
        if not return_values or not all(isinstance(v, int) and v >= 0 for v in return_values):
            raise ValueError(f"return_values must be ints >= 0, got {return_values!r}")
        if slice_bits is not None and (not isinstance(slice_bits, int) or slice_bits < 1):
            raise ValueError(f"slice_bits must be an int >= 1 or None, got {slice_bits!r}")
        self.slice_bits = slice_bits
        self.depth = self.depth_of(latency)
        self.return_values = tuple(return_values)
        ports = {
            "i": In(stream.Signature(in_layout)),
            "to_pipe": Out(stream.Signature(in_layout)),
            "from_pipe": In(stream.Signature(out_layout)),
            "o": Out(stream.Signature(out_layout)),
        }
        if len(self.return_values) > 1:
            ports["return_sel"] = In(range(len(self.return_values)))
        super().__init__(ports)

    @staticmethod
    def depth_of(latency: int) -> int:
        """:attr:`depth` of a FIFO behind a pipeline of ``latency`` cycles."""
        return 1 << (latency + 3 - 1).bit_length()

    def elaborate(self, platform) -> Module:
        m = Module()
        depth = self.depth
        shape = self.o.payload.shape()
        width = Shape.cast(shape).width
        m.submodules.entries = mem = RegisteredAddressMemory(
            shape, depth, slice_bits=self.slice_bits or max(width, 1), registered_write=False
        )
        write_at, read_at = Signal(range(depth)), Signal(range(depth))
        stored = Signal(range(depth + 1))  # results in the FIFO
        held = Signal(range(depth + 1))  # credits in use: beats in the pipeline or the FIFO
        ready = Signal()
        take = self.i.valid & ready
        write = self.from_pipe.valid
        read = self.o.valid & self.o.ready
        # The same read for the pointer, from ``stored != 0`` (equal to ``o.valid``):
        # a LUT of its own, placed by the pointer's loads among the RAM cells, while
        # ``read`` stays beside the counters (one LUT between the two clusters put a
        # long wire on each side of it).
        read_pointer = (stored != 0) & self.o.ready
        m.d.comb += [
            self.i.ready.eq(ready),
            self.to_pipe.valid.eq(take),
            self.to_pipe.payload.eq(self.i.payload),
            self.from_pipe.ready.eq(1),
            mem.w_addr.eq(write_at),
            mem.w_data.eq(self.from_pipe.payload),
            mem.w_en.eq(write),
            # The read address registers hold read_at (loaded with its next value).
            mem.r_addr.eq(Mux(read_pointer, read_at + 1, read_at)),
            mem.r_load.eq(1),
            self.o.payload.eq(mem.r_data),
        ]
        # A read returns its credits a cycle later, from registers (``returning``,
        # ``returning_sel``): the output path's ready reached the credit counters
        # through the read's LUT, placed between the two across the device (on ECP5
        # the Winograd engine's longest path).  ``take`` (from the serializer's
        # handshake) comes last: every next value is a select by it among values
        # computed from registers: for each credit count a read may return, held after
        # the return with and without a take, and whether a beat may be taken next.
        # ``held <= depth`` always.
        # (held + take - returns < depth: each a compare of `held` with a constant.)
        returning = Signal()
        m.d.sync += returning.eq(read)
        returning_sel: Value = Const(0)
        if len(self.return_values) > 1:
            returning_sel = Signal.like(self.return_sel)
            m.d.sync += returning_sel.eq(self.return_sel)
        after_read, ready_after_read = [], []
        for v in self.return_values:
            after_read.append((held - v, held + 1 - v))
            ready_after_read.append((held < depth + v, held < depth + v - 1))
        # The pointers count under an enable: ``read`` (from the output's handshake)
        # reaches their clock enables only, not a carry chain beside them, which pulled
        # the handshake's LUT to the pointers, placed among the RAM cells they address.
        with m.If(write):
            m.d.sync += write_at.eq(write_at + 1)
        with m.If(read_pointer):
            m.d.sync += read_at.eq(read_at + 1)
        m.d.sync += stored.eq(
            Mux(write, Mux(read, stored, stored + 1), Mux(read, stored - 1, stored))
        )
        with m.If(returning), m.Switch(returning_sel):
            for n, ((after, after_take), (ready_no_take, ready_take)) in enumerate(
                zip(after_read, ready_after_read, strict=True)
            ):
                with m.Case(n):
                    m.d.sync += [held.eq(Mux(take, after_take, after)),
                                 ready.eq(Mux(take, ready_take, ready_no_take))]  # fmt: skip
        with m.Else():
            m.d.sync += [held.eq(Mux(take, held + 1, held)),
                         ready.eq(Mux(take, held < depth - 1, held < depth))]  # fmt: skip
        m.d.sync += [
            # stored + write - read != 0 (a read needs stored >= 1)
            self.o.valid.eq(write | Mux(read, stored > 1, self.o.valid)),
        ]
        return m
