"""The running cluster: store → controllers → dataplane and workloads, one path for
start-up and for every later change (apply, delete, label).

Threads and locks (who owns which state):
- `Cluster.lock` (RLock): one change at a time, as one API server write. Held by request
  threads (apply, delete, label, scale), the sync thread and pod finalizers while they
  change the store, the pods or any plane. Every plane (services, policies, host ports,
  gateways, DNS) is synced only under it.
- `Kubelet.status` (Condition): readiness and phases, written by probe callbacks on the
  workload loop; adding or removing a pod holds it too. Readers that need a snapshot
  (`pod_views`, `wait_ready`, `_observed`) take it, never the cluster lock.
- `_dirty` (Event): "something changed outside a request" (readiness, exits, a retry timer
  of the node syncer, drift): the sync thread wakes, reconciles and syncs the planes.
- `NodeSyncer._lock`: the per-node sync status only; the netlink watch threads
  (emu/cluster/drift.py) call into the syncer and set `_dirty`, nothing else.
- Each `NsHandle.lock`: one netlink request at a time on that namespace's socket.

Cluster's parts are mixins beside it: emu/cluster/startup.py (the name's claim, the
cluster DNS, kemu's own objects), emu/cluster/gateway_sync.py (Gateways and their
proxies), emu/cluster/pod_lifecycle.py (scheduling, termination, removal of pods).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from emu.cluster.dns import DNSPlane
from emu.cluster.drift import DriftRepair
from emu.cluster.events import EventRecorder, ServiceWatch, record_controller_events, sync_observer
from emu.cluster.gateway_sync import GatewaySync
from emu.cluster.gateways import GatewayPlane
from emu.cluster.kubelet import Kubelet
from emu.cluster.pod_lifecycle import PodLifecycle
from emu.cluster.pod_state import PodState
from emu.cluster.policies import PolicyPlane, make_view
from emu.cluster.services import ServicePlane
from emu.cluster.startup import ClusterStartup
from emu.cluster.store import Changes, Store
from emu.config.kinds import typed_kinds
from emu.config.loader import ParsedManifests, check_against_cluster, manifests_of
from emu.controllers.ipam import PodIPAllocator, plan_addresses
from emu.dataplane import etcfiles, hostports, names, netns
from emu.dataplane.cleanup import clean_cluster
from emu.dataplane.cni import plugin_for
from emu.dataplane.network import Network
from emu.dataplane.node_sync import NodeSyncer
from emu.dataplane.ownership import Record
from emu.errors import NotFoundError
from emu.model.objects import ClusterConfig, ObservedPod, PodView, Workload
from emu.netfilter.kernel import Netfilter
from emu.policy.oracle import View
from emu.workloads.netexec import NetexecServer

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


class Cluster(ClusterStartup, GatewaySync, PodLifecycle):
    def __init__(self, config: ClusterConfig, progress: Progress | None = None, netfilter: Netfilter | None = None) -> None:
        self.config = config
        self.netfilter = netfilter or Netfilter()  # the kernel's; tests may pass fakes
        self.spec = config.spec
        self.name = config.spec.name
        self.progress = progress or (lambda phase, done, total: None)
        self.plan = plan_addresses(self.spec)
        self.alloc = PodIPAllocator(self.plan)
        self.store = Store(self.spec, started=time.time())
        self.record = Record(self.name)
        self.record.data["marker"] = f"kemu:{self.name}:{uuid.uuid4().hex[:12]}"
        self.record.data["source"] = config.source
        self.network = Network(self.name, self.plan, plugin_for(self.spec.cni), self.spec.pod_cidr, self.record)
        self.server = NetexecServer()
        self.lock = threading.RLock()  # one change at a time, as one API server write
        self.started = time.time()
        self.log_dir = os.path.join(self.record.dir, "logs")
        self._up = False
        self._down_done = False
        self.services: ServicePlane | None = None
        self.policies: PolicyPlane | None = None
        self.hostports: hostports.HostPorts | None = None
        self.dns: DNSPlane | None = None
        self.gateways: GatewayPlane | None = None
        self.syncer: NodeSyncer | None = None  # each node's plane syncs, retried until they succeed
        self.drift: DriftRepair | None = None
        self._in_gateway_sync = False
        self._proxy_ready: dict[str, bool] = {}
        self._stop_after_sync: list[str] = []  # pods deleted with nothing to wait for
        # Status changes (readiness, exits) come from other threads; a worker re-syncs
        # controllers, Services and policies after them.
        self._dirty = threading.Event()
        self._stopping = False
        self._sync_thread = threading.Thread(target=self._sync_loop, name="kemu-sync", daemon=True)
        self.events = EventRecorder()
        self.kubelet = Kubelet(
            self.name, self.network, self.server, self.record, self.log_dir, self.lock, self._dirty.set, self._env_data, self.events
        )
        self._service_events = ServiceWatch(self.events)
        self.pods = self.kubelet.pods
        self._status = self.kubelet.status

    # --- life cycle --------------------------------------------------------------------

    def up(self) -> None:
        """Build everything; on any failure (or Ctrl-C) unwind what was built, then raise."""
        self._claim()  # before the try: a refused claim must not unwind another's cluster
        try:
            self.server.start()
            self.progress("network", 0, 1)
            self.network.build()
            self.record.update(nodes=self._member_record(self.network.nodes), hosts=self._member_record(self.network.hosts))
            self.syncer = NodeSyncer(self._dirty.set, sync_observer(self.events))
            self.services = ServicePlane(
                self.plan,
                self.network.nodes,
                self.spec.proxy,
                self.spec.pod_cidr,
                self.spec.service_cidr,
                self.server.loop,
                self.syncer,
                self.netfilter,
            )
            self.policies = PolicyPlane(self.plan, self.network.nodes, self.spec.network_policy, self.syncer, self.netfilter)
            self.hostports = hostports.HostPorts(self.plan, self.network.nodes, self.syncer, self.netfilter)
            self.drift = DriftRepair(self.network.nodes, self.network.cni, self.syncer, self.spec.network_policy, self.netfilter)
            self.gateways = GatewayPlane(self.record.dir)
            system_order = self._system_objects(self._start_dns())
            m = self.config.manifests
            order: list[tuple[str, Any]] = [(f"Namespace/{n.meta.name}", n) for n in m.namespaces]
            order += [(f"Pod/{o.key}", o) for o in m.pods]
            order += [(f"{o.kind}/{o.key}", o) for o in m.workloads]
            order += [(f"Service/{o.key}", o) for o in m.services]
            order += [(f"EndpointSlice/{o.key}", o) for o in m.endpoint_slices]
            order += [(f"NetworkPolicy/{o.key}", o) for o in m.network_policies]
            order += [(f"{o.kind}/{o.key}", o) for o in m.others]
            order = system_order + order
            with self.lock:
                self._up = True
                self._realise(self.store.apply(ParsedManifests(manifests_of(order), {}, order), now=time.time()))
            self.kubelet.start_monitor()
            self._sync_thread.start()
        except BaseException:
            log.error("bring-up failed; unwinding")
            self.down()
            raise

    def down(self) -> None:
        """Take everything down; once only (a second call must not touch a new cluster
        that took the same name meanwhile)."""
        self._stopping = True
        self._dirty.set()
        self.kubelet.close()
        with self.lock:
            if self._down_done:
                return
            self._down_done = True
            self._up = False
            errors: list[str] = []
            if self.drift is not None:
                self.drift.close()  # before anything of ours is taken down: no repairs
            if self.syncer is not None:
                self.syncer.close()
            for plane in (self.services, self.policies, self.hostports):
                if plane is not None:
                    plane.close()
            if self.dns is not None:
                self.dns.stop()
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

    # --- changes -------------------------------------------------------------------------

    def apply(self, parsed: ParsedManifests) -> Changes:
        with self.lock:
            check_against_cluster(self.spec, list(self.store.namespaces.values()), parsed)
            return self._apply_locked(parsed)

    def _apply_locked(self, parsed: ParsedManifests) -> Changes:
        changes = self.store.apply(parsed, now=time.time())
        self._realise(changes)
        return changes

    def delete(self, kind: str, namespace: str, name: str, grace: int | None = None, wait: bool = True) -> Changes:
        with self.lock:
            changes = self.store.delete(kind, namespace, name, now=time.time())
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
            self.store.label(kind, namespace, name, set_, remove, overwrite, now=time.time())
            for key, st in self.pods.items():
                if key in self.store.pods:
                    st.pod = self.store.pods[key]
            self._sync_services()
        self._dirty.set()  # controllers and the scheduler look again (a node's labels count)

    def scale(self, kind: str, namespace: str, name: str, replicas: int) -> Changes:
        with self.lock:
            changes = self.store.scale(kind, namespace, name, replicas, now=time.time())
            self._realise(changes)
            return changes

    def restart(self, kind: str, namespace: str, name: str) -> Changes:
        """`kubectl rollout restart`: a new template annotation, so the controller rolls
        every pod over (as kubectl does it, through the pod template)."""
        with self.lock:
            w = self.store.get(kind, namespace, name)
            if w is None or not isinstance(w, Workload) or w.kind not in ("Deployment", "StatefulSet", "DaemonSet"):
                raise NotFoundError(f'{kind.lower()}s "{name}" not found (rollout restart takes deployments, statefulsets, daemonsets)')
            raw = copy.deepcopy(w.raw)
            tmeta = raw["spec"]["template"].setdefault("metadata", {})
            annotations = tmeta.get("annotations") or {}
            tmeta["annotations"] = {**annotations, "kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            obj = typed_kinds()[kind].build(raw)
            key = f"{kind}/{namespace}/{name}"
            return self._apply_locked(ParsedManifests(manifests_of([(key, obj)]), {}, [(key, obj)]))

    def _realise(self, changes: Changes, grace: int | None = None) -> None:
        record_controller_events(self.events, changes.events)
        for pod in changes.delete:
            self._terminate(pod.key, grace)
        for pod in changes.create:
            old = self.pods.get(pod.key)
            if old is not None:
                self._stop_pod(pod.key)  # a new pod takes the name (a StatefulSet's): finish the old one now
            with self._status:  # readers iterate under either lock (see emu/cluster/kubelet.py)
                self.pods[pod.key] = PodState(pod)
        pending = [st for st in self.pods.values() if st.phase == "Pending" and not st.node]
        self._schedule(pending)
        todo = [st for st in pending if st.node]
        own = [names.pod_ns(self.name, st.pod.meta.namespace, st.pod.meta.name) for st in todo if not st.host_network]
        self.record.add_netns(own)
        if own and self.kubelet.dns is not None:
            etcfiles.ensure_parent()
            self.record.add_etc_dirs([netns.etc_dir(n) for n in own])
        self.kubelet.start_all(todo, lambda done: self.progress("pods", done, len(todo)))
        self._sync_services()
        stopped = list(self._stop_after_sync)
        if stopped:
            # The proxies no longer send them anything: let what they already have be
            # answered before their sockets close (no request cut mid-way).
            self.server.drain(stopped)
        for key in stopped:
            self._stop_pod(key)
        if stopped:
            self._stop_after_sync.clear()
            self._sync_services()
            self._dirty.set()  # gone now: controllers may replace them (a StatefulSet's, by name)
        if changes.create or changes.delete or todo or stopped:
            # Only when pods came or went: the sync loop passes here on every readiness flip.
            self._write_pod_record()

    # --- the sync: controllers, Services, policies -----------------------------------------

    def _observed(self) -> dict[str, ObservedPod]:
        now = time.time()
        with self._status:
            for st in self.pods.values():
                st.ready_since = (st.ready_since or now) if st.is_ready else 0.0
            return {
                k: ObservedPod(st.pod, st.phase, st.is_ready, st.terminating, st.node, st.restarts, st.ready_since)
                for k, st in self.pods.items()
            }

    def _sync_services(self) -> None:
        """EndpointSlices, proxies, LB announcements, health checks, host ports, policies:
        from the current state."""
        if self.services is None or not self._up:
            return
        pods = self.pod_views()
        self.services.sync(self.store.services, self.store.service_status, self.store.endpoint_slices, pods)
        self._service_events.update(self.services.slices, self.services.lb_nodes, self._lb_owner)
        if self.dns is not None:
            self.dns.sync(
                self.store.services, self.store.service_status, self.services.slices, pods, list(self.store.namespaces), self.dns_servers()
            )
        if self.policies is not None:
            self.policies.sync(self.policy_view(), pods)
        if self.hostports is not None:
            self.hostports.sync(pods)
        if self.drift is not None:
            self.drift.sync()
        self._sync_gateways()

    def _lb_owner(self, ip: str) -> str | None:
        return next((k for k, st in self.store.service_status.items() if st.lb_ip == ip), None)

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
                    # Controllers first (a pod turned ready lets a rollout take its next
                    # step), then the planes from the new state.
                    self._realise(self.store.reconcile(self._observed(), time.time()))
                except Exception:
                    log.exception("sync failed")

    # --- queries -------------------------------------------------------------------------

    def wait_ready(self, timeout: float) -> list[str]:
        """Wait until every pod is Ready (or done, for Jobs) or the deadline passes; the others."""
        deadline = time.monotonic() + timeout
        with self._status:
            while True:
                left = [k for k, st in self.pods.items() if not st.is_ready and st.phase not in ("Succeeded", "Failed")]
                remaining = deadline - time.monotonic()
                if not left or remaining <= 0:
                    return left
                self._status.wait(min(remaining, 0.5))
