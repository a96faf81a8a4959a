"""One pod's placement and end in the running cluster: scheduling, termination, removal.

A mixin of emu.cluster.runtime.Cluster (its methods run on the Cluster, under its lock):
the scheduler's pass over pending pods (a node, then an IP from the node's range, with
the events kubectl shows), a pod's deletion as the kubelet does it (SIGTERM, terminating
but serving until its containers end or its grace period passes), its removal (workloads,
namespace, IP), the ConfigMap and Secret data its env reads, and the pods' entry in the
cluster's record (what `kemu exec` and `kemu capture` read).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from emu.cluster.events import EventRecorder, Involved
from emu.cluster.kubelet import Kubelet
from emu.cluster.pod_state import PodState
from emu.cluster.store import Store
from emu.controllers import scheduler
from emu.controllers.ipam import AddressPlan, PodIPAllocator
from emu.dataplane.network import Network
from emu.dataplane.ownership import Record
from emu.workloads import processes

log = logging.getLogger("emu.cluster.runtime")  # the runtime's, as before the split: the daemon log names it


class PodLifecycle:
    # The Cluster's state and methods these use (set in Cluster.__init__).
    lock: threading.RLock
    plan: AddressPlan
    alloc: PodIPAllocator
    store: Store
    record: Record
    network: Network
    kubelet: Kubelet
    events: EventRecorder
    pods: dict[str, PodState]
    _status: threading.Condition
    _dirty: threading.Event
    _stop_after_sync: list[str]
    _sync_services: Callable[[], None]

    def _schedule(self, pending: list[PodState]) -> None:
        if not pending:
            return
        capacity = {n.name: self.alloc.capacity_left(n.name) for n in self.plan.nodes}
        load: dict[str, int] = {}
        for st in self.pods.values():
            if st.node:
                load[st.node] = load.get(st.node, 0) + 1
        ns_labels = {n: dict(x.meta.labels) for n, x in self.store.namespaces.items()}
        placed = [scheduler.placed_pod(st.pod, st.node) for st in self.pods.values() if st.node]
        s = scheduler.Scheduler(scheduler.node_infos(self.store.nodes, capacity, load), placed, ns_labels)
        for st in pending:
            node = s.schedule(st.pod)
            pod = Involved("Pod", st.pod.meta.name, st.pod.meta.namespace)
            if node is None:
                st.unschedulable = s.reason(st.pod)
                log.warning("pod %s is Pending: %s", st.pod.key, st.unschedulable)
                self.events.record(pod, "FailedScheduling", st.unschedulable, "default-scheduler", warning=True)
                continue
            self.events.record(pod, "Scheduled", f"Successfully assigned {st.pod.key} to {node}", "default-scheduler")
            if st.pod.spec.host_network:
                ip = self.plan.node(node).ip  # the node's own address; no pod IP used
            else:
                got = self.alloc.allocate(node)
                assert got is not None  # the scheduler counted free addresses
                ip = got
            st.node, st.ip, st.unschedulable = node, ip, ""

    def _env_data(self) -> tuple[dict[tuple[str, str], dict[str, str]], dict[tuple[str, str], dict[str, str]]]:
        """ConfigMap and Secret data by (namespace, name), for env and envFrom."""
        import base64

        cms: dict[tuple[str, str], dict[str, str]] = {}
        secrets: dict[tuple[str, str], dict[str, str]] = {}
        for o in self.store.list("ConfigMap", None):
            cms[(o.meta.namespace, o.meta.name)] = {str(k): str(v) for k, v in (o.raw.get("data") or {}).items()}
        for o in self.store.list("Secret", None):
            secrets[(o.meta.namespace, o.meta.name)] = {
                str(k): base64.b64decode(str(v)).decode(errors="replace") for k, v in (o.raw.get("data") or {}).items()
            }
        return cms, secrets

    def _terminate(self, key: str, grace: int | None) -> None:
        """Delete a pod as the kubelet does: SIGTERM, keep it (terminating, still serving)
        until its containers are done or its grace period ends, then remove it."""
        st = self.pods.get(key)
        if st is None or st.terminating:
            return
        period = st.pod.spec.termination_grace_period if grace is None else grace
        delay = min(max((c.shutdown_delay for c in st.pod.spec.containers), default=0), period)
        if st.phase != "Running":
            self._stop_pod(key)
            return
        st.terminating = True
        if period <= 0 or not (st.procs or delay):
            # Nothing to wait for; still, the proxies drop the endpoint first (the sync at
            # the end of _realise), and only then do its sockets close: no connection is
            # sent to a pod that is already gone.
            self._stop_after_sync.append(key)
            return
        processes.signal_all(st.procs)
        deadline = time.monotonic() + period

        def finalize() -> None:
            processes.wait_all(st.procs, deadline)
            left = deadline - time.monotonic()
            if delay and left > 0:
                threading.Event().wait(min(delay, left))  # netexec --delay-shutdown keeps serving
            with self.lock:
                if self.pods.get(key) is st:
                    self._stop_pod(key)
                    self._write_pod_record()
                    self._sync_services()
                    self._dirty.set()  # controllers may replace it now

        st.finalizer = threading.Thread(target=finalize, name=f"kemu-terminate-{key}", daemon=True)
        st.finalizer.start()

    def _stop_pod(self, key: str, whole_cluster: bool = False) -> None:
        with self._status:
            st = self.pods.pop(key, None)
        if st is None:
            return
        if st.netns:
            self.kubelet.stop_workloads(st, whole_cluster)
            if not st.host_network:
                ns = self.network.remove_pod(key, cut_link=not whole_cluster)
                if ns and not whole_cluster:
                    self.record.remove_netns([ns])
        if st.ip and not st.host_network:
            self.alloc.release(st.ip)

    def _write_pod_record(self) -> None:
        self.record.set_pods(
            {
                k: {
                    "netns": st.netns,
                    "ip": st.ip,
                    "node": st.node,
                    "hostname": st.pod.spec.hostname or st.pod.meta.name,
                    "containers": [x.name for x in st.pod.spec.containers],
                    "env": dict(st.env_files),
                    **({"etc": st.etc_dir} if st.host_network and st.etc_dir else {}),
                }
                for k, st in self.pods.items()
                if st.netns
            }
        )
