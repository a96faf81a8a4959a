"""The service plane of a running cluster: EndpointSlices, each node's proxy, the
load-balancer announcements and the health-check servers, recomputed from the store on
every change (the same path at start-up and after apply, delete, label, readiness)."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from emu.controllers.changelog import LoggedDict
from emu.controllers.endpointslices import ZONE_LABEL, SliceCache
from emu.controllers.ipam import AddressPlan
from emu.dataplane import netns
from emu.dataplane.handles import NsHandle, write_sysctl_here
from emu.dataplane.lb import Announcer, choose_node
from emu.dataplane.node_sync import NodeSyncer
from emu.model.objects import PodView
from emu.model.services import EndpointSlice, Service
from emu.netfilter.kernel import Netfilter
from emu.proxy.plan import PlanCompiler, ProxyPlan, backends_for, usable
from emu.proxy.proxier import Proxier
from emu.workloads import healthcheck

log = logging.getLogger(__name__)


class ServicePlane:
    def __init__(
        self,
        addr: AddressPlan,
        nodes: dict[str, NsHandle],
        backend: str,
        pod_cidr: str,
        service_cidr: str,
        loop: asyncio.AbstractEventLoop,
        syncer: NodeSyncer,
        netfilter: Netfilter,
    ) -> None:
        self.addr = addr
        self.syncer = syncer
        self.nodes = nodes
        self.pod_cidr = pod_cidr
        self.loop = loop
        self.proxiers = {n: Proxier(h.name, backend, netfilter) for n, h in nodes.items()}
        self.announcer = Announcer(nodes)
        self.slices: LoggedDict[str, list[EndpointSlice]] = LoggedDict()  # kept: readers follow its change log
        self._slice_cache = SliceCache()
        self._manual: dict[str, list[EndpointSlice]] = {}  # selector-less Services' slices, as last given
        self._special: dict[str, Service] = {}  # LoadBalancers and Services with externalIPs
        self.plans: dict[str, ProxyPlan] = {}
        self.lb_nodes: dict[str, str] = {}  # LoadBalancer IP → the node announcing it
        self.compiler = PlanCompiler()  # keeps each Service's compiled ports between syncs
        self.local_counts: dict[tuple[str, str], int] = {}
        self._health: dict[tuple[str, str, int], Any] = {}  # (node, svc, port) → server
        self._external_routes: set[str] = set()
        for h in nodes.values():
            # Traffic to a ClusterIP that has no endpoints must reach the filter hooks to
            # be rejected; a node without a default route needs a route for the range.
            with h.lock:
                h.ipr.route("add", dst=service_cidr, oif=h.index("eth0"))
            if backend == "iptables":
                # kube-proxy's iptables mode serves NodePorts on 127.0.0.1 (its default
                # localhostNodePorts) and sets this so that DNAT away from loopback routes.
                with netns.entered(h.name):
                    write_sysctl_here("net.ipv4.conf.all.route_localnet", "1")

    def sync(self, services: dict[str, Service], statuses: dict[str, Any], manual: dict[str, EndpointSlice], pods: list[PodView]) -> None:
        zones = {n.name: n.labels.get(ZONE_LABEL, "") for n in self.addr.nodes}
        slices = self._slices(services, manual, pods, zones)
        self.slices = slices
        self.compiler.update(services, statuses, slices)  # once: what changed since the last sync
        for n in self.addr.nodes:
            change = self.compiler.plan(n.name, (n.ip,), self.pod_cidr)
            self.plans[n.name] = change.plan
            self.syncer.run("proxy", n.name, functools.partial(self.proxiers[n.name].sync, change.plan, change=change))
        # Only LoadBalancers and Services with externalIPs matter below: kept aside as
        # Services change, so that a sync does not walk every Service.
        for key in self._slice_cache.services_changed:
            svc = services.get(key)
            if svc is not None and (svc.type == "LoadBalancer" or svc.external_ips):
                self._special[key] = svc
            else:
                self._special.pop(key, None)
        special = list(self._special.values())
        self._sync_lb(special, statuses, slices)
        self._sync_health(special, statuses, slices)
        self._sync_external_routes(special, statuses)

    def _slices(
        self, services: dict[str, Service], manual: dict[str, EndpointSlice], pods: list[PodView], zones: dict[str, str]
    ) -> LoggedDict[str, list[EndpointSlice]]:
        """Every Service's slices: the controller's (cached, see SliceCache) and, for
        selector-less Services, the user's own. One dict, changed in place where lists
        changed (unchanged lists stay the same objects)."""
        redo = self._slice_cache.update(services, pods, zones)
        own: dict[str, list[EndpointSlice]] = {}
        for sl in manual.values():
            key = f"{sl.meta.namespace}/{sl.service_name}"
            if key in services and services[key].selector is None:
                own.setdefault(key, []).append(sl)
        for key, lst in own.items():
            before = self._manual.get(key)
            if before == lst:
                own[key] = before
        redo |= {k for k in own.keys() | self._manual.keys() if own.get(k) is not self._manual.get(k)}
        self._manual = own
        cached = self._slice_cache.slices
        for key in redo:  # as {**cached, **own}, in place: only the keys that changed
            got = own.get(key, cached.get(key))
            if got is None:
                self.slices.pop(key, None)
            else:
                self.slices[key] = got
        return self.slices

    def _sync_external_routes(self, services: list[Service], statuses: dict[str, Any]) -> None:
        """An on-link route per externalIP on every node, as for the Service range: a
        packet for one that the proxy does not DNAT (no endpoints) must still be routable
        to reach the forward hook and be rejected there, as kube-proxy does it; and the
        node's own traffic to an externalIP needs a route at all (nodes here have no
        default route)."""
        wanted = {
            ip
            for s in services
            if s.type != "ExternalName" and not s.headless and (st := statuses.get(s.key)) is not None and st.cluster_ip
            for ip in s.external_ips
        }
        if wanted == self._external_routes:
            return
        for h in self.nodes.values():
            with h.lock:
                for ip in sorted(wanted - self._external_routes):
                    h.ipr.route("replace", dst=f"{ip}/32", oif=h.index("eth0"))
                for ip in sorted(self._external_routes - wanted):
                    try:
                        h.ipr.route("del", dst=f"{ip}/32", oif=h.index("eth0"))
                    except NetlinkError:
                        pass  # already gone
        self._external_routes = wanted

    def _local_ready(self, svc: Service, node: str, slices: dict[str, list[EndpointSlice]]) -> int:
        eps = {
            (b.ip, b.port) for i in range(len(svc.ports)) for b in usable(backends_for(svc, i, slices.get(svc.key, []))) if b.node == node
        }
        return len(eps)

    def _sync_lb(self, services: list[Service], statuses: dict[str, Any], slices: dict[str, list[EndpointSlice]]) -> None:
        desired: dict[str, str] = {}
        for svc in services:
            st = statuses.get(svc.key)
            if svc.type != "LoadBalancer" or st is None or not st.lb_ip:
                continue
            names = [n.name for n in self.addr.nodes]
            if svc.external_traffic_policy == "Local":
                # Only nodes with local endpoints may announce (MetalLB's rule for Local).
                names = [n for n in names if self._local_ready(svc, n, slices)]
            desired[st.lb_ip] = choose_node(st.lb_ip, names)
        self.announcer.sync(desired)
        self.lb_nodes = desired

    def _sync_health(self, services: list[Service], statuses: dict[str, Any], slices: dict[str, list[EndpointSlice]]) -> None:
        wanted: set[tuple[str, str, int]] = set()
        for svc in services:
            st = statuses.get(svc.key)
            if st is None or not st.health_check_node_port or svc.type != "LoadBalancer" or svc.external_traffic_policy != "Local":
                continue
            for n in self.addr.nodes:
                self.local_counts[(n.name, svc.key)] = self._local_ready(svc, n.name, slices)
                wanted.add((n.name, svc.key, st.health_check_node_port))
        for key in set(self._health) - wanted:
            srv = self._health.pop(key)
            self.loop.call_soon_threadsafe(srv.close)
        for key in sorted(wanted - set(self._health)):
            node, svc_key, port = key
            sock = healthcheck.open_listener(self.nodes[node].fd, port)
            ns, name = svc_key.split("/", 1)
            fut = asyncio.run_coroutine_threadsafe(
                healthcheck.serve(self.loop, sock, ns, name, functools.partial(self._local_count, (node, svc_key))), self.loop
            )
            self._health[key] = fut.result(10)

    def _local_count(self, key: tuple[str, str]) -> int:
        return self.local_counts.get(key, 0)

    def close(self) -> None:
        for p in self.proxiers.values():
            p.close()
        for srv in self._health.values():
            self.loop.call_soon_threadsafe(srv.close)
        self._health.clear()
