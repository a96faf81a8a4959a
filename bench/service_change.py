#!/usr/bin/env python3
"""A one-Service change in a running cluster with K Services, end to end.

    sudo .venv/bin/python bench/service_change.py [--services K] [--nodes N] [--runs R] [--profile]

Brings up N nodes and 3 pods, applies K Services that select them (3 endpoints each),
then R times applies one of them changed (its targetPort flips between 80 and 8080)
and times `Cluster.apply` from the call to its return: the store, the controllers, the
EndpointSlices, every node's proxy (compile, render, the kernel transaction), policies,
hostports, load balancers. Prints the median and the proxy sync time the nodes report
(`status.dataplane.proxy.lastSyncDurationMs`). `--profile` prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lab

from emu.cluster.runtime import Cluster
from emu.config.kinds import typed_kinds
from emu.config.loader import ParsedManifests, manifests_of
from emu.daemon.host import raise_fd_limit

NAME = "svcchg"


def services(k: int, changed: int | None = None, target: int = 80) -> ParsedManifests:
    """Services svc-0 … svc-(K-1) selecting the lab's pods; or only svc-`changed`."""
    build = typed_kinds()["Service"].build
    which = range(k) if changed is None else (changed,)
    order: list[tuple[str, Any]] = []
    for i in which:
        port = target if i == changed else 80
        raw = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": "default"},
            "spec": {"selector": {"app": NAME}, "ports": [{"port": 80, "targetPort": port}]},
        }
        obj = build(raw)
        order.append((f"Service/{obj.key}", obj))
    return ParsedManifests(manifests_of(order), {}, order)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--sort", default="cumtime", help="the profile's order (cumtime, tottime, ...)")
    ap.add_argument("--lines", type=int, default=30, help="the profile's length")
    args = ap.parse_args()
    raise_fd_limit()
    c = Cluster(lab.config(NAME, args.nodes, 1, (80,)))
    try:
        c.up()
        if c.wait_ready(60):
            raise SystemExit("pods not ready")
        t = time.perf_counter()
        c.apply(services(args.services))
        print(f"{args.services} Services applied at once: {time.perf_counter() - t:.2f} s")
        times, proxy = [], []
        prof = cProfile.Profile() if args.profile else None
        for r in range(args.runs):
            batch = services(args.services, changed=args.services // 2, target=8080 if r % 2 == 0 else 80)
            if prof:
                prof.enable()
            t = time.perf_counter()
            c.apply(batch)
            times.append((time.perf_counter() - t) * 1000)
            if prof:
                prof.disable()
            proxy.append(statistics.mean(c.syncer.status(n)["proxy"]["lastSyncDurationMs"] for n in c.network.nodes))
        print(f"one Service changed, {args.runs} runs, {args.nodes} nodes:")
        print(f"  Cluster.apply, end to end      median {statistics.median(times):7.2f} ms  (min {min(times):.2f}, max {max(times):.2f})")
        print(f"  of which each node's proxy     median {statistics.median(proxy):7.2f} ms  (its compile share, render, transaction)")
        if prof:
            pstats.Stats(prof).sort_stats(args.sort).print_stats(args.lines)
    finally:
        c.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
