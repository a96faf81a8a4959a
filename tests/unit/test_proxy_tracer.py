"""The proxy's decisions, as a table of flows traced through each node's plan."""

from __future__ import annotations

import pytest

from emu.proxy.tracer import Flow, trace
from tests.unit.proxy_fixture import lb, plans, vip

pytestmark = pytest.mark.unit

P = plans()
N1, N2 = P["n1"], P["n2"]
WEB = {("10.244.0.2", 8080), ("10.244.1.2", 8080), ("10.244.1.3", 8080)}
SOLO = {("10.244.1.4", 8080)}
POD, EXTERNAL = "10.244.0.9", "172.30.0.100"
OTHER_EXTERNAL = "172.30.0.101"

# (name, node plan, flow, action, endpoints, masquerade)
CASES = [
    ("pod to ClusterIP: every ready endpoint, no SNAT", N1, Flow(POD, vip(N1, "web"), 80), "dnat", WEB, False),
    ("UDP port of the same Service", N1, Flow(POD, vip(N1, "web"), 53, "udp"), "dnat", {(ip, 5353) for ip, _ in WEB}, False),
    ("wrong protocol is not the Service", N1, Flow(POD, vip(N1, "web"), 53, "tcp"), "pass", set(), None),
    ("hairpin: an endpoint reaching its own Service is masqueraded", N1, Flow("10.244.0.2", vip(N1, "web"), 80), "dnat", WEB, True),
    ("node to ClusterIP is masqueraded", N1, Flow("172.30.0.2", vip(N1, "web"), 80, from_node=True), "dnat", WEB, True),
    ("external to NodePort (eTP Cluster): SNAT", N1, Flow(EXTERNAL, "172.30.0.2", 30080), "dnat", WEB, True),
    ("NodePort on the other node too", N2, Flow(EXTERNAL, "172.30.0.3", 30080), "dnat", WEB, True),
    ("NodePort only on the node's own IP", N1, Flow(EXTERNAL, "172.30.0.3", 30080), "pass", set(), None),
    ("eTP Local, node with the endpoint: source kept", N2, Flow(EXTERNAL, "172.30.0.3", 30081), "dnat", SOLO, False),
    ("eTP Local, node without: dropped", N1, Flow(EXTERNAL, "172.30.0.2", 30081), "drop", set(), None),
    ("eTP Local LB IP, node without: dropped", N1, Flow(EXTERNAL, lb(N1, "local"), 80), "drop", set(), None),
    ("eTP Local: pods are short-circuited to all endpoints", N1, Flow(POD, lb(N1, "local"), 80), "dnat", SOLO, False),
    ("eTP Local: the node's own traffic is masqueraded", N1, Flow("172.30.0.2", "172.30.0.2", 30081, from_node=True), "dnat", SOLO, True),
    ("LB with source ranges: allowed source", N1, Flow(EXTERNAL, lb(N1, "fw"), 80), "dnat", WEB, True),
    ("LB with source ranges: other source dropped", N1, Flow(OTHER_EXTERNAL, lb(N1, "fw"), 80), "drop", set(), None),
    ("source ranges do not guard the NodePort", N1, Flow(OTHER_EXTERNAL, "172.30.0.2", 30082), "dnat", WEB, True),
    ("iTP Local, node without local endpoints: dropped", N1, Flow(POD, vip(N1, "itp"), 80), "drop", set(), None),
    ("iTP Local, node with one: only it", N2, Flow("10.244.1.9", vip(N2, "itp"), 80), "dnat", SOLO, False),
    ("no endpoints: ClusterIP rejected", N1, Flow(POD, vip(N1, "empty"), 80), "reject", set(), None),
    ("no endpoints: NodePort rejected", N1, Flow(EXTERNAL, "172.30.0.2", 30083), "reject", set(), None),
    ("only terminating-serving left: used as fallback", N1, Flow(POD, vip(N1, "old"), 80), "dnat", {("10.244.0.5", 8080)}, False),
    ("externalIP from a pod", N1, Flow(POD, "192.0.2.10", 8000), "dnat", WEB, True),
    ("session affinity does not change the candidate set", N1, Flow(POD, vip(N1, "sticky"), 80), "dnat", WEB, False),
]


@pytest.mark.parametrize("name, plan, flow, action, endpoints, masq", CASES, ids=[c[0] for c in CASES])
def test_flow(name: str, plan, flow: Flow, action: str, endpoints: set, masq: bool | None) -> None:  # type: ignore[no-untyped-def, type-arg]
    v = trace(plan, flow)
    assert (v.action, set(v.endpoints), v.masquerade) == (action, endpoints, masq), str(v)


def test_headless_services_are_not_proxied() -> None:
    assert not [sp for sp in N1.services if sp.id.startswith("default/headless/")]


def test_affinity_timeout_in_plan() -> None:
    (sp,) = [sp for sp in N1.services if sp.id.startswith("default/sticky/")]
    assert sp.affinity_timeout == 60
