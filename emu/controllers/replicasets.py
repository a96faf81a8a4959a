"""The ReplicaSet controller (replicaset_controller.go): keep `replicas` active pods.

Pods are `<rs>-<5 chars>`, the suffix derived from the ReplicaSet's key and a counter the
store keeps, so a file always yields the same names and a replacement gets a new one.
"""

from __future__ import annotations

from emu.controllers.owned import Result, deletion_rank, is_active, is_available, is_ready, make_pod, omit_zero, suffix
from emu.model.objects import ObservedPod, Pod, Workload


def pod_name(rs: Workload, index: int) -> str:
    return f"{rs.meta.name}-{suffix(f'{rs.key}#{index}')}"


def new_pod(rs: Workload, index: int) -> Pod:
    # The template already carries pod-template-hash when the Deployment made the ReplicaSet.
    return make_pod(rs, pod_name(rs, index), {})


def reconcile(rs: Workload, pods: list[ObservedPod], next_index: int, now: float = 0.0) -> Result:
    """`pods`: the pods it owns, in creation order, with their observed state (terminating
    ones included: they no longer count, as controller.FilterActivePods decides)."""
    res = Result(next_index=next_index)
    # Finished pods do not count; the pod garbage collector removes them (kemu at once).
    for p in pods:
        if not p.terminating and p.phase in ("Succeeded", "Failed"):
            res.deleted(rs, p.pod)
    active = [(i, p) for i, p in enumerate(pods) if is_active(p)]
    diff = len(active) - rs.replicas
    if diff < 0:
        for _ in range(-diff):
            res.created(rs, new_pod(rs, res.next_index))
            res.next_index += 1
    elif diff > 0:
        # getPodsToDelete: the lowest-ranked first (unscheduled, pending, not ready, newest).
        victims = sorted(active, key=lambda ip: deletion_rank(ip[1], ip[0]))[:diff]
        for _, p in victims:
            res.deleted(rs, p.pod)
    gone = {p.key for p in res.delete}
    kept = [p for _, p in active if p.key not in gone] + [ObservedPod(p) for p in res.create]
    res.status = status(rs, kept, now)
    return res


def status(rs: Workload, active: list[ObservedPod], now: float) -> dict[str, object]:
    labelled = sum(1 for p in active if all(p.pod.meta.labels.get(k) == v for k, v in rs.template_labels.items()))
    return omit_zero(
        {
            "replicas": len(active),
            "fullyLabeledReplicas": labelled,
            "readyReplicas": sum(1 for p in active if is_ready(p)),
            "availableReplicas": sum(1 for p in active if is_available(p, rs.min_ready_seconds, now)),
        },
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
    )
