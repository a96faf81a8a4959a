"""A small, typed rtnetlink client: what wiring a pod needs, without pyroute2's cost.

pyroute2 spends ~0.6 ms of Python per request encoding and decoding its generic message
objects; the kernel's own work for the same request is a few microseconds. Here each
request is a handful of `struct.pack` calls (the layouts of <linux/netlink.h>,
<linux/rtnetlink.h>, <linux/if_link.h>, <linux/neighbour.h>), and several requests go to
the kernel in one datagram: rtnetlink handles the messages of a datagram one after the
other and acknowledges each (NLM_F_ACK) in order (netlink_rcv_skb), so a batch costs one
sendmsg and one ack read per message.

A socket acts in the network namespace it was created in, from any thread: open one
inside each namespace (`RtnlSocket()` while the thread is there, or `RtnlSocket.open_in`).
IPv4 only, as kemu's address plans are.
"""

from __future__ import annotations

import errno as errno_mod
import os
import socket
import struct
from dataclasses import dataclass

from emu.dataplane import netns
from emu.errors import DataplaneError

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
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_PROTINFO = 1, 3, 10, 12
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin mode
IFA_ADDRESS, IFA_LOCAL = 1, 2
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT = 0x80
IFF_UP = 0x1
AF_BRIDGE = 7

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_NDMSG = struct.Struct("=BxxxiHBB")  # ndmsg: family, ifindex, state, flags, type
_ATTR = struct.Struct("=HH")  # nlattr: len, type
_ERR = struct.Struct("=i")

RECV_BUFFER = 65536
# Acks of one datagram wait in the socket's receive queue (~1 KiB of skb each) until read:
# 64 stay far below the default rmem (208 KiB), so none is dropped (ENOBUFS).
MAX_BATCH = 64
TIMEOUT_S = 10.0  # the kernel answers while handling sendmsg; this only guards a bug


class RtnlError(DataplaneError):
    """The kernel refused a request: `errno`, what was asked, and its own words if any."""

    def __init__(self, errno: int, what: str, netns_name: str = "", detail: str = "") -> None:
        self.errno = errno
        self.what = what
        self.netns = netns_name
        self.detail = detail
        where = f" in netns {netns_name}" if netns_name else ""
        why = f"{os.strerror(errno)} (errno {errno}, {errno_mod.errorcode.get(errno, '?')})"
        super().__init__(f"netlink {what}{where}: {why}" + (f": {detail}" if detail else ""))


@dataclass(frozen=True)
class Request:
    """One rtnetlink message (without its header) and what it asks, for errors.
    `ok_errnos`: failures that mean "already so" for this request (not errors)."""

    type: int
    flags: int
    body: bytes
    what: str
    ok_errnos: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    address: str  # MAC, "aa:bb:..."; "" if none
    flags: int
    master: int  # 0: none
    alias: str


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
) -> Request:
    """`ip link add NAME [index I] [master M] [up] type veth peer name PEER [index J]
    [address MAC] [netns FD]`: the peer is created directly in its namespace."""
    peer_attrs = _name(IFLA_IFNAME, peer)
    if peer_address is not None:
        peer_attrs += _attr(IFLA_ADDRESS, _mac(peer_address))
    if peer_netns_fd is not None:
        peer_attrs += _u32(IFLA_NET_NS_FD, peer_netns_fd)
    peer_msg = _IFINFO.pack(socket.AF_UNSPEC, 0, peer_index, 0, 0) + peer_attrs
    info = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg))
    flags, change = _flags_change(up or None)
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change) + _name(IFLA_IFNAME, name)
    if master is not None:
        body += _u32(IFLA_MASTER, master)
    body += _attr(IFLA_LINKINFO, info)
    what = _words(f"link add {name} index {index} type veth peer {peer} index {peer_index}", master is not None and f"master {master}")
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


# --- decoding -------------------------------------------------------------------------------


