"""Argument checks shared by the algorithm core, the golden model and hw/.

One wording for every integer parameter, so a user sees the same message
whichever layer rejects a value: ``pco must be an int >= 1, got 0``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_int"]


def check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) in ``[lo, hi]`` (``hi=None``: no bound).

    Raises :class:`TypeError` for a non-integer and :class:`ValueError` for an
    integer out of range; both messages name ``name`` and the allowed range.
    """
    allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int {allowed}, got {type(value).__name__} {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be an int {allowed}, got {value!r}")
    return value
