"""A small, typed rtnetlink client: what wiring a pod needs, without pyroute2's cost.

pyroute2 spends ~0.6 ms of Python per request encoding and decoding its generic message
objects; the kernel's own work for the same request is a few microseconds. Here each
request is a handful of `struct.pack` calls (the layouts of <linux/netlink.h>,
<linux/rtnetlink.h>, <linux/if_link.h>, <linux/neighbour.h>), and several requests go to
the kernel in one datagram: rtnetlink handles the messages of a datagram one after the
other and acknowledges each (NLM_F_ACK) in order (netlink_rcv_skb), so a batch costs one
sendmsg and one ack read per message.

This module builds the requests (nothing is sent); emu/dataplane/rtnl_socket.py sends
them, in batches, and reads the answers. IPv4 only, as kemu's address plans are.
"""

from __future__ import annotations

import errno as errno_mod
import socket
import struct
from dataclasses import dataclass

# <linux/netlink.h>
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_CAPPED = 0x100  # in an error reply: the request is not echoed back
NLM_F_ACK_TLVS = 0x200  # in an error reply: extended-ack attributes follow
NLMSG_ERROR = 2
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
NLMSGERR_ATTR_MSG = 1
NLA_F_NESTED = 0x8000

# <linux/rtnetlink.h>
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWNEIGH, RTM_DELNEIGH = 20, 24, 28, 29
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4  # pyroute2's default: what kemu's routes have always carried
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5

# <linux/if_link.h>, <linux/if_addr.h>, <linux/neighbour.h>, <linux/veth.h>, <linux/if_bridge.h>
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_PROTINFO = 1, 3, 4, 10, 12
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_NUM_TX_QUEUES, IFLA_NUM_RX_QUEUES = 31, 32
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin mode
IFA_ADDRESS, IFA_LOCAL = 1, 2
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT = 0x80
IFF_UP = 0x1
AF_BRIDGE = 7

_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_NDMSG = struct.Struct("=BxxxiHBB")  # ndmsg: family, ifindex, state, flags, type
_ATTR = struct.Struct("=HH")  # nlattr: len, type

# The socket's limits (emu/dataplane/rtnl_socket.py).
RECV_BUFFER = 65536
# Acks of one datagram wait in the socket's receive queue (~1 KiB of skb each) until read:
# 64 stay far below the default rmem (208 KiB), so none is dropped (ENOBUFS).
MAX_BATCH = 64
TIMEOUT_S = 10.0  # the kernel answers while handling sendmsg; this only guards a bug


@dataclass(frozen=True)
class Request:
    """One rtnetlink message (without its header) and what it asks, for errors.
    `ok_errnos`: failures that mean "already so" for this request (not errors)."""

    type: int
    flags: int
    body: bytes
    what: str
    ok_errnos: frozenset[int] = frozenset()


# --- encoding -------------------------------------------------------------------------------


def _attr(kind: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return _ATTR.pack(n, kind) + payload + b"\0" * (-n % 4)


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _name(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode() + b"\0")


def _ip(address: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, address)


def _mac(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def _words(*parts: str | bool | None) -> str:
    """What a request asks, in `ip`'s words (the parts that apply)."""
    return " ".join(p for p in parts if isinstance(p, str) and p)


def _flags_change(up: bool | None) -> tuple[int, int]:
    if up is None:
        return 0, 0
    return (IFF_UP if up else 0), IFF_UP


# --- requests (each function builds one message; nothing is sent) --------------------------------


def link_add_veth(
    name: str,
    peer: str,
    *,
    index: int = 0,
    peer_index: int = 0,
    peer_address: str | None = None,
    peer_netns_fd: int | None = None,
    master: int | None = None,
    up: bool = False,
    address: str | None = None,
    mtu: int | None = None,
) -> Request:
    """`ip link add NAME [index I] [address MAC] [mtu M] [master M] [up] type veth peer
    name PEER [index J] [address MAC] [mtu M] [netns FD]`, numtxqueues/numrxqueues 1 on both
    ends: the peer is created directly in
    its namespace; `mtu` applies to both ends."""
    # One TX and one RX queue each, asked for at creation: without them the kernel makes
    # one queue per CPU and then cuts them to one (veth.c veth_init_queues), and that cut
    # waits for an expedited RCU grace period while holding RTNL (netif_set_real_num_tx_queues
    # → synchronize_net), which stalls every other netlink request on the machine:
    # ~0.25 ms per veth, half a second for 1,000 pods. The device is the same either way.
    queues = _u32(IFLA_NUM_TX_QUEUES, 1) + _u32(IFLA_NUM_RX_QUEUES, 1)
    peer_attrs = _name(IFLA_IFNAME, peer) + queues
    if peer_address is not None:
        peer_attrs += _attr(IFLA_ADDRESS, _mac(peer_address))
    if mtu is not None:
        peer_attrs += _u32(IFLA_MTU, mtu)
    if peer_netns_fd is not None:
        peer_attrs += _u32(IFLA_NET_NS_FD, peer_netns_fd)
    peer_msg = _IFINFO.pack(socket.AF_UNSPEC, 0, peer_index, 0, 0) + peer_attrs
    info = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg))
    flags, change = _flags_change(up or None)
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change) + _name(IFLA_IFNAME, name) + queues
    if address is not None:
        body += _attr(IFLA_ADDRESS, _mac(address))
    if mtu is not None:
        body += _u32(IFLA_MTU, mtu)
    if master is not None:
        body += _u32(IFLA_MASTER, master)
    body += _attr(IFLA_LINKINFO, info)
    what = _words(
        f"link add {name} index {index} type veth peer {peer} index {peer_index}",
        master is not None and f"master {master}",
        mtu is not None and f"mtu {mtu}",
    )
    return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, what)


