"""A container's environment as the kubelet resolves it (pure, table-driven)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from emu.workloads.env import container_env, expand, parse_quantity, valid_env_name

pytestmark = pytest.mark.unit

POD: dict[str, Any] = {
    "metadata": {
        "name": "web-1",
        "namespace": "shop",
        "uid": "1234-abcd",
        "labels": {"app": "web", "tier": "front"},
        "annotations": {"note": 'say "hi"'},
    },
    "spec": {"nodeName": "", "containers": [{"name": "app", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]},
}
CONFIGMAPS = {("shop", "cfg"): {"MODE": "fast", "LEVEL": "3", "bad=key": "x", "dotted.key": "ok"}, ("other", "cfg"): {"MODE": "wrong-ns"}}
SECRETS = {("shop", "creds"): {"USER": "admin", "PASS": "s3cret"}}


def resolve(container: dict[str, Any], pod: dict[str, Any] = POD) -> tuple[dict[str, str], list[str]]:
    return container_env(
        {"name": "app", **container},
        pod,
        pod_ip="10.244.1.7",
        host_ip="172.30.0.3",
        node_name="node-2",
        configmaps=CONFIGMAPS,
        secrets=SECRETS,
    )


def field(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


@pytest.mark.parametrize(
    "text, env, want",
    [
        ("plain", {}, "plain"),
        ("$(A)-$(B)", {"A": "1", "B": "2"}, "1-2"),
        ("$(MISSING)", {}, "$(MISSING)"),  # undefined: kept as written
        ("$$(A)", {"A": "1"}, "$(A)"),  # $$ escapes
        ("$$$(A)", {"A": "1"}, "$1"),
        ("cost: $5", {}, "cost: $5"),  # a $ starting nothing stays
        ("trailing $", {}, "trailing $"),
        ("$(A", {"A": "1"}, "$(A"),  # unclosed reference
        ("$()", {}, "$()"),
        ("$(A)$(A)", {"A": "x"}, "xx"),
    ],
)
def test_expand(text: str, env: dict[str, str], want: str) -> None:
    assert expand(text, env) == want


FIELDS = [
    ("metadata.name", "web-1"),
    ("metadata.namespace", "shop"),
    ("metadata.uid", "1234-abcd"),
    ("metadata.labels['app']", "web"),
    ("metadata.labels['nope']", ""),
    ("metadata.annotations['note']", 'say "hi"'),
    ("metadata.labels", 'app="web"\ntier="front"'),
    ("metadata.annotations", 'note="say \\"hi\\""'),
    ("spec.nodeName", "node-2"),
    ("spec.serviceAccountName", "default"),
    ("status.podIP", "10.244.1.7"),
    ("status.podIPs", "10.244.1.7"),
    ("status.hostIP", "172.30.0.3"),
    ("status.hostIPs", "172.30.0.3"),
]


@pytest.mark.parametrize(
    "container, want_env, want_problems",
    [
        ({}, {}, []),
        (
            {
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "value": "$(A)2"},
                    {"name": "C", "value": "$(D)"},
                    {"name": "D", "value": "4"},
                ]
            },
            {"A": "1", "B": "12", "C": "$(D)", "D": "4"},
            [],
        ),  # only earlier variables expand
        ({"env": [{"name": "E"}, {"name": "F", "value": ""}]}, {"E": "", "F": ""}, []),
    ]
    + [({"env": [{"name": "N", **field(path)}]}, {"N": value}, []) for path, value in FIELDS]
    + [
        ({"env": [{"name": "X", **field("spec.hostname")}]}, {}, ["env X: unsupported fieldPath: spec.hostname"]),
        ({"env": [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}}]}, {"M": "fast"}, []),
        ({"env": [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "MODE"}}}]}, {}, ['configmap "nope" not found']),
        (
            {"env": [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "NOPE"}}}]},
            {},
            ['key "NOPE" not found in configmap "cfg"'],
        ),
        ({"env": [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "K", "optional": True}}}]}, {}, []),
        ({"env": [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "NOPE", "optional": True}}}]}, {}, []),
        ({"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASS"}}}]}, {"P": "s3cret"}, []),
        ({"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "PASS"}}}]}, {}, ['secret "gone" not found']),
        (
            {"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "X"}}}]},
            {},
            ['key "X" not found in secret "creds"'],
        ),
        # a value from a reference is not expanded
        ({"env": [{"name": "A", "value": "1"}, {"name": "L", **field("metadata.annotations['note']")}]}, {"A": "1", "L": 'say "hi"'}, []),
        # envFrom: every valid key (relaxed names: dots are fine, '=' is not), with a prefix
        ({"envFrom": [{"configMapRef": {"name": "cfg"}}]}, {"MODE": "fast", "LEVEL": "3", "dotted.key": "ok"}, []),
        (
            {"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}]},
            {"CFG_MODE": "fast", "CFG_LEVEL": "3", "CFG_dotted.key": "ok", "USER": "admin", "PASS": "s3cret"},
            [],
        ),
        (
            {"envFrom": [{"configMapRef": {"name": "nope"}}, {"secretRef": {"name": "gone", "optional": True}}]},
            {},
            ['configmap "nope" not found'],
        ),
        # env overrides envFrom, and sees it when expanding
        (
            {"envFrom": [{"configMapRef": {"name": "cfg"}}], "env": [{"name": "MODE", "value": "slow-$(LEVEL)"}]},
            {"MODE": "slow-3", "LEVEL": "3", "dotted.key": "ok"},
            [],
        ),
        # a later envFrom source overrides an earlier one
        (
            {"envFrom": [{"secretRef": {"name": "creds"}}, {"configMapRef": {"name": "cfg"}, "prefix": "US"}]},
            {"USER": "admin", "PASS": "s3cret", "USMODE": "fast", "USLEVEL": "3", "USdotted.key": "ok"},
            [],
        ),
        # every problem is reported, not only the first
        (
            {
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "y", "key": "k"}}},
                ]
            },
            {},
            ['configmap "x" not found', 'secret "y" not found'],
        ),
    ],
)
def test_container_env(container: dict[str, Any], want_env: dict[str, str], want_problems: list[str]) -> None:
    env, problems = resolve(container)
    assert env == want_env
    assert problems == want_problems


def test_namespace_of_references_is_the_pods() -> None:
    pod = {**POD, "metadata": {**POD["metadata"], "namespace": "other"}}
    env, problems = resolve({"env": [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}}]}, pod)
    assert env == {"M": "wrong-ns"} and problems == []


def test_node_name_falls_back_to_spec_and_service_account_to_spec() -> None:
    pod = {**POD, "spec": {**POD["spec"], "nodeName": "node-9", "serviceAccountName": "robot"}}
    env, _ = container_env(
        {"name": "app", "env": [{"name": "N", **field("spec.nodeName")}, {"name": "S", **field("spec.serviceAccountName")}]},
        pod,
        pod_ip="",
        host_ip="",
        node_name="",
        configmaps={},
        secrets={},
    )
    assert env == {"N": "node-9", "S": "robot"}


@pytest.mark.parametrize(
    "ref, container, want",
    [
        ({"resource": "limits.cpu"}, None, "1"),  # ceil(0.5 / 1)
        ({"resource": "limits.cpu", "divisor": "1m"}, None, "500"),
        ({"resource": "limits.memory"}, None, "67108864"),
        ({"resource": "limits.memory", "divisor": "1Mi"}, None, "64"),
        ({"resource": "requests.memory", "divisor": "1Mi"}, None, "64"),  # request defaults to the limit
        ({"resource": "requests.cpu", "divisor": "1m"}, {"resources": {"requests": {"cpu": "250m"}}}, "250"),
        ({"resource": "limits.cpu"}, {}, "0"),  # no limit: 0 here (the kubelet: node allocatable)
        ({"resource": "limits.memory", "containerName": "app", "divisor": "1Mi"}, {}, "64"),  # another container's
    ],
)
def test_resource_field_ref(ref: dict[str, Any], container: dict[str, Any] | None, want: str) -> None:
    c = POD["spec"]["containers"][0] if container is None else container
    env, problems = resolve({**c, "env": [{"name": "R", "valueFrom": {"resourceFieldRef": ref}}]})
    assert problems == [] and env == {"R": want}


@pytest.mark.parametrize(
    "q, want",
    [("1", 1), ("500m", Fraction(1, 2)), ("64Mi", 64 * 2**20), ("1k", 1000), ("1e3", 1000), ("1E", 10**18), ("0.5Gi", 2**29), (2, 2)],
)
def test_parse_quantity(q: Any, want: Fraction) -> None:
    assert parse_quantity(q) == want


@pytest.mark.parametrize("q", ["", "abc", "1x", "1e", "--1"])
def test_parse_quantity_rejects(q: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(q)


@pytest.mark.parametrize(
    "name, ok",
    [("A", True), ("my.var-1", True), ("1abc", True), ("with space", True), ("a=b", False), ("", False), ("é", False), ("tab\t", False)],
)
def test_valid_env_name(name: str, ok: bool) -> None:
    assert valid_env_name(name) is ok
