"""What the cluster did and when, as core/v1 Events (`kemu get events`, `describe`).

The components that act record what they did, as theirs do in Kubernetes: the
controllers (SuccessfulCreate, ScalingReplicaSet, …), the scheduler (Scheduled,
FailedScheduling), the kubelet (Started, Killing, BackOff, Unhealthy, and kemu's own
Ready / NotReady, since readiness is what people watch), the EndpointSlice controller
(kemu's EndpointsChanged), kube-proxy and the policy agent (kemu's Synced / SyncFailed,
with the sync's duration) and the load-balancer (IPAllocated, nodeAssigned, as MetalLB).

Kept in memory, newest last, at most MAX_EVENTS (the API server keeps them an hour). As
client-go's EventCorrelator does, an event equal to an earlier one (same object, type,
reason, message, source) is not stored again: the earlier one's count goes up and its
lastTimestamp moves. Readers follow with `since(seq)`; `wait(seq)` blocks until there
is something newer (`kemu get events -w`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from emu.controllers.changelog import Snapshot
from emu.controllers.owned import Event as ControllerEvent
from emu.dataplane.node_sync import SyncObserver
from emu.model.services import EndpointSlice

MAX_EVENTS = 5000


@dataclass(frozen=True)
class Involved:
    """The object an event is about (core/v1 ObjectReference)."""

    kind: str
    name: str
    namespace: str = ""  # "" for cluster-scoped objects (Node)
    field_path: str = ""  # e.g. spec.containers{web}


@dataclass(frozen=True)
class Event:
    involved: Involved
    type: str  # Normal | Warning
    reason: str
    message: str
    component: str  # source.component: default-scheduler, kubelet, kube-proxy, …
    host: str = ""  # source.host: the node, for the kubelet's and the proxy's
    first: float = 0.0
    last: float = 0.0
    count: int = 1
    seq: int = 0  # order of the last occurrence; followers read past it
    name: str = field(default="", compare=False)

    @property
    def namespace(self) -> str:
        # Events about cluster-scoped objects live in "default", as the API server files them.
        return self.involved.namespace or "default"

    def as_v1(self) -> dict[str, Any]:
        inv: dict[str, Any] = {"kind": self.involved.kind, "name": self.involved.name}
        if self.involved.namespace:
            inv["namespace"] = self.involved.namespace
        if self.involved.field_path:
            inv["fieldPath"] = self.involved.field_path
        inv["apiVersion"] = "v1" if self.involved.kind in ("Pod", "Node", "Service") else "apps/v1"
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": self.name, "namespace": self.namespace, "creationTimestamp": _ts(self.first)},
            "involvedObject": inv,
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": _ts(self.first),
            "lastTimestamp": _ts(self.last),
            "count": self.count,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _key(e: Event) -> tuple[Involved, str, str, str, str, str]:
    """What makes two events the same (client-go's EventCorrelator: object, type, reason,
    message, source)."""
    return (e.involved, e.type, e.reason, e.message, e.component, e.host)


class EventRecorder:
    """Thread-safe: components on any thread record; request threads read and wait."""

    def __init__(self, limit: int = MAX_EVENTS, clock: Any = time.time) -> None:
        self._events: deque[Event] = deque()
        self._limit = limit
        self._clock = clock
        self._seq = 0
        self._cond = threading.Condition()
        self._latest: dict[tuple[Involved, str, str, str, str, str], int] = {}  # key → seq of its newest stored event

    def _append(self, key: tuple[Involved, str, str, str, str, str], ev: Event) -> None:
        """Store `ev` (holding _cond), dropping the oldest beyond the limit."""
        self._events.append(ev)
        self._latest[key] = ev.seq
        while len(self._events) > self._limit:
            gone = self._events.popleft()
            k = _key(gone)
            if self._latest.get(k) == gone.seq:
                del self._latest[k]

    def record(
        self,
        involved: Involved,
        reason: str,
        message: str,
        component: str,
        *,
        warning: bool = False,
        host: str = "",
    ) -> None:
        now = self._clock()
        typ = "Warning" if warning else "Normal"
        key = (involved, typ, reason, message, component, host)  # _key of the event below
        with self._cond:
            self._seq += 1
            ev: Event | None = None
            # Most events are new (a pod's Scheduled, Started…): the scan runs only when an
            # equal one is stored at all (1,000 pods' start scanned 200,000 pairs).
            if key in self._latest:
                for i in range(len(self._events) - 1, max(-1, len(self._events) - 50), -1):
                    old = self._events[i]  # the recent past only: repeats come close together
                    if _key(old) == key:
                        del self._events[i]
                        ev = replace(old, last=now, count=old.count + 1, seq=self._seq)
                        break
            if ev is None:
                # A new one is named as client-go names them: the object's name, the time in
                # hex nanoseconds (plus the sequence number: two in one clock tick differ).
                name = f"{involved.name}.{int(now * 1e9) + self._seq:x}"
                ev = Event(involved, typ, reason, message, component, host, now, now, seq=self._seq, name=name)
            self._append(key, ev)
            self._cond.notify_all()

    def since(self, seq: int = 0, namespace: str | None = None) -> list[Event]:
        """Events whose last occurrence is after `seq`, oldest first (all namespaces: None)."""
        with self._cond:
            return [e for e in self._events if e.seq > seq and (namespace is None or e.namespace == namespace)]

    @property
    def last_seq(self) -> int:
        with self._cond:
            return self._seq

    def wait(self, seq: int, timeout: float) -> int:
        """Block until an event newer than `seq` is recorded or `timeout` passes; the
        newest sequence number."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seq <= seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._seq


