"""The bridge plugin: a Linux bridge per node holding its pods, routes between nodes.

Like kubenet / the reference `bridge`+`host-local` CNI plugins: each node's pods hang off
`cbr0` (the node's gateway, first address of its /24), each node routes the other nodes'
/24s via their node IPs, and pod traffic to anything outside podCIDR is masqueraded to the
node IP (flannel's and kubenet's `ip-masq` behaviour) while pod-to-pod traffic never is.
"""

from __future__ import annotations

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
from emu.dataplane.handles import NsHandle, write_sysctl_here
from emu.dataplane.rtnl_socket import RtnlSocket

BRIDGE = "cbr0"


class BridgeCNI(CNIPlugin):
    name = "bridge"

    # Pod MTU (both ends of each pod's veth and the bridge); None: the kernel's default,
    # the node network's 1500. An overlay lowers it by its encapsulation (vxlan.py).
    pod_mtu: int | None = None

    def setup_node(self, node: NsHandle, addr: NodeAddr) -> None:
        forwarding_node_here()
        # Bridged (same-node) pod traffic must traverse netfilter for Services and
        # policies (br_netfilter); set it explicitly rather than trusting the default.
        write_sysctl_here("net.bridge.bridge-nf-call-iptables", "1")
        ipr = node.ipr
        mtu = {"mtu": self.pod_mtu} if self.pod_mtu is not None else {}
        ipr.link("add", ifname=BRIDGE, kind="bridge", address=mac_for(addr.gateway), **mtu)
        br = node.index(BRIDGE)
        gw_prefix = int(addr.pod_cidr.split("/")[1])
        ipr.addr("add", index=br, address=addr.gateway, prefixlen=gw_prefix)
        ipr.link("set", index=br, state="up")
        self.route_other_nodes(node, addr)

    def route_other_nodes(self, node: NsHandle, addr: NodeAddr) -> None:
        """Each other node's pod subnet via that node's IP on the node network."""
        route_via_nodes(node, self.plan, addr)

    def node_interfaces(self) -> dict[str, str]:
        return {BRIDGE: f"{BRIDGE} (the pod bridge)"}

    def owned_tables(self) -> dict[str, str]:
        return masquerade_tables(self.pod_cidr)

    def add_pod(self, pod: RtnlSocket, node: NsHandle, addr: NodeAddr, pod_ip: str, host_if: str) -> None:
        with this_netns_fd() as pod_fd, node.lock:
            node.rtnl.request(
                # The pair in one message (common.pod_veth): the node end enslaved to the bridge.
                pod_veth(host_if, pod_ip, pod_fd, master=node.index(BRIDGE), mtu=self.pod_mtu),
                # Hairpin mode: a pod reaching itself through a Service is sent back out
                # of the port it came in by (kubelet's hairpin-mode=hairpin-veth).
                rtnl.bridge_port_set(host_index(pod_ip), hairpin=True),
                # Permanent neighbour entries are exempt from the neighbour table's
                # gc_thresh3 limit (Linux >= 4.20), which every namespace on the machine
                # shares (1024 by default): with dynamic ARP, a thousand pods overflow it.
                rtnl.neigh_replace(node.index(BRIDGE), pod_ip, mac_for(pod_ip)),
            )
        # A /32 with the gateway on-link (see pod_side).
        pod.request(*pod_side(POD_ETH0_INDEX, pod_ip, addr.gateway))

    def del_pod(self, node: NsHandle, host_if: str, pod_ip: str) -> None:
        with node.lock:
            try:
                br: int | None = node.index(BRIDGE)
            except LookupError:
                br = None
            # Gone already (a half-made pod, a node that went away) is fine.
            todo = [rtnl.link_del(host_if, missing_ok=True)]
            if br is not None:
                todo.append(rtnl.neigh_del(br, pod_ip, missing_ok=True))
            node.rtnl.request(*todo)
