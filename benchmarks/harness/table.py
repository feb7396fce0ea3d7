"""The benchmarks' tables: one header and rows of cells, each column as wide as its widest cell."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TextIO


def print_table(
    header: Sequence[str], rows: Iterable[Sequence[object]], *, out: TextIO | None = None, rule: bool = False
) -> None:
    """The first column aligned left (names), the others right (figures); ``rule`` draws a line under the
    header."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    lines = [
        "  "
        + " ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    if rule:
        lines.insert(1, "-" * len(lines[0]))
    print("\n".join(lines), file=out)
