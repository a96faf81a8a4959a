"""The scheduler: kube-scheduler's filters, its messages, then a deterministic spread."""

from __future__ import annotations

import time

import pytest

from emu.controllers.scheduler import (
    NodeInfo,
    PlacedPod,
    Scheduler,
    choose_node,
    node_infos,
    schedule_all,
    unschedulable_reason,
)
from emu.model.objects import (
    Container,
    ContainerPort,
    Meta,
    NodeDecl,
    NodeSelectorRequirement,
    Pod,
    PodAffinityTerm,
    PodSpec,
    Taint,
    Toleration,
)
from emu.model.selectors import LabelSelector

pytestmark = pytest.mark.unit

CP_TAINT = Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
NODES = (
    NodeDecl("cp", {"topology.kubernetes.io/zone": "a", "node-role.kubernetes.io/control-plane": ""}, (CP_TAINT,)),
    NodeDecl("w1", {"topology.kubernetes.io/zone": "a", "disk": "ssd", "cores": "4"}),
    NodeDecl("w2", {"topology.kubernetes.io/zone": "b", "cores": "16"}),
)


def nodes(capacity: dict[str, int] | None = None, load: dict[str, int] | None = None) -> list[NodeInfo]:
    return node_infos(NODES, capacity, load)


def pod(name: str = "p", ns: str = "default", labels: dict[str, str] | None = None, **spec: object) -> Pod:
    return Pod(Meta(name, ns, labels or {}), PodSpec((Container("c"),), **spec))  # type: ignore[arg-type]


def req(key: str, op: str, *values: str, field: bool = False) -> NodeSelectorRequirement:
    return NodeSelectorRequirement(key, op, values, field)


def test_every_node_has_the_well_known_labels() -> None:
    n = nodes()[1]
    assert n.labels["kubernetes.io/hostname"] == "w1" and n.labels["kubernetes.io/os"] == "linux"
    assert n.labels["kubernetes.io/arch"] == "amd64" and n.labels["disk"] == "ssd"


def test_spread_skips_the_tainted_control_plane_and_breaks_ties_by_file_order() -> None:
    got = schedule_all([pod(f"p{i}") for i in range(4)], nodes())
    assert list(got.values()) == ["w1", "w2", "w1", "w2"]


@pytest.mark.parametrize(
    ("tolerations", "fits_cp"),
    [
        ((), False),
        ((Toleration("node-role.kubernetes.io/control-plane", "Exists", "", "NoSchedule"),), True),
        ((Toleration("node-role.kubernetes.io/control-plane", "Exists"),), True),  # every effect
        ((Toleration("node-role.kubernetes.io/control-plane", "Equal", ""),), True),
        ((Toleration("node-role.kubernetes.io/control-plane", "Equal", "x"),), False),  # value differs
        ((Toleration("node-role.kubernetes.io/control-plane", "Exists", "", "NoExecute"),), False),  # other effect
        ((Toleration("", "Exists"),), True),  # empty key + Exists: tolerates everything
        ((Toleration("other", "Exists"),), False),
    ],
)
def test_taints_and_tolerations(tolerations: tuple[Toleration, ...], fits_cp: bool) -> None:
    p = pod(node_selector={"kubernetes.io/hostname": "cp"}, tolerations=tolerations)
    assert choose_node(p, nodes()) == ("cp" if fits_cp else None)


def test_no_execute_filters_and_prefer_no_schedule_only_prefers() -> None:
    decls = (NodeDecl("a", taints=(Taint("k", "v", "PreferNoSchedule"),)), NodeDecl("b", taints=(Taint("gone", "", "NoExecute"),)))
    ns = node_infos(decls)
    assert choose_node(pod(), ns) == "a"  # b's NoExecute filters; a's preference does not
    decls = (NodeDecl("a", taints=(Taint("k", "v", "PreferNoSchedule"),)), NodeDecl("c"))
    assert choose_node(pod(), node_infos(decls, load={"c": 5})) == "c"  # untainted preferred, even if busier
    assert choose_node(pod(tolerations=(Toleration("k", "Equal", "v"),)), node_infos(decls, load={"c": 5})) == "a"


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ((req("disk", "In", "ssd"),), ["w1"]),
        ((req("disk", "NotIn", "ssd"),), ["w2"]),  # NotIn matches nodes without the key
        ((req("disk", "Exists"),), ["w1"]),
        ((req("disk", "DoesNotExist"),), ["w2"]),
        ((req("cores", "Gt", "8"),), ["w2"]),
        ((req("cores", "Lt", "8"),), ["w1"]),
        ((req("cores", "Gt", "x"),), []),  # not an integer: no match
        ((req("metadata.name", "In", "w2", field=True),), ["w2"]),
        ((req("metadata.name", "NotIn", "w2", field=True),), ["w1"]),
        ((req("topology.kubernetes.io/zone", "In", "a"), req("cores", "Gt", "2")), ["w1"]),  # AND in a term
        ((), []),  # an empty term matches nothing
    ],
)
def test_required_node_affinity_operators(term: tuple[NodeSelectorRequirement, ...], expected: list[str]) -> None:
    s = Scheduler(nodes())
    fits, _ = s.evaluate(pod(node_affinity=(term,)))
    assert [n.name for n in fits] == expected


def test_node_affinity_terms_are_ored_and_anded_with_node_selector() -> None:
    terms = ((req("disk", "In", "ssd"),), (req("cores", "Gt", "8"),))
    assert [n.name for n in Scheduler(nodes()).evaluate(pod(node_affinity=terms))[0]] == ["w1", "w2"]
    p = pod(node_affinity=terms, node_selector={"topology.kubernetes.io/zone": "b"})
    assert [n.name for n in Scheduler(nodes()).evaluate(p)[0]] == ["w2"]


