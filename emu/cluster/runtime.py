"""The running cluster: store → controllers → dataplane and workloads, one path for
start-up and for every later change (apply, delete, label)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from emu.cluster.policies import PolicyPlane, make_view
from emu.cluster.services import ServicePlane
from emu.cluster.store import Changes, Store
from emu.config.loader import ParsedManifests, check_against_cluster
from emu.controllers.ipam import PodIPAllocator, plan_addresses
from emu.controllers.scheduler import choose_node
from emu.dataplane import names
from emu.dataplane.cleanup import clean_cluster
from emu.dataplane.cni import plugin_for
from emu.dataplane.network import Network
from emu.dataplane.ownership import ProcRef, Record
from emu.errors import KemuError
from emu.model.objects import ClusterConfig, Manifests, Pod, PodView
from emu.policy.oracle import View
from emu.workloads import processes
from emu.workloads.netexec import NetexecServer, open_sockets_here
from emu.workloads.readiness import run_probe

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class PodState:
    """Status of one pod as the kubelet would report it."""

    pod: Pod
    node: str = ""
    ip: str = ""
    netns: str = ""
    phase: str = "Pending"
    ready: dict[str, bool] = field(default_factory=dict)  # container → ready
    started: float = 0.0
    procs: list[processes.Process] = field(default_factory=list)
    probes: list[Future[Any]] = field(default_factory=list)
    terminating: bool = False
    finalizer: threading.Thread | None = None

    @property
    def is_ready(self) -> bool:
        return self.phase == "Running" and all(self.ready.values())


class Cluster:
    def __init__(self, config: ClusterConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.spec = config.spec
        self.name = config.spec.name
        self.progress = progress or (lambda phase, done, total: None)
        self.plan = plan_addresses(self.spec)
        self.alloc = PodIPAllocator(self.plan)
        self.store = Store(self.spec)
        self.record = Record(self.name)
        self.record.data["marker"] = f"kemu:{self.name}:{uuid.uuid4().hex[:12]}"
        self.record.data["source"] = config.source
        self.network = Network(self.name, self.plan, plugin_for(self.spec.cni), self.spec.pod_cidr, self.record)
        self.server = NetexecServer()
        self.pods: dict[str, PodState] = {}
        self.lock = threading.RLock()  # one change at a time, as one API server write
        self._status = threading.Condition()
        self.started = time.time()
        self.log_dir = os.path.join(self.record.dir, "logs")
        self._up = False
        self._down_done = False
        self.services: ServicePlane | None = None
        self.policies: PolicyPlane | None = None
        # Readiness flips on the workload loop; a worker re-syncs Services after them.
        self._dirty = threading.Event()
        self._stopping = False
        self._sync_thread = threading.Thread(target=self._sync_loop, name="kemu-sync", daemon=True)

    # --- life cycle --------------------------------------------------------------------

    def up(self) -> None:
        """Build everything; on any failure (or Ctrl-C) unwind what was built, then raise."""
        self._claim()  # before the try: a refused claim must not unwind another's cluster
        try:
            self.server.start()
            self.progress("network", 0, 1)
            self.network.build()
            self.record.update(nodes=self._member_record(self.network.nodes), hosts=self._member_record(self.network.hosts))
            self.services = ServicePlane(
                self.plan, self.network.nodes, self.spec.proxy, self.spec.pod_cidr, self.spec.service_cidr, self.server.loop
            )
            self.policies = PolicyPlane(self.plan, self.network.nodes, self.spec.network_policy)
            m = self.config.manifests
            order: list[tuple[str, Any]] = [(f"Namespace/{n.meta.name}", n) for n in m.namespaces]
            order += [
                (f"{type(o).__name__}/{o.key}", o) for o in (*m.pods, *m.deployments, *m.services, *m.endpoint_slices, *m.network_policies)
            ]
            with self.lock:
                self._up = True
                self._realise(self.store.apply(ParsedManifests(m, {}, order)))
            self._sync_thread.start()
        except BaseException:
            log.error("bring-up failed; unwinding")
            self.down()
            raise

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

    def set_daemon(self, pid: int) -> None:
        ref = ProcRef.of(pid)
        if ref:
            self.record.update(daemon=dataclasses.asdict(ref))

    def down(self) -> None:
        """Take everything down; once only (a second call must not touch a new cluster
        that took the same name meanwhile)."""
        self._stopping = True
        self._dirty.set()
        with self.lock:
            if self._down_done:
                return
            self._down_done = True
            self._up = False
            errors: list[str] = []
            if self.services is not None:
                self.services.close()
            if self.policies is not None:
                self.policies.close()
            for key in list(self.pods):
                try:
                    self._stop_pod(key, whole_cluster=True)
                except Exception as e:  # noqa: BLE001 - keep unwinding
                    errors.append(f"{key}: {e}")
            self.server.stop()
            try:
                self.network.teardown()
            except Exception as e:  # noqa: BLE001
                errors.append(str(e))
            # Whatever a failure left half-made is still in the record: clean it too.
            clean_cluster(self.record, keep_daemon=True)
            if errors:
                log.error("teardown problems: %s", "; ".join(errors))

    @staticmethod
    def _member_record(handles: dict[str, Any]) -> dict[str, str]:
        return {name: h.name for name, h in handles.items()}

    # --- changes -------------------------------------------------------------------------

    def apply(self, parsed: ParsedManifests) -> Changes:
        with self.lock:
            merged = _merge(self.store.manifests(), parsed.manifests)
            check_against_cluster(self.spec, merged, parsed)
            changes = self.store.apply(parsed)
            self._realise(changes)
            return changes

    def delete(self, kind: str, namespace: str, name: str, grace: int | None = None, wait: bool = True) -> Changes:
        with self.lock:
            changes = self.store.delete(kind, namespace, name)
            self._realise(changes, grace)
            gone = {p.key for p in changes.delete}
            finalizers = [st.finalizer for k, st in self.pods.items() if k in gone and st.finalizer is not None]
        if wait:
            # As `kubectl delete`: return once the pods are gone (after their grace period).
            for t in finalizers:
                t.join()
        return changes

    def label(self, kind: str, namespace: str, name: str, set_: dict[str, str], remove: list[str], overwrite: bool) -> None:
        with self.lock:
            self.store.label(kind, namespace, name, set_, remove, overwrite)
            for key, st in self.pods.items():
                if key in self.store.pods:
                    st.pod = self.store.pods[key]
            self._sync_services()

    def _realise(self, changes: Changes, grace: int | None = None) -> None:
        for pod in changes.delete:
            self._terminate(pod.key, grace)
        for pod in changes.create:
            old = self.pods.get(pod.key)
            if old is not None and old.terminating:
                self._stop_pod(pod.key)  # a new pod takes the name: finish the old one now
            self.pods[pod.key] = PodState(pod)
        pending = [st for st in self.pods.values() if st.phase == "Pending" and not st.node]
        self._schedule(pending)
        todo = [st for st in pending if st.node]
        self.record.add_netns([names.pod_ns(self.name, st.pod.meta.namespace, st.pod.meta.name) for st in todo])
        for i, st in enumerate(todo):
            self._start_pod(st)
            self.progress("pods", i + 1, len(todo))
        self._write_pod_record()
        self._sync_services()

    # --- Services ----------------------------------------------------------------------

    def _sync_services(self) -> None:
        """EndpointSlices, proxies, LB announcements, health checks: from the current state."""
        if self.services is None or not self._up:
            return
        pods = self.pod_views()
        self.services.sync(self.store.services, self.store.service_status, self.store.endpoint_slices, pods)
        if self.policies is not None:
            self.policies.sync(self.policy_view(), pods)

    def policy_view(self) -> View:
        return make_view(self.plan, self.store.namespaces, self.store.network_policies)

    def pod_views(self) -> list[PodView]:
        """Running pods with their IPs and readiness (slices, proxy plans, policies)."""
        with self._status:
            return [
                PodView(
                    st.pod.meta.namespace, st.pod.meta.name, st.pod.meta.labels, st.ip, st.node, st.pod.spec, st.is_ready, st.terminating
                )
                for st in self.pods.values()
                if st.phase == "Running" and st.ip
            ]

    def _sync_loop(self) -> None:
        while True:
            self._dirty.wait()
            if self._stopping:
                return
            self._dirty.clear()
            with self.lock:
                try:
                    self._sync_services()
                except Exception:
                    log.exception("service sync failed")

    def _schedule(self, pending: list[PodState]) -> None:
        load: dict[str, int] = {}
        for st in self.pods.values():
            if st.node:
                load[st.node] = load.get(st.node, 0) + 1
        capacity = {n.name: self.alloc.capacity_left(n.name) for n in self.plan.nodes}
        for st in pending:
            node = choose_node(st.pod.spec, self.plan.nodes, load, capacity)
            if node is None:
                log.warning("pod %s is Pending: no node fits (nodeName/nodeSelector/capacity)", st.pod.key)
                continue
            ip = self.alloc.allocate(node)
            assert ip is not None
            st.node, st.ip = node, ip
            load[node] = load.get(node, 0) + 1
            capacity[node] -= 1

    # --- one pod -------------------------------------------------------------------------

    def _start_pod(self, st: PodState) -> None:
        pod = st.pod
        runnable = {c.name: processes.runnable_argv(c) for c in pod.spec.containers}
        served = [p for c in pod.spec.containers if runnable[c.name] is None for p in c.ports]
        bound: list[Any] = []

        def inside() -> None:
            bound.extend(open_sockets_here(served))

        st.netns = self.network.add_pod(pod.key, st.node, st.ip, inside)
        self.server.serve(pod.key, pod.meta.name, bound)
        for c in pod.spec.containers:
            argv = runnable[c.name]
            if argv is not None:
                logf = os.path.join(self.log_dir, f"{pod.meta.namespace}_{pod.meta.name}_{c.name}.log")
                proc = processes.start(pod.key, c, argv, st.netns, pod.meta.name, logf)
                self.record.add_process(proc.ref, f"{pod.key}/{c.name}")
                st.procs.append(proc)
            st.ready[c.name] = c.readiness_probe is None
        st.phase, st.started = "Running", time.time()
        node_fd = self.network.nodes[st.node].fd
        for c in pod.spec.containers:
            if c.readiness_probe is not None:
                port = pod.spec.resolve_port(c.readiness_probe.port)
                st.probes.append(
                    asyncio.run_coroutine_threadsafe(
                        run_probe(c.readiness_probe, port, node_fd, st.ip, st.netns, self._on_ready(st, c.name)),
                        self.server.loop,
                    )
                )

    def _on_ready(self, st: PodState, container: str) -> Callable[[bool], None]:
        def changed(ready: bool) -> None:
            with self._status:
                st.ready[container] = ready
                self._status.notify_all()
            self._dirty.set()
            log.info("pod %s container %s ready=%s", st.pod.key, container, ready)

        return changed

    def _terminate(self, key: str, grace: int | None) -> None:
        """Delete a pod as the kubelet does: SIGTERM, keep it (terminating, still serving)
        until its containers are done or its grace period ends, then remove it."""
        st = self.pods.get(key)
        if st is None or st.terminating:
            return
        period = st.pod.spec.termination_grace_period if grace is None else grace
        delay = min(max((c.shutdown_delay for c in st.pod.spec.containers), default=0), period)
        if st.phase != "Running" or period <= 0 or not (st.procs or delay):
            self._stop_pod(key)
            return
        st.terminating = True
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

        st.finalizer = threading.Thread(target=finalize, name=f"kemu-terminate-{key}", daemon=True)
        st.finalizer.start()

    def _stop_pod(self, key: str, whole_cluster: bool = False) -> None:
        st = self.pods.pop(key, None)
        if st is None:
            return
        for f in st.probes:
            f.cancel()
        if st.phase == "Running":
            self.server.stop_pod(key)
            processes.stop(st.procs)
            for p in st.procs:
                self.record.remove_process(p.ref.pid)
            ns = self.network.remove_pod(key, cut_link=not whole_cluster)
            if ns and not whole_cluster:
                self.record.remove_netns([ns])
        if st.ip:
            self.alloc.release(st.ip)

    def _write_pod_record(self) -> None:
        self.record.set_pods(
            {
                k: {
                    "netns": st.netns,
                    "ip": st.ip,
                    "node": st.node,
                    "hostname": st.pod.meta.name,
                    "containers": [x.name for x in st.pod.spec.containers],
                }
                for k, st in self.pods.items()
                if st.netns
            }
        )

    # --- queries -------------------------------------------------------------------------

    def wait_ready(self, timeout: float) -> list[str]:
        """Wait until every pod is Ready or the deadline passes; the unready ones."""
        deadline = time.monotonic() + timeout
        with self._status:
            while True:
                left = [k for k, st in self.pods.items() if not st.is_ready]
                remaining = deadline - time.monotonic()
                if not left or remaining <= 0:
                    return left
                self._status.wait(remaining)


def _merge(current: Manifests, new: Manifests) -> Manifests:
    ns = {n.meta.name: n for n in current.namespaces} | {n.meta.name: n for n in new.namespaces}
    pods = {p.key: p for p in current.pods} | {p.key: p for p in new.pods}
    deps = {d.key: d for d in current.deployments} | {d.key: d for d in new.deployments}
    return Manifests(tuple(ns.values()), tuple(pods.values()), tuple(deps.values()))
