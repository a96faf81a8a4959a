"""Pieces of the CLI that need no cluster: name substitution, tables, label parsing."""

from __future__ import annotations

import pathlib
import re

import pytest

from emu.cli.change_cmd import parse_labels
from emu.cli.output import render
from emu.cli.shell import Target, substitute
from emu.errors import ValidationError
from emu.traffic.probe import Result, table

pytestmark = pytest.mark.unit

T = {
    "y/b": Target("y/b", "kemu-t.y.b", "10.244.1.2", "b"),
    "node-1": Target("node-1", "kemu-t.node-1", "172.30.0.2", "node-1"),
}


@pytest.mark.parametrize(
    "line, want",
    [
        ("curl y/b:80/hostname", "curl 10.244.1.2:80/hostname"),
        ("curl -s http://y/b:80/clientip", "curl -s http://10.244.1.2:80/clientip"),
        ("ping -c1 node-1", "ping -c1 172.30.0.2"),
        ("echo y/bb node-10", "echo y/bb node-10"),
        ("cat /etc/y/b", "cat /etc/y/b"),
    ],
)
def test_substitute(line: str, want: str) -> None:
    assert substitute(line, T) == want


def test_parse_labels() -> None:
    assert parse_labels(["a=1", "b-", "c="]) == ({"a": "1", "c": ""}, ["b"])
    with pytest.raises(ValidationError) as e:
        parse_labels(["bad key=1", "noequals"])
    assert len(e.value.problems) == 2


def test_probe_table_marks() -> None:
    rs = [
        Result("x/a", "x/b", 80, "TCP", True),
        Result("x/a", "x/b", 80, "UDP", False),
        Result("x/b", "x/b", 80, "TCP", True),
    ]
    out = table(rs).splitlines()
    assert out[0].startswith("marks per cell: 80/TCP 80/UDP")
    assert out[2].split() == ["x/a", ".X"] and out[3].split() == ["x/b", ".-"]
    assert out[-1] == "2/3 connected"


def test_render_list_shape() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "a", "namespace": "x"},
        "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
        "status": {"phase": "Running", "podIP": "10.244.0.2", "containerStatuses": [{"name": "c", "ready": True}]},
    }
    import json

    doc = json.loads(render("Pod", [pod], "json", False, False))
    assert doc["kind"] == "List" and doc["items"][0]["status"]["podIP"] == "10.244.0.2"
    wide = render("Pod", [pod], "wide", True, False).splitlines()
    assert re.split(r"\s{2,}", wide[0]) == [
        *["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    ]
    assert wide[1].split()[:4] == ["x", "a", "1/1", "Running"]


def test_label_arguments_mix_with_options() -> None:
    from emu.cli.main import parse

    args = parse(["label", "pod", "a", "x=1", "--overwrite", "y-", "-n", "web"])
    assert args.labels == ["x=1", "y-"] and args.overwrite and args.namespace == "web"
    with pytest.raises(SystemExit):
        parse(["get", "pods", "--bogus"])


def test_an_unexpected_error_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One line that names the log holding the traceback; never a traceback on the terminal."""
    import argparse

    from emu.cli.main import _run
    from emu.dataplane import ownership

    monkeypatch.setattr(ownership, "ROOT", str(tmp_path))

    def handler(args: argparse.Namespace) -> int:
        raise KeyError("node-9")

    assert _run(handler, argparse.Namespace(cmd="get")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unexpected KeyError: 'node-9'") and "Traceback" not in err
    log_path = err.rsplit("(traceback in ", 1)[1].rstrip(")\n")
    assert log_path == str(tmp_path / "errors.log")
    text = pathlib.Path(log_path).read_text()
    assert "kemu get" in text and "Traceback" in text and "KeyError: 'node-9'" in text
