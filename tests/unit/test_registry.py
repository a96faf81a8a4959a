"""The one registry of kinds: names users type, and agreement with the OpenAPI schemas."""

from __future__ import annotations

import pytest

from emu.config import crds, openapi, registry
from emu.errors import ValidationError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("word", "kind"),
    [("po", "Pod"), ("pods", "Pod"), ("svc", "Service"), ("deploy", "Deployment"), ("deployments.apps", "Deployment"),
     ("sts", "StatefulSet"), ("ds", "DaemonSet"), ("rs", "ReplicaSet"), ("cm", "ConfigMap"), ("ns", "Namespace"),
     ("no", "Node"), ("netpol", "NetworkPolicy"), ("ep", "Endpoints"), ("sa", "ServiceAccount"), ("ing", "Ingress"),
     ("Job", "Job"), ("hpa", "HorizontalPodAutoscaler"), ("endpointslices", "EndpointSlice")],
)  # fmt: skip
def test_kubectl_names_resolve(word: str, kind: str) -> None:
    assert registry.canonical_kind(word) == kind


def test_unknown_names_are_refused_as_kubectl_does() -> None:
    with pytest.raises(ValidationError, match="doesn't have a resource type"):
        registry.resolve("frobs")


def test_every_registered_kind_has_a_schema_for_its_version() -> None:
    missing = [
        k.kind
        for k in registry.KINDS
        if not k.kemu_only and not openapi.has_schema(k.api_version, k.kind) and not crds.has_crd(k.api_version, k.kind)
    ]
    assert not missing, missing


def test_the_gateway_api_kinds_are_registered_as_their_crds_name_them() -> None:
    for kind, names in crds.crd_kinds().items():
        info = registry.info(kind)
        assert info is not None, kind
        assert (info.group, info.plural, info.namespaced, info.short) == (
            names.group,
            names.plural,
            names.namespaced,
            tuple(names.short_names),
        )
        assert info.api_version == crds.crd_versions(kind)[0]


def test_namespaced_or_not() -> None:
    assert registry.is_namespaced("Pod") and registry.is_namespaced("ConfigMap")
    assert not registry.is_namespaced("Namespace") and not registry.is_namespaced("ClusterRole") and not registry.is_namespaced("Node")
