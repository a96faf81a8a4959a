"""`kemu graph`'s DOT, from objects in Kubernetes' JSON shape (no cluster, no root)."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from emu.cli import graph_dot
from emu.cli.graph_dot import Objects
from emu.daemon.protocol import ReachabilityRow

pytestmark = pytest.mark.unit

Obj = dict[str, Any]
ODD = 'we<ird>&"x\\'  # a name needing every kind of escaping (DOT, XML, HTML)


def node(name: str, ip: str, cidr: str) -> Obj:
    return {
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def pod(ns: str, name: str, node: str | None, ip: str | None, ready: bool = True) -> Obj:
    st: Obj = {"phase": "Running" if ip else "Pending", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        st["podIP"] = ip
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": {"nodeName": node} if node else {}, "status": st}


def service(ns: str, name: str, typ: str, ip: str, lb: str | None = None, by: str | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": ns}
    if by:
        meta["annotations"] = {"kemu.io/announced-by": by}
    ports = [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http", **({"nodePort": 30080} if typ != "ClusterIP" else {})}]
    return {
        "kind": "Service",
        "metadata": meta,
        "spec": {"type": typ, "clusterIP": ip, "ports": ports},
        "status": {"loadBalancer": {"ingress": [{"ip": lb}]} if lb else {}},
    }


def endpoint(ns: str, name: str, ip: str, ready: bool, ref: bool = True) -> Obj:
    e: Obj = {"addresses": [ip], "conditions": {"ready": ready}}
    if ref:
        e["targetRef"] = {"kind": "Pod", "namespace": ns, "name": name}
    return e


def a_slice(ns: str, svc: str, *endpoints: Obj) -> Obj:
    labels = {"kubernetes.io/service-name": svc}
    return {"kind": "EndpointSlice", "metadata": {"name": f"{svc}-abc", "namespace": ns, "labels": labels}, "endpoints": list(endpoints)}


def fixture() -> Objects:
    return Objects(
        nodes=[node("node-1", "172.30.0.2", "10.244.1.0/24"), node("node-2", "172.30.0.3", "10.244.2.0/24")],
        pods=[
            pod("web", "echo-a", "node-1", "10.244.1.2"),
            pod("web", "echo-b", "node-2", "10.244.2.2"),
            pod("web", "echo-c", "node-2", "10.244.2.3", ready=False),
            pod("tools", "toolbox", "node-2", "10.244.2.4"),
            pod("web", "pending", None, None, ready=False),
        ],
        services=[
            service("web", "echo", "NodePort", "10.96.0.10"),
            service("web", "front", "LoadBalancer", "10.96.0.11", lb="172.30.1.1", by="node-2"),
        ],
        slices=[
            a_slice("web", "echo", endpoint("web", "echo-a", "10.244.1.2", True), endpoint("web", "echo-c", "10.244.2.3", False)),
            # No targetRef (a hand-made slice): the address finds the pod.
            a_slice("web", "front", endpoint("web", "echo-b", "10.244.2.2", True, ref=False)),
        ],
        hosts=[
            {
                "kind": "ExternalHost",
                "metadata": {"name": "client"},
                "status": {"addresses": [{"type": "ExternalIP", "address": "172.30.0.4"}]},
            }
        ],
        gateways=[
            {
                "kind": "Gateway",
                "metadata": {"name": "gw", "namespace": "web"},
                "spec": {"gatewayClassName": "kemu", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
                "status": {"addresses": [{"type": "IPAddress", "value": "172.30.1.9"}]},
            }
        ],
        routes=[
            {
                "kind": "HTTPRoute",
                "metadata": {"name": "r", "namespace": "web"},
                "spec": {
                    "hostnames": ["echo.example"],
                    "parentRefs": [{"name": "gw"}],
                    "rules": [{"backendRefs": [{"name": "echo", "port": 80}, {"name": "gone", "port": 80}]}],
                },
            }
        ],
    )


def pod_of_port(dot: str) -> dict[str, str]:
    """Table port → the pod name in that row."""
    return {m[0]: m[1] for m in re.findall(r'PORT="(p\d+)"[^>]*>(?:<I>)?([^<( ]+)', dot)}


def service_edges(dot: str) -> set[tuple[str, str]]:
    """(service, pod) for every Service → pod edge."""
    ports = pod_of_port(dot)
    return {(m[0], ports[m[1]]) for m in re.findall(r'"svc:([^"]+)" -> "pods:[^"]+":(p\d+):w', dot)}


def test_every_kind_is_drawn() -> None:
    dot = graph_dot.topology(fixture(), "quickstart")
    assert dot.startswith("digraph kemu {") and dot.endswith("}\n")
    for text in (
        "cluster quickstart",
        '"node:node-1"',
        "172.30.0.2",
        "pods 10.244.1.0/24",
        '"cluster_node:node-2"',
        '"host:client"',
        "external host",
        '"pods:node-2/tools"',
        "toolbox",
        "10.244.2.4",
        "svc web/echo",
        "NodePort 10.96.0.10",
        "80/TCP → http, node port 30080",
        "LB 172.30.1.1",
        "gateway web/gw",
        "172.30.1.9",
        "httproute web/r",
        "echo.example",
        "not scheduled",
    ):
        assert text in dot, text
    assert '"host:client" -> switch' in dot
    assert 'switch -> "node:node-1"' in dot and 'switch -> "node:node-2"' in dot


def test_pods_are_grouped_by_node_then_namespace() -> None:
    dot = graph_dot.topology(fixture())
    tables = dict(re.findall(r'("pods:[^"]+") \[shape="plain", style="", label=(<.*>)\]', dot))
    assert sorted(tables) == ['"pods:/web"', '"pods:node-1/web"', '"pods:node-2/tools"', '"pods:node-2/web"']
    assert "echo-a" in tables['"pods:node-1/web"'] and "echo-b" in tables['"pods:node-2/web"']
    assert "<I>echo-c (Running, not ready)</I>" in tables['"pods:node-2/web"']
    assert "pending (Pending, not ready)" in tables['"pods:/web"'] and "no IP" in tables['"pods:/web"']


def test_services_point_at_their_ready_endpoints_only() -> None:
    dot = graph_dot.topology(fixture())
    assert service_edges(dot) == {("web/echo", "echo-a"), ("web/front", "echo-b")}  # not echo-c: not ready


def test_load_balancer_ip_points_at_the_announcing_node() -> None:
    dot = graph_dot.topology(fixture())
    assert re.search(r'"svc:web/front" -> "node:node-2" \[style="dashed", [^\]]*label="announced by", constraint="false"\]', dot)
    assert '"svc:web/echo" -> "node:' not in dot


def test_gateway_routes_and_backends() -> None:
    dot = graph_dot.topology(fixture())
    assert '"gw:web/gw" -> "route:HTTPRoute/web/r"' in dot
    assert '"route:HTTPRoute/web/r" -> "svc:web/echo"' in dot
    assert re.search(r'"svc:web/gone" \[label=<<B>svc web/gone</B><BR/><I>not found</I>>, style="dashed"', dot)


def test_output_is_sorted_and_stable() -> None:
    objs = fixture()
    want = graph_dot.topology(objs)
    rnd = random.Random(7)
    for _ in range(5):
        shuffled = Objects(**{f: rnd.sample(list(getattr(objs, f)), len(getattr(objs, f))) for f in objs.__dataclass_fields__})
        assert graph_dot.topology(shuffled) == want
    assert want.index('"cluster_node:node-1"') < want.index('"cluster_node:node-2"') < want.index('"cluster_node:"')


def test_odd_names_are_escaped() -> None:
    objs = fixture()
    host = {"kind": "ExternalHost", "metadata": {"name": ODD}, "status": {"addresses": [{"type": "ExternalIP", "address": "172.30.0.9"}]}}
    dot = graph_dot.topology(Objects(**{**objs.__dict__, "hosts": [host], "pods": [*objs.pods, pod(ODD, ODD, "node-1", "10.244.1.9")]}))
    assert '"host:we%3cird%3e%26%22x%5c"' in dot  # the ID: ASCII, no quote to break out of
    assert "<B>we&lt;ird&gt;&amp;&quot;x\\</B>" in dot  # the label: XML-escaped, the backslash as is
    assert ODD not in dot


def test_large_graphs_get_straight_edges() -> None:
    small = graph_dot.topology(fixture())
    assert "splines" not in small
    many = [pod("ns", f"p{i}", "node-1", f"10.244.{i // 200}.{i % 200}") for i in range(graph_dot.LARGE + 1)]
    assert 'splines="line"' in graph_dot.topology(Objects(nodes=fixture().nodes, pods=many))


def verdicts() -> list[ReachabilityRow]:
    rows: list[ReachabilityRow] = []
    for src in ("web/a", "web/b", "tools/t"):
        for dst, port, proto in (("web/a", 80, "TCP"), ("web/a", 81, "UDP"), ("web/b", 80, "TCP")):
            allowed = not (src == "tools/t" and dst == "web/b") and not (src == "tools/t" and port == 81)
            rows.append({"from": src, "to": dst, "port": port, "protocol": proto, "allowed": allowed})
    return rows


def test_policy_view_edges() -> None:
    pods = [pod("web", "a", "node-1", "10.244.1.2"), pod("web", "b", "node-1", "10.244.1.3"), pod("tools", "t", "node-2", "10.244.2.2")]
    dot = graph_dot.policies(pods, verdicts(), "q")
    edges = dict(re.findall(r'("pod:[^"]+" -> "pod:[^"]+") (\[.*\])', dot))
    assert edges == {
        '"pod:web/a" -> "pod:web/b"': '[color="#2e7d32"]',
        '"pod:web/b" -> "pod:web/a"': '[color="#2e7d32"]',
        '"pod:tools/t" -> "pod:web/a"': '[color="#ef6c00", fontcolor="#ef6c00", label="80/TCP"]',
        '"pod:tools/t" -> "pod:web/b"': '[color="#c62828", style="dashed", arrowhead="tee"]',
    }  # no self edges (web/a → web/a)
    assert '"cluster_ns:tools"' in dot and "10.244.2.2" in dot
    hidden = graph_dot.policies(pods, verdicts(), "q", show_denied=False)
    assert '"pod:tools/t" -> "pod:web/b"' not in hidden and '"pod:tools/t" -> "pod:web/a"' in hidden


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
def test_graphviz_lays_it_out() -> None:
    objs = fixture()
    odd_host = {"kind": "ExternalHost", "metadata": {"name": ODD}, "status": {"addresses": []}}
    dot = graph_dot.topology(Objects(**{**objs.__dict__, "hosts": [*objs.hosts, odd_host]}), ODD)
    svg = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=True).stdout
    texts = {t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")}
    assert {"node-1", "node-2", "echo-a", "10.244.1.2", "toolbox", "svc web/echo", ODD} <= texts
    pods = [pod("web", "a", "node-1", "10.244.1.2")]
    policy = subprocess.run(["dot", "-Tsvg"], input=graph_dot.policies(pods, verdicts()).encode(), capture_output=True, check=True)
    assert b"legend" in policy.stdout
