"""`kemu trace SRC DST[:PORT[/PROTO]]`: one real packet, traced through the kernel.

What the cluster knows is read under its lock (who SRC and DST are, the namespaces the
packet may cross, each node's proxy plan, the policies); the packet is sent and watched
without it (emu/trace/live.py), then read in Kubernetes words (emu/trace/translate.py).
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from emu.cluster.explaining import endpoint, service_of
from emu.cluster.runtime import Cluster
from emu.dataplane.names import member_ns, pod_host_if, pod_ns
from emu.dataplane.run import run
from emu.errors import NotFoundError, Problem, ValidationError
from emu.model.objects import PodView
from emu.policy.compile import rule_name
from emu.trace.agreement import Models, compare
from emu.trace.live import LiveTrace, Probe
from emu.trace.translate import Knowledge, PolicyRule, read
from emu.trace.walks import Place, segments

_one_at_a_time = threading.Lock()
MAX_ENDPOINTS = 32  # destination namespaces watched for a Service (each runs a monitor)
PROBE_PORTS = (20000, 29999)  # below Linux's ephemeral range (32768-60999): no client holds them
# DSCP pool 2 (RFC 2474: xxxx11, experimental or local use): no traffic of a lab carries them.
PROBE_DSCP = tuple(range(3, 64, 4))


@dataclass(frozen=True)
class Target:
    ip: str
    port: int
    proto: str  # tcp | udp | icmp
    places: tuple[Place, ...]  # where the packet may be delivered


def trace(c: Cluster, src: str, dst: str, port: int | None, protocol: str | None, timeout: float = 1.0) -> dict[str, Any]:
    t0 = time.monotonic()
    with c.lock:
        pods = {p.key: p for p in c.pod_views()}
        source = _place(c, src, pods)
        target = _target(c, dst, port, protocol, pods)
        nodes = [Place(member_ns(c.name, n.name), f"node/{n.name}", "node", n.name) for n in c.plan.nodes]
        k = _knowledge(c, source, pods)
        models = Models(c.spec.proxy, k.plans, c.policy_view() if c.spec.network_policy else None, pods)
        src_ep = endpoint(c, src)
    # The order the packet most likely takes breaks ties where no router counts hops.
    first = [n for n in nodes if n.node == source.node]
    order = [source, *first, *[n for n in nodes if n not in first], *target.places]
    places = {p.netns: p for p in order}
    probe = Probe(target.proto, target.ip, target.port, random.randint(*PROBE_PORTS), random.choice(PROBE_DSCP))
    # One trace at a time: each one's mark table is `kemu-trace` in the same namespaces.
    with _one_at_a_time, LiveTrace(list(places), probe) as live:
        sent = live.send(source.netns, timeout)
        seen = live.collect()
    walks = segments(seen, places, source.netns)
    tracked = _conntrack([w.place for w in walks if w.place.kind == "node"], probe)
    t = read(k, walks, sent)
    model = compare(models, t, src_ep, source.kind, source.node, target.ip, target.port, target.proto)
    to = target.ip if target.proto == "icmp" else f"{target.ip}:{target.port}"
    return {
        "from": source.ref,
        "to": f"{to}/{target.proto}",
        **t.to_json(),
        "conntrack": tracked,
        "model": model,
        "seconds": round(time.monotonic() - t0, 3),
    }


def _conntrack(nodes: list[Place], probe: Probe) -> list[dict[str, str]]:
    """The connection-tracking entries the probe left on the nodes it crossed (NAT shows
    in the reply direction). A node that masqueraded with a random port hides the next
    node's entry from this lookup by the original port: that one is left out."""
    if probe.proto == "icmp":
        match = ["-p", "icmp", "--icmp-id", str(probe.sport)]
    else:
        match = ["-p", probe.proto, "--orig-port-src", str(probe.sport)]
    out = []
    for place in dict.fromkeys(nodes):
        cp = run(["conntrack", "-L", *match], netns_name=place.netns, check=False, timeout=5)
        out += [{"namespace": place.ref, "entry": " ".join(line.split())} for line in cp.stdout.splitlines() if line.strip()]
    return out


def _place(c: Cluster, ref: str, pods: dict[str, PodView]) -> Place:
    kind, _, name = ref.partition("/")
    if kind in ("node", "host"):
        names = [n.name for n in c.plan.nodes] if kind == "node" else [h.name for h in c.plan.hosts]
        if name not in names:
            raise NotFoundError(f"{'node' if kind == 'node' else 'external host'} {name!r} not found")
        return Place(member_ns(c.name, name), ref, kind, name if kind == "node" else "")
    pod = pods.get(ref)
    if pod is None:
        raise NotFoundError(f"pod {ref} not found (or not running)")
    return _pod_place(c, pod)


