"""The Deployment controller (pkg/controller/deployment): a Deployment → ReplicaSets.

Each template gets a ReplicaSet `<deployment>-<pod-template-hash>` (the hash derived from
the template, so a file always yields the same names); the ReplicaSet controller makes
the pods. `step` is one sync: given the ReplicaSets and their pods' observed state, the
ReplicaSets' next sizes. RollingUpdate scales the new one up within maxSurge and old ones
down within maxUnavailable (counting available pods); Recreate scales the old ones to 0,
waits until their pods are gone, then scales the new one up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from emu.controllers.owned import Event, is_active, is_available, is_ready, omit_zero, surge_and_unavailable, workload_hash
from emu.model.objects import Meta, ObservedPod, Workload
from emu.model.selectors import LabelSelector

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX = "deployment.kubernetes.io/max-replicas"


def template_hash(d: Workload) -> str:
    return workload_hash(d)


def rs_name(d: Workload) -> str:
    return f"{d.meta.name}-{template_hash(d)}"


def revision(rs: Workload) -> int:
    v = rs.meta.annotations.get(REVISION, "0")
    return int(v) if v.isdigit() else 0


def max_unavailable(d: Workload) -> int:
    """deployment util MaxUnavailable: 0 for Recreate, at most replicas."""
    if d.strategy.type != "RollingUpdate" or d.replicas == 0:
        return 0
    return min(surge_and_unavailable(d.strategy.max_surge, d.strategy.max_unavailable, d.replicas)[1], d.replicas)


def max_surge(d: Workload) -> int:
    if d.strategy.type != "RollingUpdate":
        return 0
    return surge_and_unavailable(d.strategy.max_surge, d.strategy.max_unavailable, d.replicas)[0]


def new_replicaset(d: Workload, replicas: int, rev: int) -> Workload:
    h = template_hash(d)
    labels = {**d.template_labels, HASH_LABEL: h}
    annotations = {REVISION: str(rev), DESIRED: str(d.replicas), MAX: str(d.replicas + max_surge(d))}
    selector = LabelSelector({**d.selector.match_labels, HASH_LABEL: h}, d.selector.match_expressions)
    return Workload(
        kind="ReplicaSet",
        meta=Meta(f"{d.meta.name}-{h}", d.meta.namespace, dict(labels), annotations),
        replicas=replicas,
        selector=selector,
        template_labels=labels,
        template_spec=d.template_spec,
        template_annotations=dict(d.template_annotations),
        min_ready_seconds=d.min_ready_seconds,
        owner=d.ref,
    )


@dataclass
class Step:
    """ReplicaSets to create or resize, ReplicaSets to delete (history beyond the limit)."""

    replicasets: list[Workload] = field(default_factory=list)
    delete: list[Workload] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.replicasets or self.delete)


def step(d: Workload, replicasets: list[Workload], pods: dict[str, list[ObservedPod]], now: float = 0.0) -> Step:
    """One sync of the Deployment. `replicasets`: the ones it owns, oldest first; `pods`:
    ReplicaSet name → its pods (terminating ones included)."""
    name = rs_name(d)
    current = {r.meta.name: r for r in replicasets}
    new = current.get(name)
    old = [r for r in replicasets if r.meta.name != name]
    out = Step()

    def scale(rs: Workload, n: int) -> None:
        if rs.replicas == n and rs.meta.name in current:
            return
        ann = {**rs.meta.annotations, DESIRED: str(d.replicas), MAX: str(d.replicas + max_surge(d))}
        resized = dataclasses.replace(rs, replicas=n, meta=dataclasses.replace(rs.meta, annotations=ann))
        out.replicasets.append(resized)
        current[rs.meta.name] = resized
        way = "up" if n >= rs.replicas else "down"
        message = f"Scaled {way} replica set {rs.meta.name} from {rs.replicas} to {n}"
        out.events.append(Event(d.meta.namespace, d.ref, "Normal", "ScalingReplicaSet", message))

    def available(rs: Workload) -> int:
        return sum(1 for p in pods.get(rs.meta.name, ()) if is_available(p, d.min_ready_seconds, now))

    top = max((revision(r) for r in replicasets), default=0)
    if new is not None and revision(new) < top:
        # A rollback to an older template: its ReplicaSet becomes the newest revision.
        new = dataclasses.replace(new, meta=dataclasses.replace(new.meta, annotations={**new.meta.annotations, REVISION: str(top + 1)}))
        current[name] = new
        out.replicasets.append(new)

    if d.strategy.type == "Recreate":
        active_old = [r for r in old if r.replicas > 0]
        for r in active_old:
            scale(r, 0)
        if active_old:
            return out
        if any(p.phase not in ("Succeeded", "Failed") for r in old for p in pods.get(r.meta.name, ())):
            return out  # wait until every old pod is gone
        if new is None:
            new = new_replicaset(d, 0, top + 1)
        scale(new, d.replicas)
        _prune_history(d, old, pods, out)
        return out

    surge, unavailable = max_surge(d), max_unavailable(d)
    if new is None:
        others = sum(r.replicas for r in old)
        room = d.replicas + surge - others
        scale(new_replicaset(d, 0, top + 1), max(0, min(room, d.replicas)))
        return out
    # reconcileNewReplicaSet
    if new.replicas > d.replicas:
        scale(new, d.replicas)
        return out
    if new.replicas < d.replicas:
        total = sum(r.replicas for r in current.values())
        if total < d.replicas + surge:
            scale(new, new.replicas + min(d.replicas + surge - total, d.replicas - new.replicas))
            return out
    # reconcileOldReplicaSets
    if sum(r.replicas for r in old) == 0:
        _prune_history(d, old, pods, out)
        return out
    min_available = d.replicas - unavailable
    new_unavailable = new.replicas - available(new)
    max_down = sum(r.replicas for r in current.values()) - min_available - new_unavailable
    if max_down <= 0:
        return out
    # cleanupUnhealthyReplicas: old ReplicaSets' unavailable pods go first.
    done = 0
    for r in old:
        r = current[r.meta.name]
        if done >= max_down:
            break
        if r.replicas == 0 or r.replicas == available(r):
            continue
        k = min(max_down - done, r.replicas - available(r))
        scale(r, r.replicas - k)
        done += k
    # scaleDownOldReplicaSetsForRollingUpdate: then available ones, down to minAvailable.
    avail_all = sum(available(r) for r in current.values())
    budget = avail_all - min_available
    for r in old:
        r = current[r.meta.name]
        if budget <= 0:
            break
        if r.replicas == 0:
            continue
        k = min(r.replicas, budget)
        scale(r, r.replicas - k)
        budget -= k
    return out


def _prune_history(d: Workload, old: list[Workload], pods: dict[str, list[ObservedPod]], out: Step) -> None:
    """cleanupDeployment: old ReplicaSets at 0 with no pods, beyond revisionHistoryLimit."""
    idle = [r for r in old if r.replicas == 0 and not pods.get(r.meta.name)]
    extra = len(idle) - max(d.revision_history_limit, 0)
    out.delete += sorted(idle, key=revision)[: max(extra, 0)]


def status(d: Workload, replicasets: list[Workload], pods: dict[str, list[ObservedPod]], now: float = 0.0) -> dict[str, Any]:
    name = rs_name(d)
    active = {r.meta.name: [p for p in pods.get(r.meta.name, ()) if is_active(p)] for r in replicasets}
    every = [p for ps in active.values() for p in ps]
    replicas = sum(r.replicas for r in replicasets)
    updated = len(active.get(name, ()))
    ready = sum(1 for p in every if is_ready(p))
    available = sum(1 for p in every if is_available(p, d.min_ready_seconds, now))
    ok = available >= d.replicas - max_unavailable(d)
    complete = updated == d.replicas and len(every) == d.replicas and available == d.replicas
    conditions = [
        {
            "type": "Available",
            "status": "True" if ok else "False",
            "reason": "MinimumReplicasAvailable" if ok else "MinimumReplicasUnavailable",
            "message": "Deployment has minimum availability." if ok else "Deployment does not have minimum availability.",
            "lastUpdateTime": "",
            "lastTransitionTime": "",
        },
        {
            "type": "Progressing",
            "status": "True",
            "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
            "message": f'ReplicaSet "{name}" has successfully progressed.' if complete else f'ReplicaSet "{name}" is progressing.',
            "lastUpdateTime": "",
            "lastTransitionTime": "",
        },
    ]
    out = {
        "replicas": len(every),
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": max(replicas - available, 0),
        "conditions": conditions,
    }
    return omit_zero(out, "replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")
