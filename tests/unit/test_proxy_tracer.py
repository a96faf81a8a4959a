"""The proxy's decisions, as a table of flows traced through each node's plan.

Flows named after kube-proxy's own packet-flow tests (pkg/proxy/{nftables,iptables}/
proxier_test.go) say which upstream case they mirror.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from emu.proxy.plan import ProxyPlan
from emu.proxy.tracer import BACKENDS, Flow, firewall_sources, trace
from tests.unit.proxy_fixture import lb, plans, vip

pytestmark = pytest.mark.unit

P = plans()
N1, N2 = P["n1"], P["n2"]
WEB = {("10.244.0.2", 8080), ("10.244.1.2", 8080), ("10.244.1.3", 8080)}
SOLO = {("10.244.1.4", 8080)}
POD, EXTERNAL = "10.244.0.9", "172.30.0.100"
OTHER_EXTERNAL = "172.30.0.101"
NODE1 = "172.30.0.2"

# The same decision on both backends: (name, node plan, flow, action, endpoints, masquerade)
CASES = [
    ("pod to ClusterIP: every ready endpoint, no SNAT", N1, Flow(POD, vip(N1, "web"), 80), "dnat", WEB, False),
    ("UDP port of the same Service", N1, Flow(POD, vip(N1, "web"), 53, "udp"), "dnat", {(ip, 5353) for ip, _ in WEB}, False),
    ("hairpin: an endpoint reaching its own Service is masqueraded", N1, Flow("10.244.0.2", vip(N1, "web"), 80), "dnat", WEB, True),
    ("node to ClusterIP is masqueraded", N1, Flow(NODE1, vip(N1, "web"), 80, from_node=True), "dnat", WEB, True),
    ("external to NodePort (eTP Cluster): SNAT", N1, Flow(EXTERNAL, NODE1, 30080), "dnat", WEB, True),
    ("NodePort on the other node too", N2, Flow(EXTERNAL, "172.30.0.3", 30080), "dnat", WEB, True),
    ("NodePort only on the node's own IP", N1, Flow(EXTERNAL, "172.30.0.3", 30080), "pass", set(), None),
    ("eTP Local, node with the endpoint: source kept", N2, Flow(EXTERNAL, "172.30.0.3", 30081), "dnat", SOLO, False),
    ("eTP Local, node without: dropped", N1, Flow(EXTERNAL, NODE1, 30081), "drop", set(), None),
    ("eTP Local LB IP, node without: dropped", N1, Flow(EXTERNAL, lb(N1, "local"), 80), "drop", set(), None),
    ("eTP Local: pods are short-circuited to all endpoints", N1, Flow(POD, lb(N1, "local"), 80), "dnat", SOLO, False),
    ("eTP Local: the node's own traffic is masqueraded", N1, Flow(NODE1, NODE1, 30081, from_node=True), "dnat", SOLO, True),
    ("LB with source ranges: allowed source", N1, Flow(EXTERNAL, lb(N1, "fw"), 80), "dnat", WEB, True),
    ("LB with source ranges: other source dropped", N1, Flow(OTHER_EXTERNAL, lb(N1, "fw"), 80), "drop", set(), None),
    # TestLoadBalancer "pod to LB1 (blocked by LoadBalancerSourceRanges)"
    ("LB with source ranges: a pod is not in them", N1, Flow(POD, lb(N1, "fw"), 80), "drop", set(), None),
    # TestLoadBalancer: the node's own traffic is firewalled too (nftables: filter-output)
    ("LB with source ranges: the node is not in them", N1, Flow(NODE1, lb(N1, "fw"), 80, from_node=True), "drop", set(), None),
    # TestLoadBalancer "nodePort bypasses LoadBalancerSourceRanges"
    ("source ranges do not guard the NodePort", N1, Flow(OTHER_EXTERNAL, NODE1, 30082), "dnat", WEB, True),
    ("iTP Local, node without local endpoints: dropped", N1, Flow(POD, vip(N1, "itp"), 80), "drop", set(), None),
    ("iTP Local, node with one: only it", N2, Flow("10.244.1.9", vip(N2, "itp"), 80), "dnat", SOLO, False),
    # TestNoEndpointsReject
    ("no endpoints: ClusterIP rejected", N1, Flow(POD, vip(N1, "empty"), 80), "reject", set(), None),
    ("no endpoints: NodePort rejected", N1, Flow(EXTERNAL, NODE1, 30083), "reject", set(), None),
    ("only terminating-serving left: used as fallback", N1, Flow(POD, vip(N1, "old"), 80), "dnat", {("10.244.0.5", 8080)}, False),
    # TestExternalTrafficPolicyCluster "pod to external IP hits both endpoints, masqueraded"
    ("externalIP from a pod", N1, Flow(POD, "192.0.2.10", 8000), "dnat", WEB, True),
    ("session affinity does not change the candidate set", N1, Flow(POD, vip(N1, "sticky"), 80), "dnat", WEB, False),
    ("not a Service address: left alone", N1, Flow(POD, "10.96.0.200", 80), "pass", set(), None),
]

# Where kube-proxy's two backends differ: (name, backend, node plan, flow, action, endpoints, masquerade)
LOCALHOST = "127.0.0.1"
BACKEND_CASES = [
    # TestClusterIPGeneral "TCP-only port does not match UDP traffic": REJECT (nftables), no match (iptables)
    ("ClusterIP, other protocol: cluster-ips-check rejects", "nftables", N1, Flow(POD, vip(N1, "np"), 80, "udp"), "reject", set(), None),
    ("ClusterIP, other protocol: not matched", "iptables", N1, Flow(POD, vip(N1, "np"), 80, "udp"), "pass", set(), None),
    # TestClusterIPGeneral "svc1 does not accept svc2's ports"
    ("ClusterIP, unserved port: cluster-ips-check rejects", "nftables", N1, Flow(POD, vip(N1, "web"), 443), "reject", set(), None),
    ("ClusterIP, unserved port: not matched", "iptables", N1, Flow(POD, vip(N1, "web"), 443), "pass", set(), None),
    ("ClusterIP, unserved port, from the node", "nftables", N1, Flow(NODE1, vip(N1, "web"), 443, from_node=True), "reject", set(), None),
    ("wrong protocol to a two-protocol Service", "nftables", N1, Flow(POD, vip(N1, "web"), 53, "tcp"), "reject", set(), None),
    ("wrong protocol to a two-protocol Service", "iptables", N1, Flow(POD, vip(N1, "web"), 53, "tcp"), "pass", set(), None),
    # TestNodePorts (iptables) "localhost to nodePort gets masqueraded"; nftables never serves it
    ("localhost NodePort: served, masqueraded", "iptables", N1, Flow(LOCALHOST, LOCALHOST, 30080, from_node=True), "dnat", WEB, True),
    ("localhost NodePort: not a NodePort", "nftables", N1, Flow(LOCALHOST, LOCALHOST, 30080, from_node=True), "pass", set(), None),
    (
        "localhost NodePort, eTP Local: short-circuited",
        "iptables",
        N1,
        Flow(LOCALHOST, LOCALHOST, 30081, from_node=True),
        "dnat",
        SOLO,
        True,
    ),
    (
        "localhost NodePort, no endpoints: rejected",
        "iptables",
        N1,
        Flow(LOCALHOST, "127.0.0.1", 30083, from_node=True),
        "reject",
        set(),
        None,
    ),
    (
        "localhost NodePort, no endpoints: not a NodePort",
        "nftables",
        N1,
        Flow(LOCALHOST, LOCALHOST, 30083, from_node=True),
        "pass",
        set(),
        None,
    ),
]


def _verdict(plan: ProxyPlan, flow: Flow, backend: str) -> tuple[str, set[tuple[str, int]], bool | None]:
    v = trace(plan, flow, backend)
    return v.action, set(v.endpoints), v.masquerade


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, plan, flow, action, endpoints, masq", CASES, ids=[c[0] for c in CASES])
def test_flow(backend: str, name: str, plan: ProxyPlan, flow: Flow, action: str, endpoints: set, masq: bool | None) -> None:  # type: ignore[type-arg]
    assert _verdict(plan, flow, backend) == (action, endpoints, masq)


@pytest.mark.parametrize(
    "name, backend, plan, flow, action, endpoints, masq", BACKEND_CASES, ids=[f"{c[1]}: {c[0]}" for c in BACKEND_CASES]
)
def test_backend_specific_flow(
    name: str,
    backend: str,
    plan: ProxyPlan,
    flow: Flow,
    action: str,
    endpoints: set,  # type: ignore[type-arg]
    masq: bool | None,
) -> None:
    assert _verdict(plan, flow, backend) == (action, endpoints, masq)


def _with(plan: ProxyPlan, name: str, **changes: Any) -> ProxyPlan:
    out = [dataclasses.replace(sp, **changes) if sp.id.startswith(f"default/{name}/") else sp for sp in plan.services]
    return dataclasses.replace(plan, services=tuple(out))


def _with_fw(plan: ProxyPlan, **changes: Any) -> ProxyPlan:
    return _with(plan, "fw", **changes)


NO_ENDPOINTS = {"has_endpoints": False, "cluster_endpoints": (), "external_endpoints": ()}


def test_external_ip_without_endpoints() -> None:
    # TestNoEndpointsReject "external to external IP with no endpoints": REJECT on both
    # backends. The node's own connection: nftables rejects in output (service-endpoints-
    # check); iptables hooks its KUBE-EXTERNAL-SERVICES in input and forward only.
    plan = _with(N1, "ext", **NO_ENDPOINTS)
    for backend in BACKENDS:
        assert trace(plan, Flow(EXTERNAL, "192.0.2.10", 8000), backend).action == "reject"
        assert trace(plan, Flow(POD, "192.0.2.10", 8000), backend).action == "reject"
    node = Flow(NODE1, "192.0.2.10", 8000, from_node=True)
    assert (trace(plan, node, "nftables").action, trace(plan, node, "iptables").action) == ("reject", "pass")


@pytest.mark.parametrize("backend", BACKENDS)
def test_source_range_holding_the_node_ip_admits_the_lb_ip(backend: str) -> None:
    # TestLoadBalancer "node to LB1 (allowed by ...)" and "same node to LB1, SNATted to LB1
    # (implicitly allowed)": a node reaching an LB IP it holds sends from that IP.
    plan = _with_fw(N1, source_ranges=("172.30.0.2/32",))
    lb_ip = lb(N1, "fw")
    assert firewall_sources(plan, plan.by_id()["default/fw/tcp/80"]) == ("172.30.0.2/32", lb_ip)
    assert _verdict(plan, Flow(NODE1, lb_ip, 80, from_node=True), backend) == ("dnat", WEB, True)
    assert _verdict(plan, Flow(lb_ip, lb_ip, 80, from_node=True), backend) == ("dnat", WEB, True)
    assert _verdict(plan, Flow(EXTERNAL, lb_ip, 80), backend)[0] == "drop"
    # A range without the node's IP admits no LB IP.
    assert firewall_sources(N1, N1.by_id()["default/fw/tcp/80"]) == ("172.30.0.100/32",)
    assert _verdict(N1, Flow(lb_ip, lb_ip, 80, from_node=True), backend)[0] == "drop"


def test_source_ranges_without_endpoints() -> None:
    # nftables checks source ranges in prerouting, before the no-endpoints reject; iptables
    # has no firewall chain for a Service without endpoints (TestNoEndpointsReject).
    plan = _with_fw(N1, **NO_ENDPOINTS)
    lb_ip = lb(N1, "fw")
    assert trace(plan, Flow(OTHER_EXTERNAL, lb_ip, 80), "nftables").action == "drop"
    assert trace(plan, Flow(OTHER_EXTERNAL, lb_ip, 80), "iptables").action == "reject"
    for backend in BACKENDS:
        assert trace(plan, Flow(EXTERNAL, lb_ip, 80), backend).action == "reject"


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="ipvs"):
        trace(N1, Flow(POD, vip(N1, "web"), 80), "ipvs")


def test_headless_services_are_not_proxied() -> None:
    assert not [sp for sp in N1.services if sp.id.startswith("default/headless/")]


def test_affinity_timeout_in_plan() -> None:
    (sp,) = [sp for sp in N1.services if sp.id.startswith("default/sticky/")]
    assert sp.affinity_timeout == 60
