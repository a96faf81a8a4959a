"""`kemu trace` end to end on both proxy backends: one real packet per flow through the
kernel, read in Kubernetes words, and in agreement with the proxy tracer and the
NetworkPolicy oracle (the trace result carries their verdicts: "model")."""

from __future__ import annotations

import json
import pathlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.helpers import Running, kemu, netns_list, pod_networks, start, stop, topology_variant, variant_name

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Cluster:
    run: Running
    backend: str
    ips: dict[str, str]  # "web" → its ClusterIP, "web-lb" → its LB IP, "node-1" → its IP

    def trace(self, src: str, dst: str, *extra: str) -> dict[str, Any]:
        dst = dst.format(**self.ips)
        r: dict[str, Any] = json.loads(kemu("--cluster", self.run.name, "trace", src, dst, "-o", "json", *extra).stdout)
        return r


@pytest.fixture(scope="module", params=pod_networks())
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cni, backend = request.param
    name = variant_name("trace", cni, backend)
    tmp: pathlib.Path = tmp_path_factory.mktemp(name)
    r = start(topology_variant("trace.yaml", tmp, name, proxy=backend, cni=cni), name)
    try:
        svcs = json.loads(kemu("--cluster", name, "get", "svc", "-o", "json").stdout)["items"]
        ips = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in svcs}
        ips["web_lb"] = next(s for s in svcs if s["metadata"]["name"] == "web-lb")["status"]["loadBalancer"]["ingress"][0]["ip"]
        nodes = json.loads(kemu("--cluster", name, "get", "nodes", "-o", "json").stdout)["items"]
        for n in nodes:
            ips[n["metadata"]["name"].replace("-", "_")] = next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
        yield Cluster(r, backend, ips)
    finally:
        stop(r)


# (src, dst, verdict, who decided, Service) for every kind of flow the suites cover:
# pod to pod, ClusterIP (TCP, UDP), no endpoints, a ClusterIP's unserved port, NodePort,
# LoadBalancer inside and outside its source ranges, eTP Local without a local endpoint,
# hairpin, the node's own connection, ICMP, and policies isolating either side.
FLOWS: list[tuple[str, str, str, str, str | None]] = [
    ("default/free", "web.default:80", "delivered", "", "default/web"),
    ("default/free", "web.default:53/udp", "delivered", "", "default/web"),
    ("default/client", "default/solo:8080", "delivered", "", None),
    ("default/client", "default/solo:8081/udp", "dropped", "policy", None),
    ("default/client", "web.default:80", "dropped", "policy", "default/web"),
    ("default/free", "empty.default:80", "rejected", "proxy", "default/empty"),
    ("default/free", "empty.default:53/udp", "rejected", "proxy", "default/empty"),
    ("host/client", "{web_lb}:80", "delivered", "", "default/web-lb"),
    ("host/other", "{web_lb}:80", "dropped", "proxy", "default/web-lb"),
    ("host/client", "{node_1}:30080", "delivered", "", "default/web-np"),
    ("host/client", "{node_1}:30081", "dropped", "proxy", "default/solo-local"),
    ("host/client", "{node_2}:30081", "dropped", "policy", "default/solo-local"),
    ("default/solo", "self.default", "delivered", "", "default/self"),
    ("node/node-1", "web.default:80", "delivered", "", "default/web"),
    ("default/free", "default/solo/icmp", "dropped", "policy", None),
    ("default/free", "node/node-2", "delivered", "", None),
]


@pytest.mark.parametrize(("src", "dst", "verdict", "by", "service"), FLOWS, ids=[f"{s}->{d}" for s, d, *_ in FLOWS])
def test_trace_agrees_with_the_models(cluster: Cluster, src: str, dst: str, verdict: str, by: str, service: str | None) -> None:
    r = cluster.trace(src, dst)
    assert (r["verdict"], r["decided_by"], r["service"]) == (verdict, by, service), r["reason"]
    assert r["model"]["agrees"], r["model"]["disagreements"]
    assert set(r) >= {"verdict", "service", "endpoint", "hops", "policies"}
    assert all(set(h) == {"namespace", "hook", "table", "chain", "rule", "meaning"} for h in r["hops"])
    assert r["hops"][0]["namespace"] == src and r["hops"][0]["hook"] == "output"


