"""Gateways and Ingresses in the running cluster: compile, deploy their proxies, reload them.

A mixin of emu.cluster.runtime.Cluster (its methods run on the Cluster, under its lock):
the last step of every sync of the planes. The GatewayPlane compiles the Gateway API and
Ingress objects; the proxies' Deployments and Services it wants are applied through the
store like any object (and realised, which syncs again: a flag stops the recursion); the
running proxies are reloaded and the status follows from which of them are ready.
`wait_gateways` is what `kemu apply` waits on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from emu.cluster.gateways import GatewayPlane, ProxyPod, world_of
from emu.cluster.pod_state import PodState
from emu.cluster.services import ServicePlane
from emu.cluster.store import Changes, Store
from emu.config.loader import ParsedManifests, manifests_of
from emu.gateway import deploy


class GatewaySync:
    # The Cluster's state and methods these use (set in Cluster.__init__ and up).
    lock: threading.RLock
    store: Store
    pods: dict[str, PodState]
    services: ServicePlane | None
    gateways: GatewayPlane | None
    _status: threading.Condition
    _dirty: threading.Event
    _in_gateway_sync: bool
    _proxy_ready: dict[str, bool]
    _realise: Callable[[Changes], None]
    _as_order: Callable[[list[dict[str, Any]]], list[tuple[str, Any]]]

    def _sync_gateways(self) -> None:
        """Gateways and Ingresses: compile, deploy the proxies (objects applied here go
        through _realise, which comes back here: the flag stops the recursion), write
        their configurations, reload the running ones, then the status from the result."""
        g = self.gateways
        if g is None or self._in_gateway_sync or self.services is None:
            return
        self._in_gateway_sync = True
        try:
            for _ in range(3):  # new proxy Services get LB IPs: a second pass sees them
                g.compile(world_of(self.store, self.services.slices, self._proxy_ready))
                g.write()
                if not self._apply_owned(g.wanted()):
                    break
            by_label = g.proxy_of_label()
            with self._status:
                pods = [
                    ProxyPod(k, by_label[lbl], st.is_ready, bool(st.procs) and not st.terminating)
                    for k, st in self.pods.items()
                    if (lbl := st.pod.meta.labels.get(deploy.PROXY_LABEL)) in by_label
                ]
            ready = g.reload(pods)
            if ready != self._proxy_ready:  # Programmed follows: the status from the new state
                self._proxy_ready = ready
                g.compile(world_of(self.store, self.services.slices, ready))
        finally:
            self._in_gateway_sync = False

    def wait_gateways(self, timeout: float) -> list[str]:
        """Wait until every proxy serves its latest configuration from a ready pod (a new
        Gateway is reachable when `kemu apply` returns); the proxies still not ready."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                late = [p for p in (self.gateways.compiled.proxies if self.gateways else ()) if not self._proxy_ready.get(p)]
            if not late or time.monotonic() > deadline:
                return late
            self._dirty.set()  # readiness flips come through the sync loop
            with self._status:
                self._status.wait(0.05)

    def _apply_owned(self, wanted: dict[tuple[str, str, str], dict[str, Any]]) -> bool:
        """Make the proxies' objects what the plane wants; True if anything changed."""
        assert self.gateways is not None
        owned = self.gateways.owned
        changed = False
        fresh = {k: d for k, d in wanted.items() if owned.get(k) != d or self.store.get(k[0], k[1], k[2]) is None}
        if fresh:
            order = self._as_order(list(fresh.values()))
            self._realise(self.store.apply(ParsedManifests(manifests_of(order), {}, order), now=time.time()))
            owned.update(fresh)
            changed = True
        for k in [k for k in owned if k not in wanted]:
            del owned[k]
            if self.store.get(k[0], k[1], k[2]) is not None:
                self._realise(self.store.delete(k[0], k[1], k[2], now=time.time()))
                changed = True
        return changed
