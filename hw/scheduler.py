"""Group scheduler of the conv engine: parameter and weight banks (ping-pong), layer control."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from sfc_hls.hw.interface import TILE_BITS, EngineInterface
from sfc_hls.hw.port_buffers import CreditFifo

__all__ = ["GroupScheduler"]


class GroupScheduler(wiring.Component):
    """Runs one layer group by group over two parameter/weight banks.

    Three processes share the two banks (ping-pong):

    * the **loader** fills bank ``load_bank`` with a group's channel-parameter
      beats (``i_chan``: ``P_co * B`` beats, one per lane and block, written to
      the parameter memory through ``param_*``) and its weight rows (``i_weight``,
      passed to the weight buffer on ``o_weight``; both streams at once) while
      that bank is free.  A group needs ``CIN`` rows in fast mode and
      ``ceil(TAPS * CIN / W)`` rows of ``W`` entries in direct mode;
    * **compute** passes a group's ``TILES * reduction`` activation beats from
      ``i_act`` to ``o_act`` once its bank is loaded (``reduction`` = ``CIN`` in
      fast mode, ``TAPS * CIN`` in direct mode), tagging each with its control
      fields (``meta``: weight row ``ci`` and entry ``slot``, ``first``, ``last``,
      ``bank``);
    * the output side (the result serializer) frees a bank with ``release``
      (and ``release_bank``) after the group's last result.

    So the next group's weights load while the current group computes.  The
    layer ends (``busy`` falls, ``layers_done`` counts up) once the serializer
    reports ``results_done`` and no output packet is left between the
    serializer and ``o_out`` (counted from ``packet_issued`` and ``packet_out``).

    Ports: ``start`` (In, one cycle: a valid descriptor starts a layer; only
    while not ``busy``); ``cin``, ``cout``, ``tiles``, ``direct``,
    ``replicas`` (In, the descriptor, held during the layer; a direct-mode group
    covers ``P_co * REPLICAS`` output channels); ``layer_reduction`` (In, products per
    accumulator, ``TAPS * CIN`` or ``CIN``, computed by the descriptor registers); ``i_chan``,
    ``i_weight``, ``i_act`` (In streams, the engine's ports); ``param_addr``,
    ``param_data``, ``param_en`` (Out: parameter-memory writes); ``o_weight`` (Out
    stream to the weight buffer); ``restart``, ``load_bank`` (weight buffer
    control); ``o_act`` (Out stream ``{data, meta}``); ``release``,
    ``release_bank``, ``results_done``, ``packet_issued``, ``packet_out`` (In, from
    the output side); ``busy``, ``layer_start`` (Out, one cycle when a layer
    starts), ``layers_done`` (Out, 16-bit count), ``reduction`` (Out, products
    per accumulator of the running layer).
    """

    def __init__(self, interface: EngineInterface) -> None:
        self.interface = interface
        cfg = interface.config
        lay = interface.layouts
        self.pco = cfg.pco
        self.width = interface.width
        self.chan_beats = cfg.pco * interface.blocks  # per group
        back = ("serializer", "rescale", "collector", "output_transform", "splitter")
        # Beats the back end's credit FIFO may hold beyond its latency (hw/engine.py).
        fifo = CreditFifo.depth_of(interface.back_credit_latency)
        self.inflight_max = cfg.pco * (sum(interface.latency[b] for b in back) + 8) + 8 + fifo
        reduction_bits = ceil_log2(interface.reduction_max + 1)
        super().__init__(
            {
                "start": In(1),
                "cin": In(range(cfg.cin_max + 1)),
                "cout": In(range(cfg.cout_max + 1)),
                "tiles": In(unsigned(TILE_BITS)),
                "layer_reduction": In(unsigned(reduction_bits)),
                "direct": In(1),
                "replicas": In(range(interface.blocks + 1)),
                "i_chan": In(stream.Signature(lay["chan"])),
                "i_weight": In(stream.Signature(lay["weight"])),
                "i_act": In(stream.Signature(lay["act"])),
                "param_addr": Out(range(2 * self.chan_beats)),
                "param_data": Out(lay["chan"]),
                "param_en": Out(1),
                "o_weight": Out(stream.Signature(lay["weight"])),
                "restart": Out(1),
                "load_bank": Out(1),
                "o_act": Out(stream.Signature(lay["act_beat"])),
                "release": In(1),
                "release_bank": In(1),
                "results_done": In(1),
                "packet_issued": In(1),
                "packet_out": In(1),
                "busy": Out(1),
                "layer_start": Out(1),
                "layers_done": Out(16),
                "reduction": Out(unsigned(reduction_bits)),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        # Per bank: `full` holds a loaded group not yet computed; `in_use` a computed group
        # whose results have not all left (released by the serializer).  A bank is
        # loaded only when neither, and computed only when full: so compute never
        # runs ahead onto a bank whose previous group is still being read.
        full, in_use = Signal(2), Signal(2)
        set_full, computed, released = Signal(2), Signal(2), Signal(2)
        # The loader's and compute's go conditions are registers (`can_load`,
        # `compute_ready`) loaded with their next values: as an AND of five registers
        # they were a LUT level and a route in front of the handshakes, which reach
        # the port buffers' pointers and the counters' enables (on ECP5 the engines'
        # longest paths).  Banks loaded or being loaded this cycle:
        loaded = full | set_full
        can_load, compute_ready = Signal(), Signal()
        m.d.comb += self.layer_start.eq(self.start & ~self.busy)
        # Products per accumulator, latched when the layer starts.
        with m.If(self.layer_start):
            m.d.sync += self.reduction.eq(self.layer_reduction)
        layer_end = self._layer_end(m)
        # Next values without a layer start (when one starts, `can_load` rises and
        # `compute_ready` falls), selected by `m.If(layer_start)`: a testbench's X on
        # the descriptor then keeps these registers (an `if` takes X as false), as it
        # keeps `busy`, where a select would load X.
        busy_after = self.busy & ~layer_end
        load_bank_after, load_active_after = self._loader(m, can_load, set_full)
        self._compute(m, compute_ready, computed, loaded, busy_after)
        # The release is registered: it comes from the serializer's compares against
        # the layer's registers (on ECP5 a route across the device).  It frees a bank
        # a cycle later (a group's loading starts at most a cycle later), and the
        # layer's end waits for `results_done`, set at the release's edge: no release
        # is pending when the next layer starts.
        with m.If(self.release):
            m.d.sync += released.eq(Mux(self.release_bank, 0b10, 0b01))
        with m.Else():
            m.d.sync += released.eq(0)
        m.d.sync += [
            full.eq(loaded & ~computed),
            in_use.eq((in_use | computed) & ~released),
        ]
        with m.If(self.layer_start):
            m.d.sync += [self.busy.eq(1), full.eq(0), in_use.eq(0)]
        # Banks taken (full or in use) next: a computed bank turns from full to in use,
        # and a released bank is never full (it is loaded only once free), so compute's
        # handshake does not reach `can_load`.
        taken_after = loaded | (in_use & ~released)
        with m.If(self.layer_start):
            m.d.sync += can_load.eq(1)
        with m.Else():
            m.d.sync += can_load.eq(
                busy_after & load_active_after & ~taken_after.bit_select(load_bank_after, 1)
            )
        return m

    def _layer_end(self, m: Module) -> Value:
        """The layer ends when the serializer is done and no output packet is in flight;
        returns that condition (``busy`` falls at the next edge)."""
        inflight = Signal(range(self.inflight_max + 1))
        # A packet leaving o_out is counted a cycle later, from a register (the port's
        # handshake and the output buffer's select reach no counter; on ECP5 that was a
        # 10.1 ns path): the count is at worst one high for a cycle, so a layer ends at
        # worst a cycle later, never early.
        packet_out = Signal(name="packet_out_r")
        m.d.sync += packet_out.eq(self.packet_out)
        with m.If(self.packet_issued & ~packet_out):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(packet_out & ~self.packet_issued):
            m.d.sync += inflight.eq(inflight - 1)
        drained = self.results_done & (inflight == 0) & ~self.packet_issued
        end = self.busy & drained & ~self.start
        with m.If(end):
            m.d.sync += [self.busy.eq(0), self.layers_done.eq(self.layers_done + 1)]
        return end

    def _loader(self, m: Module, can_load: Signal, set_full: Signal) -> tuple[Value, Value]:
        """Parameters and weight rows of the next group into the free bank while
        ``can_load`` (busy, loading and the bank free); returns the next values of
        ``load_bank`` and of the loader's ``active`` when no layer starts."""
        cfg = self.interface.config
        remaining = Signal(range(cfg.cout_max + 1))  # channels still to load
        per_group = Signal(range(self.pco * self.interface.blocks + 1))  # channels per group
        active = Signal()
        chan_count = Signal(range(self.chan_beats + 1))
        # Registered completion flags, so that no compare (carry chain) sits between the
        # counters and the group's end: `chan_done` once chan_count reaches chan_beats;
        # `rows_left` counts down the accumulation beats still to cover, from
        # reduction - 1, and the group's rows are loaded when it is negative (its sign).
        chan_done = Signal()
        rows_left = Signal(signed(max(len(self.reduction), self.width.bit_length()) + 1))
        rows_done = rows_left[-1]
        take_chan = can_load & ~chan_done
        take_row = can_load & ~rows_done
        m.d.comb += [
            self.i_chan.ready.eq(take_chan),
            self.i_weight.ready.eq(take_row & self.o_weight.ready),
            self.o_weight.valid.eq(self.i_weight.valid & take_row),
            self.o_weight.payload.eq(self.i_weight.payload),
            self.param_addr.eq(Mux(self.load_bank, self.chan_beats, 0) + chan_count),
            self.param_data.eq(self.i_chan.payload),
            self.param_en.eq(self.i_chan.valid & take_chan),
        ]
        with m.If(self.i_chan.valid & take_chan):
            m.d.sync += [
                chan_count.eq(chan_count + 1),
                chan_done.eq(chan_count == self.chan_beats - 1),
            ]
        with m.If(self.o_weight.valid & self.o_weight.ready):
            m.d.sync += rows_left.eq(rows_left - Mux(self.direct, self.width, 1))
        # `reduction - 1`, registered when the layer starts (the next groups' start value).
        last_row = Signal.like(self.reduction)
        group_loaded = can_load & chan_done & rows_done
        with m.If(group_loaded):
            m.d.comb += self.restart.eq(1)
            m.d.sync += [
                chan_count.eq(0),
                chan_done.eq(0),
                rows_left.eq(last_row),
                remaining.eq(remaining - per_group),
            ]
        with m.If(self.layer_start):
            m.d.comb += self.restart.eq(1)
            m.d.sync += [
                remaining.eq(self.cout),
                per_group.eq(Mux(self.direct, self.pco * self.replicas, self.pco)),
                chan_count.eq(0),
                chan_done.eq(0),
                last_row.eq(self.layer_reduction - 1),
                rows_left.eq(self.layer_reduction - 1),
            ]
        m.d.comb += set_full.eq(Mux(group_loaded, Mux(self.load_bank, 0b10, 0b01), 0))
        load_bank_after = self.load_bank ^ group_loaded
        active_after = active & ~(group_loaded & (remaining <= per_group))
        with m.If(self.layer_start):
            m.d.sync += [self.load_bank.eq(0), active.eq(1)]
        with m.Else():
            m.d.sync += [self.load_bank.eq(load_bank_after), active.eq(active_after)]
        return load_bank_after, active_after

    def _compute(
        self, m: Module, ready: Signal, computed: Signal, loaded: Value, busy_after: Value
    ) -> None:
        """A group's activation beats while ``ready`` (a register: busy, computing and
        the bank full), tagged with their control fields."""
        cfg = self.interface.config
        bank = Signal()
        remaining = Signal(range(cfg.cout_max + 1))
        per_group = Signal(range(self.pco * self.interface.blocks + 1))
        active = Signal()
        beat = Signal.like(self.reduction)  # beat of the tile's accumulation
        row = Signal(range(cfg.cin_max + 1))
        slot = Signal(range(max(self.width, 2)))
        tile = Signal(unsigned(TILE_BITS))
        meta = self.o_act.payload.meta
        # The beat's and tile's position as flags, each computed one beat ahead from a
        # register (`beat == reduction - 2` before the beat advances), so that the
        # handshake and the group's end wait on no compare.  `reduction` and `tiles`
        # are taken when the layer starts (the descriptor's values).
        first_beat, last_beat, last_tile = Signal(), Signal(), Signal()
        single_beat, single_tile = Signal(), Signal()
        penult_beat = Signal.like(self.reduction)  # reduction - 2 (wraps when it is 1)
        penult_tile = Signal.like(self.tiles)
        m.d.comb += [
            self.o_act.valid.eq(self.i_act.valid & ready),
            self.i_act.ready.eq(self.o_act.ready & ready),
            self.o_act.payload.data.eq(self.i_act.payload),
            meta.ci.eq(row),
            meta.slot.eq(slot),
            meta.first.eq(first_beat),
            meta.last.eq(last_beat),
            meta.bank.eq(bank),
        ]
        with m.If(self.i_act.valid & self.i_act.ready):
            wrap = ~self.direct | (slot == self.width - 1)
            m.d.sync += [
                slot.eq(Mux(wrap, 0, slot + 1)),
                row.eq(row + wrap),
                beat.eq(beat + 1),
                first_beat.eq(last_beat),
                last_beat.eq(Mux(last_beat, single_beat, beat == penult_beat)),
            ]
            with m.If(last_beat):
                m.d.sync += [beat.eq(0), row.eq(0), slot.eq(0)]
                with m.If(last_tile):
                    m.d.sync += [
                        tile.eq(0),
                        last_tile.eq(single_tile),
                        bank.eq(~bank),
                        remaining.eq(remaining - per_group),
                    ]
                    with m.If(remaining <= per_group):
                        m.d.sync += active.eq(0)
                with m.Else():
                    m.d.sync += [tile.eq(tile + 1), last_tile.eq(tile == penult_tile)]
        with m.If(self.layer_start):
            m.d.sync += [
                bank.eq(0),
                active.eq(1),
                remaining.eq(self.cout),
                per_group.eq(Mux(self.direct, self.pco * self.replicas, self.pco)),
                beat.eq(0),
                row.eq(0),
                slot.eq(0),
                tile.eq(0),
                first_beat.eq(1),
                last_beat.eq(self.layer_reduction == 1),
                single_beat.eq(self.layer_reduction == 1),
                penult_beat.eq(self.layer_reduction - 2),
                last_tile.eq(self.tiles == 1),
                single_tile.eq(self.tiles == 1),
                penult_tile.eq(self.tiles - 2),
            ]
        # `ready` next: after a group's last beat, whether the other bank is loaded and
        # groups remain; else whether this bank is loaded (none is when a layer starts).
        # The handshake selects between the two, both computed from registers.
        after_end = busy_after & (remaining > per_group) & loaded.bit_select(~bank, 1)
        otherwise = busy_after & active & loaded.bit_select(bank, 1)
        group_end = self.i_act.valid & self.i_act.ready & last_beat & last_tile
        m.d.comb += computed.eq(Mux(group_end, Mux(bank, 0b10, 0b01), 0))
        with m.If(self.layer_start):
            m.d.sync += ready.eq(0)
        with m.Else():
            m.d.sync += ready.eq(Mux(group_end, after_end, otherwise))
