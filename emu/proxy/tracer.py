"""A packet tracer over a node's proxy plan: what the node's rules do to a new flow.

The renderers (nftables, iptables) are two spellings of these decisions; golden tests pin
the spelling, this tracer pins the decisions, and the e2e tests check the kernel agrees.
The backends differ where kube-proxy's two backends do (`backend`):
- nftables rejects traffic to a ClusterIP on a port or protocol no Service port serves
  (kube-proxy's cluster-ips-check); iptables lets it pass, unanswered;
- iptables serves NodePorts on every local address, 127.0.0.1 included (kube-proxy's
  default localhostNodePorts); nftables only on the node's primary IPs
  (`--nodeport-addresses primary`, its default), never on localhost;
- a LoadBalancer IP's source ranges apply before the no-endpoints reject in nftables
  (prerouting); iptables has no firewall chain for a Service without endpoints;
- iptables rejects an externalIP without endpoints in input and forward only: the node's
  own connection to one is routed on, unanswered; nftables rejects it in output too.
The plan lists only the node's primary IPs, so "local" here means those and 127.0.0.0/8
(iptables also serves NodePorts on the pod gateway and announced LB IPs).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from emu.proxy.plan import Backend, ProxyPlan, ServicePortPlan

BACKENDS = ("nftables", "iptables")
LOOPBACK = "127.0.0.0/8"


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
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr, strict=False)


def firewall_sources(plan: ProxyPlan, sp: ServicePortPlan) -> tuple[str, ...]:
    """Sources a LoadBalancer IP with source ranges accepts. As kube-proxy: when a range
    holds the node's IP, the LB IPs are allowed too, since a node reaching an LB IP it
    holds itself sends from that IP."""
    from_node = any(_in(ip, r) for ip in plan.node_ips for r in sp.source_ranges)
    return (*sp.source_ranges, *(sp.lb_ips if from_node else ()))


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
        if flow.from_node or flow.src in plan.node_ips or _in(flow.src, LOOPBACK):
            return _dnat(sp.cluster_endpoints, True, flow.src)
        return _dnat(sp.external_endpoints, False, flow.src)
    return _dnat(sp.external_endpoints, True, flow.src)


def _nodeport_address(plan: ProxyPlan, flow: Flow, backend: str) -> bool:
    if flow.dst in plan.node_ips:
        return True
    # Only the node itself can send to its loopback addresses.
    return backend == "iptables" and flow.from_node and _in(flow.dst, LOOPBACK)


def _firewalled(plan: ProxyPlan, sp: ServicePortPlan, flow: Flow, backend: str) -> bool:
    if flow.dst not in sp.lb_ips or not sp.source_ranges or (backend == "iptables" and not sp.has_endpoints):
        return False
    return not any(_in(flow.src, r) for r in firewall_sources(plan, sp))


def trace(plan: ProxyPlan, flow: Flow, backend: str = "nftables") -> Verdict:
    if backend not in BACKENDS:
        raise ValueError(f"unknown proxy backend {backend!r}")
    ports = [sp for sp in plan.services if sp.protocol == flow.protocol]
    for sp in ports:
        if flow.dport == sp.port and _firewalled(plan, sp, flow, backend):
            return Verdict("drop")
    for sp in ports:
        if flow.dst == sp.cluster_ip and flow.dport == sp.port:
            if not sp.has_endpoints:
                return Verdict("reject")
            masq = not _in(flow.src, plan.pod_cidr)
            return _dnat(sp.cluster_endpoints, masq, flow.src)
        if flow.dport == sp.port and (flow.dst in sp.lb_ips or flow.dst in sp.external_ips):
            if backend == "iptables" and flow.from_node and not sp.has_endpoints and flow.dst not in sp.lb_ips:
                return Verdict("pass")  # (an LB IP is local to the node holding it: input rejects)
            return _external(plan, sp, flow)
        if sp.node_port and flow.dport == sp.node_port and _nodeport_address(plan, flow, backend):
            return _external(plan, sp, flow)
    if backend == "nftables" and any(flow.dst == sp.cluster_ip for sp in plan.services):
        return Verdict("reject")  # cluster-ips-check: a ClusterIP, but no port of it
    return Verdict("pass")
