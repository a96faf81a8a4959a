"""The event recorder: core/v1 Events as kubectl shows them, repeats counted, followers woken."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emu.cluster.events import EventRecorder, Involved, ServiceWatch, record_controller_events, sync_observer
from emu.controllers.owned import Event as ControllerEvent
from emu.model.objects import Meta
from emu.model.services import Endpoint, EndpointConditions, EndpointPort, EndpointSlice

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def test_an_event_is_a_core_v1_event() -> None:
    clock = Clock()
    rec = EventRecorder(clock=clock)
    rec.record(Involved("Pod", "web-1", "shop", "spec.containers{web}"), "Started", "Started container web", "kubelet", host="node-1")
    (e,) = rec.since(0)
    v1 = e.as_v1()
    assert v1["kind"] == "Event" and v1["metadata"]["namespace"] == "shop" and v1["metadata"]["name"].startswith("web-1.")
    assert v1["involvedObject"] == {
        "kind": "Pod",
        "name": "web-1",
        "namespace": "shop",
        "fieldPath": "spec.containers{web}",
        "apiVersion": "v1",
    }
    assert (v1["type"], v1["reason"], v1["count"]) == ("Normal", "Started", 1)
    assert v1["source"] == {"component": "kubelet", "host": "node-1"}
    assert v1["firstTimestamp"] == v1["lastTimestamp"] == "2027-01-15T08:00:00Z"


def test_a_repeat_counts_up_and_moves_to_the_end() -> None:
    clock = Clock()
    rec = EventRecorder(clock=clock)
    pod = Involved("Pod", "p", "default")
    rec.record(pod, "FailedScheduling", "0/2 nodes are available", "default-scheduler", warning=True)
    rec.record(Involved("Node", "n1"), "Synced", "proxy: full sync in 1.0 ms", "kube-proxy", host="n1")
    clock.t += 30
    rec.record(pod, "FailedScheduling", "0/2 nodes are available", "default-scheduler", warning=True)
    events = rec.since(0)
    assert [e.reason for e in events] == ["Synced", "FailedScheduling"]
    again = events[-1]
    assert again.count == 2 and again.last - again.first == 30 and again.type == "Warning"
    assert again.seq == rec.last_seq == 3
    assert [e.reason for e in rec.since(2)] == ["FailedScheduling"]  # a follower past the first sees the repeat


def test_namespaces_and_the_cluster_scoped() -> None:
    rec = EventRecorder()
    rec.record(Involved("Pod", "a", "x"), "Started", "m", "kubelet")
    rec.record(Involved("Node", "n1"), "Synced", "m", "kube-proxy")
    assert [e.involved.name for e in rec.since(0, "x")] == ["a"]
    assert [e.involved.name for e in rec.since(0, "default")] == ["n1"]  # filed in default, as the API server does
    assert len(rec.since(0)) == 2


def test_the_oldest_go_first_beyond_the_limit() -> None:
    rec = EventRecorder(limit=3)
    for i in range(5):
        rec.record(Involved("Pod", f"p{i}", "x"), "Started", "m", "kubelet")
    assert [e.involved.name for e in rec.since(0)] == ["p2", "p3", "p4"]


def test_wait_returns_when_something_new_is_recorded() -> None:
    rec = EventRecorder()
    t = threading.Timer(0.1, lambda: rec.record(Involved("Pod", "p", "x"), "Started", "m", "kubelet"))
    t.start()
    t0 = time.monotonic()
    assert rec.wait(0, timeout=5) == 1
    assert time.monotonic() - t0 < 4
    assert rec.wait(1, timeout=0.05) == 1  # nothing newer: back at the deadline


def test_controller_and_sync_events() -> None:
    rec = EventRecorder()
    record_controller_events(rec, [ControllerEvent("shop", "ReplicaSet/web-5d", "Normal", "SuccessfulCreate", "Created pod: web-5d-abcde")])
    observe = sync_observer(rec)
    observe("proxy", "node-1", False, 2.345, "")
    observe("policy", "node-2", True, 0.0, "netlink: Operation not permitted; full resync in 0.1 s")
    rs, synced, failed = rec.since(0)
    assert (rs.involved, rs.component, rs.reason) == (Involved("ReplicaSet", "web-5d", "shop"), "replicaset-controller", "SuccessfulCreate")
    assert (synced.involved, synced.message, synced.component, synced.host) == (
        Involved("Node", "node-1"),
        "proxy: partial sync in 2.3 ms",
        "kube-proxy",
        "node-1",
    )
    assert failed.type == "Warning" and failed.reason == "SyncFailed" and "full resync" in failed.message


def _slice(svc: str, ready: dict[str, bool], port: int = 8080) -> EndpointSlice:
    eps = tuple(Endpoint((ip,), EndpointConditions(ready=ok)) for ip, ok in ready.items())
    return EndpointSlice(Meta(f"{svc}-abc", "shop", {"kubernetes.io/service-name": svc}), eps, (EndpointPort(port),))


def test_service_watch_reports_ready_endpoint_changes_and_lb_announcements() -> None:
    rec = EventRecorder()
    w = ServiceWatch(rec)
    owner = {"172.18.255.200": "shop/web"}.get
    first = {"shop/web": [_slice("web", {"10.244.0.2": True, "10.244.1.2": False})]}
    w.update(first, {}, owner)
    w.update(first, {}, owner)  # the same lists: nothing new
    w.update({"shop/web": [_slice("web", {"10.244.0.2": True, "10.244.1.2": True})]}, {"172.18.255.200": "node-1"}, owner)
    w.update({"shop/web": [_slice("web", {"10.244.0.2": True, "10.244.1.2": True})]}, {"172.18.255.200": "node-2"}, owner)
    w.update({"shop/web": [_slice("web", {"10.244.0.2": False})]}, {"172.18.255.200": "node-2"}, owner)
    got = [(e.reason, e.message) for e in rec.since(0)]
    assert got == [
        ("EndpointsChanged", "ready endpoints: 10.244.0.2:8080"),
        ("EndpointsChanged", "ready endpoints: 10.244.0.2:8080, 10.244.1.2:8080"),
        ("IPAllocated", 'Assigned IP ["172.18.255.200"]'),
        ("nodeAssigned", 'announcing from node "node-1" with protocol "layer2"'),
        ("nodeAssigned", 'announcing from node "node-2" with protocol "layer2"'),
        ("EndpointsChanged", "no ready endpoints"),
    ]


def _reference(records: list[tuple[int, int]], limit: int) -> list[tuple[str, str, int, int]]:
    """The correlator as written first: scan the last 50 stored events for an equal one."""
    stored: list[list] = []
    seq = 0
    for obj, reason in records:
        seq += 1
        key = (f"pod-{obj}", f"R{reason}")
        for i in range(len(stored) - 1, max(-1, len(stored) - 50), -1):
            if stored[i][0] == key:
                old = stored.pop(i)
                stored.append([key, old[1] + 1, seq])
                break
        else:
            stored.append([key, 1, seq])
        del stored[: max(0, len(stored) - limit)]
    return [(k[0], k[1], count, s) for k, count, s in stored]


@given(
    records=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 2)), max_size=300),
    limit=st.integers(1, 80),
)
@settings(max_examples=200, deadline=None)
def test_repeats_are_found_as_by_a_scan_of_the_recent_past(records: list[tuple[int, int]], limit: int) -> None:
    # The recorder looks for a repeat only when an equal event is stored (a dict of keys);
    # what it stores must be what the plain scan of the last 50 stores, with eviction.
    rec = EventRecorder(limit=limit, clock=Clock())
    for obj, reason in records:
        rec.record(Involved("Pod", f"pod-{obj}", "default"), f"R{reason}", "m", "kubelet")
    got = [(e.involved.name, e.reason, e.count, e.seq) for e in rec.since(0)]
    assert got == _reference(records, limit)
    assert len({e.name for e in rec.since(0)}) == len(got)  # names stay unique
    assert len(rec._latest) <= limit  # the index forgets what the limit dropped
