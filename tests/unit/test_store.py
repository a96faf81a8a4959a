"""The object store: apply/delete/label with the API server's rules."""

from __future__ import annotations

import dataclasses

import pytest

from emu.cluster.admission import workload_problems
from emu.cluster.store import Store
from emu.config.loader import Collector, parse_manifest_docs
from emu.config.registry import canonical_kind
from emu.errors import NotFoundError, ValidationError
from emu.model.objects import NAMESPACE_NAME_LABEL, ClusterSpec, NodeDecl

pytestmark = pytest.mark.unit


def parsed(*docs: dict):  # type: ignore[no-untyped-def, type-arg]
    c = Collector()
    p = parse_manifest_docs([("f.yaml", f"(document {i + 1})", d) for i, d in enumerate(docs)], c)
    assert not c.problems, c.problems
    return p


def pod(name: str, ns: str = "default", labels: dict[str, str] | None = None, port: int = 80) -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "ports": [{"containerPort": port}]}]},
    }


def ns(name: str) -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def cm(  # type: ignore[type-arg]
    name: str, namespace: str = "default", labels: dict[str, str] | None = None, data: dict[str, str] | None = None
) -> dict:
    meta = {"name": name, "namespace": namespace, **({"labels": labels} if labels else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


def svc(name: str, namespace: str = "default") -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }


def dep(replicas: int, namespace: str = "default") -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}},
        },
    }


@pytest.fixture
def store() -> Store:
    return Store(ClusterSpec("t", nodes=(NodeDecl("n1"),)))


def test_system_namespaces_exist_and_stay(store: Store) -> None:
    assert list(store.namespaces) == ["default", "kube-system", "kube-public", "kube-node-lease"]
    assert store.namespaces["kube-system"].meta.labels == {NAMESPACE_NAME_LABEL: "kube-system"}
    with pytest.raises(ValidationError, match='namespaces "kube-system" is forbidden: this namespace may not be deleted'):
        store.delete("Namespace", "", "kube-system")


def test_apply_creates_then_relabels_without_recreating(store: Store) -> None:
    ch = store.apply(parsed(pod("a")))
    assert [p.key for p in ch.create] == ["default/a"]
    ch = store.apply(parsed(pod("a", labels={"x": "1"})))
    assert not ch.create and not ch.delete
    assert store.pods["default/a"].meta.labels == {"x": "1"}


def test_pod_spec_is_immutable(store: Store) -> None:
    store.apply(parsed(pod("a")))
    with pytest.raises(ValidationError, match="pod updates may not change fields"):
        store.apply(parsed(pod("a", port=81)))
    assert store.pods["default/a"].spec.containers[0].ports[0].container_port == 80


def test_deployment_scale_and_delete(store: Store) -> None:
    ch = store.apply(parsed(dep(2)))
    assert len(ch.create) == 2 and all(p.owner.startswith("ReplicaSet/web-") for p in ch.create)
    ch = store.apply(parsed(dep(3)))
    assert len(ch.create) == 1 and not ch.delete
    victim = ch.create[0]
    ch = store.delete("Pod", "default", victim.meta.name)
    assert ch.delete == [victim] and len(ch.create) == 1  # the controller replaces it
    assert ch.create[0].meta.name != victim.meta.name
    ch = store.delete("Deployment", "default", "web")
    assert len(ch.delete) == 3 and not store.pods and not store.list("ReplicaSet")
    assert ch.results == [("Deployment", "default", "web", "deleted")]


def test_namespace_delete_takes_everything_in_it(store: Store) -> None:
    store.apply(parsed(ns("y"), pod("a", "y"), pod("b"), dep(2, "y"), cm("conf", "y"), svc("s", "y")))
    assert len(store.pods) == 4
    ch = store.delete("Namespace", "", "y")
    assert sorted(p.key for p in ch.delete)[0] == "y/a" and len(ch.delete) == 3 and list(store.pods) == ["default/b"]
    assert not store.list("ConfigMap") and not store.services and not store.workloads and not store.service_status
    with pytest.raises(NotFoundError, match='namespaces "y" not found'):
        store.delete("Namespace", "", "y")


def test_objects_in_a_missing_namespace_are_refused(store: Store) -> None:
    with pytest.raises(ValidationError) as e:
        store.apply(parsed(pod("a", "nope"), pod("b")))
    assert [(p.file, p.path, p.message) for p in e.value.problems] == [
        ("f.yaml", "(document 1).metadata.namespace", 'namespaces "nope" not found')
    ]
    assert list(store.pods) == []  # untouched: not even the valid one
    store.apply(parsed(pod("a", "nope"), ns("nope")))  # created in the same apply (installed first): fine


def test_apply_reports_created_configured_unchanged(store: Store) -> None:
    ch = store.apply(parsed(ns("y"), dep(2), cm("conf")))
    assert sorted(ch.results) == [
        ("ConfigMap", "default", "conf", "created"),
        ("Deployment", "default", "web", "created"),
        ("Namespace", "", "y", "created"),
    ]
    ch = store.apply(parsed(ns("y"), dep(3), cm("conf", data={"k": "v2"})))
    assert sorted((r[0], r[3]) for r in ch.results) == [
        ("ConfigMap", "configured"),
        ("Deployment", "configured"),
        ("Namespace", "unchanged"),
    ]
    assert store.generation[("Deployment", "default/web")] == 2
    ch = store.apply(parsed(ns("y"), dep(3), cm("conf", data={"k": "v2"})))
    assert [r[3] for r in ch.results] == ["unchanged"] * 3 and not ch.create and not ch.delete


