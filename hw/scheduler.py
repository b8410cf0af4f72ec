"""Group scheduler of the conv engine: parameter and weight banks (ping-pong), layer control."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.hw.interface import TILE_BITS, EngineInterface

__all__ = ["GroupScheduler"]


class GroupScheduler(wiring.Component):
    """Runs one layer group by group over two parameter/weight banks.

    Three processes share the two banks (ping-pong):

    * the **loader** fills bank ``load_bank`` with a group's ``P_co`` channel
      parameter beats (``i_chan``, stored here, offered on ``chan``) and its
      ``CIN`` weight rows (``i_weight``, passed to the weight buffer on
      ``o_weight``; both streams at once) while that bank is free;
    * **compute** passes a group's ``TILES * CIN`` activation beats from
      ``i_act`` to ``o_act`` once its bank is loaded, tagging each with its
      control fields (``meta``: ``ci``, ``first``, ``last``, ``bank``);
    * the output side (the channel serializer) frees a bank with ``release``
      (and ``release_bank``) after the group's last result.

    So the next group's weights load while the current group computes.  The
    layer ends (``busy`` falls, ``layers_done`` counts up) once the serializer
    reports ``results_done`` and no beat is left between the serializer and
    ``o_out`` (counted from ``lane_issued`` and ``out_taken``).

    Ports: ``start`` (In, one cycle: a valid descriptor starts a layer; only
    while not ``busy``), ``cin``, ``cout``, ``tiles`` (In, the descriptor, held
    during the layer); ``i_chan``, ``i_weight``, ``i_act`` (In streams, the
    engine's ports); ``o_weight`` (Out stream to the weight buffer);
    ``rows_loaded``, ``restart``, ``load_bank`` (weight buffer control);
    ``o_act`` (Out stream ``{data, meta}`` to the input transform); ``chan``
    (Out, both banks of channel parameters); ``release``, ``release_bank``,
    ``results_done``, ``lane_pending``, ``lane_issued``, ``out_taken`` (In,
    from the output side); ``busy``, ``layer_start`` (Out, one cycle when a
    layer starts), ``layers_done`` (Out, 16-bit count).
    """

    def __init__(self, interface: EngineInterface) -> None:
        self.interface = interface
        cfg = interface.config
        lay = interface.layouts
        self.pco = cfg.pco
        back = sum(interface.latency[b] for b in ("rescale", "output_transform"))
        self.inflight_max = back + interface.latency["output_quantizer"] + 1
        act_beat = data.StructLayout({"data": lay["act"], "meta": lay["beat_meta"]})
        super().__init__(
            {
                "start": In(1),
                "cin": In(range(cfg.cin_max + 1)),
                "cout": In(range(cfg.cout_max + 1)),
                "tiles": In(unsigned(TILE_BITS)),
                "i_chan": In(stream.Signature(lay["chan"])),
                "i_weight": In(stream.Signature(lay["weight"])),
                "i_act": In(stream.Signature(lay["act"])),
                "o_weight": Out(stream.Signature(lay["weight"])),
                "rows_loaded": In(range(cfg.cin_max + 1)),
                "restart": Out(1),
                "load_bank": Out(1),
                "o_act": Out(stream.Signature(act_beat)),
                "chan": Out(data.ArrayLayout(data.ArrayLayout(lay["chan"], cfg.pco), 2)),
                "release": In(1),
                "release_bank": In(1),
                "results_done": In(1),
                "lane_pending": In(1),
                "lane_issued": In(1),
                "out_taken": In(1),
                "busy": Out(1),
                "layer_start": Out(1),
                "layers_done": Out(16),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        loaded = Signal(2)  # per bank: holds a complete group not yet released
        set_loaded = Signal(2)
        clear_loaded = Signal(2)
        m.d.comb += self.layer_start.eq(self.start & ~self.busy)
        self._loader(m, loaded, set_loaded)
        self._compute(m, loaded)
        with m.If(self.release):
            m.d.comb += clear_loaded.eq(Mux(self.release_bank, 0b10, 0b01))
        m.d.sync += loaded.eq((loaded | set_loaded) & ~clear_loaded)
        with m.If(self.layer_start):
            m.d.sync += [self.busy.eq(1), loaded.eq(0)]

        # Beats between the serializer and o_out: the layer ends when none is left.
        inflight = Signal(range(self.inflight_max + 1))
        with m.If(self.lane_issued & ~self.out_taken):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(self.out_taken & ~self.lane_issued):
            m.d.sync += inflight.eq(inflight - 1)
        drained = self.results_done & (inflight == 0) & ~self.lane_pending
        with m.If(self.busy & drained & ~self.start):
            m.d.sync += [self.busy.eq(0), self.layers_done.eq(self.layers_done + 1)]
        return m

    def _loader(self, m: Module, loaded: Signal, set_loaded: Signal) -> None:
        """Parameters and weight rows of the next group into the free bank."""
        pco = self.pco
        cfg = self.interface.config
        remaining = Signal(range(cfg.cout_max + 1))  # channels still to load
        active = Signal()
        chan_count = Signal(range(pco + 1))
        bank_free = ~loaded.bit_select(self.load_bank, 1)
        can_load = self.busy & active & bank_free
        take_chan = can_load & (chan_count < pco)
        take_row = can_load & (self.rows_loaded < self.cin)
        m.d.comb += [
            self.i_chan.ready.eq(take_chan),
            self.i_weight.ready.eq(take_row & self.o_weight.ready),
            self.o_weight.valid.eq(self.i_weight.valid & take_row),
            self.o_weight.payload.eq(self.i_weight.payload),
        ]
        with m.If(self.i_chan.valid & take_chan):
            for b in range(2):
                for lane in range(pco):
                    with m.If((self.load_bank == b) & (chan_count == lane)):
                        m.d.sync += self.chan[b][lane].eq(self.i_chan.payload)
            m.d.sync += chan_count.eq(chan_count + 1)
        group_loaded = can_load & (chan_count == pco) & (self.rows_loaded == self.cin)
        with m.If(group_loaded):
            m.d.comb += [set_loaded.eq(Mux(self.load_bank, 0b10, 0b01)), self.restart.eq(1)]
            m.d.sync += [
                self.load_bank.eq(~self.load_bank),
                chan_count.eq(0),
                remaining.eq(remaining - pco),
            ]
            with m.If(remaining <= pco):
                m.d.sync += active.eq(0)
        with m.If(self.layer_start):
            m.d.comb += self.restart.eq(1)
            m.d.sync += [
                self.load_bank.eq(0),
                remaining.eq(self.cout),
                active.eq(1),
                chan_count.eq(0),
            ]

    def _compute(self, m: Module, loaded: Signal) -> None:
        """A group's activation beats once its bank is loaded, tagged with their control fields."""
        cfg = self.interface.config
        pco = self.pco
        bank = Signal()
        remaining = Signal(range(cfg.cout_max + 1))
        active = Signal()
        ci = Signal(range(cfg.cin_max + 1))
        tile = Signal(unsigned(TILE_BITS))
        ready = self.busy & active & loaded.bit_select(bank, 1)
        meta = self.o_act.payload.meta
        m.d.comb += [
            self.o_act.valid.eq(self.i_act.valid & ready),
            self.i_act.ready.eq(self.o_act.ready & ready),
            self.o_act.payload.data.eq(self.i_act.payload),
            meta.ci.eq(ci),
            meta.first.eq(ci == 0),
            meta.last.eq(ci == self.cin - 1),
            meta.bank.eq(bank),
        ]
        with m.If(self.i_act.valid & self.i_act.ready):
            with m.If(ci == self.cin - 1):
                m.d.sync += ci.eq(0)
                with m.If(tile == self.tiles - 1):
                    m.d.sync += [tile.eq(0), bank.eq(~bank), remaining.eq(remaining - pco)]
                    with m.If(remaining <= pco):
                        m.d.sync += active.eq(0)
                with m.Else():
                    m.d.sync += tile.eq(tile + 1)
            with m.Else():
                m.d.sync += ci.eq(ci + 1)
        with m.If(self.layer_start):
            m.d.sync += [
                bank.eq(0),
                remaining.eq(self.cout),
                active.eq(1),
                ci.eq(0),
                tile.eq(0),
            ]
