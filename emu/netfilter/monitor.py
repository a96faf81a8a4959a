"""Noticing when someone else changes kemu's nftables tables (drift), within milliseconds.

One thread holds a netlink socket in each watched namespace, subscribed to the nftables
notification group (`nft monitor` does the same). The kernel sends one message per
changed object, then NEWGEN for the transaction, naming the process (thread id and
command) that committed it (net/netfilter/nf_tables_api.c, nf_tables_fill_gen_info).
A transaction by a thread of ours, or by a command we started (`iptables-restore`, `nft`),
is ours; any other that touched a table we own is drift, reported to the owner, who
rewrites the table — kube-proxy only finds out at its next periodic resync.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable

from emu.dataplane import netns
from emu.dataplane.run import started_by_us

log = logging.getLogger(__name__)

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN = 15
NFTA_GEN_PROC_PID = 2
NLMSG_ERROR = 2
# Messages about tables, chains, rules, sets and elements: attribute 1 names the table.
_TABLE_MSGS = frozenset(range(0, 15)) | frozenset(range(16, 26))
_NFPROTO = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}

OnDrift = Callable[[str, set[str]], None]  # (namespace name, {"ip kemu-proxy", ...})


def _attrs(data: bytes, off: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= len(data):
        ln, typ = struct.unpack_from("=HH", data, off)
        if ln < 4:
            break
        out.setdefault(typ & 0x3FFF, data[off + 4 : off + ln])
        off += (ln + 3) & ~3
    return out


def parse(data: bytes) -> list[tuple[int, str, dict[int, bytes]]]:
    """Split one datagram into (nftables message type, family, attributes)."""
    out = []
    off = 0
    while off + 16 <= len(data):
        ln, typ, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
        if ln < 16:
            break
        if typ >> 8 == NFNL_SUBSYS_NFTABLES and ln >= 20:
            family = _NFPROTO.get(data[off + 16], str(data[off + 16]))
            out.append((typ & 0xFF, family, _attrs(data[off : off + ln], 20)))
        off += (ln + 3) & ~3
    return out


def is_ours(pid: int) -> bool:
    """A thread of this process (libnftables in-process), or a command it started."""
    return os.path.exists(f"/proc/self/task/{pid}") or started_by_us(pid)


class NftMonitor:
    """Watches namespaces for foreign changes to the tables named in `owned`."""

    def __init__(self, owned: Callable[[str], set[str]], on_drift: OnDrift) -> None:
        self._owned = owned  # namespace → its tables, as "family name"
        self._on_drift = on_drift
        self._sel = selectors.DefaultSelector()
        self._socks: dict[str, socket.socket] = {}
        self._touched: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="kemu-nft-monitor", daemon=True)
        self._thread.start()

    def watch(self, name: str, fd: int) -> None:
        """Start watching the namespace open at `fd` (the socket stays in it)."""
        netns.set_thread_netns(fd)
        try:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        finally:
            netns.go_home()
        try:
            # A full sync of 10,000 Services is a burst of notifications: room for it.
            s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE (root)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((0, 0))
        s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
        s.setblocking(False)
        with self._lock:
            self._socks[name] = s
            self._touched[name] = set()
            self._sel.register(s, selectors.EVENT_READ, name)
        os.write(self._wake_w, b"w")

    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        with self._lock:
            for s in self._socks.values():
                s.close()
            self._socks.clear()
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _loop(self) -> None:
        while not self._stop:
            for key, _ in self._sel.select():
                if key.data is None:
                    os.read(self._wake_r, 64)
                    continue
                self._drain(key.data, key.fileobj)  # type: ignore[arg-type]  # a socket

    def _drain(self, name: str, s: socket.socket) -> None:
        while True:
            try:
                data = s.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    # Notifications were lost (a burst beyond the buffer): we can't say
                    # whose they were; the next foreign change is still seen.
                    log.debug("nft monitor %s: notifications lost", name)
                    self._touched[name].clear()
                    continue
                return  # the socket was closed under us (close())
            for msg, family, attrs in parse(data):
                if msg == NFT_MSG_NEWGEN:
                    touched, self._touched[name] = self._touched[name], set()
                    pid = struct.unpack(">I", attrs[NFTA_GEN_PROC_PID])[0] if NFTA_GEN_PROC_PID in attrs else 0
                    drifted = touched & self._owned(name)
                    if drifted and not is_ours(pid):
                        log.warning("%s: %s changed by another process (pid %d); restoring", name, ", ".join(sorted(drifted)), pid)
                        self._on_drift(name, drifted)
                elif msg in _TABLE_MSGS and 1 in attrs:
                    table = attrs[1].rstrip(b"\0").decode(errors="replace")
                    self._touched[name].add(f"{family} {table}")
