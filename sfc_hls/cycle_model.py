"""Cycle model of the conv engine: cycles per layer from the layer descriptor.

A layer on an engine (``sfc_hls.hw.engine.ConvEngine``) is described by
``cin``, ``cout`` and ``tiles`` (output tiles per output-channel group, all
images) -- the registers of :mod:`sfc_hls.hw.register_map`.  The model
follows the engine's protocol tile by tile, with the pipeline latencies and
the group overheads of the RTL, and returns the cycles from the first
configuration beat (cycle 0) to the last output beat, inclusive, as the
native stream runner (:mod:`sfc_hls.sim.native`) counts them with streams
that never stall (validated against Verilator in ``tests/test_cycle_model.py``
within 2%).

Timing parameters (:class:`EngineTiming`; the engine's own values come from
``sfc_hls.hw.interface.EngineInterface.timing()``, so this module needs no
hardware description):

* ``cfg_writes``: register writes per layer (``2 m + 6``, one per cycle).
* ``front_latency``: from the handshake of a tile's last ``i_act`` beat to its
  result being offered to the channel serializer (input transform, activation
  quantizer, weight-buffer read, MAC multiply + accumulate).
* ``back_latency``: from a lane leaving the serializer to its ``o_out`` beat
  (rescale, output transform, output quantizer).
* ``weight_banks``: 1 = the group's parameters and weights load, then the
  group computes, then the engine waits until its outputs have left
  (serial control); 2 = ping-pong banks, the next group loads while the
  current one computes and a bank is freed when its group's last lane leaves
  the serializer.

Per output-channel group ``g`` with ``P_g = min(P_co, cout - g P_co)`` valid
lanes, the MAC array finishes a tile every ``cin`` cycles and the serializer
takes a result every ``P_g`` cycles, so a tile costs ``max(cin, P_g)`` cycles
in steady state.  Loading a group costs ``P_co`` parameter beats and ``cin``
weight rows (in sequence with one bank, ``max(P_co, cin)`` in parallel with
two).  :attr:`LayerCycles.breakdown` splits the cycles into the activation
beats (useful work) and the overheads: configuration, weight loading before
the first group, stalls between groups (weight loading and drain not hidden),
output-serializer stalls (``cin < P_co``) and the final pipeline drain.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from sfc_hls.arguments import check_int

__all__ = ["EngineTiming", "LayerCycles", "layer_cycles"]


@dataclass(frozen=True)
class EngineTiming:
    """Timing parameters of one generated engine (see the module docstring)."""

    pco: int
    cfg_writes: int
    front_latency: int
    back_latency: int
    weight_banks: int = 2

    def __post_init__(self) -> None:
        check_int("pco", self.pco, 1)
        check_int("cfg_writes", self.cfg_writes, 1)
        check_int("front_latency", self.front_latency, 1)
        check_int("back_latency", self.back_latency, 0)
        check_int("weight_banks", self.weight_banks, 1)
        if self.weight_banks > 2:
            raise ValueError(f"weight_banks must be 1 or 2, got {self.weight_banks}")

    @property
    def latency(self) -> int:
        """Last ``i_act`` beat of a tile to its first ``o_out`` beat, minus one (the engine's total latency)."""
        return self.front_latency + self.back_latency

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class LayerCycles:
    """Modelled cycles of one layer and where they go.

    ``cycles`` counts from the host's send to the last output beat (as the
    testbench measures); ``act_beats`` = ``groups * tiles * cin`` is the
    useful work at one beat per cycle.  ``breakdown`` sums to ``cycles``.
    """

    cin: int
    cout: int
    tiles: int
    groups: int
    act_beats: int
    cycles: int
    breakdown: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_cycles(timing: EngineTiming, *, cin: int, cout: int, tiles: int) -> LayerCycles:
    """Cycles of one layer (``cin``, ``cout``, ``tiles`` as written to the registers)."""
    if not isinstance(timing, EngineTiming):
        raise TypeError(f"timing must be an EngineTiming, got {type(timing).__name__}")
    check_int("cin", cin, 1)
    check_int("cout", cout, 1)
    check_int("tiles", tiles, 1)
    pco = timing.pco
    front, back = timing.front_latency, timing.back_latency
    groups = math.ceil(cout / pco)
    lanes = [min(pco, cout - g * pco) for g in range(groups)]
    w = timing.cfg_writes  # config beats at cycles 0 .. w-1; START is the last

    # Per group: cycle its first act beat may enter (weights ready) and, for
    # the serializer, the take times of its tiles.
    take_prev = None  # serializer take time of the previous tile
    lanes_prev = 0
    last_beat_prev = w - 1  # last act beat of the previous group
    release = []  # cycle the serializer frees each group's bank (last lane leaves)
    load_done = []  # cycle a group's loading completes (counters full)
    last_output = 0
    between = 0  # act-input idle cycles between groups
    serializer_stall = 0
    first_act = 0
    for g in range(groups):
        if timing.weight_banks == 2:
            # Loader: parameters and rows in parallel into a free bank.
            start = w if g == 0 else load_done[g - 1] + 1
            if g >= 2:
                start = max(start, release[g - 2] + 1)
            load_done.append(start + max(pco, cin))
            ready = load_done[g] + 1
        else:
            # LOAD_CHAN (P_co beats), LOAD_WEIGHTS (cin rows + 1), after the
            # previous group's outputs have left (DRAIN: +2).
            start = w if g == 0 else last_output + 2
            ready = start + pco + cin + 1
            if g > 0:
                take_prev = None  # the serializer is empty after a drain
        first = max(ready, last_beat_prev + 1)
        if g == 0:
            first_act = first
        else:
            between += first - (last_beat_prev + 1)
        for t in range(tiles):
            unstalled = first + (t + 1) * cin - 1 + front  # result offered without stalls
            take = unstalled
            if take_prev is not None:
                take = max(take, take_prev + max(lanes_prev, cin))
                serializer_stall += take - max(unstalled, take_prev + cin)
            take_prev, lanes_prev = take, lanes[g]
        # Act beats keep their unstalled timing relative to the serializer
        # (stalls only delay results); the group's last beat for the next group:
        last_beat_prev = max(first + tiles * cin - 1, take_prev - front)
        release.append(take_prev + lanes[g])
        last_output = take_prev + lanes[g] + back
    cycles = last_output + 1
    act_beats = groups * tiles * cin
    breakdown = {
        "act_beats": act_beats,
        "config": w,
        "first_load": first_act - w,
        "between_groups": between,
        "serializer": serializer_stall,
    }
    breakdown["drain"] = cycles - sum(breakdown.values())
    return LayerCycles(cin, cout, tiles, groups, act_beats, cycles, breakdown)
