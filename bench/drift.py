#!/usr/bin/env python3
"""Drift repair: how long a node goes without its rules when someone deletes them.

    sudo .venv/bin/python bench/drift.py [--rounds N]

Brings up topologies/quickstart.yaml (both proxy backends in turn), then N times deletes
one of kemu's tables in node-1's namespace with `nft` and times until it is back (polling
through libnftables every millisecond). Prints the median and worst restore time per table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emu.netfilter.backend import NftBackend, open_backend

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEMU = [sys.executable, "-m", "emu.cli.main"]


def restore_ms(nft: NftBackend, netns_name: str, table: str) -> float:
    subprocess.run(["ip", "netns", "exec", netns_name, "nft", "delete", "table", "ip", table], check=True)
    t0 = time.perf_counter()
    deadline = t0 + 10
    while time.perf_counter() < deadline:
        try:
            nft.run(f"list table ip {table}")
            return (time.perf_counter() - t0) * 1000
        except Exception:  # noqa: BLE001 - not there yet
            time.sleep(0.001)
    raise SystemExit(f"table ip {table} not restored within 10 s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    with open(os.path.join(REPO, "topologies", "quickstart.yaml")) as f:
        doc = yaml.safe_load(f)
    for backend in ("nftables", "iptables"):
        name = f"drift-{backend[:3]}"
        doc["metadata"]["name"] = name
        doc["spec"]["proxy"] = backend
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(doc, f)
        subprocess.run([*KEMU, "up", f.name, "-d"], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        try:
            netns_name = f"kemu-{name}.node-1"
            nft = open_backend(netns_name)
            tables = ["kemu-proxy" if backend == "nftables" else "nat", "kemu-policy", "kemu-cni"]
            for table in tables:
                times = [restore_ms(nft, netns_name, table) for _ in range(args.rounds)]
                print(f"{backend:9} table ip {table:12} restored: median {statistics.median(times):6.1f} ms, worst {max(times):6.1f} ms")
            nft.close()
        finally:
            subprocess.run([*KEMU, "down", name], check=False, cwd=REPO, stdout=subprocess.DEVNULL)
            os.unlink(f.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
