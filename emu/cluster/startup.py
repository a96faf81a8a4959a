"""What `Cluster.up` sets up besides the planes: the name's claim, the cluster DNS, kemu's own objects.

A mixin of emu.cluster.runtime.Cluster (its methods run on the Cluster, under its rules
for threads and locks): claiming the cluster's name (refusing a live one, cleaning a
crashed one's leftovers), starting the node network's resolver and every member's /etc
files, and the system objects applied with the topology's (the `kubernetes` Service,
the cluster DNS's own objects, the default GatewayClass and IngressClass), built directly
rather than checked as users' files are.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from emu.cluster import system
from emu.cluster.dns import UPSTREAM_DOMAIN, DNSPlane
from emu.cluster.gateways import GATEWAY_CLASS, INGRESS_CLASS
from emu.cluster.kubelet import Kubelet
from emu.cluster.pod_state import PodState
from emu.cluster.store import Store
from emu.config import registry
from emu.config.kinds import build_unstructured, typed_kinds
from emu.controllers import pod_dns
from emu.controllers.ipam import AddressPlan
from emu.dataplane import etcfiles, netns
from emu.dataplane.cleanup import clean_cluster
from emu.dataplane.network import Network
from emu.dataplane.ownership import ProcRef, Record
from emu.errors import KemuError
from emu.model.objects import ClusterSpec, Unstructured, Workload

log = logging.getLogger("emu.cluster.runtime")  # the runtime's, as before the split: the daemon log names it


class ClusterStartup:
    # The Cluster's state these methods use (set in Cluster.__init__ and up).
    name: str
    spec: ClusterSpec
    plan: AddressPlan
    store: Store
    record: Record
    network: Network
    kubelet: Kubelet
    pods: dict[str, PodState]
    log_dir: str
    dns: DNSPlane | None

    def _claim(self) -> None:
        """Take the cluster's name: refuse a live one, clean a crashed one's leftovers."""
        try:
            old = Record.load(self.name)
        except FileNotFoundError:
            old = None
        if old is not None:
            d = old.daemon()
            if d is not None and d.alive() and d.pid != os.getpid():
                raise KemuError(f"cluster {self.name!r} is already running (pid {d.pid}); `kemu down {self.name}` first")
            log.warning("removing leftovers of an earlier run of cluster %s", self.name)
            clean_cluster(old)
        self.record.data["daemon"] = dataclasses.asdict(ProcRef.of(os.getpid()) or ProcRef(os.getpid(), 0))
        self.record.create()
        os.makedirs(self.log_dir, exist_ok=True)

    def _start_dns(self) -> list[dict[str, Any]]:
        """The node network's resolver, every node's and host's /etc files, and the cluster
        DNS's own objects (applied with the topology's, as an installer would)."""
        if not self.spec.dns.enabled:
            return []
        self.dns = DNSPlane(self.spec, self.plan, self.record)
        up_ip = system.upstream_ip(self.spec)
        self.network.add_switch_address(up_ip, self.plan.nodes[0].prefixlen)
        self.dns.start_upstream(self.network.switch.name if self.network.switch else "")
        self.kubelet.dns = pod_dns.ClusterDNS(
            True, system.dns_service_ip(self.spec), self.spec.dns.cluster_domain, up_ip, (UPSTREAM_DOMAIN,)
        )
        members = {**self.network.nodes, **self.network.hosts}
        store = os.path.join(self.record.dir, "etc")
        self.record.update(etc_store=store)  # recorded before it is mounted
        etcfiles.mount_store(store)
        etcfiles.ensure_parent()
        self.record.add_etc_dirs([netns.etc_dir(h.name) for h in members.values()])
        ips = {n.name: n.ip for n in self.plan.nodes} | {h.name: h.ip for h in self.plan.hosts}
        for name, h in members.items():
            hosts = f"127.0.0.1\tlocalhost\n{ips[name]}\t{name}.{UPSTREAM_DOMAIN}\t{name}\n"
            etcfiles.write(netns.etc_dir(h.name), {"resolv.conf": pod_dns.node_resolv_conf(self.kubelet.dns), "hosts": hosts}, store)
        # The servers find records from their first moment (the empty cluster's).
        self.dns.sync({}, {}, {}, [], list(self.store.namespaces), [])
        return self.dns.manifests()

    @staticmethod
    def _as_order(docs: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        # kemu's own manifests: built directly (the OpenAPI check is for users' files).
        typed = typed_kinds()
        objs = [typed[d["kind"]].build(d) if d["kind"] in typed else build_unstructured(d, registry.is_namespaced(d["kind"])) for d in docs]
        return [(f"{o.kind if isinstance(o, (Workload, Unstructured)) else type(o).__name__}/{o.key}", o) for o in objs]

    def _system_objects(self, dns_docs: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        # The default GatewayClass and IngressClass `kemu`, as an installed controller has them.
        return self._as_order([system.kubernetes_service(self.spec), *dns_docs, GATEWAY_CLASS, INGRESS_CLASS])

    def dns_servers(self) -> list[tuple[int, str]]:
        """(pid, ack file) of the cluster DNS's running servers."""
        if self.dns is None:
            return []
        out = []
        for st in self.pods.values():
            if st.pod.meta.namespace == "kube-system" and st.pod.owner.startswith("ReplicaSet/coredns-") and not st.terminating:
                cs = st.containers.get("coredns")
                if cs is not None and cs.proc is not None and cs.proc.popen.poll() is None:
                    out.append((cs.proc.ref.pid, os.path.join(self.dns.ack_dir, st.pod.meta.name)))
        return out

    @staticmethod
    def _member_record(handles: dict[str, Any]) -> dict[str, str]:
        return {name: h.name for name, h in handles.items()}
