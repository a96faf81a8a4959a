"""What Kubernetes' node lifecycle controller does when a node is cut off (its link down).

kemu's kubelets live in the daemon, so a cut-off node's "kubelet" would keep reporting:
the cut is known from the fault instead. After the node-monitor grace period
(spec.nodeMonitorGracePeriod, 40 s) the node turns NotReady: it is tainted
node.kubernetes.io/unreachable (NoSchedule and NoExecute, so nothing new is placed there
and the taint shows in `get nodes -o yaml`), its Ready condition reads Unknown (emu/cluster/
views.py reads the taint), and its pods are marked not ready, so EndpointSlices and the
proxies stop sending to them. After the eviction timeout (spec.podEvictionTimeout, 300 s:
the default tolerationSeconds of that taint) the pods that do not tolerate the taint are
deleted, and their controllers recreate them on nodes that are Ready. Link up undoes it all
(pods not yet evicted become ready again as their probes say).
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from emu.cluster.events import Involved
from emu.cluster.runtime import Cluster
from emu.controllers.scheduler import untolerated_taint
from emu.errors import KemuError
from emu.model.objects import Taint

log = logging.getLogger(__name__)

UNREACHABLE = "node.kubernetes.io/unreachable"
TAINTS = (Taint(UNREACHABLE, "", "NoSchedule"), Taint(UNREACHABLE, "", "NoExecute"))
COMPONENT = "node-controller"


class NodeLifecycle:
    def __init__(self, c: Cluster) -> None:
        self.c = c
        self._lock = threading.Lock()
        self._timers: dict[str, list[threading.Timer]] = {}  # node → its pending steps

    def lost(self, node: str) -> None:
        """The node's link went down: NotReady after the grace period, evictions after the timeout."""
        with self._lock:
            if node in self._timers:
                return
            steps = [
                threading.Timer(self.c.spec.node_monitor_grace_s, self._not_ready, (node,)),
                threading.Timer(self.c.spec.node_monitor_grace_s + self.c.spec.pod_eviction_timeout_s, self._evict, (node,)),
            ]
            self._timers[node] = steps
        for t in steps:
            t.daemon = True
            t.start()

    # _lock is held across each step (then the cluster's lock): a link coming back while
    # the grace period ends cannot leave a node tainted with no timer to untaint it.
    def back(self, node: str) -> None:
        with self._lock:
            for t in self._timers.pop(node, []):
                t.cancel()
            self._set(node, False)

    def close(self) -> None:
        with self._lock:
            steps = [t for ts in self._timers.values() for t in ts]
            self._timers.clear()
        for t in steps:
            t.cancel()

    def _not_ready(self, node: str) -> None:
        with self._lock:
            if node in self._timers:  # (not back meanwhile)
                self._set(node, True)

    def _set(self, node: str, lost: bool) -> None:
        c = self.c
        with c.lock:
            decl = next((n for n in c.store.nodes if n.name == node), None)
            if not c._up or decl is None or (UNREACHABLE in {t.key for t in decl.taints}) == lost:
                return
            kept = tuple(t for t in decl.taints if t.key != UNREACHABLE)
            new = dataclasses.replace(decl, taints=(*kept, *TAINTS) if lost else kept)
            c.store.nodes = tuple(new if n.name == node else n for n in c.store.nodes)
            with c._status:
                for st in c.pods.values():
                    if st.node == node:
                        st.node_lost = lost
            c.events.record(
                Involved("Node", node),
                "NodeNotReady" if lost else "NodeReady",
                f"Node {node} status is now: {'NodeNotReady (its link is down)' if lost else 'NodeReady'}",
                COMPONENT,
                warning=lost,
            )
            c._sync_services()
        c._dirty.set()  # the controllers and the scheduler look again
        log.info("node %s %s", node, "NotReady" if lost else "Ready again")

    def _evict(self, node: str) -> None:
        with self._lock:
            if node in self._timers:
                self._evict_locked(node)

    def _evict_locked(self, node: str) -> None:
        c = self.c
        with c.lock:
            if not c._up:
                return
            decl = next((n for n in c.store.nodes if n.name == node), None)
            taints = decl.taints if decl is not None else TAINTS
            doomed = [
                st.pod
                for st in c.pods.values()
                if st.node == node and not st.terminating and untolerated_taint(taints, st.pod.spec.tolerations, ("NoExecute",)) is not None
            ]
        for pod in doomed:
            c.events.record(
                Involved("Pod", pod.meta.name, pod.meta.namespace),
                "TaintManagerEviction",
                f"Marking for deletion Pod {pod.key}",
                "taint-eviction-controller",
            )
            try:
                c.delete("Pod", pod.meta.namespace, pod.meta.name, grace=0, wait=False)
            except KemuError as e:  # gone meanwhile (its controller, a user): nothing to evict
                log.info("evicting %s: %s", pod.key, e)
