"""Noticing when someone else changes kemu's nftables tables (drift), within milliseconds.

A socket in each watched namespace joins the nftables notification group (as `nft
monitor` does). The kernel sends one message per changed object, then NEWGEN for the
transaction, naming the thread that committed it (nf_tables_api.c,
nf_tables_fill_gen_info: its pid and command). A transaction by a thread of ours, or by
a command we started (`iptables-restore`, `nft`), is ours; any other that touched a
table we own is drift, reported to the owner, who rewrites the table — kube-proxy only
finds out at its next periodic resync.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable

from emu.dataplane.netlink_watch import NetlinkWatch
from emu.dataplane.run import started_by_us

log = logging.getLogger(__name__)

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN = 15
NFTA_GEN_PROC_PID = 2
# Messages about tables, chains, rules, sets, elements, objects, flowtables: attribute 1
# names the table (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, ...).
_TABLE_MSGS = frozenset(range(0, 15)) | frozenset(range(18, 26))
_NFPROTO = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}

OnDrift = Callable[[str, set[str]], None]  # (namespace name, {"ip kemu-proxy", ...})


def _attrs(data: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= end:
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
        ln, typ = struct.unpack_from("=IH", data, off)
        if ln < 16:
            break
        if typ >> 8 == NFNL_SUBSYS_NFTABLES and ln >= 20:
            family = _NFPROTO.get(data[off + 16], str(data[off + 16]))
            out.append((typ & 0xFF, family, _attrs(data, off + 20, off + ln)))
        off += (ln + 3) & ~3
    return out


def is_ours(pid: int) -> bool:
    """A thread of this process (libnftables in-process), or a command it started."""
    return os.path.exists(f"/proc/self/task/{pid}") or started_by_us(pid)


class NftMonitor:
    """Watches namespaces for foreign changes to the tables `owned(namespace)` names."""

    def __init__(self, owned: Callable[[str], set[str]], on_drift: OnDrift) -> None:
        self._owned = owned
        self._on_drift = on_drift
        self._touched: dict[str, set[str]] = {}  # per namespace, since its last NEWGEN
        self._watch = NetlinkWatch(NETLINK_NETFILTER, (NFNLGRP_NFTABLES,), self._on_data, "kemu-nft-monitor")

    def watch(self, name: str, fd: int) -> None:
        self._touched[name] = set()
        self._watch.watch(name, fd)

    def close(self) -> None:
        self._watch.close()

    def _on_data(self, name: str, data: bytes | None) -> None:
        touched = self._touched[name]
        if data is None:
            # Lost notifications (a burst of our own, most likely): whose they were is
            # unknown; forget the half-seen transaction. The next foreign change is seen.
            log.debug("nft monitor %s: notifications lost", name)
            touched.clear()
            return
        for msg, family, attrs in parse(data):
            if msg == NFT_MSG_NEWGEN:
                pid = struct.unpack(">I", attrs[NFTA_GEN_PROC_PID])[0] if NFTA_GEN_PROC_PID in attrs else 0
                drifted = touched & self._owned(name)
                touched.clear()
                if drifted and not is_ours(pid):
                    log.warning("%s: %s changed by another process (pid %d); restoring", name, ", ".join(sorted(drifted)), pid)
                    self._on_drift(name, drifted)
            elif msg in _TABLE_MSGS and 1 in attrs:
                table = attrs[1].rstrip(b"\x00").decode(errors="replace")
                touched.add(f"{family} {table}")
