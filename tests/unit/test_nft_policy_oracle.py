"""The rendered nft text, loaded into the fake kernel and walked packet by packet, against
the decisions it is meant to spell: the NetworkPolicy oracle (Hypothesis over random
policies) and the service proxy's tracer (the tracer's table of flows, and a grid)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emu.dataplane.hostports import render as hostport_render
from emu.errors import KemuError
from emu.netfilter.evaluate import Evaluator, Outcome, Packet
from emu.netfilter.fake import FakeKernel, load
from emu.netfilter.transaction import rule
from emu.policy.compile import NodePolicyInput, compile_ruleset
from emu.policy.oracle import Endpoint, View, decide
from emu.proxy import nft_render
from emu.proxy.plan import ProxyPlan
from emu.proxy.tracer import Flow, Verdict, trace
from tests.unit.proxy_fixture import plans, vip
from tests.unit.test_nft_incremental import cluster, plan_for
from tests.unit.test_policy_compiler import policy
from tests.unit.test_policy_oracle import NAMESPACES, NODE_IPS, PODS, policies
from tests.unit.test_proxy_tracer import CASES

pytestmark = pytest.mark.unit

NODES = {f"node-{i + 1}": (f"172.30.0.{i + 2}", f"10.244.{i}.1") for i in range(3)}
EXTERNAL = "172.30.0.100"
SOURCES = ["x/a", "y/b", "z/c", "x/c", "172.30.0.2", "10.244.1.1", EXTERNAL]
DESTINATIONS = ["x/a", "y/b", "z/c", "y/a", "172.30.0.3", "10.244.0.1", EXTERNAL]
PORTS = [(80, "TCP"), (81, "UDP"), (80, "UDP")]


def _where(end: str) -> tuple[str, str | None, bool]:
    """(ip, node it is in or on, is a pod)."""
    if end in PODS:
        return PODS[end].ip, PODS[end].node, True
    return end, next((n for n, addrs in NODES.items() if end in addrs), None), False


def _hops(src: str, dst: str) -> list[tuple[str, str]]:
    """The (node, hook) a new connection's first packet meets: a pod's traffic is routed
    (or, on one node, bridged through br_netfilter) in forward; a node's own leaves by
    output; traffic to a node's address ends in its input hook."""
    _, s_node, s_pod = _where(src)
    _, d_node, d_pod = _where(dst)
    last = "forward" if d_pod else "input"
    if s_node is None:  # an external host
        return [(d_node, last)] if d_node else []
    first = (s_node, "forward" if s_pod else "output")
    if d_node == s_node:
        return [(s_node, "forward" if s_pod and d_pod else "input" if s_pod else "output")]
    return [first, *([(d_node, last)] if d_node else [])]


def _kernel_allows(evaluators: dict[str, Evaluator], src: str, dst: str, port: int, proto: str) -> tuple[bool, list[Outcome]]:
    pkt = Packet(_where(src)[0], _where(dst)[0], proto.lower(), port)
    outs = [evaluators[n].evaluate(hook, pkt) for n, hook in _hops(src, dst)]
    return all(o.passed for o in outs), outs


def _evaluators(view: View) -> dict[str, Evaluator]:
    kernel = FakeKernel()
    cache: dict[tuple[str, str, int], list[str]] = {}
    for n, addrs in NODES.items():
        kernel.run(n, compile_ruleset(view, NodePolicyInput(n, addrs, tuple(PODS.values())), cache).text)
    return {n: Evaluator(kernel.snapshot(n), addrs) for n, addrs in NODES.items()}


@settings(max_examples=60, deadline=None)
@given(st.lists(policy(), min_size=1, max_size=3, unique_by=lambda p: (p["metadata"]["name"], p["metadata"]["namespace"])))
def test_loaded_policy_rules_agree_with_the_oracle(docs: list[dict[str, Any]]) -> None:
    view = View(NAMESPACES, policies(*docs), NODE_IPS)
    evaluators = _evaluators(view)
    for src, dst, (port, proto) in itertools.product(SOURCES, DESTINATIONS, PORTS):
        if src == dst:
            continue
        s_ip, d_ip = _where(src)[0], _where(dst)[0]
        want = decide(view, Endpoint(s_ip, PODS.get(src)), Endpoint(d_ip, PODS.get(dst)), port, proto).allowed
        got, outs = _kernel_allows(evaluators, src, dst, port, proto)
        assert got == want, (src, dst, port, proto, [[str(s) for s in o.path] for o in outs], docs)


