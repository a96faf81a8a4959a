"""The daemon's "reachability" op: the probe's pairs, each judged by the oracle, no traffic.

The cluster is a stand-in with what the op reads (its pods and lock); the oracle is
replaced by a recorder, so this checks which rows are asked about and how they come back.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from emu.daemon import server
from emu.model.objects import ContainerPort

pytestmark = pytest.mark.unit


def state(key: str, ports: list[ContainerPort], phase: str = "Running", **kw: Any) -> SimpleNamespace:
    ns = key.split("/")[0]
    spec = SimpleNamespace(served_ports=lambda: ports)
    pod = SimpleNamespace(key=key, meta=SimpleNamespace(namespace=ns), spec=spec)
    base = {"phase": phase, "netns": f"kemu-c.{key}", "ip": "10.244.0.9", "terminating": False, "host_network": False}
    return SimpleNamespace(pod=pod, **{**base, **kw})


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[dict[str, Any]]]:
    web = [ContainerPort(8080), ContainerPort(8081, "UDP")]
    pods = [
        state("web/b", web),
        state("web/a", web),
        state("tools/t", [ContainerPort(80)]),
        state("kube-system/dns", [ContainerPort(53, "UDP")]),  # the cluster's own: left out, as probe does
        state("web/pending", web, phase="Pending", ip="", netns=""),
        state("web/going", web, terminating=True),
        state("web/hostnet", web, host_network=True),
    ]
    asked: list[dict[str, Any]] = []

    def expected(c: Any, row: dict[str, Any]) -> bool:
        asked.append(row)
        return not (row["from"] == "tools/t" and row["protocol"] == "UDP")

    monkeypatch.setattr(server, "expected", expected)
    c = SimpleNamespace(lock=threading.RLock(), pods={p.pod.key: p for p in pods})
    return c, asked


def test_every_client_to_every_served_port(cluster: tuple[Any, list[dict[str, Any]]]) -> None:
    c, asked = cluster
    rows = server._reachability(c, {})
    pairs = [(r["from"], r["to"], r["port"], r["protocol"], r["allowed"]) for r in rows]
    dests = [("tools/t", 80, "TCP"), ("web/a", 8080, "TCP"), ("web/a", 8081, "UDP"), ("web/b", 8080, "TCP"), ("web/b", 8081, "UDP")]
    want = [(s, d, p, pr, not (s == "tools/t" and pr == "UDP")) for s in ("tools/t", "web/a", "web/b") for d, p, pr in dests]
    assert pairs == want  # sorted by client, then destination; self pairs included, as in probe
    assert [(a["from"], a["to"], a["port"], a["protocol"]) for a in asked] == [w[:4] for w in want]
    assert server.handle_request(c, {"op": "reachability", "args": {}}, lambda: None) == rows  # the op's dispatch


def test_ports_and_protocols_narrow_it(cluster: tuple[Any, list[dict[str, Any]]]) -> None:
    c, _ = cluster
    rows = server._reachability(c, {"protocols": ["udp"]})
    assert {(r["to"], r["port"]) for r in rows} == {("web/a", 8081), ("web/b", 8081)}
    rows = server._reachability(c, {"ports": [80]})
    assert {(r["from"], r["to"], r["port"]) for r in rows} == {(s, "tools/t", 80) for s in ("tools/t", "web/a", "web/b")}
