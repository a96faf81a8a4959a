"""nftables spelling of a proxy plan, after kube-proxy's nftables proxier.

The fixed skeleton (base chains, verdict maps) is data. Unlike kube-proxy, most Services
get no chains of their own: a Service is map elements — its VIPs in a verdict map that
jumps to a *shared* balancing chain for its endpoint count (`cluster-3`), and its
endpoints in a backend map keyed by VIP, protocol, port and bucket (`numgen random mod
3`). nft 1.0.6 looks chains up by walking a list, so a ruleset with a chain per Service
and per endpoint grows quadratically (10,000 Services took 18 s); elements stay linear.
Services with session affinity or source ranges keep kube-proxy's per-Service chains.

`render_full` writes the whole table in one transaction; `NftState.update` writes only
what changed between two plans, also as one transaction.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

from emu.netfilter import render
from emu.netfilter.ruleset import Chain, Rule, quote
from emu.netfilter.transaction import (
    AddChain,
    AddElements,
    AddRules,
    AddSet,
    DeleteChain,
    DeleteElements,
    DeleteSet,
    FlushChain,
    Op,
    SetDef,
    TableDef,
    Transaction,
    replace_table,
    rule,
    verdict,
)
from emu.proxy.plan import Backend, ProxyPlan, ServicePortPlan
from emu.proxy.tracer import firewall_sources

FAMILY, TABLE = "ip", "kemu-proxy"
COMMENT = "kemu service proxy"
MASQ = "0x4000"  # in the conntrack mark: the packet mark carries the balancing bucket

NEW = "ct state new jump"
BY_VIP = "ip daddr . meta l4proto . th dport vmap"
BY_NODEPORT = "ip daddr @nodeport-ips meta l4proto . th dport vmap"


def _base(name: str, kind: str, hook: str, priority: int, *rules: str) -> Chain:
    # nft 1.0.6 refuses the symbolic `dstnat` for the ip family's output hook: numbers.
    return Chain(name, tuple(rule(r) for r in rules), kind, hook, priority, "accept")


def _regular(name: str, *rules: str) -> Chain:
    return Chain(name, tuple(rule(r) for r in rules))


# As kube-proxy, the filter chains see pre-DNAT addresses (dstnat - 10), except
# cluster-ips-check: it rejects what DNAT left alone, a ClusterIP on a port or protocol no
# Service port serves. Forward runs after prerouting's DNAT; the node's own traffic needs
# an output chain after nat-output (dstnat + 10).
SKELETON_CHAINS: tuple[Chain, ...] = (
    _base("filter-prerouting", "filter", "prerouting", -110, f"{NEW} firewall-check"),
    _base("filter-input", "filter", "input", -110, f"{NEW} nodeport-endpoints-check", f"{NEW} service-endpoints-check"),
    _base("filter-forward", "filter", "forward", -110, f"{NEW} service-endpoints-check", f"{NEW} cluster-ips-check"),
    _base("filter-output", "filter", "output", -110, f"{NEW} firewall-check", f"{NEW} service-endpoints-check"),
    _base("filter-output-post-dnat", "filter", "output", -90, f"{NEW} cluster-ips-check"),
    _base("nat-prerouting", "nat", "prerouting", -100, "jump services"),
    _base("nat-output", "nat", "output", -100, "jump services"),
    _base("nat-postrouting", "nat", "postrouting", 100, "jump masquerading"),
    _regular("firewall-check", f"{BY_VIP} @firewall-ips"),
    _regular("service-endpoints-check", f"{BY_VIP} @no-endpoint-services"),
    _regular("nodeport-endpoints-check", f"{BY_NODEPORT} @no-endpoint-nodeports"),
    _regular("cluster-ips-check", "ip daddr @cluster-ips reject"),
    _regular("services", f"{BY_VIP} @service-ips", f"{BY_NODEPORT} @service-nodeports"),
    _regular("reject-chain", "reject"),
    _regular("mark-for-masquerade", f"ct mark set ct mark | {MASQ}"),
    _regular(
        "masquerading",
        # Hairpin: a pod sent to itself through a Service must see the reply come back
        # through the node, so its source is rewritten.
        "ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random",
        f"ct mark & {MASQ} != 0 masquerade fully-random",
    ),
)
VIP_KEY = ("ipv4_addr", "inet_proto", "inet_service")
NP_KEY = ("inet_proto", "inet_service")
BACKEND = ("ipv4_addr", "inet_service")
VERDICT = ("verdict",)
MAPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # name → (key type, data type)
    "service-ips": (VIP_KEY, VERDICT),
    "service-nodeports": (NP_KEY, VERDICT),
    "no-endpoint-services": (VIP_KEY, VERDICT),
    "no-endpoint-nodeports": (NP_KEY, VERDICT),
    "firewall-ips": (VIP_KEY, VERDICT),
    "cluster-backends": ((*VIP_KEY, "mark"), BACKEND),
    "external-backends": ((*VIP_KEY, "mark"), BACKEND),
    "np-cluster-backends": ((*NP_KEY, "mark"), BACKEND),
    "np-external-backends": ((*NP_KEY, "mark"), BACKEND),
}
SETS: dict[str, tuple[str, ...]] = {"hairpin": ("ipv4_addr", "ipv4_addr"), "cluster-ips": ("ipv4_addr",)}  # elements carry no value
VIP_LOOKUP = "ip daddr . meta l4proto . th dport . meta mark"
NP_LOOKUP = "meta l4proto . th dport . meta mark"
REJECT = verdict("goto", "reject-chain")


@dataclass
class ServiceRender:
    """Everything one service port contributes to the table."""

    chains: dict[str, tuple[Rule, ...]] = field(default_factory=dict)  # its own chains
    shared: set[str] = field(default_factory=set)  # shared balancing chains it uses
    sets: dict[str, SetDef] = field(default_factory=dict)  # its own sets
    elements: dict[str, dict[str, str]] = field(default_factory=dict)  # map/set → key → data ("" in a set)


@functools.lru_cache(maxsize=1024)
def shared_chain(name: str, pod_cidr: str) -> tuple[Rule, ...]:
    """The rules of a shared balancing chain, from its name alone."""
    kind, *counts = name.rsplit("-", 2) if name.startswith(("ext-local-", "np-local-")) else name.rsplit("-", 1)
    n = [int(c) for c in counts]

    def balance(count: int, lookup: str, backends: str) -> list[Rule]:
        if count == 0:
            return [rule("drop")]
        return [rule(f"meta mark set numgen random mod {count}"), rule(f"dnat ip addr . port to {lookup} map", f"@{backends}")]

    if kind == "cluster":
        return (rule("ip saddr !=", pod_cidr, "jump mark-for-masquerade"), *balance(n[0], VIP_LOOKUP, "cluster-backends"))
    if kind == "np-cluster":
        return tuple(balance(n[0], NP_LOOKUP, "np-cluster-backends"))
    if kind == "ext":
        return (rule("jump mark-for-masquerade"), *balance(n[0], VIP_LOOKUP, "external-backends"))
    if kind == "np-ext":
        return (rule("jump mark-for-masquerade"), *balance(n[0], NP_LOOKUP, "np-external-backends"))
    # externalTrafficPolicy: Local. Pods and the node itself are in-cluster clients (the
    # cluster endpoints; the node's own traffic masqueraded); others keep their source.
    local, cluster = n
    inner = quote(f"cluster-{cluster}" if kind == "ext-local" else f"np-cluster-{cluster}")
    lookup, backends = (VIP_LOOKUP, "external-backends") if kind == "ext-local" else (NP_LOOKUP, "np-external-backends")
    return (
        rule("ip saddr", pod_cidr, "goto", inner),
        rule("fib saddr type local jump mark-for-masquerade"),
        rule("fib saddr type local goto", inner),
        *balance(local, lookup, backends),
    )


def svc_chain(sp: ServicePortPlan) -> str:
    return f"svc-{sp.hash}-{sp.id}"


def ext_chain(sp: ServicePortPlan) -> str:
    return f"ext-{sp.hash}-{sp.id}"


def fw_chain(sp: ServicePortPlan) -> str:
    return f"fw-{sp.hash}-{sp.id}"


def ep_chain(sp: ServicePortPlan, b: Backend) -> str:
    return f"ep-{sp.hash}-{sp.id}__{b.ip}/{b.port}"


def aff_set(sp: ServicePortPlan, b: Backend) -> str:
    return f"aff-{sp.hash}-{b.ip}-{b.port}"


def _balance_chains(sp: ServicePortPlan, eps: tuple[Backend, ...]) -> list[Rule]:
    """Per-Service balancing (affinity): kube-proxy's endpoint chains and affinity sets."""
    if not eps:
        return [rule("drop")]
    rules = [rule("ip saddr", "@" + quote(aff_set(sp, b)), "goto", quote(ep_chain(sp, b))) for b in eps]
    vmap: list[str] = []
    for i, b in enumerate(eps):
        vmap += [*([","] if i else []), str(i), ":", "goto", quote(ep_chain(sp, b))]
    return [*rules, rule(f"numgen random mod {len(eps)} vmap {{", *vmap, "}")]


