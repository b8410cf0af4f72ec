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
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import cocotb
from cocotb.triggers import Event, ReadOnly, RisingEdge
from cocotb.types import Logic

__all__ = ["PayloadCodec", "StreamDriver", "StreamMonitor", "never_pause", "random_pauses"]


def never_pause() -> Iterator[bool]:
    """Pause generator that never pauses."""
    return itertools.repeat(False)


def random_pauses(rng: random.Random, probability: float) -> Iterator[bool]:
    """Pause generator that idles each cycle with the given probability."""
    if not 0 <= probability < 1:
        raise ValueError(f"probability must be in [0, 1), not {probability!r}")
    while True:
        yield rng.random() < probability


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


class StreamDriver:
    """Source for the stream port ``port`` of ``dut`` (the DUT consumes).

    Call :meth:`send` with raw payloads; they are offered one per cycle unless
    the pause generator idles. ``handshake_cycles`` holds the cycle number (as
    counted by this driver from its start) of every transfer.
    """

    def __init__(
        self, dut: Any, port: str, clock: Any, *, pauses: Iterator[bool] | None = None
    ) -> None:
        self._payload, self._valid, self._ready = _stream_handles(dut, port)
        self._clock = clock
        self._pauses = pauses if pauses is not None else never_pause()
        self._queue: deque[int] = deque()
        self._idle = Event()
        self._idle.set()
        self.handshake_cycles: list[int] = []
        self._current: int | None = None
        self._valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, payloads: Iterable[int]) -> None:
        """Queue raw payloads for transfer, in order."""
        self._queue.extend(payloads)
        if self._queue:
            self._idle.clear()

    async def wait_idle(self) -> None:
        """Wait until every queued payload has been transferred."""
        await self._idle.wait()

    def stop(self) -> None:
        self._task.cancel()

    def flush(self) -> None:
        """Drop every queued payload and any offered one (for a reset); ``valid`` goes low."""
        self._queue.clear()
        self._current = None
        self._valid.value = 0
        self._idle.set()

    async def _run(self) -> None:
        cycle = 0
        while True:
            await RisingEdge(self._clock)
            cycle += 1
            if self._current is None:
                if self._queue and not next(self._pauses):
                    self._current = self._queue.popleft()
                    self._payload.value = self._current
                    self._valid.value = 1
                else:
                    self._valid.value = 0
                    continue
            await ReadOnly()
            if self._current is not None and self._ready.value == Logic(1):
                self.handshake_cycles.append(cycle)
                self._current = None
                if not self._queue:
                    self._idle.set()


class StreamMonitor:
    """Sink for the stream port ``port`` of ``dut`` (the DUT produces).

    Drives ``ready`` (low on pause cycles) and records every transfer:
    ``received`` holds the raw payloads, ``handshake_cycles`` their cycle
    numbers as counted by this monitor from its start.
    """

    def __init__(
        self, dut: Any, port: str, clock: Any, *, pauses: Iterator[bool] | None = None
    ) -> None:
        self._payload, self._valid, self._ready = _stream_handles(dut, port)
        self._clock = clock
        self._pauses = pauses if pauses is not None else never_pause()
        self.received: list[int] = []
        self.handshake_cycles: list[int] = []
        self._count_changed = Event()
        self._ready.value = 0
        self._task = cocotb.start_soon(self._run())

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
        self._task.cancel()

    async def _run(self) -> None:
        cycle = 0
        while True:
            await RisingEdge(self._clock)
            cycle += 1
            ready = not next(self._pauses)
            self._ready.value = int(ready)
            await ReadOnly()
            if ready and self._valid.value == Logic(1):
                self.received.append(self._payload.value.to_unsigned())
                self.handshake_cycles.append(cycle)
                self._count_changed.set()
