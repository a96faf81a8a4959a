"""One syncer for the per-node planes (proxy, policy, host ports, pod-network NAT).

Each (plane, node) sync is tried on its own: a failure on one node never leaves the
others unsynced. A failed sync is retried, in full, with exponential backoff until it
succeeds — kube-proxy's RetryAfter and needFullSync (pkg/proxy/nftables/proxier.go). A
table changed behind our back (see emu/netfilter/monitor.py) is marked for a full
rewrite the same way. Each node's last sync, its duration and its error are kept for
`kemu describe node` and `kemu get node -o yaml`.

Concurrency: `run` is called by the cluster's one sync path (under the cluster lock);
`mark_full` comes from the monitor thread. `_lock` guards `_state` only, and is never
held while a plane syncs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.1  # seconds; doubled after each failure in a row
BACKOFF_MAX = 10.0


@dataclass(frozen=True)
class PlaneStatus:
    last_sync: float = 0.0  # wall time of the last success
    duration_ms: float = 0.0
    syncs: int = 0
    failures: int = 0  # in a row, since the last success
    error: str = ""
    full_pending: bool = True  # the next sync rewrites everything (first sync, failure, drift)
    retry_at: float = 0.0
    marks: int = 0  # drift reports so far: one that arrives mid-sync keeps full_pending

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lastSyncTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_sync)) if self.last_sync else None,
            "lastSyncDurationMs": round(self.duration_ms, 2),
            "syncs": self.syncs,
        }
        if self.error:
            out |= {"error": self.error, "failuresInARow": self.failures, "retryInSeconds": round(max(0.0, self.retry_at - time.time()), 2)}
        return out


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# Told of every sync that wrote something or failed: (plane, node, full, ms, error or "").
SyncObserver = Callable[[str, str, bool, float, str], None]


class NodeSyncer:
    def __init__(self, wake: Callable[[], None], observer: SyncObserver | None = None) -> None:
        self._wake = wake  # asks the cluster's sync path to run again
        self._observer = observer
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], PlaneStatus] = {}
        self._timers: dict[tuple[str, str], threading.Timer] = {}
        self._closed = False

    def run(self, plane: str, node: str, sync: Callable[[bool], bool]) -> bool:
        """Run `sync(full)` for one node's plane; True if it succeeded (or had nothing to do)."""
        key = (plane, node)
        with self._lock:
            st = self._state.get(key, PlaneStatus())
        t0 = time.perf_counter()
        try:
            wrote = sync(st.full_pending)
        except Exception as e:  # noqa: BLE001 - any failure of one node's sync is retried
            self._failed(key, st, e)
            return False
        took = (time.perf_counter() - t0) * 1000
        if wrote and self._observer is not None:
            self._observer(plane, node, st.full_pending, took, "")
        if wrote or st.full_pending or st.error:
            if st.error:
                log.warning("%s on %s: synced again after %d failure(s)", plane, node, st.failures)
            with self._lock:
                now = self._state.get(key, st)
                # Drift reported while this sync ran may have undone part of it: again, in full.
                self._state[key] = PlaneStatus(time.time(), took, st.syncs + 1, full_pending=now.marks != st.marks, marks=now.marks)
        return True

    def _failed(self, key: tuple[str, str], st: PlaneStatus, e: Exception) -> None:
        plane, node = key
        failures = st.failures + 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
        msg = one_line(e)
        log.warning("%s on %s: sync failed (%s); full resync in %.1fs", plane, node, msg, delay)
        if self._observer is not None:
            self._observer(plane, node, True, 0.0, f"{msg}; full resync in {delay:.1f} s")
        with self._lock:
            marks = self._state.get(key, st).marks
            self._state[key] = replace(st, failures=failures, error=msg, full_pending=True, retry_at=time.time() + delay, marks=marks)
            if self._closed:
                return
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            t = threading.Timer(delay, self._wake)
            t.daemon = True
            self._timers[key] = t
            t.start()

    def mark_synced(self, plane: str, node: str) -> None:
        """The plane was written on this node outside the syncer (at bring-up)."""
        with self._lock:
            self._state[(plane, node)] = PlaneStatus(time.time(), 0.0, 1, full_pending=False)

    def mark_full(self, plane: str, node: str) -> None:
        """The plane's state on this node is unknown (drift): rewrite it, now."""
        with self._lock:
            st = self._state.get((plane, node), PlaneStatus())
            self._state[(plane, node)] = replace(st, full_pending=True, marks=st.marks + 1)
        self._wake()

    def failing(self) -> dict[tuple[str, str], str]:
        with self._lock:
            return {k: st.error for k, st in self._state.items() if st.error}

    def status(self, node: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {plane: st.as_dict() for (plane, n), st in sorted(self._state.items()) if n == node}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for t in self._timers.values():
                t.cancel()
            self._timers.clear()
