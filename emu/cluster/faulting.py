"""The faults on a running cluster: `kemu fault …`, `kemu get faults`, `kemu fault clear`.

Each fault is kept by its key (emu/faults/spec.py: a new loss on a pod replaces the old
one) with the time it was put on; the kernel changes are emu/faults/kernel.py's. They all
live in the cluster's own namespaces, so `kemu down` and `kemu clean` remove them with
the rest; `fault clear` undoes them one by one.

A node's link down also starts the node lifecycle (emu/cluster/node_lifecycle.py:
NotReady, then evictions). `fault kill` is emu/cluster/container_kill.py's (no lasting
fault: nothing to clear).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from emu.cluster.node_lifecycle import NodeLifecycle
from emu.cluster.runtime import Cluster
from emu.dataplane.names import member_ns, pod_host_if, pod_ns, switch_ns, switch_port
from emu.errors import KemuError, NotFoundError, Problem, ValidationError
from emu.faults import kernel
from emu.faults.kernel import Link
from emu.faults.spec import Fault, rate_bits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Active:
    fault: Fault
    since: float  # time.time()
    link: Link | None = None  # where it was put (a pod may be gone by the time it is cleared)


class FaultPlane:
    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.lock = threading.Lock()  # one change at a time; the cluster's lock is not needed
        self.active: dict[str, Active] = {}
        self.lifecycle = NodeLifecycle(c)

    def link_of(self, target: str) -> Link:
        kind, _, name = target.partition("/")
        c = self.c
        if kind in ("node", "host"):
            names = [n.name for n in c.plan.nodes] if kind == "node" else [h.name for h in c.plan.hosts]
            if name not in names:
                raise NotFoundError(f"{'node' if kind == 'node' else 'external host'} {name!r} not found")
            return Link(member_ns(c.name, name), "eth0", switch_ns(c.name), switch_port(name))
        pod = next((p for p in c.pod_views() if p.key == target), None)
        if pod is None:
            raise NotFoundError(f"pod {target} not found (or not running)")
        if pod.spec is not None and pod.spec.host_network:
            raise ValidationError(
                [Problem("<command line>", target, f"a hostNetwork pod has no link of its own: it shares node/{pod.node}'s")]
            )
        return Link(pod_ns(c.name, pod.namespace, pod.name), "eth0", member_ns(c.name, pod.node), pod_host_if(pod.namespace, pod.name))

    def add(self, f: Fault) -> str:
        with self.lock:
            if f.kind == "partition":
                for t in (*f.targets, *f.others):
                    self.link_of(t)  # every member exists
                self.active[f.key] = Active(f, time.time())
                self._partitions()
                return f"fault {f} on"
            link = self.link_of(f.targets[0])
            if f.kind == "link":
                kernel.set_link(link, f.value == "up")
                if f.value == "up":
                    self._pod_link_up(f.targets[0])
                self._node_link(f.targets[0], f.value == "up")
                if f.value == "up":
                    self.active.pop(f.key, None)
                    return f"fault link {f.targets[0]} cleared (up)"
            elif f.kind == "loss":
                kernel.set_loss(link, float(f.value))
            elif f.kind == "rate":
                kernel.set_qdisc(link, kernel.tbf_args(rate_bits(f.value)))
            else:
                ms, *jitter = f.value.split()
                kernel.set_qdisc(link, ["netem", "delay", f"{ms}ms", *(f"{j}ms" for j in jitter)])
            # rate and delay share the root qdisc: the newer one replaces the other.
            other = {"rate": "delay", "delay": "rate"}.get(f.kind)
            if other:
                self.active.pop(f"{other} {f.targets[0]}", None)
            self.active[f.key] = Active(f, time.time(), link)
            return f"fault {f} on"

    def clear(self, target: str | None = None) -> list[str]:
        """Undo every fault (or those involving `target`); what was cleared."""
        with self.lock:
            gone = [a for a in self.active.values() if target is None or target in (*a.fault.targets, *a.fault.others)]
            if target is not None and not gone:
                self.link_of(target)  # a typo is an error, not "nothing to clear"
            try:
                for a in gone:
                    del self.active[a.fault.key]
                    if a.link is not None:
                        self._undo(a.fault, a.link)
            finally:
                if any(a.fault.kind == "partition" for a in gone):
                    self._partitions()
            return [f"fault {a.fault} cleared" for a in gone]

    def _undo(self, f: Fault, link: Link) -> None:
        """Undo one fault on the link it was put on; a link that is gone (its pod deleted,
        evicted) took the fault with it."""
        try:
            if f.kind == "link":
                kernel.set_link(link, True)
                self._pod_link_up(f.targets[0])
            elif f.kind == "loss":
                kernel.set_loss(link, None)
            else:
                kernel.set_qdisc(link, None)
        except KemuError as e:
            log.info("clearing %s: %s (its link is gone)", f, e)
        if f.kind == "link":
            self._node_link(f.targets[0], True)

    def _pod_link_up(self, target: str) -> None:
        """A pod's node-side veth is up again: the pod network puts back what the kernel
        removed with it (the routed plugin's /32 route)."""
        c = self.c
        pod = next((p for p in c.pod_views() if p.key == target), None)
        if pod is not None and pod.ip and pod.node in c.network.nodes:
            c.network.cni.pod_link_up(c.network.nodes[pod.node], pod_host_if(pod.namespace, pod.name), pod.ip)

    def _node_link(self, target: str, up: bool) -> None:
        if target.startswith("node/"):
            name = target.removeprefix("node/")
            if up:
                self.lifecycle.back(name)
            else:
                self.lifecycle.lost(name)

    def rows(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {"kind": a.fault.kind, "target": _target_words(a.fault), "value": a.fault.value, "since": a.since}
                for a in sorted(self.active.values(), key=lambda a: a.since)
            ]

    def _partitions(self) -> None:
        ports = {
            f"{k}/{n}": switch_port(n)
            for k, names in (("node", self.c.plan.nodes), ("host", self.c.plan.hosts))
            for n in (x.name for x in names)
        }
        groups = [
            ([ports[t] for t in a.fault.targets], [ports[t] for t in a.fault.others])
            for a in self.active.values()
            if a.fault.kind == "partition"
        ]
        kernel.set_partitions(switch_ns(self.c.name), groups)


def _target_words(f: Fault) -> str:
    return f"{','.join(f.targets)} -- {','.join(f.others)}" if f.kind == "partition" else f.targets[0]


_planes: weakref.WeakKeyDictionary[Cluster, FaultPlane] = weakref.WeakKeyDictionary()
_planes_lock = threading.Lock()


def plane_of(c: Cluster) -> FaultPlane:
    """The cluster's faults (made on first use: a cluster without faults carries nothing)."""
    with _planes_lock:
        if c not in _planes:
            _planes[c] = FaultPlane(c)
        return _planes[c]
