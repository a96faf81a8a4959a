"""The `kind: Cluster` topology schema and the checks that span objects."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from emu.config.schema import AnyValue, Bool, Int, Labels, List, Obj, Report, Str, cidr, dns_label, dns_subdomain, join, label_key
from emu.model.durations import parse_go_duration
from emu.model.objects import ClusterSpec, DNSSpec, ExternalHostDecl, Manifests, NodeDecl, Taint

CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CNIS = ("bridge", "vxlan", "routed")  # emu/dataplane/cni/, one module each
# A node needs a /24 of podCIDR; .0 network, .1 gateway on the bridge, .255 broadcast.
NODE_POD_PREFIX = 24


def parse_pool_entry(value: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """A pool entry: a CIDR (all its addresses) or a range `a-b`, as MetalLB writes them."""
    if "-" in value:
        a, b = (ipaddress.IPv4Address(x.strip()) for x in value.split("-", 1))
        if b < a:
            raise ValueError(f"range end {b} is before its start {a}")
        return a, b
    net = ipaddress.IPv4Network(value, strict=True)
    return net.network_address, net.broadcast_address


def _pool_entry(value: str, path: str, report: Report) -> None:
    try:
        parse_pool_entry(value)
    except ValueError as e:
        report(path, f"{value!r} is not a CIDR or an address range a-b ({e})")


TAINT = Obj(
    {"key": Str(extra=label_key), "value": Str(), "effect": Str(choices=("NoSchedule", "PreferNoSchedule", "NoExecute"))},
    required=("key", "effect"),
)


def _duration(value: str, path: str, report: Report) -> None:
    """A Go duration (time.ParseDuration: 40s, 1m30s, 500ms), more than zero."""
    seconds = parse_go_duration(value)
    if seconds is None or seconds <= 0:
        report(path, f"{value!r} is not a duration such as 40s, 5m or 1m30s")


CLUSTER = Obj(
    {
        "apiVersion": Str(choices=("kemu/v1alpha1",)),
        "kind": Str(choices=("Cluster",)),
        "metadata": Obj(
            {"name": Str(CLUSTER_NAME, 12, what="at most 12 of [a-z0-9-], starting and ending alphanumeric")},
            required=("name",),
        ),
        "spec": Obj(
            {
                "podCIDR": Str(extra=cidr),
                "serviceCIDR": Str(extra=cidr),
                "nodeCIDR": Str(extra=cidr),
                "cni": Str(choices=CNIS),
                "proxy": Str(choices=("nftables", "iptables")),
                "networkPolicy": Bool(),
                "nodes": List(Obj({"name": dns_label(), "labels": Labels(), "taints": List(TAINT)}, required=("name",)), min_items=1),
                "externalHosts": List(Obj({"name": dns_label()}, required=("name",))),
                "resources": List(AnyValue()),
                "include": List(Str()),
                "loadBalancer": Obj({"addresses": List(Str(extra=_pool_entry), min_items=1)}),
                "nodeMonitorGracePeriod": Str(extra=_duration),
                "podEvictionTimeout": Str(extra=_duration),
                "dns": Obj(
                    {
                        "enabled": Bool(),
                        "clusterDomain": dns_subdomain(),
                        "replicas": Int(1, 10),
                        "ttl": Int(0, 3600),
                    }
                ),
            },
            required=("nodes",),
        ),
    },
    required=("apiVersion", "kind", "metadata", "spec"),
)


def build_cluster_spec(raw: dict[str, Any]) -> ClusterSpec:
    spec = raw["spec"]
    dns = spec.get("dns") or {}
    defaults = ClusterSpec(name=raw["metadata"]["name"])
    return ClusterSpec(
        name=defaults.name,
        pod_cidr=spec.get("podCIDR", defaults.pod_cidr),
        service_cidr=spec.get("serviceCIDR", defaults.service_cidr),
        node_cidr=spec.get("nodeCIDR", defaults.node_cidr),
        cni=spec.get("cni", defaults.cni),
        proxy=spec.get("proxy", defaults.proxy),
        network_policy=spec.get("networkPolicy", defaults.network_policy),
        nodes=tuple(
            NodeDecl(
                n["name"],
                dict(n.get("labels") or {}),
                tuple(Taint(t["key"], t.get("value") or "", t["effect"]) for t in n.get("taints") or ()),
            )
            for n in spec["nodes"]
        ),
        external_hosts=tuple(ExternalHostDecl(h["name"]) for h in spec.get("externalHosts") or ()),
        lb_pool=tuple((spec.get("loadBalancer") or {}).get("addresses") or ()),
        node_monitor_grace_s=parse_go_duration(spec.get("nodeMonitorGracePeriod", "")) or defaults.node_monitor_grace_s,
        pod_eviction_timeout_s=parse_go_duration(spec.get("podEvictionTimeout", "")) or defaults.pod_eviction_timeout_s,
        dns=DNSSpec(
            bool(dns.get("enabled", True)),
            str(dns.get("clusterDomain") or "cluster.local").rstrip("."),
            int(dns.get("replicas", 2)),
            int(dns.get("ttl", 30)),
        ),
    )


def check_spec(spec: ClusterSpec, report: Report) -> None:
    """Checks across fields of the cluster spec (CIDRs, capacity, names)."""
    # IPv4 only: load_cluster_file checks the spec only when the cidr checks found nothing.
    nets = {
        "spec.podCIDR": ipaddress.IPv4Network(spec.pod_cidr),
        "spec.serviceCIDR": ipaddress.IPv4Network(spec.service_cidr),
        "spec.nodeCIDR": ipaddress.IPv4Network(spec.node_cidr),
    }
    items = list(nets.items())
    for i, (pa, na) in enumerate(items):
        for pb, nb in items[i + 1 :]:
            if na.overlaps(nb):
                report(pb, f"{nb} overlaps {pa} ({na}); pod, service and node ranges must be disjoint")
    pod = nets["spec.podCIDR"]
    if pod.prefixlen > NODE_POD_PREFIX:
        report("spec.podCIDR", f"{pod} is too small: each node needs a /{NODE_POD_PREFIX}")
    elif 2 ** (NODE_POD_PREFIX - pod.prefixlen) < len(spec.nodes):
        report(
            "spec.podCIDR",
            f"{pod} holds {2 ** (NODE_POD_PREFIX - pod.prefixlen)} node ranges (/{NODE_POD_PREFIX}) but there are {len(spec.nodes)} nodes",
        )
    node_net = nets["spec.nodeCIDR"]
    need = len(spec.nodes) + len(spec.external_hosts)
    # .0 network, .1 reserved (a gateway, as on a real node network), then nodes and hosts.
    last_member = node_net.network_address + 1 + need
    if need > node_net.num_addresses - 3:
        report(
            "spec.nodeCIDR",
            f"{node_net} has {max(node_net.num_addresses - 3, 0)} usable addresses but {need} nodes and external hosts need one each",
        )
    elif spec.lb_pool:
        for i, e in enumerate(spec.lb_pool):
            a, b = parse_pool_entry(e)
            if a not in node_net or b not in node_net:
                report(
                    f"spec.loadBalancer.addresses[{i}]",
                    f"{e} must lie inside spec.nodeCIDR ({node_net}): load-balancer IPs are announced on the node network",
                )
            elif a <= last_member:
                report(
                    f"spec.loadBalancer.addresses[{i}]",
                    f"{e} overlaps the node and external-host addresses ({node_net.network_address + 2}-{last_member})",
                )
    else:
        top = node_net.network_address + (node_net.num_addresses * 3) // 4
        if need and last_member >= top and node_net.prefixlen <= 28:
            report(
                "spec.nodeCIDR",
                f"{node_net}: {need} nodes and external hosts reach into the default load-balancer pool (from {top}); set spec.loadBalancer.addresses or use a bigger nodeCIDR",
            )
    seen: dict[str, str] = {}
    for i, n in enumerate(spec.nodes):
        p = f"spec.nodes[{i}].name"
        if n.name in seen:
            report(p, f"duplicate name {n.name!r} (first at {seen[n.name]})")
        seen.setdefault(n.name, p)
    for i, h in enumerate(spec.external_hosts):
        p = f"spec.externalHosts[{i}].name"
        if h.name in seen:
            report(p, f"duplicate name {h.name!r} (first at {seen[h.name]}); nodes and external hosts share one name space")
        seen.setdefault(h.name, p)


SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def check_manifests(
    spec: ClusterSpec,
    manifests: Manifests,
    where: dict[str, tuple[str, str]],
    report_at: Any,
) -> None:
    """Checks across objects: namespaces and nodes that must exist.

    `where` maps an object key ("Kind/ns/name") to the (file, path) it came from, so each
    problem points at the document that caused it; `report_at(file, path, msg)` records it.
    """
    nodes = {n.name for n in spec.nodes}
    namespaces = set(SYSTEM_NAMESPACES) | {n.meta.name for n in manifests.namespaces}
    objs: list[Any] = [
        *manifests.pods, *manifests.workloads, *manifests.services, *manifests.endpoint_slices, *manifests.network_policies, *manifests.others,
    ]  # fmt: skip
    for obj in objs:
        kind = getattr(obj, "kind", "") or type(obj).__name__
        ns = obj.meta.namespace
        file, path = where.get(f"{kind}/{ns}/{obj.meta.name}" if ns else f"{kind}/{obj.meta.name}", ("", ""))
        if not file:
            continue  # already in the cluster, checked when it came
        if ns and ns not in namespaces:
            report_at(file, join(path, "metadata.namespace"), f'namespaces "{ns}" not found')
        pod_spec = obj.spec if kind == "Pod" else getattr(obj, "template_spec", None)
        if pod_spec is not None and pod_spec.node_name and pod_spec.node_name not in nodes:
            sub = "spec.nodeName" if kind == "Pod" else "spec.template.spec.nodeName"
            report_at(file, join(path, sub), f"node {pod_spec.node_name!r} does not exist; nodes: {', '.join(sorted(nodes))}")
