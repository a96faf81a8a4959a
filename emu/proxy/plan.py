"""Compile one node's service-proxy plan: pure, from Services, their statuses and slices.

Endpoint choice follows kube-proxy's CategorizeEndpoints: ready endpoints, else (only when
none is ready) serving-and-terminating ones; internalTrafficPolicy: Local narrows ClusterIP
traffic to this node's endpoints; externalTrafficPolicy: Local narrows NodePort,
LoadBalancer and externalIP traffic to them (and keeps the client's source IP).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from emu.controllers.service_alloc import port_key
from emu.model.services import EndpointSlice, Service, ServiceStatus


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int
    node: str
    ready: bool = True
    serving: bool = True
    terminating: bool = False


@dataclass(frozen=True)
class ServicePortPlan:
    id: str  # "ns/name/tcp/port-name-or-number": unique per service port
    protocol: str  # "tcp" | "udp"
    cluster_ip: str  # "" if none (headless services are not proxied)
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    lb_ips: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()
    cluster_endpoints: tuple[Backend, ...] = ()  # what ClusterIP traffic may reach
    external_endpoints: tuple[Backend, ...] = ()  # what NodePort/LB/externalIP traffic may reach
    has_endpoints: bool = False  # anywhere in the cluster (else: reject)
    affinity_timeout: int = 0  # 0: no session affinity
    external_local: bool = False
    internal_local: bool = False

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.id.encode()).hexdigest()[:8].upper()


@dataclass(frozen=True)
class ProxyPlan:
    node: str
    node_ips: tuple[str, ...]
    pod_cidr: str
    services: tuple[ServicePortPlan, ...]

    def by_id(self) -> dict[str, ServicePortPlan]:
        return {s.id: s for s in self.services}


def usable(backends: list[Backend]) -> list[Backend]:
    """Ready ones; if there are none, the serving terminating ones (kube-proxy's fallback)."""
    ready = [b for b in backends if b.ready]
    return ready or [b for b in backends if b.serving and b.terminating]


def backends_for(svc: Service, port_index: int, slices: list[EndpointSlice]) -> list[Backend]:
    p = svc.ports[port_index]
    out: dict[tuple[str, int], Backend] = {}
    for sl in slices:
        match = [ep for ep in sl.ports if ep.name == p.name and ep.protocol == p.protocol]
        if not match:
            continue
        for e in sl.endpoints:
            for ip in e.addresses:
                c = e.conditions
                out[(ip, match[0].port)] = Backend(ip, match[0].port, e.node_name, c.ready, c.serving, c.terminating)
    return sorted(out.values(), key=lambda b: (b.ip, b.port))


def compile_plan(
    node: str,
    node_ips: tuple[str, ...],
    pod_cidr: str,
    services: list[Service],
    statuses: dict[str, ServiceStatus],
    slices: dict[str, list[EndpointSlice]],  # service key → its slices
) -> ProxyPlan:
    out = []
    for svc in sorted(services, key=lambda s: s.key):
        st = statuses.get(svc.key)
        if st is None or svc.type == "ExternalName" or svc.headless or not st.cluster_ip:
            continue
        for i, p in enumerate(svc.ports):
            all_b = backends_for(svc, i, slices.get(svc.key, []))
            cluster = usable(all_b)
            local = usable([b for b in all_b if b.node == node])
            proto = p.protocol.lower()
            out.append(
                ServicePortPlan(
                    id=f"{svc.key}/{proto}/{p.name or p.port}",
                    protocol=proto,
                    cluster_ip=st.cluster_ip,
                    port=p.port,
                    node_port=st.node_ports.get(port_key(svc, i), 0) if svc.has_node_ports else 0,
                    external_ips=svc.external_ips,
                    lb_ips=(st.lb_ip,) if st.lb_ip else (),
                    source_ranges=svc.load_balancer_source_ranges,
                    cluster_endpoints=tuple(local if svc.internal_traffic_policy == "Local" else cluster),
                    external_endpoints=tuple(local if svc.external_traffic_policy == "Local" else cluster),
                    has_endpoints=bool(cluster),
                    affinity_timeout=svc.affinity_timeout if svc.session_affinity == "ClientIP" else 0,
                    external_local=svc.external_traffic_policy == "Local",
                    internal_local=svc.internal_traffic_policy == "Local",
                )
            )
    return ProxyPlan(node, node_ips, pod_cidr, tuple(out))
