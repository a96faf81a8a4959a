"""Address management: node and external-host IPs on nodeCIDR, a /24 per node, pod IPs.

Node i (in file order) gets the i-th /24 of podCIDR, as kube-controller-manager's
range allocator hands out node.spec.podCIDR; its bridge holds the first address (.1).
"""

from __future__ import annotations

import heapq
import ipaddress
from dataclasses import dataclass

from emu.model.objects import ClusterSpec


@dataclass(frozen=True)
class NodeAddr:
    name: str
    index: int
    ip: str  # on the node network
    prefixlen: int  # of the node network
    pod_cidr: str
    gateway: str  # first address of pod_cidr, on the node's bridge
    labels: dict[str, str]


@dataclass(frozen=True)
class HostAddr:
    name: str
    ip: str
    prefixlen: int


@dataclass(frozen=True)
class AddressPlan:
    nodes: tuple[NodeAddr, ...]
    hosts: tuple[HostAddr, ...]

    def node(self, name: str) -> NodeAddr:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def plan_addresses(spec: ClusterSpec) -> AddressPlan:
    # IPv4 only (emu/config/schema.py's cidr check refuses the others).
    node_net = ipaddress.IPv4Network(spec.node_cidr)
    pod_net = ipaddress.IPv4Network(spec.pod_cidr)
    node_ranges = pod_net.subnets(new_prefix=24)
    # .1 of the node network is left free (where a real network has its router).
    next_host = 2
    nodes = []
    for i, decl in enumerate(spec.nodes):
        pod_cidr = next(node_ranges)
        nodes.append(
            NodeAddr(
                decl.name,
                i,
                str(node_net.network_address + next_host),
                node_net.prefixlen,
                str(pod_cidr),
                str(pod_cidr.network_address + 1),
                dict(decl.labels),
            )
        )
        next_host += 1
    hosts = []
    for host in spec.external_hosts:
        hosts.append(HostAddr(host.name, str(node_net.network_address + next_host), node_net.prefixlen))
        next_host += 1
    return AddressPlan(tuple(nodes), tuple(hosts))


class PodIPAllocator:
    """Lowest free address of each node's /24, from .2 (.1 is the bridge, .255 broadcast).

    The free addresses of a node are a min-heap of integers: allocating takes the lowest,
    releasing puts one back, both O(log n) (a whole teardown releases every pod's)."""

    def __init__(self, plan: AddressPlan) -> None:
        self._free: dict[str, list[int]] = {}
        self._used: dict[str, str] = {}  # ip → node
        for n in plan.nodes:
            net = ipaddress.IPv4Network(n.pod_cidr)
            first = int(net.network_address)
            self._free[n.name] = list(range(first + 2, first + net.num_addresses - 1))  # ascending: a heap already

    def capacity_left(self, node: str) -> int:
        return len(self._free[node])

    def allocate(self, node: str) -> str | None:
        free = self._free[node]
        if not free:
            return None
        ip = str(ipaddress.IPv4Address(heapq.heappop(free)))
        self._used[ip] = node
        return ip

    def release(self, ip: str) -> None:
        node = self._used.pop(ip, None)
        if node is not None:
            heapq.heappush(self._free[node], int(ipaddress.IPv4Address(ip)))