def render_service(plan: ProxyPlan, sp: ServicePortPlan) -> ServiceRender:
    r = ServiceRender(elements={m: {} for m in [*MAPS, *SETS]})
    el = r.elements
    proto = sp.protocol
    vips = [*sp.lb_ips, *sp.external_ips]
    el["cluster-ips"][sp.cluster_ip] = ""
    if sp.lb_ips and sp.source_ranges:
        # Checked in prerouting, so it applies with or without endpoints (kube-proxy).
        sources: list[str] = []
        for src in firewall_sources(plan, sp):
            sources += [*([","] if sources else []), src]
        r.chains[fw_chain(sp)] = (rule("ip saddr {", *sources, "} return"), rule("drop"))
        for ip in sp.lb_ips:
            el["firewall-ips"][f"{ip} . {proto} . {sp.port}"] = verdict("goto", fw_chain(sp))
    if not sp.has_endpoints:
        for ip in [sp.cluster_ip, *vips]:
            el["no-endpoint-services"][f"{ip} . {proto} . {sp.port}"] = REJECT
        if sp.node_port:
            el["no-endpoint-nodeports"][f"{proto} . {sp.node_port}"] = REJECT
        return r
    for b in sorted({*sp.cluster_endpoints, *sp.external_endpoints}, key=lambda x: (x.ip, x.port)):
        el["hairpin"][f"{b.ip} . {b.ip}"] = ""
    if sp.affinity_timeout:
        _affinity(plan, sp, r, vips)
        return r
    nc, ne = len(sp.cluster_endpoints), len(sp.external_endpoints)

    def fill(mapname: str, prefix: str, eps: tuple[Backend, ...]) -> None:
        for i, b in enumerate(eps):
            el[mapname][f"{prefix} . {i}"] = f"{b.ip} . {b.port}"

    def use(chain: str) -> str:
        if chain.endswith("-0") and not chain.startswith(("ext-local", "np-local")):
            return "drop"
        r.shared.add(chain)
        if chain.startswith("ext-local-"):
            r.shared.add(f"cluster-{nc}")
        if chain.startswith("np-local-"):
            r.shared.add(f"np-cluster-{nc}")
        return verdict("goto", chain)

    el["service-ips"][f"{sp.cluster_ip} . {proto} . {sp.port}"] = use(f"cluster-{nc}")
    fill("cluster-backends", f"{sp.cluster_ip} . {proto} . {sp.port}", sp.cluster_endpoints)
    for ip in vips:
        key = f"{ip} . {proto} . {sp.port}"
        fill("external-backends", key, sp.external_endpoints)
        if sp.external_local:
            fill("cluster-backends", key, sp.cluster_endpoints)
            el["service-ips"][key] = use(f"ext-local-{ne}-{nc}")
        else:
            el["service-ips"][key] = use(f"ext-{ne}")
    if sp.node_port:
        key = f"{proto} . {sp.node_port}"
        fill("np-external-backends", key, sp.external_endpoints)
        if sp.external_local:
            fill("np-cluster-backends", key, sp.cluster_endpoints)
            el["service-nodeports"][key] = use(f"np-local-{ne}-{nc}")
        else:
            el["service-nodeports"][key] = use(f"np-ext-{ne}")
    return r


