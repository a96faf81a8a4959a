"""The kubelet: one pod's life on its node — network, init containers, containers (real
processes or the stand-in server), probes, restarts, graceful termination.

Concurrency model (who owns what):
- `Kubelet.pods` and every PodState in it are changed only with the cluster lock held
  (`Cluster.lock`, an RLock: one API write at a time), by request threads, the
  termination threads and the monitor thread; adding or removing a pod also holds
  `Kubelet.status`, so a reader holding either lock iterates a dict that cannot change
  size under it (request threads that only read take `status`, or copy the dict with
  one C-level call such as `list(pods.values())`);
- readiness flags (`PodState.ready`) are written by probe callbacks on the workload loop
  under `Kubelet.status` (a Condition), which is also what `wait_ready` waits on; readers
  that only need a snapshot take `status`, never the cluster lock;
- after any status change `on_change()` is called (it marks the cluster dirty; the sync
  thread recomputes EndpointSlices, proxies, policies and controllers).

A pod's /etc files, its containers' environment and commands are emu/cluster/kubelet_env.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from emu.cluster.events import EventRecorder, Involved
from emu.cluster.kubelet_env import PodEnvironment
from emu.cluster.pod_state import ContainerState, PodState
from emu.controllers import pod_dns
from emu.dataplane import etcfiles, netns
from emu.dataplane.network import Network
from emu.dataplane.ownership import Record
from emu.model.objects import Container
from emu.workloads import processes, readiness
from emu.workloads.netexec import NetexecServer, open_sockets_here

log = logging.getLogger(__name__)

BACKOFF_MAX = 300.0  # the kubelet's CrashLoopBackOff cap; it starts at 10 s and doubles
BACKOFF_START = 10.0
# Sandboxes made at once: namespace creation runs in parallel in the kernel (links are
# serialised by the RTNL lock); on 2 cores, 2 threads made 1,000 pods ~20% faster than 1,
# and 4 no faster than 2 (bench/bringup.py).
SANDBOX_WORKERS = 2


Lookup = Callable[[str, str], dict[tuple[str, str], dict[str, str]]]


class Kubelet(PodEnvironment):
    def __init__(
        self,
        cluster: str,
        network: Network,
        server: NetexecServer,
        record: Record,
        log_dir: str,
        lock: threading.RLock,
        on_change: Callable[[], None],
        data: Callable[[], tuple[dict[tuple[str, str], dict[str, str]], dict[tuple[str, str], dict[str, str]]]],
        events: EventRecorder | None = None,
    ) -> None:
        self.cluster = cluster
        self.events = events if events is not None else EventRecorder()
        self.network = network
        self.server = server
        self.record = record
        self.log_dir = log_dir
        self.lock = lock
        self.on_change = on_change
        self.data = data  # (configmaps, secrets) by (namespace, name): for env
        self.dns: pod_dns.ClusterDNS | None = None  # set by the cluster when DNS is known
        self.pods: dict[str, PodState] = {}
        self.status = threading.Condition()
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._monitor_loop, name="kemu-kubelet", daemon=True)

    def start_monitor(self) -> None:
        self._monitor.start()

    def close(self) -> None:
        self._stop.set()

    # --- start ---------------------------------------------------------------------------

    def start_all(self, states: list[PodState], progress: Callable[[int], None] | None = None) -> None:
        """Start pods as the kubelet does, in two phases: a pod's sandbox (CRI's
        RunPodSandbox: namespace, link, sockets, /etc files), then its containers.

        Sandboxes are made by SANDBOX_WORKERS threads, each pod's /etc files written by
        another and its sockets taken by the workload loop, so kernel work, file writes and
        Python overlap; a pod's containers start, in order, as soon as its sandbox is
        whole. If a sandbox fails, no new one is begun, the pods whose sandboxes are whole
        still start, and the first failure is raised."""
        errors: list[Exception] = []
        with (
            ThreadPoolExecutor(1, thread_name_prefix="kemu-kubelet-files") as files,
            ThreadPoolExecutor(SANDBOX_WORKERS, thread_name_prefix="kemu-kubelet-sandbox") as sandboxes,
        ):
            jobs = [(st, sandboxes.submit(self._sandbox, st, files)) for st in states]
            try:
                for i, (st, job) in enumerate(jobs):
                    try:
                        for part in job.result():
                            part.result()
                    except Exception as e:  # noqa: BLE001 — re-raised below; CancelledError for those not begun
                        if not errors:
                            sandboxes.shutdown(wait=False, cancel_futures=True)
                        errors.append(e)
                        continue
                    self._run(st)
                    if progress is not None:
                        progress(i + 1)
            except BaseException:  # Ctrl-C: begin no more; the ones being made finish
                sandboxes.shutdown(wait=False, cancel_futures=True)
                raise
        if errors:
            raise errors[0]

    def _sandbox(self, st: PodState, files: ThreadPoolExecutor) -> list[Future[Any]]:
        """The pod's namespace and link, its bound sockets; returns the futures of its /etc
        files and of serving its sockets."""
        pod = st.pod
        runnable = {c.name: self.argv(st, c) for c in pod.spec.containers}
        served = [p for c in pod.spec.containers if runnable[c.name] is None for p in c.ports]
        bound: list[Any] = []
        if st.host_network:
            # A host-network pod shares its node's namespace and address (the kubelet runs
            # it with the node's network); its stand-in ports are opened there.
            node_ns = self.network.nodes[st.node].name
            with netns.entered(node_ns):
                bound.extend(open_sockets_here(served))
            st.netns = node_ns
        else:

            def inside() -> None:
                bound.extend(open_sockets_here(served))

            st.netns = self.network.add_pod(pod.key, st.node, st.ip, inside)
        st.started = time.time()
        first = next((c.name for c in pod.spec.containers if runnable[c.name] is None and c.ports), "")
        # The loop serves in the order it is asked, so a later stop of this pod comes after.
        log_path = self.log_path(pod, first) if first else None
        return [files.submit(self._write_etc, st), self.server.serve_soon(pod.key, self._hostname(pod), bound, log_path=log_path)]

    def _run(self, st: PodState) -> None:
        """The pod's containers, once its sandbox is whole."""
        pod = st.pod
        st.containers = {c.name: ContainerState() for c in (*pod.spec.init_containers, *pod.spec.containers)}
        st.ready = {c.name: False for c in pod.spec.containers}
        self._write_env_files(st)
        if pod.spec.init_containers:
            st.phase = "Pending"
            self._next_init(st)
        else:
            self._start_containers(st)

    # --- events ----------------------------------------------------------------------------

    def _event(self, st: PodState, reason: str, message: str, container: str = "", warning: bool = False) -> None:
        where = f"spec.containers{{{container}}}" if container else ""
        self.events.record(
            Involved("Pod", st.pod.meta.name, st.pod.meta.namespace, where), reason, message, "kubelet", warning=warning, host=st.node
        )

    def _readiness_event(self, st: PodState, was_ready: bool) -> None:
        # Not an event Kubernetes records, but what people watch for: kemu's own reasons.
        if st.is_ready and not was_ready:
            self._event(st, "Ready", "Pod is ready: all its containers are ready")
        elif was_ready and not st.is_ready and not st.terminating:
            self._event(st, "NotReady", "Pod is not ready", warning=True)

    def _spawn(self, st: PodState, c: Container, argv: list[str]) -> processes.Process:
        proc = processes.start(
            st.pod.key,
            c,
            argv,
            st.netns,
            self._hostname(st.pod),
            self.log_path(st.pod, c.name),
            env_file=st.env_files.get(c.name, ""),  # written once at start, read at every (re)start
            workdir=c.working_dir,
            etc_dir=st.etc_dir if st.host_network else "",
        )
        self.record.add_process(proc.ref, f"{st.pod.key}/{c.name}")
        self._event(st, "Started", f"Started container {c.name}", c.name)
        cs = st.containers[c.name]
        cs.proc, cs.state, cs.reason, cs.started_at, cs.exit_code = proc, "running", "", time.time(), None
        if c.name in st.ready and c.readiness_probe is None and cs.started and st.phase == "Running":
            with self.status:
                st.ready[c.name] = True  # running again (a restart): ready without a probe
                self.status.notify_all()
        return proc

    def _next_init(self, st: PodState) -> None:
        """Start the next init container; a stand-in (not runnable here) completes at once."""
        while st.init_done < len(st.pod.spec.init_containers):
            c = st.pod.spec.init_containers[st.init_done]
            argv = self.argv(st, c)
            if argv is not None:
                self._spawn(st, c, argv)
                return  # the monitor sees it exit
            cs = st.containers[c.name]
            cs.state, cs.reason, cs.exit_code = "terminated", "Completed", 0
            st.init_done += 1
        self._start_containers(st)

    def _start_containers(self, st: PodState) -> None:
        pod = st.pod
        for c in pod.spec.containers:
            argv = self.argv(st, c)
            cs = st.containers[c.name]
            if argv is not None:
                self._spawn(st, c, argv)
            else:
                cs.state, cs.reason, cs.started_at = "running", "", time.time()
                self._event(st, "Started", f"Started container {c.name}", c.name)
            cs.started = c.startup_probe is None
            st.ready[c.name] = c.readiness_probe is None and cs.started
        st.phase = "Running"
        self._readiness_event(st, False)
        for c in pod.spec.containers:
            self._start_probes(st, c)
        with self.status:
            self.status.notify_all()

    # --- probes ----------------------------------------------------------------------------

    def _start_probes(self, st: PodState, c: Container) -> None:
        node_fd = self.network.nodes[st.node].fd
        cs = st.containers[c.name]

        def run(probe: Any, kind: str, on_change: Callable[[bool], None]) -> None:
            port = st.pod.spec.resolve_port(probe.port) if probe.handler in ("httpGet", "tcpSocket") else probe.port
            check = readiness.make_check(probe, port, node_fd, st.ip, st.netns)
            st.probes.append(asyncio.run_coroutine_threadsafe(readiness.probe_loop(probe, check, on_change, kind), self.server.loop))

        def readiness_changed(ok: bool) -> None:
            with self.status:
                was = st.is_ready
                st.ready[c.name] = ok and cs.started
                self.status.notify_all()
            if not ok and cs.started and not st.terminating:
                self._event(st, "Unhealthy", "Readiness probe failed", c.name, warning=True)
            self._readiness_event(st, was)
            self.on_change()

        def liveness_changed(ok: bool) -> None:
            if not ok:
                log.info("pod %s container %s failed its liveness probe; restarting it", st.pod.key, c.name)
                self._event(st, "Unhealthy", "Liveness probe failed", c.name, warning=True)
                self._event(st, "Killing", f"Container {c.name} failed liveness probe, will be restarted", c.name)
                threading.Thread(target=self._restart_container, args=(st, c, "liveness probe failed"), daemon=True).start()

        def startup_changed(ok: bool) -> None:
            if ok:
                cs.started = True
                if c.readiness_probe is not None:
                    run(c.readiness_probe, "readiness", readiness_changed)
                else:
                    readiness_changed(True)
                if c.liveness_probe is not None:
                    run(c.liveness_probe, "liveness", liveness_changed)
            else:
                self._event(st, "Unhealthy", "Startup probe failed", c.name, warning=True)
                threading.Thread(target=self._restart_container, args=(st, c, "startup probe failed"), daemon=True).start()

        if c.startup_probe is not None:
            run(c.startup_probe, "startup", startup_changed)
            return
        if c.readiness_probe is not None:
            run(c.readiness_probe, "readiness", readiness_changed)
        if c.liveness_probe is not None:
            run(c.liveness_probe, "liveness", liveness_changed)

    def _restart_container(self, st: PodState, c: Container, why: str) -> None:
        with self.lock:
            if self.pods.get(st.pod.key) is not st or st.terminating:
                return
            cs = st.containers[c.name]
            if cs.proc is not None:
                processes.stop([cs.proc])
                self.record.remove_process(cs.proc.ref.pid)
                cs.proc = None
            cs.restarts += 1
            if c.readiness_probe is not None:
                with self.status:
                    st.ready[c.name] = False  # its readiness probe says when it is back
            argv = self.argv(st, c)
            if argv is not None:
                self._spawn(st, c, argv)
            log.info("pod %s container %s restarted (%s); restarts %d", st.pod.key, c.name, why, cs.restarts)
        self.on_change()

    # --- the monitor: exited processes, restart policy -----------------------------------------

    def _monitor_loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                with self.lock:
                    changed = any([self._check(st) for st in list(self.pods.values())])
            except Exception:
                log.exception("kubelet monitor")
                changed = False
            if changed:
                self.on_change()

    def _check(self, st: PodState) -> bool:
        if st.terminating or not st.containers:
            return False
        changed = False
        now = time.monotonic()
        init_names = {c.name for c in st.pod.spec.init_containers}
        for c in (*st.pod.spec.init_containers, *st.pod.spec.containers):
            cs = st.containers[c.name]
            if cs.proc is None:
                if cs.state == "waiting" and cs.restart_at and now >= cs.restart_at and c.name not in init_names:
                    argv = self.argv(st, c)
                    if argv is not None:
                        cs.restart_at = 0.0
                        self._spawn(st, c, argv)
                        changed = True
                continue
            code = cs.proc.popen.poll()
            if code is None:
                continue
            self.record.remove_process(cs.proc.ref.pid)
            # A process killed by a signal: the container runtime's exit code, 128 + the signal.
            code = 128 - code if code < 0 else code
            cs.proc, cs.exit_code, cs.state = None, code, "terminated"
            cs.reason = "Completed" if code == 0 else "Error"
            changed = True
            if c.name in init_names:
                if code == 0:
                    st.init_done += 1
                    self._next_init(st)
                elif st.pod.spec.restart_policy == "Never":
                    st.phase = "Failed"
                else:
                    cs.restarts += 1
                    argv = self.argv(st, c)
                    if argv is not None:
                        self._spawn(st, c, argv)
                continue
            with self.status:
                st.ready[c.name] = False
            policy = st.pod.spec.restart_policy
            if policy == "Always" or (policy == "OnFailure" and code != 0):
                # CrashLoopBackOff: at once the first time, then 10 s doubling up to 5 min.
                cs.restarts += 1
                delay = 0.0 if cs.restarts == 1 else min(BACKOFF_START * 2 ** (cs.restarts - 2), BACKOFF_MAX)
                cs.state, cs.reason = "waiting", "CrashLoopBackOff" if delay else "ContainerCreating"
                cs.restart_at = now + delay
                if delay:
                    msg = f"Back-off restarting failed container {c.name} in pod {st.pod.meta.name}_{st.pod.meta.namespace}"
                    self._event(st, "BackOff", msg, c.name, warning=True)
        if st.phase == "Running" and all(st.containers[c.name].state == "terminated" for c in st.pod.spec.containers):
            st.phase = "Succeeded" if all(st.containers[c.name].exit_code == 0 for c in st.pod.spec.containers) else "Failed"
            changed = True
        return changed

    # --- stop ------------------------------------------------------------------------------

    def stop_workloads(self, st: PodState, whole_cluster: bool = False) -> None:
        for f in st.probes:
            f.cancel()
        if not whole_cluster:
            for c in st.pod.spec.containers:
                if c.name in st.containers and st.containers[c.name].state == "running":
                    self._event(st, "Killing", f"Stopping container {c.name}", c.name)
        self.server.stop_pod(st.pod.key)
        processes.stop(st.procs)
        for p in st.procs:
            self.record.remove_process(p.ref.pid)
        for path in st.env_files.values():
            try:
                os.unlink(path)
            except OSError:
                pass
        if st.etc_dir:
            etcfiles.remove(st.etc_dir)
            if not whole_cluster:  # a whole teardown drops the record at the end
                self.record.remove_etc_dir(st.etc_dir)
