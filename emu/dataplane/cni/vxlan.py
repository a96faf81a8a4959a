"""The vxlan plugin: flannel's VXLAN backend — pods on a node bridge, nodes joined by an overlay.

Within a node it is the bridge plugin (pods on `cbr0`, the node's gateway). Between nodes,
pod traffic is carried in VXLAN over the node network instead of routed on it: each node
has a VXLAN device `flannel.1` (VNI 1, UDP port 8472 — flannel's default, the Linux
kernel's pre-IANA port; 4789 is IANA's) on its eth0, with learning off. As flannel does,
kemu programs every peer itself, so nothing is learnt or flooded:
  - `flannel.1` holds the network address of the node's subnet (10.244.N.0/32) and a MAC
    derived from it;
  - per other node M: a route `10.244.M.0/24 via 10.244.M.0 dev flannel.1 onlink`, a
    permanent neighbour entry 10.244.M.0 → M's VTEP MAC, and an FDB entry VTEP MAC → M's
    node IP (the outer destination).
The encapsulation costs 50 bytes (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14),
so pods, the bridge and the VXLAN device get the node network's MTU minus 50 (1450 for
1500), which keeps inner packets from being fragmented or dropped.
"""

from __future__ import annotations

import ipaddress
import socket

from emu.controllers.ipam import NodeAddr
from emu.dataplane.cni.bridge import BridgeCNI
from emu.dataplane.cni.common import mac_for
from emu.dataplane.handles import NsHandle

DEVICE = "flannel.1"
VNI = 1
PORT = 8472
OVERHEAD = 50  # outer IPv4 + UDP + VXLAN + inner Ethernet headers
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
RTNH_F_ONLINK = 0x04


def vtep_ip(addr: NodeAddr) -> str:
    """The node's address on the overlay: its pod subnet's network address (as flannel)."""
    return str(ipaddress.IPv4Network(addr.pod_cidr).network_address)


class VxlanCNI(BridgeCNI):
    name = "vxlan"

    def setup_node(self, node: NsHandle, addr: NodeAddr) -> None:
        eth0 = node.index("eth0")
        underlay = int(node.ipr.get_links(eth0)[0].get_attr("IFLA_MTU"))
        self.pod_mtu = underlay - OVERHEAD
        super().setup_node(node, addr)

    def node_interfaces(self) -> dict[str, str]:
        return super().node_interfaces() | {DEVICE: f"{DEVICE} (the VXLAN overlay, VNI {VNI}, UDP {PORT})"}

    def route_other_nodes(self, node: NsHandle, addr: NodeAddr) -> None:
        ipr = node.ipr
        ipr.link(
            "add",
            ifname=DEVICE,
            kind="vxlan",
            address=mac_for(vtep_ip(addr)),
            mtu=self.pod_mtu,
            vxlan_id=VNI,
            vxlan_local=addr.ip,
            vxlan_link=node.index("eth0"),
            vxlan_port=PORT,
            vxlan_learning=0,
        )
        dev = node.index(DEVICE)
        ipr.addr("add", index=dev, address=vtep_ip(addr), prefixlen=32)
        ipr.link("set", index=dev, state="up")
        self.repair_node(node, addr)
        for other in self.plan.nodes:
            if other.name != addr.name:
                ipr.route("add", dst=other.pod_cidr, gateway=vtep_ip(other), oif=dev, flags=RTNH_F_ONLINK)

    def repair_node(self, node: NsHandle, addr: NodeAddr) -> None:
        """Each peer's neighbour and FDB entries (replace: idempotent). A downed
        flannel.1 loses its neighbour entries (its permanent FDB entries stay)."""
        dev = node.index(DEVICE)
        for other in self.plan.nodes:
            if other.name == addr.name:
                continue
            peer, peer_mac = vtep_ip(other), mac_for(vtep_ip(other))
            node.ipr.neigh("replace", ifindex=dev, dst=peer, lladdr=peer_mac, state=NUD_PERMANENT)
            node.ipr.fdb(
                "replace", ifindex=dev, lladdr=peer_mac, dst=other.ip, state=NUD_PERMANENT, flags=NTF_SELF, family=socket.AF_BRIDGE
            )
