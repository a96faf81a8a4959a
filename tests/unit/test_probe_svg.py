"""`kemu probe -o svg|html`: the reachability grid, from the rows `probe -o json` prints."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest

from emu.cli import probe_cmd, probe_svg
from emu.cli.main import main

pytestmark = pytest.mark.unit

SVG = "{http://www.w3.org/2000/svg}"
Row = dict[str, Any]


def rows(expect: bool = True) -> list[Row]:
    """tools/t and web/a; a serves 80/TCP and 81/UDP, t serves 80/TCP. t → a:81/UDP is
    cut (and the oracle agrees); a → t:80 does not connect although policy allows it."""
    out: list[Row] = []
    for src in ("web/a", "tools/t"):
        for dst, port, proto in (("web/a", 80, "TCP"), ("web/a", 81, "UDP"), ("tools/t", 80, "TCP")):
            connected = not (src == "tools/t" and port == 81) and not (src == "web/a" and dst == "tools/t")
            row: Row = {"from": src, "to": dst, "port": port, "protocol": proto, "connected": connected}
            if expect:
                row["expected"] = not (src == "tools/t" and port == 81)
            out.append(row)
    return out


def cells(svg: str) -> dict[tuple[str, str, str], ET.Element]:
    root = ET.fromstring(svg.encode())
    return {
        (r.get("data-from", ""), r.get("data-to", ""), r.get("data-port", "")): r for r in root.iter(f"{SVG}rect") if r.get("data-from")
    }


def test_cells_are_coloured_by_outcome() -> None:
    got = cells(probe_svg.svg(rows()))
    assert len(got) == 2 * 2 * 2  # every client × every destination × every port/protocol seen (80/TCP, 81/UDP)
    assert got[("web/a", "web/a", "80/TCP")].get("fill") == probe_svg.GREEN
    assert got[("tools/t", "web/a", "81/UDP")].get("fill") == probe_svg.RED
    assert got[("tools/t", "web/a", "81/UDP")].get("data-state") == "not-connected"
    # tools/t serves neither 81/UDP: grey, whoever asks
    assert got[("web/a", "tools/t", "81/UDP")].get("fill") == probe_svg.GREY
    assert got[("tools/t", "tools/t", "81/UDP")].get("data-state") == "not-served"
    colours = {c.get("fill") for c in got.values()}
    assert colours == {probe_svg.GREEN, probe_svg.RED, probe_svg.GREY}


def test_disagreements_are_outlined_and_listed() -> None:
    svg = probe_svg.svg(rows(), "t")
    got = cells(svg)
    outlined = {k for k, c in got.items() if c.get("stroke-width") == "3"}
    assert outlined == {("web/a", "tools/t", "80/TCP")}  # t → a:81 is red but expected: no outline
    assert "differs" in (got[("web/a", "tools/t", "80/TCP")].get("class") or "")
    texts = [t.text for t in ET.fromstring(svg.encode()).iter(f"{SVG}text")]
    assert [t.text for t in ET.fromstring(svg.encode()).iter(f"{SVG}text") if t.get("class") == "difference"] == [
        "DIFFERENCE web/a → tools/t:80/TCP: policy says allowed, the kernel did not connect"
    ]
    assert "1 difference(s) from the NetworkPolicy oracle" in texts
    assert "DIFFERENCE web/a → tools/t:80/TCP: policy says allowed, the kernel did not connect" in texts


def test_without_expect_there_is_nothing_to_outline() -> None:
    svg = probe_svg.svg(rows(expect=False))
    assert all(c.get("stroke-width") == "1" for c in cells(svg).values())
    assert "difference" not in svg


def test_tooltips_and_escaping() -> None:
    odd = [{"from": 'x/<a&"b>', "to": "y/c", "port": 80, "protocol": "TCP", "connected": True}]
    svg = probe_svg.svg(odd, "<title & more>")
    root = ET.fromstring(svg.encode())  # valid XML despite the names
    assert root.get("width") and root.get("height")
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "<title & more>" in texts and 'x/<a&"b>' in texts
    tip = next(root.iter(f"{SVG}title")).text
    assert tip == 'x/<a&"b> → y/c:80/TCP: connected'


def test_an_empty_matrix_is_still_a_picture() -> None:
    root = ET.fromstring(probe_svg.svg([]).encode())
    assert next(t.text for t in root.iter(f"{SVG}text")) == "0/0 connected"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]


def test_html_page_embeds_the_grid_and_a_legend() -> None:
    page = probe_svg.page(rows(), "kemu probe q")
    p = _Page()
    p.feed(page)
    assert p.tags[:2] == ["html", "head"] and "svg" in p.tags
    assert p.links == []  # self-contained: nothing fetched
    assert "<?xml" not in page
    for word in ("connected", "not connected", "not served", "kernel and NetworkPolicy disagree"):
        assert word in page
    assert "4/6 connected; 1 difference(s) from the NetworkPolicy oracle" in page
    svg = page[page.index("<svg") : page.index("</svg>") + 6]
    assert len(cells(svg)) == 8


# --- through `kemu probe` ----------------------------------------------------------------------


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def request(cluster: str, op: str, timeout: float = 300.0, **args: Any) -> Any:
        assert op == "probe"
        calls.append(args)
        return rows(expect=bool(args.get("expect")))

    monkeypatch.setattr(probe_cmd, "request", request)
    monkeypatch.setattr(probe_cmd, "pick_cluster", lambda name: "c")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return calls


def test_probe_svg_with_expect_exits_1_on_differences(daemon: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--cluster", "c", "probe", "--expect", "-o", "svg"])
    out = capsys.readouterr().out
    assert code == 1 and daemon[0]["expect"] is True
    assert out.startswith("<?xml") and "kemu probe c --to pods --expect" in out
    assert len(cells(out)) == 8


def test_probe_html(daemon: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cluster", "c", "probe", "-o", "html"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>") and "4/6 connected" in out and "difference" not in out
