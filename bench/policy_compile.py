#!/usr/bin/env python3
"""NetworkPolicy compile time for a label change, no root: P policies over N pods.

    .venv/bin/python bench/policy_compile.py [--pods N] [--policies P] [--runs R]

Builds bench/policy.py's cluster (pods over 10 nodes) and times, for every node, what
PolicyPlane.sync compiles: before and after one pod label change (a pod of node-1 joins
the peers of the policy that lets the client in, as bench/policy.py does). The old way is
`compile_ruleset` for every node with a per-sync cache; the new way is one
`PolicyCompiler` kept across syncs, its cache warm. Prints medians over R runs and checks
that both ways give the same rulesets.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import TypeVar

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from policy import NODES, cluster

from emu.model.objects import PodView
from emu.policy.compile import NodePolicyInput, NodeRuleset, compile_ruleset, update_text
from emu.policy.incremental import PolicyCompiler
from emu.policy.oracle import View

T = TypeVar("T")
NODE_ADDRS = {f"node-{i + 1}": (f"172.30.0.{i + 2}", f"10.244.{i}.1") for i in range(NODES)}


def relabelled(pods: list[PodView], app: str) -> list[PodView]:
    """bench/policy.py's label change: a pod of node-1 (not the server) gets app=`app`."""
    out = list(pods)
    i = next(i for i, x in enumerate(out) if x.node == "node-1" and x.name != "server")
    x = out[i]
    out[i] = PodView(x.namespace, x.name, {**x.labels, "app": app}, x.ip, x.node, x.spec)
    return out


def old_sync(view: View, pods: list[PodView]) -> dict[str, NodeRuleset]:
    cache: dict[tuple[str, str, int], list[str]] = {}  # as PolicyPlane.sync today
    return {n: compile_ruleset(view, NodePolicyInput(n, a, tuple(pods)), cache) for n, a in NODE_ADDRS.items()}


def new_sync(compiler: PolicyCompiler, view: View, pods: list[PodView]) -> dict[str, NodeRuleset]:
    t = tuple(pods)
    return {n: compiler.compile(view, NodePolicyInput(n, a, t)) for n, a in NODE_ADDRS.items()}


def update_changed(old: dict[str, NodeRuleset], new: dict[str, NodeRuleset]) -> list[str | None]:
    """What PolicyPlane._apply computes for the nodes whose ruleset changed."""
    return [update_text(old[n], new[n]) for n in new if new[n] is not old[n] and new[n].text != old[n].text]


def timed(fn: Callable[..., T], *args: object) -> tuple[float, T]:
    t = time.perf_counter()
    out = fn(*args)
    return (time.perf_counter() - t) * 1000, out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--policies", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    view, pods = cluster(args.pods, args.policies)
    variants = [pods, relabelled(pods, "client"), relabelled(pods, "other")]
    rows: dict[str, list[float]] = {}

    def add(name: str, ms: float) -> None:
        rows.setdefault(name, []).append(ms)

    for _ in range(args.runs):
        ms, before = timed(old_sync, view, pods)
        add("old: every node, cold", ms)
        ms, after = timed(old_sync, view, variants[1])
        add("old: every node, after the label change", ms)
        ms, _ = timed(compile_ruleset, view, NodePolicyInput("node-1", NODE_ADDRS["node-1"], tuple(variants[1])))
        add("old: node-1 only (bench/policy.py)", ms)
        compiler = PolicyCompiler()
        ms, cold = timed(new_sync, compiler, view, pods)
        add("new: every node, cold", ms)
        ms, _ = timed(new_sync, compiler, view, pods)
        add("new: every node, nothing changed", ms)
        ms, warm_after = timed(new_sync, compiler, view, variants[1])
        add("new: every node, after the label change", ms)
        ms, _ = timed(update_changed, cold, warm_after)
        add("both: update_text for the nodes that changed", ms)
        ms, _ = timed(new_sync, compiler, view, variants[2])
        add("new: every node, a second label change", ms)
        ms, back = timed(new_sync, compiler, view, pods)
        add("new: every node, label changed back", ms)
        # Cluster.pod_views() makes new PodView objects on every sync (same labels and spec).
        rebuilt = [dataclasses.replace(p) for p in variants[1]]
        ms, again = timed(new_sync, compiler, view, rebuilt)
        add("new: every node, the change, all PodViews new", ms)
        assert all(cold[n].text == before[n].text and warm_after[n].text == after[n].text for n in NODE_ADDRS)
        assert all(back[n].text == before[n].text and again[n].text == after[n].text for n in NODE_ADDRS)
    changed = sum(before[n].text != after[n].text for n in NODE_ADDRS)
    print(f"{args.pods} pods, {args.policies} policies, {NODES} nodes; the label change alters {changed} node(s)'s rulesets")
    print(f"median of {args.runs} runs:")
    for name, values in rows.items():
        print(f"  {name:<45} {statistics.median(values):>9.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
