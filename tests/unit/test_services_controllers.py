"""Service allocation and the EndpointSlice controller (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from emu.config.loader import Collector, parse_manifest_docs
from emu.controllers.endpointslices import slices_for
from emu.controllers.lb_pool import pool_addresses
from emu.controllers.service_alloc import allocate
from emu.errors import ValidationError
from emu.model.objects import ClusterSpec, Container, ContainerPort, NodeDecl, PodSpec, PodView
from emu.model.services import Service, ServiceStatus

pytestmark = pytest.mark.unit
SPEC = ClusterSpec("t", nodes=(NodeDecl("n1"), NodeDecl("n2")))


def svc(name: str, **spec: object) -> Service:
    raw = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}
    c = Collector()
    p = parse_manifest_docs([("f.yaml", "", raw)], c)
    if c.problems:
        raise ValidationError(c.problems)
    return p.manifests.services[0]


def test_cluster_ips_lowest_free_skipping_reserved() -> None:
    st = allocate(SPEC, [svc(f"s{i}") for i in range(10)], {})
    ips = [st[f"default/s{i}"].cluster_ip for i in range(10)]
    assert ips[0] == "10.96.0.2" and "10.96.0.1" not in ips and "10.96.0.10" not in ips and ips[-1] == "10.96.0.12"


def test_requested_cluster_ip_wins_and_errors_match_the_api_server() -> None:
    st = allocate(SPEC, [svc("a"), svc("b", clusterIP="10.96.0.2")], {})
    assert st["default/b"].cluster_ip == "10.96.0.2" and st["default/a"].cluster_ip == "10.96.0.3"
    with pytest.raises(ValidationError, match=r"is not in the valid range. The range of valid IPs is 10.96.0.0/16"):
        allocate(SPEC, [svc("a", clusterIP="10.97.0.1")], {})
    with pytest.raises(ValidationError, match="provided IP is already allocated"):
        allocate(SPEC, [svc("a", clusterIP="10.96.0.5"), svc("b", clusterIP="10.96.0.5")], {})
    with pytest.raises(ValidationError, match="field is immutable"):
        allocate(SPEC, [svc("a", clusterIP="10.96.0.9")], {"default/a": ServiceStatus("10.96.0.5")})


def test_allocations_survive_updates() -> None:
    first = allocate(SPEC, [svc("a", type="NodePort"), svc("b", type="NodePort")], {})
    again = allocate(SPEC, [svc("b", type="NodePort"), svc("c", type="NodePort"), svc("a", type="NodePort")], first)
    assert again["default/a"] == first["default/a"] and again["default/b"] == first["default/b"]
    assert again["default/c"].node_ports == {"80/TCP": 30002}


def test_node_ports() -> None:
    st = allocate(SPEC, [svc("a", type="NodePort", ports=[{"port": 80, "nodePort": 30000}]), svc("b", type="NodePort")], {})
    assert st["default/a"].node_ports == {"80/TCP": 30000} and st["default/b"].node_ports == {"80/TCP": 30001}
    with pytest.raises(ValidationError, match="Invalid value: 30000: provided port is already allocated"):
        allocate(SPEC, [svc(n, type="NodePort", ports=[{"port": 80, "nodePort": 30000}]) for n in "ab"], {})
    with pytest.raises(ValidationError, match="The range of valid ports is 30000-32767"):
        svc("a", type="NodePort", ports=[{"port": 80, "nodePort": 80}])
    back = allocate(SPEC, [svc("a")], st)  # NodePort → ClusterIP releases the node port
    assert back["default/a"].node_ports == {} and back["default/a"].cluster_ip == st["default/a"].cluster_ip


def test_load_balancer_ips_and_health_check_port() -> None:
    pool = pool_addresses(SPEC)
    assert pool[0] == "172.30.0.192" and pool[-1] == "172.30.0.254"
    st = allocate(SPEC, [svc("a", type="LoadBalancer", externalTrafficPolicy="Local"), svc("b", type="LoadBalancer")], {})
    assert st["default/a"].lb_ip == "172.30.0.192" and st["default/b"].lb_ip == "172.30.0.193"
    assert st["default/a"].health_check_node_port == 30001 and st["default/b"].health_check_node_port == 0
    small = dataclasses.replace(SPEC, lb_pool=("172.30.0.250-172.30.0.250",))
    st = allocate(small, [svc("a", type="LoadBalancer"), svc("b", type="LoadBalancer")], {})
    assert st["default/a"].lb_ip == "172.30.0.250" and st["default/b"].lb_ip == ""  # <pending>
    with pytest.raises(ValidationError, match="not in the load-balancer pool"):
        allocate(small, [svc("a", type="LoadBalancer", loadBalancerIP="172.30.0.9")], {})


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name: Required value"),
        ({"type": "Magic"}, "'Magic' is not allowed; allowed: ClusterIP, NodePort, LoadBalancer, ExternalName"),
        ({"ports": [{"port": 80, "nodePort": 30001}]}, "nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
        ({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}, "Duplicate value: port 80/TCP"),
        ({"type": "ExternalName"}, "spec.externalName: Required value"),
        ({"type": "NodePort", "clusterIP": "None"}, "may not be set to 'None' for NodePort services"),
        ({"externalTrafficPolicy": "Local"}, "may only be set when `type` is 'NodePort' or 'LoadBalancer'"),
        ({"clusterIP": "10.96.0.300"}, "must be a valid IPv4 address"),
        ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}}, "0 is out of range (minimum 1)"),
        ({"loadBalancerSourceRanges": ["10.0.0.0/8"]}, "Forbidden: may only be used when `type` is 'LoadBalancer'"),
    ],
)
def test_service_validation(spec: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError) as e:
        svc("s", **spec)
    assert message in str(e.value)


def pod(
    name: str, ip: str, node: str, ready: bool = True, terminating: bool = False, port: int = 8080, labels: dict | None = None
) -> PodView:  # type: ignore[type-arg]
    spec = PodSpec((Container("c", ports=(ContainerPort(port, "TCP", "http"),)),))
    return PodView("default", name, labels or {"app": "web"}, ip, node, spec, ready, terminating)


def test_endpoint_slices() -> None:
    s = svc("web", selector={"app": "web"}, ports=[{"port": 80, "targetPort": "http", "name": "h"}])
    pods = [
        pod("a", "10.244.0.2", "n1"),
        pod("b", "10.244.1.2", "n2", ready=False),
        pod("c", "10.244.1.3", "n2", terminating=True),
        pod("d", "10.244.0.3", "n1", port=9090),  # the named port resolves per pod
        pod("e", "10.244.0.4", "n1", labels={"app": "other"}),
        pod("f", "", "n1"),  # no IP yet
    ]
    slices = slices_for(s, pods, {"n1": "zone-a"})
    assert len(slices) == 2 and all(sl.meta.labels["kubernetes.io/service-name"] == "web" for sl in slices)
    by_port = {sl.ports[0].port: sl for sl in slices}
    eps = {e.addresses[0]: e for e in by_port[8080].endpoints}
    assert set(eps) == {"10.244.0.2", "10.244.1.2", "10.244.1.3"}
    assert eps["10.244.0.2"].conditions.ready and eps["10.244.0.2"].zone == "zone-a" and eps["10.244.0.2"].target_ref == "default/a"
    assert not eps["10.244.1.2"].conditions.ready and not eps["10.244.1.2"].conditions.serving
    c = eps["10.244.1.3"].conditions
    assert (c.ready, c.serving, c.terminating) == (False, True, True)
    assert [e.addresses[0] for e in by_port[9090].endpoints] == ["10.244.0.3"]
    pnr = dataclasses.replace(s, publish_not_ready_addresses=True)
    assert all(e.conditions.ready for sl in slices_for(pnr, pods, {}) for e in sl.endpoints if not e.conditions.terminating)


def test_endpoint_slices_hold_at_most_100_and_empty_services_keep_one() -> None:
    s = svc("web", selector={"app": "web"})
    many = [pod(f"p{i}", f"10.244.{i // 200}.{i % 200 + 2}", "n1", port=80) for i in range(250)]
    assert [len(sl.endpoints) for sl in slices_for(s, many, {})] == [100, 100, 50]
    (empty,) = slices_for(s, [], {})
    assert empty.endpoints == () and empty.ports[0].port == 80
    assert slices_for(svc("manual"), many, {}) == []  # selector-less: slices are the user's