# --- what the components record ------------------------------------------------------------

CONTROLLERS = {
    "Deployment": "deployment-controller",
    "ReplicaSet": "replicaset-controller",
    "StatefulSet": "statefulset-controller",
    "DaemonSet": "daemonset-controller",
    "Job": "job-controller",
}
PLANE_COMPONENTS = {
    "proxy": "kube-proxy",
    "policy": "kemu-network-policy",
    "hostports": "kemu-portmap",
    "cni": "kemu-cni",
    "network": "kemu-cni",
}


def record_controller_events(rec: EventRecorder, events: list[ControllerEvent]) -> None:
    """The controllers' events, as their Kubernetes namesakes word them."""
    for e in events:
        kind, _, name = e.object.partition("/")
        rec.record(Involved(kind, name, e.namespace), e.reason, e.message, CONTROLLERS.get(kind, "kemu"), warning=e.type == "Warning")


def sync_observer(rec: EventRecorder) -> SyncObserver:
    """Node events for the dataplane's syncs: Synced with its duration, or SyncFailed."""

    def observe(plane: str, node: str, full: bool, ms: float, error: str) -> None:
        component = PLANE_COMPONENTS.get(plane, plane)
        if error:
            rec.record(Involved("Node", node), "SyncFailed", f"{plane}: {error}", component, warning=True, host=node)
        else:
            rec.record(
                Involved("Node", node), "Synced", f"{plane}: {'full' if full else 'partial'} sync in {ms:.1f} ms", component, host=node
            )

    return observe


def ready_endpoints(slices: list[EndpointSlice]) -> tuple[str, ...]:
    """The Service's ready endpoints, "ip:port", sorted."""
    return tuple(
        sorted(
            {f"{a}:{p.port}" for sl in slices for ep in sl.endpoints if ep.conditions.ready for a in ep.addresses for p in sl.ports}
            or {a for sl in slices for ep in sl.endpoints if ep.conditions.ready for a in ep.addresses}
        )
    )


class ServiceWatch:
    """Compares the service plane's outcome with the last one: EndpointsChanged on a
    Service whose ready endpoints changed (kemu's own reason: the EndpointSlice
    controller records none); IPAllocated and nodeAssigned (MetalLB's controller and
    speaker) when a LoadBalancer IP is given out or moves to another node."""

    def __init__(self, rec: EventRecorder) -> None:
        self.rec = rec
        self._seen = Snapshot()  # the slice lists as last seen: unchanged ones are the same objects
        self._ready: dict[str, tuple[str, ...]] = {}
        self._lb: dict[str, str] = {}

    def update(self, slices: dict[str, list[EndpointSlice]], lb_nodes: dict[str, str], lb_owner: Callable[[str], str | None]) -> None:
        for key in sorted(self._seen.changed(slices)):
            ready = ready_endpoints(slices[key]) if key in slices else ()
            if key in slices and ready != self._ready.get(key, ()):
                ns, name = key.split("/", 1)
                text = ", ".join(ready[:8]) + (f" and {len(ready) - 8} more" if len(ready) > 8 else "")
                msg = f"ready endpoints: {text}" if ready else "no ready endpoints"
                self.rec.record(Involved("Service", name, ns), "EndpointsChanged", msg, "endpointslice-controller")
            if key in slices:
                self._ready[key] = ready
            else:
                self._ready.pop(key, None)
        if lb_nodes == self._lb:
            return
        for ip, node in sorted(lb_nodes.items()):
            if self._lb.get(ip) == node:
                continue
            owner = lb_owner(ip)
            if owner is None:
                continue
            ns, name = owner.split("/", 1)
            if ip not in self._lb:
                self.rec.record(Involved("Service", name, ns), "IPAllocated", f'Assigned IP ["{ip}"]', "metallb-controller")
            self.rec.record(
                Involved("Service", name, ns),
                "nodeAssigned",
                f'announcing from node "{node}" with protocol "layer2"',
                "metallb-speaker",
                host=node,
            )
        self._lb = dict(lb_nodes)
