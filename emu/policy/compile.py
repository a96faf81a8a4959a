"""Compile NetworkPolicies into one node's `table ip kemu-policy` (pure).

Each node enforces its own pods: egress where the client pod lives, ingress where the
server pod lives, in the forward hook (routed and — through br_netfilter — bridged
traffic, after the service proxy's DNAT, so Services are judged by their pod IPs) and in
the input hook (a pod talking to its node). Every rule of a policy becomes one nft rule
reading two sets — its peers and its (pod, protocol, port) targets — so a packet's cost
does not grow with the number of pods; established flows are accepted first.

A ruleset is assembled from pieces, one per policy selecting pods of the node;
`emu.policy.incremental.PolicyCompiler` keeps the pieces between syncs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from emu.model.objects import PodView
from emu.model.policy import NetworkPolicy, Peer, PolicyPort, PolicyRule
from emu.netfilter import render
from emu.netfilter.ruleset import Chain, Rule, quote
from emu.netfilter.transaction import AddElements, FlushSet, Op, SetDef, TableDef, Transaction, replace_table, rule
from emu.policy.oracle import Endpoint, View, peer_matches

FAMILY, TABLE = "ip", "kemu-policy"
COMMENT = "kemu NetworkPolicy engine"
PROTOS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
ADDR = ("ipv4_addr",)
TARGET = ("ipv4_addr", "inet_proto", "inet_service")
INTERVAL = frozenset({"interval"})
DADDR = ("ip", "daddr")
TARGET_KEY = ("ip", "daddr", ".", "meta", "l4proto", ".", "th", "dport")  # what TARGET sets are looked up by
K = TypeVar("K")


@dataclass(frozen=True)
class NodePolicyInput:
    node: str
    node_addrs: tuple[str, ...]  # its own addresses (eth0, the bridge): always allowed in
    pods: tuple[PodView, ...]  # every running pod of the cluster


def _h(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:10]


def rule_name(direction: str, policy_key: str, index: int) -> str:
    """The name of a policy rule's sets (`<name>-src`, `<name>-dst`): `in-…` or `eg-…`
    and a hash of the policy and the rule's index, as a trace reads them back."""
    return f"{'in' if direction == 'ingress' else 'eg'}-{_h(policy_key, str(index))}"


def _ranges(peer: Peer) -> list[str]:
    """An ipBlock as CIDRs: cidr minus every except."""
    assert peer.ip_block is not None
    nets = [ipaddress.IPv4Network(peer.ip_block.cidr)]
    for e in peer.ip_block.excepts:
        ex = ipaddress.IPv4Network(e)
        nets = [piece for n in nets for piece in (n.address_exclude(ex) if ex.subnet_of(n) else [n])]
    return sorted(str(n) for n in nets)


class PodIndex:
    """Pods (with an IP) by namespace and by label, so a selector looks at its candidates
    only. Keyed by object identity, so that pods can be added and removed one by one."""

    def __init__(self, pods: Iterable[PodView] = ()) -> None:
        self.by_ns: dict[str, dict[int, PodView]] = {}
        self.by_label: dict[tuple[str, str], dict[int, PodView]] = {}
        for p in pods:
            self.add(p)

    def add(self, p: PodView) -> None:
        if not p.ip:
            return
        self.by_ns.setdefault(p.namespace, {})[id(p)] = p
        for kv in p.labels.items():
            self.by_label.setdefault(kv, {})[id(p)] = p

    def remove(self, p: PodView) -> None:
        _discard(self.by_ns, p.namespace, p)
        for kv in p.labels.items():
            _discard(self.by_label, kv, p)

    def matching(self, peer: Peer, policy_ns: str, view: View) -> list[PodView]:
        """The pods a selector peer selects, in no particular order."""
        ns_sel, pod_sel = peer.namespace_selector, peer.pod_selector
        if ns_sel is None:
            namespaces = {policy_ns}
        else:
            namespaces = {n for n in self.by_ns if ns_sel.matches(view.namespaces.get(n, {}))}
        if pod_sel is not None and pod_sel.match_labels:
            # Every matchLabels pair must hold: the smallest bucket holds every candidate.
            first, *rest = sorted((self.by_label.get(kv, {}) for kv in pod_sel.match_labels.items()), key=len)
            candidates: Iterable[PodView] = [p for i, p in first.items() if all(i in d for d in rest)]
        else:
            candidates = [p for n in namespaces for p in self.by_ns.get(n, {}).values()]
        return [p for p in candidates if p.namespace in namespaces and (pod_sel is None or pod_sel.matches(p.labels))]


def _discard(buckets: dict[K, dict[int, PodView]], key: K, p: PodView) -> None:
    bucket = buckets.get(key)
    if bucket is not None:
        bucket.pop(id(p), None)
        if not bucket:
            del buckets[key]


