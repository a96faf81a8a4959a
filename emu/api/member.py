"""A pod, node or external host of a running cluster, as the API hands it out.

Commands run in the member as `kemu exec` runs them; scapy runs in the member through a
helper process of its own (emu/api/scapy_child.py), so packets leave from the member's
interfaces with the member's routes and addresses, and captures see what the member sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from emu.api.names import bad
from emu.api.scapy_link import ScapyError, SniffHandle, packet_or_none
from emu.api.scapy_wire import Layer, layers_of
from emu.errors import CommandError, NotFoundError

if TYPE_CHECKING:
    from scapy.packet import Packet
    from scapy.plist import PacketList

    from emu.api.cluster import Cluster

Kind = Literal["pod", "node", "host"]
RUN_TIMEOUT = 60.0
SR1_TIMEOUT = 2.0


def _argv(cmd: str | Sequence[str]) -> list[str]:
    if isinstance(cmd, str):
        return ["sh", "-c", cmd]
    argv = [str(a) for a in cmd]
    if not argv:
        raise bad("[]", "no command to run")
    return argv


def _wire(pkt: Packet | Iterable[Packet]) -> list[list[Layer]]:
    from scapy.packet import Packet

    pkts = [pkt] if isinstance(pkt, Packet) else list(pkt)
    if not pkts or not all(isinstance(p, Packet) for p in pkts):
        raise bad(repr(pkt)[:80], "expected a scapy packet (or several)")
    return [layers_of(p) for p in pkts]


class Member:
    """One pod (`kind` "pod", `name` "ns/name"), node or external host (`name` its name).

    Its network namespace and addresses are looked up when used, so a handle stays valid
    while the member exists; a pod that was deleted raises NotFoundError.
    """

    __slots__ = ("_cluster", "kind", "name")

    def __init__(self, cluster: Cluster, kind: Kind, name: str) -> None:
        self._cluster = cluster
        self.kind: Kind = kind
        self.name = name

    @property
    def ref(self) -> str:
        """How kemu's commands name it: `ns/name`, `node/NAME`, `host/NAME`."""
        return self.name if self.kind == "pod" else f"{self.kind}/{self.name}"

    def __repr__(self) -> str:
        return f"<kemu {self.kind} {self.name} of cluster {self._cluster.name}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Member) and (self._cluster.name, self.kind, self.name) == (other._cluster.name, other.kind, other.name)

    def __hash__(self) -> int:
        return hash((self._cluster.name, self.kind, self.name))

    # --- where it is ------------------------------------------------------------------------

    def _entry(self) -> dict[str, Any]:
        """The member's entry in the cluster's record: netns (and for pods ip, node, hostname, …)."""
        data = self._cluster._record().data
        if self.kind == "pod":
            entry = data["pods"].get(self.name)
            if entry is None:
                raise self._cluster._pod_missing(self.name)
            return dict(entry)
        found = data["nodes" if self.kind == "node" else "hosts"].get(self.name)
        if found is None:
            raise NotFoundError(f"{self.kind} {self.name!r} not found in cluster {self._cluster.name}")
        return {"netns": found, "hostname": self.name}

    @property
    def netns(self) -> str:
        """The named network namespace (`ip netns exec NAME …`, /run/netns/NAME)."""
        return str(self._entry()["netns"])

    @property
    def ip(self) -> str:
        """Its IPv4 address: a pod's podIP, a node's InternalIP, a host's address."""
        if self.kind == "pod":
            return str(self._entry()["ip"])
        return self._cluster._address(self.kind, self.name)

    @property
    def node_name(self) -> str | None:
        """The node a pod runs on (a node's own name; None for an external host)."""
        if self.kind == "pod":
            return str(self._entry()["node"])
        return self.name if self.kind == "node" else None

    # --- commands ---------------------------------------------------------------------------

    def _enter_argv(self, container: str | None) -> list[str]:
        """`python -m emu.dataplane.enter …` as `kemu exec` runs it for this member."""
        e = self._entry()
        opts: list[str] = []
        if self.kind == "pod":
            containers = list(e.get("containers") or [])
            if container is not None and container not in containers:
                raise NotFoundError(f"container {container} is not valid for pod {self.name} (containers: {', '.join(containers)})")
            chosen = container or (containers[0] if containers else None)
            env = (e.get("env") or {}).get(chosen) if chosen else None
            if env and os.path.exists(env):
                opts += ["--env-file", env]
            workdir = (e.get("workdir") or {}).get(chosen) if chosen else None
            if workdir:
                opts += ["--workdir", workdir]
            if e.get("etc"):
                opts += ["--etc-dir", e["etc"]]
        elif container is not None:
            raise bad(container, f"a {self.kind} has no containers")
        return [sys.executable, "-m", "emu.dataplane.enter", str(e["netns"]), str(e.get("hostname") or ""), *opts, "--"]

    def run(
        self,
        cmd: str | Sequence[str],
        timeout: float | None = RUN_TIMEOUT,
        *,
        check: bool = False,
        container: str | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the member, as `kemu exec` does: in its network namespace,
        with its hostname and /etc/resolv.conf and /etc/hosts (a pod's, so names resolve
        through the cluster's DNS), and for a pod the container's environment.

        `cmd` is a shell command line (run with `sh -c`) or an argv list. Returns the
        CompletedProcess (stdout and stderr as text). `check=True` raises CommandError
        on a non-zero exit; a command still running after `timeout` seconds is killed
        and raises CommandError.
        """
        argv = _argv(cmd)
        full = [*self._enter_argv(container), *argv]
        netns = full[3]
        try:
            cp = subprocess.run(
                full,
                capture_output=True,
                text=True,
                timeout=timeout,
                input=input,
                stdin=subprocess.DEVNULL if input is None else None,
            )
        except subprocess.TimeoutExpired as e:
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            raise CommandError(argv, None, err or f"still running after {timeout} s", netns) from None
        done = subprocess.CompletedProcess(cmd if isinstance(cmd, str) else argv, cp.returncode, cp.stdout, cp.stderr)
        if check and cp.returncode != 0:
            raise CommandError(argv, cp.returncode, cp.stderr, netns)
        return done

    # --- scapy ------------------------------------------------------------------------------

    def sr1(
        self, pkt: Packet | Iterable[Packet], timeout: float = SR1_TIMEOUT, *, iface: str | None = None, **kwargs: Any
    ) -> Packet | None:
        """Send from the member and return the first answer, or None when nothing answers
        within `timeout` seconds. Starting with IP, the packet goes out at layer 3 with the
        member's routes (scapy's sr1); starting with Ether (or another layer 2), as a
        frame on `iface` (srp1; default: the member's default-route interface). Fields
        you leave unset (the source address, MACs, checksums) are filled in inside the
        member. Other keywords go to scapy's sr1 (e.g. retry=2).
        """
        pkts = _wire(pkt)
        wire = self._cluster._helper(self).call("sr1", timeout, pkts=pkts, timeout=timeout, iface=iface, kwargs=kwargs)
        return packet_or_none(wire)

    def send(self, pkt: Packet | Iterable[Packet], *, iface: str | None = None, **kwargs: Any) -> int:
        """Send from the member without waiting for answers (scapy's send, or sendp for a
        frame starting below IP); the number of packets sent. Other keywords go to scapy
        (e.g. count=10, inter=0.1)."""
        pkts = _wire(pkt)
        wait = float(kwargs.get("count") or 1) * float(kwargs.get("inter") or 0) + 10.0
        return int(self._cluster._helper(self).call("send", wait, pkts=pkts, iface=iface, kwargs=kwargs))

    def sniff(self, filter: str | None = None, count: int = 0, timeout: float | None = None, *, iface: str | None = None) -> PacketList:
        """Capture in the member until `count` packets (0: no limit) or `timeout` seconds;
        the packets (Ether frames, each with `.time` and `.sniffed_on`). `filter` is a BPF
        expression (tcpdump's syntax); `iface` one interface (default: all of the
        member's). Give a count or a timeout: a capture with neither would never end."""
        if not count and timeout is None:
            raise bad("sniff", "give count= or timeout=: a capture with neither never ends (or use sniff_async and stop())")
        return self.sniff_async(filter, count, timeout, iface=iface).join()

    def sniff_async(
        self, filter: str | None = None, count: int = 0, timeout: float | None = None, *, iface: str | None = None
    ) -> SniffHandle:
        """Start a capture in the member and return at once, already listening (nothing
        sent afterwards is missed); `join()` the handle for the packets, or `stop()` it.
        The arguments are sniff()'s."""
        if count < 0 or (timeout is not None and timeout < 0):
            raise bad("sniff", "count and timeout must not be negative")
        helper = self._cluster._helper(self)
        call = helper.start("sniff", filter=filter, count=count, timeout=timeout, iface=iface)
        if not call.started.wait(30.0):
            raise ScapyError(f"{helper.label}: the capture did not start in 30 s")
        if call.error is not None:
            raise ScapyError(f"{helper.label}: {call.error}")
        return SniffHandle(helper, call, timeout)
