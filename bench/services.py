#!/usr/bin/env python3
"""Service proxy at scale: K Services × 3 endpoints in one node namespace.

    sudo .venv/bin/python bench/services.py [K ...]     (default: 1000 10000)

For each K and both backends, side by side: the time of a full sync (render + apply),
of a one-Service change (nftables: the incremental transaction; iptables: a whole
iptables-restore, which is what the iptables backend does), and the first-packet
latency to the last Service (mean TCP connect time from the node to its ClusterIP,
over fresh connections). Everything lives in two throwaway namespaces.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lab

from emu.dataplane import netns
from emu.dataplane.run import run
from emu.netfilter.backend import open_backend
from emu.proxy import iptables_render, nft_render
from emu.proxy.plan import Backend, ProxyPlan, ServicePortPlan

NODE, POD = "kemu-bench-node", "kemu-bench-pod"
EPS = ("10.244.0.2", "10.244.0.3", "10.244.0.4")


def plan(k: int, version: int = 0) -> ProxyPlan:
    base = ipaddress.IPv4Address("10.96.0.0")
    out = []
    for i in range(k):
        eps = tuple(Backend(ip, 8080, "node") for ip in EPS)
        if version == 1 and i == k // 2:
            eps = eps[:2]  # the one change: an endpoint goes
        if version == 2 and i == k // 3:
            eps = eps[1:]  # the warm-up change
        out.append(
            ServicePortPlan(
                f"ns/svc-{i}/tcp/80", "tcp", str(base + 2 + i), 80, cluster_endpoints=eps, external_endpoints=eps, has_endpoints=True
            )
        )
    return ProxyPlan("node", ("172.30.0.2",), "10.244.0.0/16", tuple(out))


def setup() -> None:
    netns.ensure_run_dir()
    for name in (NODE, POD):
        run(["ip", "netns", "add", name])
    run(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", POD], netns_name=NODE)
    run(["ip", "addr", "add", "10.244.0.1/24", "dev", "eth0"], netns_name=NODE)
    run(["ip", "link", "set", "eth0", "up"], netns_name=NODE)
    run(["ip", "link", "set", "lo", "up"], netns_name=NODE)
    run(["ip", "route", "add", "10.96.0.0/12", "dev", "eth0"], netns_name=NODE)
    for ip in EPS:
        run(["ip", "addr", "add", f"{ip}/24", "dev", "eth0"], netns_name=POD)
    run(["ip", "link", "set", "eth0", "up"], netns_name=POD)


def clear() -> None:
    run(["nft", "flush", "ruleset"], netns_name=NODE)


def bench(k: int) -> dict[str, dict[str, float]]:
    nft = open_backend(NODE)  # what the proxier uses: libnftables in-process, bound to the node
    p0, p1 = plan(k), plan(k, 1)
    last_vip = p0.services[-1].cluster_ip
    res: dict[str, dict[str, float]] = {}
    # nftables
    clear()
    t = time.perf_counter()
    r0 = nft_render.render_all(p0)
    script = nft_render.render_full(p0, r0)
    t_render = time.perf_counter() - t
    t = time.perf_counter()
    nft.run(script)
    t_apply = time.perf_counter() - t
    lat = lab.connect_ms(NODE, last_vip, 80)
    state = nft_render.NftState(p0, r0)  # what the proxier keeps between syncs
    # A running proxier has synced before: one warm-up change (libnftables fills its
    # cache on the first command after a full load), then the measured one.
    warm = plan(k, 2)
    nft.run(state.update({sp.id: nft_render.render_service(warm, sp) for sp in warm.services if sp != p0.by_id()[sp.id]}))  # type: ignore[misc]
    # As Proxier.sync: PlanCompiler names the changed service ports (its own cost, ~2 ms
    # at 10,000 Services, is bench/services_compile.py's); re-render them, apply the delta.
    before, after = warm.by_id(), p1.by_id()
    ids = [sid for sid, sp in after.items() if before.get(sid) != sp]
    t = time.perf_counter()
    changed = {sid: nft_render.render_service(p1, after[sid]) for sid in ids}
    update = state.update(changed)  # type: ignore[arg-type]
    nft.run(update)
    t_change = time.perf_counter() - t
    res["nftables"] = {"full": t_render + t_apply, "render": t_render, "change": t_change, "latency": lat}
    clear()
    # iptables
    t = time.perf_counter()
    text = iptables_render.render(p0)
    t_render = time.perf_counter() - t
    t = time.perf_counter()
    run(["iptables-restore", "-w", "5"], netns_name=NODE, input=text, timeout=600)
    t_apply = time.perf_counter() - t
    lat = lab.connect_ms(NODE, last_vip, 80)
    t = time.perf_counter()
    run(["iptables-restore", "-w", "5"], netns_name=NODE, input=iptables_render.render(p1), timeout=600)
    t_change = time.perf_counter() - t
    res["iptables"] = {"full": t_render + t_apply, "render": t_render, "change": t_change, "latency": lat}
    run(["iptables", "-t", "nat", "-F"], netns_name=NODE)
    run(["iptables", "-t", "filter", "-F"], netns_name=NODE)
    clear()
    return res


def main() -> int:
    ks = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    setup()
    srv = lab.serve(POD, 8080)
    try:
        baseline = lab.connect_ms(NODE, EPS[0], 8080)
        print(f"first-packet latency straight to an endpoint (no rules): {baseline:.3f} ms")
        print(f"{'K':>7} {'backend':>9} {'full sync':>10} {'(render)':>9} {'1-svc change':>13} {'first packet':>13}")
        for k in ks:
            for backend, r in bench(k).items():
                print(
                    f"{k:>7} {backend:>9} {r['full'] * 1000:>8.0f}ms {r['render'] * 1000:>7.0f}ms {r['change'] * 1000:>11.1f}ms {r['latency']:>11.3f}ms"
                )
    finally:
        srv.close()
        for name in (NODE, POD):
            subprocess.run(["ip", "netns", "del", name], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
