"""The bridge plugin: a Linux bridge per node holding its pods, routes between nodes.

Like kubenet / the reference `bridge`+`host-local` CNI plugins: each node's pods hang off
`cbr0` (the node's gateway, first address of its /24), each node routes the other nodes'
/24s via their node IPs, and pod traffic to anything outside podCIDR is masqueraded to the
node IP (flannel's and kubenet's `ip-masq` behaviour) while pod-to-pod traffic never is.
"""

from __future__ import annotations

import os
import threading

from emu.controllers.ipam import NodeAddr
from emu.dataplane import rtnl
from emu.dataplane.cni.base import CNIPlugin
from emu.dataplane.handles import NsHandle, write_sysctl_here
from emu.dataplane.rtnl_socket import RtnlSocket
from emu.netfilter import render
from emu.netfilter.ruleset import Chain
from emu.netfilter.transaction import TableDef, replace_table, rule

BRIDGE = "cbr0"
TABLE = "kemu-cni"
POD_ETH0_INDEX = 2  # lo is 1 in a new namespace
HOST_INDEX_BASE = 1000  # + the last octet of the pod's IP: unique on its node


def mac_for(ip: str) -> str:
    """0a:58 + the IPv4 address, as the reference bridge plugin derives pod MACs."""
    return "0a:58:" + ":".join(f"{int(o):02x}" for o in ip.split("."))


def masquerade_table(pod_cidr: str) -> TableDef:
    """Pod traffic leaving the pod network goes out with the node's address."""
    postrouting = Chain(
        "postrouting",
        (rule("ip saddr", pod_cidr, "ip daddr !=", pod_cidr, "masquerade", comment="pod traffic leaving the pod network"),),
        "nat",
        "postrouting",
        100,  # srcnat, as a number (nft 1.0.6)
        "accept",
    )
    return TableDef("ip", TABLE, chains=(postrouting,))


def masquerade_ruleset(pod_cidr: str) -> str:
    """The script that writes the masquerade table, replacing any previous one."""
    return render.script(replace_table(masquerade_table(pod_cidr)))


class BridgeCNI(CNIPlugin):
    name = "bridge"

    def setup_node(self, node: NsHandle, addr: NodeAddr) -> None:
        ipr = node.ipr
        write_sysctl_here("net.ipv4.ip_forward", "1")
        # Bridged (same-node) pod traffic must traverse netfilter for Services and
        # policies (br_netfilter); set it explicitly rather than trusting the default.
        write_sysctl_here("net.bridge.bridge-nf-call-iptables", "1")
        # Pods send everything to the gateway (see add_pod); the node must not answer a
        # pod-to-pod packet with an ICMP redirect telling the pod to ARP its neighbour.
        # eth0 (made before this) too: the kernel sends redirects if `all` or the device
        # says so, and a redirect stamps the peer's ICMP rate limiter, so the reject that
        # follows for an externalIP without endpoints (forwarded back out of eth0) would
        # be silently rate-limited (route.c ip_rt_send_redirect; icmp.c xrlim).
        for key in ("all", "default", "eth0"):
            write_sysctl_here(f"net.ipv4.conf.{key}.send_redirects", "0")
        ipr.link("add", ifname=BRIDGE, kind="bridge", address=mac_for(addr.gateway))
        br = node.index(BRIDGE)
        gw_prefix = int(addr.pod_cidr.split("/")[1])
        ipr.addr("add", index=br, address=addr.gateway, prefixlen=gw_prefix)
        ipr.link("set", index=br, state="up")
        for other in self.plan.nodes:
            if other.name != addr.name:
                ipr.route("add", dst=other.pod_cidr, gateway=other.ip)

    def owned_tables(self) -> dict[str, str]:
        return {f"ip {TABLE}": masquerade_ruleset(self.pod_cidr)}

    def add_pod(self, pod: RtnlSocket, node: NsHandle, addr: NodeAddr, pod_ip: str, host_if: str) -> None:
        mac = mac_for(pod_ip)
        # Both ends get the interface index we ask for (the pod's eth0 is the first device
        # after lo), so no lookup follows.
        host_index = HOST_INDEX_BASE + int(pod_ip.rsplit(".", 1)[1])
        eth0 = POD_ETH0_INDEX
        pod_fd = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            with node.lock:
                br = node.index(BRIDGE)
                node.rtnl.request(
                    # One message makes the pair: the node end enslaved and up, the pod end
                    # (eth0, with its MAC) created directly in the pod namespace — no
                    # interface ever passes through the host namespace, and no slow move.
                    rtnl.link_add_veth(
                        host_if, "eth0", index=host_index, peer_index=eth0, peer_address=mac, peer_netns_fd=pod_fd, master=br, up=True
                    ),
                    # Hairpin mode: a pod reaching itself through a Service is sent back out
                    # of the port it came in by (kubelet's hairpin-mode=hairpin-veth).
                    rtnl.bridge_port_set(host_index, hairpin=True),
                    # Permanent neighbour entries are exempt from the neighbour table's
                    # gc_thresh3 limit (Linux >= 4.20), which every namespace on the machine
                    # shares (1024 by default): with dynamic ARP, a thousand pods overflow it.
                    rtnl.neigh_replace(br, pod_ip, mac),
                )
        finally:
            os.close(pod_fd)
        # A /32 with the gateway on-link: the pod resolves no neighbour but its gateway
        # (a permanent entry), so even pods of the same node talk through the node. The
        # kernel's neighbour table is shared by every namespace (gc_thresh3, 1024 by
        # default): with a /24 and ARP between pods, 100 pods on 4 nodes probing each
        # other lost 14% of their connections here.
        pod.request(
            rtnl.addr_add(eth0, pod_ip, 32),
            rtnl.link_set(eth0, up=True),
            rtnl.neigh_replace(eth0, addr.gateway, mac_for(addr.gateway)),
            rtnl.route_add(f"{addr.gateway}/32", oif=eth0, scope=rtnl.RT_SCOPE_LINK),
            rtnl.route_add("0.0.0.0/0", gateway=addr.gateway, oif=eth0),
        )

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