def test_created_times_and_status(store: Store) -> None:
    store.apply(parsed(dep(2)), now=100.0)
    assert store.created[("Deployment", "default/web")] == 100.0
    assert all(store.created[("Pod", k)] == 100.0 for k in store.pods)
    st = store.workload_status("Deployment", "default/web")
    assert st["replicas"] == 2 and st["observedGeneration"] == 1 and "readyReplicas" not in st
    assert st["conditions"][0]["lastTransitionTime"] == "1970-01-01T00:01:40Z"


def test_unstructured_get_list_label(store: Store) -> None:
    store.apply(parsed(cm("a"), cm("b", labels={"x": "1"})))
    assert [o.meta.name for o in store.list("ConfigMap")] == ["a", "b"]
    assert [o.meta.name for o in store.list("cm", "default")] == ["a", "b"] and store.list("ConfigMap", "other") == []
    assert store.get("ConfigMap", "default", "a").raw["data"] == {"k": "v"}
    store.label("ConfigMap", "default", "a", {"tier": "x"}, [], overwrite=False)
    a = store.get("ConfigMap", "default", "a")
    assert a.meta.labels == {"tier": "x"} and a.raw["metadata"]["labels"] == {"tier": "x"}
    with pytest.raises(NotFoundError, match='configmaps "zz" not found'):
        store.get("ConfigMap", "default", "zz")
    store.delete("ConfigMap", "default", "a")
    assert [o.meta.name for o in store.get("ConfigMap", None)] == ["b"]


def test_scale(store: Store) -> None:
    store.apply(parsed(dep(2)))
    ch = store.scale("deploy", "default", "web", 4)
    assert len(ch.create) == 2 and ch.results == [("Deployment", "default", "web", "scaled")]
    assert store.get("Deployment", "default", "web").replicas == 4
    with pytest.raises(ValidationError, match="cannot scale"):
        store.scale("ConfigMap", "default", "web", 1)
    with pytest.raises(NotFoundError):
        store.scale("StatefulSet", "default", "web", 1)


def test_workload_admission(store: Store) -> None:
    store.apply(parsed(dep(2)))
    other = dep(2)
    other["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "1"}}
    other["spec"]["template"]["metadata"]["labels"]["v"] = "1"
    with pytest.raises(ValidationError, match="field is immutable"):
        store.apply(parsed(other))
    zero = dep(2)
    zero["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}
    with pytest.raises(ValidationError, match="may not be 0 when `maxSurge` is 0"):
        store.apply(parsed(zero))


def test_controller_pods_cannot_be_reapplied_with_another_spec(store: Store) -> None:
    store.apply(parsed(dep(1)))
    p = next(iter(store.pods.values()))
    doc = pod(p.meta.name, labels=dict(p.meta.labels))
    with pytest.raises(ValidationError, match="belongs to ReplicaSet/web-"):
        store.apply(parsed(doc))


def test_node_labels_steer_daemonsets() -> None:
    store = Store(ClusterSpec("t", nodes=(NodeDecl("n1"), NodeDecl("n2"))))
    ds = dep(0)
    ds["kind"] = "DaemonSet"
    del ds["spec"]["replicas"]
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"gpu": "yes"}
    assert not store.apply(parsed(ds)).create
    ch = store.label("Node", "", "n2", {"gpu": "yes"}, [], overwrite=False)
    assert [p.spec.node_affinity[0][0].values for p in ch.create] == [("n2",)]


def test_label_rules(store: Store) -> None:
    store.apply(parsed(pod("a", labels={"app": "a"})))
    with pytest.raises(ValidationError, match="--overwrite is false"):
        store.label("Pod", "default", "a", {"app": "b"}, [], overwrite=False)
    store.label("Pod", "default", "a", {"app": "b", "tier": "x"}, [], overwrite=True)
    store.label("Pod", "default", "a", {}, ["tier"], overwrite=False)
    assert store.pods["default/a"].meta.labels == {"app": "b"}
    with pytest.raises(ValidationError, match="cannot be changed"):
        store.label("Namespace", "", "default", {NAMESPACE_NAME_LABEL: "x"}, [], overwrite=True)
    with pytest.raises(NotFoundError):
        store.label("Pod", "default", "zz", {"a": "b"}, [], overwrite=False)


def test_kind_aliases() -> None:
    assert canonical_kind("po") == "Pod" and canonical_kind("deploy") == "Deployment" and canonical_kind("ns") == "Namespace"
    assert canonical_kind("deployments.apps") == "Deployment" and canonical_kind("cm") == "ConfigMap"
    with pytest.raises(ValidationError):
        canonical_kind("gizmo")


def test_statefulset_and_job_admission(store: Store) -> None:
    sts = dep(1)
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "a"
    store.apply(parsed(sts))
    assert store.pods["default/web-0"].spec.subdomain == "a"
    sts["spec"]["serviceName"] = "b"
    with pytest.raises(ValidationError, match="updates to statefulset spec for fields other than"):
        store.apply(parsed(sts))
    # (the schema refuses a Job's restartPolicy Always already; admission covers objects built in code)
    job = store.get("StatefulSet", "default", "web")
    bad = dataclasses.replace(job, kind="Job", template_spec=dataclasses.replace(job.template_spec, restart_policy="Always"))
    assert workload_problems(None, bad) == [("spec.template.spec.restartPolicy", 'Required value: valid values: "OnFailure", "Never"')]
