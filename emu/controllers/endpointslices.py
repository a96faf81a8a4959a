"""The EndpointSlice controller: slices from a Service's selector and its pods' state.

As upstream: one endpoint per pod with an IP whose labels match, `ready` (pod Ready and
not terminating, or publishNotReadyAddresses), `serving` (pod Ready) and `terminating`;
endpoints are grouped by their resolved target ports (a named targetPort can differ per
pod), at most 100 per slice; a Service with no endpoints keeps one empty slice.
"""

from __future__ import annotations

import hashlib

from emu.model.objects import Meta, PodSpec, PodView
from emu.model.services import (
    CONTROLLER_NAME,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    Endpoint,
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
    Service,
)

MAX_ENDPOINTS = 100
ZONE_LABEL = "topology.kubernetes.io/zone"


def _suffix(*parts: object) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:5])


def resolve_ports(svc: Service, spec: PodSpec) -> tuple[EndpointPort, ...] | None:
    """The Service's ports as this pod serves them; None if a named port is missing."""
    out = []
    for p in svc.ports:
        target = p.target_port or p.port
        number = spec.resolve_port(target) if isinstance(target, str) else target
        if number is None:
            return None
        out.append(EndpointPort(number, p.protocol, p.name))
    return tuple(out)


def slices_for(svc: Service, pods: list[PodView], node_zones: dict[str, str]) -> list[EndpointSlice]:
    if svc.selector is None or svc.type == "ExternalName":
        return []
    groups: dict[tuple[EndpointPort, ...], list[Endpoint]] = {}
    for pod in sorted(pods, key=lambda p: (p.namespace, p.name)):
        if pod.namespace != svc.meta.namespace or not pod.ip or pod.spec is None:
            continue
        if any(pod.labels.get(k) != v for k, v in svc.selector.items()):
            continue
        ports = resolve_ports(svc, pod.spec)
        if ports is None:
            continue
        ready = (pod.ready and not pod.terminating) or svc.publish_not_ready_addresses
        cond = EndpointConditions(ready=ready, serving=pod.ready, terminating=pod.terminating)
        ep = Endpoint((pod.ip,), cond, pod.node, node_zones.get(pod.node, ""), f"{pod.namespace}/{pod.name}")
        groups.setdefault(ports, []).append(ep)
    if not groups:
        default_ports = tuple(
            EndpointPort(p.target_port if isinstance(p.target_port, int) and p.target_port else p.port, p.protocol, p.name)
            for p in svc.ports
        )
        groups[default_ports] = []
    labels = {**svc.meta.labels, SERVICE_NAME_LABEL: svc.meta.name, MANAGED_BY_LABEL: CONTROLLER_NAME}
    out = []
    for gi, (ports, eps) in enumerate(sorted(groups.items(), key=lambda kv: [p.port for p in kv[0]])):
        chunks = [eps[i : i + MAX_ENDPOINTS] for i in range(0, len(eps), MAX_ENDPOINTS)] or [[]]
        for ci, chunk in enumerate(chunks):
            name = f"{svc.meta.name}-{_suffix(svc.key, gi, ci)}"
            out.append(EndpointSlice(Meta(name, svc.meta.namespace, dict(labels)), tuple(chunk), ports))
    return out
