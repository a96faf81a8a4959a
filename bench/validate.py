#!/usr/bin/env python3
"""Strict OpenAPI validation of manifests (emu.config.openapi): how fast.

    .venv/bin/python bench/validate.py [--objects N]

Prints the first-use cost (loading the schemas and building the validators), then for each
kind the time per object (every object distinct, so the result cache never answers), then
the mix of N objects (Deployments with a realistic pod template, Services, ConfigMaps,
Pods in equal parts) distinct, and the same N again (answered from the cache). Needs no
root.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emu.config import openapi

Obj = dict[str, Any]


def pod_spec(i: int) -> Obj:
    return {
        "serviceAccountName": f"app-{i}",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000 + i, "fsGroup": 2000, "seccompProfile": {"type": "RuntimeDefault"}},
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": f"app-{i}"}},
                        },
                    }
                ]
            }
        },
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
        "containers": [
            {
                "name": "app",
                "image": f"registry.example.com/app:1.{i}.0",
                "imagePullPolicy": "IfNotPresent",
                "args": ["--port=8080", f"--id={i}"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "metrics", "containerPort": 9090}],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": f"db-{i}", "key": "password"}}},
                ],
                "envFrom": [{"configMapRef": {"name": f"app-{i}"}}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
                "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 10},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}, {"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": f"app-{i}"}}, {"name": "tmp", "emptyDir": {}}],
    }


def labels(i: int) -> Obj:
    return {"app.kubernetes.io/name": f"app-{i}", "app.kubernetes.io/instance": "bench", "helm.sh/chart": "app-1.2.3"}


def deployment(i: int) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"app-{i}", "namespace": "bench", "labels": labels(i)},
        "spec": {
            "replicas": 1 + i % 3,
            "selector": {"matchLabels": {"app.kubernetes.io/name": f"app-{i}"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels(i), "annotations": {"checksum/config": f"{i:064x}"}}, "spec": pod_spec(i)},
        },
    }


def pod(i: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"pod-{i}", "namespace": "bench", "labels": labels(i)},
        "spec": pod_spec(i),
    }


def service(i: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"app-{i}", "namespace": "bench", "labels": labels(i)},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": f"app-{i}"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "metrics", "port": 9090, "targetPort": 9090},
            ],
        },
    }


def config_map(i: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"app-{i}", "namespace": "bench", "labels": labels(i)},
        "data": {"LOG_FORMAT": "json", "app.yaml": f"listen: :8080\nid: {i}\n", "FEATURES": "a,b,c"},
    }


KINDS: dict[str, Callable[[int], Obj]] = {"Deployment": deployment, "Service": service, "ConfigMap": config_map, "Pod": pod}


def timed(objects: list[Obj]) -> float:
    start = time.perf_counter()
    for obj in objects:
        problems = openapi.structural_problems(obj)
        if problems:
            raise SystemExit(f"unexpected problems in {obj['kind']}: {problems}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=1000, help="objects in the mix (default 1000)")
    args = ap.parse_args()
    n = args.objects

    start = time.perf_counter()
    openapi.builtin_kinds()
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    for make in KINDS.values():
        openapi.structural_problems(make(-1))
    first = time.perf_counter() - start
    print(f"first use: schemas loaded in {loaded * 1000:.0f} ms, validators for {len(KINDS)} kinds built in {first * 1000:.0f} ms")

    offset = 1_000_000  # distinct from every object below: nothing comes from the cache
    print(f"{'kind':<12} {'objects':>8} {'ms/object':>10} {'objects/s':>10}")
    for kind, make in KINDS.items():
        objects = [make(offset + i) for i in range(n // 2)]
        offset += n
        took = timed(objects)
        print(f"{kind:<12} {len(objects):>8} {took / len(objects) * 1000:>10.3f} {len(objects) / took:>10.0f}")

    mix = [KINDS[kind](i) for i in range(n // len(KINDS)) for kind in KINDS]
    took = timed(mix)
    print(f"mix of {len(mix)} distinct objects: {took:.3f} s, {len(mix) / took:.0f} objects/s, {took / len(mix) * 1000:.3f} ms/object")
    took = timed(mix)
    print(f"the same {len(mix)} again (cached): {took:.3f} s, {len(mix) / took:.0f} objects/s, {took / len(mix) * 1000:.3f} ms/object")


if __name__ == "__main__":
    main()
