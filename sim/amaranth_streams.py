"""Amaranth-simulator testbench pieces for ``amaranth.lib.stream`` ports.

The block tests drive a component's input stream and take its output stream
with these coroutines, run inside :class:`amaranth.sim.Simulator` testbenches
(``add_testbench(async def ...)``); :func:`run_testbenches` builds and runs the
simulation. Every piece follows the stream rules: a producer raises ``valid``
without waiting for ``ready`` and keeps its payload until the transfer; a
consumer checked with :func:`collect` must keep an offered payload unchanged
until it takes it.

Idle cycles and backpressure come from callables: a *gap* returns how many
idle cycles come before the next transfer, a *ready* callable whether the
consumer is ready in the coming cycle. :func:`random_gaps` draws gaps from a
seeded :class:`random.Random`.

The cocotb (Verilator) counterparts are in :mod:`sfc_hls.sim.streams`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from amaranth.lib import data
from amaranth.sim import Simulator

__all__ = [
    "CLOCK_PERIOD",
    "Transfers",
    "collect",
    "idle",
    "measure_transfers",
    "no_gap",
    "pass_through_check",
    "random_gaps",
    "receive",
    "record_transfers",
    "run_testbenches",
    "send",
    "send_all",
    "stream_through",
]

#: Clock period of every block simulation, in seconds.
CLOCK_PERIOD = 1e-8

Gap = Callable[[], int]
Testbench = Callable[[Any], Any]


def no_gap() -> int:
    """Gap that never idles."""
    return 0


def random_gaps(rng: random.Random, choices: Sequence[int]) -> Gap:
    """Gap drawn uniformly from ``choices`` (repeat a value to weight it)."""
    return lambda: rng.choice(choices)


def run_testbenches(dut: Any, *testbenches: Testbench, cycles: int) -> None:
    """Simulate ``dut`` with one clock and the given testbenches for ``cycles`` cycles."""
    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    sim.run_until(cycles * CLOCK_PERIOD)


async def idle(ctx: Any, cycles: int) -> None:
    """Let ``cycles`` clock edges pass."""
    for _ in range(cycles):
        await ctx.tick()


async def send(ctx: Any, port: Any, payload: Any) -> None:
    """Offer ``payload`` on the input stream ``port`` until it is taken; ``valid`` then drops."""
    ctx.set(port.payload, payload)
    ctx.set(port.valid, 1)
    await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def send_all(ctx: Any, port: Any, payloads: Iterable[Any]) -> None:
    """Offer ``payloads`` back to back (``valid`` stays high between them)."""
    for payload in payloads:
        ctx.set(port.payload, payload)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def receive(ctx: Any, port: Any) -> Any:
    """Raise ``ready`` on the output stream ``port`` for one transfer; return its payload."""
    ctx.set(port.ready, 1)
    (payload,) = await ctx.tick().sample(port.payload).until(port.valid)
    ctx.set(port.ready, 0)
    return payload


async def collect(
    ctx: Any, port: Any, count: int, received: list, *, ready: Callable[[], bool]
) -> None:
    """Take payloads from ``port`` into ``received`` until it holds ``count``.

    ``ready()`` decides, cycle by cycle, whether the consumer is ready. Checks
    that a payload offered without ``ready`` stays valid and unchanged.
    """
    held = None
    while len(received) < count:
        accept = ready()
        ctx.set(port.ready, accept)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if held is not None:
            assert valid and payload == held, "an offered result changed before its transfer"
        held = None
        if valid and accept:
            received.append(payload)
        elif valid:
            held = payload
    ctx.set(port.ready, 0)


def stream_through(
    dut: Any,
    i_port: Any,
    o_port: Any,
    payloads: Sequence[Any],
    *,
    results: int | None = None,
    in_gap: Gap = no_gap,
    out_gap: Gap = no_gap,
    max_cycles: int,
) -> list:
    """Stream ``payloads`` into ``i_port``, take ``results`` (default: as many) from ``o_port``.

    Before each input ``in_gap()`` idle cycles pass with ``valid`` low; before
    each output ``out_gap()`` cycles with ``ready`` low. Returns the output
    payloads (``data.Const`` values) in order; fails unless every input was
    taken and every output arrived within ``max_cycles``.
    """
    results = len(payloads) if results is None else results
    received: list = []
    accepted = [0]

    async def producer(ctx):
        for payload in payloads:
            await idle(ctx, in_gap())
            await send(ctx, i_port, payload)
            accepted[0] += 1

    async def consumer(ctx):
        for _ in range(results):
            await idle(ctx, out_gap())
            received.append(await receive(ctx, o_port))

    run_testbenches(dut, producer, consumer, cycles=max_cycles)
    assert accepted[0] == len(payloads), "producer did not finish"
    assert len(received) == results, "consumer did not finish"
    return received


async def pass_through_check(
    ctx: Any,
    i_port: Any,
    o_port: Any,
    layout: Any,
    beats: Sequence[int],
    rnd: random.Random,
    *,
    each_cycle: Callable[[Any], None] | None = None,
) -> list[int]:
    """Offer ``beats`` (raw bits of ``layout``) on ``i_port`` with random ``valid`` and
    ``o_port.ready`` every cycle, asserting a combinational pass-through (``o.valid = i.valid``,
    ``i.ready = o.ready``, the same payload) in every cycle; ``each_cycle(ctx)`` drives the
    block's other inputs first.  Returns the beats that were transferred, in order."""
    seen: list[int] = []
    for beat in beats:
        while True:
            valid, ready = rnd.random() < 0.6, rnd.random() < 0.6
            if each_cycle is not None:
                each_cycle(ctx)
            ctx.set(i_port.payload, data.Const(layout, beat))
            ctx.set(i_port.valid, valid)
            ctx.set(o_port.ready, ready)
            assert ctx.get(o_port.valid) == valid
            assert ctx.get(i_port.ready) == ready
            assert ctx.get(o_port.payload).as_bits() == beat
            await ctx.tick()
            if valid and ready:
                seen.append(beat)
                break
    return seen


