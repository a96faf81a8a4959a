"""Schemas and builders for Service and EndpointSlice, with the API server's own checks."""

from __future__ import annotations

import ipaddress
import re
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
    cidr,
    dns_label,
    dns_label_name,
    join,
)
from emu.model.objects import Meta
from emu.model.services import (
    DEFAULT_AFFINITY_TIMEOUT,
    Endpoint,
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
    Service,
    ServicePort,
)

NODE_PORT_RANGE = (30000, 32767)
TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
# Service names are DNS-1035 labels: they must start with a letter.
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def ipv4(value: str, path: str, report: Report) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        report(path, f"Invalid value: {value!r}: must be a valid IPv4 address")


def _cluster_ip(value: str, path: str, report: Report) -> None:
    if value not in ("", "None"):
        ipv4(value, path, report)


def _port_name(value: str, path: str, report: Report) -> None:
    if value:  # optional when the Service has one port; a DNS label when given
        dns_label_name(value, path, report)


def _protocol(value: str, path: str, report: Report) -> None:
    if value == "SCTP":
        report(path, "SCTP is valid Kubernetes but this kernel has no SCTP sockets; use TCP or UDP")


def _service_check(value: dict[str, Any], path: str, report: Report) -> None:
    spec = value.get("spec")
    if not isinstance(spec, dict):
        return
    sp = join(path, "spec")
    typ = spec.get("type", "ClusterIP")
    ports = spec.get("ports") or []
    ports = [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    for i, p in enumerate(ports):
        pp = join(join(sp, "ports"), i)
        if len(ports) > 1 and not p.get("name"):
            report(join(pp, "name"), "Required value: a name is required when a Service has more than one port")
        if p.get("name"):
            if p["name"] in names:
                report(join(pp, "name"), f"Duplicate value: {p['name']!r}")
            names.add(p["name"])
        key = (p.get("port"), p.get("protocol", "TCP"))
        if key in seen:
            report(pp, f"Duplicate value: port {key[0]}/{key[1]}")
        seen.add(key)
        np = p.get("nodePort")
        if np is not None and typ in ("ClusterIP", "ExternalName"):
            report(join(pp, "nodePort"), f"Forbidden: may not be used when `type` is {typ!r}")
        elif isinstance(np, int) and np and not NODE_PORT_RANGE[0] <= np <= NODE_PORT_RANGE[1]:
            report(
                join(pp, "nodePort"),
                f"Invalid value: {np}: provided port is not in the valid range. The range of valid ports is {NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}",
            )
    if typ == "ExternalName":
        if not spec.get("externalName"):
            report(join(sp, "externalName"), "Required value: for ExternalName services")
    else:
        if not ports and spec.get("clusterIP") != "None":
            report(join(sp, "ports"), "Required value")
        if spec.get("externalName"):
            report(join(sp, "externalName"), "Forbidden: may only be set when `type` is 'ExternalName'")
    if spec.get("clusterIP") == "None" and typ in ("NodePort", "LoadBalancer"):
        report(join(sp, "clusterIP"), f"Invalid value: 'None': may not be set to 'None' for {typ} services")
    if spec.get("externalTrafficPolicy") == "Local" and typ not in ("NodePort", "LoadBalancer") and not spec.get("externalIPs"):
        report(join(sp, "externalTrafficPolicy"), "Invalid value: 'Local': may only be set when `type` is 'NodePort' or 'LoadBalancer'")
    if spec.get("healthCheckNodePort") and not (typ == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"):
        report(
            join(sp, "healthCheckNodePort"),
            "Invalid value: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        )
    if spec.get("loadBalancerSourceRanges") and typ != "LoadBalancer":
        report(join(sp, "loadBalancerSourceRanges"), "Forbidden: may only be used when `type` is 'LoadBalancer'")
    sel = spec.get("selector")
    if isinstance(sel, dict) and any(not isinstance(v, str) for v in sel.values()):
        report(join(sp, "selector"), "selector values must be strings")


SERVICE = Obj(
    {
        "apiVersion": Str(choices=("v1",)),
        "kind": Str(),
        "metadata": Obj(
            {
                "name": Str(DNS_1035, 63, what="a DNS-1035 label: lowercase letters, digits and '-', starting with a letter"),
                "namespace": dns_label(),
                "labels": Labels(),
                "annotations": Labels(values_are_labels=False),
            },
            required=("name",),
        ),
        "status": AnyValue(),
        "spec": Obj(
            {
                "type": Str(choices=TYPES),
                "selector": Labels(),
                "ports": List(
                    Obj(
                        {
                            "name": Str(extra=dns_label_name),
                            "protocol": Str(choices=("TCP", "UDP", "SCTP"), extra=_protocol),
                            "port": Int(1, 65535),
                            "targetPort": IntOrName(),
                            "nodePort": Int(0, 65535),
                            "appProtocol": AnyValue(),
                        },
                        required=("port",),
                    )
                ),
                "clusterIP": Str(extra=_cluster_ip),
                "clusterIPs": List(Str(extra=_cluster_ip)),
                "ipFamilies": AnyValue(),
                "ipFamilyPolicy": AnyValue(),
                "externalIPs": List(Str(extra=ipv4)),
                "sessionAffinity": Str(choices=("None", "ClientIP")),
                "sessionAffinityConfig": Obj({"clientIP": Obj({"timeoutSeconds": Int(1, 86400)})}),
                "externalTrafficPolicy": Str(choices=("Cluster", "Local")),
                "internalTrafficPolicy": Str(choices=("Cluster", "Local")),
                "healthCheckNodePort": Int(1, 65535),
                "publishNotReadyAddresses": Bool(),
                "loadBalancerIP": Str(extra=ipv4),
                # The API server trims surrounding spaces before it parses each range.
                "loadBalancerSourceRanges": List(Str(extra=lambda v, p, r: cidr(v.strip(), p, r))),
                "loadBalancerClass": AnyValue(),
                "allocateLoadBalancerNodePorts": Bool(),
                "externalName": Str(),
            }
        ),
    },
    required=("apiVersion", "kind", "metadata", "spec"),
    check_extra=_service_check,
)


def build_service(raw: dict[str, Any]) -> Service:
    m, spec = raw["metadata"], raw["spec"]
    cluster_ip = spec.get("clusterIP") or ((spec.get("clusterIPs") or [""])[0])
    return Service(
        meta=Meta(m["name"], m.get("namespace") or "default", dict(m.get("labels") or {}), dict(m.get("annotations") or {})),
        type=spec.get("type", "ClusterIP"),
        selector=dict(spec["selector"]) if spec.get("selector") else None,
        ports=tuple(
            ServicePort(
                p["port"],
                p.get("protocol", "TCP"),
                p.get("name", ""),
                p.get("targetPort", p["port"]),
                p.get("nodePort", 0),
                p.get("appProtocol"),
            )
            for p in spec.get("ports") or ()
        ),
        cluster_ip=cluster_ip,
        external_ips=tuple(spec.get("externalIPs") or ()),
        session_affinity=spec.get("sessionAffinity", "None"),
        affinity_timeout=((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT),
        external_traffic_policy=spec.get("externalTrafficPolicy", "Cluster"),
        internal_traffic_policy=spec.get("internalTrafficPolicy", "Cluster"),
        health_check_node_port=spec.get("healthCheckNodePort", 0),
        publish_not_ready_addresses=spec.get("publishNotReadyAddresses", False),
        load_balancer_ip=spec.get("loadBalancerIP", ""),
        load_balancer_source_ranges=tuple(r.strip() for r in spec.get("loadBalancerSourceRanges") or ()),
        external_name=spec.get("externalName", ""),
        allocate_lb_node_ports=spec.get("allocateLoadBalancerNodePorts", True),
    )


def _slice_check(value: dict[str, Any], path: str, report: Report) -> None:
    labels = (value.get("metadata") or {}).get("labels") or {}
    if isinstance(labels, dict) and not labels.get("kubernetes.io/service-name"):
        report(join(path, "metadata.labels"), "an EndpointSlice needs the label kubernetes.io/service-name to belong to a Service")


ENDPOINT_SLICE = Obj(
    {
        "apiVersion": Str(choices=("discovery.k8s.io/v1",)),
        "kind": Str(),
        "metadata": Obj(
            {"name": dns_label(253), "namespace": dns_label(), "labels": Labels(), "annotations": Labels(values_are_labels=False)},
            required=("name",),
        ),
        "addressType": Str(choices=("IPv4",)),
        "endpoints": List(
            Obj(
                {
                    "addresses": List(Str(extra=ipv4), min_items=1),
                    "conditions": Obj({"ready": Bool(), "serving": Bool(), "terminating": Bool()}),
                    "nodeName": Str(),
                    "zone": Str(),
                    "hostname": Str(),
                    "targetRef": AnyValue(),
                },
                required=("addresses",),
            )
        ),
        "ports": List(
            Obj(
                {
                    "name": Str(extra=_port_name),
                    "port": Int(1, 65535),
                    "protocol": Str(choices=("TCP", "UDP", "SCTP"), extra=_protocol),
                    "appProtocol": AnyValue(),
                }
            )
        ),
    },
    required=("apiVersion", "kind", "metadata", "addressType"),
    check_extra=_slice_check,
)


def build_endpoint_slice(raw: dict[str, Any]) -> EndpointSlice:
    m = raw["metadata"]
    eps = []
    for e in raw.get("endpoints") or ():
        c = e.get("conditions") or {}
        ready = c.get("ready", True)
        ref = e.get("targetRef") or {}
        eps.append(
            Endpoint(
                tuple(e["addresses"]),
                EndpointConditions(ready, c.get("serving", ready), c.get("terminating", False)),
                e.get("nodeName", ""),
                e.get("zone", ""),
                f"{ref.get('namespace', '')}/{ref.get('name', '')}" if isinstance(ref, dict) and ref.get("name") else "",
            )
        )
    return EndpointSlice(
        Meta(m["name"], m.get("namespace") or "default", dict(m.get("labels") or {}), dict(m.get("annotations") or {})),
        tuple(eps),
        tuple(EndpointPort(p.get("port", 0), p.get("protocol", "TCP"), p.get("name", "")) for p in raw.get("ports") or ()),
        raw["addressType"],
    )


SCHEMAS: dict[str, tuple[Schema, Any]] = {"Service": (SERVICE, build_service), "EndpointSlice": (ENDPOINT_SLICE, build_endpoint_slice)}
