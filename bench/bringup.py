#!/usr/bin/env python3
"""Bring-up and tear-down of N nodes × M pods, against plain Mininet in the same run.

    sudo .venv/bin/python bench/bringup.py N M [--no-mininet]

Prints, for kemu: time until every pod is Ready and reachable (a TCP connection from
node 1's namespace to port 80 of every pod), time to tear down, peak RSS of the process,
and the kernel memory the cluster holds (MemAvailable before and after bring-up). Then,
as the reference, plain Mininet with N×M hosts on one LinuxBridge (build + start, stop),
in a child process.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lab

from emu.cluster.runtime import Cluster
from emu.daemon.host import raise_fd_limit
from emu.traffic.probe import Client, Target, run_matrix


def mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def bench_kemu(nodes: int, per_node: int) -> dict[str, float]:
    raise_fd_limit()
    mem0 = mem_available_kib()
    t0 = time.perf_counter()
    c = Cluster(lab.config("bench", nodes, per_node, (80,)))
    try:
        c.up()
        t_built = time.perf_counter() - t0
        unready = c.wait_ready(120)
        if unready:
            raise SystemExit(f"{len(unready)} pods not ready")
        fd = os.open(f"/run/netns/{c.network.nodes['node-1'].name}", os.O_RDONLY)
        targets = [Target(k, st.ip, 80, "TCP") for k, st in c.pods.items() if st.pod.meta.namespace == "default"]  # not the DNS pods
        results = c.server.call(run_matrix([Client("node-1", fd)], targets, 5.0), timeout=120)
        os.close(fd)
        t_up = time.perf_counter() - t0
        bad = [r for r in results if not r.connected]
        if bad:
            raise SystemExit(f"{len(bad)} pods unreachable, e.g. {bad[0]}")
        mem_cluster = (mem0 - mem_available_kib()) / 1024
    finally:
        t1 = time.perf_counter()
        c.down()
        t_down = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"built": t_built, "up": t_up, "down": t_down, "rss": peak, "kernel": mem_cluster}


MININET_CHILD = """
import sys, time, resource
from mininet.net import Mininet
from mininet.nodelib import LinuxBridge
from mininet.topo import SingleSwitchTopo
from mininet.log import setLogLevel
setLogLevel("error")
n = int(sys.argv[1])
t0 = time.perf_counter()
net = Mininet(topo=SingleSwitchTopo(n), switch=LinuxBridge, controller=None)
net.start()
t_up = time.perf_counter() - t0
t1 = time.perf_counter()
net.stop()
t_down = time.perf_counter() - t1
print(t_up, t_down, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def bench_mininet(hosts: int) -> dict[str, float] | str:
    try:
        cp = subprocess.run([sys.executable, "-c", MININET_CHILD, str(hosts)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return "timed out after 900 s"
    if cp.returncode != 0:
        return f"failed: {cp.stderr.strip()[-300:]}"
    up, down, rss = (float(x) for x in cp.stdout.split()[-3:])
    return {"up": up, "down": down, "rss": rss}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("nodes", type=int)
    ap.add_argument("pods_per_node", type=int)
    ap.add_argument("--no-mininet", action="store_true", help="skip the plain-Mininet reference")
    args = ap.parse_args()
    n, m = args.nodes, args.pods_per_node
    print(f"kemu: {n} nodes x {m} pods = {n * m} pods")
    k = bench_kemu(n, m)
    print(f"  namespaces and links built   {k['built']:7.2f} s")
    print(f"  all Ready and reachable      {k['up']:7.2f} s")
    print(f"  torn down                    {k['down']:7.2f} s")
    print(f"  peak RSS (kemu process)      {k['rss']:7.0f} MiB")
    print(f"  kernel memory held (approx)  {k['kernel']:7.0f} MiB")
    if not args.no_mininet:
        print(f"plain Mininet: {n * m} hosts on one LinuxBridge (reference)")
        r = bench_mininet(n * m)
        if isinstance(r, str):
            print(f"  {r}")
        else:
            print(f"  built and started            {r['up']:7.2f} s")
            print(f"  stopped                      {r['down']:7.2f} s")
            print(f"  peak RSS (mininet process)   {r['rss']:7.0f} MiB")
            print(f"ratio up {r['up'] / k['up']:.1f}x, down {r['down'] / max(k['down'], 1e-3):.1f}x in kemu's favour")
    return 0


if __name__ == "__main__":
    sys.exit(main())
