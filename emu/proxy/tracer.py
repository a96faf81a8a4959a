"""A packet tracer over a node's proxy plan: what the node's rules do to a new flow.

The renderers (nftables, iptables) are two spellings of these decisions; golden tests pin
the spelling, this tracer pins the decisions, and the e2e tests check the kernel agrees.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from emu.proxy.plan import Backend, ProxyPlan, ServicePortPlan


@dataclass(frozen=True)
class Flow:
    src: str
    dst: str
    dport: int
    protocol: str = "tcp"
    from_node: bool = False  # sent by the node itself (output hook), not arriving


@dataclass(frozen=True)
class Verdict:
    action: str  # "dnat" | "reject" | "drop" | "pass" (not a service: left alone)
    endpoints: frozenset[tuple[str, int]] = frozenset()  # possible destinations after DNAT
    masquerade: bool | None = None  # for dnat: is the source rewritten? (hairpin: per endpoint)

    def __str__(self) -> str:
        eps = ",".join(f"{ip}:{p}" for ip, p in sorted(self.endpoints))
        return f"{self.action}({eps}; masq={self.masquerade})" if self.action == "dnat" else self.action


def _in(ip: str, cidr: str) -> bool:
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr)


def _dnat(eps: tuple[Backend, ...], masq: bool, src: str) -> Verdict:
    if not eps:
        return Verdict("drop")
    # A pod reaching itself through the Service is masqueraded (hairpin), whatever else.
    return Verdict("dnat", frozenset((b.ip, b.port) for b in eps), masq or any(b.ip == src for b in eps))


def _external(plan: ProxyPlan, sp: ServicePortPlan, flow: Flow) -> Verdict:
    if not sp.has_endpoints:
        return Verdict("reject")
    if sp.external_local:
        # Pods and the node itself are treated as in-cluster clients (kube-proxy
        # short-circuits them to the cluster chain); the node's own are masqueraded.
        if _in(flow.src, plan.pod_cidr):
            return _dnat(sp.cluster_endpoints, False, flow.src)
        if flow.from_node or flow.src in plan.node_ips:
            return _dnat(sp.cluster_endpoints, True, flow.src)
        return _dnat(sp.external_endpoints, False, flow.src)
    return _dnat(sp.external_endpoints, True, flow.src)


def trace(plan: ProxyPlan, flow: Flow) -> Verdict:
    for sp in plan.services:
        if sp.protocol != flow.protocol:
            continue
        if flow.dst == sp.cluster_ip and flow.dport == sp.port:
            if not sp.has_endpoints:
                return Verdict("reject")
            masq = not _in(flow.src, plan.pod_cidr)
            return _dnat(sp.cluster_endpoints, masq, flow.src)
        if flow.dport == sp.port and (flow.dst in sp.lb_ips or flow.dst in sp.external_ips):
            if flow.dst in sp.lb_ips and sp.source_ranges and not any(_in(flow.src, r) for r in sp.source_ranges):
                return Verdict("drop")
            return _external(plan, sp, flow)
        if sp.node_port and flow.dport == sp.node_port and flow.dst in plan.node_ips:
            return _external(plan, sp, flow)
    return Verdict("pass")
