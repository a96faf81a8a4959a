"""The rtnetlink socket: sends batches of requests (emu/dataplane/rtnl.py) and reads the answers.

One datagram carries up to MAX_BATCH requests, each with NLM_F_ACK; the kernel handles
them in order and acknowledges each, so a batch costs one sendmsg and one ack read per
message. Failures come back as RtnlError with the kernel's own words (extended ack),
except those a request lists as meaning "already so". `get_link` is the one query.

A socket acts in the network namespace it was created in, from any thread: open one
inside each namespace (`RtnlSocket()` while the thread is there, or `RtnlSocket.open_in`).
"""

from __future__ import annotations

import errno as errno_mod
import os
import socket
import struct
from dataclasses import dataclass

from emu.dataplane import netns
from emu.dataplane.rtnl import (
    _ATTR,
    _IFINFO,
    IFLA_ADDRESS,
    IFLA_IFALIAS,
    IFLA_IFNAME,
    IFLA_MASTER,
    MAX_BATCH,
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    NLMSGERR_ATTR_MSG,
    RECV_BUFFER,
    RTM_GETLINK,
    RTM_NEWLINK,
    SOL_NETLINK,
    TIMEOUT_S,
    Request,
    _name,
)
from emu.errors import DataplaneError

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_ERR = struct.Struct("=i")


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
class Link:
    index: int
    name: str
    address: str  # MAC, "aa:bb:..."; "" if none
    flags: int
    master: int  # 0: none
    alias: str


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
