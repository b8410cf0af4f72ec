"""The map input of a fast-mode layer: feature-map rows as a DMA reads them, and the on-chip tiles.

An engine generated with a map buffer (``EngineConfig.map_kib``) can take a
fast-mode layer's activations as the rows of its input map instead of as
overlapping tiles (docs/datapath.md, "Map input").  This module is the
specification both sides follow:

* :func:`map_beats`: the ``i_map`` beats of a map ``(N, Cin, H, W)``: planes in
  order ``(image, channel)``, rows top to bottom, each row as ``ceil(W / 2LP)``
  beats of ``2LP`` pixels (zero past ``W``; ``P`` = ``EngineConfig.map_pairs``);
* :func:`map_words`: the buffer words per bank the map takes (it fits when
  this is at most the engine's ``map_depth``);
* the tiles the buffer replays are :func:`sfc_hls.reference.extract_tiles`
  of the map, in the engine's ``i_act`` order, once per output-channel group.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DIM_BITS", "beat_count", "map_beats", "map_words", "row_beats"]

#: Bits of the IMAGES, HEIGHT and WIDTH registers (maps up to 4095 x 4095, 4095 images).
DIM_BITS = 12


def row_beats(width: int, input_tile: int, pairs: int) -> int:
    """Beats of one map row: ``ceil(width / 2LP)``."""
    return -(-width // (2 * input_tile * pairs))


def map_words(images: int, cin: int, height: int, width: int, input_tile: int, pairs: int) -> int:
    """Words per memory a map takes: ``images * cin * ceil(height / L) * ceil(width / 2LP)``."""
    return images * cin * -(-height // input_tile) * row_beats(width, input_tile, pairs)


def beat_count(images: int, cin: int, height: int, width: int, input_tile: int, pairs: int) -> int:
    """``i_map`` beats of a map: ``images * cin * height * ceil(width / 2LP)``."""
    return images * cin * height * row_beats(width, input_tile, pairs)


def map_beats(x: np.ndarray, input_tile: int, pairs: int) -> np.ndarray:
    """``(beats, 2LP)`` pixels of the ``i_map`` stream of ``x`` ``(N, Cin, H, W)``."""
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 4:
        raise ValueError(f"x must be (N, Cin, H, W), got shape {x.shape}")
    n, cin, h, w = x.shape
    beat = 2 * input_tile * pairs
    k = row_beats(w, input_tile, pairs)
    rows = np.zeros((n, cin, h, k * beat), dtype=np.int64)
    rows[..., :w] = x
    return rows.reshape(-1, beat)
