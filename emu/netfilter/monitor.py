"""Noticing when someone else changes the nftables ruleset of a node (drift), at once.

A socket in each watched namespace joins the nftables notification group (as `nft
monitor` does). After each transaction the kernel sends NEWGEN, naming the thread that
committed it (nf_tables_api.c, nf_tables_fill_gen_info: its pid and command). A
transaction by a thread of ours, or by a command we started (`iptables-restore`, `nft`),
is ours; any other is drift, reported so that kemu's tables on that node are rewritten —
kube-proxy only finds out at its next periodic resync.

Only NEWGEN is let through (a socket filter): the per-object messages of our own large
transactions would cost more to read than the transactions themselves. So a foreign
transaction is not traced to a table; all of ours on the node are rewritten, which is
cheap next to how rarely it happens.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable

from emu.dataplane.netlink_watch import NetlinkWatch, attributes, messages, only_types
from emu.dataplane.run import started_by_us

log = logging.getLogger(__name__)

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN = 15
NFTA_GEN_PROC_PID = 2
_NFPROTO = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}


def parse(data: bytes) -> list[tuple[int, str, dict[int, bytes]]]:
    """Split one datagram into (nftables message type, family, attributes)."""
    return [
        (typ & 0xFF, _NFPROTO.get(body[0], str(body[0])), attributes(body, 4))  # after struct nfgenmsg
        for typ, body in messages(data)
        if typ >> 8 == NFNL_SUBSYS_NFTABLES and len(body) >= 4
    ]


def is_ours(pid: int) -> bool:
    """A thread of this process (libnftables in-process), or a command it started."""
    return os.path.exists(f"/proc/self/task/{pid}") or started_by_us(pid)


class NftMonitor:
    """Reports (namespace name) after a transaction there by anyone but this process."""

    def __init__(self, on_drift: Callable[[str], None]) -> None:
        self._on_drift = on_drift
        self._watch = NetlinkWatch(
            NETLINK_NETFILTER,
            (NFNLGRP_NFTABLES,),
            self._on_data,
            "kemu-nft-monitor",
            only_types((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN),
        )

    def watch(self, name: str, fd: int) -> None:
        self._watch.watch(name, fd)

    def close(self) -> None:
        self._watch.close()

    def _on_data(self, name: str, data: bytes | None) -> None:
        if data is None:
            # Lost notifications: whose they were is unknown, so the tables are rewritten.
            self._on_drift(name)
            return
        for msg, _family, attrs in parse(data):
            if msg != NFT_MSG_NEWGEN:
                continue
            pid = struct.unpack(">I", attrs[NFTA_GEN_PROC_PID])[0] if NFTA_GEN_PROC_PID in attrs else 0
            if not is_ours(pid):
                log.warning("%s: nftables changed by another process (pid %d); rewriting kemu's tables", name, pid)
                self._on_drift(name)