def _peer_addrs(rule: PolicyRule, ns: str, view: View, index: PodIndex) -> list[str]:
    if not rule.peers:
        return ["0.0.0.0/0"]
    out: set[str] = set()
    for peer in rule.peers:
        if peer.ip_block is not None:
            out.update(_ranges(peer))
        else:
            out.update(f"{p.ip}/32" for p in index.matching(peer, ns, view))
    return sorted(out)


def _egress_targets(rule: PolicyRule, ns: str, view: View, index: PodIndex, pods: Iterable[PodView]) -> list[str]:
    """`cidr . proto . ports` an egress rule with ports allows. Numeric ports apply to
    address ranges; named ports resolve on each destination pod the peers cover."""
    numeric = [pp for pp in rule.ports if not isinstance(pp.port, str)]
    named = [pp for pp in rule.ports if isinstance(pp.port, str)]
    blocks = [peer for peer in rule.peers if peer.ip_block is not None]
    nets = ["0.0.0.0/0"] if not rule.peers else [n for peer in blocks for n in _ranges(peer)]
    dst = {f"{n} . {pe}" for n in nets for pp in numeric for pe in _ports_for(pp, None)}
    selected = [p for peer in rule.peers if peer.ip_block is None for p in index.matching(peer, ns, view)]
    dst |= {f"{p.ip}/32 . {pe}" for p in selected for pp in rule.ports for pe in _ports_for(pp, p)}
    if named:
        covered = [p for p in pods if p.ip and (not rule.peers or any(peer_matches(b, ns, Endpoint(p.ip, p), view) for b in blocks))]
        dst |= {f"{p.ip}/32 . {pe}" for p in covered for pp in named for pe in _ports_for(pp, p)}
    return sorted(dst)


def _rule_value(pol: NetworkPolicy, direction: str, rule: PolicyRule, view: View, index: PodIndex, pods: Iterable[PodView]) -> list[str]:
    """What a rule needs that no node changes: its peers' addresses, or (egress with
    ports) its targets."""
    if direction == "eg" and rule.ports:
        return _egress_targets(rule, pol.meta.namespace, view, index, pods)
    return _peer_addrs(rule, pol.meta.namespace, view, index)


def _ports_for(pp: PolicyPort, pod: PodView | None) -> list[str]:
    """`proto . port-or-range` elements of one policy port for one destination."""
    proto = PROTOS[pp.protocol]
    if pp.port is None:
        return [f"{proto} . 0-65535"]
    if isinstance(pp.port, str):
        if pod is None or pod.spec is None:
            return []
        return [f"{proto} . {p.container_port}" for p in pod.spec.served_ports() if p.name == pp.port and p.protocol == pp.protocol]
    return [f"{proto} . {pp.port}-{pp.end_port}" if pp.end_port else f"{proto} . {pp.port}"]


@dataclass(frozen=True)
class AllowRule:
    """One policy rule on one node: sources × targets (ports or any protocol)."""

    name: str
    src: tuple[str, ...]  # CIDRs
    dst: tuple[str, ...]  # CIDRs (any_proto) or "cidr . proto . lo[-hi]"
    any_proto: bool


@dataclass(frozen=True)
class NodeRuleset:
    """What a node enforces: the IR both the nft table and the tracer are made from."""

    node_addrs: frozenset[str]
    local: frozenset[str]  # IPs of the node's pods
    ingress_isolated: frozenset[str]
    egress_isolated: frozenset[str]
    ingress: tuple[AllowRule, ...]
    egress: tuple[AllowRule, ...]
    table: TableDef
    text: str  # the transaction writing the table anew


def update_transaction(old: NodeRuleset, new: NodeRuleset) -> Transaction | None:
    """A transaction changing only set elements, when the rules and the sets' names and
    types are unchanged (a label change, a pod coming or going); None: rewrite the table."""
    if old.table.chains != new.table.chains or len(old.table.sets) != len(new.table.sets):
        return None
    changed = []
    # Same names in the same places (fixed sets first, then by name), or a rewrite.
    for a, b in zip(old.table.sets, new.table.sets, strict=True):
        if a is b:
            continue  # a rule's set kept with its policy's piece
        if a.name != b.name or a.key_type != b.key_type or a.data_type != b.data_type or a.flags != b.flags:
            return None
        if a.elements != b.elements:
            changed.append(b)
    ops: list[Op] = []
    for s in sorted(changed, key=lambda s: s.name):
        ops += [FlushSet(s.name), AddElements(s.name, s.elements)]
    return Transaction(FAMILY, TABLE, tuple(ops))