def _affinity(plan: ProxyPlan, sp: ServicePortPlan, r: ServiceRender, vips: list[str]) -> None:
    proto = sp.protocol
    svc = quote(svc_chain(sp))
    r.chains[svc_chain(sp)] = (
        rule("ip daddr", sp.cluster_ip, "ip saddr !=", plan.pod_cidr, "jump mark-for-masquerade"),
        *_balance_chains(sp, sp.cluster_endpoints),
    )
    r.elements["service-ips"][f"{sp.cluster_ip} . {proto} . {sp.port}"] = verdict("goto", svc_chain(sp))
    if sp.node_port or vips:
        if sp.external_local:
            ext = [
                rule("ip saddr", plan.pod_cidr, "goto", svc),
                rule("fib saddr type local jump mark-for-masquerade"),
                rule("fib saddr type local goto", svc),
                *_balance_chains(sp, sp.external_endpoints),
            ]
        else:
            ext = [rule("jump mark-for-masquerade"), *_balance_chains(sp, sp.external_endpoints)]
        r.chains[ext_chain(sp)] = tuple(ext)
        for ip in vips:
            r.elements["service-ips"][f"{ip} . {proto} . {sp.port}"] = verdict("goto", ext_chain(sp))
        if sp.node_port:
            r.elements["service-nodeports"][f"{proto} . {sp.node_port}"] = verdict("goto", ext_chain(sp))
    for b in sorted({*sp.cluster_endpoints, *sp.external_endpoints}, key=lambda x: (x.ip, x.port)):
        aff = "@" + quote(aff_set(sp, b))
        r.sets[aff_set(sp, b)] = SetDef(
            aff_set(sp, b), ("ipv4_addr",), flags=frozenset({"dynamic", "timeout"}), timeout=f"{sp.affinity_timeout}s"
        )
        r.chains[ep_chain(sp, b)] = (rule("update", aff, "{ ip saddr }"), rule(f"meta l4proto {proto} dnat to {b.ip}:{b.port}"))


