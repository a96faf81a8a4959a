"""The StatefulSet controller (stateful_set_control.go): pods `<sts>-0..N-1`, stable names.

Each pod's hostname is its name and its subdomain the governing Service
(`spec.serviceName`), as the controller's updateIdentity sets them. OrderedReady creates
ordinal i only when every lower one is Running and Ready, removes from the highest ordinal,
one at a time, only when the others are healthy; Parallel does both at once. A deleted
pod comes back with the same name once the old one is gone. RollingUpdate replaces pods
from the highest ordinal down to `partition`, one at a time, each once the previous is
Ready again; OnDelete only gives the new template to pods that are re-created.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from emu.controllers.owned import Result, is_available, is_ready, make_pod, omit_zero, with_raw, workload_hash
from emu.model.objects import ObservedPod, Pod, Workload

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def revision_name(sts: Workload) -> str:
    """The ControllerRevision's name, `<sts>-<hash>`, which pods carry as their revision."""
    return f"{sts.meta.name}-{workload_hash(sts)}"


def ordinal(sts: Workload, pod: Pod) -> int | None:
    head, _, tail = pod.meta.name.rpartition("-")
    return int(tail) if head == sts.meta.name and tail.isdigit() else None


def new_pod(sts: Workload, n: int, revision: Workload) -> Pod:
    """Pod `n` from `revision` (the StatefulSet as of the revision it gets)."""
    name = f"{sts.meta.name}-{n}"
    tmpl = revision.template_spec
    sub = sts.service_name
    spec = dataclasses.replace(tmpl, hostname=name, subdomain=sub, raw=with_raw(tmpl, hostname=name, subdomain=sub or None))
    labels = {REVISION_LABEL: revision_name(revision), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(n)}
    pod = make_pod(revision, name, labels, spec)
    return dataclasses.replace(pod, owner=sts.ref)


def reconcile(sts: Workload, pods: list[ObservedPod], current: Workload | None = None, now: float = 0.0) -> Result:
    """One sync. `pods`: the pods it owns with their observed state (pods being deleted
    included, terminating=True); `current`: the StatefulSet as of status.currentRevision
    (None: the same as `sts`). status.currentRevision == updateRevision once rolled out."""
    cur = current or sts
    res = Result()
    live: dict[int, ObservedPod] = {}
    dying: set[int] = set()
    for observed in pods:
        n = ordinal(sts, observed.pod)
        if n is None:
            continue
        if observed.terminating:
            dying.add(n)
        else:
            live[n] = observed
    monotonic = sts.pod_management_policy != "Parallel"
    rolling = sts.strategy.type == "RollingUpdate"
    partition = max(sts.strategy.partition, 0)
    update_rev = revision_name(sts)

    def revision_for(n: int) -> Workload:
        # newVersionedStatefulSetPod: below the partition a pod keeps the current revision.
        return cur if rolling and n < partition else sts

    def create(n: int) -> None:
        pod = new_pod(sts, n, revision_for(n))
        live[n] = ObservedPod(pod)
        res.created(sts, pod, f"create Pod {pod.meta.name} in StatefulSet {sts.meta.name} successful")

    def delete(n: int) -> None:
        pod = live.pop(n).pod
        res.deleted(sts, pod, f"delete Pod {pod.meta.name} in StatefulSet {sts.meta.name} successful")

    def done() -> Result:
        res.status = status(sts, cur, list(live.values()), now)
        return res

    # Replicas: create the missing, replace the failed, in ordinal order.
    for n in range(sts.replicas):
        p = live.get(n)
        if p is None:
            if n in dying:
                if monotonic:
                    return done()  # wait until the old pod with this name is gone
                continue
            create(n)
            if monotonic:
                return done()
            continue
        if p.phase in ("Failed", "Succeeded"):
            delete(n)
            if monotonic:
                return done()
            continue
        if monotonic and not is_ready(p):
            return done()  # wait for Running and Ready
    # Condemned: the highest ordinal first.
    if monotonic and any(n >= sts.replicas for n in dying):
        return done()
    unhealthy = [n for n in sorted(live) if not is_ready(live[n])]
    first_unhealthy = unhealthy[0] if unhealthy else None
    for n in sorted((n for n in live if n >= sts.replicas), reverse=True):
        if monotonic and not is_ready(live[n]) and n != first_unhealthy:
            return done()
        delete(n)
        if monotonic:
            return done()
    if not rolling:
        return done()
    # RollingUpdate: from the highest ordinal down to the partition, one at a time.
    for n in range(sts.replicas - 1, partition - 1, -1):
        p = live.get(n)
        if p is None:
            return done()
        if p.pod.meta.labels.get(REVISION_LABEL) != update_rev:
            delete(n)
            return done()
        if not is_ready(p):
            return done()
    return done()


def status(sts: Workload, cur: Workload, pods: list[ObservedPod], now: float) -> dict[str, Any]:
    update_rev, current_rev = revision_name(sts), revision_name(cur)
    ready = sum(1 for p in pods if is_ready(p))
    updated = sum(1 for p in pods if p.pod.meta.labels.get(REVISION_LABEL) == update_rev)
    current = sum(1 for p in pods if p.pod.meta.labels.get(REVISION_LABEL) == current_rev)
    if updated == len(pods) == ready == sts.replicas:
        # completeRollingUpdate: the update revision becomes the current one.
        current_rev, current = update_rev, updated
    out = {
        "replicas": len(pods),
        "readyReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "availableReplicas": sum(1 for p in pods if is_available(p, sts.min_ready_seconds, now)),
        "currentRevision": current_rev,
        "updateRevision": update_rev,
        "collisionCount": 0,
    }
    return omit_zero(out, "readyReplicas", "currentReplicas", "updatedReplicas")


def rolled_out(st: dict[str, Any]) -> bool:
    return bool(st) and st.get("currentRevision") == st.get("updateRevision")
