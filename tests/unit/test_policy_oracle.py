"""The NetworkPolicy oracle against truth tables in the style of upstream's netpol e2e
(namespaces x, y, z; pods a, b, c; ports 80/81 over TCP and UDP)."""

from __future__ import annotations

import itertools

import pytest

from emu.config.loader import Collector, parse_manifest_docs
from emu.errors import ValidationError
from emu.model.objects import Container, ContainerPort, PodSpec, PodView
from emu.policy.oracle import Endpoint, View, decide

pytestmark = pytest.mark.unit

SPEC = PodSpec(
    tuple(Container(f"c{p}{pr}", ports=(ContainerPort(p, pr, f"serve-{p}-{pr.lower()}"),)) for p in (80, 81) for pr in ("TCP", "UDP"))
)
PODS = {
    f"{ns}/{n}": PodView(ns, n, {"pod": n}, f"10.244.{i}.{j + 2}", f"node-{i + 1}", SPEC)
    for i, ns in enumerate("xyz")
    for j, n in enumerate("abc")
}
NAMESPACES = {ns: {"ns": ns, "kubernetes.io/metadata.name": ns} for ns in "xyz"}
NODE_IPS = {f"node-{i + 1}": frozenset({f"172.30.0.{i + 2}", f"10.244.{i}.1"}) for i in range(3)}


def policies(*docs: dict) -> tuple:  # type: ignore[type-arg]
    c = Collector()
    raw = [("p.yaml", f"[{i}]", {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **d}) for i, d in enumerate(docs)]
    parsed = parse_manifest_docs(raw, c)
    if c.problems:
        raise ValidationError(c.problems)
    return parsed.manifests.network_policies


def truth(view: View, port: int = 80, proto: str = "TCP") -> dict[tuple[str, str], bool]:
    return {
        (s, d): decide(view, Endpoint(PODS[s].ip, PODS[s]), Endpoint(PODS[d].ip, PODS[d]), port, proto).allowed
        for s, d in itertools.product(PODS, PODS)
    }


def expect(view: View, blocked: set[tuple[str, str]], port: int = 80, proto: str = "TCP") -> None:
    got = truth(view, port, proto)
    wrong = {k: v for k, v in got.items() if v == (k in blocked)}
    assert not wrong, f"{len(wrong)} wrong, e.g. {sorted(wrong)[:5]}"


def view(*docs: dict) -> View:  # type: ignore[type-arg]
    return View(NAMESPACES, policies(*docs), NODE_IPS)


def meta(name: str, ns: str = "x") -> dict:  # type: ignore[type-arg]
    return {"name": name, "namespace": ns}


ALL = set(PODS)


def into(targets: set[str], sources: set[str] = ALL) -> set[tuple[str, str]]:
    return {(s, d) for s in sources for d in targets if s != d}


def test_no_policies_everything_connects() -> None:
    expect(view(), set())


def test_default_deny_ingress() -> None:
    v = view({"metadata": meta("deny"), "spec": {"podSelector": {}}})
    expect(v, into({"x/a", "x/b", "x/c"}))
    d = decide(v, Endpoint(PODS["y/a"].ip, PODS["y/a"]), Endpoint(PODS["x/b"].ip, PODS["x/b"]), 80)
    assert (
        d.explain()
        == "y/a → x/b:80/TCP denied: y/a is not isolated for egress; x/b is isolated for ingress by x/deny; no ingress rule of it allows from y/a"
    )


def test_allow_all_ingress_overrides_deny() -> None:
    v = view(
        {"metadata": meta("deny"), "spec": {"podSelector": {}}}, {"metadata": meta("all"), "spec": {"podSelector": {}, "ingress": [{}]}}
    )
    expect(v, set())


def test_default_deny_egress() -> None:
    v = view({"metadata": meta("deny-egress"), "spec": {"podSelector": {}, "policyTypes": ["Egress"]}})
    expect(v, {(s, d) for s in ("x/a", "x/b", "x/c") for d in ALL if s != d})


