"""Strict structural validation against the Kubernetes OpenAPI schemas (emu.config.openapi)."""

from __future__ import annotations

import copy
import datetime
import os
import random
import subprocess
import sys
import threading
from typing import Any

import pytest

from emu.config import openapi

pytestmark = pytest.mark.unit

Obj = dict[str, Any]
DIGEST = "sha256:" + "0123456789abcdef" * 4


def helm_deployment() -> Obj:
    """What `helm template` makes of a typical chart."""
    labels = {
        "app.kubernetes.io/name": "web",
        "app.kubernetes.io/instance": "rel",
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": "web-1.2.3",
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "rel-web", "namespace": "shop", "labels": labels, "annotations": {"meta.helm.sh/release-name": "rel"}},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "rel"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {"checksum/config": "e3b0c442"}},
                "spec": {
                    "serviceAccountName": "rel-web",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "fsGroup": 2000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}
                                ]
                            }
                        },
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "topologyKey": "kubernetes.io/hostname",
                                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
                                    },
                                }
                            ]
                        },
                    },
                    "tolerations": [
                        {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    ],
                    "initContainers": [
                        {"name": "migrate", "image": f"registry.example.com/web-migrate@{DIGEST}", "command": ["/migrate", "--up"]},
                    ],
                    "containers": [
                        {
                            "name": "web",
                            "image": f"registry.example.com/web:1.2.3@{DIGEST}",
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["--listen=:8080"],
                            "ports": [
                                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                {"name": "grpc", "containerPort": 9000},
                            ],
                            "env": [
                                {"name": "LOG_LEVEL", "value": "info"},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "rel-web", "key": "mode", "optional": True}}},
                                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "rel-db", "key": "password"}}},
                                {"name": "EMPTY", "value": None},
                            ],
                            "envFrom": [{"configMapRef": {"name": "rel-web"}}, {"secretRef": {"name": "rel-web"}, "prefix": "SECRET_"}],
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "256Mi"}},
                            "startupProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "failureThreshold": 30, "periodSeconds": 2},
                            "readinessProbe": {"grpc": {"port": 9000, "service": "web"}, "periodSeconds": 5},
                            "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 10},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/web", "readOnly": True},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "rel-web", "items": [{"key": "app.yaml", "path": "app.yaml"}]}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        {"name": "certs", "secret": {"secretName": "rel-web-tls", "defaultMode": 0o400}},
                    ],
                },
            },
        },
    }


POD_TEMPLATE: Obj = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}

CLEAN: list[Obj] = [
    {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 3,
            "selector": {"matchLabels": {"app": "a"}},
            "template": POD_TEMPLATE,
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
            ],
        },
    },
    {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": POD_TEMPLATE,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        },
    },
    {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {
            "backoffLimit": 2,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}},
        },
    },
    {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "0 3 * * *",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}
            },
        },
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"a": "1", "app.yaml": "x: 1\n"},
        "binaryData": {"b": "AAEC"},
    },
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "type": "Opaque",
        "data": {"password": "cGFzcw=="},
        "stringData": {"user": "admin"},
    },
    {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "sa"},
        "automountServiceAccountToken": False,
        "imagePullSecrets": [{"name": "reg"}],
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
            "rules": [
                {
                    "host": "web.example.com",
                    "http": {
                        "paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]
                    },
                }
            ],
        },
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "k8s.io/ingress-nginx"},
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "np"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "a"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}, "podSelector": {}}],
                    "ports": [{"port": "http"}, {"port": 8000, "endPort": 8100}],
                }
            ],
            "egress": [
                {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [{"protocol": "UDP", "port": 53}]}
            ],
        },
    },
    {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "pdb"},
        "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "a"}}},
    },
    {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list", "watch"]}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}],
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "a"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080}],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}]},
    },
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web", "labels": {"team": "x"}}},
]


def test_helm_deployment_is_clean() -> None:
    assert openapi.structural_problems(helm_deployment()) == []


