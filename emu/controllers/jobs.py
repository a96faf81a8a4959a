"""The Job controller (pkg/controller/job): run pods to completion.

`parallelism` pods run at once; the Job is Complete when `completions` pods have Succeeded
(no completions: when one has and the others have finished, the "work queue" pattern).
Failed pods count against backoffLimit (restartPolicy Never); with OnFailure the kubelet
restarts containers in place and their restarts count. Past the limit, or past
activeDeadlineSeconds, the Job is Failed and its running pods are deleted. Succeeded and
failed pods are kept, as upstream keeps them (`kubectl logs` works on them).
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from emu.controllers.owned import Event, Result, deletion_rank, is_active, is_ready, make_pod, suffix, timestamp
from emu.model.objects import ObservedPod, Pod, Workload

JOB_NAME = "batch.kubernetes.io/job-name"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"


@dataclass(frozen=True)
class JobTracking:
    """What the Job's status remembers between passes (finished pods stay counted even
    after they are deleted, as the controller's finalizer-based tracking does)."""

    start_time: float = 0.0
    succeeded: frozenset[str] = frozenset()
    failed: frozenset[str] = frozenset()
    finished: str = ""  # "" | "Complete" | "Failed"
    reason: str = ""
    message: str = ""
    finished_at: float = 0.0


def controller_uid(job: Workload) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kemu/Job/{job.key}"))


def pod_labels(job: Workload) -> dict[str, str]:
    uid = controller_uid(job)
    return {CONTROLLER_UID: uid, JOB_NAME: job.meta.name, "controller-uid": uid, "job-name": job.meta.name}


def new_pod(job: Workload, index: int) -> Pod:
    return make_pod(job, f"{job.meta.name}-{suffix(f'{job.key}#{index}')}", pod_labels(job))


def reconcile(
    job: Workload, pods: list[ObservedPod], tracking: JobTracking, next_index: int, now: float = 0.0
) -> tuple[Result, JobTracking]:
    """One sync. `pods`: the pods it owns, in creation order, with their observed state."""
    res = Result(next_index=next_index)
    t = tracking
    if not t.start_time and not job.suspend:
        t = dataclasses.replace(t, start_time=now)
    t = dataclasses.replace(
        t,
        succeeded=t.succeeded | {p.pod.meta.name for p in pods if p.phase == "Succeeded"},
        failed=t.failed | {p.pod.meta.name for p in pods if p.phase == "Failed"},
    )
    active = [(i, p) for i, p in enumerate(pods) if is_active(p)]
    n_ok, n_failed = len(t.succeeded), len(t.failed)
    if not t.finished:
        verdict = _verdict(job, t, [p for _, p in active], now)
        if verdict is not None:
            kind, reason, message = verdict
            t = dataclasses.replace(t, finished=kind, reason=reason, message=message, finished_at=now)
            warn = "Normal" if kind == "Complete" else "Warning"
            res.events.append(
                Event(job.meta.namespace, job.ref, warn, "Completed" if kind == "Complete" else reason, _event(kind, message))
            )
    if t.finished:
        want = 0  # a finished Job's remaining pods are deleted
    elif job.suspend:
        want = 0
    elif job.completions is None:
        # Work queue: once one pod has succeeded, leave whatever runs running, add none.
        want = len(active) if n_ok else job.parallelism
    else:
        want = max(0, min(job.completions - n_ok, job.parallelism))
    diff = len(active) - want
    if diff > 0:
        for _, p in sorted(active, key=lambda ip: deletion_rank(ip[1], ip[0]))[:diff]:
            res.deleted(job, p.pod)
    for _ in range(-diff):
        res.created(job, new_pod(job, res.next_index))
        res.next_index += 1
    gone = {p.key for p in res.delete}
    running = [p for _, p in active if p.key not in gone] + [ObservedPod(p) for p in res.create]
    res.status = status(t, running, n_ok, n_failed)
    return res, t


def _verdict(job: Workload, t: JobTracking, active: list[ObservedPod], now: float) -> tuple[str, str, str] | None:
    n_ok, n_failed = len(t.succeeded), len(t.failed)
    restarts = sum(p.restarts for p in active) if job.template_spec.restart_policy == "OnFailure" else 0
    if n_failed > job.backoff_limit or (restarts and (restarts >= job.backoff_limit if job.backoff_limit else restarts > 0)):
        return "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    deadline = job.active_deadline_seconds
    if deadline is not None and t.start_time and now - t.start_time >= deadline:
        return "Failed", "DeadlineExceeded", "Job was active longer than specified deadline"
    if job.completions is None:
        done = n_ok > 0 and not active
    else:
        done = n_ok >= job.completions
    if done:
        return "Complete", "CompletionsReached", "Reached expected number of succeeded pods"
    return None


def _event(kind: str, message: str) -> str:
    return "Job completed" if kind == "Complete" else message


def status(t: JobTracking, active: list[ObservedPod], succeeded: int, failed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.start_time:
        out["startTime"] = timestamp(t.start_time)
    if t.finished == "Complete":
        out["completionTime"] = timestamp(t.finished_at)
    if active:
        out["active"] = len(active)
    if succeeded:
        out["succeeded"] = succeeded
    if failed:
        out["failed"] = failed
    out["ready"] = sum(1 for p in active if is_ready(p))
    out["uncountedTerminatedPods"] = {}
    if t.finished:
        when = timestamp(t.finished_at)
        out["conditions"] = [
            {
                "type": t.finished,
                "status": "True",
                "reason": t.reason,
                "message": t.message,
                "lastProbeTime": when,
                "lastTransitionTime": when,
            }
        ]
    return out
