"""The policy table's and the CNI masquerade table's nft text before and after they were
built on the typed model (issue #10): byte for byte the same, so the kernel holds the
same ruleset — checked through the fake kernel too — for full tables and for the
element-only updates, over random policies and pod changes. The old spelling is kept
below as the reference, applied to the compiler's IR (which did not change)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emu.dataplane.cni.common import masquerade_ruleset
from emu.netfilter.fake import FakeKernel, load
from emu.policy.compile import NodePolicyInput, NodeRuleset, compile_ruleset, update_text
from emu.policy.oracle import View
from tests.unit.test_nft_incremental import _rulesets, policy_step
from tests.unit.test_policy_compiler import policy
from tests.unit.test_policy_oracle import NAMESPACES, NODE_IPS, PODS, policies

pytestmark = pytest.mark.unit

# ---- the old spelling -------------------------------------------------------------------

CIDRS = "ipv4_addr; flags interval"
TARGETS = "ipv4_addr . inet_proto . inet_service; flags interval"


def _old_sets(rs: NodeRuleset) -> dict[str, tuple[str, tuple[str, ...]]]:
    sets = {
        "ingress-isolated": ("ipv4_addr", tuple(sorted(rs.ingress_isolated))),
        "egress-isolated": ("ipv4_addr", tuple(sorted(rs.egress_isolated))),
        "node-addrs": ("ipv4_addr", tuple(sorted(rs.node_addrs))),
        "self": ("ipv4_addr . ipv4_addr", tuple(sorted(f"{ip} . {ip}" for ip in rs.local))),
    }
    rule_sets = {}
    for r in (*rs.ingress, *rs.egress):
        rule_sets[f"{r.name}-src"] = (CIDRS, tuple(sorted(r.src)))
        rule_sets[f"{r.name}-dst"] = (CIDRS if r.any_proto else TARGETS, tuple(sorted(r.dst)))
    return sets | {name: rule_sets[name] for name in sorted(rule_sets)}


def _old_rule(name: str, any_proto: bool) -> str:
    if any_proto:
        return f"ip saddr @{name}-src ip daddr @{name}-dst return"
    return f"ip saddr @{name}-src ip daddr . meta l4proto . th dport @{name}-dst return"


def _old_chains(rs: NodeRuleset) -> list[str]:
    return [
        "  chain forward {",
        "    type filter hook forward priority 10; policy accept;",
        "    ct state established,related accept",
        "    jump egress-check",
        "    jump ingress-check",
        "  }",
        "  chain input {",
        "    type filter hook input priority 10; policy accept;",
        "    ct state established,related accept",
        "    jump egress-check",
        "  }",
        "  chain egress-check {",
        "    ip saddr != @egress-isolated return",
        "    ip saddr . ip daddr @self return",
        *[f"    {_old_rule(r.name, r.any_proto)}" for r in rs.egress],
        "    drop",
        "  }",
        "  chain ingress-check {",
        "    ip daddr != @ingress-isolated return",
        "    ip saddr @node-addrs return",
        "    ip saddr . ip daddr @self return",
        *[f"    {_old_rule(r.name, r.any_proto)}" for r in rs.ingress],
        "    drop",
        "  }",
    ]


def old_text(rs: NodeRuleset) -> str:
    lines = []
    for name, (typ, els) in _old_sets(rs).items():
        body = f" elements = {{ {', '.join(els)} }};" if els else ""
        lines.append(f"  set {name} {{ type {typ};{body} }}")
    out = ["table ip kemu-policy {}", "delete table ip kemu-policy", "table ip kemu-policy {", '  comment "kemu NetworkPolicy engine";']
    return "\n".join([*out, *lines, *_old_chains(rs), "}"]) + "\n"


def old_update_text(old: NodeRuleset, new: NodeRuleset) -> str | None:
    old_sets, new_sets = _old_sets(old), _old_sets(new)
    if _old_chains(old) != _old_chains(new) or {k: v[0] for k, v in old_sets.items()} != {k: v[0] for k, v in new_sets.items()}:
        return None
    out = []
    for name, (_, els) in sorted(new_sets.items()):
        if old_sets[name][1] != els:
            out.append(f"flush set ip kemu-policy {name}")
            if els:
                out.append(f"add element ip kemu-policy {name} {{ {', '.join(els)} }}")
    return "\n".join(out) + ("\n" if out else "")


def old_masquerade(pod_cidr: str) -> str:
    return (
        "table ip kemu-cni {}\n"
        "delete table ip kemu-cni\n"
        "table ip kemu-cni {\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority 100; policy accept;\n"
        f'    ip saddr {pod_cidr} ip daddr != {pod_cidr} masquerade comment "pod traffic leaving the pod network"\n'
        "  }\n"
        "}\n"
    )


# ---- the tests --------------------------------------------------------------------------


def _same(old: str, new: str) -> None:
    assert new == old
    assert load(new).dump() == load(old).dump()


@pytest.mark.parametrize("cidr", ["10.244.0.0/16", "192.168.0.0/20"])
def test_the_masquerade_table_renders_as_before(cidr: str) -> None:
    _same(old_masquerade(cidr), masquerade_ruleset(cidr))


def test_a_fixture_policy_renders_as_before() -> None:
    docs = [
        {"metadata": {"name": "p", "namespace": "x"}, "spec": {"podSelector": {}, "ingress": [{}]}},
        {
            "metadata": {"name": "q", "namespace": "y"},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"ports": [{"port": 80, "endPort": 90}, {"protocol": "UDP"}]}],
            },
        },
    ]
    view = View(NAMESPACES, policies(*docs), NODE_IPS)
    for node, addrs in {"node-1": ("172.30.0.2", "10.244.0.1"), "node-2": ("172.30.0.3", "10.244.1.1")}.items():
        rs = compile_ruleset(view, NodePolicyInput(node, addrs, tuple(PODS.values())))
        assert rs.ingress or rs.egress
        _same(old_text(rs), rs.text)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(policy(), min_size=3, max_size=3, unique_by=lambda p: (p["metadata"]["name"], p["metadata"]["namespace"])),
    st.lists(policy_step, min_size=2, max_size=4),
)
def test_random_policies_and_their_updates_render_as_before(docs: list[dict[str, Any]], steps: list[Any]) -> None:
    kernel = FakeKernel()
    applied: dict[str, NodeRuleset] = {}
    for step in steps:
        for node, new in _rulesets(docs, step).items():
            _same(old_text(new), new.text)
            old = applied.get(node)
            if old is None:
                kernel.run(node, new.text)
            else:
                script = update_text(old, new)
                assert script == old_update_text(old, new)
                kernel.run(node, script or new.text)
            applied[node] = new
            assert kernel.snapshot(node).dump() == load(old_text(new)).dump()
