"""Reading `-f` inputs: several files, directories (name order, -R descends), stdin."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from emu.cli.argv import UsageError
from emu.cli.manifests import read_inputs

pytestmark = pytest.mark.unit


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "b.yaml").write_text("kind: B\n")
    (tmp_path / "a.yml").write_text("kind: A\n")
    (tmp_path / "c.json").write_text('{"kind": "C"}')
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.yaml").write_text("kind: D\n")
    (tmp_path / "sub" / "deeper").mkdir()
    (tmp_path / "sub" / "deeper" / "e.yaml").write_text("kind: E\n")
    return tmp_path


def test_directory_in_name_order_without_subdirectories(tree: Path) -> None:
    docs = read_inputs([str(tree)])
    assert [Path(label).name for label, _ in docs] == ["a.yml", "b.yaml", "c.json"]
    assert docs[0] == [str(tree / "a.yml"), "kind: A\n"]


def test_recursive_descends(tree: Path) -> None:
    docs = read_inputs([str(tree)], recursive=True)
    assert [Path(label).relative_to(tree).as_posix() for label, _ in docs] == [
        "a.yml",
        "b.yaml",
        "c.json",
        "sub/d.yaml",
        "sub/deeper/e.yaml",
    ]


def test_several_inputs_keep_their_order_and_labels(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    docs = read_inputs(["sub/d.yaml", "-", "b.yaml"], stdin=io.StringIO("kind: FromStdin\n"))
    assert docs == [["sub/d.yaml", "kind: D\n"], ["<stdin>", "kind: FromStdin\n"], ["b.yaml", "kind: B\n"]]


def test_errors(tree: Path) -> None:
    with pytest.raises(UsageError, match=r'the path "nope\.yaml" does not exist'):
        read_inputs(["nope.yaml"])
    with pytest.raises(UsageError, match="only once"):
        read_inputs(["-", "-"], stdin=io.StringIO(""))
    with pytest.raises(UsageError, match="no objects passed to delete"):
        read_inputs([str(_empty(tree))], verb="delete")
    with pytest.raises(UsageError):
        read_inputs([])


def _empty(tree: Path) -> Path:
    d = tree / "empty"
    d.mkdir()
    return d
