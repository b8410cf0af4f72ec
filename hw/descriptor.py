"""The layer-descriptor registers of the conv engine, decoded from the register table."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.hw.register_map import ADDR_BITS, DATA_BITS, REGISTER_TABLE, START, RegisterMap

__all__ = ["CFG_LAYOUT", "DescriptorRegisters"]

#: Payload of a register write on ``i_cfg``.
CFG_LAYOUT = data.StructLayout({"addr": unsigned(ADDR_BITS), "data": unsigned(DATA_BITS)})


class DescriptorRegisters(wiring.Component):
    """Register writes on ``i_cfg`` -> the layer descriptor, a start pulse, error flags.

    Every row of :data:`~sfc_hls.hw.register_map.REGISTER_TABLE` is decoded
    here and nowhere else: a write to a row's address (or, for a per-position
    array, to ``address + j``) loads the descriptor field it names; a value
    above the row's limit (``limits[row.limit]``) or a write to an unmapped
    address sets a sticky *bad write* flag.

    Parameters: ``descriptor_layout`` (the fields the table names), ``positions``
    (``m``), ``limits`` (largest legal value per limit key).

    Ports:
        i_cfg (In stream ``{addr, data}``): register writes; ``ready`` is ``accept``.
        accept (In 1): the engine takes writes (it is idle).
        descriptor (Out ``descriptor_layout``): the registers (reset: all zero).
        start (Out 1, combinational): CONTROL was written with START this cycle.
        valid (Out 1): the descriptor may start a layer: no bad write since the
            last start, CIN, COUT, TILES >= 1, and in direct mode TAPS >= 1,
            ``TAPS * CIN <= limits["direct_reduction"]`` and REPLICAS one of ``replicas``.
        blocks_per_replica (Out): ``blocks / REPLICAS`` (``blocks`` in fast mode).
        error (Out 1): sticky: the last start had an invalid descriptor (no
            layer started); cleared by a valid start.  An invalid start also
            clears the bad-write flag, so that a rewritten descriptor can start.

    Latency: a write is visible on ``descriptor`` in the next cycle; ``start``
    and ``valid`` in the cycle of the CONTROL write see every earlier write.
    """

    def __init__(
        self,
        *,
        descriptor_layout: data.StructLayout,
        positions: int,
        limits: dict[str, int],
        blocks: int = 1,
    ) -> None:
        self.blocks = blocks
        self.descriptor_layout = descriptor_layout
        self.registers = RegisterMap(positions)
        self.limits = dict(limits)
        for reg in REGISTER_TABLE:
            if reg.limit is not None and reg.limit not in self.limits:
                raise ValueError(f"limits has no entry {reg.limit!r} (register {reg.name})")
        super().__init__(
            {
                "i_cfg": In(stream.Signature(CFG_LAYOUT)),
                "accept": In(1),
                "descriptor": Out(descriptor_layout),
                "start": Out(1),
                "valid": Out(1),
                "error": Out(1),
                "blocks_per_replica": Out(range(blocks + 1)),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        desc = self.descriptor
        bad_write = Signal()
        m.d.comb += self.i_cfg.ready.eq(self.accept)
        with m.If(self.i_cfg.valid & self.i_cfg.ready):
            self._decode(m, self.i_cfg.payload.addr, self.i_cfg.payload.data, bad_write)
        m.d.comb += self.valid.eq(
            ~bad_write
            & (desc.cin >= 1)
            & (desc.cout >= 1)
            & (desc.tiles >= 1)
            & (~desc.direct | self._direct_ok(m))
        )
        with m.If(self.start):
            with m.If(self.valid):
                m.d.sync += self.error.eq(0)
            with m.Else():
                m.d.sync += [self.error.eq(1), bad_write.eq(0)]
        return m

    def _direct_ok(self, m: Module) -> Signal:
        """Direct-mode checks: TAPS >= 1, TAPS * CIN within the limit, REPLICAS divides the
        blocks; also drives ``blocks_per_replica``."""
        desc = self.descriptor
        replicas_ok = Signal()
        with m.Switch(desc.replicas):
            for r in (r for r in range(1, self.blocks + 1) if self.blocks % r == 0):
                with m.Case(r):
                    m.d.comb += [replicas_ok.eq(1), self.blocks_per_replica.eq(self.blocks // r)]
        with m.If(~desc.direct):
            m.d.comb += self.blocks_per_replica.eq(self.blocks)
        ok = Signal()
        reduction_ok = desc.taps * desc.cin <= self.limits["direct_reduction"]
        m.d.comb += ok.eq((desc.taps >= 1) & reduction_ok & replicas_ok)
        return ok

    def _decode(self, m: Module, addr, value, bad_write: Signal) -> None:
        """One write: scalar registers by case, per-position arrays by range, others are bad."""
        desc = self.descriptor
        scalars = [r for r in REGISTER_TABLE if not r.per_position]
        arrays = [r for r in REGISTER_TABLE if r.per_position]
        n = self.registers.positions
        with m.Switch(addr):
            for reg in scalars:
                with m.Case(reg.address):
                    if reg.field is None:  # CONTROL
                        m.d.comb += self.start.eq(value == START)
                    elif reg.bit is not None:
                        m.d.sync += getattr(desc, reg.field).eq(value[reg.bit])
                    else:
                        self._check(m, reg, value, bad_write)
                        m.d.sync += getattr(desc, reg.field).eq(value)
            with m.Default():
                for k, reg in enumerate(arrays):
                    in_range = (addr >= reg.address) & (addr < reg.address + n)
                    with m.If(in_range) if k == 0 else m.Elif(in_range):
                        assert reg.field is not None  # only CONTROL has none, a scalar
                        field = getattr(desc, reg.field)
                        for j in range(n):
                            with m.If(addr == reg.address + j):
                                m.d.sync += field[j].eq(value)
                        self._check(m, reg, value, bad_write)
                with m.Else():
                    m.d.sync += bad_write.eq(1)  # unmapped address

    def _check(self, m: Module, reg, value, bad_write: Signal) -> None:
        if reg.limit is not None:
            with m.If(value > self.limits[reg.limit]):
                m.d.sync += bad_write.eq(1)
