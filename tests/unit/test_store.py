"""The object store: apply/delete/label with the API server's rules."""

from __future__ import annotations

import pytest

from emu.cluster.store import Store, canonical_kind
from emu.config.loader import Collector, parse_manifest_docs
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


def dep(replicas: int) -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}},
        },
    }


@pytest.fixture
def store() -> Store:
    return Store(ClusterSpec("t", nodes=(NodeDecl("n1"),)))


def test_default_namespace_exists_with_name_label(store: Store) -> None:
    assert store.namespaces["default"].meta.labels == {NAMESPACE_NAME_LABEL: "default"}


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
    assert len(ch.create) == 2
    ch = store.apply(parsed(dep(3)))
    assert len(ch.create) == 1 and not ch.delete
    victim = ch.create[0]
    ch = store.delete("Pod", "default", victim.meta.name)
    assert ch.delete == [victim] and len(ch.create) == 1  # the controller replaces it
    ch = store.delete("Deployment", "default", "web")
    assert len(ch.delete) == 3 and not store.pods


def test_namespace_delete_takes_its_objects(store: Store) -> None:
    store.apply(parsed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "y"}}, pod("a", "y"), pod("b")))
    ch = store.delete("Namespace", "", "y")
    assert [p.key for p in ch.delete] == ["y/a"] and list(store.pods) == ["default/b"]
    with pytest.raises(NotFoundError):
        store.delete("Namespace", "", "y")


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
    with pytest.raises(ValidationError):
        canonical_kind("gizmo")