def _target(c: Cluster, ref: str, port: int | None, protocol: str | None, pods: dict[str, PodView]) -> Target:
    proto = (protocol or "").lower()
    if proto not in ("", "tcp", "udp", "icmp"):
        raise ValidationError([Problem("<command line>", protocol or "", "a trace sends tcp, udp or icmp")])
    svc = service_of(c, ref)
    if svc is not None:
        ports = [p for p in svc.ports if (port is None or p.port == port) and (not proto or p.protocol.lower() == proto)]
        if not ports:
            raise ValidationError([Problem("<command line>", ref, f"Service {svc.key} has no port {port or ''}/{proto or ''}")])
        sp = ports[0]
        vip = _cluster_ip(c, svc.key)
        if not vip:
            raise ValidationError(
                [Problem("<command line>", ref, f"Service {svc.key} is headless: it has no ClusterIP (trace one of its pods)")]
            )
        return Target(vip, sp.port, sp.protocol.lower(), _endpoints(c, vip, sp.port, pods))
    kind = ref.partition("/")[0]
    if kind in ("node", "host") or "/" in ref:
        place = _place(c, ref, pods)
        if place.kind == "pod":
            ip = pods[ref].ip
        elif place.kind == "node":
            ip = c.plan.node(place.node).ip
        else:
            ip = next(h.ip for h in c.plan.hosts if f"host/{h.name}" == ref)
        if port is None and place.kind == "pod" and not proto:
            spec = pods[ref].spec
            served = spec.served_ports() if spec is not None else []
            if served:
                return Target(ip, served[0].container_port, served[0].protocol.lower(), (place,))
        return _with_port(ref, ip, port, proto, (place,))
    try:
        ipaddress.IPv4Address(ref)
    except ValueError:
        raise ValidationError(
            [Problem("<command line>", ref, "expected ns/pod, node/NAME, host/NAME, a Service (name.ns) or an IPv4 address")]
        ) from None
    places = _endpoints(c, ref, port or 0, pods)
    return _with_port(ref, ref, port, proto, places)


def _with_port(ref: str, ip: str, port: int | None, proto: str, places: tuple[Place, ...]) -> Target:
    if proto == "icmp" or (port is None and not proto):
        return Target(ip, 0, "icmp", places)
    if port is None:
        raise ValidationError([Problem("<command line>", ref, f"give a port for {proto} (DST:PORT/{proto.upper()})")])
    return Target(ip, port, proto or "tcp", places)


def _cluster_ip(c: Cluster, key: str) -> str:
    plans = c.services.plans if c.services is not None else {}
    for plan in plans.values():
        for sp in plan.services:
            if sp.id.startswith(key + "/") and sp.cluster_ip:
                return sp.cluster_ip
    return ""


def _endpoints(c: Cluster, ip: str, port: int, pods: dict[str, PodView]) -> tuple[Place, ...]:
    """The namespaces a packet to ip:port may end in: the pod or host with that address,
    else the endpoints of every Service port reached there (any node's view)."""
    by_ip = {p.ip: p for p in pods.values()}
    if ip in by_ip:
        p = by_ip[ip]
        return (_pod_place(c, p),)
    for h in c.plan.hosts:
        if h.ip == ip:
            return (Place(member_ns(c.name, h.name), f"host/{h.name}", "host"),)
    ips: dict[str, None] = {}
    for plan in (c.services.plans if c.services is not None else {}).values():
        for sp in plan.services:
            if ip in (sp.cluster_ip, *sp.lb_ips, *sp.external_ips) or (sp.node_port and sp.node_port == port and ip in plan.node_ips):
                ips.update(dict.fromkeys(b.ip for b in (*sp.cluster_endpoints, *sp.external_endpoints)))
    out = [by_ip[i] for i in ips if i in by_ip][:MAX_ENDPOINTS]
    return tuple(_pod_place(c, p) for p in out)


def _pod_place(c: Cluster, p: PodView) -> Place:
    # A hostNetwork pod has no namespace of its own: its packets are its node's.
    if p.spec is not None and p.spec.host_network:
        return Place(member_ns(c.name, p.node), p.key, "pod", p.node)
    return Place(pod_ns(c.name, p.namespace, p.name), p.key, "pod", p.node)


def _knowledge(c: Cluster, src: Place, pods: dict[str, PodView]) -> Knowledge:
    addrs = {p.ip: p.key for p in pods.values()}
    ifaces: dict[tuple[str, str], str] = {}
    for n in c.plan.nodes:
        addrs[n.ip] = f"node/{n.name}"
        addrs[n.gateway] = f"node/{n.name}"
        ns = member_ns(c.name, n.name)
        ifaces[(ns, "eth0")] = "eth0 (the node network)"
        for ifname, words in c.network.cni.node_interfaces().items():
            ifaces[(ns, ifname)] = words
    for h in c.plan.hosts:
        addrs[h.ip] = f"host/{h.name}"
        ifaces[(member_ns(c.name, h.name), "eth0")] = "eth0 (the node network)"
    for p in pods.values():
        ifaces[(member_ns(c.name, p.node), pod_host_if(p.namespace, p.name))] = f"the veth of pod {p.key}"
        ifaces[(pod_ns(c.name, p.namespace, p.name), "eth0")] = f"eth0 (to node {p.node})"
    view = c.policy_view()
    rules: dict[str, PolicyRule] = {}
    for pol in view.policies:
        for direction, listed in (("ingress", pol.ingress), ("egress", pol.egress)):
            for i in range(len(listed)):
                rules[rule_name(direction, pol.key, i)] = PolicyRule(pol.key, direction, i)
    isolation: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for p in pods.values():
        mine = [pol for pol in view.policies if pol.meta.namespace == p.namespace and pol.pod_selector.matches(p.labels)]
        isolation[p.ip] = (
            tuple(pol.key for pol in mine if "Ingress" in pol.policy_types),
            tuple(pol.key for pol in mine if "Egress" in pol.policy_types),
        )
    plans = dict(c.services.plans) if c.services is not None else {}
    return Knowledge(c.spec.proxy, src, addrs, ifaces, plans, rules, isolation)
