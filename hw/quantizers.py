"""Requantization blocks of the conv engine: :class:`ActQuantizer`, :class:`Rescale`,
:class:`OutputQuantizer`.

They implement the three requantization steps of the integer datapath
(:mod:`sfc_hls.datapath`, docs/datapath.md)::

    q   = sat(rshift(v * act_mult[j], act_shift[j]), act_bits)          ActQuantizer
    z   = rshift(acc * rescale_mult[j, co], rescale_shift)               Rescale
    out = sat(rshift((y + bias) * out_mult, out_shift), out_bits), ReLU  OutputQuantizer

with ``rshift`` the round-half-up arithmetic shift ``(p + 2^(s-1)) >> s``
(:func:`sfc_hls.datapath.rshift_round`) and ``sat`` the clamp of
:func:`sfc_hls.datapath.saturate`.

Common contract (all three are :class:`~sfc_hls.hw.pipeline.StallPipeline`
pipelines between one input and one output stream):

* throughput: one beat per cycle while the output is ready;
* latency: :attr:`latency` cycles from an input handshake to ``valid`` of its
  result (2, 2 and 3);
* backpressure: while the output holds a beat that is not taken, the whole
  pipeline stalls and the input's ``ready`` is low (``ready`` of the input
  depends combinationally on ``ready`` of the output; ``valid`` of the output
  comes from a register);
* reset: no beat in flight, ``valid`` low, :attr:`Rescale.overflow` low;
* ``meta`` is a payload field of a layout the engine chooses (``meta_layout``),
  carried from the input beat to its result unchanged (the engine's control
  fields, see :mod:`sfc_hls.hw.pipeline`); without a layout (the default) the
  payloads have no ``meta`` field;
* per-layer constants are plain input ports and must be held constant while
  beats of the layer are in the pipeline (from the first input handshake to the
  last output handshake); per-beat parameters travel in the payload.

Widths are derived from bounds, never chosen.  Every internal register is as
wide as the exact result for *every* value the input ports can carry, which is
at least the width :class:`~sfc_hls.datapath.DatapathWidths` derives for any
legal layer, so nothing wraps inside a block; and a shift amount beyond the
width of the shifted value gives the exact result 0 (``rshift_round`` of a
value ``|p| < 2^(P-1)`` by ``s >= P`` is 0), so every value of a shift port is
computed exactly as the spec does; the exception is the ``pow2`` activation
quantizer, which builds only each position's legal shifts (``act_shift_max``,
a larger one acts as the largest).  The shift ports are wide enough for the
largest legal shift of the spec (the width of the value it shifts).

Mapping: the product and its rounding constant ``2^(s-1)`` are one registered
multiply-add (a DSP slice with its post-adder and P register); the arithmetic
shift and the saturation follow in the next stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, ShapeLike, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sfc_hls.arguments import check_int
from sfc_hls.bilinear import signed_width
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import DatapathWidths, minimum_rescale_shift, signed_range
from sfc_hls.hw.multiplier import PipelinedMultiplier
from sfc_hls.hw.pipeline import StallPipeline, meta_field, meta_width, registered
from sfc_hls.hw.transform import adder_netlist

__all__ = [
    "ActQuantizer",
    "ActQuantizerWidths",
    "OutputQuantizer",
    "OutputQuantizerWidths",
    "Rescale",
    "RescaleWidths",
    "engine_widths",
]


# -- argument checks and width arithmetic ----------------------------------------------------


def _check_config(config: object) -> EngineConfig:
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    return config


def engine_widths(config: EngineConfig, cin: int | None = None) -> DatapathWidths:
    """Datapath widths of the largest legal layer: ``cin`` (default ``config.cin_max``)
    input channels at the minimum rescale shift.

    The activation widths do not depend on the layer; ``acc_bits`` and
    ``rescaled_bits`` grow with ``cin``, so these are the largest of any layer
    with at most ``cin`` input channels.
    """
    _check_config(config)
    cin = config.cin_max if cin is None else cin
    return DatapathWidths.derive(config.algo, config, cin, minimum_rescale_shift(cin, config))


def _product_width(value_bits: int, mult_bits: int) -> int:
    """Signed width of ``signed(value_bits) * unsigned(mult_bits)`` over all operand values."""
    lo, hi = signed_range(value_bits)
    mult_max = (1 << mult_bits) - 1
    return signed_width(lo * mult_max, hi * mult_max)


class _RoundingShift:
    """``rshift_round(p, s)`` in hardware for a signed ``product_bits`` value ``p``.

    Stage A adds the rounding constant :meth:`half` (``2^(s-1)``, 0 for
    ``s = 0``) to ``p`` in ``product_bits + 1`` bits; stage B shifts the sum
    right arithmetically (:meth:`shift`).  Shift amounts above ``product_bits``
    are clamped to it, where the result is already 0, so every value of a
    ``shift_width``-bit shift port is exact.
    """

    def __init__(self, *, product_bits: int, shift_width: int) -> None:
        self.product_bits = product_bits
        self.round_bits = product_bits + 1
        self.shift_width = shift_width

    def effective(self, shift: Value) -> Value:
        shift = Value.cast(shift)
        if (1 << self.shift_width) - 1 <= self.product_bits:
            return shift
        return Mux(shift > self.product_bits, self.product_bits, shift)

    def half(self, shift: Value) -> Value:
        """``2^(s-1)`` for ``s > 0``, else 0, as ``unsigned(product_bits)`` (``s`` from
        :meth:`effective`)."""
        one_hot = (Const(1, 1) << shift)[: self.product_bits + 1]
        return one_hot[1:]

    def shift(self, total: Value, shift: Value) -> Value:
        """Arithmetic right shift of the rounded sum; the result fits ``product_bits``."""
        return (total >> shift)[: self.product_bits].as_signed()

    #: Bits of the shift a two-stage shift applies in its second stage (:meth:`shift_low`).
    LOW_SHIFT_BITS = 3

    def shift_low(self, value: Value, shift: Value) -> Value:
        """``value >> (s mod 8)`` (arithmetic): the second stage of a two-stage
        :meth:`doubled_shift` whose first took ``part="high"``."""
        low = Value.cast(shift)[: self.LOW_SHIFT_BITS]
        return Value.cast(value).as_signed() >> low

    @classmethod
    def doubled_shift(cls, product: Value, shift: Value, *, part: str = "all") -> Value:
        """``t = (2 p) >> s`` (arithmetic), signed ``product_bits + 1``: the first half
        of the shift-first form of ``rshift_round(p, s) = (t + 1) >> 1``.

        Equal to the add-first form for every ``s``: for ``s >= 1``, ``t =
        floor(p / 2^(s-1))`` and ``floor((p + 2^(s-1)) / 2^s) = floor((t + 1) / 2)``
        (the dropped low bits of ``p`` add less than one half to ``(t + 1) / 2``,
        which is an integer or a half); for ``s = 0``, ``t = 2p`` and ``(2p + 1) >> 1
        = p``.  The rounding carry then runs through a value already cut to the
        output range (:func:`_clamp`) instead of the whole product.
        """
        doubled = Cat(Const(0, 1), product).as_signed()
        if part == "high":  # shift by s - (s mod 8): (x >> a) >> b == x >> (a + b)
            shift = Value.cast(shift)
            return doubled >> Cat(Const(0, cls.LOW_SHIFT_BITS), shift[cls.LOW_SHIFT_BITS :])
        return doubled >> shift


def _fits(value: Value, bits: int) -> Value:
    """1 when signed ``value`` lies in ``signed(bits)``: its bits from ``bits - 1`` up are
    all equal (a reduction in LUTs, no comparator carry chain)."""
    value = Value.cast(value)
    if value.shape().width <= bits:
        return Const(1, 1)
    upper = value[bits - 1 :]
    return ~upper.any() | upper.all()


def _clamp(value: Value, bits: int, *, relu: Value | None = None) -> Value:
    """:func:`_saturate` built from the sign bit and :func:`_fits` (no comparators)."""
    value = Value.cast(value)
    lo, hi = signed_range(bits)
    sign = value[-1]
    if value.shape().width > bits:
        value = Mux(_fits(value, bits), value[:bits].as_signed(), Mux(sign, lo, hi))
    return value if relu is None else Mux(relu & sign, 0, value)


def _stage(m: Module, pipe: StallPipeline, values: list, layout: data.ArrayLayout, name: str):
    """The next pipeline register of ``pipe``: element ``j`` loads ``values[j]``."""
    return pipe.register(m, _lanes(m, layout, values, name), name=name, shape=layout)


#: Signed width of the wide multiplier input of a DSP48E2 (27 x 18 bits signed).
DSP_WIDE_INPUT_BITS = 27


def _split_product(
    m: Module, pipe: StallPipeline, values: list, mult: Value, name: str
) -> tuple[list, list, int]:
    """One pipeline stage of ``values[k] * mult`` for signed values wider than a DSP input.

    Each value splits into ``hi * 2^L + lo`` with ``hi`` the top
    :data:`DSP_WIDE_INPUT_BITS` bits (signed) and ``lo`` the low ``L`` bits
    (unsigned); ``hi * mult`` is one DSP multiply, ``lo * mult`` a sum of ``L``
    shifted copies of ``mult`` in fabric (no ``*``, so synthesis does not spend a
    second DSP on it).  Returns the registered ``(hi products, lo products, L)``;
    the product is ``(hi_product << L) + lo_product``, exactly (the next stage adds them).
    ``L = 0`` (narrow values): the lo products are 0.
    """
    width = Value.cast(values[0]).shape().width
    low = max(width - DSP_WIDE_INPUT_BITS, 0)
    mult_bits = Value.cast(mult).shape().width
    hi_layout = data.ArrayLayout(signed(width - low + mult_bits + 1), len(values))
    hi = _stage(m, pipe, [v[low:].as_signed() * mult for v in values], hi_layout, f"{name}_hi")
    if not low:
        return hi, [0] * len(values), 0
    lo_layout = data.ArrayLayout(unsigned(low + mult_bits), len(values))
    lo_terms = [_balanced_sum([Mux(v[i], mult, 0) << i for i in range(low)]) for v in values]
    return hi, _stage(m, pipe, lo_terms, lo_layout, f"{name}_lo"), low


#: Pipeline stages of a multiply on ECP5: the MULT18X18D blocks' input and output
#: registers and the register of the joined limb products
#: (:class:`~sfc_hls.hw.multiplier.PipelinedMultiplier`).
ECP5_MULTIPLY_STAGES = 3


def _block_products(
    m: Module, pipe: StallPipeline, pairs: list, layout: data.ArrayLayout, name: str
) -> Value:
    """``a * b`` of each ``(a, b)`` in ``pairs`` from MULT18X18D blocks
    (:data:`ECP5_MULTIPLY_STAGES` stages of ``pipe``, enabled with its advance)."""
    products = []
    for j, (a, b) in enumerate(pairs):
        a, b = Value.cast(a), Value.cast(b)
        mul = PipelinedMultiplier(a.shape(), b.shape(), target="ecp5",
                                  latency=ECP5_MULTIPLY_STAGES)  # fmt: skip
        m.submodules[f"{name}_mul{j}"] = mul
        m.d.comb += [mul.a.eq(a), mul.b.eq(b), mul.enable.eq(pipe.advance)]
        products.append(mul.p)
    return _lanes(m, layout, products, name)


def _balanced_sum(terms: list) -> Value:
    """The sum of ``terms`` as a tree of adders (depth ``ceil(log2(len(terms)))``)."""
    while len(terms) > 1:
        terms = [sum(terms[i : i + 2]) if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]  # fmt: skip
    return terms[0]


def _saturate(value: Value, bits: int, *, relu: Value | None = None) -> Value:
    """Clamp ``value`` to ``signed(bits)`` (to ``[0, max]`` while ``relu`` is high)."""
    lo, hi = signed_range(bits)
    width = Value.cast(value).shape().width
    if width <= bits and relu is None:
        return value
    high = Mux(value > hi, hi, value) if width > bits else value
    if relu is None:
        return Mux(value < lo, lo, high)
    floor = Mux(relu, 0, lo)
    return Mux(value < floor, floor, high)


def _lanes(m: Module, layout: data.ArrayLayout, values: list, name: str) -> Value:
    """A signal of ``layout`` whose element ``j`` is ``values[j]`` (each converted to the
    element's shape, as an assignment does)."""
    lanes = Signal(layout, name=f"{name}_next")
    for j, value in enumerate(values):
        m.d.comb += lanes[j].eq(value)
    return lanes


# -- ActQuantizer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ActQuantizerWidths:
    """Widths of :class:`ActQuantizer` for an engine (no Amaranth objects; see its docstring)."""

    positions: int
    v_bits: int
    act_bits: int
    has_multiplier: bool
    product_bits: int
    max_shift: int
    shift_width: int
    v_ranges: tuple[tuple[int, int], ...]
    shift_limits: tuple[int, ...]

    @classmethod
    def derive(cls, config: EngineConfig) -> ActQuantizerWidths:
        """The widths of ``config``'s quantizer.  Per position ``j``: ``v_ranges[j]``, the
        range of its input over both modes (fast: row ``j`` of ``B^T``; direct: a pixel),
        and ``shift_limits[j]``, the largest legal shift of either mode
        (``DatapathWidths.act_shift_max``)."""
        widths = engine_widths(config)
        has_multiplier = config.scale_mode == "fixed"
        product_bits = (
            _product_width(widths.v_bits, config.act_mult_bits) if has_multiplier else widths.v_bits
        )
        max_shift = widths.act_product_bits
        direct = DatapathWidths.derive(
            config.algo, config, 1, minimum_rescale_shift(1, config), mode="direct", kernel=1
        )
        d_lo, d_hi, d_limit = int(direct.v_lo[0]), int(direct.v_hi[0]), int(direct.act_shift_max[0])
        return cls(
            positions=config.algo.mults,
            v_bits=widths.v_bits,
            act_bits=config.act_bits,
            has_multiplier=has_multiplier,
            product_bits=product_bits,
            max_shift=max_shift,
            shift_width=max_shift.bit_length(),
            v_ranges=tuple(
                (min(int(lo), d_lo), max(int(hi), d_hi))
                for lo, hi in zip(widths.v_lo, widths.v_hi, strict=True)
            ),
            shift_limits=tuple(max(int(s), d_limit) for s in widths.act_shift_max),
        )


class ActQuantizer(wiring.Component):
    """Transform-domain activation requantization, all ``m`` positions of one tile per beat.

    ``q[j] = saturate(rshift_round(v[j] * act_mult[j], act_shift[j]), act_bits)``;
    in ``pow2`` mode ``act_mult == 1`` and no multiplier is generated.

    Parameters
    ----------
    config : EngineConfig
        The engine: algorithm (``m`` positions), ``in_bits``, ``act_bits``,
        ``scale_mode``, ``act_mult_bits``.
    meta_layout : ShapeLike or None
        Shape of the ``meta`` field carried with each beat (none by default).

    Attributes
    ----------
    widths : ActQuantizerWidths
        ``positions`` (``m``); ``v_bits``, the width of the input ``v = B^T x``
        (``DatapathWidths.v_bits``); ``product_bits``, the width of
        ``v * act_mult`` for every ``v_bits``-bit ``v`` and every multiplier (in
        ``pow2`` mode ``v_bits``: the product is ``v``; this can be one bit less
        than the spec's ``act_product_bits``, which bounds ``|v|``
        symmetrically, and still holds every ``v`` of ``[v_lo, v_hi]``);
        ``max_shift``, the largest ``act_shift`` of any position and mode
        (``DatapathWidths.act_product_bits``); ``shift_width``, the width of
        each ``act_shift`` entry (``max_shift.bit_length()``); per position,
        ``v_ranges`` (its input's range over both modes) and ``shift_limits``
        (its largest legal shift of either mode, ``DatapathWidths.act_shift_max``).
    latency : int
        2 (``fixed``: registered multiply-add with the rounding constant, then shift and
        saturate; ``pow2``: the shift select, then the rounding); on ECP5 3 (the per-layer
        shifts in registers and one more register before the saturation or the clamp:
        :meth:`latency_of`).
    in_layout, out_layout : data.StructLayout
        Payload layouts of ``i_v`` and ``o_q``.

    Ports
    -----
    i_v : In(stream.Signature(in_layout))
        ``{"data": ArrayLayout(signed(v_bits), m), "meta": meta_layout}``.
    o_q : Out(stream.Signature(out_layout))
        ``{"data": ArrayLayout(signed(act_bits), m), "meta": meta_layout}``.
    act_mult : In(ArrayLayout(unsigned(act_mult_bits), m))
        Per-layer multipliers; only in ``fixed`` mode (absent in ``pow2`` mode).
    act_shift : In(ArrayLayout(unsigned(shift_width), m))
        Per-layer shift amounts; the spec's legal range is ``[0, act_shift_max[j]]``
        (``shift_limits[j]``).  ``fixed``: every value of the port is computed exactly;
        ``pow2``: a value above ``shift_limits[j]`` acts as ``shift_limits[j]``.

    Latency 2 (ECP5: 3), one beat per cycle, backpressure and reset as in
    :mod:`sfc_hls.hw.quantizers`.  On ECP5 ``act_shift`` must be stable from the
    cycle before the layer's first beat (the engine sets it before the layer starts).
    """

    def __init__(self, config: EngineConfig, *, meta_layout: ShapeLike | None = None) -> None:
        self.config = _check_config(config)
        self.latency = self.latency_of(config.target)
        self.widths = w = ActQuantizerWidths.derive(config)
        self.positions, self.v_bits, self.act_bits = w.positions, w.v_bits, w.act_bits
        self.has_multiplier = w.has_multiplier
        self.product_bits, self.max_shift, self.shift_width = (
            w.product_bits,
            w.max_shift,
            w.shift_width,
        )
        self._rounding = _RoundingShift(product_bits=w.product_bits, shift_width=w.shift_width)
        self.round_bits = self._rounding.round_bits
        m = self.positions
        meta = meta_field(meta_layout)
        self.in_layout = data.StructLayout({"data": data.ArrayLayout(signed(w.v_bits), m), **meta})
        self.out_layout = data.StructLayout(
            {"data": data.ArrayLayout(signed(w.act_bits), m), **meta}
        )
        members = {
            "i_v": In(stream.Signature(self.in_layout)),
            "o_q": Out(stream.Signature(self.out_layout)),
            "act_shift": In(data.ArrayLayout(unsigned(w.shift_width), m)),
        }
        if w.has_multiplier:
            members["act_mult"] = In(data.ArrayLayout(unsigned(config.act_mult_bits), m))
        super().__init__(members)

    @property
    def meta_width(self) -> int:
        """Bits of the ``meta`` field carried through the block (0 without)."""
        return meta_width(self.out_layout)

    @staticmethod
    def latency_of(target: str) -> int:
        """Pipeline stages on ``target``: 2, on ECP5 3."""
        return 3 if target == "ecp5" else 2

    def elaborate(self, platform) -> Module:
        m = Module()
        pipe = StallPipeline(m, i=self.i_v, o=self.o_q, depth=self.latency, name="act")
        if not self.has_multiplier:
            return self._elaborate_pow2(m, pipe)
        rounding = self._rounding
        n = self.positions
        shifts = [rounding.effective(self.act_shift[j]) for j in range(n)]
        ecp5 = self.config.target == "ecp5"
        if ecp5:  # per-layer values, decoded once into registers
            shifts = [registered(m, shifts[j], f"act_shift_r{j}") for j in range(n)]

        # Stage 1 (fixed mode; pow2 is _elaborate_pow2): v * act_mult + 2^(s-1).
        total_layout = data.ArrayLayout(signed(rounding.round_bits), n)
        total_next = Signal(total_layout, name="act_total_next")
        for j in range(n):
            v = self.i_v.payload.data[j]
            m.d.comb += total_next[j].eq(v * self.act_mult[j] + rounding.half(shifts[j]))
        total = pipe.register(m, total_next, name="act_total", shape=total_layout)

        # Stage 2: arithmetic shift and saturation (ECP5: the shift, then stage 3 saturates).
        q_layout = self.out_layout.members["data"]
        q_next = Signal(q_layout, name="act_q_next")
        shifted = [rounding.shift(total[j], shifts[j]) for j in range(n)]
        if ecp5:
            shifted_layout = data.ArrayLayout(Value.cast(shifted[0]).shape(), n)
            shifted = _stage(m, pipe, shifted, shifted_layout, "act_shifted")
        for j in range(n):
            m.d.comb += q_next[j].eq(_saturate(shifted[j], self.widths.act_bits))
        q = pipe.register(m, q_next, name="act_q", shape=q_layout)
        m.d.comb += self.o_q.payload.data.eq(q)
        pipe.carry_meta(m, self.i_v, self.o_q, name="act_meta")
        return m

    def _elaborate_pow2(self, m: Module, pipe: StallPipeline) -> Module:
        """``pow2`` mode: per position a choice among its legal shifts, no adder before it.

        Stage 1 selects ``t = (2 v) >> s`` (:meth:`_RoundingShift.doubled_shift`) among the
        ``shift_limits[j] + 1`` shifts of position ``j``, with ``v`` cut to the width of
        its range, clamped to ``act_bits + 1`` bits; stage 2 rounds, ``(t + 1) >> 1``, and
        clamps the one value that leaves ``act_bits`` (ECP5: the selected ``t`` and its
        fit registered before the clamp, stage 3 rounds).  Clamping ``t`` first does not
        change the result: a ``t`` beyond ``act_bits + 1`` bits saturates either way.
        """
        w, n = self.widths, self.positions
        t_bits = w.act_bits + 1
        ecp5 = self.config.target == "ecp5"
        shifts = [self.act_shift[j] for j in range(n)]
        if ecp5:  # per-layer values, into registers once
            shifts = [registered(m, shifts[j], f"act_shift_r{j}") for j in range(n)]
        fields = []
        for j in range(n):
            lo, hi = w.v_ranges[j]
            v = self.i_v.payload.data[j][: signed_width(lo, hi)].as_signed()
            field = Signal(signed(t_bits), name=f"act_t{j}")
            fit = Signal(name=f"act_fit{j}")
            with m.Switch(shifts[j]):
                for s in range(w.shift_limits[j] + 1):
                    # Shifts above the position's limit (not legal) act as the limit.
                    with m.Case(s) if s < w.shift_limits[j] else m.Default():
                        t = _RoundingShift.doubled_shift(v, s)
                        m.d.comb += [field.eq(t[:t_bits]), fit.eq(_fits(t, t_bits))]
            fields.append((field, fit, v[-1]))
        clamp_layout = data.ArrayLayout(signed(t_bits), n)
        if ecp5:
            raw = [Cat(f, fit, sign) for f, fit, sign in fields]
            raw_r = _stage(m, pipe, raw, data.ArrayLayout(t_bits + 2, n), "act_raw")
            fields = [(raw_r[j][:t_bits].as_signed(), raw_r[j][t_bits], raw_r[j][t_bits + 1])
                      for j in range(n)]  # fmt: skip
        lo, hi = signed_range(t_bits)
        clamped = [Mux(fit, f, Mux(sign, lo, hi)) for f, fit, sign in fields]
        t_r = _stage(m, pipe, clamped, clamp_layout, "act_t")
        q_layout = self.out_layout.members["data"]
        rounded = [_clamp(((t_r[j] + 1) >> 1), w.act_bits) for j in range(n)]
        q = _stage(m, pipe, rounded, q_layout, "act_q")
        m.d.comb += self.o_q.payload.data.eq(q)
        pipe.carry_meta(m, self.i_v, self.o_q, name="act_meta")
        return m


def _replicated(m: Module, value: Value, copies: int, name: str) -> list[Value]:
    """``copies`` registered copies of a per-layer ``value`` (no enable), one per lane.

    One register read by every lane is a net across the whole block (on ECP5 it
    was the engine's longest route: 6.4 ns of a 10.8 ns path); a copy per lane
    is placed beside its lane (:func:`_xor_copies`).
    """
    return _xor_copies(value, copies, lambda v, name: registered(m, v, name), name)


def _stage_copies(m: Module, pipe: StallPipeline, value: Value, copies: int, name: str):
    """``copies`` copies of ``value`` in the next stage register of ``pipe``, one per lane
    (a per-beat value read by every lane: see :func:`_replicated`)."""
    return _xor_copies(value, copies, lambda v, name: pipe.register(m, v, name=name), name)


def _xor_copies(value: Value, copies: int, register, name: str) -> list[Value]:
    """``copies`` registers (from ``register(value, name)``) holding ``value``.

    Copies with the same input would be merged by synthesis (``opt_merge``), so
    copy ``j`` stores ``value ^ j`` (its pattern cut to the width) and is read back
    through the same XOR, which the lane's LUTs absorb.  Copies whose patterns
    coincide (lanes ``2^width`` apart) share a register.
    """
    value = Value.cast(value)
    shape = value.shape()
    width = shape.width
    copies_out = []
    for j in range(copies):
        pattern = j % (1 << width)
        reg = register(value.as_unsigned() ^ pattern, f"{name}{j}")
        copy = (reg ^ pattern)[:width]
        copies_out.append(copy.as_signed() if shape.signed else copy)
    return copies_out


# -- Rescale ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RescaleWidths:
    """Widths of :class:`Rescale` for an engine and its longest reduction (see its docstring)."""

    positions: int
    acc_bits: int
    rescale_bits: int
    z_bits: int
    product_bits: int
    max_shift: int
    shift_width: int

    @classmethod
    def derive(
        cls, config: EngineConfig, reduction_max: int, positions: int | None = None
    ) -> RescaleWidths:
        widths = engine_widths(config, reduction_max)
        max_shift = widths.rescaled_bits
        return cls(
            positions=config.backend_width if positions is None else positions,
            acc_bits=widths.acc_bits,
            rescale_bits=config.rescale_bits,
            z_bits=config.z_bits,
            product_bits=_product_width(widths.acc_bits, config.rescale_bits),
            max_shift=max_shift,
            shift_width=max_shift.bit_length(),
        )


class Rescale(wiring.Component):
    """Rescaling of output-channel accumulators into the ``z_bits`` range of ``A^T``.

    ``z[j] = rshift_round(acc[j] * mult[j], rescale_shift)`` for ``positions``
    accumulators of one (tile, output channel) per beat (a block of the MAC
    array's result) and their rescale multipliers.

    A layer is legal only when ``rescale_shift >= minimum_rescale_shift(cin,
    config)``; then every ``z`` fits ``z_bits`` and the result is exact.  A
    ``z`` outside ``z_bits`` (a bad layer descriptor) is clamped to the
    ``z_bits`` range and sets the sticky :attr:`overflow` flag, so it is never
    silently wrong.

    Parameters
    ----------
    config : EngineConfig
        The engine: algorithm (``m``), ``act_bits``, ``weight_bits``,
        ``rescale_bits``, ``z_bits``.
    reduction_max : int or None
        Longest accumulation (products per accumulator) of a layer; sizes
        ``acc_bits`` like :meth:`sfc_hls.hw.mac_array.MacArray.accumulator_width`.
        Default and upper bound: the engine's, ``max(cin_max, direct_reduction_max)``.
    positions : int or None
        Accumulators per beat (default ``config.backend_width``, the output path's width).
    meta_layout : ShapeLike or None
        Shape of the ``meta`` field carried with each beat (none by default).

    Attributes
    ----------
    widths : RescaleWidths
        ``acc_bits`` (``DatapathWidths.acc_bits`` at ``cin_max``);
        ``product_bits``, the width of ``acc * mult`` for every port value
        (``acc_bits + rescale_bits``, ``>= DatapathWidths.rescaled_bits`` of every
        legal layer); ``max_shift``, the largest legal ``rescale_shift``
        (``DatapathWidths.rescaled_bits`` at ``cin_max``); ``shift_width``, the
        width of ``rescale_shift`` (``max_shift.bit_length()``).
    latency : int
        4 (multiply; add the rounding constant; shift; range check and clamp), each
        stage registered, the per-layer shift decoded into registers once; on ECP5
        7 (the multiply in :data:`ECP5_MULTIPLY_STAGES` stages, the shift in two,
        :meth:`latency_of`).
    in_layout, out_layout : data.StructLayout

    Ports
    -----
    i_acc : In(stream.Signature(in_layout))
        ``{"data": ArrayLayout(signed(acc_bits), m), "mult": ArrayLayout(unsigned(rescale_bits), m),
        "meta": meta_layout}``.
    o_z : Out(stream.Signature(out_layout))
        ``{"data": ArrayLayout(signed(z_bits), m), "meta": meta_layout}``.
    rescale_shift : In(unsigned(shift_width))
        Per-layer shift, decoded into registers (clamped, then a copy per lane):
        it must be stable from two cycles before the layer's first beat enters
        ``i_acc`` (the engine holds it for the whole layer, set before the layer starts).
    overflow : Out(1)
        Sticky: set in the cycle after a result with some ``z`` outside
        ``z_bits`` is offered on ``o_z`` (whether or not it is taken); stays
        high until ``clear`` (or reset). Setting wins over a simultaneous ``clear``.
    clear : In(1)
        Clears ``overflow`` at the next clock edge.

    Latency 4 (ECP5: 7), one beat per cycle, backpressure and reset as in
    :mod:`sfc_hls.hw.quantizers`.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        reduction_max: int | None = None,
        positions: int | None = None,
        meta_layout: ShapeLike | None = None,
    ) -> None:
        self.config = _check_config(config)
        self.latency = self.latency_of(config.target)
        limit = max(config.cin_max, config.direct_reduction_max)
        self.reduction_max = (
            limit if reduction_max is None else check_int("reduction_max", reduction_max, 1, limit)
        )
        if positions is not None:
            check_int("positions", positions, 1)
        self.widths = w = RescaleWidths.derive(config, self.reduction_max, positions)
        self.positions, self.acc_bits, self.z_bits = w.positions, w.acc_bits, w.z_bits
        self.rescale_bits = w.rescale_bits
        self.product_bits, self.max_shift, self.shift_width = (
            w.product_bits,
            w.max_shift,
            w.shift_width,
        )
        self._rounding = _RoundingShift(product_bits=w.product_bits, shift_width=w.shift_width)
        self.round_bits = self._rounding.round_bits
        self.in_layout, self.out_layout = self.payload_layouts(w, meta_layout)
        super().__init__(
            {
                "i_acc": In(stream.Signature(self.in_layout)),
                "o_z": Out(stream.Signature(self.out_layout)),
                "rescale_shift": In(unsigned(w.shift_width)),
                "overflow": Out(1),
                "clear": In(1),
            }
        )

    @staticmethod
    def payload_layouts(
        widths: RescaleWidths, meta_layout: ShapeLike | None = None
    ) -> tuple[data.StructLayout, data.StructLayout]:
        """``(in_layout, out_layout)`` of a rescale with ``widths`` (see Ports)."""
        n = widths.positions
        meta = meta_field(meta_layout)
        return (
            data.StructLayout(
                {
                    "data": data.ArrayLayout(signed(widths.acc_bits), n),
                    "mult": data.ArrayLayout(unsigned(widths.rescale_bits), n),
                    **meta,
                }
            ),
            data.StructLayout({"data": data.ArrayLayout(signed(widths.z_bits), n), **meta}),
        )

    @staticmethod
    def latency_of(target: str) -> int:
        """Pipeline stages on ``target``: 4; on ECP5 7 (the multiply in MULT18X18D
        blocks, 3 stages, and the shift in two stages)."""
        return 3 + (ECP5_MULTIPLY_STAGES + 1 if target == "ecp5" else 1)

    def minimum_shift(self, reduction: int) -> int:
        """Smallest legal ``rescale_shift`` of a layer with ``reduction`` products per accumulator."""
        check_int("reduction", reduction, 1, self.reduction_max)
        return minimum_rescale_shift(reduction, self.config)

    @property
    def meta_width(self) -> int:
        """Bits of the ``meta`` field carried through the block (0 without)."""
        return meta_width(self.out_layout)

    def elaborate(self, platform) -> Module:
        m = Module()
        pipe = StallPipeline(m, i=self.i_acc, o=self.o_z, depth=self.latency, name="rescale")
        rounding = self._rounding
        n = self.positions
        # The per-layer shift, decoded once into registers (constant while a layer's
        # beats are in flight), a copy per lane: no stage computes from the raw port.
        # The clamp to product_bits in a register of its own, then the lanes' copies.
        effective = Signal(range(rounding.product_bits + 1), name="rescale_shift_clamped")
        m.d.sync += effective.eq(rounding.effective(self.rescale_shift))
        shifts = _replicated(m, effective, n, "rescale_shift_r")
        payload = self.i_acc.payload
        z_bits = self.widths.z_bits
        # Stage 1: acc * mult (the multiplier alone, registered in its DSP; on ECP5
        # stages 1-3, MULT18X18D blocks with their registers).
        prod_layout = data.ArrayLayout(signed(rounding.product_bits), n)
        if self.config.target == "ecp5":
            pairs = [(payload.data[j], payload.mult[j]) for j in range(n)]
            prod = _block_products(m, pipe, pairs, prod_layout, "rescale_prod")
        else:
            prod = _stage(m, pipe, [payload.data[j] * payload.mult[j] for j in range(n)],
                          prod_layout, "rescale_prod")  # fmt: skip
        # Stage 2: t = (2 acc mult) >> s (shift first: _RoundingShift.doubled_shift).
        # ECP5: stages 4-5, by the shift's high bits, then by its low bits (one stage
        # was 5 LUT levels over a lane's spread product bits, 7 ns of route).
        t_layout = data.ArrayLayout(signed(rounding.round_bits), n)
        if self.config.target == "ecp5":
            coarse = _stage(m, pipe, [rounding.doubled_shift(prod[j], shifts[j], part="high")
                                      for j in range(n)], t_layout, "rescale_t_coarse")  # fmt: skip
            shifted = [rounding.shift_low(coarse[j], shifts[j]) for j in range(n)]
        else:
            shifted = [rounding.doubled_shift(prod[j], shifts[j]) for j in range(n)]
        t = _stage(m, pipe, shifted, t_layout, "rescale_t")
        # Stage 3: t clamped to z_bits + 2 bits (a value beyond stays beyond z's range).
        t_cut = _stage(m, pipe, [_clamp(t[j], z_bits + 2) for j in range(n)],
                       data.ArrayLayout(signed(z_bits + 2), n), "rescale_t_cut")  # fmt: skip
        # Stage 4: the rounding carry (t + 1) >> 1, range check and clamp (the overflow
        # flag ORs the registered lane flags).
        rounded = [(t_cut[j] + 1) >> 1 for j in range(n)]
        z = _stage(m, pipe, [_clamp(r, z_bits) for r in rounded],
                   self.out_layout.members["data"], "rescale_z")  # fmt: skip
        beyond = pipe.register(m, Cat(*(~_fits(r, z_bits) for r in rounded)),
                               name="rescale_beyond")  # fmt: skip
        m.d.comb += self.o_z.payload.data.eq(z)
        pipe.carry_meta(m, self.i_acc, self.o_z, name="rescale_meta")

        with m.If(self.clear):
            m.d.sync += self.overflow.eq(0)
        with m.If(self.o_z.valid & beyond.any()):
            m.d.sync += self.overflow.eq(1)
        return m


# -- OutputQuantizer -------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputQuantizerWidths:
    """Widths of :class:`OutputQuantizer` for an engine and its ``y_bits`` (see its docstring)."""

    outputs: int
    y_bits: int
    bias_bits: int
    biased_bits: int
    out_mult_bits: int
    product_bits: int
    max_shift: int
    shift_width: int
    out_bits: int

    @classmethod
    def derive(
        cls, config: EngineConfig, y_bits: int, outputs: int | None = None
    ) -> OutputQuantizerWidths:
        check_int("y_bits", y_bits, 2)
        y_lo, y_hi = signed_range(y_bits)
        biased_bits = signed_width(2 * y_lo, 2 * y_hi)  # bias has the width of y
        out_mult_max = (1 << config.out_mult_bits) - 1
        max_shift = signed_width(2 * y_lo * out_mult_max, 2 * y_hi * out_mult_max)
        return cls(
            outputs=config.backend_width if outputs is None else outputs,
            y_bits=y_bits,
            bias_bits=y_bits,
            biased_bits=biased_bits,
            out_mult_bits=config.out_mult_bits,
            product_bits=_product_width(biased_bits, config.out_mult_bits),
            max_shift=max_shift,
            shift_width=max_shift.bit_length(),
            out_bits=config.out_bits,
        )

    @property
    def params_layout(self) -> data.StructLayout:
        """Per-channel parameters of a beat: ``{bias, out_mult, out_shift}``."""
        return data.StructLayout(
            {
                "bias": signed(self.bias_bits),
                "out_mult": unsigned(self.out_mult_bits),
                "out_shift": unsigned(self.shift_width),
            }
        )


class OutputQuantizer(wiring.Component):
    """Output requantization of ``outputs`` values of one channel per beat.

    ``out[k] = saturate(rshift_round((y[k] + bias) * out_mult, out_shift), out_bits, relu)``
    with the channel's ``bias``, ``out_mult`` and ``out_shift`` carried in the beat.

    Widths come from the width of ``y`` the output transform delivers
    (``y_bits``, the exact range of ``A^T z`` over every ``z_bits`` value, so at
    least ``DatapathWidths.y_bits`` of every legal layer): ``bias`` has that width
    too (a legal bias has ``|bias| <= bias_bound <= y bound``), ``y + bias`` one
    bit more, and every internal value is exact for every port value.

    Parameters
    ----------
    config : EngineConfig
        The engine: algorithm (``M``), ``out_mult_bits``, ``out_bits``.
    y_bits : int or None
        Width of the signed ``y`` values: the ``y_bits`` of the engine's
        :class:`~sfc_hls.hw.transform.OutputTransform` (the default, from the
        same netlist).
    outputs : int or None
        Values per beat (default ``config.backend_width``, the output path's width).
    tag_layout : ShapeLike or None
        Shape of the control fields carried with each beat (none by default).

    Attributes
    ----------
    widths : OutputQuantizerWidths
        ``bias_bits`` (``y_bits``), ``biased_bits`` (``y + bias``),
        ``product_bits`` (``(y + bias) * out_mult`` for all port values),
        ``max_shift`` (the signed width of ``(y + bias) * out_mult`` over the
        port ranges, ``>= DatapathWidths.out_product_bits`` of every legal
        layer), ``shift_width`` (``max_shift.bit_length()``), and
        :attr:`~OutputQuantizerWidths.params_layout`.
    latency : int
        6 (add the bias and decode the shift; multiply, the operand wider than a
        DSP input split in two (:func:`_split_product`); join the two products;
        shift by ``s - 1``; clamp; rounding carry, saturate and ReLU), each stage
        registered; on ECP5 9 (the multiply in MULT18X18D blocks, their input and
        output registers and the joined limbs: :data:`ECP5_MULTIPLY_STAGES` stages
        instead of two; a first stage that registers the beat with the channel's
        bias copied per lane; the bias add in two half-width stages; :meth:`latency_of`).
    in_layout, out_layout : data.StructLayout

    Ports
    -----
    i_y : In(stream.Signature(in_layout))
        ``{"data": ArrayLayout(signed(y_bits), M*M), "meta": {"params": params_layout,
        "tag": tag_layout}}``: the channel's ``bias``, ``out_mult`` and ``out_shift``
        travel in ``meta.params`` (so the output transform carries them to this
        block), the rest in ``meta.tag``.
    o_out : Out(stream.Signature(out_layout))
        ``{"data": ArrayLayout(signed(out_bits), M*M), "meta": tag_layout}``.
    relu : In(1)
        Per-layer: clamp outputs at 0.

    Latency 6 (ECP5: 8), one beat per cycle, backpressure and reset as in
    :mod:`sfc_hls.hw.quantizers`.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        y_bits: int | None = None,
        outputs: int | None = None,
        tag_layout: ShapeLike | None = None,
    ) -> None:
        self.config = _check_config(config)
        self.latency = self.latency_of(config.target)
        if y_bits is None:  # what the engine's output transform delivers
            y_bits = adder_netlist(config.algo.output_adder_network, config.z_bits).out_width
        if outputs is not None:
            check_int("outputs", outputs, 1)
        self.widths = w = OutputQuantizerWidths.derive(config, y_bits, outputs)
        self.outputs, self.y_bits, self.out_bits = w.outputs, w.y_bits, w.out_bits
        self.bias_bits, self.biased_bits = w.bias_bits, w.biased_bits
        self.out_mult_bits = w.out_mult_bits
        self.product_bits, self.max_shift, self.shift_width = (
            w.product_bits,
            w.max_shift,
            w.shift_width,
        )
        self._rounding = _RoundingShift(product_bits=w.product_bits, shift_width=w.shift_width)
        self.round_bits = self._rounding.round_bits
        tag = {"tag": tag_layout} if meta_field(tag_layout) else {}
        self.in_meta_layout = data.StructLayout({"params": w.params_layout, **tag})
        self.in_layout = data.StructLayout(
            {"data": data.ArrayLayout(signed(w.y_bits), w.outputs), "meta": self.in_meta_layout}
        )
        self.out_layout = data.StructLayout(
            {"data": data.ArrayLayout(signed(w.out_bits), w.outputs), **meta_field(tag_layout)}
        )
        super().__init__(
            {
                "i_y": In(stream.Signature(self.in_layout)),
                "o_out": Out(stream.Signature(self.out_layout)),
                "relu": In(1),
            }
        )

    @property
    def meta_width(self) -> int:
        """Bits of the ``meta`` field carried through the block (0 without)."""
        return meta_width(self.out_layout)

    @staticmethod
    def latency_of(target: str) -> int:
        """Pipeline stages on ``target``: 6; on ECP5 9 (the multiply in MULT18X18D
        blocks, 3 stages; an input stage that copies the channel's bias per lane; the
        bias add in two stages, :meth:`_biased_halves`)."""
        return 4 + (ECP5_MULTIPLY_STAGES + 2 if target == "ecp5" else 2)

    def elaborate(self, platform) -> Module:
        m = Module()
        pipe = StallPipeline(m, i=self.i_y, o=self.o_out, depth=self.latency, name="outq")
        rounding = self._rounding
        n = self.outputs
        ecp5 = self.config.target == "ecp5"
        y, params = self.i_y.payload.data, self.i_y.payload.meta.params
        bias = [params.bias] * n
        if ecp5:
            # Stage 0 (ECP5): the beat registered, the channel's bias and (below) its
            # shift copied per lane: one register read by all 16 lanes, spread with
            # their multipliers over the device, was a 6.6 ns route into the adders.
            y = _stage(m, pipe, [y[k] for k in range(n)], self.in_layout.members["data"], "outq_y")
            bias = _stage_copies(m, pipe, params.bias, n, "outq_bias")
            params = pipe.register(m, params, name="outq_params0", shape=params.shape())

        out_bits = self.widths.out_bits
        # Stage 1: y + bias (ECP5: stages 1-2, :meth:`_biased_halves`); the shift decoded.
        if ecp5:
            biased = self._biased_halves(m, pipe, y, bias)
        else:
            biased = _stage(m, pipe, [y[k] + bias[k] for k in range(n)],
                            data.ArrayLayout(signed(self.widths.biased_bits), n), "outq_biased")  # fmt: skip
        out_mult = pipe.register(m, params.out_mult, name="outq_mult1")
        effective = rounding.effective(params.out_shift)
        shift = pipe.register(m, effective, name="outq_shift1")
        if ecp5:  # the second stage of the add
            out_mult = pipe.register(m, out_mult, name="outq_mult2")
            shift = pipe.register(m, shift, name="outq_shift2")
        prod = self._product(m, pipe, biased, out_mult)
        product_stages = ECP5_MULTIPLY_STAGES if ecp5 else 2
        if ecp5:
            shift = pipe.delay(m, shift, product_stages - 1, name="outq_shift")
            shifts = _stage_copies(m, pipe, shift, n, "outq_shift_lane")
        else:
            shifts = [pipe.delay(m, shift, product_stages, name="outq_shift")] * n
        # Stage 4 (ECP5: 6): t = (2 prod) >> s (shift first: _RoundingShift.doubled_shift).
        t = _stage(m, pipe, [rounding.doubled_shift(prod[k], shifts[k]) for k in range(n)],
                   data.ArrayLayout(signed(rounding.round_bits), n), "outq_t")  # fmt: skip
        # Stage 5 (ECP5: 7): t clamped to out_bits + 2 bits.
        t_cut = _stage(m, pipe, [_clamp(t[k], out_bits + 2) for k in range(n)],
                       data.ArrayLayout(signed(out_bits + 2), n), "outq_t_cut")  # fmt: skip
        # Stage 6 (ECP5: 8): the rounding carry (t + 1) >> 1, saturation and ReLU.
        out = _stage(m, pipe, [_clamp((t_cut[k] + 1) >> 1, out_bits, relu=self.relu)
                               for k in range(n)],
                     self.out_layout.members["data"], "outq_out")  # fmt: skip
        m.d.comb += self.o_out.payload.data.eq(out)
        if "tag" in self.in_meta_layout.members:
            tag = self.i_y.payload.meta.tag
            for k in range(self.latency):
                tag = pipe.register(m, tag, name=f"outq_meta_d{k}", shape=tag.shape())
            m.d.comb += self.o_out.payload.meta.eq(tag)
        return m

    def _biased_halves(self, m: Module, pipe: StallPipeline, y: Value, bias: list) -> Value:
        """``y + bias`` of every output in two stages of half-width carry chains (ECP5).

        Stage 1 adds the low halves (their carry kept) and registers the high
        halves; stage 2 adds the high halves and the carry as ``({y_hi, c} +
        {bias_hi, c}) >> 1``, one carry chain.  A whole-width add after the bias
        copies' route was the engine's critical path on ECP5 (8.05 ns).
        """
        n, width = self.outputs, self.widths.biased_bits
        half = width // 2
        lo_layout = data.ArrayLayout(unsigned(half + 1), n)
        hi_layout = data.ArrayLayout(signed(width - half + 1), n)
        ys = [y[k].as_signed() for k in range(n)]
        bs = [b.as_signed() for b in bias]
        lo = _stage(m, pipe, [ys[k][:half] + bs[k][:half] for k in range(n)], lo_layout, "outq_lo")
        y_hi = _stage(m, pipe, [ys[k][half:].as_signed() for k in range(n)], hi_layout, "outq_y_hi")
        b_hi = _stage(m, pipe, [bs[k][half:].as_signed() for k in range(n)], hi_layout, "outq_b_hi")
        joined = []
        for k in range(n):
            carry = lo[k][half]
            high = (Cat(carry, y_hi[k]).as_signed() + Cat(carry, b_hi[k]).as_signed()) >> 1
            joined.append(Cat(lo[k][:half], high).as_signed())
        return _stage(m, pipe, joined, data.ArrayLayout(signed(width), n), "outq_biased")

    def _product(self, m: Module, pipe: StallPipeline, biased: Value, out_mult: Value) -> Value:
        """``(y + bias) * out_mult`` of every output, registered :attr:`latency` - 4 stages later."""
        n = self.outputs
        layout = data.ArrayLayout(signed(self._rounding.product_bits), n)
        if self.config.target == "ecp5":
            # Stages 2-4: MULT18X18D blocks with their registers, the limbs joined.
            pairs = [(biased[k], out_mult) for k in range(n)]
            return _block_products(m, pipe, pairs, layout, "outq_prod")
        # Stage 2: the 32-bit operand split so that one DSP multiplies its top 27
        # bits and fabric adders the rest (_split_product).
        hi, lo, low = _split_product(m, pipe, [biased[k] for k in range(n)], out_mult, "outq")
        # Stage 3: the product joined, (hi << L) + lo (no DSP post-adder is inferred).
        return _stage(m, pipe, [(hi[k] << low) + lo[k] for k in range(n)], layout, "outq_prod")
