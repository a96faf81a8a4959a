"""IPAM, scheduling and the Deployment controller: deterministic, as documented."""

from __future__ import annotations

import dataclasses

import pytest

from emu.controllers import deployments
from emu.controllers.ipam import PodIPAllocator, plan_addresses
from emu.controllers.scheduler import choose_node
from emu.model.objects import ClusterSpec, Container, Deployment, ExternalHostDecl, Meta, NodeDecl, PodSpec
from emu.model.selectors import LabelSelector

pytestmark = pytest.mark.unit

SPEC = ClusterSpec(
    name="t",
    nodes=(NodeDecl("n1", {"zone": "a"}), NodeDecl("n2", {"zone": "b"}), NodeDecl("n3", {"zone": "a"})),
    external_hosts=(ExternalHostDecl("client"),),
)


def test_addresses_follow_file_order() -> None:
    plan = plan_addresses(SPEC)
    assert [(n.name, n.ip, n.pod_cidr, n.gateway) for n in plan.nodes] == [
        ("n1", "172.30.0.2", "10.244.0.0/24", "10.244.0.1"),
        ("n2", "172.30.0.3", "10.244.1.0/24", "10.244.1.1"),
        ("n3", "172.30.0.4", "10.244.2.0/24", "10.244.2.1"),
    ]
    assert [(h.name, h.ip) for h in plan.hosts] == [("client", "172.30.0.5")]


def test_pod_ips_lowest_free_first_and_reused() -> None:
    alloc = PodIPAllocator(plan_addresses(SPEC))
    ips = [alloc.allocate("n2") for _ in range(3)]
    assert ips == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    alloc.release("10.244.1.3")
    assert alloc.allocate("n2") == "10.244.1.3"
    assert alloc.capacity_left("n1") == 253


def test_pod_range_exhaustion() -> None:
    alloc = PodIPAllocator(plan_addresses(SPEC))
    got = [alloc.allocate("n1") for _ in range(253)]
    assert got[-1] == "10.244.0.254" and alloc.allocate("n1") is None


def spec(node_name: str = "", selector: dict[str, str] | None = None) -> PodSpec:
    return PodSpec((Container("c"),), node_name, selector or {})


def test_scheduler_order_of_rules() -> None:
    nodes = plan_addresses(SPEC).nodes
    cap = {"n1": 10, "n2": 10, "n3": 10}
    assert choose_node(spec("n3"), nodes, {}, cap) == "n3"
    assert choose_node(spec(selector={"zone": "a"}), nodes, {"n1": 5}, cap) == "n3"
    assert choose_node(spec(selector={"zone": "c"}), nodes, {}, cap) is None  # Pending
    assert choose_node(spec(), nodes, {"n1": 1, "n2": 0, "n3": 0}, cap) == "n2"
    assert choose_node(spec(), nodes, {}, {"n1": 0, "n2": 0, "n3": 0}) is None


def test_even_spread() -> None:
    nodes = plan_addresses(SPEC).nodes
    load: dict[str, int] = {}
    for _ in range(9):
        n = choose_node(spec(), nodes, load, {"n1": 9, "n2": 9, "n3": 9})
        assert n is not None
        load[n] = load.get(n, 0) + 1
    assert load == {"n1": 3, "n2": 3, "n3": 3}


def deployment(replicas: int, labels: dict[str, str] | None = None) -> Deployment:
    labels = labels or {"app": "web"}
    return Deployment(Meta("web", "x"), replicas, LabelSelector({"app": "web"}), labels, spec())


def test_deployment_names_are_deterministic_and_kubernetes_shaped() -> None:
    d = deployment(3)
    create, delete, nxt = deployments.reconcile(d, [], 0)
    again, _, _ = deployments.reconcile(d, [], 0)
    assert [p.meta.name for p in create] == [p.meta.name for p in again]
    assert nxt == 3 and not delete
    for p in create:
        name, h, suffix = p.meta.name.rsplit("-", 2)
        assert name == "web" and len(h) == 10 and len(suffix) == 5
        assert p.meta.labels["pod-template-hash"] == h and p.owner == "web"
    assert len({p.meta.name for p in create}) == 3


def test_deployment_scale_and_template_change() -> None:
    d = deployment(3)
    pods, _, nxt = deployments.reconcile(d, [], 0)
    create, delete, _ = deployments.reconcile(dataclasses.replace(d, replicas=1), pods, nxt)
    assert not create and delete == pods[1:]
    create, delete, _ = deployments.reconcile(dataclasses.replace(d, replicas=4), pods, nxt)
    assert len(create) == 1 and not delete
    assert create[0].meta.name not in {p.meta.name for p in pods}  # a new name, as upstream
    changed = deployment(3, {"app": "web", "v": "2"})
    create, delete, _ = deployments.reconcile(changed, pods, nxt)
    assert delete == pods and len(create) == 3  # recreate on template change
