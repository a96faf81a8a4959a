"""Drift repair: what kemu owns on a node, changed by someone else, is put back at once.
It also writes the pod network's nftables tables first, when the nodes are made.

The nftables monitor (emu/netfilter/monitor.py) reports a foreign transaction in a node's
namespace; the node syncer then rewrites, in full, every plane that keeps tables there,
on the pass its wake-up starts right away. The pod network's own NAT table, and the
node's routes and links (emu/dataplane/route_watch.py), have no plane that syncs them:
they are restored here.
"""

from __future__ import annotations

import functools
import logging

from emu.dataplane import route_watch
from emu.dataplane.cni.base import CNIPlugin
from emu.dataplane.handles import NsHandle
from emu.dataplane.node_sync import NodeSyncer
from emu.netfilter.kernel import Netfilter
from emu.netfilter.monitor import NftMonitor

log = logging.getLogger(__name__)

CNI_PLANE = "cni"
NETWORK_PLANE = "network"  # the node's routes and links


class DriftRepair:
    def __init__(self, nodes: dict[str, NsHandle], cni: CNIPlugin, syncer: NodeSyncer, policy_enabled: bool, netfilter: Netfilter) -> None:
        self.nodes = nodes
        self.syncer = syncer
        self.cni = cni
        self.cni_tables = cni.owned_tables()
        # The planes that keep nftables tables on each node (iptables-nft's too).
        self.planes = ["proxy", "hostports", CNI_PLANE] + (["policy"] if policy_enabled else [])
        self._node_of = {h.name: n for n, h in nodes.items()}
        # Made now, with few files open (libnftables' select() aborts above fd 1023).
        self._nft = {n: netfilter.nft(h.name) for n, h in nodes.items()}
        self._want = {n: route_watch.snapshot(h) for n, h in nodes.items()}
        for node in nodes:
            # The plugin's tables (its masquerade), written here before any pod exists,
            # in-process (an `nft` per node was a fifth of a 10-node network's build).
            self._write_cni(node, full=True)
            syncer.mark_synced(CNI_PLANE, node)
            syncer.mark_synced(NETWORK_PLANE, node)
        self.monitor = NftMonitor(self._drifted)
        self.routes = route_watch.RouteWatch(self._routes_changed)
        for n, h in nodes.items():
            self.monitor.watch(h.name, h.fd)
            self.routes.watch(h, self._want[n])

    def _routes_changed(self, netns_name: str) -> None:
        node = self._node_of.get(netns_name)
        if node is not None:
            log.warning("%s: a route or link of kemu's changed; restoring", netns_name)
            self.syncer.mark_full(NETWORK_PLANE, node)

    def _drifted(self, netns_name: str) -> None:
        node = self._node_of.get(netns_name)
        if node is None:
            return
        for plane in self.planes:
            self.syncer.mark_full(plane, node)

    def sync(self) -> None:
        """Restore the pod network's tables and the nodes' routes and links where they
        drifted (a no-op otherwise)."""
        for node, h in self.nodes.items():
            self.syncer.run(CNI_PLANE, node, functools.partial(self._write_cni, node))
            self.syncer.run(NETWORK_PLANE, node, functools.partial(self._restore_network, node, h))

    def _restore_network(self, node: str, h: NsHandle, full: bool) -> bool:
        if not full:
            return False
        changed = route_watch.restore(h, self._want[node])
        # What went with a link that was downed (an overlay's neighbour entries), again.
        with h.lock:
            self.cni.repair_node(h, self.cni.plan.node(node))
        return changed

    def _write_cni(self, node: str, full: bool) -> bool:
        if not full or not self.cni_tables:
            return False
        self._nft[node].run("".join(self.cni_tables.values()))
        return True

    def close(self) -> None:
        self.monitor.close()
        self.routes.close()
        for ctx in self._nft.values():
            ctx.close()
        self._nft.clear()