def test_the_schedulers_message() -> None:
    p = pod(node_selector={"topology.kubernetes.io/zone": "c"})
    assert unschedulable_reason(p, nodes()) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "2 node(s) didn't match Pod's node affinity/selector."
    )
    full = nodes(capacity={"cp": 5, "w1": 0, "w2": 0})
    assert unschedulable_reason(pod(), full) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Too many pods."
    )


def test_node_name_bypasses_filters_but_not_capacity() -> None:
    assert choose_node(pod(node_name="cp"), nodes()) == "cp"  # taint ignored: the kubelet admits it
    assert choose_node(pod(node_name="w1"), nodes(capacity={"w1": 0, "w2": 1, "cp": 1})) is None
    assert choose_node(pod(node_name="nope"), nodes()) is None
    assert unschedulable_reason(pod(node_name="nope"), nodes()) == 'node "nope" not found'


def anti(app: str, key: str = "kubernetes.io/hostname") -> tuple[PodAffinityTerm, ...]:
    return (PodAffinityTerm(LabelSelector({"app": app}), key),)


def test_anti_affinity_spreads_three_replicas_and_leaves_the_fourth_pending() -> None:
    tol = (Toleration("", "Exists"),)
    replicas = [pod(f"web-{i}", labels={"app": "web"}, pod_anti_affinity=anti("web"), tolerations=tol) for i in range(4)]
    got = schedule_all(replicas, nodes())
    assert sorted(n for n in got.values() if n) == ["cp", "w1", "w2"] and got["default/web-3"] is None
    placed = [PlacedPod("default", {"app": "web"}, n, anti("web")) for n in ("cp", "w1", "w2")]
    assert unschedulable_reason(replicas[3], nodes(), placed) == (
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    )


def test_anti_affinity_by_zone_and_symmetry_with_existing_pods() -> None:
    placed = [PlacedPod("default", {"app": "db"}, "w1", anti("web", "topology.kubernetes.io/zone"))]
    # The db pod forbids web pods in its zone (a: cp and w1): only w2 is left.
    p = pod(labels={"app": "web"}, tolerations=(Toleration("", "Exists"),))
    assert choose_node(p, nodes(), placed) == "w2"
    assert "1 node(s) didn't match Pod's node affinity/selector" not in unschedulable_reason(p, nodes(), placed)
    s = Scheduler(nodes(), placed)
    _, failed = s.evaluate(p)
    assert failed == {"cp": "node(s) didn't satisfy existing pods anti-affinity rules", "w1": failed["w1"]}


def test_pod_affinity_follows_matching_pods_within_a_topology() -> None:
    aff = (PodAffinityTerm(LabelSelector({"app": "cache"}), "topology.kubernetes.io/zone"),)
    p = pod(labels={"app": "web"}, pod_affinity=aff)
    assert choose_node(p, nodes()) is None  # no cache pod anywhere, and web does not select itself
    placed = [PlacedPod("default", {"app": "cache"}, "cp")]
    assert choose_node(p, nodes(), placed) == "w1"  # zone a, cp is tainted
    other_ns = [PlacedPod("other", {"app": "cache"}, "cp")]
    assert choose_node(p, nodes(), other_ns) is None  # the pod's own namespace by default
    in_other = (PodAffinityTerm(LabelSelector({"app": "cache"}), "topology.kubernetes.io/zone", namespaces=("other",)),)
    assert choose_node(pod(pod_affinity=in_other), nodes(), other_ns) == "w1"
    by_label = (
        PodAffinityTerm(LabelSelector({"app": "cache"}), "topology.kubernetes.io/zone", namespace_selector=LabelSelector({"team": "x"})),
    )
    assert choose_node(pod(pod_affinity=by_label), nodes(), other_ns, {"other": {"team": "x"}}) == "w1"
    assert choose_node(pod(pod_affinity=by_label), nodes(), other_ns, {"other": {"team": "y"}}) is None
    everywhere = (PodAffinityTerm(LabelSelector({"app": "cache"}), "topology.kubernetes.io/zone", namespace_selector=LabelSelector()),)
    assert choose_node(pod(pod_affinity=everywhere), nodes(), other_ns) == "w1"


def test_self_affine_group_may_start_anywhere() -> None:
    aff = (PodAffinityTerm(LabelSelector({"app": "web"}), "topology.kubernetes.io/zone"),)
    got = schedule_all([pod(f"w{i}", labels={"app": "web"}, pod_affinity=aff) for i in range(3)], nodes())
    assert list(got.values()) == ["w1", "w1", "w1"]  # the first lands, the rest follow into zone a (cp tainted)


def test_host_ports_conflict() -> None:
    hp = PodSpec((Container("c", ports=(ContainerPort(80, host_port=8080),)),))
    got = schedule_all([Pod(Meta(f"h{i}", "default"), hp) for i in range(3)], nodes())
    assert list(got.values()) == ["w1", "w2", None]


def test_thousand_pods_over_ten_nodes_is_fast() -> None:
    many = node_infos([NodeDecl(f"n{i}") for i in range(10)], capacity={f"n{i}": 253 for i in range(10)})
    pods = [pod(f"p{i}", labels={"app": "x"}) for i in range(1000)]
    t = time.perf_counter()
    got = schedule_all(pods, many)
    took = time.perf_counter() - t
    assert sorted({sum(1 for n in got.values() if n == f"n{i}") for i in range(10)}) == [100]
    assert took < 0.1, took
