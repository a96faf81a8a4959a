"""Compile NetworkPolicies into one node's `table ip kemu-policy` (pure).

Each node enforces its own pods: egress where the client pod lives, ingress where the
server pod lives, in the forward hook (routed and — through br_netfilter — bridged
traffic, after the service proxy's DNAT, so Services are judged by their pod IPs) and in
the input hook (a pod talking to its node). Every rule of a policy becomes one nft rule
reading two sets — its peers and its (pod, protocol, port) targets — so a packet's cost
does not grow with the number of pods; established flows are accepted first.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
from dataclasses import dataclass, field

from emu.model.objects import PodView
from emu.model.policy import NetworkPolicy, Peer, PolicyPort, PolicyRule
from emu.policy.oracle import Endpoint, View, peer_matches

TABLE = "kemu-policy"
PROTOS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True)
class NodePolicyInput:
    node: str
    node_addrs: tuple[str, ...]  # its own addresses (eth0, the bridge): always allowed in
    pods: tuple[PodView, ...]  # every running pod of the cluster


def _h(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:10]


def _ranges(peer: Peer) -> list[str]:
    """An ipBlock as CIDRs: cidr minus every except."""
    assert peer.ip_block is not None
    nets = [ipaddress.IPv4Network(peer.ip_block.cidr)]
    for e in peer.ip_block.excepts:
        ex = ipaddress.IPv4Network(e)
        nets = [piece for n in nets for piece in (n.address_exclude(ex) if ex.subnet_of(n) else [n])]
    return sorted(str(n) for n in nets)


class PodIndex:
    """Pods by namespace and by label, so a selector looks at its candidates only."""

    def __init__(self, pods: tuple[PodView, ...]) -> None:
        self.by_ns: dict[str, list[PodView]] = {}
        self.by_label: dict[tuple[str, str], set[str]] = {}
        for p in pods:
            if not p.ip:
                continue
            self.by_ns.setdefault(p.namespace, []).append(p)
            for kv in p.labels.items():
                self.by_label.setdefault(kv, set()).add(p.key)

    def matching(self, peer: Peer, policy_ns: str, view: View) -> list[PodView]:
        if peer.namespace_selector is None:
            namespaces = [policy_ns]
        else:
            namespaces = [n for n in self.by_ns if peer.namespace_selector.matches(view.namespaces.get(n, {}))]
        keys: set[str] | None = None
        if peer.pod_selector is not None:
            for kv in peer.pod_selector.match_labels.items():
                found = self.by_label.get(kv, set())
                keys = found if keys is None else keys & found
        return [
            p
            for n in namespaces
            for p in self.by_ns.get(n, ())
            if (keys is None or p.key in keys) and (peer.pod_selector is None or peer.pod_selector.matches(p.labels))
        ]


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


def _egress_targets(rule: PolicyRule, ns: str, view: View, index: PodIndex, pods: tuple[PodView, ...]) -> list[str]:
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


@dataclass
class _Rules:
    sets: dict[str, tuple[str, list[str]]]  # name → (type, elements)
    rules: list[str]
    ir: list[AllowRule] = field(default_factory=list)


@dataclass(frozen=True)
class AllowRule:
    """One policy rule on one node: sources × targets (ports or any protocol)."""

    name: str
    src: tuple[str, ...]  # CIDRs
    dst: tuple[str, ...]  # CIDRs (any_proto) or "cidr . proto . lo[-hi]"
    any_proto: bool


@dataclass(frozen=True)
class NodeRuleset:
    """What a node enforces: the IR both the nft text and the tracer are made from."""

    node_addrs: frozenset[str]
    local: frozenset[str]  # IPs of the node's pods
    ingress_isolated: frozenset[str]
    egress_isolated: frozenset[str]
    ingress: tuple[AllowRule, ...]
    egress: tuple[AllowRule, ...]
    text: str
    sets: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # name → (type, elements)
    rules: tuple[str, ...] = ()  # the chains' rules, in order


def update_text(old: NodeRuleset, new: NodeRuleset) -> str | None:
    """A transaction changing only set elements, when the rules and the sets' names and
    types are unchanged (a label change, a pod coming or going); None: rewrite the table."""
    if old.rules != new.rules or {k: v[0] for k, v in old.sets.items()} != {k: v[0] for k, v in new.sets.items()}:
        return None
    out = []
    for name, (_, els) in sorted(new.sets.items()):
        if old.sets[name][1] != els:
            out.append(f"flush set ip {TABLE} {name}")
            if els:
                out.append(f"add element ip {TABLE} {name} {{ {', '.join(els)} }}")
    return "\n".join(out) + ("\n" if out else "")


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


def _add_rule(out: _Rules, name: str, src: list[str], dst: list[str], any_proto: bool) -> None:
    if not src or not dst:
        return  # matches nothing: leave it out
    src = _collapse(src)
    dst = _collapse(dst) if any_proto else _disjoint(dst)
    out.ir.append(AllowRule(name, tuple(src), tuple(dst), any_proto))
    out.sets[f"{name}-src"] = ("ipv4_addr; flags interval", src)
    if any_proto:
        out.sets[f"{name}-dst"] = ("ipv4_addr; flags interval", dst)
        out.rules.append(f"ip saddr @{name}-src ip daddr @{name}-dst return")
    else:
        out.sets[f"{name}-dst"] = ("ipv4_addr . inet_proto . inet_service; flags interval", dst)
        out.rules.append(f"ip saddr @{name}-src ip daddr . meta l4proto . th dport @{name}-dst return")


def compile_node(view: View, inp: NodePolicyInput, cache: dict[tuple[str, str, int], list[str]] | None = None) -> str:
    return compile_ruleset(view, inp, cache).text


def compile_ruleset(view: View, inp: NodePolicyInput, cache: dict[tuple[str, str, int], list[str]] | None = None) -> NodeRuleset:
    """`cache` (shared across the nodes of one sync) keeps each rule's peer addresses,
    which do not depend on the node."""
    cache = {} if cache is None else cache
    index = PodIndex(inp.pods)

    def peers(pol: NetworkPolicy, direction: str, i: int, rule: PolicyRule) -> list[str]:
        key = (pol.key, direction, i)
        if key not in cache:
            cache[key] = _peer_addrs(rule, pol.meta.namespace, view, index)
        return cache[key]

    local = [p for p in inp.pods if p.node == inp.node and p.ip]
    ingress = _Rules({}, [])
    egress = _Rules({}, [])
    in_isolated: set[str] = set()
    eg_isolated: set[str] = set()
    for pol in sorted(view.policies, key=lambda p: p.key):
        selected = [p for p in local if p.namespace == pol.meta.namespace and pol.pod_selector.matches(p.labels)]
        if not selected:
            continue
        if "Ingress" in pol.policy_types:
            in_isolated.update(p.ip for p in selected)
            for i, rule in enumerate(pol.ingress):
                src = peers(pol, "in", i, rule)
                name = f"in-{_h(pol.key, str(i))}"
                if not rule.ports:
                    _add_rule(ingress, name, src, sorted(f"{p.ip}/32" for p in selected), True)
                else:
                    dst = sorted({f"{p.ip}/32 . {pe}" for p in selected for pp in rule.ports for pe in _ports_for(pp, p)})
                    _add_rule(ingress, name, src, dst, False)
        if "Egress" in pol.policy_types:
            eg_isolated.update(p.ip for p in selected)
            for i, rule in enumerate(pol.egress):
                src = sorted(f"{p.ip}/32" for p in selected)
                name = f"eg-{_h(pol.key, str(i))}"
                if not rule.ports:
                    _add_rule(egress, name, src, peers(pol, "eg", i, rule), True)
                    continue
                _add_rule(egress, name, src, _egress_targets(rule, pol.meta.namespace, view, index, inp.pods), False)
    sets: dict[str, tuple[str, tuple[str, ...]]] = {
        "ingress-isolated": ("ipv4_addr", tuple(sorted(in_isolated))),
        "egress-isolated": ("ipv4_addr", tuple(sorted(eg_isolated))),
        "node-addrs": ("ipv4_addr", tuple(sorted(set(inp.node_addrs)))),
        # A pod is never cut off from itself (hairpin through a Service comes back DNATed to it).
        "self": ("ipv4_addr . ipv4_addr", tuple(sorted(f"{p.ip} . {p.ip}" for p in local))),
    }
    sets |= {name: (typ, tuple(sorted(els))) for name, (typ, els) in sorted({**ingress.sets, **egress.sets}.items())}
    chains = _chains(ingress.rules, egress.rules)
    return NodeRuleset(
        frozenset(inp.node_addrs),
        frozenset(p.ip for p in local),
        frozenset(in_isolated),
        frozenset(eg_isolated),
        tuple(ingress.ir),
        tuple(egress.ir),
        _render(sets, chains),
        sets,
        tuple(chains),
    )


def _set(name: str, typ: str, elements: list[str] | set[str]) -> str:
    els = f" elements = {{ {', '.join(sorted(elements))} }};" if elements else ""
    return f"  set {name} {{ type {typ};{els} }}"


def _chains(ingress_rules: list[str], egress_rules: list[str]) -> list[str]:
    return [
        "  chain forward {",
        "    type filter hook forward priority 0; policy accept;",
        "    ct state established,related accept",
        "    jump egress-check",
        "    jump ingress-check",
        "  }",
        "  chain input {",
        "    type filter hook input priority 0; policy accept;",
        "    ct state established,related accept",
        "    jump egress-check",
        "  }",
        "  chain egress-check {",
        "    ip saddr != @egress-isolated return",
        "    ip saddr . ip daddr @self return",
        *[f"    {r}" for r in egress_rules],
        "    drop",
        "  }",
        "  chain ingress-check {",
        "    ip daddr != @ingress-isolated return",
        "    ip saddr @node-addrs return",
        "    ip saddr . ip daddr @self return",
        *[f"    {r}" for r in ingress_rules],
        "    drop",
        "  }",
    ]


def _render(sets: dict[str, tuple[str, tuple[str, ...]]], chains: list[str]) -> str:
    out = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}", f"table ip {TABLE} {{", '  comment "kemu NetworkPolicy engine";']
    out += [_set(name, typ, list(els)) for name, (typ, els) in sets.items()]
    return "\n".join([*out, *chains, "}"]) + "\n"
