"""The EndpointSlice controller: slices from a Service's selector and its pods' state.

As upstream: one endpoint per pod with an IP whose labels match, `ready` (pod Ready and
not terminating, or publishNotReadyAddresses), `serving` (pod Ready) and `terminating`;
endpoints are grouped by their resolved target ports (a named targetPort can differ per
pod), at most 100 per slice; a Service with no endpoints keeps one empty slice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from emu.controllers.changelog import LoggedDict, Snapshot
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


Selector = tuple[tuple[str, str], ...]


def _matches(selector: Selector, labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector)


class SliceCache:
    """`slices_for` every Service with a selector, recomputed only where its inputs
    changed: the Service object (new, changed or gone), a pod its selector matches
    before or after the pod changed (same namespace), or the nodes' zones (all). A
    Service whose slices come out equal keeps its list object, so consumers comparing
    by identity (the proxy's plan compiler, DNS, gateways) skip it."""

    def __init__(self) -> None:
        self._services = Snapshot()
        self._pods: dict[str, PodView] = {}
        self._zones: dict[str, str] | None = None  # None: recompute everything next time
        # namespace → selector → keys of the Services with it: a changed pod is matched
        # against each distinct selector once, not against every Service.
        self._selectors: dict[str, dict[Selector, set[str]]] = {}
        self._selector_of: dict[str, tuple[str, Selector]] = {}
        self.slices: LoggedDict[str, list[EndpointSlice]] = LoggedDict()  # readers may keep a cursor
        self.services_changed: set[str] = set()

    def update(self, services: Mapping[str, Service], pods: list[PodView], zones: dict[str, str]) -> set[str]:
        """Bring `slices` up to date; the keys whose slices are other lists now
        (`services_changed`: the keys of Services that came, went or are other objects)."""
        changed = self.services_changed = self._services.changed(services)
        by_key = {p.key: p for p in pods}
        by_ns: dict[str, list[PodView]] = {}
        for p in pods:
            by_ns.setdefault(p.namespace, []).append(p)
        if len(by_key) != len(pods) or zones != self._zones:
            redo = set(services) | set(self.slices)  # duplicate pod keys: no diff by key
            self._zones = dict(zones) if len(by_key) == len(pods) else None
        else:
            redo = changed
            old = self._pods
            for key in old.keys() | by_key.keys() if old.keys() != by_key.keys() else by_key:
                before, after = old.get(key), by_key.get(key)
                if before == after:
                    continue
                pod = after or before
                assert pod is not None
                for selector, keys in self._selectors.get(pod.namespace, {}).items():
                    if (before is not None and _matches(selector, before.labels)) or (
                        after is not None and _matches(selector, after.labels)
                    ):
                        redo |= keys
        self._pods = by_key
        for key in changed:
            self._index(key, services.get(key))
        if len(redo) > 64:  # in the Services' order: the dict keeps the store's order
            redo_order = [k for k in services if k in redo] + [k for k in self.slices if k in redo and k not in services]
        else:
            redo_order = list(redo)
        out: set[str] = set()
        for key in redo_order:
            svc = services.get(key)
            before_slices = self.slices.get(key)
            if svc is None or svc.selector is None:
                if self.slices.pop(key, None) is not None:
                    out.add(key)
                continue
            got = slices_for(svc, by_ns.get(svc.meta.namespace, []), zones)
            if got != before_slices:
                self.slices[key] = got
                out.add(key)
        return out

    def _index(self, key: str, svc: Service | None) -> None:
        """Keep the selector index in step with the Service at `key` (None: gone)."""
        was = self._selector_of.pop(key, None)
        if was is not None:
            keys = self._selectors[was[0]][was[1]]
            keys.discard(key)
            if not keys:
                del self._selectors[was[0]][was[1]]
        if svc is not None and svc.selector is not None:
            sel = tuple(sorted(svc.selector.items()))
            self._selectors.setdefault(svc.meta.namespace, {}).setdefault(sel, set()).add(key)
            self._selector_of[key] = (svc.meta.namespace, sel)
