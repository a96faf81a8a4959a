"""The change logs the service plane reads by (emu/controllers/changelog.py): the proxy's
plan compiler given the store's mappings by key gives compile_plan's plans after any
changes, whether its readers follow the logs or fall back to comparing everything; and a
store's apply changes its mappings in place, keeping unchanged objects."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emu.cluster.store import Store
from emu.config.kinds import typed_kinds
from emu.config.loader import ParsedManifests, manifests_of
from emu.controllers.changelog import LoggedDict
from emu.model.objects import ClusterSpec, Meta, NodeDecl
from emu.model.services import Service, ServicePort, ServiceStatus
from emu.proxy.plan import PlanCompiler, ProxyPlan, compile_plan
from tests.unit.test_plan_compiler import KEYS, NODES, expected_change, service, slice_list, status

pytestmark = pytest.mark.unit


class ShortLog(LoggedDict[Any, Any]):
    keep = 2  # readers fall behind the log: they must compare in full


@pytest.mark.parametrize("make", [LoggedDict, ShortLog])
@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_plan_compiler_by_key_equals_compile_plan(make: type[LoggedDict[Any, Any]], data: st.DataObject) -> None:
    svcs, statuses, slices = make(), make(), make()
    for k in KEYS:
        key = "/".join(k)
        svcs[key] = data.draw(service(k))
        statuses[key] = data.draw(status)
        slices[key] = data.draw(slice_list(k[1]))
    compiler = PlanCompiler()
    last: dict[str, ProxyPlan] = {}
    for step in range(data.draw(st.integers(2, 8))):
        for _ in range(data.draw(st.integers(1, 4)) if step else 0):
            kind = data.draw(st.sampled_from(["service", "gone", "back", "status", "unstatus", "slices", "copy"]))
            k = data.draw(st.sampled_from(KEYS))
            key = "/".join(k)
            if kind == "service":
                svcs[key] = data.draw(service(k))
            elif kind == "gone":
                svcs.pop(key, None)
            elif kind == "back" and key in svcs:  # gone and back: last in the order
                svcs[key] = svcs.pop(key)
            elif kind == "status":
                statuses[key] = data.draw(status)
            elif kind == "unstatus":
                statuses.pop(key, None)
            elif kind == "slices":
                slices[key] = data.draw(slice_list(k[1]))
            elif kind == "copy" and key in slices:  # an equal list, another object: nothing changes
                slices[key] = [dataclasses.replace(s) for s in slices[key]]
        compiler.update(svcs, statuses, slices)
        for node in data.draw(st.sets(st.sampled_from(sorted(NODES)), min_size=1)):  # a node may sit a sync out
            got = compiler.plan(node, NODES[node], "10.244.0.0/16")
            want = compile_plan(node, NODES[node], "10.244.0.0/16", list(svcs.values()), statuses, slices)
            assert got.plan == want
            assert got.changed == expected_change(last.get(node), want)
            last[node] = got.plan


def test_the_plan_compiler_turns_from_a_list_to_keys_and_back() -> None:
    svcs: LoggedDict[str, Service] = LoggedDict()
    statuses: LoggedDict[str, ServiceStatus] = LoggedDict()
    for i, n in enumerate("abc"):
        svcs[f"d/{n}"] = Service(Meta(n, "d"), ports=(ServicePort(80),))
        statuses[f"d/{n}"] = ServiceStatus(f"10.96.0.{i + 1}")
    compiler = PlanCompiler()
    for step, by in enumerate(("list", "keys", "keys", "list", "keys")):
        if step == 2:
            del svcs["d/a"]  # by key: the log says
        if step == 3:
            svcs["d/b"] = Service(Meta("b", "d"), ports=(ServicePort(81),))  # as a list: compared in full
            del svcs["d/c"]
        compiler.update(list(svcs.values()) if by == "list" else svcs, statuses, {})
        want = compile_plan("n1", ("172.30.0.2",), "10.244.0.0/16", list(svcs.values()), statuses, {})
        assert compiler.plan("n1", ("172.30.0.2",), "10.244.0.0/16").plan == want


def _services(*pairs: tuple[str, int]) -> ParsedManifests:
    build = typed_kinds()["Service"].build
    order = []
    for name, target in pairs:
        raw = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}}
        obj = build({**raw, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": target}]}})
        order.append((f"Service/{obj.key}", obj))
    return ParsedManifests(manifests_of(order), {}, order)


def test_store_apply_changes_its_mappings_in_place() -> None:
    store = Store(ClusterSpec("t", nodes=(NodeDecl("n1"),)))
    services, statuses = store.services, store.service_status
    assert isinstance(services, LoggedDict) and isinstance(statuses, LoggedDict)
    store.apply(_services(("a", 80), ("b", 80), ("c", 80)))
    kept = dict(services)
    seq, seq_st = services.seq, statuses.seq
    changes = store.apply(_services(("a", 80), ("b", 8080), ("c", 80)))  # b changed, a and c again as they are
    assert [verb for *_, verb in changes.results] == ["unchanged", "configured", "unchanged"]
    assert store.services is services and store.service_status is statuses
    assert services.since(seq) == ["default/b"]
    assert services["default/a"] is kept["default/a"]  # unchanged: the stored object stays
    assert statuses.since(seq_st) == []  # b keeps its ClusterIP
    store.apply(_services(("d", 80)))
    assert statuses.since(seq_st) == ["default/d"] and statuses["default/d"].cluster_ip
    store.delete("Service", "default", "a")
    assert "default/a" not in statuses and statuses.since(seq_st)[-1] == "default/a"
