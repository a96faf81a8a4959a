"""A pod's environment as the kubelet makes it: /etc files, container env, commands, log paths.

A mixin of emu.cluster.kubelet.Kubelet (its methods run on the Kubelet): the pod's
/etc/resolv.conf and /etc/hosts (in /etc/netns/<netns>, or a directory of its own for a
host-network pod), each container's environment resolved once at start from the pod and
the ConfigMaps and Secrets (and written to a file for `kemu exec -c`), the container's
command with its `$(VAR)` references expanded, and where each container's log goes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

from emu.cluster.pod_state import PodState
from emu.controllers import pod_dns
from emu.dataplane import etcfiles, netns
from emu.dataplane.network import Network
from emu.dataplane.ownership import Record
from emu.model.objects import Container, Pod
from emu.workloads import env as envmod
from emu.workloads import processes

log = logging.getLogger("emu.cluster.kubelet")  # the kubelet's, as before the split: the daemon log names it


class PodEnvironment:
    # The Kubelet's state these methods use (set in Kubelet.__init__).
    network: Network
    record: Record
    log_dir: str
    data: Callable[[], tuple[dict[tuple[str, str], dict[str, str]], dict[tuple[str, str], dict[str, str]]]]
    dns: pod_dns.ClusterDNS | None

    def log_path(self, pod: Pod, container: str) -> str:
        return os.path.join(self.log_dir, f"{pod.meta.namespace}_{pod.meta.name}_{container}.log")

    def _write_etc(self, st: PodState) -> None:
        """The pod's /etc/resolv.conf and /etc/hosts, as the kubelet writes them; in
        /etc/netns/<netns> (so `ip netns exec` sees them too), or, for a host-network pod
        (its namespace is its node's), a directory of its own."""
        if self.dns is None:
            return
        spec = st.pod.spec
        st.etc_dir = self.etc_dir_for(st.pod, st.netns)  # recorded by the caller, in a batch
        files = {"resolv.conf": pod_dns.resolv_conf(self.dns, st.pod.meta.namespace, spec.raw, spec.host_network)}
        if not st.host_network:  # a host-network pod sees its node's /etc/hosts
            files["hosts"] = pod_dns.hosts_file(st.ip, self._hostname(st.pod), st.pod.meta.namespace, spec.raw, self.dns.domain)
        # A host-network pod's directory is in the store already; others link into it.
        etcfiles.write(st.etc_dir, files, None if st.host_network else self.record.data.get("etc_store"))

    def etc_dir_for(self, pod: Pod, netns_name: str) -> str:
        if pod.spec.host_network:
            return os.path.join(self.record.dir, "etc", f"{pod.meta.namespace}_{pod.meta.name}")
        return netns.etc_dir(netns_name)

    @staticmethod
    def _hostname(pod: Pod) -> str:
        return pod.spec.hostname or pod.meta.name

    def _env(self, st: PodState, c: Container) -> dict[str, str]:
        configmaps, secrets = self.data()
        host_ip = self.network.plan.node(st.node).ip if st.node else ""
        raw_pod = {"metadata": _meta_raw(st.pod), "spec": {**st.pod.spec.raw, "nodeName": st.node}}
        values, problems = envmod.container_env(
            c.raw, raw_pod, pod_ip=st.ip, host_ip=host_ip, node_name=st.node, configmaps=configmaps, secrets=secrets
        )
        for p in problems:
            log.warning("pod %s container %s: %s", st.pod.key, c.name, p)
        return values

    def _write_env_files(self, st: PodState) -> None:
        """Each container's environment, resolved once at start; written for `kemu exec -c`."""
        for c in (*st.pod.spec.init_containers, *st.pod.spec.containers):
            if not (c.raw.get("env") or c.raw.get("envFrom")) and processes.runnable_argv(c) is None:
                continue  # a stand-in with no environment of its own: exec gives it the hostname
            st.env[c.name] = {"HOSTNAME": self._hostname(st.pod), **self._env(st, c)}
            path = os.path.join(self.log_dir, f"{st.pod.meta.namespace}_{st.pod.meta.name}_{c.name}.env")
            processes.write_env_file(path, st.env[c.name])
            st.env_files[c.name] = path

    def argv(self, st: PodState, c: Container) -> list[str] | None:
        """The container's command with `$(VAR)` references expanded, as the kubelet does."""
        env = st.env.get(c.name, {})
        if processes.ECHO_BASIC in (c.image or "") and any(env.get(k) for k in ("GRPC_ECHO_SERVER", "TCP_ECHO_SERVER", "UDP_ECHO_SERVER")):
            return None  # echo-basic's other modes: the built-in server serves the declared ports
        if any("$" in w for w in (*c.command, *c.args)):  # without a `$` expansion changes nothing
            c = dataclasses.replace(
                c, command=tuple(envmod.expand(x, env) for x in c.command), args=tuple(envmod.expand(x, env) for x in c.args)
            )
        return processes.runnable_argv(c)


def _meta_raw(pod: Pod) -> dict[str, Any]:
    return {
        "name": pod.meta.name,
        "namespace": pod.meta.namespace,
        "labels": dict(pod.meta.labels),
        "annotations": dict(pod.meta.annotations),
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"kemu:pod:{pod.key}")),
    }
