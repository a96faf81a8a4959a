"""A traced packet in Kubernetes words (pure): what each namespace's netfilter did with it
and how it ended, from the kernel's own trace (emu/trace/nftrace.py) joined with what the
cluster knows — each node's proxy plan, the pods, the NetworkPolicies' rule sets.

The walks come in path order (emu/trace/walks.py). What changed between two sightings of
the packet is the evidence for NAT: a new destination after a nat chain is the Service's DNAT (the same for both proxy
backends, whose rules the trace spells differently), a new source after postrouting a
masquerade.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emu.proxy.plan import ProxyPlan, ServicePortPlan
from emu.trace.nftrace import Step, TraceLine
from emu.trace.walks import PROXY_TABLE, TRACE_TABLE, Place, Segment, dport, hook_of, proto, to

POLICY_TABLE = "kemu-policy"
CNI_TABLE = "kemu-cni"
_COUNTER = re.compile(r"\s*counter packets \d+ bytes \d+")


@dataclass(frozen=True)
class PolicyRule:
    policy: str  # ns/name
    direction: str  # ingress | egress
    index: int  # in the policy's list, from 0


@dataclass(frozen=True)
class Knowledge:
    """What the cluster knew when the packet was sent."""

    backend: str  # nftables | iptables
    src: Place
    addrs: Mapping[str, str]  # IP → who has it ("x/a", "node/n1", "host/h")
    ifaces: Mapping[tuple[str, str], str]  # (netns, interface) → where it leads
    plans: Mapping[str, ProxyPlan]  # node → its proxy plan
    policy_rules: Mapping[str, PolicyRule]  # a rule's set name without -src/-dst → the rule
    # pod IP → (policies isolating it for ingress, for egress)
    isolation: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Hop:
    namespace: str
    hook: str
    table: str
    chain: str
    rule: str  # the rule that decided (its statements), "" if none did
    meaning: str

    def to_json(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("namespace", "hook", "table", "chain", "rule", "meaning")}


@dataclass(frozen=True)
class Trace:
    verdict: str  # delivered | dropped | rejected
    reason: str  # one line
    decided_by: str  # proxy | policy | netfilter | routing ("" when delivered)
    service: str | None
    endpoint: str | None
    translated_to: str | None  # the Service's DNAT target, ip:port
    masqueraded: bool  # by the service proxy
    hops: tuple[Hop, ...]
    policies: tuple[dict[str, Any], ...]
    sent: str  # what the sender saw

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "decided_by": self.decided_by,
            "service": self.service,
            "endpoint": self.endpoint,
            "translated_to": self.translated_to,
            "masqueraded": self.masqueraded,
            "hops": [h.to_json() for h in self.hops],
            "policies": list(self.policies),
            "sent": self.sent,
        }


def clean(rule: str) -> str:
    """A rule as a reader wants it: without the counters iptables-nft adds to each."""
    return _COUNTER.sub("", rule).strip()


def service_port(plan: ProxyPlan | None, daddr: str, dport: int, proto: str) -> tuple[ServicePortPlan, str] | None:
    """The Service port a node's proxy serves at daddr:dport, and how it is reached."""
    if plan is None:
        return None
    for sp in plan.services:
        if sp.protocol != proto:
            continue
        if sp.port == dport and daddr == sp.cluster_ip:
            return sp, "ClusterIP"
        if sp.port == dport and daddr in sp.lb_ips:
            return sp, "LoadBalancer IP"
        if sp.port == dport and daddr in sp.external_ips:
            return sp, "external IP"
        if sp.node_port and dport == sp.node_port and (daddr in plan.node_ips or daddr.startswith("127.")):
            return sp, "NodePort"
    return None


def service_words(sp: ServicePortPlan) -> tuple[str, str]:
    """("ns/name", "port http") from the plan's id "ns/name/tcp/http"."""
    ns, name, _, port = sp.id.split("/", 3)
    return f"{ns}/{name}", f"port {port}"


@dataclass
class _Reading:
    """What the walk has shown so far, as the hops are read in order."""

    k: Knowledge
    service: str | None = None
    service_port: ServicePortPlan | None = None
    reached_as: str = ""
    endpoint: str | None = None
    dnat_to: str = ""
    policies: list[dict[str, Any]] = field(default_factory=list)
    end: tuple[str, str] | None = None  # (verdict, reason) once a hop decided
    by: str = ""  # who decided: proxy | policy | netfilter (another table) | routing
    proxy_masquerade: bool = False  # the service proxy masqueraded it
    delivered: Place | None = None
    last: str = ""  # where the packet was last seen

    def who(self, ip: str) -> str:
        return self.k.addrs.get(ip, ip)

    def iface(self, place: Place, name: str) -> str:
        return self.k.ifaces.get((place.netns, name), name)


