"""IPAM, scheduling and the Deployment controller: deterministic, as documented."""

from __future__ import annotations

import dataclasses

import pytest

from emu.controllers import deployments, replicasets
from emu.controllers.ipam import PodIPAllocator, plan_addresses
from emu.controllers.scheduler import NodeInfo, choose_node, node_infos, schedule_all
from emu.model.objects import ClusterSpec, Container, ExternalHostDecl, Meta, NodeDecl, Pod, PodSpec, Workload
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


def pod(node_name: str = "", selector: dict[str, str] | None = None) -> Pod:
    return Pod(Meta("p", "x"), PodSpec((Container("c"),), node_name, selector or {}))


def test_scheduler_order_of_rules() -> None:
    def nodes(load: dict[str, int], free: int = 10) -> list[NodeInfo]:
        return node_infos(SPEC.nodes, {"n1": free, "n2": free, "n3": free}, load)

    assert choose_node(pod("n3"), nodes({})) == "n3"
    assert choose_node(pod(selector={"zone": "a"}), nodes({"n1": 5})) == "n3"
    assert choose_node(pod(selector={"zone": "c"}), nodes({})) is None  # Pending
    assert choose_node(pod(), nodes({"n1": 1, "n2": 0, "n3": 0})) == "n2"
    assert choose_node(pod(), nodes({}, free=0)) is None


def test_even_spread() -> None:
    got = schedule_all([dataclasses.replace(pod(), meta=Meta(f"p{i}", "x")) for i in range(9)], node_infos(SPEC.nodes))
    assert sorted(got.values()) == ["n1"] * 3 + ["n2"] * 3 + ["n3"] * 3


def deployment(replicas: int, labels: dict[str, str] | None = None) -> Workload:
    labels = labels or {"app": "web"}
    return Workload("Deployment", Meta("web", "x"), replicas, LabelSelector({"app": "web"}), labels, PodSpec((Container("c"),)))


def test_deployment_names_are_deterministic_and_kubernetes_shaped() -> None:
    d = deployment(3)
    step = deployments.step(d, [], {})
    (rs,) = step.replicasets
    assert rs.meta.name == f"web-{deployments.template_hash(d)}" and rs.replicas == 3 and rs.owner == "Deployment/web"
    res = replicasets.reconcile(rs, [], 0)
    again = replicasets.reconcile(rs, [], 0)
    assert [p.meta.name for p in res.create] == [p.meta.name for p in again.create]
    assert res.next_index == 3 and not res.delete
    for p in res.create:
        name, h, suffix = p.meta.name.rsplit("-", 2)
        assert name == "web" and len(h) == 10 and len(suffix) == 5
        assert p.meta.labels["pod-template-hash"] == h and p.owner == rs.ref
    assert len({p.meta.name for p in res.create}) == 3


def test_deployment_scale_and_template_change() -> None:
    d = deployment(3)
    (rs,) = deployments.step(d, [], {}).replicasets
    step = deployments.step(dataclasses.replace(d, replicas=1), [rs], {})
    assert [r.replicas for r in step.replicasets] == [1]
    changed = deployment(3, {"app": "web", "v": "2"})
    assert deployments.template_hash(changed) != deployments.template_hash(d)
    step = deployments.step(changed, [rs], {rs.meta.name: []})
    (new,) = step.replicasets  # a second ReplicaSet, within maxSurge (25% of 3 → 1)
    assert new.meta.name == deployments.rs_name(changed) and new.replicas == 1
    assert new.meta.annotations["deployment.kubernetes.io/revision"] == "2"
