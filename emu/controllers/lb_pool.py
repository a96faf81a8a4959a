"""The emulated bare-metal load balancer's address pool (MetalLB's IPAddressPool role)."""

from __future__ import annotations

import ipaddress

from emu.config.cluster import parse_pool_entry
from emu.model.objects import ClusterSpec


def default_pool(node_cidr: str) -> str:
    """The upper quarter of the node network: 172.30.0.0/24 → 172.30.0.192/26."""
    net = ipaddress.IPv4Network(node_cidr)
    if net.prefixlen > 28:
        return ""
    return str(list(net.subnets(prefixlen_diff=2))[-1])


def pool_addresses(spec: ClusterSpec) -> list[str]:
    """Every assignable address, in order (network and broadcast of the node net excluded)."""
    node_net = ipaddress.IPv4Network(spec.node_cidr)
    entries = spec.lb_pool or ((default_pool(spec.node_cidr),) if default_pool(spec.node_cidr) else ())
    out: list[str] = []
    for e in entries:
        a, b = parse_pool_entry(e)
        for i in range(int(a), int(b) + 1):
            ip = ipaddress.IPv4Address(i)
            if ip not in (node_net.network_address, node_net.broadcast_address) and str(ip) not in out:
                out.append(str(ip))
    return out
