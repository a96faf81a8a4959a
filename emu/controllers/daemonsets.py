"""The DaemonSet controller (pkg/controller/daemon): one pod on every eligible node.

A node is eligible when the template's nodeSelector and required node affinity match it
and its NoSchedule/NoExecute taints are tolerated (the template's tolerations plus the ones
the controller adds to every daemon pod). Each pod is tied to its node by node affinity
`matchFields metadata.name In [node]`, as the controller does since 1.12 (the scheduler
then places it). A pod stays on a node whose new NoSchedule taint it does not tolerate, and
goes from one whose NoExecute taint it does not tolerate. RollingUpdate replaces pods node
by node within maxUnavailable (or creates the new pod first within maxSurge).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from emu.controllers.owned import Result, is_available, is_ready, make_pod, omit_zero, scaled, suffix, with_raw, workload_hash
from emu.controllers.scheduler import NodeInfo, matches_node_selector, pinned_node, untolerated_taint
from emu.model.objects import NodeSelectorRequirement, ObservedPod, Pod, PodSpec, Toleration, Workload

REVISION_LABEL = "controller-revision-hash"

# util.AddOrUpdateDaemonPodTolerations
AUTO_TOLERATIONS = (
    Toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute"),
    Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute"),
    Toleration("node.kubernetes.io/disk-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/memory-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/pid-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/unschedulable", "Exists", "", "NoSchedule"),
)
HOST_NETWORK_TOLERATION = Toleration("node.kubernetes.io/network-unavailable", "Exists", "", "NoSchedule")


def tolerations(spec: PodSpec) -> tuple[Toleration, ...]:
    extra = AUTO_TOLERATIONS + ((HOST_NETWORK_TOLERATION,) if spec.host_network else ())
    have = {(t.key, t.effect) for t in spec.tolerations}
    return spec.tolerations + tuple(t for t in extra if (t.key, t.effect) not in have)


def should_run(ds: Workload, node: NodeInfo) -> tuple[bool, bool]:
    """NodeShouldRunDaemonPod: (should run, should continue running)."""
    spec = ds.template_spec
    if not matches_node_selector(spec, node):
        return False, False
    tols = tolerations(spec)
    if untolerated_taint(node.taints, tols, ("NoExecute",)) is not None:
        return False, False
    if untolerated_taint(node.taints, tols, ("NoSchedule",)) is not None:
        return False, True
    return True, True


def pod_spec(ds: Workload, node: str) -> PodSpec:
    """The template with the automatic tolerations and the node pinned by affinity
    (ReplaceDaemonSetPodNodeNameNodeAffinity replaces the required terms)."""
    t = ds.template_spec
    tols = tolerations(t)
    pin = ((NodeSelectorRequirement("metadata.name", "In", (node,), field=True),),)
    raw: dict[str, Any] = {}
    if t.raw:
        affinity = dict(t.raw.get("affinity") or {})
        node_aff = dict(affinity.get("nodeAffinity") or {})
        node_aff["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
        }
        affinity["nodeAffinity"] = node_aff
        raw_tols = [
            {k: v for k, v in (("key", x.key), ("operator", x.operator), ("value", x.value), ("effect", x.effect)) if v} for x in tols
        ]
        raw = with_raw(t, affinity=affinity, tolerations=raw_tols)
    return dataclasses.replace(t, tolerations=tols, node_affinity=pin, raw=raw)


def pod_name(ds: Workload, node: str, index: int) -> str:
    return f"{ds.meta.name}-{suffix(f'{ds.key}#{node}#{index}')}"


def new_pod(ds: Workload, node: str, index: int) -> Pod:
    return make_pod(ds, pod_name(ds, node, index), {REVISION_LABEL: workload_hash(ds)}, pod_spec(ds, node))


def reconcile(ds: Workload, pods: list[ObservedPod], nodes: list[NodeInfo], next_index: int, now: float = 0.0) -> Result:
    """One sync over `nodes` (file order). `pods`: the pods it owns, in creation order."""
    res = Result(next_index=next_index)
    h = workload_hash(ds)
    known = {n.name for n in nodes}
    by_node: dict[str, list[ObservedPod]] = {}
    for p in pods:
        if p.terminating:
            continue
        node = pinned_node(p.pod.spec) or p.node
        if node not in known or p.phase in ("Failed", "Succeeded"):
            res.deleted(ds, p.pod)  # a failed daemon pod is replaced; a gone node's pod goes
            continue
        by_node.setdefault(node, []).append(p)
    rolling = ds.strategy.type == "RollingUpdate"
    desired = [n for n in nodes if should_run(ds, n)[0]]
    surge = scaled(ds.strategy.max_surge, len(desired), True) if rolling else 0
    unavailable = scaled(ds.strategy.max_unavailable, len(desired), True) if rolling else 0
    if rolling and surge == 0 and unavailable == 0:
        unavailable = 1

    def create(node: str) -> None:
        pod = new_pod(ds, node, res.next_index)
        res.next_index += 1
        by_node.setdefault(node, []).append(ObservedPod(pod))
        res.created(ds, pod)

    def delete(node: str, p: ObservedPod) -> None:
        by_node[node].remove(p)
        res.deleted(ds, p.pod)

    # manage: create where missing, delete where it must not run, delete duplicates.
    for n in nodes:
        run, keep = should_run(ds, n)
        ps = list(by_node.get(n.name, ()))
        if run and not ps:
            create(n.name)
        elif not keep:
            for p in ps:
                delete(n.name, p)
        elif len(ps) > 1:
            new = [p for p in ps if p.pod.meta.labels.get(REVISION_LABEL) == h]
            old = [p for p in ps if p not in new]
            # the oldest is preserved (with surge: the oldest of each revision)
            keepers = (new[:1] + old[:1]) if surge and new and old else ps[:1]
            for p in ps:
                if p not in keepers:
                    delete(n.name, p)
    if rolling:
        _rolling_update(ds, h, nodes, by_node, surge, unavailable, now, create, delete)
        # A node whose old pod just went gets its new one now (terminating pods don't count).
        for n in nodes:
            if not by_node.get(n.name) and should_run(ds, n)[0]:
                create(n.name)
    res.status = status(ds, h, nodes, by_node, now)
    return res


def _rolling_update(
    ds: Workload,
    h: str,
    nodes: list[NodeInfo],
    by_node: dict[str, list[ObservedPod]],
    surge: int,
    unavailable: int,
    now: float,
    create: Callable[[str], None],
    delete: Callable[[str, ObservedPod], None],
) -> None:
    """rollingUpdate in pkg/controller/daemon/update.go, nodes in file order."""

    def avail(p: ObservedPod) -> bool:
        return is_available(p, ds.min_ready_seconds, now)

    def split(ps: list[ObservedPod]) -> tuple[ObservedPod | None, ObservedPod | None]:
        new = next((p for p in ps if p.pod.meta.labels.get(REVISION_LABEL) == h), None)
        old = next((p for p in ps if p.pod.meta.labels.get(REVISION_LABEL) != h), None)
        return new, old

    if surge == 0:
        n_unavailable, allowed, candidates = 0, [], []
        for n in nodes:
            new, old = split(by_node.get(n.name, []))
            if new is None and old is None:
                continue
            if new is not None and old is not None:
                n_unavailable += 1  # the manage loop sorts this node out
            elif new is not None:
                n_unavailable += 0 if avail(new) else 1
            elif old is not None:  # always, as new is None here
                if not avail(old):
                    allowed.append((n.name, old))
                elif n_unavailable < unavailable:
                    candidates.append((n.name, old))
        room = max(0, min(unavailable - n_unavailable, len(candidates)))
        for node, p in allowed + candidates[:room]:
            delete(node, p)
        return
    waiting, allowed_new, candidate_new, old_delete = 0, [], [], []
    for n in nodes:
        new, old = split(by_node.get(n.name, []))
        if old is None:
            continue
        if new is None:
            if not avail(old):
                allowed_new.append(n.name)  # already unavailable: replace at once
            elif waiting < surge:
                candidate_new.append(n.name)
        elif not avail(new):
            waiting += 1  # surged here, waiting for the new pod
        else:
            old_delete.append((n.name, old))  # the new pod is available: the old one goes
    for node, p in old_delete:
        delete(node, p)
    for node in allowed_new + candidate_new[: max(0, min(surge - waiting, len(candidate_new)))]:
        create(node)


def status(ds: Workload, h: str, nodes: list[NodeInfo], by_node: dict[str, list[ObservedPod]], now: float) -> dict[str, Any]:
    desired = current = misscheduled = ready = available = updated = 0
    for n in nodes:
        run = should_run(ds, n)[0]
        ps = by_node.get(n.name, [])
        if run:
            desired += 1
            if ps:
                current += 1
                p = ps[0]
                ready += is_ready(p)
                available += is_available(p, ds.min_ready_seconds, now)
                updated += any(q.pod.meta.labels.get(REVISION_LABEL) == h for q in ps)
        elif ps:
            misscheduled += 1
    out = {
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": desired - available,
    }
    return omit_zero(out, "updatedNumberScheduled", "numberAvailable", "numberUnavailable")
