#!/usr/bin/env python3
"""Gateway throughput, latency, programming time and loss across changes.

    sudo .venv/bin/python bench/gateway.py [--seconds S] [--routes N] [--changes N]

Brings up a cluster (2 nodes, an external host `client`) with an echo-basic Deployment
(2 pods) and measures from the external host, with wrk (2 threads, 32 keep-alive
connections), side by side in one run, rounds interleaved:
  - gateway: a Gateway (HAProxy pods behind a LoadBalancer Service) and one HTTPRoute;
  - by hand: the same HAProxy, configured by hand for one route (a frontend and a backend
    of the two pod IPs), in a pod behind its own LoadBalancer Service — the ceiling;
  - direct:  a LoadBalancer Service straight to the echo pods (no L7 proxy).
Then: the time to program N HTTPRoutes (default 1,000) in one `apply` (returns when the
proxy serves them), and one route change at N; and the failed requests of wrk running
while the route it uses changes backends C times (default 100).
Targets: gateway ≥ 90% of by-hand throughput; N=1,000 routes ≤ 1 s; one change ≤ 100 ms;
zero failed requests.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emu.cluster.runtime import Cluster
from emu.config.loader import load_manifest_texts
from emu.daemon.host import raise_fd_limit
from emu.gateway.testing import echo_backend
from emu.model.objects import ClusterConfig, ClusterSpec, ExternalHostDecl, Manifests, NodeDecl

NS = "default"
ROUTE_API = "gateway.networking.k8s.io/v1"


def lb_service(name: str, selector: dict[str, str], port: int, target: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": selector, "ports": [{"name": "http", "port": port, "targetPort": target}]},
    }


def route(name: str, host: str, backend: str, path: str = "/") -> dict[str, Any]:
    return {
        "apiVersion": ROUTE_API,
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "bench"}],
            "hostnames": [host],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}], "backendRefs": [{"name": backend, "port": 8080}]}],
        },
    }


GATEWAY = {
    "apiVersion": ROUTE_API,
    "kind": "Gateway",
    "metadata": {"name": "bench"},
    "spec": {"gatewayClassName": "kemu", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
}


def hand_config(pod_ips: list[str]) -> str:
    servers = "".join(f"    server s{i} {ip}:3000\n" for i, ip in enumerate(pod_ips))
    return (
        "global\n    master-worker\n\n"
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n    option http-keep-alive\n\n"
        "frontend fe\n    bind :80\n    use_backend be if { hdr(host) -i bench.example }\n"
        '    http-request return status 404 content-type text/plain string "no route" unless { hdr(host) -i bench.example }\n\n'
        f"backend be\n    balance roundrobin\n{servers}"
        "\nfrontend health\n    bind :10254\n    monitor-uri /healthz\n"
    )


def hand_proxy(cfg: str) -> list[dict[str, Any]]:
    labels = {"app": "hand"}
    container = {
        "name": "haproxy",
        "image": "docker.io/library/haproxy:2.6",
        "command": ["haproxy", "-W", "-db", "-f", cfg],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 10254}, "periodSeconds": 1},
    }
    return [
        lb_service("hand", labels, 80, 80),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "hand"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        },
    ]


def apply(c: Cluster, docs: list[dict[str, Any]]) -> float:
    """`kemu apply` as the daemon does it (parse, validate, apply, wait for the proxies); seconds."""
    text = yaml.safe_dump_all(docs)
    t0 = time.perf_counter()
    c.apply(load_manifest_texts([("bench", text)], NS))
    late = c.wait_gateways(30.0)
    took = time.perf_counter() - t0
    if late:
        raise RuntimeError(f"not programmed: {late}")
    return took


def wait_ready(c: Cluster, timeout: float = 60.0) -> None:
    left = c.wait_ready(timeout)
    if left:
        raise RuntimeError(f"not ready: {left}")


def lb_ip(c: Cluster, name: str) -> str:
    st = c.store.service_status[f"{NS}/{name}"]
    return st.lb_ip


def wrk(netns: str, url: str, host: str, seconds: float, conns: int = 32) -> dict[str, float]:
    argv = [
        "ip",
        "netns",
        "exec",
        netns,
        "wrk",
        "-t2",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-H",
        f"Host: {host}",
        url,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1)) for p in ("50", "99")}  # type: ignore[union-attr]
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"], "errors": errors, "non2xx": non2xx, "total": total}


def _ms(s: str) -> float:
    v, unit = re.match(r"([\d.]+)(\w+)", s).groups()  # type: ignore[union-attr]
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--routes", type=int, default=1000)
    p.add_argument("--changes", type=int, default=100)
    a = p.parse_args()
    raise_fd_limit()
    spec = ClusterSpec("gwbench", nodes=(NodeDecl("node-1"), NodeDecl("node-2")), external_hosts=(ExternalHostDecl("client"),))
    c = Cluster(ClusterConfig(spec, Manifests(), source="gwbench"))
    tmp = tempfile.mkdtemp(prefix="kemu-gwbench-")
    try:
        c.up()
        client = c.network.hosts["client"].name
        apply(c, [*echo_backend("echo", NS, 2), *echo_backend("echo2", NS, 2), lb_service("direct", {"app": "echo"}, 80, 3000)])
        wait_ready(c)
        ips = sorted(st.ip for st in c.pods.values() if st.pod.meta.labels.get("app") == "echo")
        cfg = os.path.join(tmp, "hand.cfg")
        with open(cfg, "w") as f:
            f.write(hand_config(ips))
        apply(c, [GATEWAY, route("main", "bench.example", "echo"), *hand_proxy(cfg)])
        wait_ready(c)
        gw_ip = next(st.lb_ip for k, st in c.store.service_status.items() if k.startswith(f"{NS}/bench-"))
        targets = {"gateway": gw_ip, "by hand": lb_ip(c, "hand"), "direct": lb_ip(c, "direct")}
        results: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
        for _ in range(a.rounds):
            for name, ip in targets.items():
                results[name].append(wrk(client, f"http://{ip}/", "bench.example", a.seconds))
        print(f"throughput from the external host, wrk -t2 -c32, {a.rounds} rounds of {a.seconds:.0f} s (median):")
        med = {k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50", "p99")} for k, v in results.items()}
        for name, m in med.items():
            print(f"  {name:8s} {m['rps']:9.0f} req/s  p50 {m['p50']:6.2f} ms  p99 {m['p99']:6.2f} ms")
        ratios = sorted(g["rps"] / h["rps"] for g, h in zip(results["gateway"], results["by hand"], strict=True))
        print(
            f"  gateway / by hand: {med['gateway']['rps'] / med['by hand']['rps']:.1%} of the medians; "
            f"per round {', '.join(f'{r:.0%}' for r in ratios)} (target >= 90%)"
        )
        failed = sum(r["errors"] + r["non2xx"] for v in results.values() for r in v)
        print(f"  failed requests in these runs: {failed}")

        routes = [route(f"r{i}", f"r{i}.example", "echo") for i in range(a.routes)]
        took = apply(c, routes)
        print(
            f"program {a.routes} HTTPRoutes in one apply (parse, validate, compile, render, reload): {took * 1000:.0f} ms (target <= 1000)"
        )
        one = []
        for i in range(5):
            one.append(apply(c, [route("r7", "r7.example", "echo", path=f"/v{i}")]))
        print(f"one route change at {a.routes} routes: median {statistics.median(one) * 1000:.0f} ms of 5 (target <= 100)")

        # Changes under load: wrk on r0 while r0 moves between echo and echo2.
        box: dict[str, dict[str, float]] = {}
        # wrk runs a little longer than the changes are expected to take (so every change is under load).
        duration = 1 + a.changes * statistics.median(one) * 2
        t = threading.Thread(target=lambda: box.update(r=wrk(client, f"http://{gw_ip}/", "r0.example", duration)))
        t.start()
        t0 = time.perf_counter()
        times = []
        for i in range(a.changes):
            times.append(apply(c, [route("r0", "r0.example", ("echo2", "echo")[i % 2])]))
        spent = time.perf_counter() - t0
        t.join()
        r = box["r"]
        print(
            f"{a.changes} route changes under load ({spent:.1f} s, median change {statistics.median(times) * 1000:.0f} ms): "
            f"{r['total']:.0f} requests, {r['errors'] + r['non2xx']:.0f} failed (socket errors {r['errors']:.0f}, non-2xx {r['non2xx']:.0f}) (target 0)"
        )
    finally:
        c.down()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
