#!/usr/bin/env python3
"""kemu's three pod networks (spec.cni: bridge, vxlan, routed) side by side, in one run.

    sudo .venv/bin/python bench/cni.py [--runs K] [--seconds T] [--cpu C] [--nodes N] [--pods M]
                                       [--skip-throughput] [--skip-bringup]

Throughput: TCP, one iperf3 stream of T seconds, on three paths of a 2-node cluster per
plugin (all three clusters up at once, measured in turn so the machine's noise hits
each alike): pod→pod on one node, pod→pod across nodes, pod→ClusterIP→pod across nodes
(the Service's DNAT on the client's node). The reference: a bare veth pair between two
fresh namespaces, no kemu, measured again just before each plugin's three paths. Printed:
Gbit/s and the ratio to the bare pair, beside the issue's targets (cross node: bridge
and routed >= 0.85, vxlan >= 0.60).
Both iperf3 ends run on one CPU (--cpu, default 0), so a figure is the CPU cost of the
path: veth transmit hands packets to the backlog of the CPU it runs on, and when the
sender's packets are sent from two CPUs (its own and, by TCP small queues, the
receiver's) they arrive reordered — the unpinned bare pair showed thousands of
TcpExtTCPSACKReorder and fast retransmits per second and swung between 12 and 30 Gbit/s.
Bring-up: N nodes x M pods per plugin (bench/bringup.py's kemu phase: every pod Ready
and reachable), and each plugin's time relative to bridge (target: within 10%).
Every figure is the median of K runs; the plugins' order rotates from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bringup

from emu.cluster.runtime import Cluster
from emu.config.loader import load_cluster_file
from emu.daemon.host import raise_fd_limit
from emu.dataplane import netns

PLUGINS = ("bridge", "vxlan", "routed")
PATHS = {"same": "pod→pod same node", "cross": "pod→pod cross node", "svc": "pod→ClusterIP→pod cross"}
CROSS_TARGET = {"bridge": 0.85, "vxlan": 0.60, "routed": 0.85}  # of the bare pair (issue #13)
BRINGUP_TARGET = 1.10  # of bridge's time
PORT = 5201  # iperf3's
CLUSTER_IP = "10.96.0.100"
BARE = ("cnibench-bare-s", "cnibench-bare-c")  # server, client namespaces
BARE_IPS = ("10.123.0.1", "10.123.0.2")

_servers: dict[int, subprocess.Popen[bytes]] = {}  # live iperf3 servers, by pid


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _ip(*args: str) -> None:
    cp = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if cp.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {cp.stderr.strip()}")


# --- throughput --------------------------------------------------------------------------


def topology(name: str, cni: str) -> dict[str, Any]:
    """Two nodes; the server pod and a client on node-1, a client on node-2, and a
    Service on the server pod. The pods run kemu's netexec stand-in (port 8080, for
    readiness and the reachability check); iperf3 is started in their namespaces."""

    def pod(pod_name: str, node: str, labels: dict[str, str]) -> dict[str, Any]:
        container = {
            "name": "netexec",
            "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
            "args": ["netexec", "--http-port=8080"],
            "ports": [{"name": "http", "containerPort": 8080}],
        }
        meta = {"name": pod_name, "namespace": "default", "labels": labels}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": node, "containers": [container]}}

    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "iperf", "namespace": "default"},
        "spec": {
            "clusterIP": CLUSTER_IP,
            "selector": {"app": "iperf"},
            "ports": [{"name": "iperf", "port": PORT, "targetPort": PORT}, {"name": "http", "port": 80, "targetPort": 8080}],
        },
    }
    return {
        "apiVersion": "kemu/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {
            "cni": cni,
            "dns": {"enabled": False},  # fewer processes competing for the 2 cores
            "nodes": [{"name": "node-1"}, {"name": "node-2"}],
            "resources": [
                pod("srv", "node-1", {"app": "iperf"}),
                pod("cli-a", "node-1", {"app": "client"}),
                pod("cli-b", "node-2", {"app": "client"}),
                service,
            ],
        },
    }


def reachable(ns: str, ip: str, port: int, deadline_s: float = 30.0) -> None:
    """Wait until a TCP connection from `ns` to ip:port succeeds (the Service's rules are
    written by the proxy after the endpoint turns Ready)."""
    end = time.monotonic() + deadline_s
    while True:
        with netns.entered(ns):
            s = socket.socket()
        s.settimeout(1)
        try:
            s.connect((ip, port))
            return
        except OSError as e:
            if time.monotonic() > end:
                raise RuntimeError(f"{ns}: {ip}:{port} unreachable: {e}") from e
            time.sleep(0.2)
        finally:
            s.close()


class PluginCluster:
    """A running 2-node cluster of one plugin: the namespaces and address of each path."""

    def __init__(self, cni: str, tmp: str) -> None:
        self.cni = cni
        name = f"cnibench-{cni[:3]}"
        path = os.path.join(tmp, f"{name}.yaml")
        with open(path, "w") as f:
            json.dump(topology(name, cni), f)  # JSON is YAML
        self.cluster = Cluster(load_cluster_file(path))

    def up(self) -> None:
        c = self.cluster
        c.up()
        unready = c.wait_ready(120)
        if unready:
            raise RuntimeError(f"{c.name}: not ready: {unready}")
        st = {s.pod.meta.name: s for s in c.pods.values() if s.pod.meta.namespace == "default"}
        self.server_ns = st["srv"].netns
        srv = st["srv"].ip
        # path → (client namespace, destination address)
        self.paths = {"same": (st["cli-a"].netns, srv), "cross": (st["cli-b"].netns, srv), "svc": (st["cli-b"].netns, CLUSTER_IP)}
        reachable(st["cli-a"].netns, srv, 8080)
        reachable(st["cli-b"].netns, srv, 8080)
        reachable(st["cli-b"].netns, CLUSTER_IP, 80)


@contextmanager
def iperf_server(ns: str) -> Iterator[None]:
    """`iperf3 -s -1` in `ns` (one test, then it exits); ended by its pid if still there."""
    p = subprocess.Popen(
        ["ip", "netns", "exec", ns, "iperf3", "-s", "-1", "-p", str(PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _servers[p.pid] = p
    try:
        yield
    finally:
        stop_server(p)


def stop_server(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    _servers.pop(p.pid, None)


def iperf(server_ns: str, client_ns: str, dst: str, seconds: float, cpu: int | None) -> float:
    """Gbit/s received by `server_ns` from one TCP stream `client_ns` → dst:5201."""
    pin = ["-A", f"{cpu},{cpu}"] if cpu is not None else []  # client's CPU, server's CPU
    argv = ["ip", "netns", "exec", client_ns, "iperf3", "-c", dst, "-p", str(PORT), "-t", str(seconds), "-J", *pin]
    with iperf_server(server_ns):
        for _ in range(50):  # until the server listens (a refused connect costs it nothing)
            cp = subprocess.run([*argv, "--connect-timeout", "2000"], capture_output=True, text=True, timeout=seconds + 30)
            try:
                out = json.loads(cp.stdout)
            except json.JSONDecodeError:
                out = {"error": cp.stderr.strip() or cp.stdout.strip()}
            if "error" not in out:
                return float(out["end"]["sum_received"]["bits_per_second"]) / 1e9
            if "refused" not in out["error"]:
                break
            time.sleep(0.1)
        raise RuntimeError(f"iperf3 {client_ns} → {dst}: {out['error']}")


def bare_pair() -> None:
    """Two fresh namespaces joined by a veth pair, nothing else (the reference)."""
    present = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    for ns in BARE:
        if ns in present:
            _ip("netns", "del", ns)  # a crashed run's
        _ip("netns", "add", ns)
    _ip("-n", BARE[0], "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", BARE[1])
    for ns, ip in zip(BARE, BARE_IPS, strict=True):
        _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")


def bare_pair_down() -> None:
    present = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    for ns in BARE:
        if ns in present:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


Samples = dict[str, dict[str, list[tuple[float, float]]]]  # plugin → path → [(Gbit/s, ratio to bare)]


def throughput(runs: int, seconds: float, cpu: int | None) -> tuple[list[float], Samples]:
    """The bare pair's Gbit/s, and each plugin's per path. In each run, every plugin's
    three paths follow a fresh measurement of the bare pair, their ratios are to it."""
    bare: list[float] = []
    res: Samples = {p: {k: [] for k in PATHS} for p in PLUGINS}
    clusters: list[PluginCluster] = []
    with tempfile.TemporaryDirectory(prefix="cnibench") as tmp:
        try:
            bare_pair()
            for cni in PLUGINS:
                t = time.perf_counter()
                pc = PluginCluster(cni, tmp)
                clusters.append(pc)  # before up(): down() unwinds a half-made one too
                pc.up()
                print(f"{cni}: 2-node cluster up in {time.perf_counter() - t:.1f} s", flush=True)
            for r in range(runs):
                for pc in clusters[r % 3 :] + clusters[: r % 3]:
                    b = iperf(BARE[0], BARE[1], BARE_IPS[0], seconds, cpu)
                    bare.append(b)
                    for k in PATHS:
                        client_ns, dst = pc.paths[k]
                        v = iperf(pc.server_ns, client_ns, dst, seconds, cpu)
                        res[pc.cni][k].append((v, v / b))
                    figures = " / ".join(f"{res[pc.cni][k][-1][0]:.1f}" for k in PATHS)
                    print(f"run {r + 1}/{runs}: bare {b:.1f}, {pc.cni} {figures} Gbit/s (same / cross / ClusterIP)", flush=True)
        finally:
            for p in list(_servers.values()):
                stop_server(p)
            for pc in clusters:
                pc.cluster.down()
            bare_pair_down()
    return bare, res


# --- bring-up ----------------------------------------------------------------------------


def bring_up(runs: int, nodes: int, per_node: int) -> dict[str, list[dict[str, float]]]:
    res: dict[str, list[dict[str, float]]] = {p: [] for p in PLUGINS}
    for r in range(runs):
        for cni in PLUGINS[r % 3 :] + PLUGINS[: r % 3]:
            bringup.settle()
            try:
                k = bringup.bench_kemu(nodes, per_node, name=f"cnibench-u{cni[0]}", cni=cni)
            except (Exception, SystemExit) as e:  # noqa: BLE001 - bench_kemu exits on unready pods; the others still run
                print(f"{cni} (run {r + 1}/{runs}): failed: {e}", flush=True)
                continue
            res[cni].append(k)
            print(f"{cni} (run {r + 1}/{runs}): Ready and reachable {k['up']:.2f} s, down {k['down']:.2f} s", flush=True)
    return res


# --- report ------------------------------------------------------------------------------


def _med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def report_throughput(bare: list[float], res: Samples, runs: int, seconds: float, cpu: int | None) -> None:
    where = f"both ends on CPU {cpu}" if cpu is not None else "unpinned"
    print(f"\nTCP throughput: one iperf3 stream of {seconds:g} s, {where}; median of {runs} runs")
    print(f"Gbit/s and ratio to the bare veth pair measured just before (median of the ratios); bare pair: {statistics.median(bare):.1f}")
    print(f"  {'path':26} " + "".join(f"{p:>22}" for p in PLUGINS))
    for k, label in PATHS.items():
        cells = []
        for p in PLUGINS:
            v, ratio = statistics.median(s[0] for s in res[p][k]), statistics.median(s[1] for s in res[p][k])
            target = f" (>={CROSS_TARGET[p]:.2f})" if k == "cross" else ""
            cells.append(f"{f'{v:.1f} {ratio:.2f}x{target}':>22}")
        print(f"  {label:26} " + "".join(cells))


def report_bringup(res: dict[str, list[dict[str, float]]], runs: int, nodes: int, per_node: int) -> None:
    print(f"\nBring-up of {nodes * per_node} pods ({nodes} nodes x {per_node}; median of {runs}): all Ready and reachable, torn down")
    ref = _med([k["up"] for k in res["bridge"]])
    for p in PLUGINS:
        up, down = _med([k["up"] for k in res[p]]), _med([k["down"] for k in res[p]])
        if up is None or down is None:
            print(f"  {p:8} failed")
            continue
        rel = f"{up / ref:.2f}x bridge (<={BRINGUP_TARGET:.2f})" if ref else ""
        print(f"  {p:8} up {up:6.2f} s  {rel:26} down {down:6.2f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="repeat every measurement K times, print medians")
    ap.add_argument("--seconds", type=float, default=5.0, help="iperf3 duration of each measurement")
    ap.add_argument("--nodes", type=int, default=10, help="bring-up: nodes")
    ap.add_argument("--pods", type=int, default=100, help="bring-up: pods per node")
    ap.add_argument("--cpu", type=int, default=0, help="pin both iperf3 ends to this CPU; -1: leave them to the scheduler")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-bringup", action="store_true")
    args = ap.parse_args()
    # A kill ends like Ctrl-C: clusters down, namespaces deleted, iperf3 servers ended.
    # SIGINT too: a shell starts background jobs with it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupted)
    raise_fd_limit()
    cpu = args.cpu if args.cpu >= 0 else None
    try:
        tp = None if args.skip_throughput else throughput(args.runs, args.seconds, cpu)
        bu = None if args.skip_bringup else bring_up(args.runs, args.nodes, args.pods)
    except KeyboardInterrupt as e:
        print(f"interrupted ({str(e) or 'Ctrl-C'}); everything made was taken down", file=sys.stderr)
        return 130
    if tp is not None:
        report_throughput(*tp, args.runs, args.seconds, cpu)
    if bu is not None:
        report_bringup(bu, args.runs, args.nodes, args.pods)
    return 0


if __name__ == "__main__":
    sys.exit(main())