def read(k: Knowledge, segs: list[Segment], sent: str) -> Trace:
    r = _Reading(k)
    hops: list[Hop] = []
    for si, seg in enumerate(segs):
        following = segs[si + 1].steps[0].packet if si + 1 < len(segs) else None
        for i, st in enumerate(seg.steps):
            after = seg.steps[i + 1].packet if i + 1 < len(seg.steps) else following
            hook = hook_of(st.table, st.chain)
            decided = next((m for m in reversed(st.matched) if m.decides), None)
            meaning = _meaning(r, seg, i, st, hook, after)
            hops.append(Hop(seg.place.ref, hook, st.table, st.chain, clean(decided.text) if decided else "", meaning))
            r.last = f"{seg.place.ref} {hook or st.chain}"
            if r.end is not None:
                break
        if r.end is not None:
            break
    verdict, reason = _verdict(r, sent)
    by = r.by if r.end is not None else "" if verdict == "delivered" else "routing"
    return Trace(verdict, reason, by, r.service, r.endpoint, r.dnat_to or None, r.proxy_masquerade, tuple(hops), tuple(r.policies), sent)


def _verdict(r: _Reading, sent: str) -> tuple[str, str]:
    if r.end is not None:
        return r.end
    if r.delivered is not None or sent in ("connected", "reply"):
        where = r.delivered.ref if r.delivered is not None else r.who(r.dnat_to.split(":")[0]) if r.dnat_to else "the destination"
        note = "; nothing listens there (the kernel answered with a reset)" if sent == "refused" else ""
        return "delivered", f"delivered to {where}{note}"
    if not r.last:
        if sent == "unreachable":
            return "dropped", "not sent: the source has no route to the destination"
        return "dropped", f"the kernel reported nothing ({sent}): the packet did not leave the source"
    return "dropped", f"lost after {r.last}: no netfilter rule dropped it (routing, or a neighbour that does not answer)"


def _meaning(r: _Reading, seg: Segment, i: int, st: Step, hook: str, after: Mapping[str, str] | None) -> str:
    p, place = st.packet, seg.place
    if st.table == TRACE_TABLE:
        return _own_chain(r, seg, i, st, hook)
    if st.verdict.startswith("drop"):
        return _drop(r, place, st)
    words: list[str] = []
    if after is not None and hook in ("prerouting", "output") and (after.get("ip daddr"), dport(after)) != (p.get("ip daddr"), dport(p)):
        words.append(_dnat(r, place, p, after))
    masq_rule = any("masquerade" in m.text.lower() for m in st.matched)
    if hook == "postrouting" and (masq_rule or (after is not None and after.get("ip saddr") not in (None, p.get("ip saddr")))):
        # The rule that matched says so even where the address stays (a node's own packet
        # leaving by the interface whose address it already has).
        words.append(_masquerade(r, st, p, after or p))
    if st.table == POLICY_TABLE:
        words += _policy_accepts(r, st)
    return "; ".join(w for w in words if w)


def _own_chain(r: _Reading, seg: Segment, i: int, st: Step, hook: str) -> str:
    p, place = st.packet, seg.place
    if hook == "output":
        return f"sent {p.get('ip saddr', '?')} → {to(p)} ({proto(p)}) out of {r.iface(place, p.get('oif', '?'))}" if i == 0 else ""
    if hook == "prerouting":
        return f"arrives from {r.iface(place, p.get('iif', '?'))}: {p.get('ip saddr', '?')} → {to(p)}" if i == 0 else ""
    if hook == "forward":
        iif, oif = p.get("iif", "?"), p.get("oif", "?")
        if iif == oif:  # pod to pod on one node: in and out through the bridge, as a router
            return f"routed back out of {r.iface(place, oif)}"
        return f"routed from {r.iface(place, iif)} to {r.iface(place, oif)}"
    if hook == "input":
        r.delivered = place
        if place.kind == "pod" and r.endpoint is None:
            r.endpoint = place.ref
        return f"delivered to {place.ref} ({p.get('ip daddr', '?')})"
    return ""


def _dnat(r: _Reading, place: Place, before: Mapping[str, str], after: Mapping[str, str]) -> str:
    target = to(after)
    pod = r.who(after.get("ip daddr", ""))
    r.dnat_to = target
    r.endpoint = pod if "/" in pod and not pod.startswith(("node/", "host/")) else None
    found = service_port(r.k.plans.get(place.node), before.get("ip daddr", ""), dport(before), proto(before))
    if found is None:
        return f"DNAT {to(before)} → {target} ({pod})"
    sp, how = found
    r.service, port = service_words(sp)
    r.service_port, r.reached_as = sp, how
    return f"Service {r.service} {port} ({how} {to(before)}) → DNAT to {target} ({pod})"