@pytest.mark.parametrize("obj", CLEAN, ids=[o["kind"] for o in CLEAN])
def test_common_kinds_are_clean(obj: Obj) -> None:
    assert openapi.structural_problems(obj) == []


DELETE = object()


def _with(obj: Obj, path: str, value: Any = DELETE) -> Obj:
    """A copy of `obj` with `value` at a dotted path (`containers.0` indexes a list), or without it."""
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return out


POD = "spec.template.spec"
C0 = f"{POD}.containers.0"

BAD: list[tuple[str, Obj, list[tuple[str, str]]]] = [
    (
        "typo at depth",
        _with(helm_deployment(), f"{C0}.imagePullPolicyy", "Always"),
        [("spec.template.spec.containers[0].imagePullPolicyy", 'unknown field "imagePullPolicyy"')],
    ),
    (
        "string for integer",
        _with(helm_deployment(), "spec.replicas", "3"),
        [("spec.replicas", 'Invalid value: "3": expected integer, got string')],
    ),
    (
        "string for list",
        _with(helm_deployment(), f"{C0}.args", "--listen=:8080"),
        [("spec.template.spec.containers[0].args", 'Invalid value: "--listen=:8080": expected array, got string')],
    ),
    (
        "mapping for list",
        _with(helm_deployment(), f"{POD}.tolerations", {"key": "a"}),
        [("spec.template.spec.tolerations", 'Invalid value: {"key": "a"}: expected array, got object')],
    ),
    (
        "list item of the wrong type",
        _with(helm_deployment(), f"{C0}.ports.1", 9000),
        [("spec.template.spec.containers[0].ports[1]", "Invalid value: 9000: expected object, got integer")],
    ),
    ("container without a name", _with(helm_deployment(), f"{C0}.name"), [("spec.template.spec.containers[0].name", "Required value")]),
    (
        "container with a null name",
        _with(helm_deployment(), f"{C0}.name", None),
        [("spec.template.spec.containers[0].name", "Required value")],
    ),
    ("Deployment without spec.selector", _with(helm_deployment(), "spec.selector"), [("spec.selector", "Required value")]),
    ("Deployment without spec", _with(helm_deployment(), "spec"), [("spec", "Required value")]),
    ("unknown top-level field", _with(helm_deployment(), "extra", {"a": 1}), [("extra", 'unknown field "extra"')]),
    ("unknown field in metadata", _with(helm_deployment(), "metadata.label", {"a": "b"}), [("metadata.label", 'unknown field "label"')]),
    (
        "label value not a string",
        _with(helm_deployment(), "metadata.labels.replicas", 3),
        [("metadata.labels.replicas", "Invalid value: 3: expected string, got integer")],
    ),
    (
        "int-or-string given a list",
        _with(helm_deployment(), f"{C0}.startupProbe.httpGet.port", [8080]),
        [
            (
                "spec.template.spec.containers[0].startupProbe.httpGet.port",
                "Invalid value: [8080]: expected an integer or a string, got array",
            )
        ],
    ),
    (
        "quantity given a boolean",
        _with(helm_deployment(), f"{C0}.resources.limits.cpu", True),
        [("spec.template.spec.containers[0].resources.limits.cpu", "Invalid value: true: expected a number or a string, got boolean")],
    ),
    (
        "boolean given a string",
        _with(helm_deployment(), f"{POD}.automountServiceAccountToken", "false"),
        [("spec.template.spec.automountServiceAccountToken", 'Invalid value: "false": expected boolean, got string')],
    ),
    (
        "grpc probe without its port",
        _with(helm_deployment(), f"{C0}.readinessProbe.grpc.port"),
        [("spec.template.spec.containers[0].readinessProbe.grpc.port", "Required value")],
    ),
    (
        "typo in an init container",
        _with(helm_deployment(), f"{POD}.initContainers.0.comand", ["x"]),
        [("spec.template.spec.initContainers[0].comand", 'unknown field "comand"')],
    ),
    (
        "wrong apiVersion for the kind",
        _with(helm_deployment(), "apiVersion", "apps/v1beta1"),
        [("kind", 'no matches for kind "Deployment" in version "apps/v1beta1"')],
    ),
    (
        "unknown kind",
        {"apiVersion": "v9", "kind": "Foo", "metadata": {"name": "x"}},
        [("kind", 'no matches for kind "Foo" in version "v9"')],
    ),
    (
        "kind in the wrong case",
        {"apiVersion": "v1", "kind": "configmap", "metadata": {"name": "x"}},
        [("kind", 'no matches for kind "configmap" in version "v1"')],
    ),
    ("no kind", {"apiVersion": "v1", "metadata": {"name": "x"}}, [("kind", "Required value")]),
    ("apiVersion not a string", {"apiVersion": 1, "kind": "Pod"}, [("apiVersion", "Invalid value: 1: expected string, got integer")]),
    ("not a mapping", ["a"], [("", 'Invalid value: ["a"]: expected object, got array')]),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("name", "obj", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_manifests(name: str, obj: Obj, expected: list[tuple[str, str]]) -> None:
    assert openapi.structural_problems(obj) == expected


def test_service_type_has_no_enum_in_the_schema() -> None:
    # The published schemas carry no enums (ServiceSpec.type included): a bad type is the
    # Service validation's business, not the structural check's.
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "Foo"}}
    assert openapi.structural_problems(svc) == []


