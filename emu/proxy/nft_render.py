"""nftables spelling of a proxy plan, after kube-proxy's nftables proxier.

The fixed skeleton (base chains, verdict maps) is data; each service port adds its own
chains, affinity sets and map elements. `render_full` writes the whole table in one
transaction; `render_update` writes only what changed between two plans, also as one
transaction (map elements removed before the chains they point to go).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from emu.proxy.plan import Backend, ProxyPlan, ServicePortPlan

TABLE = "kemu-proxy"
MASQ_MARK = "0x4000"

# name → (hook declaration or "", rules)
SKELETON_CHAINS: list[tuple[str, str, list[str]]] = [
    ("filter-prerouting", "type filter hook prerouting priority -110; policy accept;", ["ct state new jump firewall-check"]),
    (
        "filter-input",
        "type filter hook input priority -110; policy accept;",
        ["ct state new jump nodeport-endpoints-check", "ct state new jump service-endpoints-check"],
    ),
    ("filter-forward", "type filter hook forward priority -110; policy accept;", ["ct state new jump service-endpoints-check"]),
    ("filter-output", "type filter hook output priority -110; policy accept;", ["ct state new jump service-endpoints-check"]),
    # nft 1.0.6 refuses the symbolic `dstnat` for the ip family's output hook: numbers.
    ("nat-prerouting", "type nat hook prerouting priority -100; policy accept;", ["jump services"]),
    ("nat-output", "type nat hook output priority -100; policy accept;", ["jump services"]),
    ("nat-postrouting", "type nat hook postrouting priority 100; policy accept;", ["jump masquerading"]),
    ("firewall-check", "", ["ip daddr . meta l4proto . th dport vmap @firewall-ips"]),
    ("service-endpoints-check", "", ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"]),
    ("nodeport-endpoints-check", "", ["ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"]),
    (
        "services",
        "",
        ["ip daddr . meta l4proto . th dport vmap @service-ips", "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"],
    ),
    ("reject-chain", "", ["reject"]),
    ("mark-for-masquerade", "", [f"meta mark set meta mark | {MASQ_MARK}"]),
    ("masquerading", "", [f"meta mark & {MASQ_MARK} == 0 return", f"meta mark set meta mark ^ {MASQ_MARK}", "masquerade fully-random"]),
]
MAPS = {
    "service-ips": "ipv4_addr . inet_proto . inet_service : verdict",
    "service-nodeports": "inet_proto . inet_service : verdict",
    "no-endpoint-services": "ipv4_addr . inet_proto . inet_service : verdict",
    "no-endpoint-nodeports": "inet_proto . inet_service : verdict",
    "firewall-ips": "ipv4_addr . inet_proto . inet_service : verdict",
}


@dataclass
class ServiceRender:
    """Everything one service port contributes to the table."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)  # name → declaration body
    elements: dict[str, dict[str, str]] = field(default_factory=dict)  # map → key → verdict


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


def _balance(sp: ServicePortPlan, eps: tuple[Backend, ...]) -> list[str]:
    if not eps:
        return ["drop"]
    rules = [f"ip saddr @{aff_set(sp, b)} goto {ep_chain(sp, b)}" for b in eps] if sp.affinity_timeout else []
    if len(eps) == 1:
        rules.append(f"goto {ep_chain(sp, eps[0])}")
    else:
        vmap = ", ".join(f"{i} : goto {ep_chain(sp, b)}" for i, b in enumerate(eps))
        rules.append(f"numgen random mod {len(eps)} vmap {{ {vmap} }}")
    return rules


def render_service(plan: ProxyPlan, sp: ServicePortPlan) -> ServiceRender:
    r = ServiceRender(elements={m: {} for m in MAPS})
    proto = sp.protocol
    vips = [*sp.lb_ips, *sp.external_ips]
    external = bool(sp.node_port or vips)
    if not sp.has_endpoints:
        r.elements["no-endpoint-services"][f"{sp.cluster_ip} . {proto} . {sp.port}"] = "goto reject-chain"
        for ip in vips:
            r.elements["no-endpoint-services"][f"{ip} . {proto} . {sp.port}"] = "goto reject-chain"
        if sp.node_port:
            r.elements["no-endpoint-nodeports"][f"{proto} . {sp.node_port}"] = "goto reject-chain"
        return r
    r.chains[svc_chain(sp)] = [
        f"ip daddr {sp.cluster_ip} ip saddr != {plan.pod_cidr} jump mark-for-masquerade",
        *_balance(sp, sp.cluster_endpoints),
    ]
    r.elements["service-ips"][f"{sp.cluster_ip} . {proto} . {sp.port}"] = f"goto {svc_chain(sp)}"
    if external:
        if sp.external_local:
            # Pods and the node itself are in-cluster clients: the cluster chain, and the
            # node's own traffic masqueraded; everyone else keeps its source IP.
            ext = [
                f"ip saddr {plan.pod_cidr} goto {svc_chain(sp)}",
                "fib saddr type local jump mark-for-masquerade",
                f"fib saddr type local goto {svc_chain(sp)}",
                *_balance(sp, sp.external_endpoints),
            ]
        else:
            ext = ["jump mark-for-masquerade", *_balance(sp, sp.external_endpoints)]
        r.chains[ext_chain(sp)] = ext
        for ip in vips:
            r.elements["service-ips"][f"{ip} . {proto} . {sp.port}"] = f"goto {ext_chain(sp)}"
        if sp.node_port:
            r.elements["service-nodeports"][f"{proto} . {sp.node_port}"] = f"goto {ext_chain(sp)}"
    if sp.lb_ips and sp.source_ranges:
        r.chains[fw_chain(sp)] = [f"ip saddr {{ {', '.join(sp.source_ranges)} }} return", "drop"]
        for ip in sp.lb_ips:
            r.elements["firewall-ips"][f"{ip} . {proto} . {sp.port}"] = f"goto {fw_chain(sp)}"
    for b in {*sp.cluster_endpoints, *sp.external_endpoints}:
        rules = [f"ip saddr {b.ip} jump mark-for-masquerade"]
        if sp.affinity_timeout:
            r.sets[aff_set(sp, b)] = f"type ipv4_addr; flags dynamic,timeout; timeout {sp.affinity_timeout}s;"
            rules.append(f"update @{aff_set(sp, b)} {{ ip saddr }}")
        rules.append(f"meta l4proto {proto} dnat to {b.ip}:{b.port}")
        r.chains[ep_chain(sp, b)] = rules
    return r