@dataclass
class Transfers:
    """What :func:`record_transfers` saw; ticks count clock edges from 1."""

    in_ticks: list[int] = field(default_factory=list)
    """Ticks of the input transfers."""
    out_ticks: list[int] = field(default_factory=list)
    """Ticks of the output transfers."""
    out_payloads: list = field(default_factory=list)
    """Payloads of the output transfers."""
    samples: list[tuple[int, bool, bool, bool, bool]] = field(default_factory=list)
    """Every tick: ``(tick, in_valid, in_ready, out_valid, out_ready)``."""


async def record_transfers(
    ctx: Any,
    i_port: Any,
    o_port: Any,
    count: int,
    transfers: Transfers,
    *,
    ready: Callable[[int], bool] = lambda tick: True,
) -> None:
    """Drive ``o_port.ready`` and record both streams' transfers until ``count`` outputs.

    ``ready(tick)`` is the consumer's ``ready`` at clock edge ``tick``
    (always ready by default), so throughput and latency can be measured
    with and without backpressure.
    """
    ctx.set(o_port.ready, ready(1))
    samples = ctx.tick().sample(
        i_port.valid, i_port.ready, o_port.valid, o_port.ready, o_port.payload
    )
    tick = 0
    async for _, _, in_valid, in_ready, out_valid, out_ready, payload in samples:
        tick += 1
        transfers.samples.append((tick, in_valid, in_ready, out_valid, out_ready))
        if in_valid and in_ready:
            transfers.in_ticks.append(tick)
        if out_valid and out_ready:
            transfers.out_ticks.append(tick)
            transfers.out_payloads.append(payload)
        ctx.set(o_port.ready, ready(tick + 1))
        if len(transfers.out_ticks) == count:
            return


def measure_transfers(
    dut: Any,
    i_port: Any,
    o_port: Any,
    payloads: Sequence[Any],
    *,
    ready: Callable[[int], bool] = lambda tick: True,
    max_cycles: int = 100,
) -> Transfers:
    """Offer ``payloads`` back to back (:func:`send_all`) and record the transfers of
    both streams (:func:`record_transfers`) until as many outputs have left."""
    transfers = Transfers()

    async def producer(ctx):
        await send_all(ctx, i_port, payloads)

    async def observer(ctx):
        await record_transfers(ctx, i_port, o_port, len(payloads), transfers, ready=ready)

    run_testbenches(dut, producer, observer, cycles=max_cycles)
    return transfers
