"""The policy plane of a running cluster: compiles NetworkPolicies for every node and
applies each node's table in one transaction when it changed; the oracle's view."""

from __future__ import annotations

import functools
import logging

from emu.controllers.ipam import AddressPlan
from emu.dataplane.handles import NsHandle
from emu.dataplane.node_sync import NodeSyncer
from emu.model.objects import Namespace, PodView
from emu.model.policy import NetworkPolicy
from emu.netfilter.kernel import Netfilter
from emu.policy.compile import NodePolicyInput, NodeRuleset, update_text
from emu.policy.incremental import PolicyCompiler
from emu.policy.oracle import View

log = logging.getLogger(__name__)


def make_view(addr: AddressPlan, namespaces: dict[str, Namespace], policies: dict[str, NetworkPolicy]) -> View:
    return View(
        {n: dict(ns.meta.labels) for n, ns in namespaces.items()},
        tuple(policies.values()),
        {n.name: frozenset({n.ip, n.gateway}) for n in addr.nodes},
    )


class PolicyPlane:
    def __init__(self, addr: AddressPlan, nodes: dict[str, NsHandle], enabled: bool, syncer: NodeSyncer, netfilter: Netfilter) -> None:
        self.addr = addr
        self.syncer = syncer
        self.nodes = nodes
        self.enabled = enabled
        self.applied: dict[str, NodeRuleset] = {}
        self.nft = {n: netfilter.nft(h.name) for n, h in nodes.items()} if enabled else {}
        self.compiler = PolicyCompiler()  # keeps each policy's compiled rules between syncs
        self.syncs = 0

    def sync(self, view: View, pods: list[PodView]) -> None:
        if not self.enabled:
            return  # the pod network implements no policy: objects are accepted, no effect
        everyone = tuple(pods)  # one tuple for every node: the compiler diffs it once
        for n in self.addr.nodes:
            new = self.compiler.compile(view, NodePolicyInput(n.name, (n.ip, n.gateway), everyone))
            self.syncer.run("policy", n.name, functools.partial(self._apply, n.name, new))

    def _apply(self, node: str, new: NodeRuleset, full: bool) -> bool:
        old = None if full else self.applied.get(node)
        if old is not None and (old is new or old.text == new.text):
            return False
        # Most changes (labels, pods) only move set elements: flush and refill those
        # sets; anything else rewrites the table. Either way, one transaction.
        # A failure propagates to the node syncer, which rewrites the table next time.
        script = update_text(old, new) if old is not None else None
        self.nft[node].run(script or new.text)
        self.applied[node] = new
        self.syncs += 1
        return True

    def close(self) -> None:
        for ctx in self.nft.values():
            ctx.close()
        self.nft.clear()