def test_allow_from_namespace() -> None:
    v = view(
        {
            "metadata": meta("from-y"),
            "spec": {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}],
            },
        }
    )
    expect(v, into({"x/a"}, ALL - {"y/a", "y/b", "y/c"}))


def test_pod_and_namespace_selector_and_vs_or() -> None:
    both = {"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}
    v_and = view({"metadata": meta("and"), "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [both]}]}})
    expect(v_and, into({"x/a"}, ALL - {"y/b"}))
    either = [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}, {"podSelector": {"matchLabels": {"pod": "b"}}}]
    v_or = view({"metadata": meta("or"), "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": either}]}})
    expect(v_or, into({"x/a"}, ALL - {"y/a", "y/b", "y/c", "x/b"}))


def test_match_expressions_on_namespaces() -> None:
    sel = {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x", "y"]}]}
    v = view({"metadata": meta("from-not-xy"), "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": sel}]}]}})
    expect(v, into({"x/a", "x/b", "x/c"}, ALL - {"z/a", "z/b", "z/c"}))


def test_ip_block_with_except() -> None:
    block = {"ipBlock": {"cidr": "10.244.1.0/24", "except": ["10.244.1.3/32"]}}  # y's pods, minus y/b
    v = view({"metadata": meta("cidr"), "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [block]}]}})
    expect(v, into({"x/a"}, ALL - {"y/a", "y/c"}))


def test_ports_protocols_named_and_ranges() -> None:
    named = view(
        {"metadata": meta("named"), "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-udp", "protocol": "UDP"}]}]}}
    )
    expect(named, into({"x/a", "x/b", "x/c"}), 80, "TCP")
    expect(named, into({"x/a", "x/b", "x/c"}), 81, "TCP")  # a UDP rule never opens TCP
    expect(named, set(), 81, "UDP")
    ranged = view({"metadata": meta("range"), "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 81}]}]}})
    expect(ranged, set(), 81, "TCP")
    expect(ranged, into({"x/a", "x/b", "x/c"}), 80, "UDP")


def test_egress_and_ingress_both_needed() -> None:
    v = view(
        {
            "metadata": meta("x-to-y-80"),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": 80}]}],
            },
        },
        {"metadata": meta("y-deny", "y"), "spec": {"podSelector": {"matchLabels": {"pod": "c"}}}},
    )
    blocked = {(s, d) for s in ("x/a", "x/b", "x/c") for d in ALL if s != d and not d.startswith("y/")} | into({"y/c"})
    expect(v, blocked, 80)
    d = decide(v, Endpoint(PODS["x/a"].ip, PODS["x/a"]), Endpoint(PODS["y/a"].ip, PODS["y/a"]), 80)
    assert d.allowed and d.egress.allowed_by == ("x/x-to-y-80 egress[0]",)


def test_node_and_self_always_allowed() -> None:
    v = view({"metadata": meta("deny"), "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})
    a = Endpoint(PODS["x/a"].ip, PODS["x/a"])
    assert decide(v, Endpoint("10.244.0.1"), a, 80).allowed  # the pod's own node (its bridge address)
    assert not decide(v, Endpoint("10.244.1.1"), a, 80).allowed  # another node
    assert decide(v, a, a, 80).allowed
    assert "never cut off from itself" in decide(v, a, a, 80).explain()


def test_policy_types_defaults() -> None:
    (p,) = policies({"metadata": meta("p"), "spec": {"podSelector": {}, "egress": [{}]}})
    assert p.policy_types == ("Ingress", "Egress")
    (p,) = policies({"metadata": meta("p"), "spec": {"podSelector": {}, "egress": []}})
    assert p.policy_types == ("Ingress",)


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]},
            "may not be specified when `port` is not a number",
        ),
        ({"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}, "must be greater than or equal to `port`"),
        ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}, "must be a valid CIDR"),
        (
            {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}]}]},
            "must be a strict subset of `cidr`",
        ),
        ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]}}, "'Has' is not allowed"),
        (
            {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
            "may not specify more than 1 peer type",
        ),
    ],
)
def test_invalid_policies(spec: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError) as e:
        policies({"metadata": meta("bad"), "spec": spec})
    assert message in str(e.value)
