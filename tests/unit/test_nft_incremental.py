"""Incremental sync equals full sync, through the fake kernel (Hypothesis).

Proxy: random sequences of clusters (Services changing type, ports, policies, affinity;
pods coming, going, turning ready, terminating, moving nodes) compiled to plans; the first
is written with render_full, each next with NftState.update — as Proxier._sync_nft does —
and the kernel's ruleset must equal a fresh full render of the last plan. Policies: the
same with NetworkPolicies and pod labels, update_text vs the full text (PolicyPlane.sync).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emu.config.loader import Collector, parse_manifest_docs
from emu.controllers.endpointslices import slices_for
from emu.controllers.service_alloc import allocate
from emu.model.objects import Container, PodSpec, PodView
from emu.model.services import Service, ServiceStatus
from emu.netfilter.fake import FakeKernel, FakeNft, load
from emu.policy.compile import NodePolicyInput, NodeRuleset, compile_ruleset, update_text
from emu.policy.oracle import View
from emu.proxy import nft_render
from emu.proxy.plan import ProxyPlan, compile_plan
from tests.unit.proxy_fixture import PORTS, SPEC
from tests.unit.test_policy_compiler import policy
from tests.unit.test_policy_oracle import NAMESPACES, NODE_IPS, PODS, policies

pytestmark = pytest.mark.unit

NODE, NODE_IP, POD_CIDR = "n1", "172.30.0.2", "10.244.0.0/16"
HTTP = {"port": 80, "targetPort": 8080}


def _lb(**extra: Any) -> dict[str, Any]:
    return {"type": "LoadBalancer", "ports": [HTTP], **extra}


def _sticky(timeout: int, **extra: Any) -> dict[str, Any]:
    return {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": timeout}}, "ports": [HTTP], **extra}


# Each Service name has variants; a step picks one of them or leaves the Service out.
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "web": [
        {
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
            ]
        },
        {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        _sticky(60),
    ],
    "np": [
        {"type": "NodePort", "ports": [HTTP]},
        {"type": "NodePort", "externalTrafficPolicy": "Local", "ports": [HTTP]},
        _lb(),
    ],
    "local": [_lb(externalTrafficPolicy="Local"), _lb(externalTrafficPolicy="Local", sessionAffinity="ClientIP")],
    "fw": [_lb(loadBalancerSourceRanges=["172.30.0.100/32"]), _lb(loadBalancerSourceRanges=["172.30.0.100/32", "10.0.0.0/8"])],
    "itp": [
        {"internalTrafficPolicy": "Local", "ports": [HTTP]},
        {"ports": [{**HTTP, "name": "a"}, {"name": "b", "port": 81, "targetPort": 8080}]},
    ],
    "sticky": [
        _sticky(60),
        _sticky(30),
        _sticky(60, type="NodePort", externalTrafficPolicy="Local"),
        _sticky(60, type="LoadBalancer", loadBalancerSourceRanges=["172.30.0.100/32"]),
    ],
    "ext": [
        {"externalIPs": ["192.0.2.10"], "ports": [{"port": 8000, "targetPort": 8080}]},
        {"externalIPs": ["192.0.2.10", "192.0.2.11"], "ports": [{"port": 8000, "targetPort": 8080, "protocol": "UDP"}]},
    ],
}
APPS = ["web", "solo", "old", "none"]


def _parse_variants() -> dict[tuple[str, int], Service]:
    out = {}
    for name, variants in VARIANTS.items():
        for i, spec in enumerate(variants):
            for sel in APPS[:2]:  # the Service's selector varies too
                doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {**spec, "selector": {"app": sel}}}
                c = Collector()
                parsed = parse_manifest_docs([("v.yaml", "[0]", doc)], c)
                assert not c.problems, c.problems
                out[(name, i * 2 + APPS.index(sel))] = parsed.manifests.services[0]
    return out


SERVICES = _parse_variants()


def _pod(slot: int, app: str, node: str, ready: bool, terminating: bool) -> PodView:
    ip = f"10.244.{0 if node == 'n1' else 1}.{10 + slot}"
    return PodView("default", f"p{slot}", {"app": app}, ip, node, PodSpec((Container("c", ports=PORTS),)), ready, terminating)


pods = st.lists(
    st.tuples(st.sampled_from(APPS), st.sampled_from(["n1", "n2"]), st.booleans(), st.booleans()) | st.none(), min_size=5, max_size=5
)
cluster = st.tuples(
    st.fixed_dictionaries({name: st.none() | st.integers(0, 2 * len(v) - 1) for name, v in VARIANTS.items()}),
    pods,
)


def plan_for(step: tuple[dict[str, int | None], list[Any]], old: dict[str, ServiceStatus]) -> tuple[ProxyPlan, dict[str, ServiceStatus]]:
    choice, slots = step
    svcs = [SERVICES[(name, i)] for name, i in choice.items() if i is not None]
    views = [_pod(n, *s) for n, s in enumerate(slots) if s is not None]
    statuses = allocate(SPEC, svcs, {k: v for k, v in old.items() if k in {s.key for s in svcs}})
    slices = {s.key: slices_for(s, views, {}) for s in svcs}
    return compile_plan(NODE, (NODE_IP,), POD_CIDR, svcs, statuses, slices), statuses


@settings(max_examples=60, deadline=None)
@given(st.lists(cluster, min_size=2, max_size=5))
def test_proxy_incremental_sync_equals_full_sync(steps: list[Any]) -> None:
    nft = FakeNft(FakeKernel(), "node")
    plan, statuses = plan_for(steps[0], {})
    renders = nft_render.render_all(plan)
    nft.run(nft_render.render_full(plan, renders))
    state = nft_render.NftState(plan, renders)
    for step in steps[1:]:
        new, statuses = plan_for(step, statuses)
        # Proxier._sync_nft: the changed service ports' renders, None for gone ones.
        before, after = plan.by_id(), new.by_id()
        changed: dict[str, nft_render.ServiceRender | None] = {
            sid: nft_render.render_service(new, sp) for sid, sp in after.items() if before.get(sid) != sp
        }
        changed |= {sid: None for sid in before if sid not in after}
        script = state.update(changed)
        if script:
            nft.run(script)  # a refused partial sync is a bug too (the proxier would resync)
        plan = new
        assert nft.snapshot().dump() == load(nft_render.render_full(plan)).dump(), script


NODES = {f"node-{i + 1}": (f"172.30.0.{i + 2}", f"10.244.{i}.1") for i in range(3)}
POD_KEYS = sorted(PODS)
labels = st.sampled_from([{"pod": "a"}, {"pod": "b"}, {"pod": "c"}, {}])
policy_step = st.tuples(
    st.lists(st.booleans(), min_size=3, max_size=3),  # which of the policies are applied
    st.lists(labels, min_size=len(POD_KEYS), max_size=len(POD_KEYS)),  # each pod's labels
    st.lists(st.booleans(), min_size=len(POD_KEYS), max_size=len(POD_KEYS)),  # each pod running
)


def _rulesets(docs: list[dict[str, Any]], step: tuple[list[bool], list[dict[str, str]], list[bool]]) -> dict[str, NodeRuleset]:
    on, pod_labels, running = step
    view = View(NAMESPACES, policies(*[d for d, keep in zip(docs, on, strict=False) if keep]), NODE_IPS)
    views = tuple(
        PodView(p.namespace, p.name, lab, p.ip, p.node, p.spec)
        for p, lab, up in zip((PODS[k] for k in POD_KEYS), pod_labels, running, strict=True)
        if up
    )
    cache: dict[tuple[str, str, int], list[str]] = {}
    return {n: compile_ruleset(view, NodePolicyInput(n, addrs, views), cache) for n, addrs in NODES.items()}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(policy(), min_size=3, max_size=3, unique_by=lambda p: (p["metadata"]["name"], p["metadata"]["namespace"])),
    st.lists(policy_step, min_size=2, max_size=4),
)
def test_policy_partial_update_equals_full_text(docs: list[dict[str, Any]], steps: list[Any]) -> None:
    kernel = FakeKernel()
    applied: dict[str, NodeRuleset] = {}
    for step in steps:
        for node, new in _rulesets(docs, step).items():
            old = applied.get(node)
            if old is not None and old.text == new.text:
                continue
            script = update_text(old, new) if old is not None else None  # as PolicyPlane.sync
            kernel.run(node, script or new.text)
            applied[node] = new
            assert kernel.snapshot(node).dump() == load(new.text).dump(), script