def _masquerade(r: _Reading, st: Step, before: Mapping[str, str], after: Mapping[str, str]) -> str:
    old, new = before.get("ip saddr", "?"), after.get("ip saddr", "?")
    if st.table != CNI_TABLE:
        r.proxy_masquerade = True
    why = "pod traffic leaving the pod network" if st.table == CNI_TABLE else "by the service proxy"
    if st.table != CNI_TABLE and r.service_port is not None:
        if r.dnat_to.split(":")[0] == old:
            why = "hairpin: a pod reaching itself through its Service"
        elif r.reached_as != "ClusterIP":
            why = "externalTrafficPolicy: Cluster"
        else:
            why = "a ClusterIP reached from outside the pod network"
    return f"masqueraded {old} → {new} ({why})" if new != old else f"masqueraded as {new}, its own address ({why})"


def _drop(r: _Reading, place: Place, st: Step) -> str:
    p = st.packet
    chains = [m.chain for m in st.matched]
    texts = " ".join(m.text for m in st.matched)
    rejected = "reject" in texts or '"REJECT"' in texts
    verdict = "rejected" if rejected else "dropped"
    where = f"on {place.ref}"
    if st.table == POLICY_TABLE:
        return _policy_drop(r, place, st)
    found = service_port(r.k.plans.get(place.node), p.get("ip daddr", ""), dport(p), proto(p))
    if found is not None:
        r.service = service_words(found[0])[0]
    if "cluster-ips-check" in chains:
        reason = f"rejected {where}: ClusterIP {p.get('ip daddr')} serves no {proto(p)} port {dport(p)}"
    elif rejected and found is not None:
        reason = f"rejected {where}: Service {r.service} has no endpoints"
    elif found is not None and found[0].source_ranges and p.get("ip daddr") in found[0].lb_ips:
        reason = f"dropped {where}: {p.get('ip saddr')} is outside the loadBalancerSourceRanges of Service {r.service}"
    elif found is not None and found[0].external_local and not found[0].external_endpoints and found[1] != "ClusterIP":
        reason = f"dropped {where}: Service {r.service} has externalTrafficPolicy: Local and no ready endpoint on this node"
    else:
        rule = clean(st.matched[-1].text) if st.matched else f"policy {st.verdict}"
        reason = f"{verdict} {where} by table {st.table} chain {st.chain} ({rule})"
    r.end = (verdict, reason)
    r.by = "proxy" if st.table == PROXY_TABLE or found is not None or any(c.startswith("KUBE-") for c in chains) else "netfilter"
    return reason


def _rule_of(r: _Reading, m: TraceLine) -> PolicyRule | None:
    for word in m.text.split():
        if word.startswith("@") and word.endswith(("-src", "-dst")):
            found = r.k.policy_rules.get(word[1:-4])
            if found is not None:
                return found
    return None


def _policy_accepts(r: _Reading, st: Step) -> list[str]:
    out = []
    for m in st.matched:
        side = "ingress" if m.chain.startswith("ingress") else "egress" if m.chain.startswith("egress") else ""
        if m.text.startswith("ct state"):
            out.append("an established flow: accepted")
        elif not side or m.verdict != "return":
            continue
        elif (pr := _rule_of(r, m)) is not None:
            r.policies.append({"name": pr.policy, "direction": pr.direction, "rule": pr.index + 1, "effect": "allows"})
            out.append(f"{side}: {pr.policy} {pr.direction} rule {pr.index + 1} allows")
        elif "isolated" in m.text:
            whose = st.packet.get("ip daddr" if side == "ingress" else "ip saddr", "")
            out.append(f"{side}: {r.who(whose)} is not isolated for {side}")
        elif "node-addrs" in m.text:
            out.append(f"{side}: from its own node (always allowed)")
        elif "@self" in m.text:
            out.append(f"{side}: a pod to itself (always allowed)")
    return out


def _policy_drop(r: _Reading, place: Place, st: Step) -> str:
    side = "ingress" if any(m.chain.startswith("ingress") for m in st.matched[-1:]) else "egress"
    p = st.packet
    guarded = p.get("ip daddr" if side == "ingress" else "ip saddr", "")
    peer = p.get("ip saddr" if side == "ingress" else "ip daddr", "")
    policies = r.k.isolation.get(guarded, ((), ()))[0 if side == "ingress" else 1]
    for pol in policies:
        r.policies.append({"name": pol, "direction": side, "rule": None, "effect": "isolates"})
    by = ", ".join(policies) or "a NetworkPolicy"
    reason = f"dropped on {place.ref}: {r.who(guarded)} is isolated for {side} by {by}; no rule allows {r.who(peer)}"
    r.end = ("dropped", reason)
    r.by = "policy"
    return reason
