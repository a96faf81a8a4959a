"""Allocations for Services: ClusterIPs, NodePorts (and healthCheckNodePorts), LB IPs.

The API server's allocators hand out ClusterIPs and NodePorts at random; kemu takes the
lowest free one so that a file always yields the same addresses. Requested values are
checked the way the API server checks them, with its messages. The LB IPs come from the
pool, as MetalLB's controller assigns them; an exhausted pool leaves the Service pending.
`allocate()` is pure: it returns new statuses or raises, changing nothing. Its memo
(emu/controllers/service_alloc_memo.py) makes a small change cost little.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import TypeVar

from emu.controllers.changelog import LoggedDict
from emu.controllers.lb_pool import pool_addresses
from emu.controllers.service_alloc_memo import _LOCK, _MEMOS, _Memo
from emu.controllers.service_ranges import NODE_PORT_MAX, NODE_PORT_MIN, RESERVED_OFFSETS, port_key
from emu.errors import Problem, ValidationError
from emu.model.objects import ClusterSpec
from emu.model.services import Service, ServiceStatus

_T = TypeVar("_T")


def _next_free(it: Iterator[_T], used: set[_T]) -> _T | None:
    """The next value of `it` not in `used` (now taken), or None when `it` runs out."""
    for v in it:
        if v not in used:
            used.add(v)
            return v
    return None


def allocate(
    spec: ClusterSpec,
    services: list[Service],
    old: Mapping[str, ServiceStatus],
    where: dict[str, tuple[str, str]] | None = None,
) -> dict[str, ServiceStatus]:
    """Statuses for every Service in `services` (the complete desired set).

    Pure in effect: what a full run gives. A memo of the last result (per ClusterSpec)
    makes a call that changes a few Services cost what they do, not what all do; any
    case it does not prove equal to a full run (a conflict, a problem, an order it does
    not know) runs in full."""
    with _LOCK:
        memo = _MEMOS.get(id(spec))
        if memo is not None and memo.spec is spec:
            got = memo.allocate(services, old)
            if got is not None:
                return got
        out = _allocate_full(spec, services, old, where)
        _MEMOS.pop(id(spec), None)
        while len(_MEMOS) >= 8:
            del _MEMOS[next(iter(_MEMOS))]
        memo = _Memo.of(spec, services, out)
        if memo is not None:
            _MEMOS[id(spec)] = memo
        return out


def allocate_changes(
    spec: ClusterSpec,
    current: Mapping[str, Service],
    proposed: list[Service],
    old: Mapping[str, ServiceStatus],
    where: dict[str, tuple[str, str]] | None = None,
) -> dict[str, ServiceStatus | None]:
    """`allocate` for the Services of `current` with `proposed` put in (a changed one in
    its place, new ones last), as changes to `old`: key → its new status (None: it has
    none any more). With the store's LoggedDicts this costs what changed (see the memo)."""
    if isinstance(current, LoggedDict) and isinstance(old, LoggedDict):
        with _LOCK:
            memo = _MEMOS.get(id(spec))
            if memo is not None and memo.spec is spec:
                got = memo.allocate_keyed(current, proposed, old)
                if got is not None:
                    return dict(got)
    services = dict(current)
    for svc in proposed:
        services[svc.key] = svc
    full = allocate(spec, list(services.values()), old, where)
    out: dict[str, ServiceStatus | None] = {k: st for k, st in full.items() if (was := old.get(k)) is not st and was != st}
    out.update((k, None) for k in old if k not in full)
    if isinstance(current, LoggedDict) and isinstance(old, LoggedDict):
        with _LOCK:
            memo = _MEMOS.get(id(spec))
            if memo is not None and memo.spec is spec:
                touched = list(dict.fromkeys(s.key for s in proposed))
                memo.mark(current, old, [k for k in touched if k not in current], touched, out)
    return out