def render_all(plan: ProxyPlan) -> dict[str, ServiceRender]:
    return {sp.id: render_service(plan, sp) for sp in plan.services}


def _union(renders: dict[str, ServiceRender]) -> tuple[dict[str, tuple[Rule, ...]], dict[str, SetDef], dict[str, dict[str, str]]]:
    chains = {c: rules for r in renders.values() for c, rules in r.chains.items()}
    sets = {s: d for r in renders.values() for s, d in r.sets.items()}
    elements: dict[str, dict[str, str]] = {m: {} for m in [*MAPS, *SETS]}
    for r in renders.values():
        for m, els in r.elements.items():
            if els:
                elements[m].update(els)
    return chains, sets, elements


def table(plan: ProxyPlan, renders: dict[str, ServiceRender] | None = None) -> TableDef:
    """The whole table for a plan."""
    renders = renders if renders is not None else render_all(plan)
    chains, sets, elements = _union(renders)
    for name in {s for r in renders.values() for s in r.shared}:
        chains[name] = shared_chain(name, plan.pod_cidr)
    return TableDef(
        FAMILY,
        TABLE,
        (
            SetDef("nodeport-ips", ("ipv4_addr",), elements=plan.node_ips),
            *(SetDef(name, key, data, elements=elements[name]) for name, (key, data) in MAPS.items()),
            *(SetDef(name, key, elements=elements[name]) for name, key in SETS.items()),
            *(sets[name] for name in sorted(sets)),
        ),
        (*SKELETON_CHAINS, *(Chain(name, chains[name]) for name in sorted(chains))),
        COMMENT,
    )


def render_full(plan: ProxyPlan, renders: dict[str, ServiceRender] | None = None) -> str:
    """The whole table, replacing any previous one, as one transaction."""
    return render.script(replace_table(table(plan, renders)))