def test_nulls_are_accepted_where_the_schema_allows_them() -> None:
    obj = helm_deployment()
    obj["spec"]["replicas"] = None
    obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = None  # int-or-string: null in every branch
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = None
    obj["metadata"]["annotations"] = None
    assert openapi.structural_problems(obj) == []


def test_yaml_dates_are_strings_as_for_kubectl() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "creationTimestamp": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)},
        "data": {"since": datetime.date(2024, 1, 2)},
    }
    assert openapi.structural_problems(cm) == []
    dep = _with(helm_deployment(), "spec.replicas", datetime.date(2024, 1, 2))
    assert openapi.structural_problems(dep) == [("spec.replicas", 'Invalid value: "2024-01-02": expected integer, got string')]


def test_all_problems_at_once_sorted_by_path() -> None:
    obj = helm_deployment()
    spec = obj["spec"]
    spec["replicas"] = "3"
    spec["template"]["spec"]["containers"][0]["prots"] = [{"containerPort": 80}]
    del spec["template"]["spec"]["containers"][0]["name"]
    assert openapi.structural_problems(obj) == [
        ("spec.replicas", 'Invalid value: "3": expected integer, got string'),
        ("spec.template.spec.containers[0].name", "Required value"),
        ("spec.template.spec.containers[0].prots", 'unknown field "prots"'),
    ]


def test_several_unknown_fields_in_one_object_are_each_reported() -> None:
    obj = _with(_with(helm_deployment(), "metadata.nam", "x"), "metadata.lables", {})
    assert openapi.structural_problems(obj) == [("metadata.lables", 'unknown field "lables"'), ("metadata.nam", 'unknown field "nam"')]


def test_list_indexes_sort_numerically() -> None:
    obj = helm_deployment()
    containers = obj["spec"]["template"]["spec"]["containers"]
    for i in range(11):
        containers.append(
            {"name": f"c{i}", "image": "x", "imagePullPolicyy": "Always"} if i in (1, 10) else {"name": f"c{i}", "image": "x"}
        )
    paths = [path for path, _ in openapi.structural_problems(obj)]
    assert paths == ["spec.template.spec.containers[2].imagePullPolicyy", "spec.template.spec.containers[11].imagePullPolicyy"]


def test_cached_results_are_copies() -> None:
    obj = _with(helm_deployment(), "spec.replicas", "3")
    first = openapi.structural_problems(obj)
    first.clear()
    assert openapi.structural_problems(copy.deepcopy(obj)) == [("spec.replicas", 'Invalid value: "3": expected integer, got string')]


def test_recursive_schema_crd() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer", "maximun": 3}}}},
                        }
                    },
                }
            ],
        },
    }
    assert openapi.structural_problems(crd) == [
        ("spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.size.maximun", 'unknown field "maximun"')
    ]


