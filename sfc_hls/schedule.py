"""How a layer maps onto the engine's MAC array: tiles, output-channel groups, replicas.

The engine has ``m`` positions and ``P_co`` lanes; its output path takes
``W`` positions per cycle, so a result leaves in ``B = m / W`` blocks.

* Fast mode: a tile is ``M x M`` outputs of one image; ``P_co`` output
  channels per group.
* Direct mode: the positions hold output pixels.  With ``R`` replicas (a
  divisor of ``B``) the ``m`` positions are ``R`` copies of ``m / R`` pixels,
  copy ``r`` computing output channel ``g P_co R + r P_co + lane`` of group
  ``g``; a tile is a run of ``m / R`` consecutive pixels of the flattened
  ``(N, Ho, Wo)`` output map.  Replicas trade pixels per tile for channels per
  group, which fills the array on small maps (a 7x7 map is 49 pixels: with
  ``m = 132`` one replica uses 37% of the positions, 12 replicas of 11 pixels 89%).

This module is pure arithmetic shared by the stream encoder
(:mod:`sfc_hls.hw.engine_streams`), the cycle model and the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sfc_hls.arguments import check_int

__all__ = ["DirectSchedule", "direct_schedule"]


@dataclass(frozen=True)
class DirectSchedule:
    """A direct-mode layer on the engine.

    Attributes:
        replicas: ``R``, output-channel copies of the pixels.
        pixels_per_tile: ``m / R``.
        blocks_per_replica: ``B / R`` blocks of ``W`` positions per replica.
        tiles: tiles per group (``ceil(pixels / pixels_per_tile)``).
        groups: ``ceil(cout / (P_co R))``.
        usage: useful (pixel, channel) products per position-lane slot.
    """

    replicas: int
    pixels_per_tile: int
    blocks_per_replica: int
    tiles: int
    groups: int
    usage: float


def direct_schedule(
    *,
    positions: int,
    width: int,
    lanes: int,
    cout: int,
    pixels: int,
    replicas: int | None = None,
    max_tiles: int | None = None,
) -> DirectSchedule:
    """The schedule of a direct-mode layer with ``pixels`` output pixels (all images).

    ``replicas`` (default: chosen) must divide ``positions / width``; the
    default minimizes ``groups * tiles`` (the layer's cycles are about that
    times ``max(K^2 cin, P_co m / W)``), the smallest ``R`` on a tie.
    ``max_tiles``: the tiles an activation replay buffer holds (a group's beats
    sent once); the schedules within it come first, so that the layer's
    activations cross the interface once rather than once per group; when none
    fits (the layer runs in chunks of ``max_tiles``), the fewest tiles among the
    schedules within 1% of the fewest cycles.
    """
    check_int("positions", positions, 1)
    check_int("width", width, 1, positions)
    check_int("lanes", lanes, 1)
    check_int("cout", cout, 1)
    check_int("pixels", pixels, 1)
    if positions % width:
        raise ValueError(f"width must divide positions={positions}, got {width}")
    blocks = positions // width
    choices = [r for r in range(1, blocks + 1) if blocks % r == 0]
    if replicas is not None:
        check_int("replicas", replicas, 1)
        if replicas not in choices:
            raise ValueError(f"replicas must divide the {blocks} blocks: one of {choices}, "
                             f"got {replicas}")  # fmt: skip
        choices = [replicas]

    def plan(r: int) -> DirectSchedule:
        px = positions // r
        tiles, groups = math.ceil(pixels / px), math.ceil(cout / (lanes * r))
        usage = pixels * cout / (tiles * groups * positions * lanes)
        return DirectSchedule(r, px, blocks // r, tiles, groups, usage)

    plans = [plan(r) for r in choices]
    best = min(plans, key=lambda s: (s.groups * s.tiles, s.replicas))
    if max_tiles is None:
        return best
    check_int("max_tiles", max_tiles, 0)
    fits = [s for s in plans if s.tiles <= max_tiles]
    if fits:
        return min(fits, key=lambda s: (s.groups * s.tiles, s.replicas))
    # Run in chunks of max_tiles: each tile's beats cross the interface once, so among the
    # schedules within 1% of the fewest cycles take the one of fewest tiles.
    near = [s for s in plans if s.groups * s.tiles <= 1.01 * best.groups * best.tiles]
    return min(near, key=lambda s: (s.tiles, s.replicas))
