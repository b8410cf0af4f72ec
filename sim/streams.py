"""cocotb driver and monitor for ``amaranth.lib.stream`` interfaces.

Amaranth's Verilog backend flattens a stream port ``i_x`` into the signals
``i_x__payload``, ``i_x__valid`` and ``i_x__ready``. :class:`StreamDriver` feeds
raw payloads (ints, as produced by :class:`PayloadCodec`) into such a port and
:class:`StreamMonitor` collects what a port hands out. Both take a *pause
generator*, an iterator of bools where ``True`` means "idle this cycle":
the driver then keeps ``valid`` low before offering its next payload, the
monitor keeps ``ready`` low. Both follow the stream rules: once ``valid`` is
high it stays high, with a stable payload, until the transfer.

Both sample handshakes in the ``ReadOnly`` phase of each cycle, so a ``ready``
that depends combinationally on another input driven in the same cycle is seen
correctly.

The testbenches share the rest of their plumbing here too:
:func:`start_clock_and_reset` (clock on ``clk``, streams idle, ``rst`` pulse),
:func:`within_cycles` (a timeout counted in clock cycles) and
:class:`Scoreboard` (in-order exact comparison of results).
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Awaitable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, ReadOnly, RisingEdge, with_timeout
from cocotb.types import Logic

__all__ = [
    "CLOCK_PERIOD_NS",
    "apply_reset",
    "PayloadCodec",
    "Scoreboard",
    "first_difference",
    "StreamDriver",
    "StreamMonitor",
    "never_pause",
    "random_pauses",
    "start_clock_and_reset",
    "within_cycles",
]

#: Clock period of every testbench, in ns.
CLOCK_PERIOD_NS = 10

_T = TypeVar("_T")


def never_pause() -> Iterator[bool]:
    """Pause generator that never pauses."""
    return itertools.repeat(False)


def random_pauses(rng: random.Random, probability: float) -> Iterator[bool]:
    """Pause generator that idles each cycle with the given probability.

    With probability 0 it is :func:`never_pause` and draws nothing from ``rng``.
    """
    if not 0 <= probability < 1:
        raise ValueError(f"probability must be in [0, 1), not {probability!r}")
    if probability == 0:
        return never_pause()
    return (rng.random() < probability for _ in itertools.repeat(None))


async def apply_reset(dut: Any, cycles: int = 3) -> None:
    """Hold ``rst`` high for ``cycles`` rising edges of ``clk``, release it and
    return after the next edge (the first one out of reset)."""
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def start_clock_and_reset(
    dut: Any, *, inputs: Iterable[str] = (), outputs: Iterable[str] = (), cycles: int = 3
) -> None:
    """Start ``clk`` (:data:`CLOCK_PERIOD_NS`), hold ``valid`` of the ``inputs`` stream
    ports and ``ready`` of the ``outputs`` low, and :func:`apply_reset` for ``cycles``."""
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
    for port in inputs:
        getattr(dut, f"{port}__valid").value = 0
    for port in outputs:
        getattr(dut, f"{port}__ready").value = 0
    await apply_reset(dut, cycles)


async def within_cycles(awaitable: Awaitable[_T], cycles: int) -> _T:
    """Await ``awaitable``; ``SimTimeoutError`` after ``cycles`` clock periods."""
    return await with_timeout(awaitable, cycles * CLOCK_PERIOD_NS, timeout_unit="ns")


def first_difference(got: Any, want: Any) -> str | None:
    """``None`` if equal; else where they first differ: ``"[i][j] = got, expected want"``."""
    got, want = np.asarray(got, dtype=object), np.asarray(want).astype(object)
    if got.shape != want.shape:
        return f" shape {got.shape}, expected {want.shape}"
    if np.array_equal(got, want):
        return None
    lane = tuple(int(i) for i in np.argwhere(got != want)[0])
    text = "".join(f"[{i}]" for i in lane)
    return f"{text} = {got[lane]}, expected {want[lane]} ({int((got != want).sum())} of {got.size} differ)"


class Scoreboard:
    """Compares received results with expected ones, exactly: the one scoreboard of sim/.

    Streams of results (block testbenches): :meth:`expect` each result (an
    array of lanes, any shape, Python or NumPy integers, and optionally a
    ``meta`` value), then :meth:`check` the received ones in order; it raises
    naming the first differing lane as ``<name> <index>: <field>[lane] = got,
    expected want`` and then forgets what it checked, so it can be called once
    per batch; ``checked`` counts the results checked so far.

    Whole results (the engine testbench's output maps): :meth:`compare`
    returns whether they are equal and keeps each mismatch in ``mismatches``
    for the report.
    """

    def __init__(self, name: str = "result", field: str = "value") -> None:
        self.name = name
        self.field = field
        self.expected: list[tuple[np.ndarray, int | None]] = []
        self.checked = 0
        self.mismatches: list[str] = []

    def compare(self, label: str, got: Any, want: Any) -> bool:
        """Whether ``got`` equals ``want``; a mismatch is kept in :attr:`mismatches`."""
        self.checked += 1
        difference = first_difference(got, want)
        if difference is not None:
            self.mismatches.append(f"{label}: {self.field}{difference}")
        return difference is None

    def expect(self, lanes: Any, meta: int | None = None) -> None:
        self.expected.append((np.asarray(lanes), meta))

    def check(self, received: Sequence[Any], metas: Sequence[int] | None = None) -> None:
        """``received``: the results' lanes in arrival order; ``metas``: their meta
        values, compared with the expected ones that have a meta value."""
        assert len(received) == len(self.expected), (
            f"{self.name}s: received {len(received)}, expected {len(self.expected)}"
        )
        got_metas: Sequence[int | None] = [None] * len(received) if metas is None else metas
        for index, (got, got_meta, (want, meta)) in enumerate(
            zip(received, got_metas, self.expected, strict=True)
        ):
            difference = first_difference(got, want)
            if difference is not None:
                raise AssertionError(f"{self.name} {index}: {self.field}{difference}")
            if meta is not None:
                assert got_meta == meta, f"{self.name} {index}: meta {got_meta}, expected {meta}"
        self.checked += len(received)
        self.expected.clear()


class PayloadCodec:
    """Converts payload values to and from the flat bits on a Verilog port.

    ``layout`` is the Amaranth shape of the payload (usually a
    ``data.Layout``); values are what ``layout.const()`` accepts (nested lists
    for ``ArrayLayout``, dicts for ``StructLayout``). Decoding returns nested
    lists/dicts of ints, so the bit layout is Amaranth's own.
    """

    def __init__(self, layout: Any) -> None:
        self.layout = layout

    def encode(self, value: Any) -> int:
        return self.layout.const(value).as_bits()

    def decode(self, bits: int) -> Any:
        return _to_python(self.layout.from_bits(bits))


def _to_python(value: Any) -> Any:
    from amaranth.lib import data

    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [_to_python(value[index]) for index in range(layout.length)]
        return {name: _to_python(value[name]) for name, _ in layout}
    return int(value)


def _stream_handles(dut: Any, port: str) -> tuple[Any, Any, Any]:
    return (
        getattr(dut, f"{port}__payload"),
        getattr(dut, f"{port}__valid"),
        getattr(dut, f"{port}__ready"),
    )


class _StreamHub:
    """One coroutine that drives every stream port of a testbench, once per clock cycle.

    cocotb schedules each coroutine at every trigger; with one coroutine for
    all ports (instead of one per port) a cycle costs two awaits in total, and
    a port value is written only when it changes (a VPI write is expensive).
    :class:`StreamDriver` and :class:`StreamMonitor` register with the hub of
    their DUT and clock; the first one starts it.  Cycles count from the hub's
    start.
    """

    _hubs: dict[tuple[int, int], _StreamHub] = {}

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.sources: list[StreamDriver] = []
        self.sinks: list[StreamMonitor] = []
        self.cycle = 0
        self._task = cocotb.start_soon(self._run())

    @classmethod
    def of(cls, dut: Any, clock: Any) -> _StreamHub:
        key = (id(dut), id(clock))
        hub = cls._hubs.get(key)
        if hub is None or hub._task.done():
            hub = cls._hubs[key] = cls(clock)
        return hub

    async def _run(self) -> None:
        edge, settle = RisingEdge(self.clock), ReadOnly()
        while True:
            await edge
            self.cycle += 1
            for source in self.sources:
                source._offer()
            for sink in self.sinks:
                sink._offer()
            await settle
            for source in self.sources:
                source._sample(self.cycle)
            for sink in self.sinks:
                sink._sample(self.cycle)


class _Port:
    """Handles of one stream port, with write-on-change for the signals this side drives."""

    def __init__(self, dut: Any, port: str) -> None:
        self.payload, self.valid, self.ready = _stream_handles(dut, port)
        self._written: dict[str, int | None] = {"payload": None, "valid": None, "ready": None}

    def write(self, name: str, value: int) -> None:
        if self._written[name] != value:
            getattr(self, name).value = value
            self._written[name] = value

    def forget(self) -> None:
        """Forget what was written (after an external write, e.g. a reset)."""
        self._written = dict.fromkeys(self._written)


class StreamDriver:
    """Source for the stream port ``port`` of ``dut`` (the DUT consumes).

    Call :meth:`send` with raw payloads; they are offered one per cycle unless
    the pause generator idles. ``handshake_cycles`` holds the cycle number (as
    counted by the testbench's stream hub from its start) of every transfer.
    """

    def __init__(
        self, dut: Any, port: str, clock: Any, *, pauses: Iterator[bool] | None = None
    ) -> None:
        self._port = _Port(dut, port)
        self._pauses = pauses if pauses is not None else never_pause()
        self._queue: deque[int] = deque()
        self._idle = Event()
        self._idle.set()
        self.handshake_cycles: list[int] = []
        self._current: int | None = None
        self._port.write("valid", 0)
        self.hub = _StreamHub.of(dut, clock)
        self.hub.sources.append(self)

    def send(self, payloads: Iterable[int]) -> None:
        """Queue raw payloads for transfer, in order."""
        self._queue.extend(payloads)
        if self._queue:
            self._idle.clear()

    async def wait_idle(self) -> None:
        """Wait until every queued payload has been transferred."""
        await self._idle.wait()

    def stop(self) -> None:
        if self in self.hub.sources:
            self.hub.sources.remove(self)

    def flush(self) -> None:
        """Drop every queued payload and any offered one (for a reset); ``valid`` goes low."""
        self._queue.clear()
        self._current = None
        self._port.write("valid", 0)
        self._idle.set()

    def _offer(self) -> None:
        if self._current is None:
            if self._queue and not next(self._pauses):
                self._current = self._queue.popleft()
                self._port.write("payload", self._current)
                self._port.write("valid", 1)
            else:
                self._port.write("valid", 0)

    def _sample(self, cycle: int) -> None:
        if self._current is not None and self._port.ready.value == Logic(1):
            self.handshake_cycles.append(cycle)
            self._current = None
            if not self._queue:
                self._idle.set()


class StreamMonitor:
    """Sink for the stream port ``port`` of ``dut`` (the DUT produces).

    Drives ``ready`` (low on pause cycles) and records every transfer:
    ``received`` holds the raw payloads, ``handshake_cycles`` their cycle
    numbers as counted by the testbench's stream hub from its start.
    """

    def __init__(
        self, dut: Any, port: str, clock: Any, *, pauses: Iterator[bool] | None = None
    ) -> None:
        self._port = _Port(dut, port)
        self._pauses = pauses if pauses is not None else never_pause()
        self.received: list[int] = []
        self.handshake_cycles: list[int] = []
        self._count_changed = Event()
        self._ready = False
        self._port.write("ready", 0)
        self.hub = _StreamHub.of(dut, clock)
        self.hub.sinks.append(self)

    def clear(self) -> None:
        """Forget everything received so far (for a reset)."""
        self.received.clear()
        self.handshake_cycles.clear()

    async def wait_for(self, count: int) -> None:
        """Wait until at least ``count`` payloads have been received."""
        while len(self.received) < count:
            self._count_changed.clear()
            await self._count_changed.wait()

    def stop(self) -> None:
        if self in self.hub.sinks:
            self.hub.sinks.remove(self)

    def _offer(self) -> None:
        self._ready = not next(self._pauses)
        self._port.write("ready", int(self._ready))

    def _sample(self, cycle: int) -> None:
        if self._ready and self._port.valid.value == Logic(1):
            self.received.append(self._port.payload.value.to_unsigned())
            self.handshake_cycles.append(cycle)
            self._count_changed.set()
