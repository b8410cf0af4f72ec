"""Algorithm names: parsing, construction with a cache, and the default table.

Names (case-insensitive) ::

    sfc<N>-<M>x<M>-<R>x<R>    SFC-N(MxM,RxR)            sfc6-7x7-3x3
    sfc<N>-<M>-<R>            SFC-N(M,R), 1D            sfc4-4-3
    wino-<m>x<m>-<r>x<r>      Winograd F(mxm,rxr)       wino-4x4-3x3
    wino-<m>-<r>              Winograd F(m,r), 1D       wino-2-3
    ...@p0,p1,...             Winograd with explicit interpolation points
                              (n - 1 finite ones, or n including 'inf')
                              wino-2x2-3x3@0,1,-1,inf
    direct-<R>x<R>            direct, one output per tile (B^T = I)
    direct-<M>x<M>-<R>x<R>    direct over an MxM output tile
    direct-<R>, direct-<M>-<R>  1D direct

Tiles and kernels are square; N is one of 3, 4, 6; kernels have at most 11
taps per side.  Size bounds (:data:`SIZE_LIMITS`, checked before anything is
constructed, so every accepted name is built in seconds): a 2D algorithm has
an input tile ``L = M + R - 1`` of at most 16x16 and at most 1024
multiplications per tile; Winograd has at most 16 interpolation points in 1D
and 12 in 2D; a direct tile has at most 16 outputs per side.
"""

from __future__ import annotations

import re
from functools import lru_cache

from sfc_hls.baselines import (
    MAX_WINOGRAD_POINTS,
    MAX_WINOGRAD_POINTS_2D,
    direct_1d,
    direct_2d,
    winograd_1d,
    winograd_2d,
)
from sfc_hls.bilinear import MAX_INPUT_TILE_2D, MAX_MULTS_2D, BilinearAlgorithm
from sfc_hls.sfc import MAX_KERNEL, sfc_1d, sfc_2d

__all__ = ["DEFAULT_ALGORITHMS", "NAME_SYNTAX", "SIZE_LIMITS", "get_algorithm", "parse_name"]

#: The algorithms `sfc-hls algorithms` lists by default.
DEFAULT_ALGORITHMS = (
    "wino-2x2-3x3",
    "wino-4x4-3x3",
    "wino-6x6-3x3",
    "sfc4-4x4-3x3",
    "sfc6-6x6-3x3",
    "sfc6-7x7-3x3",
    "sfc6-6x6-5x5",
    "sfc6-6x6-7x7",
    "sfc4-4-3",
    "sfc6-6-3",
    "direct-3x3",
)

NAME_SYNTAX = (
    "sfc<N>-<M>x<M>-<R>x<R> (e.g. sfc6-7x7-3x3), sfc<N>-<M>-<R> (1D, e.g. sfc4-4-3), "
    "wino-<m>x<m>-<r>x<r>[@points] (e.g. wino-4x4-3x3), wino-<m>-<r>, "
    "direct-<R>x<R> (e.g. direct-3x3), direct-<M>x<M>-<R>x<R>, direct-<R>"
)

SIZE_LIMITS = (
    f"Limits: kernels up to {MAX_KERNEL}x{MAX_KERNEL}; 2D input tiles (M + R - 1) up to "
    f"{MAX_INPUT_TILE_2D}x{MAX_INPUT_TILE_2D} with at most {MAX_MULTS_2D} multiplications; "
    f"Winograd up to {MAX_WINOGRAD_POINTS} points (1D) / {MAX_WINOGRAD_POINTS_2D} (2D)."
)

_SIZE = r"(\d+)(?:x(\d+))?"
_PATTERNS = {
    "sfc": re.compile(rf"^sfc(\d+)-{_SIZE}-{_SIZE}$"),
    "wino": re.compile(rf"^(?:wino|winograd)-{_SIZE}-{_SIZE}(?:@(.+))?$"),
    "direct2": re.compile(rf"^direct-{_SIZE}-{_SIZE}$"),
    "direct1": re.compile(rf"^direct-{_SIZE}$"),
}


def _dims_and_size(first: str, second: str | None, what: str, name: str) -> tuple[int, int]:
    a = int(first)
    if second is None:
        return 1, a
    b = int(second)
    if a != b:
        raise ValueError(
            f"{what} must be square in algorithm name {name!r}, got {a}x{b} (only MxM / RxR tiles)"
        )
    return 2, a


def parse_name(name: str) -> tuple[str, int, dict]:
    """Parse an algorithm name into ``(family, dims, kwargs for the constructor)``.

    Raises ValueError naming the accepted syntax.
    """
    if not isinstance(name, str):
        raise TypeError(f"algorithm name must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if m := _PATTERNS["sfc"].match(key):
        n = int(m.group(1))
        d_m, out_tile = _dims_and_size(m.group(2), m.group(3), "the output tile", name)
        d_r, kernel = _dims_and_size(m.group(4), m.group(5), "the kernel", name)
        if d_m != d_r:
            raise ValueError(f"output tile and kernel of {name!r} must both be 1D or both 2D")
        return "sfc", d_m, {"n": n, "out_tile": out_tile, "kernel": kernel}
    if m := _PATTERNS["wino"].match(key):
        d_m, out_tile = _dims_and_size(m.group(1), m.group(2), "the output tile", name)
        d_r, kernel = _dims_and_size(m.group(3), m.group(4), "the kernel", name)
        if d_m != d_r:
            raise ValueError(f"output tile and kernel of {name!r} must both be 1D or both 2D")
        points = m.group(5).split(",") if m.group(5) else None
        return "winograd", d_m, {"out_tile": out_tile, "kernel": kernel, "points": points}
    if m := _PATTERNS["direct2"].match(key):
        d_m, out_tile = _dims_and_size(m.group(1), m.group(2), "the output tile", name)
        d_r, kernel = _dims_and_size(m.group(3), m.group(4), "the kernel", name)
        if d_m != d_r:
            raise ValueError(f"output tile and kernel of {name!r} must both be 1D or both 2D")
        return "direct", d_m, {"out_tile": out_tile, "kernel": kernel}
    if m := _PATTERNS["direct1"].match(key):
        d_r, kernel = _dims_and_size(m.group(1), m.group(2), "the kernel", name)
        return "direct", d_r, {"out_tile": 1, "kernel": kernel}
    raise ValueError(f"unknown algorithm name {name!r}; expected one of: {NAME_SYNTAX}")


@lru_cache(maxsize=128)
def _build(family: str, dims: int, frozen: tuple) -> BilinearAlgorithm:
    kw = dict(frozen)
    if kw.get("points") is not None:
        kw["points"] = list(kw["points"])
    if family == "sfc":
        build_sfc = sfc_1d if dims == 1 else sfc_2d
        return build_sfc(kw["n"], kw["out_tile"], kw["kernel"])
    if family == "winograd":
        build_winograd = winograd_1d if dims == 1 else winograd_2d
        return build_winograd(kw["out_tile"], kw["kernel"], kw["points"])
    build_direct = direct_1d if dims == 1 else direct_2d
    return build_direct(kw["kernel"], kw["out_tile"])


def get_algorithm(name: str) -> BilinearAlgorithm:
    """The verified algorithm for ``name`` (see module docstring); cached per process."""
    family, dims, kw = parse_name(name)
    if kw.get("points") is not None:
        kw["points"] = tuple(kw["points"])
    return _build(family, dims, tuple(sorted(kw.items())))
