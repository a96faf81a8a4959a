"""hostPort: a pod's port published on its node's address, as the CNI `portmap` plugin
does it — DNAT from the node's own addresses (traffic arriving, and the node's own) to
the pod IP and container port, in each node's `table ip kemu-hostport` (one transaction
per change, rewritten whole: it holds a rule per published port)."""

from __future__ import annotations

import functools

from emu.controllers.ipam import AddressPlan
from emu.dataplane.handles import NsHandle
from emu.dataplane.node_sync import NodeSyncer
from emu.model.objects import PodView
from emu.netfilter.kernel import Netfilter, drop_table
from emu.netfilter.render import script
from emu.netfilter.ruleset import Chain, Rule
from emu.netfilter.transaction import TableDef, replace_table, rule

TABLE = "kemu-hostport"


# Before the service proxy's DNAT (-100): a hostPort wins over a NodePort, as portmap's
# chain comes first in the nat table.
_LOCAL = (rule("fib daddr type local jump hostports"),)
_HOOKS = (
    Chain("prerouting", _LOCAL, "nat", "prerouting", -110, "accept"),
    Chain("output", _LOCAL, "nat", "output", -110, "accept"),
)


def table(rules: list[Rule]) -> TableDef:
    return TableDef(
        "ip", TABLE, chains=(*_HOOKS, Chain("hostports", tuple(rules))), comment="hostPort DNAT (the CNI portmap plugin's role)"
    )


def render(rules: list[Rule]) -> str:
    """The script that writes the table, replacing any previous one."""
    return script(replace_table(table(rules)))


def rules_for(node: str, pods: list[PodView]) -> list[Rule]:
    out = []
    for p in sorted(pods, key=lambda p: p.key):
        if p.node != node or p.spec is None or p.spec.host_network or p.terminating:
            continue
        for port in p.spec.served_ports():
            if not port.host_port:
                continue
            proto = port.protocol.lower()
            match = ("ip daddr", port.host_ip) if port.host_ip and port.host_ip != "0.0.0.0" else ()
            out.append(rule(*match, proto, "dport", str(port.host_port), "dnat to", f"{p.ip}:{port.container_port}", comment=p.key))
    return out


class HostPorts:
    def __init__(self, plan: AddressPlan, nodes: dict[str, NsHandle], syncer: NodeSyncer, netfilter: Netfilter) -> None:
        self.plan = plan
        self.syncer = syncer
        self.nodes = nodes
        self.applied: dict[str, list[Rule]] = {}
        # Made now, while the process has few files open: libnftables waits on its socket
        # with select(), which aborts the process for a descriptor above 1023.
        self.nft = {n: netfilter.nft(h.name) for n, h in nodes.items()}
        for n in nodes:
            # A new node holds no hostport table, which is what no hostPorts wants: the
            # first sync writes only if a pod asks for one (not an empty transaction each).
            syncer.mark_synced("hostports", n)

    def sync(self, pods: list[PodView]) -> None:
        for n in self.plan.nodes:
            rules = rules_for(n.name, pods)
            self.syncer.run("hostports", n.name, functools.partial(self._apply, n.name, rules))

    def _apply(self, node: str, rules: list[Rule], full: bool) -> bool:
        if not full and rules == self.applied.get(node, []):
            return False
        if rules:
            self.nft[node].run(render(rules))
        else:
            self.nft[node].run(drop_table("ip", TABLE))
        self.applied[node] = rules
        return True

    def close(self) -> None:
        for ctx in self.nft.values():
            ctx.close()
        self.nft.clear()
