"""Compile one node's service-proxy plan: pure, from Services, their statuses and slices.

Endpoint choice follows kube-proxy's CategorizeEndpoints: ready endpoints, else (only when
none is ready) serving-and-terminating ones; internalTrafficPolicy: Local narrows ClusterIP
traffic to this node's endpoints; externalTrafficPolicy: Local narrows NodePort,
LoadBalancer and externalIP traffic to them (and keeps the client's source IP).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from emu.controllers.changelog import Snapshot
from emu.controllers.service_ranges import port_key
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


def _proxied(svc: Service, st: ServiceStatus | None) -> bool:
    return st is not None and svc.type != "ExternalName" and not svc.headless and bool(st.cluster_ip)


def _backends(svc: Service, slices: list[EndpointSlice]) -> list[tuple[list[Backend], list[Backend]]]:
    """Per port: every backend, and the usable ones cluster-wide (no node in it)."""
    out = []
    for i in range(len(svc.ports)):
        all_b = backends_for(svc, i, slices)
        out.append((all_b, usable(all_b)))
    return out


def _has_local(svc: Service) -> bool:
    return svc.internal_traffic_policy == "Local" or svc.external_traffic_policy == "Local"


def _service_plans(
    svc: Service, st: ServiceStatus, backends: list[tuple[list[Backend], list[Backend]]], node: str
) -> tuple[ServicePortPlan, ...]:
    """One proxied Service's port plans on `node` (the same on every node if no traffic
    policy is Local)."""
    out = []
    for i, (p, (all_b, cluster)) in enumerate(zip(svc.ports, backends, strict=True)):
        local = usable([b for b in all_b if b.node == node]) if _has_local(svc) else []
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
    return tuple(out)


def compile_plan(
    node: str,
    node_ips: tuple[str, ...],
    pod_cidr: str,
    services: list[Service],
    statuses: dict[str, ServiceStatus],
    slices: dict[str, list[EndpointSlice]],  # service key → its slices
) -> ProxyPlan:
    out: list[ServicePortPlan] = []
    for svc in sorted(services, key=lambda s: s.key):
        st = statuses.get(svc.key)
        if st is not None and _proxied(svc, st):
            out += _service_plans(svc, st, _backends(svc, slices.get(svc.key, [])), node)
    return ProxyPlan(node, node_ips, pod_cidr, tuple(out))


PortChanges = dict[str, tuple[ServicePortPlan | None, ServicePortPlan | None]]  # id → (before, after); None: absent


def diff_plans(old: ProxyPlan | None, new: ProxyPlan) -> PortChanges:
    """The service ports added, changed or removed from `old` to `new`."""
    return _diff(old.services if old else (), new.services)


@dataclass(frozen=True)
class PlanChange:
    """One node's plan and how it differs from that node's previous one."""

    plan: ProxyPlan
    previous: ProxyPlan | None  # what `changed` is relative to
    changed: PortChanges


@dataclass
class _Entry:
    """One proxied Service as last seen, with what every node shares of its plans."""

    svc: Service
    status: ServiceStatus
    backends: list[tuple[list[Backend], list[Backend]]]
    shared: tuple[ServicePortPlan, ...] | None  # its plans when they are the same on every node

    def plans(self, node: str) -> tuple[ServicePortPlan, ...]:
        return self.shared if self.shared is not None else _service_plans(self.svc, self.status, self.backends, node)


@dataclass
class _NodeState:
    ports: list[ServicePortPlan]  # the plan's service ports, in order
    keys: list[str]  # the Service key of each (sorted: a Service's ports are found by bisection)
    plan: ProxyPlan
    pending: set[str] = field(default_factory=set)  # Services changed since this node's last plan


def _diff(old: Iterable[ServicePortPlan], new: Iterable[ServicePortPlan]) -> PortChanges:
    before, after = {sp.id: sp for sp in old}, {sp.id: sp for sp in new}
    return {i: (before.get(i), after.get(i)) for i in before.keys() | after.keys() if before.get(i) != after.get(i)}


class PlanCompiler:
    """`compile_plan` with memory, for every node of a cluster: `update` with a sync's
    Services, statuses and slices once, then `plan` for each node.

    A Service is compiled again only when its object, its status or its slices are not
    the ones last seen (store objects are immutable and replaced on change, so identity
    decides; lists of slices compare element by element, identity first). Plans of
    Services with no Local traffic policy are shared by every node. Each node's plan
    comes with the service ports that changed since that node's previous plan, so the
    proxy need not compare every Service. The compiler keeps references to its inputs:
    replace a list of slices rather than change it in place.
    """

    def __init__(self) -> None:
        self._previous: dict[str, ProxyPlan] = {}  # node → its last plan, kept across a reset
        self._reset()

    def _reset(self) -> None:
        self._list: list[Service] = []
        self._list_keys: list[str] = []
        self._by_key: dict[str, Service] = {}
        self._services, self._statuses, self._slices = Snapshot(), Snapshot(), Snapshot()
        self._entries: dict[str, _Entry] = {}  # proxied Services only
        self._order: list[str] = []  # their keys, sorted
        self._nodes: dict[str, _NodeState] = {}
        self._raw: tuple[list[Service], dict[str, ServiceStatus], dict[str, list[EndpointSlice]]] | None = None
        self._keyed = False  # Services came by key (a mapping), not as a list

    def compile(
        self,
        node: str,
        node_ips: tuple[str, ...],
        pod_cidr: str,
        services: list[Service] | Mapping[str, Service],
        statuses: Mapping[str, ServiceStatus],
        slices: Mapping[str, list[EndpointSlice]],
    ) -> PlanChange:
        """`update` then `plan`, for one node."""
        self.update(services, statuses, slices)
        return self.plan(node, node_ips, pod_cidr)

    def update(
        self,
        services: list[Service] | Mapping[str, Service],
        statuses: Mapping[str, ServiceStatus],
        slices: Mapping[str, list[EndpointSlice]],
    ) -> None:
        """Take a sync's inputs. Services by key (the store's mapping: with a LoggedDict
        for each input, this costs what changed) or as a list (compared in full)."""
        if isinstance(services, Mapping):
            if not self._keyed:
                self._reset()  # a list last time: start again by key
                self._keyed = True
            changed = self._services.changed(services)
            by_key: Mapping[str, Service] = services
        else:
            if self._keyed:
                self._reset()
            got = self._changed_services(services)
            if got is None:
                # Two Services share a key: plan() gives compile_plan's output, nothing is kept.
                self._reset()
                self._raw = (list(services), dict(statuses), dict(slices))
                return
            changed, by_key = got, self._by_key
        self._raw = None
        changed |= self._statuses.changed(statuses, operator.is_not) & by_key.keys()
        changed |= self._slices.changed(slices, operator.ne) & by_key.keys()
        for key in changed:
            self._compile(by_key.get(key), key, statuses.get(key), slices.get(key, []))
        self._reorder(changed)
        for state in self._nodes.values():
            state.pending |= changed

    def plan(self, node: str, node_ips: tuple[str, ...], pod_cidr: str) -> PlanChange:
        previous = self._previous.get(node)
        state = self._nodes.get(node)
        if self._raw is not None or state is None:
            if self._raw is not None:
                plan = compile_plan(node, node_ips, pod_cidr, *self._raw)
            else:
                per_service = [self._entries[k].plans(node) for k in self._order]
                keys = [k for k, ports in zip(self._order, per_service, strict=True) for _ in ports]
                plan = ProxyPlan(node, node_ips, pod_cidr, tuple(itertools.chain.from_iterable(per_service)))
                self._nodes[node] = _NodeState(list(plan.services), keys, plan)
            changed: PortChanges = _diff(previous.services, plan.services) if previous else {sp.id: (None, sp) for sp in plan.services}
        else:
            changed = {}
            for key in state.pending:
                i, j = bisect.bisect_left(state.keys, key), bisect.bisect_right(state.keys, key)
                old, e = tuple(state.ports[i:j]), self._entries.get(key)
                new = () if e is None else e.plans(node)
                if old != new:
                    changed |= _diff(old, new)
                    state.ports[i:j], state.keys[i:j] = new, [key] * len(new)
            state.pending.clear()
            plan = state.plan
            if changed or (plan.node_ips, plan.pod_cidr) != (node_ips, pod_cidr):
                plan = state.plan = ProxyPlan(node, node_ips, pod_cidr, tuple(state.ports) if changed else plan.services)
        self._previous[node] = plan
        return PlanChange(plan, previous, changed)

    def _compile(self, svc: Service | None, key: str, st: ServiceStatus | None, slices: list[EndpointSlice]) -> None:
        if svc is None or st is None or not _proxied(svc, st):
            self._entries.pop(key, None)
            return
        backends = _backends(svc, slices)
        self._entries[key] = _Entry(svc, st, backends, None if _has_local(svc) else _service_plans(svc, st, backends, ""))

    def _reorder(self, changed: set[str]) -> None:
        """Keep `_order` (the proxied Services' keys, sorted) in step with `_entries`."""
        if len(changed) > 64:
            self._order = sorted(self._entries)
            return
        for key in changed:
            i = bisect.bisect_left(self._order, key)
            listed = i < len(self._order) and self._order[i] == key
            if listed and key not in self._entries:
                del self._order[i]
            elif not listed and key in self._entries:
                self._order.insert(i, key)

    def _changed_services(self, services: list[Service]) -> set[str] | None:
        """Keys of Services that came, went or are new objects; None: duplicate keys."""
        old, old_keys = self._list, self._list_keys
        if services == old:
            return set()
        if len(services) == len(old):
            # Usually the same objects in the same order: look only at the others.
            moved = list(itertools.compress(range(len(old)), map(operator.is_not, services, old)))
            if all(services[i].key == old_keys[i] for i in moved):
                self._list = list(services)
                self._by_key.update((old_keys[i], services[i]) for i in moved)
                return {old_keys[i] for i in moved}
        known = {id(s): k for s, k in zip(old, old_keys, strict=True)}  # objects still held: ids not reused
        keys = [known.get(id(s)) or s.key for s in services]
        by_key = dict(zip(keys, services, strict=True))
        if len(by_key) != len(keys):
            return None
        changed = {k for k in by_key.keys() | self._by_key.keys() if by_key.get(k) is not self._by_key.get(k)}
        self._list, self._list_keys, self._by_key = list(services), keys, by_key
        return changed