def link_add_bridge(name: str, *, address: str | None = None) -> Request:
    """`ip link add NAME [address MAC] type bridge`."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _name(IFLA_IFNAME, name)
    if address is not None:
        body += _attr(IFLA_ADDRESS, _mac(address))
    body += _attr(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"bridge"))
    return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"link add {name} type bridge")


def link_set(index: int, *, up: bool | None = None, master: int | None = None, alias: str | None = None) -> Request:
    """`ip link set dev INDEX [up|down] [master M] [alias TEXT]`."""
    flags, change = _flags_change(up)
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)
    if master is not None:
        body += _u32(IFLA_MASTER, master)
    if alias is not None:
        body += _attr(IFLA_IFALIAS, alias.encode())  # as iproute2: no terminating NUL
    state = "" if up is None else (" up" if up else " down")
    what = _words(f"link set index {index}{state}", master is not None and f"master {master}", alias is not None and f"alias {alias}")
    return Request(RTM_NEWLINK, 0, body, what)


def link_del(name: str, *, missing_ok: bool = False) -> Request:
    """`ip link del NAME` (by name: no lookup first)."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _name(IFLA_IFNAME, name)
    ok = frozenset({errno_mod.ENODEV}) if missing_ok else frozenset()
    return Request(RTM_DELLINK, 0, body, f"link del {name}", ok)


def bridge_port_set(index: int, *, hairpin: bool) -> Request:
    """`bridge link set dev INDEX hairpin on|off` (kubelet's hairpin-veth mode)."""
    # NLA_F_NESTED is what tells br_setlink this is a nested IFLA_BRPORT_* set and not
    # the old bare port-state byte.
    protinfo = _attr(IFLA_PROTINFO | NLA_F_NESTED, _attr(IFLA_BRPORT_MODE, bytes([1 if hairpin else 0])))
    body = _IFINFO.pack(AF_BRIDGE, 0, index, 0, 0) + protinfo
    return Request(RTM_SETLINK, 0, body, f"bridge link set index {index} hairpin {'on' if hairpin else 'off'}")


def addr_add(index: int, address: str, prefixlen: int) -> Request:
    """`ip addr add ADDRESS/PREFIXLEN dev INDEX`."""
    raw = _ip(address)
    body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index) + _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
    return Request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"addr add {address}/{prefixlen} dev index {index}")


def route_add(
    dst: str, *, gateway: str | None = None, oif: int | None = None, scope: int = RT_SCOPE_UNIVERSE, proto: int = RTPROT_STATIC
) -> Request:
    """`ip route add DST [via GATEWAY] [dev OIF] [scope S] proto static` in the main
    table; DST is "a.b.c.d/len" ("0.0.0.0/0": the default route)."""
    net, _, plen = dst.partition("/")
    dst_len = int(plen) if plen else 32
    body = _RTMSG.pack(socket.AF_INET, dst_len, 0, 0, RT_TABLE_MAIN, proto, scope, RTN_UNICAST, 0)
    if dst_len:
        body += _attr(RTA_DST, _ip(net))
    if gateway is not None:
        body += _attr(RTA_GATEWAY, _ip(gateway))
    if oif is not None:
        body += _u32(RTA_OIF, oif)
    what = _words(
        f"route add {dst}",
        gateway and f"via {gateway}",
        oif is not None and f"dev index {oif}",
        scope != RT_SCOPE_UNIVERSE and f"scope {scope}",
    )
    return Request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, what)


def neigh_replace(ifindex: int, dst: str, lladdr: str, *, state: int = NUD_PERMANENT) -> Request:
    """`ip neigh replace DST lladdr MAC dev IFINDEX nud permanent`."""
    body = _NDMSG.pack(socket.AF_INET, ifindex, state, 0, 0) + _attr(NDA_DST, _ip(dst)) + _attr(NDA_LLADDR, _mac(lladdr))
    return Request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body, f"neigh replace {dst} lladdr {lladdr} dev index {ifindex}")


def neigh_del(ifindex: int, dst: str, *, missing_ok: bool = False) -> Request:
    """`ip neigh del DST dev IFINDEX`."""
    body = _NDMSG.pack(socket.AF_INET, ifindex, 0, 0, 0) + _attr(NDA_DST, _ip(dst))
    # ENOENT: no such entry; ENODEV: the device went with its namespace.
    ok = frozenset({errno_mod.ENOENT, errno_mod.ENODEV}) if missing_ok else frozenset()
    return Request(RTM_DELNEIGH, 0, body, f"neigh del {dst} dev index {ifindex}", ok)
