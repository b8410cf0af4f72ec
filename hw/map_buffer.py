"""On-chip feature-map buffer: row-major input rows in, the fast mode's overlapping tiles out.

A DMA reads a feature map from DDR row by row, each byte once per layer; the
engine's fast mode consumes ``L x L`` tiles that overlap by ``L - M`` pixels
and are streamed once per output-channel group.  :class:`MapBuffer` holds
the layer's whole input map in block RAM and replays the tiles from there,
so that the activations cross the external interface once per layer instead
of ``(L/M)^2 * groups`` times (docs/datapath.md, "Map input").

Storage.  ``2LP`` memories of ``L``-pixel words: memory ``(b, h, q)`` holds,
for every row ``r`` with ``r mod L == b``, the halves ``h`` (0: columns
``2Lk .. 2Lk+L-1``, 1: the next ``L``) of the row's column pairs ``k`` with
``k mod P == q``, ``P`` pairs arriving in one beat.  Row ``r`` of plane ``p``
(image ``n``, channel ``ci``: ``p = n * CIN + ci``) is at word
``p * PS + (r div L) * SH + k div P``, with ``SH = ceil(W / 2LP)`` words (beats)
per row and ``PS = ceil(H / L) * SH`` per plane.  Any ``L`` consecutive rows
hit each row bank once and any ``L`` consecutive columns at most the two
halves of two neighbouring pairs: one tile row per row bank per cycle, a
whole tile per cycle; a beat's ``P`` pairs go to ``2P`` memories at once.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from sfc_hls.hw.pipeline import StallPipeline
from sfc_hls.map_input import DIM_BITS

__all__ = ["MapBuffer"]


class _Generator:
    """Internal stream of the read generator: ``valid`` = a tile beat is addressed, ``ready``."""

    def __init__(self) -> None:
        self.valid = Signal(name="gen_valid")
        self.ready = Signal(name="gen_ready")


class MapBuffer(wiring.Component):
    """Feature map in (row-major beats of ``2LP`` pixels), fast-mode tile beats out.

    Parameters: ``input_tile`` ``L`` and ``output_tile`` ``M`` of the engine's
    algorithm (stride 1, kernel ``L - M + 1``), ``pairs`` ``P`` (1, 2 or 4),
    ``depth`` words per memory,
    ``in_bits``, ``act_layout`` (the engine's ``i_act`` beat: the tile's
    ``L*L`` pixels row-major, zero beyond), ``pco`` and ``cout_max`` (the
    groups: a tile pass per ``P_co`` output channels), ``cin_max``.

    Ports:
        i_map (In stream ``2LP`` x ``in_bits``): the layer's input map, planes in
            order ``(image, channel)``, rows top to bottom, each row as
            ``ceil(W / 2LP)`` beats of ``2LP`` columns (zero past ``W``).  ``ready`` is a
            register: beats are taken from a layer's start until its map is complete.
        o_act (Out stream ``act_layout``): per group, per image, tile row, tile column,
            input channel: the tile's ``L x L`` pixels (zero outside the map).
        start (In 1): a layer with map input starts (one cycle; ``images``, ``cin``,
            ``cout``, ``height``, ``width``, ``padding`` held until the next start).
        loading (Out 1): the map of the running layer is not complete yet.
        overflow (Out 1, sticky until ``start``): the map did not fit (words past
            ``depth`` were dropped; the tiles are then wrong).

    Latency: the first tile beat is offered 6 cycles after the map's last beat
    is taken (:data:`FIRST_BEAT_DELAY`; the map is complete before any tile is read).  Throughput: one ``i_map``
    beat per cycle while loading, one ``o_act`` beat per cycle while ``o_act.ready``.
    Backpressure: the read side is a stall-together pipeline (:mod:`sfc_hls.hw.pipeline`)
    whose generator waits on ``o_act.ready``; ``i_map.ready`` is a register.
    """

    #: Stages from the read generator to ``o_act``: addresses, block RAM, column select, rows.
    READ_LATENCY = 4
    #: With the map's ``B`` beats back to back from the first cycle they can be taken
    #: (the cycle after ``start``), the first ``o_act`` beat is offered ``B +
    #: FIRST_BEAT_DELAY`` cycles after that one: the last beat is taken in cycle ``B - 1``,
    #: ``loaded`` and the generator's ``active`` register follow, then the read pipeline.
    FIRST_BEAT_DELAY = 1 + READ_LATENCY

    def __init__(
        self,
        *,
        input_tile: int,
        output_tile: int,
        pairs: int,
        depth: int,
        in_bits: int,
        act_layout: data.ArrayLayout,
        pco: int,
        cin_max: int,
        cout_max: int,
    ) -> None:
        if not 1 <= output_tile <= input_tile:
            raise ValueError(
                f"output_tile must be in [1, input_tile={input_tile}], got {output_tile}"
            )
        if pairs not in (1, 2, 4):
            raise ValueError(f"pairs must be 1, 2 or 4, got {pairs!r}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if act_layout.length < input_tile**2:
            raise ValueError(f"act_layout holds {act_layout.length} pixels, a tile {input_tile**2}")
        self.L, self.M, self.P, self.depth = input_tile, output_tile, pairs, depth
        self.in_bits, self.pco = in_bits, pco
        self.cin_max, self.cout_max = cin_max, cout_max
        self.addr_bits = ceil_log2(depth + 1) + 1
        super().__init__(
            {
                "i_map": In(
                    stream.Signature(data.ArrayLayout(signed(in_bits), 2 * input_tile * pairs))
                ),
                "o_act": Out(stream.Signature(act_layout)),
                "start": In(1),
                "images": In(unsigned(DIM_BITS)),
                "cin": In(range(cin_max + 1)),
                "cout": In(range(cout_max + 1)),
                "height": In(unsigned(DIM_BITS)),
                "width": In(unsigned(DIM_BITS)),
                "padding": In(range(input_tile)),
                "loading": Out(1),
                "overflow": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        L = self.L
        word = data.ArrayLayout(signed(self.in_bits), L)
        # banks[b][h][q]: row bank b, half h, pair q of a beat
        banks = [
            [
                [Memory(shape=word, depth=self.depth, init=[]) for _ in range(self.P)]
                for _ in range(2)
            ]
            for _ in range(L)
        ]
        for b, halves in enumerate(banks):
            for h, mems in enumerate(halves):
                for q, mem in enumerate(mems):
                    m.submodules[f"bank{b}_{h}_{q}"] = mem
        geometry = self._writer(m, banks)
        self._reader(m, banks, geometry)
        return m

    # ------------------------------------------------------------------ write side
    def _writer(self, m: Module, banks) -> tuple[Signal, Signal, Signal]:
        """Map beats -> banks.  Returns ``(loaded, row_words SH, plane_words PS)``."""
        L = self.L
        w = {
            "k": Signal(unsigned(DIM_BITS), name="w_beat"),  # beat of the row
            "col": Signal(unsigned(DIM_BITS + 1), name="w_col"),  # first column of the beat
            "rmod": Signal(range(L), name="w_rmod"),  # row mod L: the row bank
            "row": Signal(unsigned(DIM_BITS), name="w_row"),
            "block": Signal(unsigned(self.addr_bits), name="w_block"),  # word of the row block
            "ci": Signal(range(self.cin_max + 1), name="w_ci"),
            "image": Signal(unsigned(DIM_BITS), name="w_image"),
            "first_plane": Signal(name="w_first_plane"),
            "sh": Signal(unsigned(DIM_BITS), name="row_words"),
            "ps": Signal(unsigned(self.addr_bits), name="plane_words"),
            "loaded": Signal(name="loaded"),
        }
        addr = w["block"] + w["k"]
        taken = self.i_map.valid & self.i_map.ready
        fits = addr < self.depth
        # Registered write (address, data, enables): nothing hangs off the port's handshake.
        w_addr, w_row, w_en = Signal(range(self.depth)), Signal(range(L)), Signal()
        w_data = Signal(self.i_map.payload.shape())
        m.d.sync += [
            w_addr.eq(addr), w_row.eq(w["rmod"]), w_en.eq(taken & fits),
            w_data.eq(self.i_map.payload),
        ]  # fmt: skip
        half_bits = L * self.in_bits
        for b, halves in enumerate(banks):
            for h, mems in enumerate(halves):
                for q, mem in enumerate(mems):
                    port = mem.write_port()
                    lo = (2 * q + h) * half_bits
                    m.d.comb += [
                        port.addr.eq(w_addr),
                        port.data.eq(w_data.as_value()[lo : lo + half_bits]),
                        port.en.eq(w_en & (w_row == b)),
                    ]
        m.d.comb += self.i_map.ready.eq(self.loading)
        with m.If(taken):
            with m.If(~fits):
                m.d.sync += self.overflow.eq(1)
            self._write_step(m, w)
        with m.If(self.start):
            m.d.sync += [w[n].eq(0) for n in ("k", "col", "rmod", "row", "block", "ci", "image",
                                               "loaded")]  # fmt: skip
            m.d.sync += [w["first_plane"].eq(1), self.loading.eq(1), self.overflow.eq(0)]
        return w["loaded"], w["sh"], w["ps"]

    def _write_step(self, m: Module, w: dict) -> None:
        """The writer's counters after one taken map beat."""
        L = self.L
        k, col, rmod, row, block = w["k"], w["col"], w["rmod"], w["row"], w["block"]
        with m.If(col + 2 * L * self.P < self.width):
            m.d.sync += [k.eq(k + 1), col.eq(col + 2 * L * self.P)]
        with m.Else():  # the row's last beat
            m.d.sync += [k.eq(0), col.eq(0), w["sh"].eq(k + 1), row.eq(row + 1), rmod.eq(rmod + 1)]
            with m.If(row == self.height - 1):  # the plane's last row: the next plane
                next_block = block + k + 1
                m.d.sync += [row.eq(0), rmod.eq(0), block.eq(next_block), w["first_plane"].eq(0)]
                with m.If(w["first_plane"]):
                    m.d.sync += w["ps"].eq(next_block)
                with m.If(w["ci"] == self.cin - 1):
                    m.d.sync += [w["ci"].eq(0), w["image"].eq(w["image"] + 1)]
                    with m.If(w["image"] == self.images - 1):
                        m.d.sync += [self.loading.eq(0), w["loaded"].eq(1)]
                with m.Else():
                    m.d.sync += w["ci"].eq(w["ci"] + 1)
            with m.Elif(rmod == L - 1):
                m.d.sync += [rmod.eq(0), block.eq(block + k + 1)]

    # ------------------------------------------------------------------ read side
    def _reader(self, m: Module, banks, geometry) -> None:
        """Tile beats from the banks: generator -> addresses -> block RAM -> columns -> rows."""
        loaded, sh, ps = geometry
        gen = _Generator()
        pipe = StallPipeline(m, i=gen, o=self.o_act, depth=self.READ_LATENCY, name="map_read")
        tile = self._generator(m, gen, loaded, sh, ps)
        L, adv = self.L, pipe.advance
        # Stage 1: one address per bank and half, and the masks.
        base = Signal(signed(self.addr_bits + 2), name="tile_base")
        m.d.comb += base.eq(tile["plane"] + tile["row_off"])
        kk, odd = tile["s0"] >> 1, tile["s0"][0]
        # The pair of each half: half 1 holds segment s0 or s0+1 of pair kk, half 0 of
        # pair kk + odd; a pair is word pair >> log2(P) of memory pair mod P.
        half_pair = (kk + odd, kk)
        shift = self.P.bit_length() - 1
        addrs = []
        for b in range(L):
            upper = Mux(tile["m0"] > b, sh, 0) if b < L - 1 else 0  # m0 <= L - 1
            addrs.append([pipe.register(m, base + upper + (half_pair[h] >> shift),
                                        name=f"addr{b}_{h}") for h in range(2)])  # fmt: skip
        r0, c0 = tile["r0"], tile["c0"]
        row_ok = Cat(((r0 + i >= 0) & (r0 + i < self.height)) for i in range(L))
        col_ok = Cat(((c0 + j >= 0) & (c0 + j < self.width)) for j in range(L))
        ctrl = {"m0": tile["m0"], "o": tile["o"], "odd": odd, "row_ok": row_ok, "col_ok": col_ok}
        if shift:  # the memory of each half's pair
            ctrl |= {"sel0": half_pair[0][:shift], "sel1": half_pair[1][:shift]}
        ctrl1 = {n: pipe.register(m, v, name=f"{n}_s1") for n, v in ctrl.items()}
        # Stage 2: block RAM (its read register holds while the pipeline stalls).
        ctrl2 = {n: pipe.register(m, v, name=f"{n}_s2") for n, v in ctrl1.items()}
        words = [[self._read(m, banks[b][h], addrs[b][h], ctrl2.get(f"sel{h}"), adv, f"w{b}_{h}")
                  for h in range(2)] for b in range(L)]  # fmt: skip
        # Stage 3: per bank, the L columns c0 .. c0+L-1 out of its two half-words.
        windows = [self._columns(m, pipe, words[b], ctrl2, b) for b in range(L)]
        ctrl3 = {n: pipe.register(m, v, name=f"{n}_s3") for n, v in ctrl2.items()}
        # Stage 4: tile row i is bank (m0 + i) mod L; zero outside the map.
        self._rows(m, pipe, windows, ctrl3)

    def _read(self, m: Module, mems, addr, sel, adv, name: str):
        """The word at ``addr`` of the ``P`` memories of one half: of memory ``sel`` (the
        pair's, stage 2 like the data; ``None`` for one memory)."""
        words = []
        for mem in mems:
            port = mem.read_port(transparent_for=())
            m.d.comb += [port.addr.eq(addr), port.en.eq(adv)]
            words.append(port.data)
        if sel is None:
            return words[0]
        word = Signal(mems[0].shape, name=name)
        with m.Switch(sel):
            for q, data_ in enumerate(words):
                with m.Case(q):
                    m.d.comb += word.eq(data_)
        return word

    def _columns(self, m: Module, pipe: StallPipeline, halves, ctrl: dict, b: int) -> list[Signal]:
        """Registered columns ``o .. o+L-1`` of segment ``s0`` followed by segment ``s0+1``."""
        L = self.L
        first = [Mux(ctrl["odd"], halves[1][j], halves[0][j]) for j in range(L)]
        second = [Mux(ctrl["odd"], halves[0][j], halves[1][j]) for j in range(L)]
        both = first + second
        out = []
        for j in range(L):
            pixel = Signal(signed(self.in_bits), name=f"win{b}_{j}")
            with m.Switch(ctrl["o"]):
                for o in range(L):
                    with m.Case(o):
                        m.d.comb += pixel.eq(both[o + j])
            out.append(pipe.register(m, pixel, name=f"win{b}_{j}_s3"))
        return out

    def _rows(self, m: Module, pipe: StallPipeline, windows, ctrl: dict) -> None:
        L = self.L
        pixels = []
        for i in range(L):
            for j in range(L):
                pixel = Signal(signed(self.in_bits), name=f"px{i}_{j}")
                with m.Switch(ctrl["m0"]):
                    for m0 in range(L):
                        with m.Case(m0):
                            m.d.comb += pixel.eq(windows[(m0 + i) % L][j])
                keep = ctrl["row_ok"][i] & ctrl["col_ok"][j]
                pixels.append(pipe.register(m, Mux(keep, pixel, 0), name=f"px{i}_{j}_s4"))
        flat = self.o_act.payload.as_value()
        m.d.comb += flat.eq(Cat(*pixels))

    def _generator(self, m: Module, gen: _Generator, loaded, sh, ps) -> dict:
        """Counters over (group, image, tile row, tile column, channel); values of the current beat."""
        L, M = self.L, self.M
        halo = L - M  # kernel - 1
        pos = signed(DIM_BITS + 2)
        t = {
            "r0": Signal(pos, name="r0"), "c0": Signal(pos, name="c0"),
            "m0": Signal(range(L), name="m0"), "o": Signal(range(L), name="o"),
            "s0": Signal(pos, name="s0"), "row_off": Signal(signed(self.addr_bits + 1), name="row_off"),
            "plane": Signal(unsigned(self.addr_bits), name="plane"),
        }  # fmt: skip
        image_base = Signal(unsigned(self.addr_bits), name="image_base")
        ci = Signal(range(self.cin_max + 1), name="r_ci")
        image = Signal(unsigned(DIM_BITS), name="r_image")
        remaining = Signal(range(self.cout_max + 1), name="r_remaining")
        active = Signal(name="r_active")
        # Output rows and columns (stride 1): H + 2P - (L - M), registered per layer.
        ho, wo = Signal(pos, name="ho"), Signal(pos, name="wo")
        m.d.sync += [
            ho.eq(self.height + 2 * self.padding - halo),
            wo.eq(self.width + 2 * self.padding - halo),
        ]
        pad = self.padding
        first_row = {"r0": -pad, "m0": Mux(pad > 0, L - pad, 0), "row_off": Mux(pad > 0, -sh, 0)}
        first_col = {"c0": -pad, "o": Mux(pad > 0, L - pad, 0), "s0": Mux(pad > 0, -1, 0)}
        m.d.comb += gen.valid.eq(active)
        with m.If(gen.valid & gen.ready):
            last_ci = ci == self.cin - 1
            last_col = t["c0"] + pad + M >= wo
            last_row = t["r0"] + pad + M >= ho
            with m.If(~last_ci):
                m.d.sync += [ci.eq(ci + 1), t["plane"].eq(t["plane"] + ps)]
            with m.Else():
                m.d.sync += [ci.eq(0), t["plane"].eq(image_base)]
                with m.If(~last_col):
                    self._step(m, t, "c0", "o", "s0", None, 1)
                with m.Else():
                    m.d.sync += [t[n].eq(v) for n, v in first_col.items()]
                    with m.If(~last_row):
                        self._step(m, t, "r0", "m0", None, "row_off", sh)
                    with m.Else():
                        m.d.sync += [t[n].eq(v) for n, v in first_row.items()]
                        self._next_image(m, t, image, image_base, ps, remaining, active)
        with m.If(loaded & ~active & (remaining != 0)):  # the map is complete: SH is known
            m.d.sync += [active.eq(1), t["row_off"].eq(first_row["row_off"])]
        with m.If(self.start):
            m.d.sync += [t[n].eq(v) for n, v in {**first_row, **first_col}.items()]
            m.d.sync += [t["plane"].eq(0), image_base.eq(0), ci.eq(0), image.eq(0),
                         remaining.eq(self.cout), active.eq(0)]  # fmt: skip
        return t

    def _step(self, m: Module, t: dict, pos: str, mod: str, seg, off, sh) -> None:
        """Advance a tile's first row (or column) by ``M``: position, position mod L, row/segment."""
        L, M = self.L, self.M
        wrap = t[mod] + M >= L
        m.d.sync += [t[pos].eq(t[pos] + M), t[mod].eq(Mux(wrap, t[mod] + M - L, t[mod] + M))]
        if seg is not None:
            m.d.sync += t[seg].eq(t[seg] + wrap)
        if off is not None:
            with m.If(wrap):
                m.d.sync += t[off].eq(t[off] + sh)

    def _next_image(self, m: Module, t, image, image_base, ps, remaining, active) -> None:
        """After an image's last tile: the next image, or the next group (all images again)."""
        next_base = t["plane"] + ps  # the last channel's plane + PS: the next image's first
        with m.If(image == self.images - 1):
            m.d.sync += [image.eq(0), image_base.eq(0), t["plane"].eq(0)]
            m.d.sync += remaining.eq(Mux(remaining > self.pco, remaining - self.pco, 0))
            with m.If(remaining <= self.pco):
                m.d.sync += active.eq(0)
        with m.Else():
            m.d.sync += [image.eq(image + 1), image_base.eq(next_base), t["plane"].eq(next_base)]
