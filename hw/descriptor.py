"""The layer-descriptor registers of the conv engine, decoded from the register table."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.config import check_target
from sfc_hls.hw.multiplier import PipelinedMultiplier
from sfc_hls.hw.register_map import (
    ADDR_BITS,
    DATA_BITS,
    REGISTERS,
    START,
    RegisterMap,
)

__all__ = ["CFG_LAYOUT", "DescriptorRegisters"]

#: Payload of a register write on ``i_cfg``.
CFG_LAYOUT = data.StructLayout({"addr": unsigned(ADDR_BITS), "data": unsigned(DATA_BITS)})


class DescriptorRegisters(wiring.Component):
    """Register writes on ``i_cfg`` -> a staged descriptor; START makes it the active one.

    Every row of the engine's register table (:attr:`RegisterMap.table
    <sfc_hls.hw.register_map.RegisterMap.table>`) is decoded
    here and nowhere else: a write to a row's address (or, for a per-position
    array, to ``address + j``) loads the *staged* descriptor field it names; a
    value above the row's limit (``limits[row.limit]``) or a write to an
    unmapped address sets a sticky *bad write* flag.

    Two copies of the descriptor: writes go to the staged one at any time,
    also while a layer runs, so that the next layer is described during the
    current one.  Writing CONTROL with START *commits* the staged descriptor:
    ``i_cfg`` stalls (``pending``) until the engine is idle (``accept``); in
    that cycle the staged descriptor is checked and, if valid, copied to
    ``descriptor`` and ``start`` pulses in the next cycle.  A layer committed
    during the previous one therefore starts one cycle after that one ends.
    Writes are registered before they are decoded, so no decoder hangs on the
    port (``ready`` is the register ``~pending``).

    Parameters: ``descriptor_layout`` (the fields the table names), ``registers``
    (the engine's :class:`~sfc_hls.hw.register_map.RegisterMap`: ``m`` positions and
    whether the map rows are decoded), ``limits`` (largest legal value per limit key).

    Ports:
        i_cfg (In stream ``{addr, data}``): register writes; ``ready`` is ``~pending``.
        accept (In 1): the engine can start a layer (it is idle).
        descriptor (Out ``descriptor_layout``): the running layer's registers (reset: all zero).
        start (Out 1, registered): a layer with ``descriptor`` starts.
        pending (Out 1): a START waits for the engine; the staged descriptor is locked.
        valid (Out 1): the staged descriptor may start a layer: no bad write since the
            last commit, CIN, COUT, TILES >= 1, and in direct mode TAPS >= 1,
            ``TAPS * CIN <= limits["direct_reduction"]`` and REPLICAS one of ``replicas``;
            with MAP_INPUT set, fast mode and IMAGES, HEIGHT, WIDTH >= 1.
        blocks_per_replica (Out): ``blocks / REPLICAS`` of ``descriptor`` (``blocks`` in fast mode).
        reduction (Out, registered with ``descriptor``): products per accumulator of the
            running layer, ``TAPS * CIN`` in direct mode, ``CIN`` in fast mode.  The one
            control multiply of the engine (shared with the TAPS * CIN check): every
            DSP of the top counts against the MAC array's efficiency.
        error (Out 1): sticky: the last commit had an invalid descriptor (no
            layer started); cleared by a valid commit.  An invalid commit also
            clears the bad-write flag, so that a rewritten descriptor can start.

    Latency: a write taken in cycle ``t`` is in the staged descriptor from
    cycle ``t + 2``; ``valid`` follows four cycles later (``TAPS * CIN`` in three
    registered stages, :data:`PRODUCT_LATENCY`, and the checks registered: no multiply
    and compare chain ends in the commit).  A START taken in cycle ``t`` with the
    engine idle commits in cycle ``t + 5`` (:data:`COMMIT_WAIT` ``+ 1``, seeing every
    earlier write): ``descriptor`` and ``start`` (or ``error``) change in cycle
    ``t + 7`` (:data:`START_DELAY` cycles after the write).
    """

    #: Stages of the TAPS * CIN multiplier (registered operands, product and output:
    #: three for any width of TAPS, one multiplier block per 17 bits of it).
    PRODUCT_LATENCY = 3
    #: Cycles from a START being taken to the earliest commit: the write before it is
    #: decoded, then TAPS * CIN, then the registered checks see it.
    COMMIT_WAIT = PRODUCT_LATENCY + 1
    #: Cycles from the START write (engine idle) to the ``start`` pulse (the commit,
    #: then the descriptor's load).
    START_DELAY = COMMIT_WAIT + 3

    def __init__(
        self,
        *,
        descriptor_layout: data.StructLayout,
        registers: RegisterMap,
        limits: dict[str, int],
        blocks: int = 1,
        target: str = "xilinx",
    ) -> None:
        check_target(target)
        self.target = target
        if not isinstance(registers, RegisterMap):
            raise TypeError(f"registers must be a RegisterMap, got {type(registers).__name__}")
        self.blocks = blocks
        self.descriptor_layout = descriptor_layout
        self.registers = registers
        self.limits = dict(limits)
        for reg in registers.table:
            if reg.limit is not None and reg.limit not in self.limits:
                raise ValueError(f"limits has no entry {reg.limit!r} (register {reg.name})")
        super().__init__(
            {
                "i_cfg": In(stream.Signature(CFG_LAYOUT)),
                "accept": In(1),
                "descriptor": Out(descriptor_layout),
                "start": Out(1),
                "pending": Out(1),
                "valid": Out(1),
                "error": Out(1),
                "blocks_per_replica": Out(range(blocks + 1)),
                "reduction": Out(
                    range(max(self.limits["direct_reduction"], self.limits["cin"]) + 1)
                ),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        staged = Signal(self.descriptor_layout)
        bad_write = Signal()
        # Writes are registered before they are decoded (no decoder on the port's path).
        beat, beat_valid = Signal(CFG_LAYOUT), Signal()
        taken = self.i_cfg.valid & self.i_cfg.ready
        m.d.comb += self.i_cfg.ready.eq(~self.pending)
        m.d.sync += [beat.eq(self.i_cfg.payload), beat_valid.eq(taken)]
        control = (self.i_cfg.payload.addr == REGISTERS["CONTROL"]) & (
            self.i_cfg.payload.data == START
        )
        # A bad write is flagged in two registered steps: each address match with its
        # limit compare (_decode), then their OR into the sticky bad_write.
        bad_terms = Signal(self._bad_term_count(), name="bad_terms")
        m.d.sync += bad_terms.eq(0)
        with m.If(beat_valid):
            self._decode(m, staged, beat, bad_terms)
        with m.If(bad_terms.any()):
            m.d.sync += bad_write.eq(1)
        # The checks of the staged descriptor in registered steps (TAPS * CIN in a
        # multiplier with registered operands and product, then the compares), so a
        # commit waits until they have seen every earlier write.  (On ECP5 a
        # combinational MULT18X18D between two fabric registers was an 8.8 ns path.)
        product = Signal(range(self.limits["taps"] * self.limits["cin"] + 1), name="taps_cin")
        taps, cin = staged.taps, staged.cin
        m.submodules.taps_cin = mul = PipelinedMultiplier(
            taps.shape(), cin.shape(), target=self.target, latency=self.PRODUCT_LATENCY
        )
        m.d.comb += [mul.a.eq(taps), mul.b.eq(cin), mul.enable.eq(1), product.eq(mul.p)]
        staged_ok, _ = self._checks(m, staged, product)
        staged_ok_r = Signal(name="staged_ok")
        m.d.sync += staged_ok_r.eq(staged_ok)
        _, blocks_per_replica = self._checks(m, self.descriptor, None)
        m.d.comb += [
            self.valid.eq(~bad_write & staged_ok_r),
            self.blocks_per_replica.eq(blocks_per_replica),
        ]
        # Cycles since the START was taken (saturating): the commit waits for
        # COMMIT_WAIT of them (the last write before the START is decoded in the first).
        age = Signal(range(self.COMMIT_WAIT + 1))
        with m.If(taken & control):
            m.d.sync += age.eq(0)
        with m.Elif(age != self.COMMIT_WAIT):
            m.d.sync += age.eq(age + 1)
        # A valid commit loads the descriptor one cycle later, from a register: the
        # load enable reaches every descriptor bit (on ECP5 the commit condition on
        # that net was an 8.8 ns path).  The staged descriptor is still locked then:
        # a write taken after the commit reaches it a cycle later still.
        load, reject = Signal(name="load_descriptor"), Signal(name="reject_descriptor")
        m.d.sync += [self.start.eq(load), load.eq(0), reject.eq(0)]
        with m.If(load):
            m.d.sync += [
                self.descriptor.eq(staged),
                self.reduction.eq(Mux(staged.direct, product, staged.cin)),
                self.error.eq(0),
            ]
        with m.If(reject):
            m.d.sync += [self.error.eq(1), bad_write.eq(0)]
        commit = self.pending & self.accept & ~self.start & ~load & (age == self.COMMIT_WAIT)
        with m.If(commit):
            m.d.sync += [self.pending.eq(0), load.eq(self.valid), reject.eq(~self.valid)]
        with m.Elif(taken & control):
            m.d.sync += self.pending.eq(1)
        return m

    def _checks(self, m: Module, desc, taps_cin) -> tuple[Signal, Signal]:
        """``(ok, blocks_per_replica)`` of descriptor ``desc``: CIN, COUT, TILES >= 1 and, in
        direct mode, TAPS >= 1, TAPS * CIN (``taps_cin``; None: ``ok`` unused) within the
        limit, REPLICAS a divisor of the blocks; MAP_INPUT only in fast mode with IMAGES,
        HEIGHT, WIDTH >= 1; SPATIAL_WEIGHTS only in fast mode; not ACT_REPLAY with MAP_INPUT."""
        replicas_ok = Signal()
        blocks_per_replica = Signal(range(self.blocks + 1))
        with m.Switch(desc.replicas):
            for r in (r for r in range(1, self.blocks + 1) if self.blocks % r == 0):
                with m.Case(r):
                    m.d.comb += [replicas_ok.eq(1), blocks_per_replica.eq(self.blocks // r)]
        with m.If(~desc.direct):
            m.d.comb += blocks_per_replica.eq(self.blocks)
        ok = Signal()
        reduction_ok = 1 if taps_cin is None else taps_cin <= self.limits["direct_reduction"]
        direct_ok = (desc.taps >= 1) & reduction_ok & replicas_ok
        features_ok = 1
        if self.registers.map_input:
            shape_ok = (desc.images >= 1) & (desc.height >= 1) & (desc.width >= 1)
            features_ok = ~desc.map_input | (~desc.direct & shape_ok)
        if self.registers.weight_transform:  # spatial weights are a fast-mode format
            features_ok = features_ok & ~(desc.spatial_weights & desc.direct)
        if self.registers.act_replay and self.registers.map_input:  # one activation source
            features_ok = features_ok & ~(desc.act_replay & desc.map_input)
        m.d.comb += ok.eq(
            (desc.cin >= 1)
            & (desc.cout >= 1)
            & (desc.tiles >= 1)
            & (~desc.direct | direct_ok)
            & features_ok
        )
        return ok, blocks_per_replica

    def _bad_term_count(self) -> int:
        """Terms of a bad write: no register at the address, and one per limit compare."""
        return 1 + sum(1 for reg in self._limited())

    def _limited(self) -> list:
        """The registers whose written value is compared against a limit."""
        return [
            reg
            for reg in self.registers.table
            if reg.limit is not None and reg.bit is None and reg.field is not None
        ]

    def _decode(self, m: Module, desc, beat, bad_terms: Signal) -> None:
        """One write ``beat`` into ``desc``: scalar registers by case, per-position arrays by
        range (CONTROL is seen on the port: it sets ``pending``).  A write to no register,
        or of a value above its register's limit, sets a bit of ``bad_terms`` (registered;
        their OR sets ``bad_write`` the cycle after): bit 0 when no address matches, one bit
        per limit compare, each an address match ANDed with a compare against a constant
        (the register map's addresses are distinct), not a priority chain through the
        decoder."""
        addr, value = beat.addr, beat.data
        scalars = [r for r in self.registers.table if not r.per_position]
        arrays = [r for r in self.registers.table if r.per_position]
        n = self.registers.positions
        in_range = {reg.name: (addr >= reg.address) & (addr < reg.address + n) for reg in arrays}
        with m.Switch(addr):
            for reg in scalars:
                with m.Case(reg.address):
                    if reg.field is not None and reg.bit is not None:
                        m.d.sync += getattr(desc, reg.field).eq(value[reg.bit])
                    elif reg.field is not None:
                        m.d.sync += getattr(desc, reg.field).eq(value)
            with m.Default():
                for reg in arrays:
                    assert reg.field is not None  # only CONTROL has none, a scalar
                    field = getattr(desc, reg.field)
                    with m.If(in_range[reg.name]):
                        for j in range(n):
                            with m.If(addr == reg.address + j):
                                m.d.sync += field[j].eq(value)
        mapped = [addr == reg.address for reg in scalars] + list(in_range.values())
        over = [
            (in_range[reg.name] if reg.per_position else addr == reg.address)
            & (value > self.limits[reg.limit])
            for reg in self._limited()
        ]
        m.d.sync += bad_terms.eq(Cat(~_any(mapped), *over))


def _any(terms: list) -> Value:
    """The OR of ``terms`` (0 for none)."""
    return Cat(*terms).any() if terms else Const(0, 1)