def _attrs(data: bytes | memoryview, offset: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while offset + 4 <= end:
        n, kind = _ATTR.unpack_from(data, offset)
        if n < 4:
            break
        out[kind & 0x3FFF] = bytes(data[offset + 4 : offset + n])
        offset += (n + 3) & ~3
    return out


def _text(raw: bytes | None) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace") if raw else ""


def _parse_link(data: bytes | memoryview, offset: int, end: int) -> Link:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(data, offset)
    a = _attrs(data, offset + _IFINFO.size, end)
    mac = a.get(IFLA_ADDRESS, b"")
    master = struct.unpack("=I", a[IFLA_MASTER])[0] if IFLA_MASTER in a else 0
    return Link(index, _text(a.get(IFLA_IFNAME)), ":".join(f"{b:02x}" for b in mac), flags, master, _text(a.get(IFLA_IFALIAS)))


# --- the socket -----------------------------------------------------------------------------


class RtnlSocket:
    """A NETLINK_ROUTE socket of the namespace the calling thread is in when it is made.
    Not thread-safe: one request (or batch) at a time (callers hold their handle's lock)."""

    def __init__(self, netns_name: str = "") -> None:
        self.netns = netns_name  # for error messages only
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        except OSError as e:
            raise RtnlError(e.errno or errno_mod.EIO, "open a NETLINK_ROUTE socket", netns_name) from e
        try:
            # Errors carry the kernel's own explanation (extack), without echoing the request.
            self._sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            self._sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            self._sock.settimeout(TIMEOUT_S)
            self._sock.bind((0, 0))
        except BaseException:
            self._sock.close()
            raise
        self._seq = 0
        self._deferred: list[Request] = []
        self._buf = bytearray(RECV_BUFFER)

    @classmethod
    def open_in(cls, fd: int, netns_name: str = "") -> RtnlSocket:
        """A socket of the namespace `fd` (the thread visits it for the call)."""
        netns.set_thread_netns(fd)
        try:
            return cls(netns_name)
        finally:
            netns.go_home()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RtnlSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def defer(self, *requests: Request) -> None:
        """Queue requests to go first in the next `request()` batch."""
        self._deferred.extend(requests)

    def request(self, *requests: Request) -> None:
        """Send the deferred requests and these, in one datagram (up to MAX_BATCH), and
        wait for every ack.

        The kernel handles each message even if an earlier one failed; the first failure
        (in order) not listed in its request's `ok_errnos` is raised as RtnlError."""
        batch = [*self._deferred, *requests]
        self._deferred.clear()
        first: RtnlError | None = None
        for start in range(0, len(batch), MAX_BATCH):
            failure = self._batch(batch[start : start + MAX_BATCH])
            first = first or failure
        if first is not None:
            raise first

    def _batch(self, batch: list[Request]) -> RtnlError | None:
        seq0 = self._seq + 1
        parts = []
        for i, r in enumerate(batch):
            parts.append(_HDR.pack(_HDR.size + len(r.body), r.type, NLM_F_REQUEST | NLM_F_ACK | r.flags, seq0 + i, 0))
            parts.append(r.body)
        self._seq += len(batch)
        self._send(b"".join(parts), batch[0].what)
        failures = self._acks(seq0, batch)
        for i, (err, detail) in sorted(failures.items()):
            if err not in batch[i].ok_errnos:
                return RtnlError(err, batch[i].what, self.netns, detail)
        return None

    def get_link(self, name: str) -> Link | None:
        """`ip link show NAME`; None if there is no such interface."""
        self._seq += 1
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _name(IFLA_IFNAME, name)
        self._send(_HDR.pack(_HDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST, self._seq, 0) + body, f"link show {name}")
        while True:
            n = self._recv(f"link show {name}")
            for kind, seq, off, end, data in _messages(self._buf, n):
                if seq != self._seq:
                    continue
                if kind == RTM_NEWLINK:
                    return _parse_link(data, off, end)
                if kind == NLMSG_ERROR:
                    err, detail = _error(data, off, end)
                    if err == errno_mod.ENODEV:
                        return None
                    raise RtnlError(err, f"link show {name}", self.netns, detail)

    def _send(self, data: bytes, what: str) -> None:
        try:
            self._sock.send(data)
        except OSError as e:
            raise RtnlError(e.errno or errno_mod.EIO, what, self.netns, "sendmsg failed") from e

    def _recv(self, what: str) -> int:
        try:
            return self._sock.recv_into(self._buf)
        except TimeoutError:
            raise RtnlError(errno_mod.ETIMEDOUT, what, self.netns, "no answer from the kernel") from None
        except OSError as e:
            raise RtnlError(e.errno or errno_mod.EIO, what, self.netns, "recv failed") from e

    def _acks(self, seq0: int, batch: list[Request]) -> dict[int, tuple[int, str]]:
        """Read one ack per request; the failures by position in the batch."""
        waiting = len(batch)
        failures: dict[int, tuple[int, str]] = {}
        while waiting:
            n = self._recv(batch[len(batch) - waiting].what)
            for kind, seq, off, end, data in _messages(self._buf, n):
                i = seq - seq0
                if kind != NLMSG_ERROR or not 0 <= i < len(batch):
                    continue  # not ours (nothing else is subscribed; stale replies)
                err, detail = _error(data, off, end)
                if err:
                    failures[i] = (err, detail)
                waiting -= 1
        return failures


def _messages(buf: bytearray, n: int) -> list[tuple[int, int, int, int, memoryview]]:
    """(type, seq, payload offset, end, data) of each message in a datagram."""
    data = memoryview(buf)[:n]
    out = []
    off = 0
    while off + _HDR.size <= n:
        length, kind, _flags, seq, _pid = _HDR.unpack_from(data, off)
        if length < _HDR.size or off + length > n:
            break
        out.append((kind, seq, off + _HDR.size, off + length, data))
        off += (length + 3) & ~3
    return out


def _error(data: memoryview, off: int, end: int) -> tuple[int, str]:
    """(errno, the kernel's message) of an NLMSG_ERROR payload; errno 0 is an ack."""
    (code,) = _ERR.unpack_from(data, off)
    if code == 0:
        return 0, ""
    # nlmsgerr: the error, then the request's header (capped: only the header), then,
    # with NLM_F_ACK_TLVS in the reply's flags, the extended-ack attributes.
    flags = _HDR.unpack_from(data, off - _HDR.size)[2]
    inner_len = _HDR.unpack_from(data, off + 4)[0]
    tlv = off + 4 + (_HDR.size if flags & NLM_F_CAPPED else inner_len)
    detail = _text(_attrs(data, tlv, end).get(NLMSGERR_ATTR_MSG)) if flags & NLM_F_ACK_TLVS else ""
    return -code, detail