def render_all(plan: ProxyPlan) -> dict[str, ServiceRender]:
    return {sp.id: render_service(plan, sp) for sp in plan.services}


_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9/_.-]*$")


def _q(name: str) -> str:
    """nft's identifiers allow letters, digits, '/', '_', '.', '-' (kube-proxy's chain
    names rely on that); anything else must be quoted."""
    return name if _IDENT.match(name) else f'"{name}"'


def render_full(plan: ProxyPlan, renders: dict[str, ServiceRender] | None = None) -> str:
    """The whole table, replacing any previous one, as one transaction."""
    renders = renders if renders is not None else render_all(plan)
    out = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}", f"table ip {TABLE} {{", '  comment "kemu service proxy";']
    node_ips = ", ".join(plan.node_ips)
    out.append("  set nodeport-ips { type ipv4_addr;" + (f" elements = {{ {node_ips} }};" if node_ips else "") + " }")
    for name, typ in MAPS.items():
        elems = [f"{k} : {_quote_refs(v)}" for r in renders.values() for k, v in r.elements[name].items()]
        body = f" elements = {{ {', '.join(elems)} }};" if elems else ""
        out.append(f"  map {name} {{ type {typ};{body} }}")
    for r in renders.values():
        for name, decl in sorted(r.sets.items()):
            out.append(f"  set {_q(name)} {{ {decl} }}")
    for name, hook, rules in SKELETON_CHAINS:
        out.append(f"  chain {name} {{")
        if hook:
            out.append(f"    {hook}")
        out.extend(f"    {rule}" for rule in rules)
        out.append("  }")
    for r in renders.values():
        for name in sorted(r.chains):
            out.append(f"  chain {_q(name)} {{")
            out.extend(f"    {_quote_refs(rule)}" for rule in r.chains[name])
            out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def _quote_refs(rule: str) -> str:
    """Chain and set names hold '/' and ':' — quote them where rules refer to them."""
    words = rule.split(" ")
    for i, w in enumerate(words):
        if i > 0 and words[i - 1] in ("goto", "jump") and w not in SKELETON_NAMES:
            words[i] = _q(w.rstrip(",")) + ("," if w.endswith(",") else "")
        elif w.startswith("@aff-"):
            words[i] = "@" + _q(w[1:])
    return " ".join(words)


SKELETON_NAMES = {name for name, _, _ in SKELETON_CHAINS}


def render_update(plan: ProxyPlan, old: dict[str, ServiceRender], new: dict[str, ServiceRender]) -> str:
    """Only what changed from `old` to `new`, as one transaction ("" if nothing did)."""
    t = f"ip {TABLE}"
    out: list[str] = []
    old_chains = {c: rules for r in old.values() for c, rules in r.chains.items()}
    new_chains = {c: rules for r in new.values() for c, rules in r.chains.items()}
    old_sets = {s: d for r in old.values() for s, d in r.sets.items()}
    new_sets = {s: d for r in new.values() for s, d in r.sets.items()}
    for m in MAPS:
        o = {k: v for r in old.values() for k, v in r.elements[m].items()}
        n = {k: v for r in new.values() for k, v in r.elements[m].items()}
        gone = [k for k, v in o.items() if n.get(k) != v]
        if gone:
            out.append(f"delete element {t} {m} {{ {', '.join(gone)} }}")
    changed_sets = {x for x in new_sets if x in old_sets and old_sets[x] != new_sets[x]}
    gone_sets = set(old_sets) - set(new_sets)
    # A chain is rewritten when its rules changed or a set it reads is re-declared.
    changed = [
        c
        for c in sorted(new_chains)
        if old_chains.get(c) != new_chains[c] or any(f"@{x} " in " ".join(new_chains[c]) + " " for x in changed_sets)
    ]
    for c in [*sorted(set(old_chains) - set(new_chains)), *[c for c in changed if c in old_chains]]:
        out.append(f"flush chain {t} {_q(c)}")
    for x in sorted(changed_sets | gone_sets):
        out.append(f"delete set {t} {_q(x)}")
    for x, d in sorted(new_sets.items()):
        if x not in old_sets or x in changed_sets:
            out.append(f"add set {t} {_q(x)} {{ {d} }}")
    for c in changed:
        if c not in old_chains:
            out.append(f"add chain {t} {_q(c)}")
    for c in changed:
        out.extend(f"add rule {t} {_q(c)} {_quote_refs(rule)}" for rule in new_chains[c])
    for m in MAPS:
        o = {k: v for r in old.values() for k, v in r.elements[m].items()}
        n = {k: v for r in new.values() for k, v in r.elements[m].items()}
        added = [f"{k} : {_quote_refs(v)}" for k, v in n.items() if o.get(k) != v]
        if added:
            out.append(f"add element {t} {m} {{ {', '.join(added)} }}")
    for c in sorted(set(old_chains) - set(new_chains)):
        out.append(f"delete chain {t} {_q(c)}")
    return "\n".join(out) + ("\n" if out else "")
