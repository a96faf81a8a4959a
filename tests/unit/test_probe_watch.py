"""`kemu probe --watch`'s command line and the files it rewrites (the e2e test in
tests/e2e/test_graph.py watches a real cluster change)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from emu.cli import probe_svg
from emu.cli.probe_watch import check, write_atomically
from emu.errors import ValidationError

pytestmark = pytest.mark.unit


def args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**({"file": None, "output": "table", "write": None} | kw))


@pytest.mark.parametrize(
    ("kw", "words"),
    [({"file": "topo.yaml"}, "no FILE"), ({"output": "html"}, "give -w FILE"), ({"output": "svg"}, "give -w FILE")],
)
def test_what_watch_refuses(kw: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as e:
        check(args(**kw))
    assert words in str(e.value.problems[0])


def test_what_watch_takes() -> None:
    check(args())
    check(args(output="json"))
    check(args(output="html", write="/tmp/x.html"))


def test_the_page_reloads_itself_only_when_asked() -> None:
    rows = [{"from": "a/x", "to": "b/y", "port": 80, "protocol": "TCP", "connected": True}]
    assert 'http-equiv="refresh" content="2"' in probe_svg.page(rows, "t", reload_s=2)
    assert "refresh" not in probe_svg.page(rows, "t")


def test_a_picture_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "p.html"
    target.write_text("old")
    write_atomically(str(target), "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["p.html"]
