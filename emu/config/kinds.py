"""Schemas and builders for the Kubernetes kinds kemu accepts (one entry per kind)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emu.config.schema import (
    AnyValue,
    Bool,
    Int,
    IntOrName,
    Labels,
    List,
    Obj,
    Report,
    Schema,
    Str,
    dns_label,
    dns_subdomain,
    join,
    label_key,
    label_value,
    port_name,
)
from emu.model.objects import (
    NAMESPACE_NAME_LABEL,
    Container,
    ContainerPort,
    Deployment,
    Meta,
    Namespace,
    Pod,
    PodSpec,
    Probe,
)
from emu.model.selectors import OPERATORS, LabelSelector, Requirement

# Kinds a later version will accept: named so the error says "not yet", not "unknown".
PLANNED_KINDS = {
    "Ingress": "networking.k8s.io/v1",
    "IngressClass": "networking.k8s.io/v1",
    "GatewayClass": "gateway.networking.k8s.io/v1",
    "Gateway": "gateway.networking.k8s.io/v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
}


def _expression_check(value: dict[str, Any], path: str, report: Report) -> None:
    op, values = value.get("operator"), value.get("values")
    if op in ("In", "NotIn") and not values:
        report(join(path, "values"), f"must be non-empty when operator is {op}")
    if op in ("Exists", "DoesNotExist") and values:
        report(join(path, "values"), f"must be empty when operator is {op}")


SELECTOR = Obj(
    {
        "matchLabels": Labels(),
        "matchExpressions": List(
            Obj(
                {
                    "key": Str(extra=label_key),
                    "operator": Str(choices=OPERATORS),
                    "values": List(Str(extra=label_value)),
                },
                required=("key", "operator"),
                check_extra=_expression_check,
            )
        ),
    }
)


def build_selector(raw: dict[str, Any] | None) -> LabelSelector:
    raw = raw or {}
    exprs = tuple(Requirement(e["key"], e["operator"], tuple(e.get("values") or ())) for e in raw.get("matchExpressions") or ())
    return LabelSelector(dict(raw.get("matchLabels") or {}), exprs)


def _meta_schema(namespaced: bool, name: Schema) -> Obj:
    fields: dict[str, Schema] = {"name": name, "labels": Labels(), "annotations": Labels(values_are_labels=False)}
    if namespaced:
        fields["namespace"] = dns_label()
    return Obj(fields, required=("name",))


def _probe_check(value: dict[str, Any], path: str, report: Report) -> None:
    handlers = [h for h in ("httpGet", "tcpSocket", "exec") if h in value]
    if len(handlers) != 1:
        report(path, "must specify exactly one handler: httpGet, tcpSocket or exec")


PROBE = Obj(
    {
        "httpGet": Obj(
            {"path": Str(), "port": IntOrName(), "scheme": Str(choices=("HTTP",)), "httpHeaders": AnyValue()},
            required=("port",),
            known_unsupported={"host": "probes always target the pod IP"},
        ),
        "tcpSocket": Obj({"port": IntOrName()}, required=("port",)),
        "exec": Obj({"command": List(Str(), min_items=1)}, required=("command",)),
        "initialDelaySeconds": Int(0),
        "periodSeconds": Int(1),
        "timeoutSeconds": Int(1),
        "successThreshold": Int(1),
        "failureThreshold": Int(1),
    },
    check_extra=_probe_check,
)


def _port_protocol(value: str, path: str, report: Report) -> None:
    if value == "SCTP":
        report(path, "SCTP is valid Kubernetes but this kernel has no SCTP sockets; use TCP or UDP")


CONTAINER = Obj(
    {
        "name": dns_label(),
        "image": AnyValue(),
        "imagePullPolicy": AnyValue(),
        "resources": AnyValue(),
        "livenessProbe": AnyValue(),
        "command": List(Str()),
        "args": List(Str()),
        "env": List(Obj({"name": Str(), "value": Str()}, required=("name",))),
        "workingDir": Str(),
        "ports": List(
            Obj(
                {
                    "containerPort": Int(1, 65535),
                    "protocol": Str(choices=("TCP", "UDP", "SCTP"), extra=_port_protocol),
                    "name": Str(extra=port_name),
                },
                required=("containerPort",),
                known_unsupported={"hostPort": "use a Service of type NodePort (coming with Services)"},
            )
        ),
        "readinessProbe": PROBE,
    },
    required=("name",),
)


def _pod_spec_check(value: dict[str, Any], path: str, report: Report) -> None:
    containers = value.get("containers")
    if not isinstance(containers, list):
        return
    names: set[str] = set()
    ports: set[tuple[int, str]] = set()
    port_names: set[str] = set()
    for i, c in enumerate(containers):
        if not isinstance(c, dict):
            continue
        cp = join(join(path, "containers"), i)
        if c.get("name") in names:
            report(join(cp, "name"), f"duplicate container name {c.get('name')!r}")
        names.add(str(c.get("name")))
        for j, p in enumerate(c.get("ports") or []):
            if not isinstance(p, dict):
                continue
            key = (p.get("containerPort"), p.get("protocol", "TCP"))
            pp = join(join(cp, "ports"), j)
            if key in ports:
                report(pp, f"duplicate port {key[0]}/{key[1]} in this pod (containers share the network namespace)")
            ports.add(key)  # type: ignore[arg-type]
            if p.get("name"):
                if p["name"] in port_names:
                    report(join(pp, "name"), f"duplicate port name {p['name']!r}")
                port_names.add(p["name"])
        probe = c.get("readinessProbe") or {}
        for h in ("httpGet", "tcpSocket"):
            port = (probe.get(h) or {}).get("port") if isinstance(probe, dict) else None
            if isinstance(port, str) and port not in {q.get("name") for q in c.get("ports") or [] if isinstance(q, dict)}:
                report(join(join(join(cp, "readinessProbe"), h), "port"), f"named port {port!r} is not a port of this container")


POD_SPEC = Obj(
    {
        "containers": List(CONTAINER, min_items=1),
        "nodeName": dns_subdomain(),
        "nodeSelector": Labels(),
        "restartPolicy": Str(choices=("Always", "OnFailure", "Never")),
        "terminationGracePeriodSeconds": Int(0),
    },
    required=("containers",),
    check_extra=_pod_spec_check,
    known_unsupported={"hostNetwork": "host-network pods are planned", "initContainers": "planned"},
)


def _base(kind_fields: dict[str, Schema], api_version: str, required: tuple[str, ...]) -> Obj:
    fields: dict[str, Schema] = {"apiVersion": Str(choices=(api_version,)), "kind": Str()}
    fields.update(kind_fields)
    return Obj(fields, required=("apiVersion", "kind", "metadata", *required))


def _deployment_check(value: dict[str, Any], path: str, report: Report) -> None:
    spec = value.get("spec")
    if not isinstance(spec, dict):
        return
    sel, tmpl = spec.get("selector"), spec.get("template")
    if not isinstance(sel, dict) or not isinstance(tmpl, dict):
        return
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    try:
        ok = build_selector(sel).matches(labels)
    except (TypeError, AttributeError, KeyError, ValueError):
        return  # the selector's own problems are already reported
    if not ok:
        report(join(path, "spec.template.metadata.labels"), "`selector` does not match template `labels`")


@dataclass(frozen=True)
class Kind:
    api_version: str
    schema: Obj
    build: Callable[[dict[str, Any]], Any]


def _meta(raw: dict[str, Any], namespaced: bool) -> Meta:
    m = raw["metadata"]
    return Meta(
        name=m["name"],
        namespace=(m.get("namespace") or "default") if namespaced else "",
        labels=dict(m.get("labels") or {}),
        annotations=dict(m.get("annotations") or {}),
    )


def build_probe(raw: dict[str, Any] | None) -> Probe | None:
    if not raw:
        return None
    common = {
        "initial_delay_seconds": raw.get("initialDelaySeconds", 0),
        "period_seconds": raw.get("periodSeconds", 10),
        "timeout_seconds": raw.get("timeoutSeconds", 1),
        "success_threshold": raw.get("successThreshold", 1),
        "failure_threshold": raw.get("failureThreshold", 3),
    }
    if "httpGet" in raw:
        h = raw["httpGet"]
        return Probe("httpGet", port=h["port"], path=h.get("path", "/"), **common)
    if "tcpSocket" in raw:
        return Probe("tcpSocket", port=raw["tcpSocket"]["port"], **common)
    return Probe("exec", command=tuple(raw["exec"]["command"]), **common)


def netexec_shutdown_delay(args: Any) -> int:
    """agnhost netexec's `--delay-shutdown=N`: keep serving N seconds after SIGTERM."""
    args = [str(a) for a in args]
    if "netexec" not in args:
        return 0
    for i, a in enumerate(args):
        if a.startswith("--delay-shutdown="):
            v = a.split("=", 1)[1]
        elif a == "--delay-shutdown" and i + 1 < len(args):
            v = args[i + 1]
        else:
            continue
        return int(v) if v.isdigit() else 0
    return 0


