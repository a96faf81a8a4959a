"""`kemu describe`: the objects asked for, each with what it relates to (a Service's
endpoints, a Deployment's ReplicaSets, a Node's pods) and its events (emu/cli/describe.py
writes the text)."""

from __future__ import annotations

import argparse
import logging
import sys

from emu.cli.argv import UsageError
from emu.cli.describe import describe_deployment, describe_node, describe_other, describe_pod, describe_service
from emu.cli.describe_sections import events_for
from emu.cli.output_format import Obj
from emu.cli.resources import get_named, get_objects, namespace_of, no_resources, not_found, resource_args, selector_of
from emu.daemon.client import pick_cluster
from emu.errors import KemuError

log = logging.getLogger("kemu")


def _events(cluster: str, ns: str, cache: dict[str, list[Obj]]) -> list[Obj]:
    """The events of a namespace ([] when the daemon has none or keeps none)."""
    if ns not in cache:
        try:
            cache[ns] = get_objects(cluster, "Event", ns)
        except KemuError as e:
            log.debug("no events: %s", e)
            cache[ns] = []
    return cache[ns]


def _tolerant_get(cluster: str, kind: str, ns: str, all_ns: bool = False, selector: str | None = None) -> list[Obj]:
    try:
        return get_objects(cluster, kind, ns, all_ns=all_ns, selector=selector)
    except KemuError as e:
        log.debug("get %s: %s", kind, e)
        return []


def describe_one(cluster: str, kind: str, obj: Obj, events_cache: dict[str, list[Obj]]) -> str:
    meta = obj.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    name = str(meta.get("name", ""))
    events = events_for(_events(cluster, ns, events_cache), {**obj, "kind": kind})
    if kind == "Pod":
        return describe_pod(obj, events)
    if kind == "Service":
        slices = _tolerant_get(cluster, "EndpointSlice", ns, selector=f"kubernetes.io/service-name={name}")
        return describe_service(obj, slices, events)
    if kind == "Deployment":
        sel = selector_of(obj)
        rss = _tolerant_get(cluster, "ReplicaSet", ns, selector=sel or None)
        owned = [
            r
            for r in rss
            if not (r.get("metadata") or {}).get("ownerReferences")
            or any(o.get("kind") == "Deployment" and o.get("name") == name for o in r["metadata"]["ownerReferences"])
        ]
        return describe_deployment(obj, owned, events)
    if kind == "Node":
        pods = [p for p in _tolerant_get(cluster, "Pod", "default", all_ns=True) if (p.get("spec") or {}).get("nodeName") == name]
        return describe_node(obj, pods, events)
    return describe_other(obj)


def cmd_describe(args: argparse.Namespace) -> int:
    targets = resource_args(args.words, "describe")
    named = any(names for _, names in targets)
    if named and args.selector:
        raise UsageError("name cannot be provided when a selector is specified")
    cluster, ns = pick_cluster(args.cluster), namespace_of(args)
    texts: list[str] = []
    missing: list[str] = []
    events: dict[str, list[Obj]] = {}
    for info, names in targets:
        objs: list[Obj] = []
        if names:
            for name in names:
                got = get_named(cluster, info, ns, name)
                if not got:  # kubectl describe falls back to a name prefix
                    everything = get_objects(cluster, info.kind, ns)
                    got = [o for o in everything if str((o.get("metadata") or {}).get("name", "")).startswith(name)]
                if not got:
                    missing.append(not_found(info, name))
                objs += got
        else:
            objs = get_objects(cluster, info.kind, ns, all_ns=args.all_namespaces, selector=args.selector)
        texts += [describe_one(cluster, info.kind, o, events) for o in objs]
    if texts:
        print("\n\n\n".join(texts), flush=True)
    for m in missing:
        print(m, file=sys.stderr)
    if not texts and not named:
        print(no_resources([i.kind for i, _ in targets], args), file=sys.stderr)
    return 1 if missing else 0
