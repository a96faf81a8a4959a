"""Mininet's shell commands, meaning in kemu what they mean in Mininet (emu/cli/shell.py
mixes them into the shell): `iperf A B`, `link A down|up`, `dump`, `intfs`, `links`,
`sh CMD`. Targets are what the shell knows by name: pods (`x/a`), nodes, external hosts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol

from emu.cluster.container_kill import kill_container
from emu.cluster.faulting import plane_of
from emu.cluster.runtime import Cluster
from emu.dataplane.names import pod_host_if, switch_ns, switch_port
from emu.errors import KemuError
from emu.faults.spec import parse

IPERF_SECONDS = 2
IPERF_PORT = 5299


class Target(Protocol):
    name: str
    netns: str
    ip: str
    hostname: str


def in_netns(netns: str, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=timeout)


def fault_target(c: Cluster, name: str) -> str:
    """The shell's name of a target as kemu fault names it (node-1 → node/node-1)."""
    if "/" in name:
        return name
    if any(n.name == name for n in c.plan.nodes):
        return f"node/{name}"
    return f"host/{name}"


def links(c: Cluster, targets: Mapping[str, Target]) -> list[tuple[str, str, str, str]]:
    """(member, its end, peer, peer's end) for every member's link."""
    out = []
    for name in targets:
        t = targets[name]
        if "/" in name:
            st = c.pods.get(name)
            if st is None or st.host_network or not st.node:
                continue
            out.append((name, "eth0", st.node, pod_host_if(st.pod.meta.namespace, st.pod.meta.name)))
        else:
            out.append((name, "eth0", "switch", switch_port(t.name)))
    return out


def _operstate(netns: str, ifname: str) -> str:
    cp = in_netns(netns, ["ip", "-j", "link", "show", "dev", ifname])
    try:
        state = json.loads(cp.stdout)[0].get("operstate", "")
    except (ValueError, IndexError):
        return "MISSING"
    return "OK" if state in ("UP", "UNKNOWN") else state


class MininetCommands:
    """Mixed into the shell's CLI class: `self.cluster`, `self.mn` (the targets)."""

    cluster: Cluster
    mn: Mapping[str, Any]

    def _netns_of(self, name: str) -> str:
        if name == "switch":
            return switch_ns(self.cluster.name)
        return str(self.mn[name].netns) if name in self.mn else ""

    def do_link(self, line: str) -> None:
        """link TARGET down|up: take a pod's, node's or host's link down or up"""
        words = line.split()
        if len(words) != 2 or words[0] not in self.mn:
            print("*** usage: link TARGET down|up (a pod, node or host: see `nodes`)")
            return
        try:
            f = parse("link", [fault_target(self.cluster, words[0]), words[1]])
            print(plane_of(self.cluster).add(f))
        except KemuError as e:
            print(f"*** {e}")

    def do_fault(self, line: str) -> None:
        """fault KIND … as `kemu fault` takes it: link, partition A -- B, loss, rate, delay, kill POD [-c C], clear [TARGET]"""
        words = line.split()
        if not words:
            print("*** usage: fault link|partition|loss|rate|delay|kill|clear …")
            return
        kind, rest = words[0], words[1:]
        plane = plane_of(self.cluster)
        try:
            if kind == "clear":
                print("\n".join(plane.clear(rest[0] if rest else None)) or "no faults")
            elif kind == "kill":
                container = rest[rest.index("-c") + 1] if "-c" in rest[:-1] else None
                print(kill_container(self.cluster.kubelet, rest[0] if rest else "", container))
            else:
                others = rest[rest.index("--") + 1 :] if "--" in rest else None
                print(plane.add(parse(kind, rest[: rest.index("--")] if others is not None else rest, others)))
        except KemuError as e:
            print(f"*** {e}")

    def do_links(self, _line: str) -> None:
        """Every member's link and the state of both ends"""
        for a, ai, b, bi in links(self.cluster, self.mn):
            print(f"{a}:{ai}<->{b}:{bi} ({_operstate(self._netns_of(a), ai)} {_operstate(self._netns_of(b), bi)})")

    def do_intfs(self, _line: str) -> None:
        """The interfaces of every pod, node and host"""
        for name in self.mn:
            cp = in_netns(self.mn[name].netns, ["ip", "-j", "link", "show"])
            names = [i["ifname"] for i in json.loads(cp.stdout or "[]")]
            print(f"{name}: {','.join(names)}")

    def do_dump(self, _line: str) -> None:
        """Every pod, node and host with its addresses and namespace"""
        for name in self.mn:
            t = self.mn[name]
            cp = in_netns(t.netns, ["ip", "-j", "-4", "addr", "show"])
            addrs = [
                f"{i['ifname']}:{a['local']}" for i in json.loads(cp.stdout or "[]") for a in i.get("addr_info", []) if i["ifname"] != "lo"
            ]
            kind = "Pod" if "/" in name else "Node" if any(n.name == name for n in self.cluster.plan.nodes) else "Host"
            print(f"<{kind} {name}: {' '.join(addrs)} netns={t.netns}>")

    def do_iperf(self, line: str) -> None:
        """iperf A B: TCP throughput from A to B (iperf3, 2 s)"""
        words = line.split()
        if len(words) != 2 or any(w not in self.mn for w in words):
            print("*** usage: iperf SRC DST (pods, nodes or hosts: see `nodes`)")
            return
        src, dst = self.mn[words[0]], self.mn[words[1]]
        print(f"*** Iperf: testing TCP bandwidth between {words[0]} and {words[1]}")
        server = subprocess.Popen(
            ["ip", "netns", "exec", dst.netns, "iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 5
            while f":{IPERF_PORT} " not in in_netns(dst.netns, ["ss", "-Hltn"]).stdout:
                if time.monotonic() > deadline or server.poll() is not None:
                    print(f"*** iperf: no iperf3 server came up in {words[1]}")
                    return
                time.sleep(0.05)
            argv = ["iperf3", "-c", dst.ip, "-p", str(IPERF_PORT), "-t", str(IPERF_SECONDS), "--connect-timeout", "3000", "-J"]
            try:
                cp = in_netns(src.netns, argv, timeout=IPERF_SECONDS + 15)
            except subprocess.TimeoutExpired:  # a cut link, a partition: no answer at all
                print(f"*** iperf: no result from {words[0]} to {words[1]} in {IPERF_SECONDS + 15} s")
                return
            result: dict[str, Any] = json.loads(cp.stdout or "{}")
            end = result.get("end") or {}
            if "sum_received" not in end:
                print(f"*** iperf failed: {result.get('error', 'no result')}")
                return
            sent, got = end["sum_sent"]["bits_per_second"], end["sum_received"]["bits_per_second"]
            print(f"*** Results: ['{_rate(sent)}', '{_rate(got)}']")
        finally:
            server.kill()
            server.wait()

    def do_sh(self, line: str) -> None:
        """sh CMD: run a shell command on this machine (outside the cluster)"""
        sys.stdout.flush()
        rc = subprocess.call(["sh", "-c", line])
        if rc:
            print(f"*** exit status {rc}")


def _rate(bps: float) -> str:
    for unit, scale in (("Gbits/sec", 1e9), ("Mbits/sec", 1e6), ("Kbits/sec", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.2f} {unit}"
    return f"{bps:.0f} bits/sec"
