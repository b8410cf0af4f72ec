# amaranth: UnusedElaboratable=no

"""Tests of sfc_hls.hw.quantizers: Amaranth simulation against the NumPy spec
(sfc_hls.datapath.rshift_round / saturate), then Verilator via cocotb against
the golden model's layer stages (sfc_hls.sim.tb_quantizers)."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from sfc_hls.config import EngineConfig
from sfc_hls.datapath import (
    DatapathWidths,
    accumulation_bound,
    minimum_rescale_shift,
    rshift_round,
    saturate,
    signed_range,
)
from sfc_hls.hw.mac_array import MacArray
from sfc_hls.hw.quantizers import (
    DSP_WIDE_INPUT_BITS,
    ActQuantizer,
    OutputQuantizer,
    Rescale,
    _RoundingShift,
    engine_widths,
)
from sfc_hls.sim.amaranth_streams import (
    collect,
    idle,
    measure_transfers,
    run_testbenches,
    send,
)

SIM_BUILD = Path(__file__).resolve().parents[1] / "sim_build"
MODES = ("pow2", "fixed")


def small_config(scale_mode: str = "pow2", **overrides) -> EngineConfig:
    """Winograd F(2x2, 3x3) (m = 16, M*M = 4) with narrow multipliers, for Amaranth simulation."""
    fields = {
        "algorithm": "wino-2x2-3x3",
        "pco": 1,
        "cin_max": 4,
        "cout_max": 4,
        "act_mult_bits": 5,
        "rescale_bits": 5,
        "z_bits": 10,
        "out_mult_bits": 4,
        "scale_mode": scale_mode,
    }
    return EngineConfig(**(fields | overrides))


def spec_requant(value, mult, shift, bits: int | None = None, relu: bool = False) -> np.ndarray:
    """``saturate(rshift_round(value * mult, shift), bits, relu)`` on Python integers."""
    product = np.asarray(value, dtype=object) * np.asarray(mult, dtype=object)
    shifted = rshift_round(product, np.asarray(shift, dtype=object))
    return shifted if bits is None else saturate(shifted, bits, relu)


# -- argument validation and derived widths ----------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "error", "match"),
    [
        (lambda: ActQuantizer("sfc6"), TypeError, r"config must be an EngineConfig, not 'sfc6'"),
        (lambda: Rescale(None), TypeError, r"config must be an EngineConfig, not None"),
        (lambda: OutputQuantizer({}), TypeError, r"config must be an EngineConfig, not \{\}"),
        (
            lambda: ActQuantizer(EngineConfig(), meta_layout=-1),
            TypeError,
            r"meta_layout must be a shape .*got -1",
        ),
        (
            lambda: ActQuantizer(EngineConfig(), meta_layout=2.0),
            TypeError,
            r"meta_layout must be a shape .*got 2.0",
        ),
        (
            lambda: OutputQuantizer(EngineConfig(), tag_layout=True),
            TypeError,
            r"meta_layout must be a shape .*got True",
        ),
        (
            lambda: OutputQuantizer(EngineConfig(), y_bits=1),
            ValueError,
            r"y_bits must be an int >= 2, got 1",
        ),
        (
            lambda: Rescale(EngineConfig(), reduction_max=0),
            ValueError,
            r"reduction_max must be an int in \[1, 2304\], got 0",
        ),
        (
            lambda: Rescale(EngineConfig(), reduction_max=2305),
            ValueError,
            r"reduction_max must be an int in \[1, 2304\], got 2305",
        ),
        (
            lambda: Rescale(EngineConfig(), reduction_max="8"),
            TypeError,
            r"reduction_max must be an int in \[1, 2304\], got str '8'",
        ),
        (
            lambda: Rescale(EngineConfig(), meta_layout="x"),
            TypeError,
            r"meta_layout must be a shape .*got 'x'",
        ),
        (
            lambda: Rescale(EngineConfig(), reduction_max=8).minimum_shift(9),
            ValueError,
            r"reduction must be an int in \[1, 8\], got 9",
        ),
    ],
)
def test_rejects_bad_arguments(factory, error, match):
    with pytest.raises(error, match=match):
        factory()


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        ActQuantizer(EngineConfig(), 2)
    with pytest.raises(TypeError):
        Rescale(EngineConfig(), 16)
    with pytest.raises(TypeError):
        OutputQuantizer(EngineConfig(), 2)


@pytest.mark.parametrize("algorithm", ["sfc6-7x7-3x3", "wino-2x2-3x3", "direct-3x3"])
@pytest.mark.parametrize("mode", MODES)
def test_widths_cover_every_legal_layer(algorithm, mode):
    config = EngineConfig(algorithm=algorithm, scale_mode=mode, cin_max=64, cout_max=64)
    act, rescale, outq = ActQuantizer(config), Rescale(config), OutputQuantizer(config)
    spec = engine_widths(config)
    assert act.v_bits == spec.v_bits == config.algo.input_transform_width(config.in_bits)
    assert act.max_shift == spec.act_product_bits
    # Every product of a legal v fits the product register (in pow2 mode it is v itself,
    # which can be one bit narrower than the spec's symmetric act_product_bits).
    mult_max = 1 if mode == "pow2" else (1 << config.act_mult_bits) - 1
    p_lo, p_hi = signed_range(act.product_bits)
    assert p_lo <= spec.v_lo.min() * mult_max and spec.v_hi.max() * mult_max <= p_hi
    # The longest accumulation is the engine's: a fast layer's cin or a direct layer's K^2 cin.
    reduction_max = max(config.cin_max, config.direct_reduction_max)
    assert rescale.acc_bits == MacArray.accumulator_width(cin_max=reduction_max)
    layers = [("fast", None, cin) for cin in (1, 3, 17, 64)]
    layers += [("direct", k, c) for k, c in ((1, 64), (3, 7), (7, 3)) if k * k * c <= reduction_max]
    layers.append(("direct", 1, reduction_max))  # direct K = 1 with cin = the whole limit
    for mode_, kernel, cin in layers:
        reduction = cin * (kernel or 1) ** 2
        for extra in (0, 2):
            shift = minimum_rescale_shift(reduction, config) + extra
            wd = DatapathWidths.derive(config.algo, config, cin, shift, mode=mode_, kernel=kernel)
            assert rescale.acc_bits >= wd.acc_bits
            assert rescale.product_bits >= wd.rescaled_bits
            assert rescale.max_shift >= wd.rescaled_bits
            assert outq.y_bits >= wd.y_bits
            assert signed_range(outq.y_bits)[1] >= int(wd.y_bound.max())
            assert outq.biased_bits >= wd.biased_bits
            assert outq.product_bits >= wd.out_product_bits
            assert outq.max_shift >= wd.out_product_bits
            assert signed_range(outq.bias_bits)[1] >= wd.bias_bound
    for block in (act, rescale, outq):
        assert block.max_shift < 1 << block.shift_width
        assert block.max_shift.bit_length() == block.shift_width


def test_default_engine_ports():
    config = EngineConfig()
    act = ActQuantizer(config, meta_layout=3)
    assert (act.positions, act.v_bits, act.product_bits, act.shift_width) == (132, 14, 14, 4)
    assert not hasattr(act, "act_mult")  # pow2: no multiplier
    assert act.i_v.payload.shape() == act.in_layout
    assert act.in_layout.size == 132 * 14 + 3 and act.out_layout.size == 132 * 8 + 3
    fixed = ActQuantizer(EngineConfig(scale_mode="fixed"))
    assert (fixed.product_bits, fixed.max_shift, fixed.shift_width) == (30, 30, 5)
    assert fixed.act_mult.shape().size == 132 * 16
    assert "meta" not in dict(fixed.in_layout)  # meta_width 0: no field
    rescale = Rescale(config, meta_layout=2)
    # The back-end is W = 11 of the 132 positions wide (config.backend_width).  The longest
    # accumulation is a direct 3x3 layer at cin_max: 2304 products of 128 * 128 at most,
    # 37,748,736 < 2^26, so 27 bits; times a 16-bit multiplier: 43 bits.
    assert rescale.positions == config.backend_width == 11
    assert (rescale.acc_bits, rescale.product_bits, rescale.max_shift) == (27, 43, 43)
    # z_bits = 20: cin 256's rescaled bound 256 * 2^14 * (2^16 - 1) < 2^38, shifted by 19.
    assert rescale.shift_width == 6 and rescale.minimum_shift(256) == 19
    assert rescale.minimum_shift(2304) == 23
    assert rescale.o_z.payload.shape() == rescale.out_layout
    outq = OutputQuantizer(config, tag_layout=2)
    assert outq.outputs == 11
    assert (outq.y_bits, outq.biased_bits, outq.product_bits, outq.max_shift) == (27, 28, 44, 44)
    assert signed_range(outq.y_bits)[1] >= 112 * (1 << 19)  # max row L1 of A^T times 2^19
    assert [b.latency for b in (act, rescale, outq)] == [2, 4, 6]


# -- Amaranth simulation harness ----------------------------------------------------------------


@dataclass
class Phase:
    """Beats streamed with per-layer ``ports`` held; ``after`` runs once all their results are in."""

    ports: list[tuple[object, object]] = field(default_factory=list)
    beats: list[dict] = field(default_factory=list)
    after: Callable[[object], Awaitable[None]] | None = None


def simulate(dut, i_port, o_port, phases, *, rng, in_gaps=(0,), out_gaps=(0,)):
    """Stream every phase through ``dut``; return the output payloads (``data.Const``s).

    Random input gaps and output backpressure are drawn from ``in_gaps`` /
    ``out_gaps``; the consumer also checks that a result offered without
    ``ready`` stays valid and unchanged.
    """
    total = sum(len(phase.beats) for phase in phases)
    received: list = []
    done = [False]

    async def producer(ctx):
        sent = 0
        for phase in phases:
            while len(received) < sent:  # drain before changing per-layer ports
                await ctx.tick()
            for port, value in phase.ports:
                ctx.set(port, value)
            if phase.ports:  # per-layer ports settle two cycles before the layer's first
                await ctx.tick().repeat(2)  # beat (the rescale registers its shift twice)
            for beat in phase.beats:
                await idle(ctx, rng.choice(in_gaps))
                await send(ctx, i_port, beat)
                sent += 1
            while len(received) < sent:
                await ctx.tick()
            if phase.after is not None:
                await phase.after(ctx)
        done[0] = True

    async def consumer(ctx):
        await collect(ctx, o_port, total, received, ready=lambda: rng.choice(out_gaps) == 0)

    budget = (total + 10 * len(phases)) * (2 + max(in_gaps) + 2 * max(out_gaps)) + 100
    run_testbenches(dut, producer, consumer, cycles=budget)
    assert done[0] and len(received) == total, f"{len(received)} of {total} results"
    return received


def lanes(payload, name: str, count: int) -> np.ndarray:
    return np.array([int(payload[name][k]) for k in range(count)], dtype=object)


def check_results(received, expected, name: str, count: int, meta_width: int) -> None:
    assert len(received) == len(expected)
    for index, (payload, (want, meta)) in enumerate(zip(received, expected, strict=True)):
        got = lanes(payload, name, count)
        if not np.array_equal(got, want):
            k = int(np.argwhere(got != want)[0][0])
            raise AssertionError(f"beat {index}: {name}[{k}] = {got[k]}, expected {want[k]}")
        if meta_width:
            assert int(payload.meta) == meta, f"beat {index}: meta {payload.meta} != {meta}"


GAPS = {"in_gaps": (0, 0, 0, 1, 3), "out_gaps": (0, 0, 1, 2, 5)}


# -- ActQuantizer ----------------------------------------------------------------------------


def _act_value_range(dut: ActQuantizer) -> tuple[np.ndarray, np.ndarray]:
    """Per position, the values the input can carry: pow2, the position's range over both
    modes (``widths.v_ranges``); fixed, every ``v_bits``-bit value."""
    if dut.has_multiplier:
        lo, hi = signed_range(dut.v_bits)
        return np.full(dut.positions, lo), np.full(dut.positions, hi)
    return (np.array([r[0] for r in dut.widths.v_ranges]),
            np.array([r[1] for r in dut.widths.v_ranges]))  # fmt: skip


def _act_phase(dut: ActQuantizer, mult, shift, vs, expected, gen):
    """A phase of beats ``vs``; expected: the spec, pow2 with each shift above its position's
    limit taken as the limit (such a shift is not legal; the block builds none beyond)."""
    config = dut.config
    ports = [(dut.act_shift, [int(s) for s in shift])]
    if not dut.has_multiplier:
        shift = np.minimum(shift, dut.widths.shift_limits)
    if dut.has_multiplier:
        ports.append((dut.act_mult, [int(a) for a in mult]))
    beats = []
    for v in vs:
        meta = int(gen.integers(0, 1 << dut.meta_width))
        beat = {"data": [int(x) for x in v]}
        if dut.meta_width:
            beat["meta"] = meta
        beats.append(beat)
        expected.append((spec_requant(v, mult, shift, config.act_bits), meta))
    return Phase(ports, beats)


@pytest.mark.parametrize("target", ["xilinx", "ecp5"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [1, 2], ids=lambda seed: f"seed{seed}")
def test_act_quantizer_random_with_gaps_and_backpressure(mode, seed, target):
    """Every v the port can carry, every multiplier, every value of the shift port
    (ECP5: three stages, the shifts decoded into registers)."""
    dut = ActQuantizer(small_config(mode, target=target), meta_layout=3)
    assert dut.latency == {"xilinx": 2, "ecp5": 3}[target]
    gen = np.random.default_rng(seed)
    n = dut.positions
    lo, hi = _act_value_range(dut)
    mult_max = (1 << dut.config.act_mult_bits) - 1
    expected: list = []
    phases = []
    for _ in range(3):
        mult = gen.integers(0, mult_max + 1, n) if dut.has_multiplier else np.ones(n, int)
        shift = gen.integers(0, 1 << dut.shift_width, n)
        vs = gen.integers(lo, hi + 1, (12, n))
        phases.append(_act_phase(dut, mult, shift, vs, expected, gen))
    received = simulate(dut, dut.i_v, dut.o_q, phases, rng=random.Random(seed), **GAPS)
    check_results(received, expected, "data", n, dut.meta_width)


def tie_values(gen, n: int, shift: np.ndarray, bits: int) -> np.ndarray:
    """Values ``(2t + 1) * 2^(s-1)`` (exactly half way between two results), random sign."""
    lo, hi = signed_range(bits)
    odd = 2 * gen.integers(0, 1 << 30, n) + 1
    values = np.array([int(o) << (int(s) - 1) for o, s in zip(odd, shift, strict=True)], object)
    values = values % (hi + 1)  # keeps the odd multiple of 2^(s-1): hi + 1 is a power of 2
    values[gen.random(n) < 0.5] *= -1
    assert all(lo <= v <= hi for v in values)
    return values


@pytest.mark.parametrize("target", ["xilinx", "ecp5"])
@pytest.mark.parametrize("mode", MODES)
def test_act_quantizer_extremes(mode, target):
    """All max / all min, rounding ties of both signs, shift 0 and the maximum shift."""
    dut = ActQuantizer(small_config(mode, target=target))
    gen = np.random.default_rng(5)
    n = dut.positions
    lo, hi = _act_value_range(dut)
    mult_max = (1 << dut.config.act_mult_bits) - 1 if dut.has_multiplier else 1
    mults = [np.full(n, mult_max)] + ([gen.integers(0, mult_max + 1, n)] if mult_max > 1 else [])
    expected: list = []
    phases = []
    limits = np.full(n, dut.max_shift) if dut.has_multiplier else np.array(dut.widths.shift_limits)
    for mult in mults:
        for shift in (np.zeros(n, int), np.full(n, dut.max_shift), np.arange(n) % dut.max_shift,
                      limits, np.maximum(limits - 1, 0)):  # fmt: skip
            vs = [hi, lo, np.full(n, -1), np.full(n, 1), np.zeros(n, int)]
            phases.append(_act_phase(dut, mult, shift, vs, expected, gen))
    # Ties: v * act_mult = odd multiple of 2^(s-1) with an odd multiplier.
    tie_shift = 1 + np.arange(n) % (dut.v_bits - 1)
    if not dut.has_multiplier:  # ties below the limit (v in its position's range)
        tie_shift = 1 + np.arange(n) % np.maximum(limits, 1)
    tie_mult = (2 * gen.integers(0, mult_max // 2 + 1, n) + 1) if mult_max > 1 else np.ones(n, int)
    ties = [tie_values(gen, n, tie_shift, dut.v_bits) for _ in range(6)]
    ties.append(-ties[0])  # both signs of the same magnitude
    # Outside a position's range: the smallest tie, 2^(s-1), of the same sign.
    smallest = np.array([1 << (int(t) - 1) for t in tie_shift], dtype=object)
    ties = [np.where((v < lo) | (v > hi), np.where(v < 0, -smallest, smallest), v) for v in ties]
    for v in ties:
        products = v * tie_mult.astype(object)
        assert all(
            p % (1 << int(s)) == 1 << (int(s) - 1) for p, s in zip(products, tie_shift, strict=True)
        )
    phases.append(_act_phase(dut, tie_mult, tie_shift, ties, expected, gen))

    received = simulate(dut, dut.i_v, dut.o_q, phases, rng=random.Random(5), **GAPS)
    check_results(received, expected, "data", n, 0)
    got = np.array([lanes(p, "data", n) for p in received])
    act_lo, act_hi = signed_range(dut.act_bits)
    assert (got == act_hi).any() and (got == act_lo).any()  # saturated on both sides
    # Half-up rounding: 1.5 -> 2 but -1.5 -> -1 (spec check on the sample above).
    assert rshift_round(np.array([3, -3]), 1).tolist() == [2, -1]


# -- Rescale ---------------------------------------------------------------------------------


def _rescale_beats(dut: Rescale, accs, mults, gen, expected, *, shift: int):
    beats = []
    for acc, mult in zip(accs, mults, strict=True):
        meta = int(gen.integers(0, 1 << dut.meta_width))
        beat = {"data": [int(a) for a in acc], "mult": [int(b) for b in mult]}
        if dut.meta_width:
            beat["meta"] = meta
        beats.append(beat)
        exact = spec_requant(acc, mult, shift)
        expected.append((saturate(exact, dut.z_bits), meta))
    return beats


def _expect_overflow(dut: Rescale, flag: bool, *, clear: bool = True):
    async def after(ctx):
        await ctx.tick()
        assert ctx.get(dut.overflow) == int(flag), f"overflow is {ctx.get(dut.overflow)}"
        if clear:
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            assert ctx.get(dut.overflow) == 0

    return after


@pytest.mark.parametrize("seed", [1, 2], ids=lambda seed: f"seed{seed}")
def test_rescale_legal_layers_exact_without_overflow(seed):
    config = small_config()
    dut = Rescale(config, meta_layout=2)
    gen = np.random.default_rng(seed)
    n = dut.positions
    mult_max = (1 << config.rescale_bits) - 1
    expected: list = []
    phases = []
    for cin, extra in [(cin, extra) for cin in range(1, config.cin_max + 1) for extra in (0, 2)]:
        bound = accumulation_bound(cin, config.act_bits, config.weight_bits)
        shift = dut.minimum_shift(cin) + extra
        accs = [gen.integers(-bound, bound + 1, n) for _ in range(8)]
        mults = [gen.integers(0, mult_max + 1, n) for _ in range(8)]
        # The largest legal magnitudes (at the minimum shift: the top of z's range).
        accs += [np.full(n, bound), np.full(n, -bound)]
        mults += [np.full(n, mult_max)] * 2
        beats = _rescale_beats(dut, accs, mults, gen, expected, shift=shift)
        phases.append(Phase([(dut.rescale_shift, shift)], beats, _expect_overflow(dut, False)))
    received = simulate(dut, dut.i_acc, dut.o_z, phases, rng=random.Random(seed), **GAPS)
    check_results(received, expected, "data", n, dut.meta_width)
    # The legal extremes reach the top of z_bits' range without leaving it.
    got = np.array([lanes(p, "data", n) for p in received])
    assert np.abs(got).max() > (1 << (config.z_bits - 2))


def test_two_stage_shift_equals_one_shift():
    """ECP5's rescale shifts by ``s``'s high bits, registers, then shifts by its low bits:
    equal to ``(2 p) >> s`` for every 9-bit product and every 4-bit shift (exhaustive)."""
    rounding = _RoundingShift(product_bits=9, shift_width=4)
    p, s = Signal(signed(9)), Signal(4)
    one, two = Signal(signed(10)), Signal(signed(10))
    m = Module()
    coarse = Signal(signed(10))
    m.d.comb += [
        one.eq(rounding.doubled_shift(p, s)),
        coarse.eq(rounding.doubled_shift(p, s, part="high")),
        two.eq(rounding.shift_low(coarse, s)),
    ]
    mismatches = []

    async def bench(ctx):
        for product in range(-256, 256):
            for shift in range(16):
                ctx.set(p, product)
                ctx.set(s, shift)
                want = (2 * product) >> shift
                if (ctx.get(one), ctx.get(two)) != (want, want):
                    mismatches.append((product, shift, ctx.get(one), ctx.get(two)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert mismatches == []


def test_rescale_overflow_flag_for_a_too_small_shift():
    """shift = minimum - 1 with acc at its bound: flagged, clamped, sticky until clear."""
    config = small_config()
    dut = Rescale(config)
    gen = np.random.default_rng(3)
    n = dut.positions
    mult_max = (1 << config.rescale_bits) - 1
    cin = config.cin_max
    bound = accumulation_bound(cin, config.act_bits, config.weight_bits)
    too_small = dut.minimum_shift(cin) - 1
    z_lo, z_hi = signed_range(config.z_bits)
    expected: list = []
    small_beats = [np.arange(n) - n // 2]
    legal_beats = _rescale_beats(dut, small_beats, [np.ones(n, int)], gen, expected, shift=0)
    bad = _rescale_beats(
        dut, [np.full(n, bound)], [np.full(n, mult_max)], gen, expected, shift=too_small
    )
    assert expected[-1][0].max() == z_hi  # clamped: the exact value is beyond z_bits
    assert spec_requant(bound, mult_max, too_small) > z_hi
    after_bad = _rescale_beats(dut, small_beats, [np.ones(n, int)], gen, expected, shift=too_small)
    phases = [
        Phase([(dut.rescale_shift, 0)], legal_beats, _expect_overflow(dut, False, clear=False)),
        # Sticky: a later in-range beat does not clear it; the phase's `after` clears it.
        Phase([(dut.rescale_shift, too_small)], bad + after_bad, _expect_overflow(dut, True)),
        Phase([(dut.rescale_shift, 0)], list(legal_beats), _expect_overflow(dut, False)),
    ]
    expected.append(expected[0])
    received = simulate(dut, dut.i_acc, dut.o_z, phases, rng=random.Random(3), **GAPS)
    check_results(received, expected, "data", n, 0)


@pytest.mark.parametrize("seed", [4], ids=lambda seed: f"seed{seed}")
def test_rescale_any_port_values_clamped_and_flagged(seed):
    """Beyond the legal range (any acc the port carries, any shift): clamp and flag exactly."""
    dut = Rescale(small_config())
    gen = np.random.default_rng(seed)
    n = dut.positions
    lo, hi = signed_range(dut.acc_bits)
    mult_max = (1 << dut.rescale_bits) - 1
    expected: list = []
    phases = []
    for shift in gen.integers(0, 1 << dut.shift_width, 6).tolist() + [0, dut.max_shift]:
        accs = [gen.integers(lo, hi + 1, n) for _ in range(4)] + [np.full(n, lo), np.full(n, hi)]
        mults = [gen.integers(0, mult_max + 1, n) for _ in range(5)] + [np.full(n, mult_max)]
        beats = _rescale_beats(dut, accs, mults, gen, expected, shift=shift)
        exact = [spec_requant(a, b, shift) for a, b in zip(accs, mults, strict=True)]
        flagged = any((np.asarray(e, dtype=object) != saturate(e, dut.z_bits)).any() for e in exact)
        phases.append(Phase([(dut.rescale_shift, shift)], beats, _expect_overflow(dut, flagged)))
    received = simulate(dut, dut.i_acc, dut.o_z, phases, rng=random.Random(seed), **GAPS)
    check_results(received, expected, "data", n, 0)


# -- OutputQuantizer -------------------------------------------------------------------------


def _outq_beats(dut: OutputQuantizer, rows, gen, expected, *, relu: bool):
    beats = []
    for y, bias, mult, shift in rows:
        meta = int(gen.integers(0, 1 << dut.meta_width))
        params = {"bias": int(bias), "out_mult": int(mult), "out_shift": int(shift)}
        beat = {"data": [int(v) for v in y], "meta": {"params": params}}
        if dut.meta_width:
            beat["meta"]["tag"] = meta
        beats.append(beat)
        biased = np.asarray(y, dtype=object) + int(bias)
        expected.append((spec_requant(biased, mult, shift, dut.out_bits, relu), meta))
    return beats


#: Output-quantizer configurations: narrow, and one whose ``y + bias`` (31 bits) is wider
#: than a DSP input, so that the multiply is split (hw/quantizers.py ``_split_product``).
OUTQ_CONFIGS = {"narrow": {}, "split": {"z_bits": 26, "out_mult_bits": 16}}


@pytest.mark.parametrize("seed", [1, 2], ids=lambda seed: f"seed{seed}")
@pytest.mark.parametrize("widths", list(OUTQ_CONFIGS))
def test_output_quantizer_random_with_gaps_and_backpressure(seed, widths):
    dut = OutputQuantizer(small_config(**OUTQ_CONFIGS[widths]), tag_layout=4)
    assert (dut.biased_bits > DSP_WIDE_INPUT_BITS) == (widths == "split")
    gen = np.random.default_rng(seed)
    n = dut.outputs
    y_lo, y_hi = signed_range(dut.y_bits)
    b_lo, b_hi = signed_range(dut.bias_bits)
    mult_max = (1 << dut.out_mult_bits) - 1
    expected: list = []
    phases = []
    for relu in (False, True, False):
        rows = [
            (
                gen.integers(y_lo, y_hi + 1, n),
                gen.integers(b_lo, b_hi + 1),
                gen.integers(0, mult_max + 1),
                gen.integers(0, 1 << dut.shift_width),
            )
            for _ in range(16)
        ]
        beats = _outq_beats(dut, rows, gen, expected, relu=relu)
        phases.append(Phase([(dut.relu, relu)], beats))
    received = simulate(dut, dut.i_y, dut.o_out, phases, rng=random.Random(seed), **GAPS)
    check_results(received, expected, "data", n, dut.meta_width)


@pytest.mark.parametrize("widths", list(OUTQ_CONFIGS))
def test_output_quantizer_extremes(widths):
    """Max/min y and bias, rounding ties of both signs, shift 0 / maximum, ReLU."""
    dut = OutputQuantizer(small_config(**OUTQ_CONFIGS[widths]))
    gen = np.random.default_rng(6)
    n = dut.outputs
    y_lo, y_hi = signed_range(dut.y_bits)
    b_lo, b_hi = signed_range(dut.bias_bits)
    mult_max = (1 << dut.out_mult_bits) - 1
    rows = []
    for shift in (0, 1, dut.max_shift, (1 << dut.shift_width) - 1):
        for mult in (mult_max, 1, 0):
            rows += [
                (np.full(n, y_hi), b_hi, mult, shift),
                (np.full(n, y_lo), b_lo, mult, shift),
                (np.resize([y_hi, y_lo, -1, 1], n), 0, mult, shift),
            ]
    # Ties: (y + bias) * mult = odd multiple of 2^(s-1), both signs.
    for shift in range(1, dut.y_bits):
        values = tie_values(gen, n, np.full(n, shift), dut.y_bits)
        rows += [(values, 0, 1, shift), (-values, 0, 1, shift), (values - 5, 5, 3, shift)]
    expected: list = []
    phases = [
        Phase([(dut.relu, relu)], _outq_beats(dut, rows, gen, expected, relu=relu))
        for relu in (False, True)
    ]
    received = simulate(dut, dut.i_y, dut.o_out, phases, rng=random.Random(6), **GAPS)
    check_results(received, expected, "data", n, 0)
    got = np.array([lanes(p, "data", n) for p in received])
    lo, hi = signed_range(dut.out_bits)
    half = len(rows)
    assert (got[:half] == lo).any() and (got[:half] == hi).any()
    assert got[half:].min() == 0 and (got[half:] == hi).any()  # ReLU clamps at 0


# -- latency, throughput, backpressure --------------------------------------------------------


def _blocks():
    config = small_config("fixed")
    act = ActQuantizer(config, meta_layout=4)
    rescale = Rescale(config, meta_layout=4)
    outq = OutputQuantizer(config, tag_layout=4)
    return [
        (act, act.i_v, act.o_q, lambda meta: {"data": [0] * act.positions, "meta": meta}),
        (
            rescale,
            rescale.i_acc,
            rescale.o_z,
            lambda meta: {"data": [0] * rescale.positions, "meta": meta},
        ),
        (
            outq,
            outq.i_y,
            outq.o_out,
            lambda meta: {"data": [0] * outq.outputs, "meta": {"tag": meta}},
        ),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["act", "rescale", "outq"])
def test_latency_throughput_and_stall(index):
    """Back-to-back beats: one per cycle, each result ``latency`` cycles later; a 3-cycle
    output stall holds the whole pipeline (input not ready) and delays the rest by 3."""
    dut, i_port, o_port, payload_with = _blocks()[index]
    count, stall = 8, (5, 6, 7)  # o.ready low at these clock edges
    payloads = [payload_with(meta) for meta in range(count)]
    transfers = measure_transfers(
        dut, i_port, o_port, payloads, ready=lambda tick: tick not in stall
    )
    in_ticks = transfers.in_ticks
    latency = dut.latency
    assert [int(payload.meta) for payload in transfers.out_payloads] == list(range(count))
    # One beat per cycle except while a result is held at the output (the stall ticks from
    # the first result on, tick 1 + latency); i.ready = ~o.valid | o.ready.
    blocked = {t for t in stall if t >= 1 + latency}
    assert in_ticks == [t for t in range(1, 20) if t not in blocked][:count]
    assert all(
        in_ready == (not out_valid or out_ready)
        for _, _, in_ready, out_valid, out_ready in transfers.samples
    )
    # A result leaves `latency` cycles after its beat, one per cycle, never on a stall tick.
    expected, last = [], 0
    for t in in_ticks:
        out = max(t + latency, last + 1)
        while out in stall:
            out += 1
        expected.append(last := out)
    assert transfers.out_ticks == expected


# -- Verilog: lint, and Verilator through cocotb against the golden model ----------------------


@pytest.mark.parametrize(
    ("name", "factory"),
    [
        ("act_pow2", lambda: ActQuantizer(EngineConfig(), meta_layout=3)),
        ("act_fixed", lambda: ActQuantizer(EngineConfig(scale_mode="fixed"))),
        ("rescale", lambda: Rescale(EngineConfig(), meta_layout=1)),
        ("outq", lambda: OutputQuantizer(EngineConfig())),
        (
            "outq_direct",
            lambda: OutputQuantizer(EngineConfig(algorithm="direct-3x3"), tag_layout=2),
        ),
    ],
)
def test_verilog_lint(name, factory, tmp_path):
    from sfc_hls.sim.verilator import lint_verilog

    source = tmp_path / f"{name}.v"
    source.write_text(verilog.convert(factory(), name=name))
    assert lint_verilog(source, toplevel=name) == ""


VERILATOR_LAYERS = [
    {"cin": 16, "cout": 6, "height": 14, "width": 14, "relu": False},
    {"cin": 64, "cout": 4, "height": 7, "width": 7, "relu": True},
    {"cin": 3, "cout": 8, "height": 20, "width": 13, "batch": 2, "relu": False},
]


#: The simulation is short and the model large (m = 132 lanes per block): compiling the
#: C++ at -O0 instead of Verilator's -Os cuts the cold build to about a third.
VERILATOR_BUILD_ARGS = ("-CFLAGS", "-O0")


@pytest.mark.parametrize("seed", [11], ids=lambda seed: f"seed{seed}")
def test_verilator_golden_layers(seed, tmp_path):
    """Default engine (sfc6-7x7-3x3: m = 132, M*M = 49), both scale modes, in Verilator
    against the conv2d_int8 stages; overflow flag; one beat per cycle and latencies."""
    from sfc_hls.sim.tb_quantizers import QuantizerHarness
    from sfc_hls.sim.verilator import run_cocotb

    config = EngineConfig()
    source = tmp_path / "quantizers.v"
    # No source locations in the Verilog: the cached build survives edits of comments.
    harness = QuantizerHarness(config, meta_width=5)
    source.write_text(verilog.convert(harness, name="quantizers", emit_src=False))
    report = tmp_path / "report.json"
    result = run_cocotb(
        [source],
        "quantizers",
        "sfc_hls.sim.tb_quantizers",
        build_root=SIM_BUILD,
        build_args=VERILATOR_BUILD_ARGS,
        seed=seed,
        config={
            "engine": config.to_dict(),
            "meta_width": 5,
            "layers": VERILATOR_LAYERS,
            "input_pause": 0.3,
            "output_pause": 0.4,
            "throughput_beats": 64,
            "report_file": str(report),
        },
    )
    assert set(result.tests) == {
        "golden_layers_with_stalls",
        "overflow_flag_on_too_small_shift",
        "one_beat_per_cycle",
    }
    measured = json.loads(report.read_text())
    act_beats = 16 * 4 + 64 + 2 * 3 * 6
    channel_tiles = 2 * (24 + 4 + 96)  # (image, channel, tile) triples, both scale modes
    assert measured["golden_beats"] == {
        "act_pow2": act_beats,
        "act_fixed": act_beats,
        "rescale": channel_tiles * 12,  # m = 132 accumulators in blocks of W = 11
        "outq": channel_tiles * 5,  # 49 outputs per tile in beats of W = 11: 5 beats
    }
    assert measured["relu_layers"] == 2
    latencies = {"act_pow2": 2, "act_fixed": 2, "rescale": 4, "outq": 6}
    for name, latency in latencies.items():
        assert measured["throughput"][name]["cycles_per_beat"] == 1.0
        assert measured["throughput"][name]["latency_cycles"] == latency
