"""The caches that make a one-Service change cost that Service: after any sequence of
changes, each gives exactly what a fresh computation gives (EndpointSlices, service
allocations, DNS records, the gateways' service ports, the change detection itself)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emu.cluster.dns import RecordCache
from emu.cluster.gateways import ServicePorts, service_ports
from emu.controllers.changelog import LoggedDict, Snapshot, moved
from emu.controllers.endpointslices import SliceCache, slices_for
from emu.controllers.service_alloc import _allocate_full, allocate, allocate_changes
from emu.dns.records import build_index
from emu.errors import ValidationError
from emu.model.objects import ClusterSpec, Container, ContainerPort, Meta, NodeDecl, PodSpec, PodView
from emu.model.services import Endpoint, EndpointConditions, EndpointPort, EndpointSlice, Service, ServicePort, ServiceStatus

pytestmark = pytest.mark.unit
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["a", "b", "c", "d", "e", "f"]
NAMESPACES = ["x", "y"]


class ShortLog(LoggedDict[Any, Any]):
    """A log cut short early: readers that fall behind must notice and compare in full."""

    keep = 2


# The store's mappings are change-logged; the caches must give the same with plain dicts
# (compared in full), with logged ones (asked what changed) and with logs cut short.
MAPPINGS: list[Callable[[], dict[Any, Any]]] = [dict, LoggedDict, ShortLog]


def put(d: dict[str, Any], key: str, value: Any) -> None:
    """As the store does: a changed object keeps its place, a new one goes last."""
    d[key] = value


# --- Snapshot, moved -------------------------------------------------------------------------


@pytest.mark.parametrize("make", MAPPINGS)
@given(st.data())
@SETTINGS
def test_snapshot_reports_what_changed(make: Callable[[], dict[str, object]], data: st.DataObject) -> None:
    # Two readers of one mapping: one looks at every step, the other only now and then.
    snaps = [Snapshot(), Snapshot()]
    current = make()
    lasts: list[dict[str, object]] = [{}, {}]
    objs = [object() for _ in range(4)]
    for step in range(data.draw(st.integers(1, 10))):
        for k in data.draw(st.lists(st.sampled_from(NAMES), max_size=4)):
            how = data.draw(st.sampled_from(["put", "pop", "del", "update", "setdefault", "popitem", "ior", "again"]))
            if how == "put":
                put(current, k, data.draw(st.sampled_from(objs)))
            elif how == "pop":
                current.pop(k, None)
            elif how == "del" and k in current:
                del current[k]
            elif how == "update":
                current.update({k: data.draw(st.sampled_from(objs))})
            elif how == "setdefault":
                current.setdefault(k, data.draw(st.sampled_from(objs)))
            elif how == "popitem" and current:
                current.popitem()
            elif how == "ior":
                current |= {k: data.draw(st.sampled_from(objs))}
            elif how == "again" and k in current:  # gone and back: another place in the order
                current[k] = current.pop(k)
        if data.draw(st.integers(0, 5)) == 0:
            current.clear()
        if data.draw(st.integers(0, 5)) == 0:  # another mapping, same contents, maybe another order
            items = sorted(current.items(), reverse=data.draw(st.booleans()))
            current = make()
            current.update(items)
        for i, snap in enumerate(snaps):
            if i and step and data.draw(st.booleans()):
                continue  # this reader sits the step out
            last = lasts[i]
            want = {k for k in current.keys() | last.keys() if current.get(k, 0) is not last.get(k, 0)}
            assert snap.changed(current) == want
            if snap.same_order:
                assert list(current) == list(last) or set(current) != set(last)
            lasts[i] = dict(current)


def test_snapshot_same_order_follows_the_keys() -> None:
    d: LoggedDict[str, int] = LoggedDict(a=1, b=2)
    snap = Snapshot()
    snap.changed(d)
    d["a"] = 3  # in place: the order stands
    assert snap.changed(d) == {"a"} and snap.same_order
    d["a"] = d.pop("a")  # gone and back, at the end now
    assert snap.changed(d) == set() and not snap.same_order


def test_logged_dict_logs_every_change() -> None:
    d: LoggedDict[str, int] = LoggedDict({"a": 1})
    start = d.seq
    d["b"] = 2
    d["b"] = 2  # the same object: no change
    d.update(c=3)
    d |= {"e": 5}
    d.setdefault("f", 6)
    d.setdefault("f", 7)  # there already: no change
    del d["a"]
    d.pop("b")
    d.pop("zz", None)
    key, _ = d.popitem()
    assert d.since(start) == ["b", "c", "e", "f", "a", "b", key]
    assert d.shapes == 7 and d.shaped_since(start)
    mark = d.seq
    d.clear()
    assert sorted(d.since(mark) or []) == ["c", "e"] and not d
    copied = __import__("copy").copy(LoggedDict(x=1))
    assert isinstance(copied, LoggedDict) and copied == {"x": 1} and copied.since(0) == []
    short = ShortLog()
    for i in range(10):
        short["k"] = i
    assert short.since(0) is None and short.since(short.seq) == []  # cut short behind a reader


@given(st.lists(st.integers(0, 3), max_size=700), st.data())
@SETTINGS
def test_moved_finds_every_difference(old: list[int], data: st.DataObject) -> None:
    new = list(old)
    for i in data.draw(st.lists(st.integers(0, max(len(old) - 1, 0)), max_size=5)) if old else []:
        new[i] = new[i] + 1
    assert moved(new, old, block=data.draw(st.sampled_from([1, 7, 256]))) == [i for i in range(len(old)) if new[i] != old[i]]


# --- EndpointSlices --------------------------------------------------------------------------

SELECTORS = [None, {"app": "1"}, {"app": "2"}, {"app": "1", "tier": "f"}, {}]
TARGETS: list[int | str] = [0, 8080, "http", "missing"]


def a_service(data: st.DataObject, key: str) -> Service:
    ns, name = key.split("/")
    ports = tuple(
        ServicePort(80 + i, name=f"p{i}", target_port=data.draw(st.sampled_from(TARGETS))) for i in range(data.draw(st.integers(1, 2)))
    )
    return Service(
        Meta(name, ns, {"l": data.draw(st.sampled_from(["1", "2"]))}),
        type=data.draw(st.sampled_from(["ClusterIP", "ClusterIP", "ExternalName"])),
        selector=data.draw(st.sampled_from(SELECTORS)),
        ports=ports,
        publish_not_ready_addresses=data.draw(st.booleans()),
    )


def a_pod(data: st.DataObject, key: str) -> PodView:
    ns, name = key.split("/")
    named = data.draw(st.booleans())
    spec = PodSpec((Container("c", (ContainerPort(8080 if named else 9090, name="http" if named else "web"),)),))
    return PodView(
        ns,
        name,
        data.draw(st.sampled_from([{"app": "1"}, {"app": "2"}, {"app": "1", "tier": "f"}, {}])),
        data.draw(st.sampled_from(["", "10.244.1.5", "10.244.2.7", "10.244.1.9"])),
        data.draw(st.sampled_from(["n1", "n2"])),
        spec if data.draw(st.integers(0, 5)) else None,
        ready=data.draw(st.booleans()),
        terminating=data.draw(st.booleans()),
    )


KEYS = [f"{ns}/{n}" for ns in NAMESPACES for n in NAMES[:4]]


@pytest.mark.parametrize("make", MAPPINGS)
@given(st.data())
@SETTINGS
def test_slice_cache_equals_slices_for(make: Callable[[], dict[str, Any]], data: st.DataObject) -> None:
    cache = SliceCache()
    services: dict[str, Service] = make()
    pods: dict[str, PodView] = {}
    zones = {"n1": "z1", "n2": "z2"}
    for _ in range(data.draw(st.integers(1, 12))):
        what = data.draw(st.sampled_from(["svc", "svc-", "pod", "pod-", "zones", "none"]))
        if what == "svc":
            key = data.draw(st.sampled_from(KEYS))
            put(services, key, a_service(data, key))
        elif what == "svc-" and services:
            del services[data.draw(st.sampled_from(sorted(services)))]
        elif what == "pod":
            key = data.draw(st.sampled_from(KEYS))
            put(pods, key, a_pod(data, key))
        elif what == "pod-" and pods:
            del pods[data.draw(st.sampled_from(sorted(pods)))]
        elif what == "zones":
            zones = {"n1": data.draw(st.sampled_from(["z1", "z2", ""])), "n2": "z2"}
        pod_list = list(pods.values())
        if data.draw(st.booleans()):
            pod_list.reverse()
        before = dict(cache.slices)
        changed = cache.update(services, pod_list, zones)
        want = {k: slices_for(s, pod_list, zones) for k, s in services.items() if s.selector is not None}
        assert cache.slices == want
        assert changed == {k for k in want.keys() | before.keys() if want.get(k) != before.get(k)}
        assert all(cache.slices[k] is before[k] for k in want.keys() - changed if k in before)  # unchanged: the same list


# --- allocations -----------------------------------------------------------------------------


def an_alloc_service(data: st.DataObject, name: str) -> Service:
    kind = data.draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "LoadBalancer", "ExternalName"]))
    n = data.draw(st.integers(1, 2))
    ports = tuple(
        ServicePort(80 + i, name=f"p{i}" if n > 1 else "", node_port=data.draw(st.sampled_from([0, 0, 0, 30000, 30001, 30003])))
        for i in range(n)
    )
    return Service(
        Meta(name, "default"),
        type=kind,
        selector={"app": "x"},
        ports=ports,
        cluster_ip=data.draw(st.sampled_from(["", "", "", "None", "10.96.0.3", "10.96.0.12", "10.97.0.1"])),
        external_traffic_policy=data.draw(st.sampled_from(["Cluster", "Local"])),
        health_check_node_port=data.draw(st.sampled_from([0, 0, 30002])),
        load_balancer_ip=data.draw(st.sampled_from(["", "", "", "172.30.0.241", "172.30.0.9"])),
        allocate_lb_node_ports=data.draw(st.booleans()),
    )


def outcome(f: Any, *args: Any) -> Any:
    try:
        return f(*args)
    except ValidationError as e:
        return ("error", [str(p) for p in e.problems])


@given(st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_allocate_equals_a_full_run(data: st.DataObject) -> None:
    # A small range and pool: exhaustion, conflicts and pending LoadBalancers happen.
    spec = ClusterSpec("t", service_cidr="10.96.0.0/28", lb_pool=("172.30.0.240-172.30.0.242",), nodes=(NodeDecl("n1"),))
    services: dict[str, Service] = {}
    statuses: dict[str, ServiceStatus] = {}
    for _ in range(data.draw(st.integers(1, 14))):
        if services and data.draw(st.integers(0, 3)) == 0:  # `kemu delete`: the store drops both, no allocation
            key = data.draw(st.sampled_from(sorted(services)))
            del services[key]
            statuses.pop(key, None)
            continue
        proposed = dict(services)
        for name in data.draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2)):
            put(proposed, f"default/{name}", an_alloc_service(data, name))
        want = outcome(_allocate_full, spec, list(proposed.values()), dict(statuses))
        got = outcome(allocate, spec, list(proposed.values()), statuses)
        assert got == want
        if isinstance(got, dict):
            assert list(got) == list(want)  # the same order too
            services, statuses = proposed, got


@pytest.mark.parametrize("make", MAPPINGS)
@given(st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_allocate_changes_equals_a_full_run(make: Callable[[], dict[str, Any]], data: st.DataObject) -> None:
    # As the store uses it: its mappings changed in place with the changes given back.
    spec = ClusterSpec("t", service_cidr="10.96.0.0/28", lb_pool=("172.30.0.240-172.30.0.242",), nodes=(NodeDecl("n1"),))
    services: dict[str, Service] = make()
    statuses: dict[str, ServiceStatus] = make()
    for _ in range(data.draw(st.integers(1, 16))):
        what = data.draw(st.sampled_from(["apply", "apply", "apply", "delete", "relabel", "back", "drop", "half"]))
        if what == "delete" and services:  # `kemu delete`: the store drops both, no allocation
            key = data.draw(st.sampled_from(sorted(services)))
            del services[key]
            statuses.pop(key, None)
            continue
        if what == "back" and services:  # gone and back: last in the order now
            key = data.draw(st.sampled_from(sorted(services)))
            services[key] = services.pop(key)
            continue
        if what == "relabel" and services:  # `kemu label`: another object, no allocation
            key = data.draw(st.sampled_from(sorted(services)))
            services[key] = dataclasses.replace(services[key], meta=Meta(services[key].meta.name, "default", {"l": "x"}))
            continue
        proposed = [an_alloc_service(data, name) for name in data.draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3))]
        merged = dict(services)
        for svc in proposed:
            merged[svc.key] = svc
        want = outcome(_allocate_full, spec, list(merged.values()), dict(statuses))
        got = outcome(allocate_changes, spec, services, proposed, statuses)
        if isinstance(want, tuple):
            assert got == want
            continue
        assert isinstance(got, dict)
        if what == "drop":  # admitted, then not stored (another object failed): the next must notice
            continue
        for svc in proposed:
            services[svc.key] = svc
        if what == "half":  # the Services stored, not their statuses: the next must notice
            continue
        before = dict(statuses)
        for k, st_ in got.items():
            if st_ is None:
                statuses.pop(k, None)
            else:
                statuses[k] = st_
        assert dict(statuses) == want
        assert all(before.get(k) != st_ for k, st_ in got.items())  # only what changed was given


def test_allocate_keeps_unchanged_statuses_and_takes_the_lowest_free() -> None:
    spec = ClusterSpec("t", nodes=(NodeDecl("n1"),))
    svcs = [Service(Meta(f"s{i}", "default"), type="NodePort", ports=(ServicePort(80),)) for i in range(300)]
    first = allocate(spec, svcs, {})
    svcs[150] = Service(Meta("s150", "default"), type="ClusterIP", ports=(ServicePort(81),))
    second = allocate(spec, svcs, first)
    assert second == _allocate_full(spec, svcs, first)
    assert all(second[k] is first[k] for k in first if k != "default/s150")
    svcs.append(Service(Meta("new", "default"), type="NodePort", ports=(ServicePort(80),)))
    third = allocate(spec, svcs, second)
    assert third["default/new"].node_ports == {"80/TCP": first["default/s150"].node_ports["80/TCP"]}  # the one given back


# --- DNS records -----------------------------------------------------------------------------

ZONE, TTL, SVC_CIDR, POD_CIDR, DNS_IP = "cluster.local", 30, "10.96.0.0/16", "10.244.0.0/16", "10.96.0.10"
POD_IPS = ["10.244.1.5", "10.244.1.6", "10.244.2.7", "192.168.9.9"]


def a_dns_service(data: st.DataObject, key: str) -> Service:
    ns, name = key.split("/")
    kind = data.draw(st.sampled_from(["ClusterIP", "ClusterIP", "headless", "ExternalName"]))
    ports = tuple(
        ServicePort(80 + i, data.draw(st.sampled_from(["TCP", "UDP"])), data.draw(st.sampled_from(["", "http", "dns"])))
        for i in range(data.draw(st.integers(0, 2)))
    )
    if kind == "ExternalName":
        return Service(Meta(name, ns), type="ExternalName", external_name=data.draw(st.sampled_from(["example.com", "ex.org."])))
    return Service(Meta(name, ns), ports=ports, cluster_ip="None" if kind == "headless" else "", selector={"a": "b"})


def some_slices(data: st.DataObject, key: str) -> list[EndpointSlice]:
    ns, name = key.split("/")
    out = []
    for i in range(data.draw(st.integers(0, 2))):
        eps = tuple(
            Endpoint(
                (data.draw(st.sampled_from(POD_IPS)),),
                EndpointConditions(ready=data.draw(st.booleans())),
                target_ref=f"{ns}/p{data.draw(st.integers(0, 2))}",
            )
            for _ in range(data.draw(st.integers(0, 3)))
        )
        out.append(EndpointSlice(Meta(f"{name}-{i}", ns), eps, (EndpointPort(8080 + i, "TCP", "http"),)))
    return out


def a_dns_pod(data: st.DataObject, ns: str, i: int) -> PodView:
    spec = PodSpec(
        (Container("c"),), hostname=data.draw(st.sampled_from(["", "h0", "h1"])), subdomain=data.draw(st.sampled_from(["", "a", "b"]))
    )
    return PodView(ns, f"p{i}", {}, data.draw(st.sampled_from(POD_IPS)), "n1", spec)


@pytest.mark.parametrize("make", MAPPINGS)
@given(st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_record_cache_equals_build_index(make: Callable[[], dict[str, Any]], data: st.DataObject) -> None:
    cache = RecordCache(ZONE, TTL, SVC_CIDR, POD_CIDR, DNS_IP)
    services: dict[str, Service] = make()
    statuses: dict[str, ServiceStatus] = make()
    slices: dict[str, list[EndpointSlice]] = make()
    pods: dict[str, PodView] = {}
    namespaces = ["default"]
    next_ip = 20
    for serial in range(1, data.draw(st.integers(2, 25))):
        what = data.draw(st.sampled_from(["svc", "svc", "svc-", "status", "slices", "pod", "pod-", "ns", "order", "back"]))
        key = data.draw(st.sampled_from(KEYS))
        if what == "svc":
            put(services, key, a_dns_service(data, key))
            if data.draw(st.booleans()):
                next_ip += 1
                put(statuses, key, ServiceStatus(f"10.96.0.{next_ip}"))
        elif what == "svc-" and services:
            key = data.draw(st.sampled_from(sorted(services)))
            del services[key]
            statuses.pop(key, None)
            slices.pop(key, None)
        elif what == "status" and key in services:
            next_ip += 1
            put(statuses, key, ServiceStatus(f"10.96.0.{next_ip}"))
        elif what == "slices":
            put(slices, key, some_slices(data, key))
        elif what == "pod":
            i, ns = data.draw(st.integers(0, 2)), data.draw(st.sampled_from(NAMESPACES))
            put(pods, f"{ns}/p{i}", a_dns_pod(data, ns, i))
        elif what == "pod-" and pods:
            del pods[data.draw(st.sampled_from(sorted(pods)))]
        elif what == "ns":
            namespaces = data.draw(st.lists(st.sampled_from(["default", "x", "z"]), max_size=3))
        elif what == "order":  # another order: the cache starts again
            items = list(reversed(services.items()))
            services = make()
            services.update(items)
        elif what == "back" and key in services:  # gone and back in one change: last in the order now
            services[key] = services.pop(key)
        pod_list = list(pods.values())
        cache.note(services, statuses, slices, pod_list, namespaces)
        cache.refresh(services, statuses, slices)
        got = cache.index(serial)
        want = build_index(
            services.values(),
            statuses,
            slices,
            pod_list,
            namespaces=namespaces,
            zone=ZONE,
            ttl=TTL,
            service_cidr=SVC_CIDR,
            pod_cidr=POD_CIDR,
            dns_ip=DNS_IP,
            serial=serial,
        )
        assert dict(got.records) == dict(want.records)
        assert got.ents == want.ents
        assert dict(got.endpoints) == dict(want.endpoints)
        assert got == want


def test_record_cache_keeps_the_services_order_in_a_shared_name() -> None:
    # Two Services share a pod: its PTR name holds a line of each, in the Services' order,
    # also after the first one's line left and came back.
    cache = RecordCache(ZONE, TTL, SVC_CIDR, POD_CIDR, DNS_IP)
    svcs = {f"default/{n}": Service(Meta(n, "default"), ports=(ServicePort(80),), selector={}) for n in ("a", "b")}
    statuses = {"default/a": ServiceStatus("10.96.0.20"), "default/b": ServiceStatus("10.96.0.21")}

    def one(name: str, ready: bool) -> list[EndpointSlice]:
        ep = Endpoint(("10.244.1.5",), EndpointConditions(ready=ready), target_ref="default/p")
        return [EndpointSlice(Meta(name, "default"), (ep,), (EndpointPort(80),))]

    for serial, a_ready in enumerate((True, False, True), start=1):
        slices = {"default/a": one("a", a_ready), "default/b": one("b", True)}
        cache.note(svcs, statuses, slices, [], ["default"])
        cache.refresh(svcs, statuses, slices)
        want = build_index(
            svcs.values(), statuses, slices, zone=ZONE, ttl=TTL, service_cidr=SVC_CIDR, pod_cidr=POD_CIDR, dns_ip=DNS_IP, serial=serial
        )
        assert cache.index(serial) == want
    assert (
        want.records["5.1.244.10.in-addr.arpa"] == "PTR 10-244-1-5.a.default.svc.cluster.local\nPTR 10-244-1-5.b.default.svc.cluster.local"
    )


def test_record_cache_follows_a_service_gone_and_back() -> None:
    # A Service deleted and applied again is last in the order: its line in a name it
    # shares comes last now (the change log says a key came or went: the order is read).
    cache = RecordCache(ZONE, TTL, SVC_CIDR, POD_CIDR, DNS_IP)
    svcs: LoggedDict[str, Service] = LoggedDict()
    statuses: LoggedDict[str, ServiceStatus] = LoggedDict()
    slices: LoggedDict[str, list[EndpointSlice]] = LoggedDict()
    ep = Endpoint(("10.244.1.5",), EndpointConditions(ready=True), target_ref="default/p")
    for i, n in enumerate(("a", "b")):
        svcs[f"default/{n}"] = Service(Meta(n, "default"), ports=(ServicePort(80),), selector={})
        statuses[f"default/{n}"] = ServiceStatus(f"10.96.0.{20 + i}")
        slices[f"default/{n}"] = [EndpointSlice(Meta(n, "default"), (ep,), (EndpointPort(80),))]
    for serial in (1, 2):
        if serial == 2:
            svcs["default/a"] = svcs.pop("default/a")
        cache.note(svcs, statuses, slices, [], ["default"])
        cache.refresh(svcs, statuses, slices)
        want = build_index(
            svcs.values(), statuses, slices, zone=ZONE, ttl=TTL, service_cidr=SVC_CIDR, pod_cidr=POD_CIDR, dns_ip=DNS_IP, serial=serial
        )
        assert cache.index(serial) == want
    assert want.records["5.1.244.10.in-addr.arpa"].startswith("PTR 10-244-1-5.b.")


def test_record_cache_writes_nothing_when_a_change_leaves_the_records() -> None:
    cache = RecordCache(ZONE, TTL, SVC_CIDR, POD_CIDR, DNS_IP)
    svcs = {f"default/s{i}": Service(Meta(f"s{i}", "default"), ports=(ServicePort(80, target_port=80),)) for i in range(50)}
    statuses = {k: ServiceStatus(f"10.96.1.{i}") for i, k in enumerate(svcs)}
    assert cache.note(svcs, statuses, {}, [], ["default"])  # the first sync publishes
    assert cache.refresh(svcs, statuses, {})
    cache.index(1)
    svcs = dict(svcs)
    svcs["default/s7"] = Service(Meta("s7", "default"), ports=(ServicePort(80, target_port=8080),))
    assert cache.note(svcs, statuses, {}, [], ["default"])  # a Service changed: look again …
    assert not cache.refresh(svcs, statuses, {})  # … its records did not: nothing to write
    svcs["default/s8"] = Service(Meta("s8", "default"), ports=(ServicePort(81, name="web"),))
    assert cache.note(svcs, statuses, {}, [], ["default"])
    assert cache.refresh(svcs, statuses, {})
    assert "_web._tcp.s8.default.svc.cluster.local" in cache.index(2).records


# --- the gateways' view of Services ----------------------------------------------------------


@pytest.mark.parametrize("make", MAPPINGS)
@given(st.data())
@SETTINGS
def test_service_ports_cache_equals_service_ports(make: Callable[[], dict[str, Any]], data: st.DataObject) -> None:
    cache = ServicePorts()
    services: dict[str, Service] = make()
    slices: dict[str, list[EndpointSlice]] = make()
    for _ in range(data.draw(st.integers(1, 10))):
        key = data.draw(st.sampled_from(KEYS))
        what = data.draw(st.sampled_from(["svc", "svc-", "slices", "none"]))
        if what == "svc":
            put(services, key, a_dns_service(data, key))
        elif what == "svc-":
            services.pop(key, None)
            slices.pop(key, None)
        elif what == "slices":
            put(slices, key, some_slices(data, key))
        before = cache.out
        got = cache.get(services, slices)
        want = service_ports(services, slices)
        assert got == want
        if got == before:
            assert got is before  # unchanged: the same dict (worlds compare cheaply)
