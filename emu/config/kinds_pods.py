"""The pod spec: kemu's checks beyond the OpenAPI schema (the API server's validation) and
the builder of the frozen model. Only fields with network meaning are listed here; the
others are accepted (the OpenAPI schema checked their structure) and reported by
`kemu validate` as having no effect."""

from __future__ import annotations

from typing import Any, TypedDict

from emu.config.schema import (
    AnyValue,
    Bool,
    Int,
    IntOrName,
    Labels,
    List,
    Obj,
    Report,
    Str,
    dns_label,
    dns_subdomain,
    join,
    port_name,
)
from emu.config.selectors import SELECTOR, build_selector
from emu.model.objects import (
    Container,
    ContainerPort,
    NodeSelectorRequirement,
    PodAffinityTerm,
    PodSpec,
    Probe,
    Toleration,
)
from emu.model.selectors import LabelSelector, Requirement

PROBE_HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")


def _probe_check(value: dict[str, Any], path: str, report: Report) -> None:
    handlers = [h for h in PROBE_HANDLERS if value.get(h) is not None]
    if len(handlers) != 1:
        report(path, "must specify exactly one handler: httpGet, tcpSocket, exec or grpc")


PROBE = Obj(
    {
        "httpGet": Obj(
            {"path": Str(), "port": IntOrName(), "host": Str(), "scheme": Str(choices=("HTTP", "HTTPS")), "httpHeaders": AnyValue()},
            required=("port",),
        ),
        "tcpSocket": Obj({"port": IntOrName(), "host": Str()}, required=("port",)),
        "exec": Obj({"command": List(Str(), min_items=1)}, required=("command",)),
        "grpc": Obj({"port": Int(1, 65535), "service": Str()}, required=("port",)),
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


def _container(init: bool) -> Obj:
    fields = {
        "name": dns_label(),
        "image": AnyValue(),
        "command": List(Str()),
        "args": List(Str()),
        "env": AnyValue(),  # resolved when the container starts (workloads/env.py)
        "envFrom": AnyValue(),
        "workingDir": Str(),
        "ports": List(
            Obj(
                {
                    "containerPort": Int(1, 65535),
                    "protocol": Str(choices=("TCP", "UDP", "SCTP"), extra=_port_protocol),
                    "name": Str(extra=port_name),
                    "hostPort": Int(1, 65535),
                    "hostIP": Str(),
                },
                required=("containerPort",),
            )
        ),
    }
    if not init:
        fields |= {"readinessProbe": PROBE, "livenessProbe": PROBE, "startupProbe": PROBE}
    return Obj(fields, required=("name",))


CONTAINER = _container(False)
INIT_CONTAINER = _container(True)
NODE_TERM = Obj({"matchExpressions": AnyValue(), "matchFields": AnyValue()})
AFFINITY_TERM = Obj(
    {"labelSelector": SELECTOR, "topologyKey": Str(), "namespaces": List(Str()), "namespaceSelector": SELECTOR},
    required=("topologyKey",),
)


def _named_ports(c: dict[str, Any]) -> set[str]:
    return {q["name"] for q in c.get("ports") or [] if isinstance(q, dict) and q.get("name")}


def _pod_spec_check(value: dict[str, Any], path: str, report: Report) -> None:
    names: set[str] = set()
    ports: set[tuple[Any, Any]] = set()
    port_names: set[str] = set()
    for field in ("initContainers", "containers"):
        containers = value.get(field)
        if not isinstance(containers, list):
            continue
        for i, c in enumerate(containers):
            if not isinstance(c, dict):
                continue
            cp = join(join(path, field), i)
            if c.get("name") in names:
                report(join(cp, "name"), f"Duplicate value: {c.get('name')!r}")
            names.add(str(c.get("name")))
            for j, p in enumerate(c.get("ports") or []):
                if not isinstance(p, dict):
                    continue
                key = (p.get("containerPort"), p.get("protocol", "TCP"))
                pp = join(join(cp, "ports"), j)
                if field == "containers" and key in ports:
                    report(pp, f"duplicate port {key[0]}/{key[1]} in this pod (containers share the network namespace)")
                ports.add(key)
                if p.get("name"):
                    if p["name"] in port_names:
                        report(join(pp, "name"), f"Duplicate value: {p['name']!r}")
                    port_names.add(p["name"])
                if value.get("hostNetwork") and p.get("hostPort") not in (None, p.get("containerPort")):
                    report(join(pp, "hostPort"), "Invalid value: must match `containerPort` when `hostNetwork` is true")
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = c.get(probe_name)
                if not isinstance(probe, dict):
                    continue
                for h in ("httpGet", "tcpSocket"):
                    port = (probe.get(h) or {}).get("port")
                    if isinstance(port, str) and port not in _named_ports(c):
                        report(join(join(join(cp, probe_name), h), "port"), f"named port {port!r} is not a port of this container")
    if value.get("hostNetwork") and value.get("dnsPolicy") == "ClusterFirst":
        pass  # allowed: such a pod falls back to the node's resolver (as the kubelet does)


POD_SPEC = Obj(
    {
        "containers": List(CONTAINER, min_items=1),
        "initContainers": List(INIT_CONTAINER),
        "nodeName": dns_subdomain(),
        "nodeSelector": Labels(),
        "restartPolicy": Str(choices=("Always", "OnFailure", "Never")),
        "terminationGracePeriodSeconds": Int(0),
        "hostNetwork": Bool(),
        "hostname": dns_label(),
        "subdomain": dns_label(),
        "dnsPolicy": Str(choices=("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")),
        "dnsConfig": AnyValue(),  # used by the cluster DNS
        "hostAliases": AnyValue(),
        "serviceAccountName": AnyValue(),
        "serviceAccount": AnyValue(),
        "tolerations": AnyValue(),
        "affinity": Obj(
            {
                "nodeAffinity": Obj({"requiredDuringSchedulingIgnoredDuringExecution": Obj({"nodeSelectorTerms": List(NODE_TERM)})}),
                "podAffinity": Obj({"requiredDuringSchedulingIgnoredDuringExecution": List(AFFINITY_TERM)}),
                "podAntiAffinity": Obj({"requiredDuringSchedulingIgnoredDuringExecution": List(AFFINITY_TERM)}),
            }
        ),
    },
    required=("containers",),
    check_extra=_pod_spec_check,
)


class _ProbeTiming(TypedDict):
    """The fields every probe handler shares (Probe's keyword arguments)."""

    initial_delay_seconds: int
    period_seconds: int
    timeout_seconds: int
    success_threshold: int
    failure_threshold: int


def build_probe(raw: dict[str, Any] | None) -> Probe | None:
    if not raw:
        return None
    common: _ProbeTiming = {
        "initial_delay_seconds": raw.get("initialDelaySeconds") or 0,
        "period_seconds": raw.get("periodSeconds") or 10,
        "timeout_seconds": raw.get("timeoutSeconds") or 1,
        "success_threshold": raw.get("successThreshold") or 1,
        "failure_threshold": raw.get("failureThreshold") or 3,
    }
    if raw.get("httpGet") is not None:
        h = raw["httpGet"]
        headers = tuple((str(x.get("name", "")), str(x.get("value", ""))) for x in h.get("httpHeaders") or () if isinstance(x, dict))
        return Probe(
            "httpGet", port=h["port"], path=h.get("path") or "/", host=h.get("host") or "", scheme=h.get("scheme") or "HTTP",
            headers=headers, **common,
        )  # fmt: skip
    if raw.get("tcpSocket") is not None:
        return Probe("tcpSocket", port=raw["tcpSocket"]["port"], host=raw["tcpSocket"].get("host") or "", **common)
    if raw.get("grpc") is not None:
        return Probe("grpc", port=raw["grpc"]["port"], grpc_service=raw["grpc"].get("service") or "", **common)
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


def build_container(c: dict[str, Any]) -> Container:
    return Container(
        name=c["name"],
        ports=tuple(
            ContainerPort(
                p["containerPort"], p.get("protocol") or "TCP", p.get("name") or "", p.get("hostPort") or 0, p.get("hostIP") or ""
            )
            for p in c.get("ports") or ()
        ),
        command=tuple(str(x) for x in c.get("command") or ()),
        args=tuple(str(x) for x in c.get("args") or ()),
        readiness_probe=build_probe(c.get("readinessProbe")),
        shutdown_delay=netexec_shutdown_delay(c.get("args") or ()),
        image=str(c.get("image") or ""),
        liveness_probe=build_probe(c.get("livenessProbe")),
        startup_probe=build_probe(c.get("startupProbe")),
        working_dir=c.get("workingDir") or "",
        raw=c,
    )


def _requirements(term: dict[str, Any]) -> tuple[NodeSelectorRequirement, ...]:
    out = [NodeSelectorRequirement(e["key"], e["operator"], tuple(e.get("values") or ())) for e in term.get("matchExpressions") or ()]
    out += [NodeSelectorRequirement(e["key"], e["operator"], tuple(e.get("values") or ()), True) for e in term.get("matchFields") or ()]
    return tuple(out)


# A term without labelSelector selects no pod (In with no values matches nothing).
MATCHES_NOTHING = LabelSelector(match_expressions=(Requirement("kemu.io/none", "In", ()),))


def _affinity_terms(raw: dict[str, Any] | None) -> tuple[PodAffinityTerm, ...]:
    terms = (raw or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or ()
    return tuple(
        PodAffinityTerm(
            build_selector(t.get("labelSelector")) if t.get("labelSelector") is not None else MATCHES_NOTHING,
            t["topologyKey"],
            tuple(t.get("namespaces") or ()),
            build_selector(t["namespaceSelector"]) if t.get("namespaceSelector") is not None else None,
        )
        for t in terms
    )


def build_pod_spec(raw: dict[str, Any]) -> PodSpec:
    aff = raw.get("affinity") or {}
    node_terms = (
        ((aff.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    ) or ()
    return PodSpec(
        tuple(build_container(c) for c in raw["containers"]),
        raw.get("nodeName") or "",
        dict(raw.get("nodeSelector") or {}),
        raw["terminationGracePeriodSeconds"] if raw.get("terminationGracePeriodSeconds") is not None else 30,
        init_containers=tuple(build_container(c) for c in raw.get("initContainers") or ()),
        host_network=bool(raw.get("hostNetwork")),
        restart_policy=raw.get("restartPolicy") or "Always",
        hostname=raw.get("hostname") or "",
        subdomain=raw.get("subdomain") or "",
        dns_policy=raw.get("dnsPolicy") or "ClusterFirst",
        service_account_name=raw.get("serviceAccountName") or raw.get("serviceAccount") or "default",
        tolerations=tuple(
            Toleration(t.get("key") or "", t.get("operator") or "Equal", str(t.get("value") or ""), t.get("effect") or "")
            for t in raw.get("tolerations") or ()
            if isinstance(t, dict)
        ),
        node_affinity=tuple(_requirements(t) for t in node_terms if isinstance(t, dict)),
        pod_affinity=_affinity_terms(aff.get("podAffinity")),
        pod_anti_affinity=_affinity_terms(aff.get("podAntiAffinity")),
        raw=raw,
    )