def _mutants(obj: Obj, rng: random.Random, count: int) -> list[Obj]:
    """`obj` with one random node retyped, nulled, removed, or given an unknown sibling."""

    def nodes(node: Any, path: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        found = [path]
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            found += nodes(child, (*path, key))
        return found

    paths = [p for p in nodes(obj, ()) if len(p) > 1 and p[0] not in ("apiVersion", "kind")]
    out = []
    for _ in range(count):
        mutant = copy.deepcopy(obj)
        path = rng.choice(paths)
        parent = mutant
        for key in path[:-1]:
            parent = parent[key]
        how = rng.choice(["retype", "null", "delete", "unknown"])
        if how == "retype":
            parent[path[-1]] = rng.choice(["x", 7, 1.5, True, [], {}, ["x"], {"a": 1}])
        elif how == "null":
            parent[path[-1]] = None
        elif how == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[path[-1] + "x"] = 1
        out.append(mutant)
    return out


def test_same_verdicts_as_plain_jsonschema() -> None:
    """Resolving references ahead and the leaf short cuts change nothing: compare with jsonschema
    run as kubernetes-validate runs it (the schema file, its $refs through a registry)."""
    import json

    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    state = openapi._loaded()
    with open(os.path.join(state.dir, "_definitions.json"), encoding="utf-8") as f:
        definitions = Resource.from_contents(json.load(f))
    rng = random.Random(7)
    corpus = [helm_deployment(), *CLEAN]
    corpus += [m for obj in corpus for m in _mutants(obj, rng, 15)]
    invalid = 0
    for obj in corpus:
        with open(os.path.join(state.dir, state.files[(obj["apiVersion"], obj["kind"])]), encoding="utf-8") as f:
            schema = json.load(f)
        reference = Draft202012Validator(schema, registry=definitions @ (Resource.from_contents(schema) @ Registry()))
        expected = openapi._collect(obj, reference.iter_errors(obj))
        assert openapi.structural_problems(obj) == expected, obj
        invalid += bool(expected)
    assert invalid > len(corpus) // 3  # the mutants do break things


def test_kinds_and_versions() -> None:
    kinds = openapi.builtin_kinds()
    for kind, version in [
        ("Deployment", "apps/v1"),
        ("Pod", "v1"),
        ("Service", "v1"),
        ("NetworkPolicy", "networking.k8s.io/v1"),
        ("EndpointSlice", "discovery.k8s.io/v1"),
        ("CustomResourceDefinition", "apiextensions.k8s.io/v1"),
        ("StorageVersion", "internal.apiserver.k8s.io/v1alpha1"),  # its file is named after the Go package
    ]:
        assert version in kinds[kind]
        assert openapi.has_schema(version, kind)
    assert not any(kind.endswith("List") for kind in kinds)
    for not_an_object in ("DeleteOptions", "WatchEvent", "Status", "APIGroup", "ObjectMeta", "Container", "PodSpec"):
        assert not_an_object not in kinds
    assert openapi.known_versions("Deployment") == ["apps/v1"]
    assert openapi.known_versions("HorizontalPodAutoscaler") == ["autoscaling/v2", "autoscaling/v1"]
    assert openapi.known_versions("Event") == ["v1", "events.k8s.io/v1"]
    assert openapi.known_versions("Foo") == []
    assert not openapi.has_schema("apps/v1beta1", "Deployment")
    assert not openapi.has_schema("v1", "Foo")
    # apiVersion -> file is by exact group, not by the group's first label (kubernetes-validate's guess)
    assert not openapi.has_schema("apps.example.com/v1", "Deployment")


def test_thread_safe_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openapi, "_state", None)
    results: list[list[tuple[str, str]]] = []

    def work() -> None:
        results.append(openapi.structural_problems(_with(helm_deployment(), "spec.replicas", "3")))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[("spec.replicas", 'Invalid value: "3": expected integer, got string')]] * 4


def test_import_is_cheap() -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('openapi', {openapi.__file__!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "assert not {'jsonschema', 'referencing', 'kubernetes_validate'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
