"""The workload controllers through the store, with a fake kubelet feeding back pod states
step by step (as the runtime does): rollouts, StatefulSet order, DaemonSets, Jobs."""

from __future__ import annotations

import dataclasses

import pytest

from emu.cluster.store import Changes, Store
from emu.config.loader import ParsedManifests
from emu.controllers import deployments, replicasets
from emu.controllers.owned import surge_and_unavailable
from emu.controllers.scheduler import choose_node, node_infos
from emu.model.objects import (
    ClusterSpec,
    Container,
    Manifests,
    Meta,
    NodeDecl,
    ObservedPod,
    Pod,
    PodSpec,
    RollingUpdate,
    Taint,
    Toleration,
    Workload,
)
from emu.model.selectors import LabelSelector

pytestmark = pytest.mark.unit

NODES = (NodeDecl("n1"), NodeDecl("n2"), NodeDecl("n3", taints=(Taint("dedicated", "db", "NoSchedule"),)))


def workload(kind: str, name: str = "web", replicas: int = 3, version: str = "1", **kw: object) -> Workload:
    labels = {"app": name}
    spec = PodSpec((Container("c", image=f"img:{version}"),), restart_policy="Never" if kind == "Job" else "Always")
    return Workload(kind, Meta(name, "default"), replicas, LabelSelector(labels), labels, spec, **kw)  # type: ignore[arg-type]


def parsed(*objs: object) -> ParsedManifests:
    return ParsedManifests(Manifests(), {}, [(f"{type(o).__name__}/{o.key}", o) for o in objs])  # type: ignore[attr-defined]


