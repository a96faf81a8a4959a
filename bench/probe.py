#!/usr/bin/env python3
"""The probe at scale: N nodes × M pods, every pod to every pod on ports 80 and 81 (TCP).

    sudo .venv/bin/python bench/probe.py [N M]      (default: 10 10 — 100 pods)

Prints the bring-up time, then the time of the all-to-all probe and how many of the
connections succeeded (all should: no policies).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lab

from emu.cluster.probing import probe_cluster
from emu.cluster.runtime import Cluster
from emu.daemon.host import raise_fd_limit


def main() -> int:
    n, m = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (10, 10)
    raise_fd_limit()
    c = Cluster(lab.config("pbench", n, m, (80, 81)))
    t = time.perf_counter()
    c.up()
    c.wait_ready(60)
    print(f"{n * m} pods up in {time.perf_counter() - t:.2f} s")
    try:
        t = time.perf_counter()
        res = probe_cluster(c, "pods", [80, 81], ["TCP"], 2.0)
        took = time.perf_counter() - t
        ok = sum(r.connected for r in res)
        print(f"all-to-all on 80 and 81/TCP: {len(res)} connections in {took:.2f} s, {ok} connected")
    finally:
        c.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
