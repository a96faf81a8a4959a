"""The Deployment controller: replicas → pods with deterministic names.

Names follow Kubernetes' shape `<deployment>-<template hash>-<suffix>`; both parts are
derived from the Deployment (not random) so a file always yields the same pod names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from emu.model.objects import Deployment, Meta, Pod

# apimachinery's rand.String alphabet: no vowels, no confusable characters.
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _encode(digest: bytes, n: int) -> str:
    return "".join(ALPHABET[b % len(ALPHABET)] for b in digest[:n])


def template_hash(d: Deployment) -> str:
    blob = json.dumps({"labels": d.template_labels, "spec": asdict(d.template_spec)}, sort_keys=True)
    return _encode(hashlib.sha256(blob.encode()).digest(), 10)


def pod_name(d: Deployment, index: int) -> str:
    suffix = _encode(hashlib.sha256(f"{d.key}#{index}".encode()).digest(), 5)
    return f"{d.meta.name}-{template_hash(d)}-{suffix}"


def make_pod(d: Deployment, index: int) -> Pod:
    labels = dict(d.template_labels)
    labels["pod-template-hash"] = template_hash(d)
    return Pod(Meta(pod_name(d, index), d.meta.namespace, labels), d.template_spec, owner=d.meta.name)


def reconcile(d: Deployment, owned: list[Pod], next_index: int) -> tuple[list[Pod], list[Pod], int]:
    """(pods to create, pods to delete, new next_index) so that `owned` matches the spec.

    Pods of an older template are replaced (a recreate rollout); surplus pods go newest first.
    """
    current = template_hash(d)
    stale = [p for p in owned if p.meta.labels.get("pod-template-hash") != current]
    keep = [p for p in owned if p not in stale]
    delete = list(stale)
    if len(keep) > d.replicas:
        delete += keep[d.replicas :]
        keep = keep[: d.replicas]
    create = []
    while len(keep) + len(create) < d.replicas:
        create.append(make_pod(d, next_index))
        next_index += 1
    return create, delete, next_index