class NftState:
    """What is in the kernel's table, with reference counts, so that an update costs
    O(changed Services) — not O(all) — to compute (kube-proxy's partial sync)."""

    def __init__(self, plan: ProxyPlan, renders: dict[str, ServiceRender]) -> None:
        self.pod_cidr = plan.pod_cidr
        self.renders = dict(renders)
        self.refs: Counter[tuple[str, str, str]] = Counter()  # (map, key, data)
        self.shared: Counter[str] = Counter()
        for r in renders.values():
            self._count(r, +1)

    def _count(self, r: ServiceRender, d: int) -> None:
        for m, els in r.elements.items():
            for k, v in els.items():
                self.refs[(m, k, v)] += d
        for c in r.shared:
            self.shared[c] += d

    def update(self, changed: dict[str, ServiceRender | None]) -> str:
        """Apply `changed` (service id → new render, None: gone); the transaction text."""
        return render.script(self.transaction(changed))

    def transaction(self, changed: dict[str, ServiceRender | None]) -> Transaction:
        """Apply `changed` (service id → new render, None: gone); the transaction."""
        touched = [*self._olds(changed), *[r for r in changed.values() if r is not None]]
        before_refs = {key: self.refs[key] for r in touched for key in _keys(r)}
        before_shared = {c: self.shared[c] for r in touched for c in r.shared}
        old_own = {sid: self.renders.get(sid) for sid in changed}
        for sid, new in changed.items():
            old = self.renders.get(sid)
            if old is not None:
                self._count(old, -1)
            if new is None:
                self.renders.pop(sid, None)
            else:
                self.renders[sid] = new
                self._count(new, +1)
        gone_el = [key for key, n in before_refs.items() if n > 0 and self.refs[key] <= 0]
        new_el = [key for key, n in before_refs.items() if n <= 0 and self.refs[key] > 0]
        gone_shared = sorted(c for c, n in before_shared.items() if n > 0 and self.shared[c] <= 0)
        new_shared = sorted(c for c, n in before_shared.items() if n <= 0 and self.shared[c] > 0)
        for key in gone_el:
            del self.refs[key]
        old_chains = {c: rules for r in old_own.values() if r for c, rules in r.chains.items()}
        new_chains = {c: rules for sid in changed if (r := self.renders.get(sid)) for c, rules in r.chains.items()}
        old_sets = {x: d for r in old_own.values() if r for x, d in r.sets.items()}
        new_sets = {x: d for sid in changed if (r := self.renders.get(sid)) for x, d in r.sets.items()}
        ops: list[Op] = []
        if gone_el:
            gone_keys: dict[str, list[str]] = {}
            for m, k, _ in gone_el:
                gone_keys.setdefault(m, []).append(k)
            ops += [DeleteElements(m, tuple(keys)) for m, keys in gone_keys.items()]
        changed_sets = {x for x in new_sets if x in old_sets and old_sets[x] != new_sets[x]}
        gone_sets = set(old_sets) - set(new_sets)
        # A chain that reads a set made anew is written anew too (the set's delete needs it unused).
        uses = {"@" + quote(x) for x in changed_sets}
        rewrite = [
            c
            for c in sorted(new_chains)
            if old_chains.get(c) != new_chains[c] or (uses and any(uses.intersection(r.tokens) for r in new_chains[c]))
        ]
        gone_chains = [*sorted(set(old_chains) - set(new_chains)), *gone_shared]
        if gone_chains or rewrite:
            ops += [FlushChain(c) for c in [*gone_chains, *[c for c in rewrite if c in old_chains]]]
        if old_sets or new_sets:
            ops += [DeleteSet(x) for x in sorted(changed_sets | gone_sets)]
            ops += [AddSet(d) for x, d in sorted(new_sets.items()) if x not in old_sets or x in changed_sets]
        if rewrite or new_shared:
            ops += [AddChain(Chain(c)) for c in [*[c for c in rewrite if c not in old_chains], *new_shared]]
            ops += [AddRules(c, shared_chain(c, self.pod_cidr)) for c in new_shared]
            ops += [AddRules(c, new_chains[c]) for c in rewrite]
        if new_el:
            new_els: dict[str, dict[str, str]] = {}
            for m, k, v in new_el:
                new_els.setdefault(m, {})[k] = v
            ops += [AddElements(m, els) for m, els in new_els.items()]
        ops += [DeleteChain(c) for c in gone_chains]
        return Transaction(FAMILY, TABLE, tuple(ops))

    def _olds(self, changed: dict[str, ServiceRender | None]) -> list[ServiceRender]:
        return [r for sid in changed if (r := self.renders.get(sid)) is not None]


def _keys(r: ServiceRender) -> list[tuple[str, str, str]]:
    return [(m, k, v) for m, els in r.elements.items() for k, v in els.items()]
