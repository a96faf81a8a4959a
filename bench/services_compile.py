#!/usr/bin/env python3
"""Service proxy plans at scale, no root: K Services × 3 endpoints, one node.

    .venv/bin/python bench/services_compile.py [--services K] [--runs R] [--profile]

The pure-Python half of a one-Service change (one endpoint goes, as bench/services.py),
old way and new way side by side, medians of R runs:
- old: `compile_plan` over every Service, then what Proxier.sync does to find the
  change (`plan == previous`, `by_id()` on both, compare every service port) and what
  its `flush_stale_udp` walks (every service port of both plans);
- new: one `PlanCompiler` kept across syncs (`update`, then `plan`, which names the
  changed service ports);
- both: `render_service` for the changed ports and `NftState.update` (the transaction
  text). The kernel's part (`nft -f` of that text) is bench/services.py's, with root.
`--profile` prints where the new way's time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import ipaddress
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import TypeVar

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emu.model.objects import Meta
from emu.model.services import SERVICE_NAME_LABEL, Endpoint, EndpointPort, EndpointSlice, Service, ServicePort, ServiceStatus
from emu.proxy import nft_render
from emu.proxy.plan import PlanCompiler, ProxyPlan, compile_plan

T = TypeVar("T")
EPS = ("10.244.0.2", "10.244.0.3", "10.244.0.4")
NODE, NODE_IPS, POD_CIDR = "node", ("172.30.0.2",), "10.244.0.0/16"


def cluster(k: int) -> tuple[list[Service], dict[str, ServiceStatus], dict[str, list[EndpointSlice]]]:
    """bench/services.py's plan() as the store holds it: Services, statuses, slices."""
    base = ipaddress.IPv4Address("10.96.0.0")
    services = [Service(Meta(f"svc-{i}", "ns"), selector={"app": f"svc-{i}"}, ports=(ServicePort(80, "TCP", "", 8080),)) for i in range(k)]
    statuses = {s.key: ServiceStatus(cluster_ip=str(base + 2 + i)) for i, s in enumerate(services)}
    return services, statuses, {s.key: endpoints(s, EPS) for s in services}


def endpoints(svc: Service, ips: tuple[str, ...]) -> list[EndpointSlice]:
    meta = Meta(f"{svc.meta.name}-bcdfg", svc.meta.namespace, {SERVICE_NAME_LABEL: svc.meta.name})
    return [EndpointSlice(meta, tuple(Endpoint((ip,), node_name=NODE) for ip in ips), (EndpointPort(8080),))]


def timed(fn: Callable[..., T], *args: object) -> tuple[float, T]:
    t = time.perf_counter()
    out = fn(*args)
    return (time.perf_counter() - t) * 1000, out


def old_change(previous: ProxyPlan, plan: ProxyPlan) -> dict[str, nft_render.ServiceRender | None]:
    """What Proxier.sync does today to find and render the change."""
    if plan == previous:
        return {}
    before, after = previous.by_id(), plan.by_id()
    changed: dict[str, nft_render.ServiceRender | None] = {
        sid: nft_render.render_service(plan, sp) for sid, sp in after.items() if before.get(sid) != sp
    }
    return changed | {sid: None for sid in before if sid not in after}


def udp_bookkeeping(old: ProxyPlan, new: ProxyPlan) -> set[str]:
    """What Proxier.sync's flush_stale_udp walks today, conntrack aside: every port of both plans."""
    before = old.by_id()
    for sp in new.services:
        if sp.protocol == "udp":
            before.get(sp.id)
    return set(before) - {sp.id for sp in new.services}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    k = args.services
    services, statuses, slices = cluster(k)
    # The warm-up change (k//3 loses an endpoint), then the measured one (k//2 does).
    warm = {**slices, services[k // 3].key: endpoints(services[k // 3], EPS[1:])}
    changed = {**warm, services[k // 2].key: endpoints(services[k // 2], EPS[:2])}
    rows: dict[str, list[float]] = {}

    def add(name: str, ms: float) -> None:
        rows.setdefault(name, []).append(ms)

    for _ in range(args.runs):
        # Old way.
        ms, p0 = timed(compile_plan, NODE, NODE_IPS, POD_CIDR, services, statuses, warm)
        add("old: compile_plan, every Service", ms)
        state = nft_render.NftState(p0, nft_render.render_all(p0))
        ms1, p1 = timed(compile_plan, NODE, NODE_IPS, POD_CIDR, services, statuses, changed)
        ms2, renders = timed(old_change, p0, p1)
        ms3, _ = timed(udp_bookkeeping, p0, p1)
        ms4, text = timed(state.update, renders)
        add("old: one change: compile_plan", ms1)
        add("old: one change: find it (Proxier.sync) + render", ms2)
        add("old: one change: flush_stale_udp walk", ms3)
        add("old: one change: NftState.update", ms4)
        add("old: one change, total", ms1 + ms2 + ms3 + ms4)
        # New way.
        compiler = PlanCompiler()
        ms, c0 = timed(compiler.compile, NODE, NODE_IPS, POD_CIDR, services, statuses, warm)
        add("new: PlanCompiler, cold", ms)
        assert c0.plan == p0
        state = nft_render.NftState(c0.plan, nft_render.render_all(c0.plan))
        ms1, c1 = timed(compiler.compile, NODE, NODE_IPS, POD_CIDR, list(services), dict(statuses), dict(changed))
        ms2, renders = timed(
            lambda c: {sid: nft_render.render_service(c.plan, sp) if sp else None for sid, (_, sp) in c.changed.items()}, c1
        )
        ms4, new_text = timed(state.update, renders)
        assert c1.plan == p1 and new_text == text and set(c1.changed) == {f"ns/svc-{k // 2}/tcp/80"}
        add("new: one change: PlanCompiler update + plan", ms1)
        add("new: one change: render the changed ports", ms2)
        add("new: one change: NftState.update", ms4)
        add("new: one change, total", ms1 + ms2 + ms4)
        ms, c2 = timed(compiler.compile, NODE, NODE_IPS, POD_CIDR, services, statuses, changed)
        add("new: nothing changed", ms)
        assert c2.plan is c1.plan and not c2.changed
        # ServicePlane.sync today makes every EndpointSlice anew (slices_for) on every sync:
        # equal objects, not the same ones, so each list is compared field by field.
        rebuilt = {key: [EndpointSlice(s.meta, s.endpoints, s.ports) for s in v] for key, v in warm.items()}
        ms, _ = timed(compiler.compile, NODE, NODE_IPS, POD_CIDR, services, statuses, rebuilt)
        add("new: one change, every slice a new object", ms)
    print(f"{k} Services × 3 endpoints, one node; a one-Service change (an endpoint goes)")
    print(f"median of {args.runs} runs:")
    for name, values in rows.items():
        print(f"  {name:<52} {statistics.median(values):>9.2f} ms")
    if args.profile:
        compiler = PlanCompiler()
        c = compiler.compile(NODE, NODE_IPS, POD_CIDR, services, statuses, warm)
        state = nft_render.NftState(c.plan, nft_render.render_all(c.plan))
        prof = cProfile.Profile()
        for i in range(20):
            prof.enable()
            c = compiler.compile(NODE, NODE_IPS, POD_CIDR, list(services), dict(statuses), dict(changed if i % 2 == 0 else warm))
            state.update({sid: nft_render.render_service(c.plan, sp) if sp else None for sid, (_, sp) in c.changed.items()})
            prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
