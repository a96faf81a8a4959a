"""The interactive shell of `kemu up`, built on Mininet's CLI.

`x/a curl y/b:80/hostname` runs curl in pod x/a with y/b replaced by its IP; nodes and
external hosts work the same (`node-1 ip route`, `client curl node-1:30080`). Commands
run through `sh -c` in the target's namespace (with the pod's hostname), their output
straight on the terminal: no pty shell per node as in Mininet, and the exit status shows.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mininet.cli import CLI
from mininet.log import setLogLevel

from emu.cli.output import render
from emu.cli.shell_mininet import MininetCommands
from emu.cluster import views
from emu.cluster.probing import probe_cluster
from emu.cluster.runtime import Cluster
from emu.config.registry import canonical_kind
from emu.errors import KemuError
from emu.traffic.probe import table

NAME_TOKEN = re.compile(r"(?:(?<=://)|(?<![\w./-]))([a-z0-9][-a-z0-9.]*(?:/[a-z0-9][-a-z0-9.]*)?)(?=$|[:\s/]|(?<=\S)(?=:))")


@dataclass(frozen=True)
class Target:
    """What Mininet's CLI calls a node: something with a namespace and an IP."""

    name: str
    netns: str
    ip: str
    hostname: str
    waiting: bool = False  # Mininet's CLI checks this on every loop


class Targets(Mapping[str, Target]):
    """A live view of the cluster's pods, nodes and hosts, by the names users type."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster

    def _all(self) -> dict[str, Target]:
        c = self.c
        out = {n.name: Target(n.name, c.network.nodes[n.name].name, n.ip, n.name) for n in c.plan.nodes if n.name in c.network.nodes}
        out |= {h.name: Target(h.name, c.network.hosts[h.name].name, h.ip, h.name) for h in c.plan.hosts if h.name in c.network.hosts}
        out |= {k: Target(k, st.netns, st.ip, st.pod.meta.name) for k, st in list(c.pods.items()) if st.netns}
        return out

    def __getitem__(self, key: str) -> Target:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._all()))

    def __len__(self) -> int:
        return len(self._all())


def substitute(words: str, targets: Mapping[str, Target]) -> str:
    """Replace every name of a pod, node or host by its IP (`y/b:80/x` → `10.244.1.2:80/x`)."""
    known = dict(targets)

    def repl(m: re.Match[str]) -> str:
        t = known.get(m.group(1))
        return t.ip if t else m.group(1)

    return NAME_TOKEN.sub(repl, words)


class KemuCLI(MininetCommands, CLI):  # type: ignore[misc]  # mininet is untyped: CLI is Any to mypy
    prompt = "kemu> "
    helpStr = (
        "You may also send a command to a pod, node or external host:\n"
        "  <target> <command>     e.g.  x/a curl -s y/b:80/hostname\n"
        "Pod (ns/name), node and host names in the command are replaced by their IPs.\n"
        "  get KIND [-n NS|-A]    pods, nodes, hosts, namespaces, deployments\n"
        "  probe [tcp|udp]        the reachability matrix between pods (pingall: the same)\n"
        "  iperf A B              TCP throughput from A to B\n"
        "  link A down|up         a pod's, node's or host's link (as `kemu fault link`)\n"
        "  fault KIND …           any fault, as `kemu fault` takes it (fault clear to heal)\n"
        "  net, dump, intfs, links, nodes, sh CMD, py EXPR, exit\n"
    )

    def get_names(self) -> list[str]:
        # `help` lists what works here: not Mininet's OpenFlow, X11 or host-pair commands.
        return [n for n in super().get_names() if n.removeprefix("do_") not in (*UNAVAILABLE, "EOF")]

    def __init__(self, cluster: Cluster, stdin: Any = sys.stdin, script: str | None = None) -> None:
        self.cluster = cluster
        setLogLevel("output")
        super().__init__(Targets(cluster), stdin=stdin, script=script)

    def parseline(self, line: str) -> tuple[str | None, str | None, str]:
        # Targets contain '/' and '-', which cmd.Cmd's identifier rule would split.
        line = line.strip()
        if not line:
            return None, None, line
        first, _, rest = line.partition(" ")
        return first, rest.strip(), line

    def default(self, line: str) -> None:
        first, args, _ = self.parseline(line)
        if first is None or first not in self.mn:
            print(f"*** Unknown command or target: {first} (try `help`, `nodes`, `get pods -A`)")
            return
        if not args:
            print(f"*** Enter a command for {first}: {first} <cmd>")
            return
        t = self.mn[first]
        cmd = substitute(args, self.mn)
        # The child writes straight to fd 1: what this process printed before must be out
        # first (stdout is block-buffered when it is a pipe, as under `kemu up --script`).
        sys.stdout.flush()
        rc = subprocess.call([sys.executable, "-m", "emu.dataplane.enter", t.netns, t.hostname, "--", "sh", "-c", cmd])
        if rc:
            print(f"*** exit status {rc}")

    def do_nodes(self, _line: str) -> None:
        """List pods, nodes and external hosts."""
        print(" ".join(self.mn))

    def do_net(self, _line: str) -> None:
        """Show every target with its IP and namespace."""
        for name in self.mn:
            t = self.mn[name]
            print(f"{name:40} {t.ip:15} netns {t.netns}")

    def do_get(self, line: str) -> None:
        """get KIND [NAME] [-n NS|-A] [-o wide|json|yaml]"""
        words = line.split()
        ns, all_ns, out, rest = "default", False, None, []
        while words:
            w = words.pop(0)
            if w == "-n" and words:
                ns = words.pop(0)
            elif w == "-A":
                all_ns = True
            elif w == "-o" and words:
                out = words.pop(0)
            else:
                rest.append(w)
        if not rest:
            print("*** usage: get KIND [NAME] [-n NS|-A] [-o wide|json|yaml]")
            return
        try:
            kind = canonical_kind(rest[0])
            items = views.objects(
                self.cluster,
                kind,
                None if all_ns or kind in ("Node", "Host", "Namespace") else ns,
                rest[1] if len(rest) > 1 else None,
            )
            print(render(kind, items, out, all_ns, len(rest) > 1) or "No resources found.")
        except KemuError as e:
            print(f"*** {e}")

    def do_probe(self, line: str) -> None:
        """probe [tcp|udp]: the reachability matrix between pods"""
        protos = [w.upper() for w in line.split() if w.lower() in ("tcp", "udp")] or None
        print(table(probe_cluster(self.cluster, "pods", None, protos)))

    def do_pingall(self, line: str) -> None:
        """Probe every pod from every pod (the kemu take on Mininet's pingall)."""
        self.do_probe(line)

    def do_EOF(self, line: str) -> bool:
        print()
        return True


# Mininet commands that need OpenFlow switches or X11 make no sense here: they say so.
UNAVAILABLE = (
    "dpctl",
    "switch",
    "ports",
    "iperfudp",
    "xterm",
    "x",
    "gterm",
    "px",
    "pingpair",
    "pingallfull",
    "pingpairfull",
    "noecho",
)
for _cmd in UNAVAILABLE:
    setattr(KemuCLI, f"do_{_cmd}", lambda self, line, _c=_cmd: print(f"*** {_c}: not available in kemu (no OpenFlow or X11)"))
