#!/usr/bin/env python3
"""Cluster DNS under load: dnsperf in a pod against the kube-dns ClusterIP.

    sudo .venv/bin/python bench/dns_cluster.py [SERVICES] [PODS] [--seconds S]

(Not bench/dns.py: a dns.py next to the bench scripts would shadow dnspython's `dns`.)

Brings up a cluster (2 nodes, more when the pods need them) with SERVICES ClusterIP Services (default 10,000) and a
Deployment of PODS pods (default 1,000), then from a pod: dnsperf with a query file of
internal names (Service names in several namespaces, A queries) for S seconds at full
speed (QPS, average latency), then again at the anchor's rate (33,669 QPS) with per-query
output for the average and p99 latency at that load; and the RSS of the DNS pods' servers. Anchor (CoreDNS's published
scaling figures, one instance on a 2-vCPU node): 33,669 QPS for internal names at 2.6 ms
average; memory (pods + services)/1000 + 54 MB.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emu.cluster.runtime import Cluster
from emu.daemon.host import raise_fd_limit
from emu.model.objects import ClusterConfig, ClusterSpec, Container, ContainerPort, Manifests, Meta, NodeDecl, PodSpec, Workload
from emu.model.selectors import LabelSelector
from emu.model.services import Service, ServicePort

ANCHOR_QPS = 33669  # CoreDNS's published figure for internal names, one instance, 2 vCPUs


def config(services: int, pods: int) -> ClusterConfig:
    spec = ClusterSpec("dnsbench", nodes=tuple(NodeDecl(f"node-{i + 1}") for i in range(max(2, -(-(pods + 4) // 250)))))
    web = Workload(
        "Deployment",
        Meta("web", "default"),
        pods,
        LabelSelector({"app": "web"}),
        {"app": "web"},
        PodSpec((Container("c", ports=(ContainerPort(80),)),)),
    )
    svcs = tuple(
        Service(Meta(f"svc-{i}", "default"), selector={"app": f"none-{i}"}, ports=(ServicePort(80, name="http"),)) for i in range(services)
    )
    return ClusterConfig(spec, Manifests(workloads=(web,), services=svcs), source="dnsbench")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def dnsperf(netns_name: str, queries: str, seconds: float, extra: list[str]) -> subprocess.CompletedProcess[str]:
    argv = [
        "ip",
        "netns",
        "exec",
        netns_name,
        "dnsperf",
        "-s",
        "10.96.0.10",
        "-d",
        queries,
        "-l",
        str(seconds),
        "-c",
        "8",
        "-T",
        "2",
        "-q",
        "200",
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("services", type=int, nargs="?", default=10000)
    ap.add_argument("pods", type=int, nargs="?", default=1000)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    raise_fd_limit()
    t0 = time.monotonic()
    c = Cluster(config(a.services, a.pods))
    try:
        c.up()
        unready = c.wait_ready(300)
        print(f"cluster: {a.services} Services, {a.pods} pods, up in {time.monotonic() - t0:.1f} s ({len(unready)} not ready)")
        client = next(st for st in c.pods.values() if st.pod.meta.name.startswith("web-"))
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            for i in range(0, a.services, max(1, a.services // 1000)):
                f.write(f"svc-{i}.default.svc.cluster.local A\n")
            queries = f.name
        full = dnsperf(client.netns, queries, a.seconds, [])
        qps = float(re.search(r"Queries per second:\s+([\d.]+)", full.stdout).group(1))  # type: ignore[union-attr]
        avg = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", full.stdout).group(1))  # type: ignore[union-attr]
        lost = re.search(r"Queries lost:\s+(\d+)", full.stdout)
        print(f"dnsperf, full speed:   {qps:,.0f} QPS, average latency {avg * 1000:.2f} ms, lost {lost.group(1) if lost else '?'}")
        rate = min(ANCHOR_QPS, int(qps * 0.9))
        paced = dnsperf(client.netns, queries, a.seconds, ["-Q", str(rate), "-v"])
        lat = sorted(float(m.group(1)) for m in re.finditer(r"^> \w+ .* ([\d.]+)$", paced.stdout, re.M))
        qps2 = re.search(r"Queries per second:\s+([\d.]+)", paced.stdout)
        if lat:
            p99 = lat[int(len(lat) * 0.99) - 1]
            print(
                f"dnsperf at {rate:,} QPS: {float(qps2.group(1)) if qps2 else 0:,.0f} QPS, "
                f"average {statistics.mean(lat) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms ({len(lat):,} queries)"
            )
        pids = [pid for pid, _ in c.dns_servers()]
        mem = [rss_kib(p) / 1024 for p in pids]
        target = (a.services + a.pods) / 1000 + 54
        print(f"DNS pods' servers: RSS {', '.join(f'{m:.0f} MiB' for m in mem)} (anchor formula: {target:.0f} MB each)")
        os.unlink(queries)
    finally:
        c.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
