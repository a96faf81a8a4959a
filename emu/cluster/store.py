"""The object store: what the API server holds, with its admission rules. Pure.

Every kind is stored: typed objects for the kinds with network meaning, `Unstructured`
for the rest. Every change runs the controllers (kube-controller-manager's part) against
the pods' last observed state and returns the pods to create and delete; the runtime
turns those into namespaces and processes. Validation errors leave the store untouched.
"""

from __future__ import annotations

import builtins  # `list` is also a method of Store
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emu.cluster import admission
from emu.cluster.changes import Changes as Changes  # re-exported: callers take it from here
from emu.config import registry
from emu.config.cluster import SYSTEM_NAMESPACES
from emu.controllers import service_alloc
from emu.controllers.changelog import LoggedDict
from emu.controllers.manager import WORKLOAD_KINDS, ControllerManager
from emu.controllers.scheduler import node_infos
from emu.errors import NotFoundError, Problem, ValidationError
from emu.model.objects import (
    NAMESPACE_NAME_LABEL,
    ClusterSpec,
    Manifests,
    Meta,
    Namespace,
    NodeDecl,
    ObservedPod,
    Pod,
    Unstructured,
    Workload,
)
from emu.model.policy import NetworkPolicy
from emu.model.services import EndpointSlice, Service, ServiceStatus

if TYPE_CHECKING:
    from emu.config.loader import ParsedManifests

SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet")
TYPED = {"Service": "services", "EndpointSlice": "endpoint_slices", "NetworkPolicy": "network_policies"}


def _cli(message: str) -> ValidationError:
    return ValidationError([Problem("<command line>", "", message)])


def kind_of(obj: Any) -> str:
    return obj.kind if isinstance(obj, (Workload, Unstructured)) else type(obj).__name__


def object_key(obj: Any) -> str:
    """`ns/name` for namespaced objects, `name` for the others (created/status keys)."""
    ns = obj.meta.namespace
    return f"{ns}/{obj.meta.name}" if ns else obj.meta.name


