"""The NetworkPolicy oracle: does Kubernetes allow this connection, and why?

A pure function of the cluster's objects, after the API reference and the concept page
(as kube-network-policies keeps its decision apart from the dataplane):
- a pod is isolated for ingress (egress) if any policy in its namespace selects it and
  has Ingress (Egress) in policyTypes; an isolated pod accepts (sends) only what the union
  of those policies' rules allows; a connection needs the client's egress AND the server's
  ingress;
- peers: podSelector (in the policy's namespace), namespaceSelector (pods of those
  namespaces), both in one peer (AND), ipBlock (cidr minus except); an empty peer list or
  port list means all;
- ports: protocol (TCP by default), number, name (resolved on the destination pod),
  endPort ranges;
- traffic from a pod's own node always reaches it; a pod is never cut off from itself.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from emu.model.objects import PodView
from emu.model.policy import NetworkPolicy, Peer, PolicyPort


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod, or just an address (node, external host)."""

    ip: str
    pod: PodView | None = None

    def __str__(self) -> str:
        return self.pod.key if self.pod else self.ip


@dataclass(frozen=True)
class View:
    namespaces: dict[str, dict[str, str]]  # name → labels
    policies: tuple[NetworkPolicy, ...]
    node_ips: dict[str, frozenset[str]] = field(default_factory=dict)  # node → its addresses


@dataclass(frozen=True)
class Side:
    direction: str  # "egress" | "ingress"
    isolated: bool
    by: tuple[str, ...]  # policies that isolate
    allowed_by: tuple[str, ...]  # "ns/policy ingress[i]"
    note: str = ""  # a rule outside policies decided (self, own node)

    @property
    def allowed(self) -> bool:
        return bool(self.note) or not self.isolated or bool(self.allowed_by)


@dataclass(frozen=True)
class Decision:
    src: Endpoint
    dst: Endpoint
    port: int
    protocol: str
    egress: Side
    ingress: Side

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    def explain(self) -> str:
        head = f"{self.src} → {self.dst}:{self.port}/{self.protocol} {'allowed' if self.allowed else 'denied'}"
        return (
            head
            + ": "
            + "; ".join(
                _side_text(s, self.src if s.direction == "egress" else self.dst, self.dst if s.direction == "egress" else self.src)
                for s in (self.egress, self.ingress)
            )
        )


def _side_text(s: Side, subject: Endpoint, other: Endpoint) -> str:
    if s.note:
        return s.note
    if not s.isolated:
        return (
            f"{subject} is not isolated for {s.direction}" if subject.pod else f"{s.direction}: {subject} is not a pod (no policy applies)"
        )
    by = ", ".join(s.by)
    if s.allowed_by:
        return f"{subject} is isolated for {s.direction} by {by}; allowed by {', '.join(s.allowed_by)}"
    word = "to" if s.direction == "egress" else "from"
    return f"{subject} is isolated for {s.direction} by {by}; no {s.direction} rule of {'it' if len(s.by) == 1 else 'them'} allows {word} {other}"


def _in_block(ip: str, cidr: str, excepts: tuple[str, ...]) -> bool:
    a = ipaddress.ip_address(ip)
    return a in ipaddress.ip_network(cidr) and not any(a in ipaddress.ip_network(e) for e in excepts)


def peer_matches(peer: Peer, policy_ns: str, ep: Endpoint, view: View) -> bool:
    if peer.ip_block is not None:
        return _in_block(ep.ip, peer.ip_block.cidr, peer.ip_block.excepts)
    if ep.pod is None:
        return False  # selectors select pods only
    if peer.namespace_selector is None:
        if ep.pod.namespace != policy_ns:
            return False
    elif not peer.namespace_selector.matches(view.namespaces.get(ep.pod.namespace, {})):
        return False
    return peer.pod_selector is None or peer.pod_selector.matches(ep.pod.labels)


def port_matches(pp: PolicyPort, port: int, protocol: str, dst: Endpoint) -> bool:
    if pp.protocol != protocol:
        return False  # a UDP or SCTP rule never opens TCP
    if pp.port is None:
        return True
    if isinstance(pp.port, str):
        # Named ports resolve on the destination pod, per protocol.
        if dst.pod is None or dst.pod.spec is None:
            return False
        return any(p.name == pp.port and p.protocol == protocol and p.container_port == port for p in dst.pod.spec.served_ports())
    if pp.end_port is not None:
        return pp.port <= port <= pp.end_port
    return pp.port == port


def _selecting(view: View, pod: PodView, ptype: str) -> list[NetworkPolicy]:
    return [
        p for p in view.policies if p.meta.namespace == pod.namespace and ptype in p.policy_types and p.pod_selector.matches(pod.labels)
    ]


def _side(view: View, direction: str, subject: PodView, peer: Endpoint, dst: Endpoint, port: int, protocol: str) -> Side:
    """Isolation of `subject` in one direction, and the rules that let `peer` through."""
    pols = _selecting(view, subject, direction.capitalize())
    allowed = tuple(
        f"{p.key} {direction}[{i}]"
        for p in pols
        for i, r in enumerate(p.ingress if direction == "ingress" else p.egress)
        if (not r.peers or any(peer_matches(x, p.meta.namespace, peer, view) for x in r.peers))
        and (not r.ports or any(port_matches(pp, port, protocol, dst) for pp in r.ports))
    )
    return Side(direction, bool(pols), tuple(p.key for p in pols), allowed)


def decide(view: View, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> Decision:
    if src.pod is not None and dst.pod is not None and src.pod.key == dst.pod.key:
        note = "a pod is never cut off from itself"
        return Decision(src, dst, port, protocol, Side("egress", False, (), (), note), Side("ingress", False, (), (), note))
    egress = _side(view, "egress", src.pod, dst, dst, port, protocol) if src.pod is not None else Side("egress", False, (), ())
    if dst.pod is None:
        ingress = Side("ingress", False, (), ())
    elif dst.pod.node and src.ip in view.node_ips.get(dst.pod.node, frozenset()):
        ingress = Side("ingress", False, (), (), f"traffic from {dst.pod.key}'s own node always reaches it")
    else:
        ingress = _side(view, "ingress", dst.pod, src, dst, port, protocol)
    return Decision(src, dst, port, protocol, egress, ingress)