def update_text(old: NodeRuleset, new: NodeRuleset) -> str | None:
    """update_transaction's script ("" if nothing changed); None: rewrite the table."""
    txn = update_transaction(old, new)
    return None if txn is None else render.script(txn)


def _collapse(nets: list[str]) -> list[str]:
    return [str(n) for n in ipaddress.collapse_addresses(ipaddress.IPv4Network(x) for x in nets)]


def _disjoint(elements: list[str]) -> list[str]:
    """`net . proto . lo-hi` elements made disjoint: the kernel's concatenated interval
    sets (pipapo) refuse overlapping elements. Split the port axis at every boundary and
    collapse the networks covering each piece."""
    parsed: dict[str, list[tuple[ipaddress.IPv4Network, int, int]]] = {}
    for e in elements:
        net, proto, ports = (x.strip() for x in e.split(" . "))
        lo, _, hi = ports.partition("-")
        parsed.setdefault(proto, []).append((ipaddress.IPv4Network(net), int(lo), int(hi or lo)))
    out = []
    for proto, items in sorted(parsed.items()):
        cuts = sorted({lo for _, lo, _ in items} | {hi + 1 for _, _, hi in items})
        pieces: list[tuple[int, int, tuple[ipaddress.IPv4Network, ...]]] = []
        for a, b in itertools.pairwise(cuts):
            nets = tuple(ipaddress.collapse_addresses(n for n, lo, hi in items if lo <= a and b - 1 <= hi))
            if not nets:
                continue
            if pieces and pieces[-1][1] == a - 1 and pieces[-1][2] == nets:
                pieces[-1] = (pieces[-1][0], b - 1, nets)  # merge neighbours with the same networks
            else:
                pieces.append((a, b - 1, nets))
        for first, last, nets in pieces:
            span = f"{first}" if first == last else f"{first}-{last}"
            out += [f"{n} . {proto} . {span}" for n in nets]
    return out


Memo = dict[tuple[str, tuple[str, ...]], list[str]]  # (kind, input) → _collapse/_disjoint output


def _memo(memo: Memo | None, kind: str, items: list[str]) -> list[str]:
    fn = _collapse if kind == "c" else _disjoint
    if memo is None:
        return fn(items)
    key = (kind, tuple(items))
    if key not in memo:
        memo[key] = fn(items)
    return memo[key]


@dataclass(frozen=True)
class _Compiled:
    """One policy rule on one node: its IR, its two sets and its rule."""

    ir: AllowRule
    sets: tuple[SetDef, SetDef]  # its sources, its destinations
    rule: Rule


@dataclass(frozen=True)
class _Piece:
    """What one policy contributes to one node's ruleset."""

    in_isolated: tuple[str, ...]
    eg_isolated: tuple[str, ...]
    ingress: tuple[_Compiled, ...]
    egress: tuple[_Compiled, ...]


def _compile_rule(name: str, src: list[str], dst: list[str], any_proto: bool, memo: Memo | None) -> _Compiled | None:
    if not src or not dst:
        return None  # matches nothing: leave it out
    src = _memo(memo, "c", src)
    dst = _memo(memo, "c" if any_proto else "d", dst)
    src_set = SetDef(f"{name}-src", ADDR, flags=INTERVAL, elements=tuple(sorted(src)))
    dst_set = SetDef(f"{name}-dst", ADDR if any_proto else TARGET, flags=INTERVAL, elements=tuple(sorted(dst)))
    srcs, dsts = "@" + quote(src_set.name), "@" + quote(dst_set.name)
    r = Rule(("ip", "saddr", srcs, *(DADDR if any_proto else TARGET_KEY), dsts, "return"))
    return _Compiled(AllowRule(name, tuple(src), tuple(dst), any_proto), (src_set, dst_set), r)


RuleValue = Callable[[str, int, PolicyRule], list[str]]  # (direction, index, rule) → _rule_value


def _piece(pol: NetworkPolicy, selected: list[PodView], value: RuleValue, memo: Memo | None) -> _Piece:
    """`selected`: the policy's pods on this node (not empty)."""
    ingress: list[_Compiled | None] = []
    egress: list[_Compiled | None] = []
    ips = sorted(f"{p.ip}/32" for p in selected)
    if "Ingress" in pol.policy_types:
        for i, rule in enumerate(pol.ingress):
            name = rule_name("ingress", pol.key, i)
            if not rule.ports:
                ingress.append(_compile_rule(name, value("in", i, rule), ips, True, memo))
            else:
                dst = sorted({f"{p.ip}/32 . {pe}" for p in selected for pp in rule.ports for pe in _ports_for(pp, p)})
                ingress.append(_compile_rule(name, value("in", i, rule), dst, False, memo))
    if "Egress" in pol.policy_types:
        for i, rule in enumerate(pol.egress):
            egress.append(_compile_rule(rule_name("egress", pol.key, i), ips, value("eg", i, rule), not rule.ports, memo))
    mine = tuple(p.ip for p in selected)
    return _Piece(
        mine if "Ingress" in pol.policy_types else (),
        mine if "Egress" in pol.policy_types else (),
        tuple(c for c in ingress if c is not None),
        tuple(c for c in egress if c is not None),
    )


