"""The compiled policy rulesets, traced, against the oracle — Hypothesis over random
policies on the upstream x/y/z × a/b/c layout spread over three nodes; and the caching
PolicyCompiler against a fresh compile after random changes."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emu.model.objects import Container, ContainerPort, PodSpec, PodView
from emu.policy.compile import NodePolicyInput, compile_ruleset
from emu.policy.incremental import PolicyCompiler
from emu.policy.oracle import Endpoint, View, decide
from emu.policy.tracer import passes
from tests.unit.test_policy_oracle import NAMESPACES, NODE_IPS, PODS, SPEC, policies

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


# A spec whose named ports resolve elsewhere: a spec change must reach named-port rules.
OTHER_SPEC = PodSpec((Container("c", ports=(ContainerPort(8080, "TCP", "serve-80-tcp"), ContainerPort(81, "UDP", "serve-81-udp"))),))
IPS = [f"10.244.{n}.{j}" for n in range(3) for j in range(2, 7)]  # few: two pods may share one


def _change(data: st.DataObject, pods: dict[str, PodView], namespaces: dict, docs: dict, addrs: dict) -> None:  # type: ignore[type-arg]
    """One random change to the cluster, in place."""
    kind = data.draw(st.sampled_from(["labels", "ip", "node", "spec", "ready", "gone", "new", "ns", "policy", "unpolicy", "addrs"]))
    if kind in ("labels", "ip", "node", "spec", "ready", "gone") and pods:
        key = data.draw(st.sampled_from(sorted(pods)))
        p = pods[key]
        if kind == "gone":
            del pods[key]
        elif kind == "labels":
            pods[key] = dataclasses.replace(p, labels=data.draw(labels))
        elif kind == "ip":
            pods[key] = dataclasses.replace(p, ip=data.draw(st.sampled_from(["", *IPS])))
        elif kind == "node":
            pods[key] = dataclasses.replace(p, node=data.draw(st.sampled_from(sorted(NODES))))
        elif kind == "spec":
            pods[key] = dataclasses.replace(p, spec=OTHER_SPEC if p.spec is SPEC else SPEC)
        else:
            pods[key] = dataclasses.replace(p, ready=not p.ready)
    elif kind == "new":
        ns, name = data.draw(st.sampled_from("xyzw")), data.draw(st.sampled_from(["a", "b", "d", "e"]))
        node, ip = data.draw(st.sampled_from(sorted(NODES))), data.draw(st.sampled_from(IPS))
        pods[f"{ns}/{name}"] = PodView(ns, name, data.draw(labels), ip, node, data.draw(st.sampled_from([SPEC, OTHER_SPEC])))
    elif kind == "ns":
        ns = data.draw(st.sampled_from("xyzw"))
        namespaces[ns] = {**data.draw(ns_labels), "kubernetes.io/metadata.name": ns}
    elif kind == "policy":
        doc = data.draw(policy())
        docs[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc
    elif kind == "unpolicy" and docs:
        del docs[data.draw(st.sampled_from(sorted(docs)))]
    elif kind == "addrs":
        node = data.draw(st.sampled_from(sorted(NODES)))
        addrs[node] = data.draw(st.sampled_from([NODES[node], (NODES[node][0],), (*NODES[node], "10.244.9.9")]))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_caching_compiler_equals_a_fresh_compile_after_changes(data: st.DataObject) -> None:
    pods = dict(PODS)
    namespaces = {k: dict(v) for k, v in NAMESPACES.items()}
    docs = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in data.draw(st.lists(policy(), min_size=1, max_size=4))}
    addrs = dict(NODES)
    compiler = PolicyCompiler()
    parsed = policies(*docs.values())
    for step in range(data.draw(st.integers(3, 12))):
        if step:
            before = dict(docs)
            _change(data, pods, namespaces, docs, addrs)
            # Unchanged policies: the same objects, or equal ones parsed again.
            if docs != before or data.draw(st.booleans()):
                parsed = policies(*docs.values())
        view = View({k: dict(v) for k, v in namespaces.items()}, parsed, NODE_IPS)
        # Sometimes every PodView is a new object (as Cluster.pod_views makes them), and
        # sometimes a pod appears twice (the compiler cannot track that, and says so).
        everyone = [dataclasses.replace(p) for p in pods.values()] if data.draw(st.booleans()) else list(pods.values())
        if pods and data.draw(st.integers(0, 9)) == 0:
            everyone.append(dataclasses.replace(everyone[0], ip=IPS[-1]))
        for node, node_addrs in addrs.items():
            inp = NodePolicyInput(node, node_addrs, tuple(everyone))
            got, want = compiler.compile(view, inp), compile_ruleset(view, inp)
            assert got == want, (step, node, sorted(docs), got.text, want.text)


def _rulesets(compiler: PolicyCompiler, view: View, pods: dict[str, PodView]) -> dict[str, object]:
    out = {}
    for node, node_addrs in NODES.items():
        inp = NodePolicyInput(node, node_addrs, tuple(pods.values()))
        out[node] = compiler.compile(view, inp)
        assert out[node] == compile_ruleset(view, inp), node
    return out


def _in(ns: str, spec: dict) -> dict:  # type: ignore[type-arg]
    return {"metadata": {"name": "p", "namespace": ns}, "spec": spec}


NAMED_IN = _in("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": "serve-80-tcp"}]}]})
NS_PEERS = _in("x", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})
NAMED_OUT = _in(
    "x",
    {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.244.0.0/16"}}], "ports": [{"port": "serve-80-tcp"}]}],
    },
)
POD_PEERS = _in("x", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "a"}}}]}]})


@pytest.mark.parametrize(
    ("doc", "pod", "change", "altered"),
    [
        (NAMED_IN, "x/a", {"spec": OTHER_SPEC}, {"node-1"}),  # a named port resolves on the selected pod
        (NAMED_OUT, "y/b", {"spec": OTHER_SPEC}, {"node-1"}),  # ... and on pods an ipBlock covers
        (POD_PEERS, "y/b", {"labels": {"pod": "a"}}, {"node-1"}),  # a pod joins a rule's peers
        (POD_PEERS, "z/a", {"ip": "10.244.2.9"}, {"node-1", "node-3"}),  # a peer's address (and its node's pods)
        (POD_PEERS, "x/b", {"labels": {"pod": "b", "new": "1"}}, set()),  # nothing policy sees changes
        (POD_PEERS, "y/a", {"ready": False}, set()),  # readiness is not policy's business
    ],
)
def test_a_pod_change_reaches_exactly_the_rulesets_it_alters(doc: dict, pod: str, change: dict, altered: set[str]) -> None:  # type: ignore[type-arg]
    compiler, pods = PolicyCompiler(), dict(PODS)
    view = View(NAMESPACES, policies(doc), NODE_IPS)
    before = _rulesets(compiler, view, pods)
    pods[pod] = dataclasses.replace(pods[pod], **change)
    after = _rulesets(compiler, view, pods)
    # Rulesets nothing touched come back as they were, the very same objects.
    assert {n for n in NODES if after[n] is not before[n]} == altered
    assert all(after[n] != before[n] for n in altered)


def test_namespace_labels_reach_namespace_selectors() -> None:
    compiler = PolicyCompiler()
    before = _rulesets(compiler, View(NAMESPACES, policies(NS_PEERS), NODE_IPS), PODS)
    after = _rulesets(compiler, View({**NAMESPACES, "z": {"ns": "y"}}, policies(NS_PEERS), NODE_IPS), PODS)
    assert after["node-1"].ingress != before["node-1"].ingress  # type: ignore[attr-defined]


def test_a_changed_policy_is_compiled_again() -> None:
    compiler = PolicyCompiler()
    before = _rulesets(compiler, View(NAMESPACES, policies(POD_PEERS), NODE_IPS), PODS)
    after = _rulesets(compiler, View(NAMESPACES, policies(NS_PEERS), NODE_IPS), PODS)
    assert after["node-1"] != before["node-1"]
    assert _rulesets(compiler, View(NAMESPACES, (), NODE_IPS), PODS)["node-1"].ingress == ()  # type: ignore[attr-defined]
