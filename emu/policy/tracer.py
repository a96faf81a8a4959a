"""A packet tracer over a node's compiled policy ruleset (the IR the nft text is made
from): does this node let a new connection through? Used to test the compiler against
the oracle without a kernel."""

from __future__ import annotations

import ipaddress

from emu.policy.compile import AllowRule, NodeRuleset


def _in(ip: str, cidr: str) -> bool:
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr)


def _rule_allows(r: AllowRule, src: str, dst: str, proto: str, port: int) -> bool:
    if not any(_in(src, c) for c in r.src):
        return False
    if r.any_proto:
        return any(_in(dst, c) for c in r.dst)
    for e in r.dst:
        net, p, ports = (x.strip() for x in e.split(" . "))
        lo, _, hi = ports.partition("-")
        if p == proto and _in(dst, net) and int(lo) <= port <= int(hi or lo):
            return True
    return False


def passes(rs: NodeRuleset, src: str, dst: str, proto: str, port: int, to_node: bool = False) -> bool:
    """A new flow through this node's forward hook (or input hook when `to_node`)."""
    proto = proto.lower()
    # egress-check
    if src in rs.egress_isolated and src != dst and not any(_rule_allows(r, src, dst, proto, port) for r in rs.egress):
        return False
    if to_node:
        return True
    # ingress-check
    if dst in rs.ingress_isolated and src not in rs.node_addrs and src != dst:
        return any(_rule_allows(r, src, dst, proto, port) for r in rs.ingress)
    return True
