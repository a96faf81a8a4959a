"""One node's service proxy: applies plans to the node's namespace, one transaction per
sync; nftables rewrites only what changed, with a full resync after any failure."""

from __future__ import annotations

import logging

from emu.netfilter.kernel import Netfilter
from emu.proxy import iptables_render, nft_render
from emu.proxy.plan import PlanChange, PortChanges, ProxyPlan, ServicePortPlan, diff_plans

log = logging.getLogger(__name__)


class Proxier:
    def __init__(self, netns_name: str, backend: str, netfilter: Netfilter | None = None) -> None:
        self.netns = netns_name
        self.backend = backend
        self.netfilter = netfilter or Netfilter()
        self.nft = self.netfilter.nft(netns_name) if backend == "nftables" else None
        self.plan: ProxyPlan | None = None
        self._state: nft_render.NftState | None = None
        self._iptables_text = ""
        self.syncs = 0

    def sync(self, plan: ProxyPlan, full: bool = False, change: PlanChange | None = None) -> bool:
        """Bring the node's rules to `plan`; True if anything was written. `full` rewrites
        everything whatever the kernel is thought to hold (after a failure or drift).
        `change` (PlanCompiler's) names the service ports that differ from the plan it
        followed: when that is the plan applied here, only those are looked at."""
        if full:
            self._state = None
            self._iptables_text = ""
        elif plan is self.plan or plan == self.plan:  # unchanged ports are shared: identity decides fast
            return False
        old = self.plan
        ports = change.changed if change is not None and old is not None and change.previous is old else None
        if ports is None and old is not None:
            ports = diff_plans(old, plan)
        if self.backend == "nftables":
            self._sync_nft(plan, ports)
        else:
            text = iptables_render.render(plan)
            if text != self._iptables_text:
                self.netfilter.iptables_restore(self.netns, text)
                self._iptables_text = text
        self.plan = plan
        self.syncs += 1
        if ports is not None:
            flush_stale_udp(self.netfilter, self.netns, ports)
        return True

    def _sync_nft(self, plan: ProxyPlan, ports: PortChanges | None) -> None:
        old = self.plan
        if self._state is None or old is None or ports is None or old.node_ips != plan.node_ips or old.pod_cidr != plan.pod_cidr:
            self._full_nft(plan)
            return
        changed = {sid: None if sp is None else nft_render.render_service(plan, sp) for sid, (_, sp) in ports.items()}
        script = self._state.update(changed)
        if script:
            # A failure propagates to the node syncer, which resyncs in full (needFullSync).
            assert self.nft is not None
            self.nft.run(script)

    def _full_nft(self, plan: ProxyPlan) -> None:
        self._state = None
        renders = nft_render.render_all(plan)
        assert self.nft is not None
        self.nft.run(nft_render.render_full(plan, renders))
        self._state = nft_render.NftState(plan, renders)

    def close(self) -> None:
        if self.nft is not None:
            self.nft.close()


def _udp_targets(sp: ServicePortPlan) -> set[tuple[str, int]]:
    return {(b.ip, b.port) for b in (*sp.cluster_endpoints, *sp.external_endpoints)}


def flush_stale_udp(netfilter: Netfilter, netns_name: str, ports: PortChanges) -> None:
    """UDP conntrack entries outlive endpoint changes: clients would keep sending to a gone
    endpoint, or to a Service that had none (kube-proxy's conntrack cleanup). `ports`: the
    service ports that changed since the last sync (a node's first sync has none to clean:
    its namespace is new, its conntrack table empty)."""
    for prev, sp in ports.values():
        if sp is None:
            assert prev is not None
            if prev.protocol == "udp":
                for vip in [prev.cluster_ip, *prev.lb_ips, *prev.external_ips]:
                    netfilter.conntrack_delete(netns_name, ["-p", "udp", "--orig-dst", vip, "--orig-port-dst", str(prev.port)])
            continue
        if sp.protocol != "udp":
            continue
        vips = [sp.cluster_ip, *sp.lb_ips, *sp.external_ips]
        if prev is None or (not prev.has_endpoints and sp.has_endpoints):
            for vip in vips:
                netfilter.conntrack_delete(netns_name, ["-p", "udp", "--orig-dst", vip, "--orig-port-dst", str(sp.port)])
            if sp.node_port:
                netfilter.conntrack_delete(netns_name, ["-p", "udp", "--orig-port-dst", str(sp.node_port)])
        if prev is not None:
            for ip, _port in _udp_targets(prev) - _udp_targets(sp):
                for vip in vips:
                    netfilter.conntrack_delete(netns_name, ["-p", "udp", "--orig-dst", vip, "--reply-src", ip])
                if sp.node_port:
                    netfilter.conntrack_delete(netns_name, ["-p", "udp", "--orig-port-dst", str(sp.node_port), "--reply-src", ip])