def test_a_service_connection_in_words(cluster: Cluster) -> None:
    r = cluster.trace("default/free", "web.default:80")
    dnat = [h for h in r["hops"] if "DNAT" in h["meaning"]]
    assert len(dnat) == 1 and dnat[0]["namespace"] == "node/node-1" and dnat[0]["hook"] == "prerouting"
    assert (
        f"Service default/web port http (ClusterIP {cluster.ips['web']}:80) → DNAT to {r['translated_to']} ({r['endpoint']})"
        in dnat[0]["meaning"]
    )
    ip, port = r["translated_to"].split(":")
    # The node that translated it tracks the connection with the endpoint as the replier.
    assert any(e["namespace"] == "node/node-1" and f"src={ip} " in e["entry"] and f"sport={port} " in e["entry"] for e in r["conntrack"])
    last = r["hops"][-1]
    assert r["endpoint"].startswith("default/web-") and (last["namespace"], last["hook"]) == (r["endpoint"], "input")
    if r["translated_to"].startswith("10.244.1."):  # the endpoint on node-2: routed across
        assert [h["namespace"] for h in r["hops"] if h["meaning"].startswith("arrives")][:2] == ["node/node-1", "node/node-2"]


def test_a_denied_connection_names_the_policies(cluster: Cluster) -> None:
    r = cluster.trace("default/client", "default/solo:8081/udp")
    assert r["reason"].startswith("dropped on node/node-2: default/solo is isolated for ingress by ")
    assert {"default/deny-solo", "default/allow-client"} <= {p["name"] for p in r["policies"] if p["effect"] == "isolates"}
    allowed = cluster.trace("default/client", "default/solo:8080")
    assert {"name": "default/allow-client", "direction": "ingress", "rule": 1, "effect": "allows"} in allowed["policies"]
    assert {"name": "default/client-egress", "direction": "egress", "rule": 1, "effect": "allows"} in allowed["policies"]


def test_masquerade_and_hairpin_are_shown(cluster: Cluster) -> None:
    np = cluster.trace("host/client", "{node_1}:30080")
    assert any(
        h["meaning"].startswith("masqueraded 172.30.0.4 → ") and "externalTrafficPolicy: Cluster" in h["meaning"] for h in np["hops"]
    )
    hairpin = cluster.trace("default/solo", "self.default")
    assert any("hairpin" in h["meaning"] for h in hairpin["hops"])
    assert [h["namespace"] for h in hairpin["hops"] if h["meaning"]][-1] == "default/solo"


def test_the_backends_differ_where_kube_proxy_does(cluster: Cluster) -> None:
    # A ClusterIP on a port no Service port serves: nftables rejects it (cluster-ips-check),
    # iptables leaves it to routing, which sends it on to nowhere.
    r = cluster.trace("default/free", "{web}:81")
    assert r["model"]["agrees"], r["model"]["disagreements"]
    if cluster.backend == "nftables":
        assert (r["verdict"], r["decided_by"]) == ("rejected", "proxy") and "serves no tcp port 81" in r["reason"]
    else:
        assert r["verdict"] == "dropped" and r["decided_by"] != "proxy"


def test_text_output_and_nothing_left_behind(cluster: Cluster) -> None:
    out = kemu("--cluster", cluster.run.name, "trace", "default/free", "empty.default:80").stdout.splitlines()
    assert out[0] == f"default/free → {cluster.ips['empty']}:80/tcp"
    assert "rejected: rejected on node/node-1: Service default/empty has no endpoints" in out
    assert out[-1].startswith("models (proxy tracer: reject") and out[-1].endswith("the kernel agrees")
    for ns in (n for n in netns_list() if n.startswith(f"kemu-{cluster.run.name}.")):
        tables = kemu_nft_tables(ns)
        assert "kemu-trace" not in tables, f"{ns} still has the trace table"


def test_bad_input_is_refused(cluster: Cluster) -> None:
    for dst, words in (("default/nope", "pod default/nope not found"), ("web.default:99", "has no port 99"), ("web.default:x", "PORT")):
        cp = kemu("--cluster", cluster.run.name, "trace", "default/free", dst, check=False)
        assert cp.returncode in (1, 2) and words in cp.stderr, cp.stderr


def kemu_nft_tables(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"], capture_output=True, text=True).stdout