@dataclass
class Store:
    spec: ClusterSpec
    started: float = 0.0  # when the system namespaces were created
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)  # "ns/name", in creation order
    workloads: dict[tuple[str, str], Workload] = field(default_factory=dict)  # (kind, "ns/name")
    # Change-logged: the service plane, DNS and gateways look at what changed since they last did.
    services: dict[str, Service] = field(default_factory=LoggedDict)
    endpoint_slices: dict[str, EndpointSlice] = field(default_factory=dict)  # manual ones
    service_status: dict[str, ServiceStatus] = field(default_factory=LoggedDict)
    network_policies: dict[str, NetworkPolicy] = field(default_factory=dict)
    others: dict[tuple[str, str, str], Unstructured] = field(default_factory=dict)  # (kind, namespace, name)
    created: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, key) → creation time
    generation: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, key) of workloads → metadata.generation
    nodes: tuple[NodeDecl, ...] = ()  # the spec's nodes, with labels as `kemu label node` left them
    controllers: ControllerManager = field(default_factory=ControllerManager)

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes = self.spec.nodes
        for name in SYSTEM_NAMESPACES:
            if name not in self.namespaces:
                self.namespaces[name] = Namespace(Meta(name, labels={NAMESPACE_NAME_LABEL: name}))
                self.created[("Namespace", name)] = self.started

    @property
    def deployments(self) -> dict[str, Workload]:
        return {key: w for (kind, key), w in self.workloads.items() if kind == "Deployment"}

    @property
    def observed(self) -> dict[str, ObservedPod]:
        return self.controllers.observed

    def workload_status(self, kind: str, key: str) -> dict[str, Any]:
        """The workload's `status` as the API shows it ({} before its first sync)."""
        return self.controllers.status.get((kind, key), {})

    def manifests(self) -> Manifests:
        return Manifests(
            tuple(self.namespaces.values()),
            tuple(p for p in self.pods.values() if not p.owner),
            tuple(w for w in self.workloads.values() if not w.owner),
            tuple(self.services.values()),
            tuple(self.endpoint_slices.values()),
            tuple(self.network_policies.values()),
            tuple(self.others.values()),
        )

    # --- reading -------------------------------------------------------------------------

    def list(self, kind: str, namespace: str | None = None) -> list[Any]:
        """Every object of `kind` (in `namespace`; None: all), in creation order."""
        kind = _kind(kind)
        if kind == "Namespace":
            return list(self.namespaces.values())
        if kind == "Node":
            return list(self.nodes)
        if kind == "Pod":
            items: list[Any] = list(self.pods.values())
        elif kind in WORKLOAD_KINDS:
            items = [w for (k, _), w in self.workloads.items() if k == kind]
        elif kind in TYPED:
            items = list(getattr(self, TYPED[kind]).values())
        else:
            items = [o for (k, _, _), o in self.others.items() if k == kind]
        if namespace is None or not registry.is_namespaced(kind):
            return items
        return [o for o in items if o.meta.namespace == namespace]

    def find(self, kind: str, namespace: str | None, name: str) -> Any | None:
        kind = _kind(kind)
        ns = (namespace or "default") if registry.is_namespaced(kind) else ""
        key = f"{ns}/{name}" if ns else name
        if kind == "Namespace":
            return self.namespaces.get(name)
        if kind == "Node":
            return next((n for n in self.nodes if n.name == name), None)
        if kind == "Pod":
            return self.pods.get(key)
        if kind in WORKLOAD_KINDS:
            return self.workloads.get((kind, key))
        if kind in TYPED:
            return getattr(self, TYPED[kind]).get(key)
        return self.others.get((kind, ns, name))

    def get(self, kind: str, namespace: str | None, name: str | None = None) -> Any:
        """One object (NotFoundError with the API server's message), or with no name the list."""
        if name is None:
            return self.list(kind, namespace)
        obj = self.find(kind, namespace, name)
        if obj is None:
            raise NotFoundError(f'{_resource(_kind(kind))} "{name}" not found')
        return obj

    # --- apply ---------------------------------------------------------------------------

    def admit(self, parsed: ParsedManifests) -> dict[str, ServiceStatus | None] | None:
        """The API server's admission, checked before anything changes; the Services'
        changed allocations (None if no Service changes)."""
        admission.check(self, parsed)
        changed = [obj for _, obj in parsed.order if isinstance(obj, Service) and self.services.get(obj.key) != obj]
        if not changed:
            return None  # looked up one by one: a Service applied unchanged costs nothing at 10,000
        # Raises with the API server's messages; only returns when all fit.
        return service_alloc.allocate_changes(self.spec, self.services, changed, self.service_status, parsed.where)

    def apply(self, parsed: ParsedManifests, now: float = 0.0) -> Changes:
        statuses = self.admit(parsed)
        changes = Changes()
        for _, obj in parsed.order:
            verb = self._put(obj, now, changes)
            changes.results.append((kind_of(obj), obj.meta.namespace, obj.meta.name, verb))
        for key, st in (statuses or {}).items():  # in place: readers follow the change log
            if st is None:
                self.service_status.pop(key, None)
            else:
                self.service_status[key] = st
        changes.merge(self._controllers(now))
        return changes.net()

    def _put(self, obj: Any, now: float, changes: Changes) -> str:
        kind, key = kind_of(obj), object_key(obj)
        old = self.find(kind, obj.meta.namespace, obj.meta.name)
        if isinstance(obj, (Pod, Workload)) and old is not None and old.owner and not obj.owner:
            obj = dataclasses.replace(obj, owner=old.owner)  # its controller still owns it
        if old == obj:
            return "unchanged"  # the stored object stays: readers that compare by identity see no change
        if isinstance(obj, Pod) and old is not None and obj.meta != old.meta:
            changes.update.append(obj)
        if old is None:
            self.created[(kind, key)] = now
            if isinstance(obj, Pod):
                changes.create.append(obj)
        if isinstance(obj, Workload):
            spec_changed = old is None or dataclasses.replace(old, meta=obj.meta, raw={}) != dataclasses.replace(obj, raw={})
            if spec_changed:
                self.generation[(kind, key)] = self.generation.get((kind, key), 0) + 1
        elif isinstance(obj, Unstructured) and (old is None or old.raw.get("spec") != obj.raw.get("spec")):
            # metadata.generation counts spec changes (Gateway API's observedGeneration follows it).
            self.generation[(kind, key)] = self.generation.get((kind, key), 0) + 1
        self._store(obj)
        return "created" if old is None else "configured"

    def _store(self, obj: Any) -> None:
        kind = kind_of(obj)
        if isinstance(obj, Namespace):
            self.namespaces[obj.meta.name] = obj
        elif isinstance(obj, Pod):
            self.pods[obj.key] = obj
        elif isinstance(obj, Workload):
            self.workloads[(kind, obj.key)] = obj
        elif kind in TYPED:
            getattr(self, TYPED[kind])[obj.key] = obj
        else:  # Unstructured (and any typed kind the store has no dict of its own for)
            self.others[(kind, obj.meta.namespace, obj.meta.name)] = obj

    # --- controllers ---------------------------------------------------------------------

    def reconcile(self, observed: dict[str, ObservedPod], now: float = 0.0, nodes: tuple[NodeDecl, ...] | None = None) -> Changes:
        """Re-run every controller against the pods' observed state (every pod the kubelet
        has, terminating ones included) and, if given, the nodes as they are now (e.g. with
        a failed node's taints); what changed comes back."""
        self.controllers.observed = dict(observed)
        if nodes is not None:
            self.nodes = tuple(nodes)
        return self._controllers(now).net()

    def _controllers(self, now: float) -> Changes:
        before = set(self.workloads)
        out = self.controllers.sync(self.pods, self.workloads, node_infos(self.nodes), self.generation, now)
        for rs in out.new_workloads:
            self.created[(rs.kind, rs.key)] = now
        for kind, key in before - set(self.workloads):  # ReplicaSets beyond the revision history
            self._forget(kind, key)
        for p in out.create:
            self.created[("Pod", p.key)] = now
        for p in out.delete:
            self.created.pop(("Pod", p.key), None)
        return Changes(create=out.create, delete=out.delete, statuses=out.statuses, events=out.events)

    def _forget(self, kind: str, key: str) -> None:
        self.created.pop((kind, key), None)
        self.generation.pop((kind, key), None)
        self.controllers.forget(kind, key)

    # --- delete ----------------------------------------------------------------------------

    def delete(self, kind: str, namespace: str, name: str, now: float = 0.0) -> Changes:
        kind = _kind(kind)
        obj = self.get(kind, namespace, name)
        changes = Changes()
        if kind == "Namespace":
            if name in SYSTEM_NAMESPACES:
                raise _cli(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
            self._empty_namespace(name, changes)
            del self.namespaces[name]
        elif kind in ("Node", "Host"):
            raise _cli(f"{kind.lower()}s are the topology's; change the topology file instead")
        elif kind == "Pod":
            self._drop_pod(obj, changes)
        elif kind in WORKLOAD_KINDS:
            self._drop_workload(obj, changes)
        else:
            self._drop_other(kind, obj)
        self.created.pop((kind, object_key(obj)), None)
        changes.results.append((kind, obj.meta.namespace, name, "deleted"))
        # The controllers replace what they own (a StatefulSet's pod under the same name).
        changes.merge(self._controllers(now))
        return changes.net()

    def _empty_namespace(self, ns: str, changes: Changes) -> None:
        for w in [w for w in self.workloads.values() if w.meta.namespace == ns]:
            if (w.kind, w.key) in self.workloads:  # not gone with its Deployment already
                self._drop_workload(w, changes)
        for p in [p for p in self.pods.values() if p.meta.namespace == ns]:
            self._drop_pod(p, changes)
        for kind, attr in TYPED.items():
            for x in [x for x in getattr(self, attr).values() if x.meta.namespace == ns]:
                self._drop_other(kind, x)
        for k in [k for k in self.others if k[1] == ns]:
            self._drop_other(k[0], self.others[k])

    def _drop_pod(self, pod: Pod, changes: Changes) -> None:
        self.pods.pop(pod.key, None)
        self.created.pop(("Pod", pod.key), None)
        changes.delete.append(pod)

    def _drop_workload(self, w: Workload, changes: Changes) -> None:
        """Cascading deletion (propagationPolicy Background): its ReplicaSets, its pods."""
        self.workloads.pop((w.kind, w.key), None)
        self._forget(w.kind, w.key)
        for rs in [r for r in self.workloads.values() if r.owner == w.ref and r.meta.namespace == w.meta.namespace]:
            self._drop_workload(rs, changes)
        for p in [p for p in self.pods.values() if p.owner == w.ref and p.meta.namespace == w.meta.namespace]:
            self._drop_pod(p, changes)

    def _drop_other(self, kind: str, obj: Any) -> None:
        key = object_key(obj)
        if kind in TYPED:
            getattr(self, TYPED[kind]).pop(key, None)
            if kind == "Service":
                self.service_status.pop(key, None)
        else:
            self.others.pop((kind, obj.meta.namespace, obj.meta.name), None)
        self.created.pop((kind, key), None)
        self.generation.pop((kind, key), None)

    # --- labels, scale -----------------------------------------------------------------------

    def label(
        self, kind: str, namespace: str, name: str, set_: dict[str, str], remove: builtins.list[str], overwrite: bool, now: float = 0.0
    ) -> Changes:
        kind = _kind(kind)
        if kind == "Namespace" and (NAMESPACE_NAME_LABEL in set_ or NAMESPACE_NAME_LABEL in remove):
            raise _cli(f"label {NAMESPACE_NAME_LABEL} is set by the API server and cannot be changed")
        obj = self.get(kind, namespace, name)
        labels = _relabel(obj.labels if isinstance(obj, NodeDecl) else obj.meta.labels, set_, remove, overwrite)
        changes = Changes()
        old_labels = obj.labels if isinstance(obj, NodeDecl) else obj.meta.labels
        changes.results.append(
            (kind, namespace if registry.is_namespaced(kind) else "", name, "labeled" if labels != old_labels else "not labeled")
        )
        if labels == old_labels:
            return changes
        if isinstance(obj, NodeDecl):
            # Node labels steer scheduling and DaemonSets; the implicit ones are not stored.
            self.nodes = tuple(dataclasses.replace(n, labels=labels) if n.name == name else n for n in self.nodes)
            changes.merge(self._controllers(now))
            return changes.net()
        new = dataclasses.replace(obj, meta=dataclasses.replace(obj.meta, labels=labels))
        raw = getattr(obj, "raw", None)
        if isinstance(raw, dict) and raw:
            new = dataclasses.replace(new, raw=_with_labels(raw, labels))
        self._store(new)
        if isinstance(new, Pod):
            changes.update.append(new)
        return changes

    def scale(self, kind: str, namespace: str, name: str, replicas: int, now: float = 0.0) -> Changes:
        kind = _kind(kind)
        if kind not in SCALABLE:
            raise _cli(f"cannot scale {_resource(kind)}: only deployments, replicasets and statefulsets have a scale subresource")
        if replicas < 0:
            raise _cli(f"spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0")
        w = self.get(kind, namespace, name)
        changes = Changes()
        changes.results.append((kind, w.meta.namespace, name, "scaled"))
        if w.replicas != replicas:
            raw = w.raw
            if raw and isinstance(raw.get("spec"), dict):
                raw = {**raw, "spec": {**raw["spec"], "replicas": replicas}}
            self._store(dataclasses.replace(w, replicas=replicas, raw=raw))
            self.generation[(kind, w.key)] = self.generation.get((kind, w.key), 0) + 1
        changes.merge(self._controllers(now))
        return changes.net()


def _kind(kind: str) -> str:
    return kind if registry.info(kind) is not None else registry.canonical_kind(kind)


def _resource(kind: str) -> str:
    info = registry.info(kind)
    return info.resource if info is not None else f"{kind.lower()}s"


def _relabel(labels: dict[str, str], set_: dict[str, str], remove: list[str], overwrite: bool) -> dict[str, str]:
    out = dict(labels)
    for k, v in set_.items():
        if k in out and out[k] != v and not overwrite:
            raise _cli(f"'{k}' already has a value ({out[k]}), and --overwrite is false")
        out[k] = v
    for k in remove:
        out.pop(k, None)
    return out


def _with_labels(raw: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    meta = dict(raw.get("metadata") or {})
    if labels:
        meta["labels"] = dict(labels)
    else:
        meta.pop("labels", None)
    return {**raw, "metadata": meta}
