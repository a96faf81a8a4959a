#!/usr/bin/env python3
"""Bring-up and tear-down of N nodes × M pods, against two references in the same run.

    sudo .venv/bin/python bench/bringup.py N M [--runs K] [--no-mininet] [--no-ip-batch]

Prints, for kemu: time until every pod is Ready and reachable (a TCP connection from
node 1's namespace to port 80 of every pod), the CPU the kemu process used until then
(user + system, all its threads: less noisy than wall time on a busy machine), time to
tear down, peak RSS of the process, and the kernel memory the cluster holds (MemAvailable before and after bring-up).
The references:
- the kernel's own cost: the same namespaces, veth pairs (pod end made in the pod's
  namespace), bridge ports with hairpin, addresses, routes and permanent neighbours, made
  by iproute2 from `ip -batch` files, then removed;
- plain Mininet with N×M hosts on one LinuxBridge (build + start, stop), in a child process.
Between phases the bench waits for the kernel to free the previous phase's namespaces.
With --runs K every phase runs K times and the medians are printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lab

from emu.cluster.runtime import Cluster
from emu.daemon.host import raise_fd_limit
from emu.dataplane import netns
from emu.dataplane.handles import write_sysctl_here
from emu.traffic.probe import Client, Target, run_matrix

IP_PREFIX = "kemu-bench-ip"  # namespaces of the ip -batch reference


def net_namespaces() -> int:
    """Live network namespaces on the machine (the kernel's own slab count)."""
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith("net_namespace "):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def settle(deadline_s: float = 60.0) -> None:
    """Wait until the kernel has freed the namespaces of the previous phase (it does that
    in a work queue after they are unpinned): the next phase must not pay for them."""
    end = time.monotonic() + deadline_s
    last, since = net_namespaces(), time.monotonic()
    while time.monotonic() < end and last >= 0:
        time.sleep(0.2)
        now = net_namespaces()
        if now < last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 1.5:
            return


def _mac(ip: str) -> str:
    return "0a:58:" + ":".join(f"{int(o):02x}" for o in ip.split("."))


def ip_batch_plan(nodes: int, per_node: int, marker: str) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """The same objects kemu makes for N × M pods, as iproute2 batch lines (pod veths with
    one queue each, as kemu asks for them):
    (host batch: every `netns add`; per-namespace batches in the order to run them;
    the host batch that removes everything). `-n` is not accepted inside a batch
    (iproute2 6.1), so each namespace gets its own `ip -n NS -b FILE`."""
    sw = f"{IP_PREFIX}.sw"
    node_ns = [f"{IP_PREFIX}.n{i + 1}" for i in range(nodes)]
    pod_ns = [[f"{IP_PREFIX}.n{i + 1}.p{j}" for j in range(per_node)] for i in range(nodes)]
    every = [sw, *node_ns, *(p for ps in pod_ns for p in ps)]
    batches: dict[str, list[str]] = {}
    batches[sw] = [f"link set lo up alias {marker}", "link add br0 type bridge", "link set br0 up"]
    attach = []
    for i, ns in enumerate(node_ns):
        node_ip, gw = f"172.30.0.{i + 2}", f"10.244.{i}.1"
        lines = [f"link set lo up alias {marker}", f"link add eth0 type veth peer name s{i + 1} netns {sw}"]
        attach.append(f"link set s{i + 1} master br0 up")
        lines += [f"addr add {node_ip}/24 dev eth0", "link set eth0 up"]
        lines += [f"link add cbr0 address {_mac(gw)} type bridge", f"addr add {gw}/24 dev cbr0", "link set cbr0 up"]
        lines += [f"route add 10.244.{k}.0/24 via 172.30.0.{k + 2}" for k in range(nodes) if k != i]
        for j, pns in enumerate(pod_ns[i]):
            ip = f"10.244.{i}.{j + 2}"
            host_if = f"veth{i}x{j}"
            lines.append(
                f"link add {host_if} index {1002 + j} numtxqueues 1 numrxqueues 1 master cbr0 up"
                f" type veth peer name eth0 index 2 address {_mac(ip)} numtxqueues 1 numrxqueues 1 netns {pns}"
            )
            lines.append(f"link set dev {host_if} type bridge_slave hairpin on")
            lines.append(f"neigh replace {ip} lladdr {_mac(ip)} dev cbr0 nud permanent")
        batches[ns] = lines
    batches[f"{sw}#attach"] = attach
    for i, ps in enumerate(pod_ns):
        gw = f"10.244.{i}.1"
        for j, pns in enumerate(ps):
            batches[pns] = [
                f"link set lo up alias {marker}",
                f"addr add 10.244.{i}.{j + 2}/32 dev eth0",
                "link set eth0 up",
                f"neigh replace {gw} lladdr {_mac(gw)} dev eth0 nud permanent",
                f"route add {gw}/32 dev eth0 scope link",
                f"route add default via {gw} dev eth0",
            ]
    return [f"netns add {n}" for n in every], batches, [f"netns del {n}" for n in every]


def _ip_batch(lines: list[str], path: str, netns_name: str | None = None) -> None:
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    argv = ["ip", *(["-n", netns_name] if netns_name else []), "-b", path]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {cp.stderr.strip()[-300:]}")


def bench_ip_batch(nodes: int, per_node: int) -> dict[str, float]:
    """The kernel's own cost for kemu's namespaces, veths, addresses, routes and bridge
    ports, made by iproute2 from batch files (one `ip` process per namespace)."""
    add, batches, delete = ip_batch_plan(nodes, per_node, "kemu:bench-ip:1")
    with tempfile.TemporaryDirectory(prefix="kemu-bench-ip") as tmp:
        t0 = time.perf_counter()
        try:
            _ip_batch(add, os.path.join(tmp, "add"))
            t_ns = time.perf_counter() - t0
            for i, (ns, lines) in enumerate(batches.items()):
                _ip_batch(lines, os.path.join(tmp, f"b{i}"), ns.split("#")[0])
                if ns.startswith(f"{IP_PREFIX}.n") and ns.count(".") == 1:
                    # What `ip` cannot do: nodes route between pods (kemu writes it too).
                    with netns.entered(ns):
                        write_sysctl_here("net.ipv4.ip_forward", "1")
            t_up = time.perf_counter() - t0
            # Not timed: the result works (a pod of the last node reaches one of the first).
            last = f"{IP_PREFIX}.n{nodes}.p{per_node - 1}"
            ping = ["ip", "netns", "exec", last, "ping", "-c1", "-W2", "10.244.0.2"]
            if subprocess.run(ping, capture_output=True, timeout=10).returncode != 0:
                raise RuntimeError(f"ip -batch reference: {' '.join(ping)} failed")
            # What of it is starting `ip` itself (one process per namespace): an empty batch.
            empty = os.path.join(tmp, "empty")
            open(empty, "w").close()
            starts = []
            for _ in range(41):
                t = time.perf_counter()
                _ip_batch([], empty, last)
                starts.append(time.perf_counter() - t)
            t_spawn = statistics.median(starts) * len(batches)
        finally:
            t1 = time.perf_counter()
            present = set(os.listdir("/run/netns"))
            _ip_batch([d for d in delete if d.split()[-1] in present], os.path.join(tmp, "del"))
            t_down = time.perf_counter() - t1
    return {"up": t_up, "netns": t_ns, "spawn": t_spawn, "down": t_down}


def mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def bench_kemu(nodes: int, per_node: int, name: str = "bench", cni: str = "bridge") -> dict[str, float]:
    raise_fd_limit()
    mem0 = mem_available_kib()
    cpu0 = _cpu()
    t0 = time.perf_counter()
    c = Cluster(lab.config(name, nodes, per_node, (80,), cni))
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
        cpu_up = _cpu() - cpu0
        bad = [r for r in results if not r.connected]
        if bad:
            raise SystemExit(f"{len(bad)} pods unreachable, e.g. {bad[0]}")
        mem_cluster = (mem0 - mem_available_kib()) / 1024
    finally:
        t1 = time.perf_counter()
        c.down()
        t_down = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"built": t_built, "up": t_up, "cpu": cpu_up, "down": t_down, "rss": peak, "kernel": mem_cluster}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


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


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("nodes", type=int)
    ap.add_argument("pods_per_node", type=int)
    ap.add_argument("--runs", type=int, default=1, help="repeat every phase K times, print medians")
    ap.add_argument("--no-mininet", action="store_true", help="skip the plain-Mininet reference")
    ap.add_argument("--no-ip-batch", action="store_true", help="skip the ip -batch reference")
    args = ap.parse_args()
    n, m = args.nodes, args.pods_per_node
    ks: list[dict[str, float]] = []
    ips: list[dict[str, float]] = []
    mns: list[dict[str, float]] = []
    for run_no in range(args.runs):
        tag = f" (run {run_no + 1}/{args.runs})" if args.runs > 1 else ""
        if not args.no_ip_batch:
            settle()
            ip = bench_ip_batch(n, m)
            ips.append(ip)
            print(
                f"ip -batch{tag}: up {ip['up']:.2f} s (namespaces {ip['netns']:.2f} s, starting ip ~{ip['spawn']:.2f} s), "
                f"down {ip['down']:.2f} s",
                flush=True,
            )
        settle()
        k = bench_kemu(n, m)
        ks.append(k)
        print(
            f"kemu{tag}: built {k['built']:.2f} s, Ready and reachable {k['up']:.2f} s (CPU {k['cpu']:.2f} s), down {k['down']:.2f} s",
            flush=True,
        )
        if not args.no_mininet:
            settle()
            r = bench_mininet(n * m)
            if isinstance(r, str):
                print(f"plain Mininet{tag}: {r}", flush=True)
            else:
                mns.append(r)
                print(f"plain Mininet{tag}: up {r['up']:.2f} s, down {r['down']:.2f} s", flush=True)
    what = "median of " + str(args.runs) + " runs" if args.runs > 1 else "one run"
    print(f"kemu: {n} nodes x {m} pods = {n * m} pods ({what})")
    print(f"  namespaces and links built   {_median(ks, 'built'):7.2f} s")
    print(f"  all Ready and reachable      {_median(ks, 'up'):7.2f} s")
    print(f"    CPU used until then        {_median(ks, 'cpu'):7.2f} s (user + system, kemu process)")
    print(f"  torn down                    {_median(ks, 'down'):7.2f} s")
    print(f"  peak RSS (kemu process)      {max(k['rss'] for k in ks):7.0f} MiB")
    print(f"  kernel memory held (approx)  {_median(ks, 'kernel'):7.0f} MiB")
    if ips:
        print(f"ip -batch: the same {n * m + n + 1} namespaces, links, addresses, routes (kernel reference)")
        print(f"  built                        {_median(ips, 'up'):7.2f} s")
        print(f"    of which namespaces        {_median(ips, 'netns'):7.2f} s")
        print(f"    of which starting `ip`     {_median(ips, 'spawn'):7.2f} s (estimate: {n * m + n + 2} empty batches)")
        print(f"  removed                      {_median(ips, 'down'):7.2f} s")
    if mns:
        print(f"plain Mininet: {n * m} hosts on one LinuxBridge (reference)")
        print(f"  built and started            {_median(mns, 'up'):7.2f} s")
        print(f"  stopped                      {_median(mns, 'down'):7.2f} s")
        print(f"  peak RSS (mininet process)   {max(r['rss'] for r in mns):7.0f} MiB")
    k_up, k_down = _median(ks, "up"), max(_median(ks, "down"), 1e-3)
    if mns:
        print(f"Mininet / kemu: up {_median(mns, 'up') / k_up:.1f}x, down {_median(mns, 'down') / k_down:.1f}x (goal: up >= 8x)")
    if ips:
        print(f"kemu / ip -batch: up {k_up / _median(ips, 'up'):.2f}x, down {k_down / _median(ips, 'down'):.2f}x (goal: up <= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
