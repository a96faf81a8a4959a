"""The routed plugin: Calico's data path without BGP — no bridge, every pod a /32 route.

Each pod's veth ends on its node as a plain routed interface: the node has a route
`10.244.N.x/32 dev <veth>` and a permanent neighbour entry for the pod, and every
node-side veth carries the same MAC (Calico uses ee:ee:ee:ee:ee:ee), the one pods hold,
permanently, for their gateway — so no ARP is ever needed. The gateway address
(10.244.N.1, the first of the node's /24, as with the other plugins) sits on the node's
`lo`: it is the source the node uses towards its pods (inet_select_addr falls back to the
first device with a usable address, lo, when the out device has none) and what traffic
masqueraded towards a pod leaves with. Same-node pod traffic is routed through the node,
like any other; other nodes' pod subnets are routed via their node IPs, as Calico's BGP
would program them (`bird` installs the same routes). A pod reaching itself through a
Service is sent back out of the interface it came in by: plain routing, no hairpin mode.
"""

from __future__ import annotations

import dataclasses
import errno

from emu.controllers.ipam import NodeAddr
from emu.dataplane import rtnl
from emu.dataplane.cni.base import CNIPlugin
from emu.dataplane.cni.common import (
    POD_ETH0_INDEX,
    forwarding_node_here,
    host_index,
    mac_for,
    masquerade_tables,
    pod_side,
    pod_veth,
    route_via_nodes,
    this_netns_fd,
)
from emu.dataplane.handles import NsHandle
from emu.dataplane.rtnl_socket import RtnlSocket

LO_INDEX = 1


def _node_side(host_if: str, pod_ip: str) -> tuple[rtnl.Request, ...]:
    """The node's route and neighbour entry for a pod (no-ops if already there)."""
    index = host_index(pod_ip)
    route = rtnl.route_add(f"{pod_ip}/32", oif=index, scope=rtnl.RT_SCOPE_LINK)
    return (dataclasses.replace(route, ok_errnos=frozenset({errno.EEXIST})), rtnl.neigh_replace(index, pod_ip, mac_for(pod_ip)))


class RoutedCNI(CNIPlugin):
    name = "routed"

    def setup_node(self, node: NsHandle, addr: NodeAddr) -> None:
        forwarding_node_here()
        node.ipr.addr("add", index=LO_INDEX, address=addr.gateway, prefixlen=32)
        route_via_nodes(node, self.plan, addr)

    def owned_tables(self) -> dict[str, str]:
        return masquerade_tables(self.pod_cidr)

    def add_pod(self, pod: RtnlSocket, node: NsHandle, addr: NodeAddr, pod_ip: str, host_if: str) -> None:
        with this_netns_fd() as pod_fd, node.lock:
            node.rtnl.request(
                # The pair in one message (common.pod_veth); the node end takes the
                # gateway's MAC, which the pod resolves its gateway to.
                pod_veth(host_if, pod_ip, pod_fd, address=mac_for(addr.gateway)),
                *_node_side(host_if, pod_ip),
            )
        pod.request(*pod_side(POD_ETH0_INDEX, pod_ip, addr.gateway))

    def pod_link_up(self, node: NsHandle, host_if: str, pod_ip: str) -> None:
        with node.lock:
            node.rtnl.request(*_node_side(host_if, pod_ip))

    def del_pod(self, node: NsHandle, host_if: str, pod_ip: str) -> None:
        # The pod's route and neighbour entry go with its link.
        with node.lock:
            node.rtnl.request(rtnl.link_del(host_if, missing_ok=True))