def build_pod_spec(raw: dict[str, Any]) -> PodSpec:
    containers = tuple(
        Container(
            name=c["name"],
            ports=tuple(ContainerPort(p["containerPort"], p.get("protocol", "TCP"), p.get("name", "")) for p in c.get("ports") or ()),
            command=tuple(c.get("command") or ()),
            args=tuple(c.get("args") or ()),
            readiness_probe=build_probe(c.get("readinessProbe")),
            shutdown_delay=netexec_shutdown_delay(c.get("args") or ()),
        )
        for c in raw["containers"]
    )
    return PodSpec(
        containers,
        raw.get("nodeName", ""),
        dict(raw.get("nodeSelector") or {}),
        raw.get("terminationGracePeriodSeconds", 30),
    )


def _build_namespace(raw: dict[str, Any]) -> Namespace:
    meta = _meta(raw, namespaced=False)
    # The API server always sets this label to the namespace's name.
    meta.labels[NAMESPACE_NAME_LABEL] = meta.name
    return Namespace(meta)


def _build_pod(raw: dict[str, Any]) -> Pod:
    return Pod(_meta(raw, namespaced=True), build_pod_spec(raw["spec"]))


def _build_deployment(raw: dict[str, Any]) -> Deployment:
    spec = raw["spec"]
    tmpl = spec["template"]
    return Deployment(
        meta=_meta(raw, namespaced=True),
        replicas=spec.get("replicas", 1),
        selector=build_selector(spec["selector"]),
        template_labels=dict((tmpl.get("metadata") or {}).get("labels") or {}),
        template_spec=build_pod_spec(tmpl["spec"]),
    )


