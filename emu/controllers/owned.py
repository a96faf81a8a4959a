"""What every pod-owning controller shares: the pods it reads back, deterministic names,
pods from a template, int-or-percent arithmetic, a result type. Pure."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from emu.model.objects import Meta, ObservedPod, Pod, PodSpec, Workload

# apimachinery's rand.String alphabet: no vowels, no confusable characters.
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def encode(digest: bytes, n: int) -> str:
    return "".join(ALPHABET[b % len(ALPHABET)] for b in digest[:n])


def hash_template(labels: dict[str, str], annotations: dict[str, str], spec: PodSpec) -> str:
    """A pod template's hash (the `pod-template-hash` / revision label), 10 characters."""
    body: dict[str, Any] = {"labels": labels, "spec": dataclasses.asdict(spec)}
    if annotations:
        body["annotations"] = annotations
    blob = json.dumps(body, sort_keys=True, default=str)
    return encode(hashlib.sha256(blob.encode()).digest(), 10)


# Each sync hashes every workload's template; the same Workload object gives the same hash
# (it is frozen), so it is hashed once: id → (the object, its hash), checked by identity.
_HASHES: dict[int, tuple[Workload, str]] = {}


def workload_hash(w: Workload) -> str:
    hit = _HASHES.get(id(w))
    if hit is not None and hit[0] is w:
        return hit[1]
    h = hash_template(w.template_labels, w.template_annotations, w.template_spec)
    if len(_HASHES) > 4096:
        _HASHES.clear()  # old objects: a bound, not an eviction policy
    _HASHES[id(w)] = (w, h)
    return h


def suffix(seed: str) -> str:
    """Five characters, as generateName adds; derived from `seed`, so names repeat per file."""
    return encode(hashlib.sha256(seed.encode()).digest(), 5)


def timestamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def make_pod(w: Workload, name: str, extra_labels: dict[str, str], spec: PodSpec | None = None) -> Pod:
    """A pod from `w`'s template: its labels (+ the controller's), annotations, owner."""
    labels = {**w.template_labels, **extra_labels}
    return Pod(Meta(name, w.meta.namespace, labels, dict(w.template_annotations)), spec or w.template_spec, owner=w.ref)


def with_raw(spec: PodSpec, **raw_fields: Any) -> dict[str, Any]:
    """`spec.raw` with some fields replaced (the typed and written forms kept in step)."""
    if not spec.raw:
        return {}
    raw = dict(spec.raw)
    for k, v in raw_fields.items():
        if v is None:
            raw.pop(k, None)
        else:
            raw[k] = v
    return raw


def scaled(value: int | str, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: "25%" of total, rounded up or down."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text.endswith("%"):
        return int(text)
    pct = int(text[:-1])
    q, r = divmod(pct * total, 100)
    return q + 1 if round_up and r else q


def surge_and_unavailable(max_surge: int | str, max_unavailable: int | str, replicas: int) -> tuple[int, int]:
    """deployment util ResolveFenceposts: surge rounds up, unavailable down; never both 0."""
    surge = scaled(max_surge, replicas, True)
    unavailable = scaled(max_unavailable, replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_active(p: ObservedPod) -> bool:
    """controller.IsPodActive: not finished, not being deleted."""
    return not p.terminating and p.phase not in ("Succeeded", "Failed")


def is_ready(p: ObservedPod) -> bool:
    return p.ready and p.phase == "Running" and not p.terminating


def is_available(p: ObservedPod, min_ready_seconds: int, now: float) -> bool:
    """podutil.IsPodAvailable: Ready for at least minReadySeconds."""
    if not is_ready(p):
        return False
    return min_ready_seconds <= 0 or not p.ready_since or now - p.ready_since >= min_ready_seconds


def deletion_rank(p: ObservedPod, position: int) -> tuple[int, int, int, int]:
    """controller.ActivePodsWithRanks: unscheduled < scheduled, Pending < Running,
    not ready < ready, newer < older (position: creation order) — lowest goes first."""
    phase = {"Pending": 0, "Unknown": 1, "Running": 2}.get(p.phase, 0)
    return (1 if p.node else 0, phase, 1 if is_ready(p) else 0, -position)


def omit_zero(status: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The API omits these fields when zero (`omitempty`)."""
    return {k: v for k, v in status.items() if not (k in keys and not v)}


@dataclass(frozen=True)
class Event:
    """What `kubectl get events` shows: the object ("Kind/name"), type, reason, message."""

    namespace: str
    object: str
    type: str
    reason: str
    message: str


@dataclass
class Result:
    """One controller pass: pods to create and delete, the workload's status, events."""

    create: list[Pod] = field(default_factory=list)
    delete: list[Pod] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    next_index: int = 0  # the naming counter after this pass (ReplicaSet, DaemonSet, Job)

    def created(self, w: Workload, pod: Pod, message: str = "") -> None:
        self.create.append(pod)
        self.events.append(Event(w.meta.namespace, w.ref, "Normal", "SuccessfulCreate", message or f"Created pod: {pod.meta.name}"))

    def deleted(self, w: Workload, pod: Pod, message: str = "") -> None:
        self.delete.append(pod)
        self.events.append(Event(w.meta.namespace, w.ref, "Normal", "SuccessfulDelete", message or f"Deleted pod: {pod.meta.name}"))
