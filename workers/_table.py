"""The aligned tables of the operator commands (`flowgate dlq list`, `flowgate runs list`)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["aligned"]


def aligned(
    header: Sequence[str], rows: Sequence[Sequence[str]], width: int, *, min_last: int = 20
) -> list[str]:
    """Columns aligned under `header`, two spaces apart; the last column, the free text (a
    reason, a vendor reference), cut with an ellipsis to fit `width`, but never below
    `min_last` characters."""
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    used = sum(widths[:-1]) + 2 * (len(widths) - 1)
    last = max(min_last, width - used)
    lines = []
    for row in table:
        text = row[-1]
        if len(text) > last:
            text = text[: last - 1] + "…"
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*cells, text]).rstrip())
    return lines