class Kubelet:
    """Pods start Pending; the test decides when they run, get ready, finish or go."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.observed: dict[str, ObservedPod] = {}
        self.now = 1000.0

    def realise(self, ch: Changes) -> Changes:
        for p in ch.delete:
            if p.key in self.observed:
                self.observed[p.key] = dataclasses.replace(self.observed[p.key], terminating=True, ready=False)
        for p in ch.create:
            self.observed[p.key] = ObservedPod(p, node="n1")
        return ch

    def set(self, key: str, phase: str = "Running", ready: bool = True) -> Changes:
        self.observed[key] = dataclasses.replace(self.observed[key], phase=phase, ready=ready)
        return self.sync()

    def reap(self) -> Changes:
        """Terminating pods finish."""
        self.observed = {k: o for k, o in self.observed.items() if not o.terminating}
        return self.sync()

    def sync(self) -> Changes:
        self.now += 1
        return self.realise(self.store.reconcile(self.observed, now=self.now))

    def apply(self, *objs: object) -> Changes:
        return self.realise(self.store.apply(parsed(*objs), now=self.now))

    def pods(self, owner_prefix: str = "") -> list[ObservedPod]:
        return [self.observed.get(p.key) or ObservedPod(p) for p in self.store.pods.values() if p.owner.startswith(owner_prefix)]

    def ready_count(self) -> int:
        return sum(1 for o in self.pods() if o.ready and not o.terminating)


@pytest.fixture
def kubelet() -> Kubelet:
    return Kubelet(Store(ClusterSpec("t", nodes=NODES)))


# --- Deployments ---------------------------------------------------------------------------


def test_fenceposts_round_as_upstream() -> None:
    assert surge_and_unavailable("25%", "25%", 10) == (3, 2)  # surge up, unavailable down
    assert surge_and_unavailable(0, "10%", 3) == (0, 1)  # never both 0
    assert surge_and_unavailable(2, 0, 3) == (2, 0)


def test_deployment_makes_a_replicaset_with_hashed_names(kubelet: Kubelet) -> None:
    ch = kubelet.apply(workload("Deployment"))
    h = deployments.template_hash(workload("Deployment"))
    rs = kubelet.store.workloads[("ReplicaSet", f"default/web-{h}")]
    assert rs.owner == "Deployment/web" and rs.replicas == 3 and rs.selector.match_labels["pod-template-hash"] == h
    assert rs.meta.annotations["deployment.kubernetes.io/revision"] == "1"
    names = [p.meta.name for p in ch.create]
    again = Kubelet(Store(ClusterSpec("t", nodes=NODES))).apply(workload("Deployment"))
    assert names == [p.meta.name for p in again.create]  # a file always yields the same names
    for p in ch.create:
        base, ph, suffix = p.meta.name.rsplit("-", 2)
        assert (base, ph, len(suffix)) == ("web", h, 5) and p.owner == f"ReplicaSet/web-{h}"
        assert p.meta.labels == {"app": "web", "pod-template-hash": h}
    assert next((e.reason, e.message) for e in ch.events) == ("ScalingReplicaSet", f"Scaled up replica set web-{h} from 0 to 3")


@pytest.mark.parametrize(("replicas", "surge", "unavailable"), [(4, 1, 1), (10, "25%", "25%"), (3, 0, 1), (3, 1, 0), (5, "50%", 0)])
def test_rolling_update_keeps_capacity(kubelet: Kubelet, replicas: int, surge: int | str, unavailable: int | str) -> None:
    strategy = RollingUpdate(max_surge=surge, max_unavailable=unavailable)
    kubelet.apply(workload("Deployment", replicas=replicas, strategy=strategy))
    for o in kubelet.pods():
        kubelet.set(o.key)
    assert kubelet.ready_count() == replicas
    max_s, max_u = surge_and_unavailable(surge, unavailable, replicas)
    v2 = workload("Deployment", replicas=replicas, version="2", strategy=strategy)
    new_hash = deployments.template_hash(v2)
    kubelet.apply(v2)
    for _ in range(500):
        active = [o for o in kubelet.pods() if not o.terminating]
        assert len(active) <= replicas + max_s
        assert kubelet.ready_count() >= replicas - max_u
        pending = [o for o in active if not o.ready]
        if not pending and all(o.pod.meta.labels["pod-template-hash"] == new_hash for o in active):
            break
        if any(o.terminating for o in kubelet.observed.values()):
            kubelet.reap()
        else:
            kubelet.set(pending[0].key)
    active = kubelet.pods()
    assert len(active) == replicas and all(o.pod.meta.labels["pod-template-hash"] == new_hash for o in active)
    st = kubelet.store.workload_status("Deployment", "default/web")
    assert st["updatedReplicas"] == st["availableReplicas"] == st["readyReplicas"] == replicas
    assert st["observedGeneration"] == 2
    assert st["conditions"][1]["reason"] == "NewReplicaSetAvailable"
    old = kubelet.store.workloads[("ReplicaSet", f"default/{deployments.rs_name(workload('Deployment'))}")]
    assert old.replicas == 0  # kept, as revision history, with no pods


def test_recreate_deletes_everything_first(kubelet: Kubelet) -> None:
    kubelet.apply(workload("Deployment", strategy=RollingUpdate("Recreate"), revision_history_limit=0))
    for o in kubelet.pods():
        kubelet.set(o.key)
    ch = kubelet.apply(workload("Deployment", version="2", strategy=RollingUpdate("Recreate"), revision_history_limit=0))
    assert len(ch.delete) == 3 and not ch.create
    assert not kubelet.sync().create  # old pods still terminating
    ch = kubelet.reap()
    assert len(ch.create) == 3 and not ch.delete
    assert kubelet.store.workload_status("Deployment", "default/web")["conditions"][0]["status"] == "False"
    assert [w.meta.name for w in kubelet.store.list("ReplicaSet")] == [deployments.rs_name(workload("Deployment", version="2"))]


def test_zero_replicas_and_rollback_revision(kubelet: Kubelet) -> None:
    kubelet.apply(workload("Deployment"))
    kubelet.apply(workload("Deployment", version="2"))
    kubelet.apply(workload("Deployment"))  # back to the first template
    rs1 = kubelet.store.workloads[("ReplicaSet", f"default/{deployments.rs_name(workload('Deployment'))}")]
    assert rs1.meta.annotations["deployment.kubernetes.io/revision"] == "3"
    ch = kubelet.store.scale("Deployment", "default", "web", 0)
    assert not kubelet.store.pods and ch.delete


def test_replicaset_deletes_unready_then_newest_first() -> None:
    rs = workload("ReplicaSet", replicas=4)
    res = replicasets.reconcile(rs, [], 0)
    pods = [ObservedPod(p, "Running", True, node="n1") for p in res.create]
    pods[1] = dataclasses.replace(pods[1], ready=False)
    res2 = replicasets.reconcile(dataclasses.replace(rs, replicas=2), pods, res.next_index)
    assert res2.delete == [pods[1].pod, pods[3].pod] and not res2.create
    assert len({p.meta.name for p in res.create}) == 4 and res.next_index == 4
    failed = [dataclasses.replace(pods[0], phase="Failed"), *pods[1:]]
    res3 = replicasets.reconcile(rs, failed, 4)
    assert res3.delete == [pods[0].pod] and len(res3.create) == 1  # replaced, with a new name
    assert res3.create[0].meta.name not in {p.pod.meta.name for p in pods}


# --- StatefulSets --------------------------------------------------------------------------


def sts(replicas: int = 3, version: str = "1", **kw: object) -> Workload:
    return workload("StatefulSet", "db", replicas, version, service_name="db-headless", **kw)


def test_statefulset_ordered_start_and_identity(kubelet: Kubelet) -> None:
    ch = kubelet.apply(sts())
    assert [p.meta.name for p in ch.create] == ["db-0"]
    p0 = ch.create[0]
    assert (p0.spec.hostname, p0.spec.subdomain) == ("db-0", "db-headless")
    assert p0.meta.labels["statefulset.kubernetes.io/pod-name"] == "db-0"
    assert p0.meta.labels["controller-revision-hash"].startswith("db-") and p0.owner == "StatefulSet/db"
    assert not kubelet.set("default/db-0", "Running", ready=False).create  # Running but not Ready: wait
    assert [p.meta.name for p in kubelet.set("default/db-0").create] == ["db-1"]
    assert [p.meta.name for p in kubelet.set("default/db-1").create] == ["db-2"]
    assert not kubelet.set("default/db-2").create
    assert kubelet.store.workload_status("StatefulSet", "default/db")["readyReplicas"] == 3


def ready_sts(kubelet: Kubelet, n: int = 3, **kw: object) -> None:
    kubelet.apply(sts(n, **kw))
    for i in range(n):
        kubelet.set(f"default/db-{i}")


def test_statefulset_scale_down_from_the_top_one_at_a_time(kubelet: Kubelet) -> None:
    ready_sts(kubelet)
    ch = kubelet.realise(kubelet.store.scale("StatefulSet", "default", "db", 1, now=kubelet.now))
    assert [p.meta.name for p in ch.delete] == ["db-2"]
    assert not kubelet.sync().delete  # db-2 still terminating
    assert [p.meta.name for p in kubelet.reap().delete] == ["db-1"]
    kubelet.reap()
    assert sorted(kubelet.store.pods) == ["default/db-0"]


def test_statefulset_pod_comes_back_with_the_same_name(kubelet: Kubelet) -> None:
    ready_sts(kubelet)
    ch = kubelet.realise(kubelet.store.delete("Pod", "default", "db-1", now=kubelet.now))
    assert [p.meta.name for p in ch.delete] == ["db-1"] and not ch.create  # waits for the old one
    ch = kubelet.reap()
    assert [p.meta.name for p in ch.create] == ["db-1"]


def test_statefulset_parallel_and_rolling_update_with_partition(kubelet: Kubelet) -> None:
    ch = kubelet.apply(sts(3, pod_management_policy="Parallel", strategy=RollingUpdate(partition=1)))
    assert [p.meta.name for p in ch.create] == ["db-0", "db-1", "db-2"]
    for i in range(3):
        kubelet.set(f"default/db-{i}")
    ch = kubelet.apply(sts(3, "2", pod_management_policy="Parallel", strategy=RollingUpdate(partition=1)))
    assert [p.meta.name for p in ch.delete] == ["db-2"]
    ch = kubelet.reap()
    assert [p.meta.name for p in ch.create] == ["db-2"] and ch.create[0].spec.containers[0].image == "img:2"
    ch = kubelet.set("default/db-2")
    assert [p.meta.name for p in ch.delete] == ["db-1"]
    kubelet.reap()
    kubelet.set("default/db-1")
    assert not kubelet.sync().delete  # db-0 is below the partition: it keeps the old revision
    assert kubelet.store.pods["default/db-0"].spec.containers[0].image == "img:1"
    st = kubelet.store.workload_status("StatefulSet", "default/db")
    assert st["updatedReplicas"] == 2 and st["currentRevision"] != st["updateRevision"]


# --- DaemonSets ----------------------------------------------------------------------------


def test_daemonset_one_pod_per_eligible_node(kubelet: Kubelet) -> None:
    ch = kubelet.apply(workload("DaemonSet", "agent"))
    pins = sorted(p.spec.node_affinity[0][0].values[0] for p in ch.create)
    assert pins == ["n1", "n2"]  # n3's taint is not tolerated
    p = ch.create[0]
    assert any(t.key == "node.kubernetes.io/unreachable" and t.effect == "NoExecute" for t in p.spec.tolerations)
    assert "controller-revision-hash" in p.meta.labels
    nodes = node_infos(NODES)
    assert {choose_node(p, nodes) for p in ch.create} == {"n1", "n2"}  # the scheduler honours the pin
    st = kubelet.store.workload_status("DaemonSet", "default/agent")
    assert st["desiredNumberScheduled"] == 2 and st["currentNumberScheduled"] == 2 and st["numberReady"] == 0
    tol_spec = dataclasses.replace(workload("DaemonSet", "agent").template_spec, tolerations=(Toleration("dedicated", "Equal", "db"),))
    on_delete = workload("DaemonSet", "agent", strategy=RollingUpdate("OnDelete"))
    ch = kubelet.apply(dataclasses.replace(on_delete, template_spec=tol_spec))
    assert [q.spec.node_affinity[0][0].values[0] for q in ch.create] == ["n3"]  # now tolerated: n3 gets one
    assert not ch.delete  # OnDelete: the others keep their pods
    assert kubelet.store.workload_status("DaemonSet", "default/agent")["desiredNumberScheduled"] == 3


def test_daemonset_rolling_update_node_by_node() -> None:
    kubelet = Kubelet(Store(ClusterSpec("t", nodes=NODES[:2])))
    strategy = RollingUpdate(max_surge=0, max_unavailable=1)
    kubelet.apply(workload("DaemonSet", "agent", strategy=strategy))
    for o in kubelet.pods():
        kubelet.set(o.key)
    ch = kubelet.apply(workload("DaemonSet", "agent", version="2", strategy=strategy))
    assert len(ch.delete) == 1 and len(ch.create) == 1  # one node at a time
    for _ in range(10):
        pending = [o for o in kubelet.pods() if not o.ready]
        if not pending:
            break
        kubelet.set(pending[0].key)
    assert sorted(p.spec.containers[0].image for p in kubelet.store.pods.values()) == ["img:2", "img:2"]


# --- Jobs --------------------------------------------------------------------------------


def test_job_runs_to_completion(kubelet: Kubelet) -> None:
    ch = kubelet.apply(workload("Job", "pi", completions=3, parallelism=2))
    assert len(ch.create) == 2
    p = ch.create[0]
    assert p.meta.labels["batch.kubernetes.io/job-name"] == "pi" and p.meta.labels["job-name"] == "pi"
    assert p.meta.labels["controller-uid"] == p.meta.labels["batch.kubernetes.io/controller-uid"]
    ch = kubelet.set(p.key, "Succeeded", ready=False)
    assert len(ch.create) == 1  # two left to complete, two at a time
    for o in kubelet.pods():
        if o.phase != "Succeeded":
            kubelet.set(o.key, "Succeeded", ready=False)
    st = kubelet.store.workload_status("Job", "default/pi")
    assert st["succeeded"] == 3 and "active" not in st and st["conditions"][0]["type"] == "Complete"
    assert st["completionTime"] and st["startTime"]
    assert len(kubelet.store.pods) == 3  # finished pods are kept


def test_job_backoff_limit(kubelet: Kubelet) -> None:
    ch = kubelet.apply(workload("Job", "bad", completions=1, backoff_limit=1))
    ch = kubelet.set(ch.create[0].key, "Failed", ready=False)
    assert len(ch.create) == 1  # one failure: try again
    ch = kubelet.set(ch.create[0].key, "Failed", ready=False)
    assert not ch.create
    st = kubelet.store.workload_status("Job", "default/bad")
    assert st["failed"] == 2 and st["conditions"][0]["reason"] == "BackoffLimitExceeded"
    assert any(e.reason == "BackoffLimitExceeded" for e in ch.events)


def test_job_on_failure_restarts_count_and_work_queue(kubelet: Kubelet) -> None:
    spec = dataclasses.replace(workload("Job", "q").template_spec, restart_policy="OnFailure")
    ch = kubelet.apply(dataclasses.replace(workload("Job", "q", parallelism=2), template_spec=spec))
    assert len(ch.create) == 2
    a, b = (p.key for p in ch.create)
    kubelet.observed[a] = dataclasses.replace(kubelet.observed[a], phase="Running", restarts=2)
    assert not kubelet.sync().create  # restarted in place by the kubelet, not replaced
    kubelet.set(a, "Succeeded", ready=False)
    assert "conditions" not in kubelet.store.workload_status("Job", "default/q")  # b still runs
    ch = kubelet.set(b, "Succeeded", ready=False)
    assert not ch.create and kubelet.store.workload_status("Job", "default/q")["conditions"][0]["type"] == "Complete"


def test_controller_pods_carry_template_annotations_and_owner() -> None:
    w = dataclasses.replace(workload("ReplicaSet"), template_annotations={"a": "b"})
    res = replicasets.reconcile(w, [], 0)
    assert all(p.meta.annotations == {"a": "b"} and p.owner == "ReplicaSet/web" for p in res.create)
    assert isinstance(res.create[0], Pod)