def _allocate_full(
    spec: ClusterSpec,
    services: list[Service],
    old: Mapping[str, ServiceStatus],
    where: dict[str, tuple[str, str]] | None = None,
) -> dict[str, ServiceStatus]:
    where = where or {}
    problems: list[Problem] = []
    net = ipaddress.IPv4Network(spec.service_cidr)
    used_ips: set[str] = set()
    used_ports: set[int] = set()
    used_lb: set[str] = set()
    out: dict[str, ServiceStatus] = {}

    def problem(svc: Service, path: str, msg: str) -> None:
        file, base = where.get(f"Service/{svc.key}", ("<cluster>", ""))
        problems.append(Problem(file, f"{base}.{path}" if base else path, msg))

    # Pass 1: what each Service keeps or asks for; later passes fill in the rest.
    for svc in services:
        prev = old.get(svc.key, ServiceStatus())
        ip = ""
        if svc.type != "ExternalName" and not svc.headless:
            if svc.cluster_ip:
                if prev.cluster_ip and svc.cluster_ip != prev.cluster_ip:
                    problem(svc, "spec.clusterIPs[0]", f"Invalid value: {svc.cluster_ip!r}: field is immutable")
                elif ipaddress.IPv4Address(svc.cluster_ip) not in net:
                    problem(
                        svc,
                        "spec.clusterIPs",
                        f"Invalid value: [{svc.cluster_ip!r}]: failed to allocate IP {svc.cluster_ip}: the provided IP "
                        f"({svc.cluster_ip}) is not in the valid range. The range of valid IPs is {net}",
                    )
                elif svc.cluster_ip in used_ips:
                    problem(
                        svc,
                        "spec.clusterIPs",
                        f"Invalid value: [{svc.cluster_ip!r}]: failed to allocate IP {svc.cluster_ip}: provided IP is already allocated",
                    )
                ip = svc.cluster_ip
            else:
                ip = prev.cluster_ip
            if ip:
                used_ips.add(ip)
        ports: dict[str, int] = {}
        if svc.has_node_ports:
            for i, p in enumerate(svc.ports):
                k = port_key(svc, i)
                want = p.node_port or prev.node_ports.get(k, 0)
                if want:
                    if want in used_ports:
                        problem(svc, f"spec.ports[{i}].nodePort", f"Invalid value: {want}: provided port is already allocated")
                    used_ports.add(want)
                    ports[k] = want
        hc = 0
        if svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local":
            hc = svc.health_check_node_port or prev.health_check_node_port
            if hc:
                if hc in used_ports:
                    problem(svc, "spec.healthCheckNodePort", f"Invalid value: {hc}: provided port is already allocated")
                used_ports.add(hc)
        lb = ""
        if svc.type == "LoadBalancer":
            lb = svc.load_balancer_ip or prev.lb_ip
            if lb:
                if lb in used_lb:
                    problem(svc, "spec.loadBalancerIP", f"Invalid value: {lb!r}: already assigned to another Service")
                used_lb.add(lb)
        out[svc.key] = ServiceStatus(ip, ports, hc, lb)

    pool = pool_addresses(spec)
    for svc in services:
        if svc.type == "LoadBalancer" and svc.load_balancer_ip and svc.load_balancer_ip not in pool:
            problem(svc, "spec.loadBalancerIP", f"Invalid value: {svc.load_balancer_ip!r}: not in the load-balancer pool")
    if problems:
        raise ValidationError(problems)

    # Pass 2: dynamic allocations, lowest free first, in the order Services were given.
    free_ip = (str(net.network_address + i) for i in range(1, net.num_addresses - 1) if i not in RESERVED_OFFSETS)
    free_port = iter(range(NODE_PORT_MIN, NODE_PORT_MAX + 1))
    free_lb = iter(pool)

    for svc in services:
        st = out[svc.key]
        cluster_ip: str | None = st.cluster_ip
        if not cluster_ip and svc.type != "ExternalName" and not svc.headless:
            cluster_ip = _next_free(free_ip, used_ips)
            if cluster_ip is None:
                problems.append(Problem("<cluster>", svc.key, f"no free ClusterIP left in {net}"))
        ports = dict(st.node_ports)
        if svc.has_node_ports:
            for i in range(len(svc.ports)):
                k = port_key(svc, i)
                if k not in ports:
                    got = _next_free(free_port, used_ports)
                    if got is None:
                        problems.append(Problem("<cluster>", svc.key, "no free NodePort left"))
                    else:
                        ports[k] = got
        hc = st.health_check_node_port
        if svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local" and not hc:
            hc = _next_free(free_port, used_ports) or 0
        lb = st.lb_ip
        if svc.type == "LoadBalancer" and not lb:
            lb = _next_free(free_lb, used_lb) or ""  # pool empty: <pending>
        out[svc.key] = ServiceStatus(cluster_ip or "", ports, hc, lb)
    if problems:
        raise ValidationError(problems)
    return out
