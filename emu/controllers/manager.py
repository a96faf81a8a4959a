"""kube-controller-manager's workload part: every pod-owning controller, run over the
store's objects and the pods' observed state. Pure (the caller passes `now`).

It reads and writes the store's `pods` and `workloads` dicts in place (as controllers
write through the API server) and keeps what the controllers remember between passes:
naming counters, a Job's counted pods, a StatefulSet's current revision, every status.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from emu.controllers import daemonsets, deployments, jobs, replicasets, statefulsets
from emu.controllers.jobs import JobTracking
from emu.controllers.owned import Event, Result, timestamp
from emu.controllers.scheduler import NodeInfo
from emu.model.objects import ObservedPod, Pod, Workload

WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")
ROUNDS = 20  # Deployment syncs per pass at most (each is one step of a rollout)


@dataclass
class Outcome:
    create: list[Pod] = field(default_factory=list)
    delete: list[Pod] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    statuses: list[tuple[str, str]] = field(default_factory=list)  # (kind, key) whose status changed
    new_workloads: list[Workload] = field(default_factory=list)  # ReplicaSets a Deployment made


@dataclass
class ControllerManager:
    observed: dict[str, ObservedPod] = field(default_factory=dict)  # pod key → last report
    next_index: dict[str, int] = field(default_factory=dict)  # "Kind/ns/name" → naming counter
    job_tracking: dict[str, JobTracking] = field(default_factory=dict)
    sts_current: dict[str, Workload] = field(default_factory=dict)  # StatefulSet key → current revision
    status: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def forget(self, kind: str, key: str) -> None:
        self.status.pop((kind, key), None)
        self.next_index.pop(f"{kind}/{key}", None)
        if kind == "Job":
            self.job_tracking.pop(key, None)
        if kind == "StatefulSet":
            self.sts_current.pop(key, None)

    def sync(
        self,
        pods: dict[str, Pod],
        workloads: dict[tuple[str, str], Workload],
        nodes: list[NodeInfo],
        generations: dict[tuple[str, str], int],
        now: float,
    ) -> Outcome:
        run = _Pass(self, pods, workloads, nodes, generations, now)
        for (kind, _), w in list(workloads.items()):
            if kind == "Deployment":
                run.deployment(w)
        for (kind, key), w in list(workloads.items()):
            if (kind, key) not in workloads:
                continue
            if kind == "ReplicaSet":
                run.replicaset(w)
            elif kind == "StatefulSet":
                run.statefulset(w)
            elif kind == "DaemonSet":
                run.daemonset(w)
            elif kind == "Job":
                run.job(w)
        for (kind, key), st in run.statuses.items():
            if (kind, key) not in workloads:
                continue
            st = {"observedGeneration": generations.get((kind, key), 1), **st}
            old = self.status.get((kind, key), {})
            st = _stamp(old, st, now)
            if st != old:
                self.status[(kind, key)] = st
                run.out.statuses.append((kind, key))
        return run.out


class _Pass:
    """One pass of every controller (the owned-pods index kept up to date as it goes)."""

    def __init__(
        self,
        cm: ControllerManager,
        pods: dict[str, Pod],
        workloads: dict[tuple[str, str], Workload],
        nodes: list[NodeInfo],
        generations: dict[tuple[str, str], int],
        now: float,
    ) -> None:
        self.cm, self.pods, self.workloads, self.nodes, self.now = cm, pods, workloads, nodes, now
        self.generations = generations
        self.out = Outcome()
        self.statuses: dict[tuple[str, str], dict[str, Any]] = {}
        self.owned: dict[tuple[str, str], list[ObservedPod]] = {}
        for p in pods.values():
            if p.owner:
                self.owned.setdefault((p.meta.namespace, p.owner), []).append(self._observed(p))
        for key, o in cm.observed.items():
            # Reported by the kubelet but gone from the store: it is terminating.
            if key not in pods and o.pod.owner and o.phase not in ("Succeeded", "Failed"):
                ghost = dataclasses.replace(o, terminating=True, ready=False)
                self.owned.setdefault((o.pod.meta.namespace, o.pod.owner), []).append(ghost)

    def _observed(self, p: Pod) -> ObservedPod:
        o = self.cm.observed.get(p.key)
        if o is None or o.pod.owner != p.owner:
            return ObservedPod(p)
        return o if o.pod is p else dataclasses.replace(o, pod=p)

    def _pods_of(self, w: Workload) -> list[ObservedPod]:
        return self.owned.get((w.meta.namespace, w.ref), [])

    def _apply(self, w: Workload, res: Result) -> None:
        mine = self.owned.setdefault((w.meta.namespace, w.ref), [])
        gone = {p.key for p in res.delete}
        if gone:
            # A pod the kubelet runs stays, terminating, until it reports it gone.
            mine[:] = [
                p if p.key not in gone or p.terminating else dataclasses.replace(p, terminating=True, ready=False)
                for p in mine
                if p.key not in gone or p.terminating or p.key in self.cm.observed
            ]
        for p in res.delete:
            if self.pods.pop(p.key, None) is not None:
                self.out.delete.append(p)
        for p in res.create:
            self.pods[p.key] = p
            mine.append(ObservedPod(p))
            self.out.create.append(p)
        self.out.events += res.events
        if res.next_index:
            self.cm.next_index[f"{w.kind}/{w.key}"] = res.next_index
        self.statuses[(w.kind, w.key)] = res.status

    def _index(self, w: Workload) -> int:
        return self.cm.next_index.get(f"{w.kind}/{w.key}", 0)

    def deployment(self, d: Workload) -> None:
        for _ in range(ROUNDS):
            rss = self._replicasets_of(d)
            step = deployments.step(d, rss, {r.meta.name: self._pods_of(r) for r in rss}, self.now)
            self.out.events += step.events
            if not step:
                break
            for rs in step.replicasets:
                key = ("ReplicaSet", rs.key)
                before = self.workloads.get(key)
                if before is None:
                    self.out.new_workloads.append(rs)
                if before is None or before.replicas != rs.replicas:
                    self.generations[key] = self.generations.get(key, 0) + 1  # a spec change
                self.workloads[key] = rs
            for rs in step.replicasets:
                self.replicaset(self.workloads[("ReplicaSet", rs.key)])
            for rs in step.delete:
                self.workloads.pop(("ReplicaSet", rs.key), None)
                self.cm.forget("ReplicaSet", rs.key)
                self.statuses.pop(("ReplicaSet", rs.key), None)
        rss = self._replicasets_of(d)
        self.statuses[("Deployment", d.key)] = deployments.status(d, rss, {r.meta.name: self._pods_of(r) for r in rss}, self.now)

    def _replicasets_of(self, d: Workload) -> list[Workload]:
        return [
            w
            for (kind, _), w in self.workloads.items()
            if kind == "ReplicaSet" and w.owner == d.ref and w.meta.namespace == d.meta.namespace
        ]

    def replicaset(self, rs: Workload) -> None:
        self._apply(rs, replicasets.reconcile(rs, self._pods_of(rs), self._index(rs), self.now))

    def statefulset(self, sts: Workload) -> None:
        current = self.cm.sts_current.get(sts.key)
        res = statefulsets.reconcile(sts, self._pods_of(sts), current, self.now)
        self._apply(sts, res)
        if current is None or statefulsets.rolled_out(res.status):
            self.cm.sts_current[sts.key] = sts

    def daemonset(self, ds: Workload) -> None:
        self._apply(ds, daemonsets.reconcile(ds, self._pods_of(ds), self.nodes, self._index(ds), self.now))

    def job(self, job: Workload) -> None:
        tracking = self.cm.job_tracking.get(job.key, JobTracking())
        res, tracking = jobs.reconcile(job, self._pods_of(job), tracking, self._index(job), self.now)
        self.cm.job_tracking[job.key] = tracking
        self._apply(job, res)


def _stamp(old: dict[str, Any], new: dict[str, Any], now: float) -> dict[str, Any]:
    """Conditions' times: kept while a condition's status (and reason) stays, else now."""
    conds = new.get("conditions")
    if not conds:
        return new
    before = {c["type"]: c for c in old.get("conditions", ())}
    stamped = []
    for c in conds:
        c = dict(c)
        prev = before.get(c["type"])
        same = prev is not None and prev.get("status") == c.get("status")
        if c.get("lastTransitionTime") == "":
            c["lastTransitionTime"] = prev["lastTransitionTime"] if same and prev else timestamp(now)
        if c.get("lastUpdateTime") == "":
            unchanged = same and prev and prev.get("reason") == c.get("reason") and prev.get("message") == c.get("message")
            c["lastUpdateTime"] = prev["lastUpdateTime"] if unchanged and prev else timestamp(now)
        stamped.append(c)
    return {**new, "conditions": stamped}
