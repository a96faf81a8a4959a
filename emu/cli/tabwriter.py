"""kubectl's column alignment: Go's text/tabwriter, kubectl's PrefixWriter, `get`'s tables.

Describers write lines of tab-separated cells at indentation levels (two spaces a level);
the writer then aligns each run of lines that share a column, padding every cell to the
run's widest plus two, so the `Key:   value` columns line up as kubectl lines them up.
`kemu get`'s tables are the simpler case: every column as wide as its widest cell, three
spaces apart.
"""

from __future__ import annotations


def tabwriter(text: str, padding: int = 2) -> str:
    """Go's text/tabwriter (minwidth 0, padding 2, padchar ' '): align tab-terminated cells.

    A column block is a run of consecutive lines that have a tab-terminated cell in that
    column; every cell of the block is padded to the block's widest cell plus `padding`.
    The last cell of a line (after its last tab) never counts.
    """
    lines = [ln.split("\t") for ln in text.split("\n")]
    out: list[str] = []

    def fmt(line0: int, line1: int, widths: list[int]) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(line0, this, widths)
            line0 = this
            width = 0
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            fmt(line0, this, [*widths, width])
            line0 = this
        write(line0, line1, widths)

    def write(a: int, b: int, widths: list[int]) -> None:
        for cells in lines[a:b]:
            out.append("".join(c.ljust(widths[j]) if j < len(widths) else c for j, c in enumerate(cells)))

    fmt(0, len(lines), [])
    return "\n".join(ln.rstrip() for ln in out)


class PrefixWriter:
    """kubectl's PrefixWriter: text at an indentation level (two spaces a level), then tabwriter."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.pending = ""

    def write(self, level: int, text: str) -> None:
        self.pending += "  " * level + text

    def flush(self) -> None:
        if self.pending:
            self.done.append(tabwriter(self.pending.removesuffix("\n")))
        self.pending = ""

    def text(self) -> str:
        self.flush()
        return "\n".join(self.done)


def format_table(table: list[list[str]], headers: bool = True) -> str:
    """Columns three spaces apart, as kubectl's tabwriter sets them; the last one unpadded."""
    body = table if headers else table[1:]
    if not body:
        return ""
    widths = [max(len(r[i]) for r in body) for i in range(len(table[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body)
