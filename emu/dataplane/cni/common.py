"""What the pod-network plugins share: MACs from addresses, the masquerade table, a
forwarding node, the pod's side of its veth, routes to other nodes' pod subnets."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from emu.controllers.ipam import AddressPlan, NodeAddr
from emu.dataplane import rtnl
from emu.dataplane.handles import NsHandle, write_sysctl_here
from emu.netfilter import render
from emu.netfilter.ruleset import Chain
from emu.netfilter.transaction import TableDef, replace_table, rule

TABLE = "kemu-cni"
POD_ETH0_INDEX = 2  # lo is 1 in a new namespace
HOST_INDEX_BASE = 1000  # + the last octet of the pod's IP: unique on its node


def host_index(pod_ip: str) -> int:
    """The node-side end of a pod's veth gets this index (asked for, so no lookup follows)."""
    return HOST_INDEX_BASE + int(pod_ip.rsplit(".", 1)[1])


@contextmanager
def this_netns_fd() -> Iterator[int]:
    """An fd of the calling thread's network namespace (the new pod's, in add_pod)."""
    fd = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def pod_veth(
    host_if: str, pod_ip: str, pod_fd: int, *, master: int | None = None, mtu: int | None = None, address: str | None = None
) -> rtnl.Request:
    """A pod's veth pair in one message: the node end `host_if` (up, at host_index, with
    its master, MTU and MAC if given; `mtu` applies to both ends), the pod end eth0 with the pod's MAC created directly
    in the pod namespace — no interface ever passes through the host namespace, and no
    slow move."""
    return rtnl.link_add_veth(
        host_if,
        "eth0",
        index=host_index(pod_ip),
        peer_index=POD_ETH0_INDEX,
        peer_address=mac_for(pod_ip),
        peer_netns_fd=pod_fd,
        up=True,
        master=master,
        mtu=mtu,
        address=address,
    )


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


def masquerade_tables(pod_cidr: str) -> dict[str, str]:
    """A plugin's `owned_tables`: the masquerade table, by "family name"."""
    return {f"ip {TABLE}": masquerade_ruleset(pod_cidr)}


def forwarding_node_here() -> None:
    """A node forwards pod traffic and never redirects it (the calling thread is in it)."""
    write_sysctl_here("net.ipv4.ip_forward", "1")
    # Pods send everything to the gateway (see pod_side); the node must not answer a
    # pod-to-pod packet with an ICMP redirect telling the pod to ARP its neighbour.
    # eth0 (made before this) too: the kernel sends redirects if `all` or the device
    # says so, and a redirect stamps the peer's ICMP rate limiter, so the reject that
    # follows for an externalIP without endpoints (forwarded back out of eth0) would
    # be silently rate-limited (route.c ip_rt_send_redirect; icmp.c xrlim).
    for key in ("all", "default", "eth0"):
        write_sysctl_here(f"net.ipv4.conf.{key}.send_redirects", "0")


def route_via_nodes(node: NsHandle, plan: AddressPlan, addr: NodeAddr) -> None:
    """Each other node's pod subnet via that node's IP (kubenet's and Calico's routes)."""
    for other in plan.nodes:
        if other.name != addr.name:
            node.ipr.route("add", dst=other.pod_cidr, gateway=other.ip)


def pod_side(eth0: int, pod_ip: str, gateway: str) -> tuple[rtnl.Request, ...]:
    """A pod's eth0: its /32, and the gateway on-link with a permanent neighbour entry.

    The pod resolves no neighbour but its gateway, so even pods of the same node talk
    through the node. The kernel's neighbour table is shared by every namespace
    (gc_thresh3, 1024 by default): with a /24 and ARP between pods, 100 pods on 4 nodes
    probing each other lost 14% of their connections here.
    """
    return (
        rtnl.addr_add(eth0, pod_ip, 32),
        rtnl.link_set(eth0, up=True),
        rtnl.neigh_replace(eth0, gateway, mac_for(gateway)),
        rtnl.route_add(f"{gateway}/32", oif=eth0, scope=rtnl.RT_SCOPE_LINK),
        rtnl.route_add("0.0.0.0/0", gateway=gateway, oif=eth0),
    )
