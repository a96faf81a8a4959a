"""One thread that listens to netlink notifications in many namespaces at once.

A netlink socket belongs to the namespace it was made in, whichever thread reads it; so
one socket per watched namespace, made there and read here, each handed to a parser.
Used to notice changes to what kemu owns (emu/netfilter/monitor.py: nftables tables;
emu/dataplane/route_watch.py: routes and links).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable

from emu.dataplane import netns

log = logging.getLogger(__name__)

SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
SO_RCVBUFFORCE = 33
SO_ATTACH_FILTER = 26


def messages(data: bytes) -> list[tuple[int, bytes]]:
    """Split a netlink datagram into (message type, payload after the header)."""
    out = []
    off = 0
    while off + 16 <= len(data):
        ln, typ = struct.unpack_from("=IH", data, off)
        if ln < 16:
            break
        out.append((typ, data[off + 16 : off + ln]))
        off += (ln + 3) & ~3
    return out


def attributes(payload: bytes, off: int) -> dict[int, bytes]:
    """The attributes of a message from `off` (past its fixed header): type → value."""
    out: dict[int, bytes] = {}
    while off + 4 <= len(payload):
        ln, typ = struct.unpack_from("=HH", payload, off)
        if ln < 4:
            break
        out.setdefault(typ & 0x3FFF, payload[off + 4 : off + ln])  # without the NESTED/BYTEORDER flags
        off += (ln + 3) & ~3
    return out


def _be(value: int, fmt: str) -> int:
    """A host-order field as classic BPF loads it (absolute loads are big-endian)."""
    return int.from_bytes(struct.pack(fmt, value), "big")


def only_types(*types: int) -> bytes:
    """A classic BPF socket filter passing only netlink messages of these types: the
    kernel drops the rest before they are queued (netlink runs sk_filter on broadcasts)."""
    prog = [(0x28, 0, 0, 4)]  # ldh [4]: nlmsg_type, loaded in network byte order
    for i, t in enumerate(types):
        prog.append((0x15, len(types) - i, 0, _be(t, "=H")))  # jeq → accept
    prog += [(0x06, 0, 0, 0), (0x06, 0, 0, 0xFFFFFFFF)]  # drop; accept
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)


def types_and_indexes(always: tuple[int, ...], indexed: tuple[int, ...], indexes: tuple[int, ...]) -> bytes:
    """A socket filter passing messages of the `always` types, and messages of the
    `indexed` types (link messages: struct ifinfomsg) about one of `indexes`."""
    n_idx = len(indexes)
    n_types = len(always) + len(indexed)
    if n_types + n_idx > 250:
        raise ValueError("too many types and indexes for one filter (jump offsets are 8 bits)")
    # ldh [4]; jeq per `always` type → accept; jeq per `indexed` type → ld [20]; ja → drop;
    # ld [20]; jeq per index → accept; drop; accept. Offsets count from the next instruction.
    prog = [(0x28, 0, 0, 4)]  # ldh [4]: nlmsg_type
    for i, t in enumerate(always):
        prog.append((0x15, n_types - i + 1 + n_idx + 1, 0, _be(t, "=H")))  # → accept
    for j, t in enumerate(indexed):
        prog.append((0x15, len(indexed) - j, 0, _be(t, "=H")))  # → ld [20]
    prog.append((0x05, 0, 0, n_idx + 1))  # ja → drop
    prog.append((0x20, 0, 0, 16 + 4))  # ld [20]: ifi_index, after nlmsghdr and family/type
    for k, idx in enumerate(indexes):
        prog.append((0x15, n_idx - k, 0, _be(idx, "=i")))  # → accept
    prog += [(0x06, 0, 0, 0), (0x06, 0, 0, 0xFFFFFFFF)]  # drop; accept
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)


def _attach(s: socket.socket, prog: bytes) -> None:
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HL", len(prog) // 8, ctypes.addressof(buf))  # struct sock_fprog
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# (namespace name, one datagram, or None when notifications were lost)
OnData = Callable[[str, bytes | None], None]


class NetlinkWatch:
    def __init__(self, protocol: int, groups: tuple[int, ...], on_data: OnData, name: str, bpf: bytes | None = None) -> None:
        self._protocol = protocol
        self._bpf = bpf
        self._groups = groups
        self._on_data = on_data
        self._sel = selectors.DefaultSelector()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def watch(self, name: str, fd: int, bpf: bytes | None = None) -> None:
        """Start watching the namespace open at `fd` (`bpf`: this socket's own filter)."""
        netns.set_thread_netns(fd)
        try:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, self._protocol)
        finally:
            netns.go_home()
        try:
            # A full sync of 10,000 Services is a burst of notifications: room for it.
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)  # root only
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        prog = bpf if bpf is not None else self._bpf
        if prog is not None:
            _attach(s, prog)
        s.bind((0, 0))
        for g in self._groups:
            s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, g)
        s.setblocking(False)
        with self._lock:
            self._socks.append(s)
            self._sel.register(s, selectors.EVENT_READ, name)
        os.write(self._wake_w, b"w")  # the loop's select() sees the new socket

    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        with self._lock:
            for s in self._socks:
                s.close()
            self._socks.clear()
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _loop(self) -> None:
        while not self._stop:
            # register() from another thread while select() waits is safe with epoll.
            for key, _ in self._sel.select():
                if key.data is None:
                    os.read(self._wake_r, 64)
                elif isinstance(key.fileobj, socket.socket):
                    self._drain(key.data, key.fileobj)

    def _drain(self, name: str, s: socket.socket) -> None:
        while True:
            try:
                data = s.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    return  # closed under us (close())
                data = None  # a burst beyond the buffer: some notifications were lost
            try:
                self._on_data(name, data)
            except Exception:  # a parser's bug must not end the watch
                log.exception("netlink watch %s: handler failed", name)