KINDS: dict[str, Kind] = {
    "Namespace": Kind(
        "v1",
        _base({"metadata": _meta_schema(False, dns_label()), "spec": AnyValue(), "status": AnyValue()}, "v1", ()),
        _build_namespace,
    ),
    "Pod": Kind(
        "v1",
        _base({"metadata": _meta_schema(True, dns_subdomain()), "spec": POD_SPEC, "status": AnyValue()}, "v1", ("spec",)),
        _build_pod,
    ),
    "Deployment": Kind(
        "apps/v1",
        Obj(
            {
                "apiVersion": Str(choices=("apps/v1",)),
                "kind": Str(),
                "metadata": _meta_schema(True, dns_subdomain()),
                "status": AnyValue(),
                "spec": Obj(
                    {
                        "replicas": Int(0, 10000),
                        "selector": SELECTOR,
                        "template": Obj(
                            {
                                "metadata": Obj({"labels": Labels(), "annotations": Labels(values_are_labels=False)}),
                                "spec": POD_SPEC,
                            },
                            required=("spec",),
                        ),
                        "strategy": AnyValue(),
                        "minReadySeconds": Int(0),
                        "revisionHistoryLimit": Int(0),
                    },
                    required=("selector", "template"),
                ),
            },
            required=("apiVersion", "kind", "metadata", "spec"),
            check_extra=_deployment_check,
        ),
        _build_deployment,
    ),
}


def _register_service_kinds() -> None:
    from emu.config.kinds_services import ENDPOINT_SLICE, SERVICE, build_endpoint_slice, build_service

    KINDS["Service"] = Kind("v1", SERVICE, build_service)
    KINDS["EndpointSlice"] = Kind("discovery.k8s.io/v1", ENDPOINT_SLICE, build_endpoint_slice)
    from emu.config.kinds_policy import NETWORK_POLICY, build_network_policy

    KINDS["NetworkPolicy"] = Kind("networking.k8s.io/v1", NETWORK_POLICY, build_network_policy)


_register_service_kinds()


def kind_problem(kind: Any) -> str | None:
    """None if `kind` is accepted, else what to tell the user."""
    if kind in KINDS:
        return None
    allowed = ", ".join(KINDS)
    if kind in PLANNED_KINDS:
        return f"kind {kind} is not supported by this version of kemu yet; supported kinds: {allowed}"
    return f"unknown kind {kind!r}; supported kinds: {allowed}"


# Used by the Cluster schema.
BOOL = Bool()
