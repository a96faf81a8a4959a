"""The proxy's nft text before and after it was built on the typed model (issue #10):
the same plans give the same text, byte for byte, so the kernel holds the same ruleset —
checked through the fake kernel too, for full renders and incremental transactions over
random plan sequences. Below: the old renderer, kept verbatim (comments and docstrings
dropped) as the reference; nothing outside this test uses it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emu.netfilter.fake import FakeKernel, FakeNft, load
from emu.proxy import nft_render
from emu.proxy.plan import Backend, ProxyPlan, ServicePortPlan
from emu.proxy.tracer import firewall_sources
from tests.unit.proxy_fixture import plans
from tests.unit.test_nft_incremental import cluster, plan_for

pytestmark = pytest.mark.unit

# ---- the old renderer -------------------------------------------------------------------

TABLE = "kemu-proxy"
MASQ = "0x4000"  # in the conntrack mark: the packet mark carries the balancing bucket

NEW = "ct state new jump"
BY_VIP = "ip daddr . meta l4proto . th dport vmap"
BY_NODEPORT = "ip daddr @nodeport-ips meta l4proto . th dport vmap"


def _hook(kind: str, hook: str, priority: int) -> str:
    return f"type {kind} hook {hook} priority {priority}; policy accept;"


SKELETON_CHAINS: list[tuple[str, str, list[str]]] = [
    ("filter-prerouting", _hook("filter", "prerouting", -110), [f"{NEW} firewall-check"]),
    ("filter-input", _hook("filter", "input", -110), [f"{NEW} nodeport-endpoints-check", f"{NEW} service-endpoints-check"]),
    ("filter-forward", _hook("filter", "forward", -110), [f"{NEW} service-endpoints-check", f"{NEW} cluster-ips-check"]),
    ("filter-output", _hook("filter", "output", -110), [f"{NEW} firewall-check", f"{NEW} service-endpoints-check"]),
    ("filter-output-post-dnat", _hook("filter", "output", -90), [f"{NEW} cluster-ips-check"]),
    ("nat-prerouting", _hook("nat", "prerouting", -100), ["jump services"]),
    ("nat-output", _hook("nat", "output", -100), ["jump services"]),
    ("nat-postrouting", _hook("nat", "postrouting", 100), ["jump masquerading"]),
    ("firewall-check", "", [f"{BY_VIP} @firewall-ips"]),
    ("service-endpoints-check", "", [f"{BY_VIP} @no-endpoint-services"]),
    ("nodeport-endpoints-check", "", [f"{BY_NODEPORT} @no-endpoint-nodeports"]),
    ("cluster-ips-check", "", ["ip daddr @cluster-ips reject"]),
    ("services", "", [f"{BY_VIP} @service-ips", f"{BY_NODEPORT} @service-nodeports"]),
    ("reject-chain", "", ["reject"]),
    ("mark-for-masquerade", "", [f"ct mark set ct mark | {MASQ}"]),
    (
        "masquerading",
        "",
        [
            "ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random",
            f"ct mark & {MASQ} != 0 masquerade fully-random",
        ],
    ),
]
SKELETON_NAMES = {name for name, _, _ in SKELETON_CHAINS}
VIP_KEY = "ipv4_addr . inet_proto . inet_service"
BACKEND = "ipv4_addr . inet_service"
MAPS = {
    "service-ips": f"{VIP_KEY} : verdict",
    "service-nodeports": "inet_proto . inet_service : verdict",
    "no-endpoint-services": f"{VIP_KEY} : verdict",
    "no-endpoint-nodeports": "inet_proto . inet_service : verdict",
    "firewall-ips": f"{VIP_KEY} : verdict",
    "cluster-backends": f"{VIP_KEY} . mark : {BACKEND}",
    "external-backends": f"{VIP_KEY} . mark : {BACKEND}",
    "np-cluster-backends": f"inet_proto . inet_service . mark : {BACKEND}",
    "np-external-backends": f"inet_proto . inet_service . mark : {BACKEND}",
}
SETS = {"hairpin": "ipv4_addr . ipv4_addr", "cluster-ips": "ipv4_addr"}  # elements carry no value
VIP_LOOKUP = "ip daddr . meta l4proto . th dport . meta mark"
NP_LOOKUP = "meta l4proto . th dport . meta mark"


@dataclass
class ServiceRender:
    chains: dict[str, list[str]] = field(default_factory=dict)  # its own chains
    shared: set[str] = field(default_factory=set)  # shared balancing chains it uses
    sets: dict[str, str] = field(default_factory=dict)  # its own sets: name → declaration
    elements: dict[str, dict[str, str]] = field(default_factory=dict)  # map/set → key → value


def shared_chain(name: str, pod_cidr: str) -> list[str]:
    kind, *counts = name.rsplit("-", 2) if name.startswith(("ext-local-", "np-local-")) else name.rsplit("-", 1)
    n = [int(c) for c in counts]

    def balance(count: int, lookup: str, backends: str) -> list[str]:
        if count == 0:
            return ["drop"]
        return [f"meta mark set numgen random mod {count}", f"dnat ip addr . port to {lookup} map @{backends}"]

    if kind == "cluster":
        return [f"ip saddr != {pod_cidr} jump mark-for-masquerade", *balance(n[0], VIP_LOOKUP, "cluster-backends")]
    if kind == "np-cluster":
        return balance(n[0], NP_LOOKUP, "np-cluster-backends")
    if kind == "ext":
        return ["jump mark-for-masquerade", *balance(n[0], VIP_LOOKUP, "external-backends")]
    if kind == "np-ext":
        return ["jump mark-for-masquerade", *balance(n[0], NP_LOOKUP, "np-external-backends")]
    local, cluster = n
    inner = f"cluster-{cluster}" if kind == "ext-local" else f"np-cluster-{cluster}"
    lookup, backends = (VIP_LOOKUP, "external-backends") if kind == "ext-local" else (NP_LOOKUP, "np-external-backends")
    return [
        f"ip saddr {pod_cidr} goto {inner}",
        "fib saddr type local jump mark-for-masquerade",
        f"fib saddr type local goto {inner}",
        *balance(local, lookup, backends),
    ]


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


def _balance_chains(sp: ServicePortPlan, eps: tuple[Backend, ...]) -> list[str]:
    if not eps:
        return ["drop"]
    rules = [f"ip saddr @{aff_set(sp, b)} goto {ep_chain(sp, b)}" for b in eps]
    vmap = ", ".join(f"{i} : goto {ep_chain(sp, b)}" for i, b in enumerate(eps))
    return [*rules, f"numgen random mod {len(eps)} vmap {{ {vmap} }}"]


def render_service(plan: ProxyPlan, sp: ServicePortPlan) -> ServiceRender:
    r = ServiceRender(elements={m: {} for m in [*MAPS, *SETS]})
    el = r.elements
    proto = sp.protocol
    vips = [*sp.lb_ips, *sp.external_ips]
    el["cluster-ips"][sp.cluster_ip] = ""
    if sp.lb_ips and sp.source_ranges:
        r.chains[fw_chain(sp)] = [f"ip saddr {{ {', '.join(firewall_sources(plan, sp))} }} return", "drop"]
        for ip in sp.lb_ips:
            el["firewall-ips"][f"{ip} . {proto} . {sp.port}"] = f"goto {fw_chain(sp)}"
    if not sp.has_endpoints:
        for ip in [sp.cluster_ip, *vips]:
            el["no-endpoint-services"][f"{ip} . {proto} . {sp.port}"] = "goto reject-chain"
        if sp.node_port:
            el["no-endpoint-nodeports"][f"{proto} . {sp.node_port}"] = "goto reject-chain"
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
        return f"goto {chain}"

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
    r.chains[svc_chain(sp)] = [
        f"ip daddr {sp.cluster_ip} ip saddr != {plan.pod_cidr} jump mark-for-masquerade",
        *_balance_chains(sp, sp.cluster_endpoints),
    ]
    r.elements["service-ips"][f"{sp.cluster_ip} . {proto} . {sp.port}"] = f"goto {svc_chain(sp)}"
    if sp.node_port or vips:
        if sp.external_local:
            ext = [
                f"ip saddr {plan.pod_cidr} goto {svc_chain(sp)}",
                "fib saddr type local jump mark-for-masquerade",
                f"fib saddr type local goto {svc_chain(sp)}",
                *_balance_chains(sp, sp.external_endpoints),
            ]
        else:
            ext = ["jump mark-for-masquerade", *_balance_chains(sp, sp.external_endpoints)]
        r.chains[ext_chain(sp)] = ext
        for ip in vips:
            r.elements["service-ips"][f"{ip} . {proto} . {sp.port}"] = f"goto {ext_chain(sp)}"
        if sp.node_port:
            r.elements["service-nodeports"][f"{proto} . {sp.node_port}"] = f"goto {ext_chain(sp)}"
    for b in sorted({*sp.cluster_endpoints, *sp.external_endpoints}, key=lambda x: (x.ip, x.port)):
        r.sets[aff_set(sp, b)] = f"type ipv4_addr; flags dynamic,timeout; timeout {sp.affinity_timeout}s;"
        r.chains[ep_chain(sp, b)] = [f"update @{aff_set(sp, b)} {{ ip saddr }}", f"meta l4proto {proto} dnat to {b.ip}:{b.port}"]


def render_all(plan: ProxyPlan) -> dict[str, ServiceRender]:
    return {sp.id: render_service(plan, sp) for sp in plan.services}


_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9/_.-]*$")


def _q(name: str) -> str:
    return name if _IDENT.match(name) else f'"{name}"'


def _quote_refs(rule: str) -> str:
    words = rule.split(" ")
    for i, w in enumerate(words):
        if i > 0 and words[i - 1] in ("goto", "jump") and w not in SKELETON_NAMES:
            words[i] = _q(w.rstrip(",")) + ("," if w.endswith(",") else "")
        elif w.startswith("@aff-"):
            words[i] = "@" + _q(w[1:])
    return " ".join(words)


def _element(key: str, value: str) -> str:
    return f"{key} : {_quote_refs(value)}" if value else key


def _union(renders: dict[str, ServiceRender]) -> tuple[dict[str, list[str]], dict[str, str], dict[str, dict[str, str]]]:
    chains = {c: rules for r in renders.values() for c, rules in r.chains.items()}
    sets = {s: d for r in renders.values() for s, d in r.sets.items()}
    elements = {m: {k: v for r in renders.values() for k, v in r.elements.get(m, {}).items()} for m in [*MAPS, *SETS]}
    return chains, sets, elements


def _all_chains(plan: ProxyPlan, renders: dict[str, ServiceRender]) -> dict[str, list[str]]:
    chains, _, _ = _union(renders)
    for name in sorted({s for r in renders.values() for s in r.shared}):
        chains[name] = shared_chain(name, plan.pod_cidr)
    return chains


def render_full(plan: ProxyPlan, renders: dict[str, ServiceRender] | None = None) -> str:
    renders = renders if renders is not None else render_all(plan)
    _, sets, elements = _union(renders)
    out = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}", f"table ip {TABLE} {{", '  comment "kemu service proxy";']
    node_ips = ", ".join(plan.node_ips)
    out.append("  set nodeport-ips { type ipv4_addr;" + (f" elements = {{ {node_ips} }};" if node_ips else "") + " }")
    for name, typ in [*MAPS.items(), *SETS.items()]:
        elems = [_element(k, v) for k, v in elements[name].items()]
        body = f" elements = {{ {', '.join(elems)} }};" if elems else ""
        out.append(f"  {'map' if name in MAPS else 'set'} {name} {{ type {typ};{body} }}")
    for name, decl in sorted(sets.items()):
        out.append(f"  set {_q(name)} {{ {decl} }}")
    for name, hook, rules in SKELETON_CHAINS:
        out.append(f"  chain {name} {{")
        if hook:
            out.append(f"    {hook}")
        out.extend(f"    {rule}" for rule in rules)
        out.append("  }")
    for name, rules in sorted(_all_chains(plan, renders).items()):
        out.append(f"  chain {_q(name)} {{")
        out.extend(f"    {_quote_refs(rule)}" for rule in rules)
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


class NftState:
    def __init__(self, plan: ProxyPlan, renders: dict[str, ServiceRender]) -> None:
        self.pod_cidr = plan.pod_cidr
        self.renders = dict(renders)
        self.refs: Counter[tuple[str, str, str]] = Counter()  # (map, key, value)
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
        t = f"ip {TABLE}"
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
        out: list[str] = []
        by_map: dict[str, list[str]] = {}
        for m, k, _ in gone_el:
            by_map.setdefault(m, []).append(k)
        out += [f"delete element {t} {m} {{ {', '.join(keys)} }}" for m, keys in by_map.items()]
        changed_sets = {x for x in new_sets if x in old_sets and old_sets[x] != new_sets[x]}
        gone_sets = set(old_sets) - set(new_sets)
        rewrite = [
            c
            for c in sorted(new_chains)
            if old_chains.get(c) != new_chains[c] or any(f"@{x} " in " ".join(new_chains[c]) + " " for x in changed_sets)
        ]
        for c in [*sorted(set(old_chains) - set(new_chains)), *gone_shared, *[c for c in rewrite if c in old_chains]]:
            out.append(f"flush chain {t} {_q(c)}")
        for x in sorted(changed_sets | gone_sets):
            out.append(f"delete set {t} {_q(x)}")
        for x, d in sorted(new_sets.items()):
            if x not in old_sets or x in changed_sets:
                out.append(f"add set {t} {_q(x)} {{ {d} }}")
        for c in [*[c for c in rewrite if c not in old_chains], *new_shared]:
            out.append(f"add chain {t} {_q(c)}")
        for c in new_shared:
            out.extend(f"add rule {t} {_q(c)} {_quote_refs(rule)}" for rule in shared_chain(c, self.pod_cidr))
        for c in rewrite:
            out.extend(f"add rule {t} {_q(c)} {_quote_refs(rule)}" for rule in new_chains[c])
        by_map = {}
        for m, k, v in new_el:
            by_map.setdefault(m, []).append(_element(k, v))
        out += [f"add element {t} {m} {{ {', '.join(els)} }}" for m, els in by_map.items()]
        for c in [*sorted(set(old_chains) - set(new_chains)), *gone_shared]:
            out.append(f"delete chain {t} {_q(c)}")
        return "\n".join(out) + ("\n" if out else "")

    def _olds(self, changed: dict[str, ServiceRender | None]) -> list[ServiceRender]:
        return [r for sid in changed if (r := self.renders.get(sid)) is not None]


def _keys(r: ServiceRender) -> list[tuple[str, str, str]]:
    return [(m, k, v) for m, els in r.elements.items() for k, v in els.items()]


# ---- the tests --------------------------------------------------------------------------


def _same(old: str, new: str) -> None:
    assert new == old
    assert load(new).dump() == load(old).dump()


@pytest.mark.parametrize("node", ["n1", "n2"])
def test_the_fixture_plans_render_as_before(node: str) -> None:
    plan = plans()[node]
    _same(render_full(plan), nft_render.render_full(plan))


@settings(max_examples=60, deadline=None)
@given(st.lists(cluster, min_size=2, max_size=5))
def test_random_plans_and_their_changes_render_as_before(steps: list[Any]) -> None:
    plan, statuses = plan_for(steps[0], {})
    _same(render_full(plan), nft_render.render_full(plan))
    old_state = NftState(plan, render_all(plan))
    new_state = nft_render.NftState(plan, nft_render.render_all(plan))
    old_nft, new_nft = FakeNft(FakeKernel(), "old"), FakeNft(FakeKernel(), "new")
    old_nft.run(render_full(plan))
    new_nft.run(nft_render.render_full(plan))
    for step in steps[1:]:
        new, statuses = plan_for(step, statuses)
        before, after = plan.by_id(), new.by_id()
        ids = [sid for sid, sp in after.items() if before.get(sid) != sp] + [sid for sid in before if sid not in after]
        old_script = old_state.update({sid: render_service(new, after[sid]) if sid in after else None for sid in ids})
        new_script = new_state.update({sid: nft_render.render_service(new, after[sid]) if sid in after else None for sid in ids})
        assert new_script == old_script
        if old_script:
            old_nft.run(old_script)
            new_nft.run(new_script)
        assert new_nft.snapshot().dump() == old_nft.snapshot().dump()
        _same(render_full(new), nft_render.render_full(new))
        plan = new
