"""The project's one table formatter: fixed-width text for terminals, pipe tables for markdown.

Every command and benchmark prints its tables through :func:`format_table`::

    >>> print(format_table(["layer", "cycles"], [["conv1", "1,024"], ["fc", "-"]], align="lr"))
    layer  cycles
    -----  ------
    conv1   1,024
    fc          -

Cells are strings (callers format numbers); ``align`` gives one character per
column, ``l`` (left, the default) or ``r`` (right).  ``rules`` lists row
indices (into ``rows``) before which a separator line is drawn, e.g. above a
totals row.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table"]


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    align: str | None = None,
    markdown: bool = False,
    rules: Sequence[int] = (),
) -> str:
    """``header`` and ``rows`` as a text (or markdown) table; see the module docstring."""
    ncols = len(header)
    align = align or "l" * ncols
    if len(align) != ncols or set(align) - {"l", "r"}:
        raise ValueError(f"align must have one of 'l'/'r' per column ({ncols}), got {align!r}")
    for k, row in enumerate(rows):
        if len(row) != ncols:
            raise ValueError(f"row {k} has {len(row)} cells, the header {ncols}")
    table = [list(map(str, header)), *[list(map(str, row)) for row in rows]]
    if markdown:
        marks = ["---:" if a == "r" else "---" for a in align]
        lines = ["| " + " | ".join(table[0]) + " |", "|" + "|".join(marks) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in table) for i in range(ncols)]

    def line(row: list[str]) -> str:
        cells = (
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(row, widths, align, strict=True)
        )
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [line(table[0]), rule]
    for k, row in enumerate(table[1:]):
        if k in rules:
            lines.append(rule)
        lines.append(line(row))
    return "\n".join(lines)