def _assemble(node_addrs: tuple[str, ...], local_ips: list[str], pieces: Iterable[_Piece]) -> NodeRuleset:
    """`pieces` in the policies' key order."""
    in_isolated: set[str] = set()
    eg_isolated: set[str] = set()
    ingress: list[_Compiled] = []
    egress: list[_Compiled] = []
    for pc in pieces:
        in_isolated.update(pc.in_isolated)
        eg_isolated.update(pc.eg_isolated)
        ingress += pc.ingress
        egress += pc.egress
    fixed = (
        SetDef("ingress-isolated", ADDR, elements=tuple(sorted(in_isolated))),
        SetDef("egress-isolated", ADDR, elements=tuple(sorted(eg_isolated))),
        SetDef("node-addrs", ADDR, elements=tuple(sorted(set(node_addrs)))),
        # A pod is never cut off from itself (hairpin through a Service comes back DNATed to it).
        SetDef("self", (*ADDR, *ADDR), elements=tuple(sorted(f"{ip} . {ip}" for ip in local_ips))),
    )
    rule_sets = {s.name: s for c in (*ingress, *egress) for s in c.sets}
    table = TableDef(
        FAMILY,
        TABLE,
        (*fixed, *(rule_sets[name] for name in sorted(rule_sets))),
        _chains(tuple(c.rule for c in ingress), tuple(c.rule for c in egress)),
        COMMENT,
    )
    return NodeRuleset(
        frozenset(node_addrs),
        frozenset(local_ips),
        frozenset(in_isolated),
        frozenset(eg_isolated),
        tuple(c.ir for c in ingress),
        tuple(c.ir for c in egress),
        table,
        render.script(replace_table(table)),
    )


def compile_ruleset(view: View, inp: NodePolicyInput, cache: dict[tuple[str, str, int], list[str]] | None = None) -> NodeRuleset:
    """One node's ruleset from scratch. `cache` (shared across the nodes of one sync)
    keeps each rule's peer addresses and targets, which do not depend on the node."""
    cache = {} if cache is None else cache
    index = PodIndex(inp.pods)
    local = [p for p in inp.pods if p.node == inp.node and p.ip]
    pieces = []
    for pol in sorted(view.policies, key=lambda p: p.key):
        selected = [p for p in local if p.namespace == pol.meta.namespace and pol.pod_selector.matches(p.labels)]
        if not selected:
            continue

        def value(direction: str, i: int, rule: PolicyRule, pol: NetworkPolicy = pol) -> list[str]:
            key = (pol.key, direction, i)
            if key not in cache:
                cache[key] = _rule_value(pol, direction, rule, view, index, inp.pods)
            return cache[key]

        pieces.append(_piece(pol, selected, value, None))
    return _assemble(inp.node_addrs, [p.ip for p in local], pieces)


# The fixed rules, made once: their text is spelled once too.
ESTABLISHED = rule("ct state established , related accept")
TO_EGRESS, TO_INGRESS = rule("jump egress-check"), rule("jump ingress-check")
EGRESS_HEAD = (rule("ip saddr != @egress-isolated return"), rule("ip saddr . ip daddr @self return"))
INGRESS_HEAD = (rule("ip daddr != @ingress-isolated return"), rule("ip saddr @node-addrs return"), rule("ip saddr . ip daddr @self return"))
# After every filter chain of the service proxy: iptables' are at 0 (nftables' at -110), and
# chains of equal priority run in the order they were registered — which a full resync of
# either table would flip, turning a Service's "no endpoints" reject into a silent policy
# drop now and then. The proxy decides first on both backends, as its tracer assumes.
POLICY_PRIORITY = 10
FORWARD = Chain("forward", (ESTABLISHED, TO_EGRESS, TO_INGRESS), "filter", "forward", POLICY_PRIORITY, "accept")
INPUT = Chain("input", (ESTABLISHED, TO_EGRESS), "filter", "input", POLICY_PRIORITY, "accept")
DROP = rule("drop")


def _chains(ingress_rules: tuple[Rule, ...], egress_rules: tuple[Rule, ...]) -> tuple[Chain, ...]:
    return (
        FORWARD,
        INPUT,
        Chain("egress-check", (*EGRESS_HEAD, *egress_rules, DROP)),
        Chain("ingress-check", (*INGRESS_HEAD, *ingress_rules, DROP)),
    )
