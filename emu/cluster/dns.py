"""The DNS plane of a running cluster: the records the cluster DNS serves, recomputed from
the store on every sync and handed to the DNS pods' servers (a state file they check every 50 ms; a change returns
only once every running server has loaded it, so a name answers as soon
as `kemu apply` returns), and the node network's own resolver (the data centre's DNS, on
the node network's .1, in the switch namespace) that knows nodes and external hosts.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from emu.cluster import system
from emu.controllers.ipam import AddressPlan
from emu.dataplane.ownership import Record
from emu.dns import records, upstream
from emu.model.objects import ClusterSpec, Container, PodView
from emu.model.services import EndpointSlice, Service, ServiceStatus
from emu.workloads import processes

log = logging.getLogger(__name__)
UPSTREAM_DOMAIN = upstream.DEFAULT_DOMAIN


class DNSPlane:
    def __init__(self, spec: ClusterSpec, plan: AddressPlan, record: Record) -> None:
        self.spec = spec
        self.plan = plan
        self.record = record
        self.dir = os.path.join(record.dir, "dns")
        self.state_file = os.path.join(self.dir, "cluster.state")
        self.ack_dir = os.path.join(self.dir, "acks")
        self.serial = 0
        self._inputs: Any = None
        self.upstream_proc: processes.Process | None = None
        os.makedirs(self.ack_dir, exist_ok=True)

    def manifests(self) -> list[dict[str, Any]]:
        return system.dns_manifests(self.spec, self.state_file, self.ack_dir)

    # --- the node network's resolver ---------------------------------------------------------

    def start_upstream(self, switch_netns: str) -> None:
        """The data centre's resolver: nodes and external hosts by name (and under
        .kemu.internal), NXDOMAIN for anything else; nothing leaves the emulation."""
        hosts = {n.name: n.ip for n in self.plan.nodes} | {h.name: h.ip for h in self.plan.hosts}
        ip = system.upstream_ip(self.spec)
        index = upstream.build_upstream_index(hosts, domain=UPSTREAM_DOMAIN, cidrs=[self.spec.node_cidr], resolver_ip=ip)
        path = os.path.join(self.dir, "upstream.state")
        records.write_state(path, index)
        argv = [sys.executable, "-m", "emu.dns.server", "--state", path, "--bind", ip]
        argv += ["--metrics-port", "0", "--health-port", "0", "--ready-port", "0"]
        log_path = os.path.join(self.record.dir, "logs", "kemu-system_dns-upstream.log")
        self.upstream_proc = processes.start("kemu-system/dns-upstream", Container("resolver"), argv, switch_netns, "", log_path)
        self.record.add_process(self.upstream_proc.ref, "the node network's resolver")

    def stop(self) -> None:
        if self.upstream_proc is not None:
            processes.stop([self.upstream_proc])
            self.upstream_proc = None

    # --- the cluster's records ------------------------------------------------------------------

    def sync(
        self,
        services: dict[str, Service],
        statuses: dict[str, ServiceStatus],
        slices: dict[str, list[EndpointSlice]],
        pods: list[PodView],
        namespaces: list[str],
        servers: list[tuple[int, str]],  # (pid, ack file) of the running DNS servers
    ) -> None:
        """Write the records when they changed; wait until every running server has them."""
        # What the records depend on: Services and their allocations, the endpoints of
        # headless Services (a ClusterIP's records do not change with its endpoints), pods
        # that have a hostname and subdomain, the namespaces. Readiness flips of the pods
        # behind ClusterIPs — most syncs — leave the records alone.
        headless = {k: tuple(v) for k, v in slices.items() if k in services and services[k].headless}
        hostnames = tuple(sorted((p.key, p.ip, p.spec.hostname, p.spec.subdomain) for p in pods if p.spec is not None and p.spec.subdomain))
        inputs = (dict(services), dict(statuses), headless, hostnames, tuple(sorted(namespaces)))
        if inputs == self._inputs:
            return
        self.serial += 1
        index = records.build_index(
            services.values(),
            statuses,
            slices,
            pods,
            namespaces=namespaces,
            zone=self.spec.dns.cluster_domain,
            ttl=self.spec.dns.ttl,
            service_cidr=self.spec.service_cidr,
            pod_cidr=self.spec.pod_cidr,
            dns_ip=system.dns_service_ip(self.spec),
            serial=self.serial,
        )
        records.write_state(self.state_file, index)
        self._inputs = inputs
        # Each server checks the file every 50 ms (no signal: one sent before a new server
        # has set its handler would kill it). Wait for the ones that have loaded before:
        # a server that has not loaded yet starts with these records anyway.
        acks = [ack for _, ack in servers if os.path.exists(ack)]
        late = records.wait_loaded(acks, self.serial, timeout=5.0)
        if late:
            log.warning("DNS servers slow to load the new records: %s", ", ".join(late))
