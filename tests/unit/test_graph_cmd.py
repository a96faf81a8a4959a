"""`kemu graph` against a fake daemon: what it asks for, what it writes, how it fails."""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from emu.cli import graph_cmd
from emu.cli.main import main
from emu.errors import KemuError
from tests.unit.test_graph_dot import fixture, verdicts

pytestmark = pytest.mark.unit

KINDS = {
    "Node": "nodes",
    "Pod": "pods",
    "Service": "services",
    "EndpointSlice": "slices",
    "Host": "hosts",
    "Gateway": "gateways",
    "HTTPRoute": "routes",
}


class Daemon:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.no_gateway_api = False

    def __call__(self, cluster: str, op: str, timeout: float = 300.0, **args: Any) -> Any:
        assert cluster == "c"
        self.calls.append((op, args))
        if op == "reachability":
            return verdicts()
        assert op == "get" and args["all_namespaces"] is True
        if args["kind"] in ("Gateway", "HTTPRoute", "GRPCRoute") and self.no_gateway_api:
            raise KemuError('the server doesn\'t have a resource type "gateways"')
        return list(getattr(fixture(), KINDS[args["kind"]])) if args["kind"] in KINDS else []


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Daemon:
    d = Daemon()
    monkeypatch.setattr(graph_cmd, "request", d)
    monkeypatch.setattr(graph_cmd, "pick_cluster", lambda name: "c")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return d


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_dot_source_on_stdout(daemon: Daemon, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["graph", "-o", "dot"]) == 0
    out = capsysbinary.readouterr().out.decode()
    assert out.startswith("digraph kemu {") and '"svc:web/echo"' in out and "cluster c" in out
    kinds = [a["kind"] for op, a in daemon.calls if op == "get"]
    assert kinds == ["Node", "Pod", "Service", "EndpointSlice", "Host", "Gateway", "HTTPRoute", "GRPCRoute"]


def test_dot_needs_no_graphviz(daemon: Daemon, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["graph", "-o", "dot"]) == 0
    assert capsysbinary.readouterr().out.startswith(b"digraph kemu {")


def test_missing_dot_is_one_line_and_exit_1(daemon: Daemon, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    code, out, err = run(capsys, "graph")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "apt-get install graphviz" in err
    assert daemon.calls == []  # failed before asking the daemon


def test_png_needs_a_file(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "graph", "-o", "png")
    assert (code, out) == (2, "")
    assert err == "error: -o png needs -w FILE (a PNG is not for the terminal)\n"
    assert daemon.calls == []


def test_unknown_format_is_a_usage_error(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["graph", "-o", "jpeg"])
    assert e.value.code == 2
    assert "invalid choice: 'jpeg'" in capsys.readouterr().err


def test_without_the_gateway_api_kinds(daemon: Daemon, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    daemon.no_gateway_api = True
    assert main(["graph", "-o", "dot"]) == 0
    out = capsysbinary.readouterr().out.decode()
    assert '"svc:web/echo"' in out and '"gw:' not in out


def test_policies_ask_for_the_oracles_verdicts(daemon: Daemon, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["graph", "--policies", "-o", "dot"]) == 0
    out = capsysbinary.readouterr().out.decode()
    assert out.startswith("digraph kemu_policies {") and '"pod:tools/t" -> "pod:web/b"' in out
    assert ("reachability", {}) in daemon.calls


def test_unwritable_file(daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "graph", "-o", "dot", "-w", str(tmp_path / "no" / "such" / "dir.dot"))
    assert code == 1 and err.startswith("error: cannot write ") and "No such file or directory" in err


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
def test_svg_and_png_files(daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    svg, png = tmp_path / "g.svg", tmp_path / "g.png"
    assert run(capsys, "graph", "-w", str(svg)) == (0, "", "")
    root = ET.parse(svg).getroot()
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"node-1", "echo-a", "10.244.1.2", "svc web/echo"} <= texts
    assert run(capsys, "graph", "-o", "png", "-w", str(png)) == (0, "", "")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
