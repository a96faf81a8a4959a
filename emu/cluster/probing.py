"""Running the probe against a live cluster's pods."""

from __future__ import annotations

import os

from emu.cluster.runtime import Cluster
from emu.dataplane import netns
from emu.errors import Problem, ValidationError
from emu.traffic.probe import DEFAULT_TIMEOUT, Client, Result, Target, run_matrix

KUBE_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


def probe_cluster(
    c: Cluster,
    to: str = "pods",
    ports: list[int] | None = None,
    protocols: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    include_system: bool = False,
) -> list[Result]:
    one = None
    if to not in ("pods", "services"):
        from emu.cluster.explaining import service_of

        one = service_of(c, to)
        if one is None:
            raise ValidationError([Problem("<command line>", "--to", f"{to!r}: probe pods, services, or a Service (name.ns or ns/name)")])
    protos = {p.upper() for p in protocols} if protocols else {"TCP", "UDP"}
    with c.lock:
        # The cluster's own pods (kube-system: DNS, node agents) are not part of the matrix
        # unless asked for, as upstream's netpol tables leave system namespaces out.
        running = [
            st
            for st in c.pods.values()
            if st.phase == "Running" and st.netns and not st.terminating and not st.host_network
            and (include_system or st.pod.meta.namespace not in KUBE_NAMESPACES)
        ]  # fmt: skip
        if to == "pods":
            targets = [
                Target(st.pod.key, st.ip, p.container_port, p.protocol)
                for st in running
                for p in st.pod.spec.served_ports()
                if p.protocol in protos and (not ports or p.container_port in ports)
            ]
        else:
            status = c.store.service_status
            targets = [
                Target(svc.key, status[svc.key].cluster_ip, p.port, p.protocol)
                for svc in ([one] if one is not None else c.store.services.values())
                if svc.key in status
                and status[svc.key].cluster_ip
                and status[svc.key].cluster_ip != "None"
                and (include_system or one is not None or svc.meta.namespace not in KUBE_NAMESPACES)
                for p in svc.ports
                if p.protocol in protos and (not ports or p.port in ports)
            ]
        fds = {st.pod.key: os.open(netns.path(st.netns), os.O_RDONLY | os.O_CLOEXEC) for st in running}
    try:
        clients = [Client(k, fd) for k, fd in fds.items()]
        results: list[Result] = c.server.call(run_matrix(clients, targets, timeout), timeout=timeout * 4 + 60)
        return results
    finally:
        for fd in fds.values():
            os.close(fd)
