"""`kemu probe -o svg|html`: the reachability matrix as a coloured grid.

Rows are the client pods, columns the destinations, one column per port/protocol seen
(the text table's layout, emu/traffic/probe.py `table`): green connected, red not
connected, grey not served. With `--expect` the rows carry the oracle's verdict; a cell
where the kernel and the oracle disagree gets a thick outline and a line below the grid.
Pure: rows in (as `probe -o json` prints them), text out.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]  # {"from", "to", "port", "protocol", "connected", "expected"?}

GREEN, RED, GREY, OUTLINE = "#2e9e44", "#d62728", "#c8c8c8", "#111111"
CELL, GAP, FONT_SIZE, CHAR = 18, 6, 11, 6.7  # px; CHAR: a monospace character's width at FONT_SIZE
PAD = 12
LEGEND = (
    (GREEN, "connected"),
    (RED, "not connected"),
    (GREY, "not served"),
)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def disagreements(rows: Sequence[Row]) -> list[Row]:
    """The rows where the kernel and the oracle disagree (rows without a verdict never do)."""
    return [r for r in rows if "expected" in r and bool(r["expected"]) != bool(r["connected"])]


def difference_line(r: Row) -> str:
    """As `probe --expect` words it on the terminal."""
    want = "allowed" if r["expected"] else "denied"
    got = "connected" if r["connected"] else "did not connect"
    return f"DIFFERENCE {r['from']} → {r['to']}:{r['port']}/{r['protocol']}: policy says {want}, the kernel {got}"


def _text(x: float, y: float, text: str, **attrs: object) -> str:
    extra = "".join(f' {k.rstrip("_").replace("_", "-")}="{_e(v)}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{_e(text)}</text>'


def svg(rows: Sequence[Row], title: str = "", legend: bool = True) -> str:
    """The grid as a standalone SVG document."""
    combos = sorted({(int(r["port"]), str(r["protocol"])) for r in rows})
    clients = sorted({str(r["from"]) for r in rows})
    dests = sorted({str(r["to"]) for r in rows})
    got = {(str(r["from"]), str(r["to"]), int(r["port"]), str(r["protocol"])): r for r in rows}
    diffs = disagreements(rows)
    differing = {(str(r["from"]), str(r["to"]), int(r["port"]), str(r["protocol"])) for r in diffs}
    columns = [(d, port, proto) for d in dests for port, proto in combos]
    left = PAD + max([len(c) for c in clients] + [6]) * CHAR + 8
    head = PAD + max([len(f"{d} {p}/{pr}") for d, p, pr in columns] + [6]) * CHAR + 8 + (20 if title else 0)

    def x_of(i: int) -> float:
        return left + i * CELL + (i // max(1, len(combos))) * GAP

    grid_w = x_of(len(columns)) if columns else left
    grid_bottom = head + len(clients) * CELL
    out: list[str] = []
    if title:
        out.append(_text(PAD, PAD + FONT_SIZE + 2, title, font_weight="bold", font_size=FONT_SIZE + 3))
    for i, (d, port, proto) in enumerate(columns):
        cx = x_of(i) + CELL / 2 + FONT_SIZE / 3
        out.append(_text(cx, head - 6, f"{d} {port}/{proto}", transform=f"rotate(-90 {cx:.1f} {head - 6:.1f})"))
    for j, c in enumerate(clients):
        y = head + j * CELL
        out.append(_text(left - 8, y + CELL / 2 + FONT_SIZE / 3, c, text_anchor="end"))
        for i, (d, port, proto) in enumerate(columns):
            r = got.get((c, d, port, proto))
            if r is None:
                fill, state, tip = GREY, "not-served", f"{c} → {d}: {port}/{proto} not served"
            else:
                fill, state = (GREEN, "connected") if r["connected"] else (RED, "not-connected")
                tip = f"{c} → {d}:{port}/{proto}: {'connected' if r['connected'] else 'not connected'}"
                if "expected" in r:
                    tip += f" (policy: {'allowed' if r['expected'] else 'denied'})"
            differs = (c, d, port, proto) in differing
            stroke = f'stroke="{OUTLINE}" stroke-width="3"' if differs else 'stroke="#ffffff" stroke-width="1"'
            inset = 1.5 if differs else 0.0  # the thick border drawn inside the cell, not over its neighbours
            out.append(
                f'<rect class="cell{" differs" if differs else ""}" data-from="{_e(c)}" data-to="{_e(d)}" '
                f'data-port="{port}/{proto}" data-state="{state}" x="{x_of(i) + inset:.1f}" y="{y + inset:.1f}" '
                f'width="{CELL - 2 * inset:.1f}" height="{CELL - 2 * inset:.1f}" fill="{fill}" {stroke}>'
                f"<title>{_e(tip)}</title></rect>"
            )
    y = grid_bottom + 20
    right = grid_w  # the rightmost thing drawn below the grid
    ok = sum(1 for r in rows if r["connected"])
    out.append(_text(PAD, y, f"{ok}/{len(rows)} connected"))
    if legend:
        x = float(PAD)
        y += 8
        for colour, word in LEGEND:
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{CELL}" height="{CELL}" fill="{colour}"/>')
            out.append(_text(x + CELL + 4, y + CELL / 2 + FONT_SIZE / 3, word))
            x += CELL + 12 + len(word) * CHAR
        out.append(
            f'<rect x="{x + 1.5:.1f}" y="{y + 1.5:.1f}" width="{CELL - 3}" height="{CELL - 3}" fill="#ffffff" stroke="{OUTLINE}" stroke-width="3"/>'
        )
        out.append(_text(x + CELL + 4, y + CELL / 2 + FONT_SIZE / 3, "kernel and NetworkPolicy disagree"))
        right = max(right, x + CELL + 4 + 34 * CHAR)
        y += CELL
    if any("expected" in r for r in rows):
        y += 20
        out.append(_text(PAD, y, f"{len(diffs)} difference(s) from the NetworkPolicy oracle", font_weight="bold"))
        for r in diffs:
            y += FONT_SIZE + 5
            out.append(_text(PAD, y, difference_line(r), class_="difference"))
            right = max(right, PAD + len(difference_line(r)) * CHAR)
    width = right + PAD
    height = y + PAD
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans Mono,Menlo,Consolas,monospace" font-size="{FONT_SIZE}">\n'
        f'<rect width="100%" height="100%" fill="#ffffff"/>\n' + "\n".join(out) + "\n</svg>\n"
    )


def page(rows: Sequence[Row], title: str, reload_s: int = 0) -> str:
    """A self-contained HTML page: a legend, the grid (inline SVG), the differences.
    `reload_s`: the browser reloads it that often (`probe --watch` rewrites the file)."""
    diffs = disagreements(rows)
    ok = sum(1 for r in rows if r["connected"])
    swatch = '<span class="sw" style="background:{}"></span>{}'
    legend = " ".join(swatch.format(c, _e(w)) for c, w in LEGEND)
    legend += ' <span class="sw outlined"></span>kernel and NetworkPolicy disagree'
    summary = f"{ok}/{len(rows)} connected"
    if any("expected" in r for r in rows):
        summary += f"; {len(diffs)} difference(s) from the NetworkPolicy oracle"
    grid = svg(rows, legend=False).split("\n", 1)[1]  # inline: no XML declaration
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        + (f'<meta http-equiv="refresh" content="{reload_s}">' if reload_s else "")
        + f"<title>{_e(title)}</title>\n<style>"
        "body{font-family:sans-serif;margin:16px;color:#222;background:#fff}"
        ".sw{display:inline-block;width:14px;height:14px;margin:0 4px 0 12px;vertical-align:middle}"
        f".outlined{{box-sizing:border-box;border:3px solid {OUTLINE};background:#fff}}"
        "</style></head>\n<body>\n"
        f'<h1>{_e(title)}</h1>\n<p>{_e(summary)}</p>\n<p class="legend">{legend}</p>\n{grid}</body></html>\n'
    )
