#!/usr/bin/env python3
"""NetworkPolicy at scale: P policies over N pods.

    sudo .venv/bin/python bench/policy.py [--pods N] [--policies P ...]

Prints, for each P: compile time (every node's ruleset; pods spread over 10 nodes),
apply time (the busiest node's table, one nft transaction, in a throwaway namespace),
time for one label change to take effect (every node through the caching compiler, as
PolicyPlane does, + apply node-1's changed sets), and the
first-packet latency of a new connection into a pod selected by every policy (median TCP
connect from a client namespace, across the policy-checking node namespace).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lab

from emu.config.kinds import build_selector
from emu.dataplane import netns
from emu.dataplane.run import run
from emu.model.objects import Container, ContainerPort, Meta, PodSpec, PodView
from emu.model.policy import NetworkPolicy, Peer, PolicyPort, PolicyRule
from emu.netfilter.backend import open_backend
from emu.policy.compile import NodePolicyInput, NodeRuleset, update_text
from emu.policy.incremental import PolicyCompiler
from emu.policy.oracle import View

NODES = 10
SPEC = PodSpec((Container("c", ports=(ContainerPort(80),)),))
NODE, CLIENT, SERVER = "kemu-pbench-node", "kemu-pbench-client", "kemu-pbench-server"


def cluster(n_pods: int, n_policies: int, server_ip: str = "10.244.0.2") -> tuple[View, list[PodView]]:
    pods = [
        PodView(
            f"ns-{i % 10}",
            f"p{i}",
            {"app": f"a{i % 50}", "tier": f"t{i % 7}"},
            f"10.244.{i // 250}.{i % 250 + 2}",
            f"node-{i % NODES + 1}",
            SPEC,
        )
        for i in range(n_pods)
    ]
    pods[0] = PodView("ns-0", "server", {"app": "server", "tier": "t0"}, server_ip, "node-1", SPEC)
    nss = {f"ns-{i}": {"kubernetes.io/metadata.name": f"ns-{i}", "team": f"team-{i % 3}"} for i in range(10)}
    pols = []
    for j in range(n_policies):
        # Every policy selects the server pod (worst case for its node) and some others.
        sel = build_selector({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["t0", f"t{j % 7}"]}]})
        peer = Peer(
            pod_selector=build_selector({"matchLabels": {"app": f"a{j % 50}"}}),
            namespace_selector=build_selector({"matchLabels": {"team": f"team-{j % 3}"}}),
        )
        last = j == n_policies - 1
        if last:  # the one that lets the client in: app=client in any namespace
            peer = Peer(pod_selector=build_selector({"matchLabels": {"app": "client"}}), namespace_selector=build_selector({}))
        rule = PolicyRule((peer,), (PolicyPort("TCP", 80),))
        pols.append(NetworkPolicy(Meta(f"pol-{j}", f"ns-{j % 10}" if not last else "ns-0"), sel, ("Ingress",), (rule,)))
    pods.append(PodView("ns-1", "client", {"app": "client"}, "10.244.9.250", "node-2", SPEC))
    return View(nss, tuple(pols), {f"node-{i + 1}": frozenset({f"172.30.0.{i + 2}"}) for i in range(NODES)}), pods


def setup() -> None:
    netns.ensure_run_dir()
    for n in (NODE, CLIENT, SERVER):
        run(["ip", "netns", "add", n])
    for peer, ip, _gw in ((CLIENT, "10.244.9.250/16", "10.244.9.1"), (SERVER, "10.244.0.2/16", "10.244.0.1")):
        dev = "c0" if peer == CLIENT else "s0"
        run(["ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", peer], netns_name=NODE)
        run(["ip", "link", "set", dev, "up"], netns_name=NODE)
        run(["ip", "addr", "add", ip, "dev", "eth0"], netns_name=peer)
        run(["ip", "link", "set", "eth0", "up"], netns_name=peer)
    # Route between the two halves through the node (two /24s carved out of the /16s).
    run(["ip", "addr", "add", "10.244.9.1/24", "dev", "c0"], netns_name=NODE)
    run(["ip", "addr", "add", "10.244.0.1/24", "dev", "s0"], netns_name=NODE)
    run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], netns_name=NODE)
    run(["ip", "route", "replace", "10.244.0.0/24", "via", "10.244.9.1"], netns_name=CLIENT)
    run(["ip", "route", "replace", "10.244.9.0/24", "via", "10.244.0.1"], netns_name=SERVER)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--policies", type=int, nargs="*", default=[0, 10, 100, 1000])
    args = ap.parse_args()
    setup()
    srv = lab.serve(SERVER, 80)
    nft = open_backend(NODE)  # as PolicyPlane: libnftables in-process, bound to the node
    try:
        print(f"{args.pods} pods over {NODES} nodes")
        print(f"{'P':>6} {'compile (all nodes)':>20} {'apply (node-1)':>15} {'label change':>13} {'new-connection latency':>23}")
        for p in args.policies:
            view, pods = cluster(args.pods, max(p, 1))
            if p == 0:
                view = View(view.namespaces, (), view.node_ips)
            compiler = PolicyCompiler()  # as PolicyPlane: compiled pieces kept across syncs

            def compile_all(pods: tuple[PodView, ...], compiler: PolicyCompiler = compiler, view: View = view) -> dict[str, NodeRuleset]:
                return {
                    f"node-{i + 1}": compiler.compile(view, NodePolicyInput(f"node-{i + 1}", (f"172.30.0.{i + 2}",), pods))
                    for i in range(NODES)
                }

            t = time.perf_counter()
            rulesets = compile_all(tuple(pods))
            t_compile = time.perf_counter() - t
            t = time.perf_counter()
            nft.run(rulesets["node-1"].text)
            t_apply = time.perf_counter() - t
            lat = lab.connect_ms(CLIENT, "10.244.0.2", 80)
            # One label change: a pod of node-1 joins a peer group; recompile that node, apply.
            pods2 = list(pods)
            victim = next(i for i, x in enumerate(pods2) if x.node == "node-1" and x.name != "server")
            x = pods2[victim]
            pods2[victim] = PodView(x.namespace, x.name, {**x.labels, "app": "client"}, x.ip, x.node, x.spec)
            t = time.perf_counter()
            # As PolicyPlane.sync: every node through the compiler, then node-1's changed sets.
            new = compile_all(tuple(pods2))["node-1"]
            nft.run(update_text(rulesets["node-1"], new) or new.text)
            t_label = time.perf_counter() - t
            print(f"{p:>6} {t_compile * 1000:>18.0f}ms {t_apply * 1000:>13.0f}ms {t_label * 1000:>11.0f}ms {lat:>21.3f}ms")
    finally:
        srv.close()
        for n in (NODE, CLIENT, SERVER):
            subprocess.run(["ip", "netns", "del", n], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