def test_established_connections_are_untouched_by_a_deny_all() -> None:
    deny = {"metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    ev = _evaluators(View(NAMESPACES, policies(deny), NODE_IPS))["node-1"]
    new = Packet(PODS["x/a"].ip, PODS["x/b"].ip, "tcp", 80)
    assert ev.evaluate("forward", new).verdict == "drop"
    out = ev.evaluate("forward", Packet(new.saddr, new.daddr, "tcp", 80, ct_state="established"))
    assert out.verdict == "accept" and out.path[0].rule == "ct state established,related accept"


# -- the service proxy ---------------------------------------------------------------------


_LOADED: dict[ProxyPlan, Evaluator] = {}


def _proxy_says(plan: ProxyPlan, flow: Flow) -> Verdict:
    """The tracer's kind of answer, from walking every numgen bucket through the node."""
    if plan not in _LOADED:
        _LOADED[plan] = Evaluator(load(nft_render.render_full(plan)), plan.node_ips)
    ev = _LOADED[plan]
    outs = ev.walk_outcomes(Packet(flow.src, flow.dst, flow.protocol, flow.dport), from_local=flow.from_node)
    stopped = {o.verdict for o in outs if not o.passed}
    if stopped:
        assert len(stopped) == 1 and len(outs) == 1, [str(o) for o in outs]
        return Verdict(stopped.pop())
    if any(o.dnat for o in outs):
        assert all(o.dnat for o in outs), [str(o) for o in outs]
        return Verdict("dnat", frozenset(o.dnat for o in outs if o.dnat), any(o.snat == "masquerade" for o in outs))
    return Verdict("pass")


@pytest.mark.parametrize("name, plan, flow", [(c[0], c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_rendered_proxy_table_agrees_with_the_tracer(name: str, plan: ProxyPlan, flow: Flow) -> None:
    assert _proxy_says(plan, flow) == trace(plan, flow)


def _grid(plan: ProxyPlan) -> list[Flow]:
    dsts = {"10.96.0.200", "192.0.2.99", *plan.node_ips}
    ports = {1234}
    for sp in plan.services:
        dsts |= {sp.cluster_ip, *sp.lb_ips, *sp.external_ips}
        ports |= {sp.port, *([sp.node_port] if sp.node_port else [])}
    endpoints = sorted({b.ip for sp in plan.services for b in (*sp.cluster_endpoints, *sp.external_endpoints)})
    srcs = [(ip, False) for ip in ["10.244.0.9", *endpoints[:3], "172.30.0.100", "172.30.0.101"]]
    srcs += [(ip, True) for ip in plan.node_ips]
    return [
        Flow(s, d, p, proto, from_node)
        for (s, from_node), d, p, proto in itertools.product(srcs, sorted(dsts), sorted(ports), ["tcp", "udp"])
    ]


@pytest.mark.parametrize("node", ["n1", "n2"])
def test_rendered_proxy_table_agrees_with_the_tracer_on_a_grid(node: str) -> None:
    plan = next(c[1] for c in CASES if c[1].node == node)
    wrong = [(f, str(got), str(want)) for f in _grid(plan) if (got := _proxy_says(plan, f)) != (want := trace(plan, f))]
    assert not wrong, f"{len(wrong)} flows differ, e.g. {wrong[:5]}"


def _service_flows(plan: ProxyPlan) -> list[Flow]:
    """Every address and port of every Service, from a pod, an endpoint, outside, the node."""
    endpoints = sorted({b.ip for sp in plan.services for b in (*sp.cluster_endpoints, *sp.external_endpoints)})
    srcs = [("10.244.0.9", False), *[(ip, False) for ip in endpoints[:1]], ("172.30.0.100", False), (plan.node_ips[0], True)]
    targets = {("10.96.0.200", 80)}
    for sp in plan.services:
        targets |= {(ip, sp.port) for ip in (sp.cluster_ip, *sp.lb_ips, *sp.external_ips)}
        targets |= {(ip, sp.node_port) for ip in plan.node_ips if sp.node_port}
    return [Flow(s, d, p, proto, local) for (s, local), (d, p), proto in itertools.product(srcs, sorted(targets), ["tcp", "udp"])]


@settings(max_examples=30, deadline=None)
@given(cluster)
def test_random_proxy_tables_agree_with_the_tracer(step: Any) -> None:
    plan, _ = plan_for(step, {})
    wrong = [(f, str(got), str(want)) for f in _service_flows(plan) if (got := _proxy_says(plan, f)) != (want := trace(plan, f))]
    assert not wrong, f"{len(wrong)} flows differ, e.g. {wrong[:5]}"


# -- the evaluator's kernel semantics ----------------------------------------------------

N1 = plans()["n1"]
HOSTPORT_AND_PROXY = nft_render.render_full(N1) + hostport_render([rule("tcp dport 30080 dnat to 10.244.0.9:80")])


def test_the_first_nat_chain_to_bind_wins_and_accept_ends_only_its_base_chain() -> None:
    ev = Evaluator(load(HOSTPORT_AND_PROXY), ["172.30.0.2"])
    out = ev.walk(Packet("172.30.0.100", "172.30.0.2", "tcp", 30080))
    # The hostPort chain (-110) binds first; the proxy's NodePort DNAT (-100) never runs.
    assert out.verdict == "dnat" and out.dnat == ("10.244.0.9", 80) and out.hooks == ("prerouting", "forward", "postrouting")
    assert not any(s.table == "ip kemu-proxy" and s.chain == "services" for s in out.path)
    later = Packet("172.30.0.100", "10.244.0.9", "tcp", 80, ct_state="established")
    assert Evaluator(load(HOSTPORT_AND_PROXY)).evaluate("prerouting", later).verdict == "continue"  # nat: first packet only
    two = load("table ip a {\n  chain f {\n    type filter hook forward priority 0; policy accept;\n    accept\n  }\n}\n"
               "table ip b {\n  chain f {\n    type filter hook forward priority 10; policy accept;\n    drop\n  }\n}\n")  # fmt: skip
    assert Evaluator(two).evaluate("forward", Packet("10.0.0.1", "10.0.0.2")).verdict == "drop"


def test_jump_returns_goto_does_not() -> None:
    rs = load(
        "table ip t {\n  chain f {\n    type filter hook input priority 0; policy drop;\n    jump a\n    goto b\n    accept\n  }\n"
        "  chain a {\n    return\n    drop\n  }\n  chain b {\n    ip saddr 10.0.0.1 accept\n  }\n}\n"
    )
    ev = Evaluator(rs)
    ok = ev.evaluate("input", Packet("10.0.0.1", "10.0.0.9"))
    assert ok.verdict == "accept" and [(s.chain, s.index) for s in ok.path] == [("f", 0), ("a", 0), ("f", 1), ("b", 0)]
    # b falls off its end: back to f's caller (none), so f's policy — not f's `accept`.
    no = ev.evaluate("input", Packet("10.0.0.2", "10.0.0.9"))
    assert no.verdict == "drop" and str(no.path[-1]) == "input ip t f policy drop"


def test_numgen_buckets_are_chosen_or_explored() -> None:
    ev = Evaluator(load(nft_render.render_full(N1)), N1.node_ips)
    pkt = Packet("10.244.0.9", vip(N1, "web"), "tcp", 80)
    outs = ev.walk_outcomes(pkt)
    assert [o.buckets for o in outs] == [(0,), (1,), (2,)]
    assert ev.walk(pkt, buckets=[1]).dnat == outs[1].dnat != outs[0].dnat
    with pytest.raises(KemuError, match="numgen random mod 3"):
        ev.walk(pkt)
