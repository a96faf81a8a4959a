"""The emulated bare-metal load balancer's announcer (MetalLB's L2 mode, simplified).

Each LoadBalancer IP is announced by one node: the address is added (/32) to that node's
eth0, so the node answers ARP for it on the node network, and a gratuitous ARP tells the
external hosts at once when the announcing node changes. Every node's service proxy
handles the IP (as kube-proxy does); the announcing node is just where packets arrive.
"""

from __future__ import annotations

import hashlib
import logging

from emu.dataplane.handles import NsHandle
from emu.dataplane.run import run

log = logging.getLogger(__name__)


def choose_node(ip: str, candidates: list[str]) -> str:
    """A stable pick among candidates (MetalLB hashes node and IP the same way)."""
    return min(candidates, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).hexdigest()) if candidates else ""


class Announcer:
    def __init__(self, nodes: dict[str, NsHandle]) -> None:
        self.nodes = nodes
        self.current: dict[str, str] = {}  # ip → node

    def sync(self, desired: dict[str, str]) -> None:
        for ip, node in list(self.current.items()):
            if desired.get(ip) != node:
                self._withdraw(ip, node)
                del self.current[ip]
        for ip, node in desired.items():
            if node and self.current.get(ip) != node:
                self._announce(ip, node)
                self.current[ip] = node

    def _announce(self, ip: str, node: str) -> None:
        h = self.nodes[node]
        with h.lock:
            h.ipr.addr("add", index=h.index("eth0"), address=ip, prefixlen=32)
        # Unsolicited ARP so neighbours' caches move to this node (as MetalLB does).
        run(["arping", "-U", "-c", "1", "-I", "eth0", ip], netns_name=h.name, check=False, timeout=5)
        log.info("load-balancer IP %s announced by %s", ip, node)

    def _withdraw(self, ip: str, node: str) -> None:
        h = self.nodes.get(node)
        if h is None:
            return
        with h.lock:
            try:
                h.ipr.addr("del", index=h.index("eth0"), address=ip, prefixlen=32)
            except Exception:  # noqa: BLE001 - already gone
                pass
