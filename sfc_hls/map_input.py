"""The map input of a fast-mode layer: feature-map rows as a DMA reads them, and the on-chip tiles.

An engine generated with a map buffer (``EngineConfig.map_kib``) can take a
fast-mode layer's activations as the rows of its input map instead of as
overlapping tiles (docs/datapath.md, "Map input").  This module is the
specification both sides follow:

* :func:`map_beats`: the ``i_map`` beats of a map ``(N, Cin, H, W)``: planes in
  order ``(image, channel)``, rows top to bottom, each row as ``ceil(W / 2L)``
  beats of ``2L`` pixels (zero past ``W``);
* :func:`map_words`: the buffer words per bank the map takes (it fits when
  this is at most the engine's ``map_depth``);
* the tiles the buffer replays are :func:`sfc_hls.reference.extract_tiles`
  of the map, in the engine's ``i_act`` order, once per output-channel group.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DIM_BITS", "map_beats", "map_words", "row_beats"]

#: Bits of the IMAGES, HEIGHT and WIDTH registers (maps up to 4095 x 4095, 4095 images).
DIM_BITS = 12


def row_beats(width: int, input_tile: int) -> int:
    """Beats of one map row: ``ceil(width / 2L)``."""
    return -(-width // (2 * input_tile))


def map_words(images: int, cin: int, height: int, width: int, input_tile: int) -> int:
    """Words per bank a map takes: ``images * cin * ceil(height / L) * ceil(width / 2L)``."""
    return images * cin * -(-height // input_tile) * row_beats(width, input_tile)


def map_beats(x: np.ndarray, input_tile: int) -> np.ndarray:
    """``(beats, 2L)`` pixels of the ``i_map`` stream of ``x`` ``(N, Cin, H, W)``."""
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 4:
        raise ValueError(f"x must be (N, Cin, H, W), got shape {x.shape}")
    n, cin, h, w = x.shape
    pair = 2 * input_tile
    k = row_beats(w, input_tile)
    rows = np.zeros((n, cin, h, k * pair), dtype=np.int64)
    rows[..., :w] = x
    return rows.reshape(-1, pair)
