"""The compiled policy rulesets, traced, against the oracle — Hypothesis over random
policies on the upstream x/y/z × a/b/c layout spread over three nodes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emu.policy.compile import NodePolicyInput, compile_ruleset
from emu.policy.oracle import Endpoint, View, decide
from emu.policy.tracer import passes
from tests.unit.test_policy_oracle import NAMESPACES, NODE_IPS, PODS, policies

pytestmark = pytest.mark.unit

NODES = {f"node-{i + 1}": (f"172.30.0.{i + 2}", f"10.244.{i}.1") for i in range(3)}


def kernel_says(view: View, src: str, dst: str, port: int, proto: str) -> bool:
    """A flow from pod src to pod dst crosses src's node, then dst's (once if the same)."""
    rulesets = {n: compile_ruleset(view, NodePolicyInput(n, addrs, tuple(PODS.values()))) for n, addrs in NODES.items()}
    s, d = PODS[src], PODS[dst]
    if s.key == d.key:
        return True  # never leaves the pod's namespace
    nodes = [s.node] if s.node == d.node else [s.node, d.node]
    return all(passes(rulesets[n], s.ip, d.ip, proto, port) for n in nodes)


labels = st.sampled_from([{}, {"pod": "a"}, {"pod": "b"}, {"pod": "c"}])
ns_labels = st.sampled_from([{}, {"ns": "x"}, {"ns": "y"}, {"ns": "z"}])
selector = st.one_of(
    labels.map(lambda m: {"matchLabels": m}),
    st.sampled_from(["a", "b"]).map(lambda v: {"matchExpressions": [{"key": "pod", "operator": "NotIn", "values": [v]}]}),
)
peer = st.one_of(
    selector.map(lambda s: {"podSelector": s}),
    ns_labels.map(lambda m: {"namespaceSelector": {"matchLabels": m}}),
    st.tuples(selector, ns_labels).map(lambda t: {"podSelector": t[0], "namespaceSelector": {"matchLabels": t[1]}}),
    st.sampled_from(["10.244.0.0/16", "10.244.1.0/24", "10.244.0.0/23"]).map(
        lambda c: {"ipBlock": {"cidr": c, "except": ["10.244.1.3/32"]} if c != "10.244.0.0/23" else {"cidr": c}}
    ),
)
port = st.sampled_from(
    [
        {"port": 80},
        {"port": 81, "protocol": "UDP"},
        {"port": "serve-80-udp", "protocol": "UDP"},
        {"port": 80, "endPort": 81},
        {"protocol": "UDP"},
        {"port": "serve-81-tcp"},
    ]
)
rule = st.fixed_dictionaries({}, optional={"peers": st.lists(peer, max_size=2), "ports": st.lists(port, max_size=2)})


@st.composite
def policy(draw, i: int = 0):  # type: ignore[no-untyped-def]
    types = draw(st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    spec = {"podSelector": draw(selector), "policyTypes": types}
    for t, key in (("Ingress", "from"), ("Egress", "to")):
        if t in types:
            rules = draw(st.lists(rule, max_size=2))
            spec[t.lower()] = [
                {**({key: r["peers"]} if "peers" in r else {}), **({"ports": r["ports"]} if "ports" in r else {})} for r in rules
            ]
    return {"metadata": {"name": f"p{draw(st.integers(0, 10**6))}", "namespace": draw(st.sampled_from("xyz"))}, "spec": spec}


@settings(max_examples=60, deadline=None)
@given(st.lists(policy(), min_size=1, max_size=3, unique_by=lambda p: (p["metadata"]["name"], p["metadata"]["namespace"])))
def test_compiled_rules_agree_with_the_oracle(docs: list[dict]) -> None:  # type: ignore[type-arg]
    view = View(NAMESPACES, policies(*docs), NODE_IPS)
    for (src, dst), (p, proto) in itertools.product(
        itertools.product(["x/a", "y/b", "z/c", "x/c"], ["x/a", "y/b", "z/c", "y/a"]), [(80, "TCP"), (81, "UDP"), (80, "UDP")]
    ):
        want = decide(view, Endpoint(PODS[src].ip, PODS[src]), Endpoint(PODS[dst].ip, PODS[dst]), p, proto).allowed
        assert kernel_says(view, src, dst, p, proto) == want, (src, dst, p, proto, docs)
