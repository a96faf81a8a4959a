"""PlanCompiler against compile_plan: the same plans after random changes to Services,
their statuses and their slices, and exactly the service ports that changed."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emu.controllers.endpointslices import slices_for
from emu.controllers.service_alloc import allocate
from emu.model.objects import Meta
from emu.model.services import (
    SERVICE_NAME_LABEL,
    Endpoint,
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
    Service,
    ServicePort,
    ServiceStatus,
)
from emu.proxy.plan import PlanCompiler, ProxyPlan, ServicePortPlan, compile_plan
from tests.unit.proxy_fixture import PODS, SPEC, plans, services

pytestmark = pytest.mark.unit

T = TypeVar("T")
NODES = {"n1": ("172.30.0.2",), "n2": ("172.30.0.3",)}
PORTS = [ServicePort(80, "TCP", "http", "http"), ServicePort(53, "UDP", "dns", "dns"), ServicePort(8080, "TCP", "", 8080)]
ENDPOINT_PORTS = [EndpointPort(8080, "TCP", "http"), EndpointPort(5353, "UDP", "dns"), EndpointPort(8080, "TCP", "")]
KEYS = [("default", n) for n in "abcd"] + [("other", "a")]


def service(key: tuple[str, str]) -> st.SearchStrategy[Service]:
    return st.builds(
        lambda kind, ports, headless, ext, affinity, etp, itp, ranges, lb_np: Service(
            Meta(key[1], key[0]),
            kind,
            {"app": key[1]},
            tuple(PORTS[i] for i in sorted(ports)),
            "None" if headless else "",
            ext,
            "ClientIP" if affinity else "None",
            60,
            etp,
            itp,
            load_balancer_source_ranges=ranges,
            allocate_lb_node_ports=lb_np,
        ),
        st.sampled_from(["ClusterIP", "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]),
        st.sets(st.integers(0, 2), min_size=1),
        st.integers(0, 4).map(lambda i: i == 0),  # headless, now and then
        st.sampled_from([(), ("192.0.2.10",)]),
        st.booleans(),
        st.sampled_from(["Cluster", "Local"]),
        st.sampled_from(["Cluster", "Local"]),
        st.sampled_from([(), ("172.30.0.100/32",)]),
        st.booleans(),
    )


status = st.builds(
    lambda ip, np, lb: ServiceStatus(ip, {"http": 30080, "dns": 30053, "8080/TCP": 30081} if np else {}, 0, lb),
    st.sampled_from(["10.96.0.5", "10.96.0.6", "10.96.0.7", ""]),
    st.booleans(),
    st.sampled_from(["", "172.30.0.200"]),
)
endpoint = st.builds(
    lambda ip, node, ready, serving, terminating: Endpoint((ip,), EndpointConditions(ready, serving, terminating), node),
    st.sampled_from(["10.244.0.2", "10.244.0.3", "10.244.1.2"]),
    st.sampled_from(["n1", "n2"]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)


def slice_list(name: str) -> st.SearchStrategy[list[EndpointSlice]]:
    one = st.builds(
        lambda eps, ports: EndpointSlice(
            Meta(f"{name}-x", "default", {SERVICE_NAME_LABEL: name}), tuple(eps), tuple(ENDPOINT_PORTS[i] for i in sorted(ports))
        ),
        st.lists(endpoint, max_size=3),
        st.sets(st.integers(0, 2)),
    )
    return st.lists(one, max_size=2)


def expected_change(before: ProxyPlan | None, after: ProxyPlan) -> dict[str, tuple[ServicePortPlan | None, ServicePortPlan | None]]:
    old, new = (before.by_id() if before else {}), after.by_id()
    return {i: (old.get(i), new.get(i)) for i in old.keys() | new.keys() if old.get(i) != new.get(i)}


def _copy(x: T) -> T:
    """An equal object that is not the same one (as a store that rebuilt it)."""
    return dataclasses.replace(x)  # type: ignore[type-var]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_plan_compiler_equals_compile_plan_after_changes(data: st.DataObject) -> None:
    # Every key starts with a Service, a status and slices; then random changes.
    svcs = {"/".join(k): data.draw(service(k)) for k in KEYS}
    statuses = {k: data.draw(status) for k in svcs}
    slices = {k: data.draw(slice_list(k.split("/")[1])) for k in svcs}
    compiler = PlanCompiler()
    last: dict[str, ProxyPlan] = {}
    node_ips = dict(NODES)
    for step in range(data.draw(st.integers(2, 8))):
        for _ in range(data.draw(st.integers(1, 3)) if step else 0):
            kind = data.draw(st.sampled_from(["service", "gone", "status", "unstatus", "slices", "slices", "copies", "node"]))
            k = data.draw(st.sampled_from(KEYS))
            key = "/".join(k)
            if kind == "service":
                svcs[key] = data.draw(service(k))
            elif kind == "gone":
                svcs.pop(key, None)
            elif kind == "status":
                statuses[key] = data.draw(status)
            elif kind == "unstatus":
                statuses.pop(key, None)
            elif kind == "slices":
                slices[key] = data.draw(slice_list(k[1]))
            elif kind == "copies":  # equal objects, new ones: nothing changes
                svcs = {k: _copy(v) for k, v in svcs.items()}
                statuses = {k: _copy(v) for k, v in statuses.items()}
                slices = {k: [_copy(s) for s in v] for k, v in slices.items()}
            else:
                node = data.draw(st.sampled_from(sorted(NODES)))
                node_ips[node] = data.draw(st.sampled_from([NODES[node], ("172.30.0.9",)]))
        svc_list = list(svcs.values())
        if data.draw(st.booleans()):
            svc_list.reverse()
        if svc_list and data.draw(st.integers(0, 9)) == 0:
            svc_list.append(_copy(svc_list[0]))  # two Services with one key: not trackable, still right
        compiler.update(svc_list, dict(statuses), dict(slices))
        # A node may sit a sync out: its next plan covers both.
        for node in data.draw(st.sets(st.sampled_from(sorted(NODES)), min_size=1)):
            got = compiler.plan(node, node_ips[node], "10.244.0.0/16")
            want = compile_plan(node, node_ips[node], "10.244.0.0/16", svc_list, statuses, slices)
            assert got.plan == want
            assert got.previous is last.get(node)
            assert got.changed == expected_change(last.get(node), want)
            last[node] = got.plan


def test_an_unchanged_input_gives_the_same_plan_and_no_change() -> None:
    compiler = PlanCompiler()
    svcs = services()
    statuses = allocate(SPEC, svcs, {})
    slices = {s.key: slices_for(s, PODS, {}) for s in svcs}
    first = compiler.compile("n1", ("172.30.0.2",), "10.244.0.0/16", svcs, statuses, slices)
    assert first.plan == plans()["n1"] and first.previous is None
    assert set(first.changed) == {sp.id for sp in first.plan.services}
    again = compiler.compile("n1", ("172.30.0.2",), "10.244.0.0/16", list(svcs), dict(statuses), dict(slices))
    assert again.plan is first.plan and again.changed == {}
