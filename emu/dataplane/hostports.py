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

TABLE = "kemu-hostport"


def render(rules: list[str]) -> str:
    # Before the service proxy's DNAT (-100): a hostPort wins over a NodePort, as
    # portmap's chain comes first in the nat table.
    body = "\n".join(f"    {r}" for r in rules)
    return (
        f"table ip {TABLE} {{}}\n"
        f"delete table ip {TABLE}\n"
        f"table ip {TABLE} {{\n"
        f'  comment "hostPort DNAT (the CNI portmap plugin\'s role)";\n'
        "  chain prerouting {\n    type nat hook prerouting priority -110; policy accept;\n    fib daddr type local jump hostports\n  }\n"
        "  chain output {\n    type nat hook output priority -110; policy accept;\n    fib daddr type local jump hostports\n  }\n"
        f"  chain hostports {{\n{body}\n  }}\n"
        "}\n"
    )


def rules_for(node: str, pods: list[PodView]) -> list[str]:
    out = []
    for p in sorted(pods, key=lambda p: p.key):
        if p.node != node or p.spec is None or p.spec.host_network or p.terminating:
            continue
        for port in p.spec.served_ports():
            if not port.host_port:
                continue
            proto = port.protocol.lower()
            match = f"ip daddr {port.host_ip} " if port.host_ip and port.host_ip != "0.0.0.0" else ""
            out.append(f'{match}{proto} dport {port.host_port} dnat to {p.ip}:{port.container_port} comment "{p.key}"')
    return out


class HostPorts:
    def __init__(self, plan: AddressPlan, nodes: dict[str, NsHandle], syncer: NodeSyncer, netfilter: Netfilter) -> None:
        self.plan = plan
        self.syncer = syncer
        self.nodes = nodes
        self.applied: dict[str, list[str]] = {}
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

    def _apply(self, node: str, rules: list[str], full: bool) -> bool:
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
