"""The object store: what the API server holds, with its admission rules. Pure.

Every change returns the pods to create and delete; the runtime turns those into
namespaces and processes. Validation errors leave the store untouched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from emu.config.loader import ParsedManifests
from emu.controllers import deployments, service_alloc
from emu.errors import NotFoundError, Problem, ValidationError
from emu.model.objects import NAMESPACE_NAME_LABEL, ClusterSpec, Deployment, Manifests, Meta, Namespace, Pod
from emu.model.policy import NetworkPolicy
from emu.model.services import EndpointSlice, Service, ServiceStatus

KIND_ALIASES = {
    "namespace": "Namespace", "namespaces": "Namespace", "ns": "Namespace",
    "pod": "Pod", "pods": "Pod", "po": "Pod",
    "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
    "node": "Node", "nodes": "Node", "no": "Node",
    "host": "Host", "hosts": "Host",
    "service": "Service", "services": "Service", "svc": "Service",
    "endpointslice": "EndpointSlice", "endpointslices": "EndpointSlice",
    "networkpolicy": "NetworkPolicy", "networkpolicies": "NetworkPolicy", "netpol": "NetworkPolicy",
}  # fmt: skip


def canonical_kind(kind: str) -> str:
    k = KIND_ALIASES.get(kind.lower())
    if k is None:
        raise ValidationError(
            [
                Problem(
                    "<command line>",
                    "",
                    f"unknown resource type {kind!r}; known: {', '.join(sorted(set(KIND_ALIASES.values())))}",
                )
            ]
        )
    return k


@dataclass
class Changes:
    create: list[Pod] = field(default_factory=list)
    delete: list[Pod] = field(default_factory=list)

    def merge(self, other: Changes) -> None:
        self.create += other.create
        self.delete += other.delete


@dataclass
class Store:
    spec: ClusterSpec
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    next_index: dict[str, int] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    endpoint_slices: dict[str, EndpointSlice] = field(default_factory=dict)  # manual ones
    service_status: dict[str, ServiceStatus] = field(default_factory=dict)
    network_policies: dict[str, NetworkPolicy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "default" not in self.namespaces:
            self.namespaces["default"] = Namespace(Meta("default", labels={NAMESPACE_NAME_LABEL: "default"}))

    def manifests(self) -> Manifests:
        return Manifests(
            tuple(self.namespaces.values()),
            tuple(p for p in self.pods.values() if not p.owner),
            tuple(self.deployments.values()),
            tuple(self.services.values()),
            tuple(self.endpoint_slices.values()),
            tuple(self.network_policies.values()),
        )

    # --- apply ---------------------------------------------------------------------------

    def admit(self, parsed: ParsedManifests) -> dict[str, ServiceStatus] | None:
        """The API server's update rules, checked before anything changes; the Services'
        new allocations (None if no Service changes)."""
        problems = []
        for key, obj in parsed.order:
            file, path = parsed.where.get(key, ("", ""))
            if isinstance(obj, Pod) and obj.key in self.pods:
                old = self.pods[obj.key]
                if old.owner:
                    problems.append(
                        Problem(file, path, f"pod {obj.key} is managed by deployment {old.owner}; change the deployment instead")
                    )
                elif old.spec != obj.spec:
                    problems.append(
                        Problem(
                            file,
                            f"{path}.spec" if path else "spec",
                            "Forbidden: pod updates may not change fields other than labels and annotations (delete and re-create the pod)",
                        )
                    )
            if isinstance(obj, Deployment) and obj.key in self.deployments:
                if self.deployments[obj.key].selector != obj.selector:
                    problems.append(Problem(file, f"{path}.spec.selector" if path else "spec.selector", "field is immutable"))
        if problems:
            raise ValidationError(problems)
        services = dict(self.services)
        for _, obj in parsed.order:
            if isinstance(obj, Service):
                services[obj.key] = obj
        if services == self.services:
            return None
        # Raises with the API server's messages; only returns when all fit.
        return service_alloc.allocate(self.spec, list(services.values()), self.service_status, parsed.where)

    def apply(self, parsed: ParsedManifests) -> Changes:
        statuses = self.admit(parsed)
        changes = Changes()
        for _, obj in parsed.order:
            if isinstance(obj, Namespace):
                self.namespaces[obj.meta.name] = obj
            elif isinstance(obj, Pod):
                if obj.key not in self.pods:
                    changes.create.append(obj)
                self.pods[obj.key] = obj
            elif isinstance(obj, Deployment):
                self.deployments[obj.key] = obj
                changes.merge(self._reconcile(obj))
            elif isinstance(obj, Service):
                self.services[obj.key] = obj
            elif isinstance(obj, EndpointSlice):
                self.endpoint_slices[obj.key] = obj
            elif isinstance(obj, NetworkPolicy):
                self.network_policies[obj.key] = obj
        if statuses is not None:
            self.service_status = statuses
        return changes

    def _owned(self, d: Deployment) -> list[Pod]:
        return [p for p in self.pods.values() if p.owner == d.meta.name and p.meta.namespace == d.meta.namespace]

    def _reconcile(self, d: Deployment) -> Changes:
        create, delete, self.next_index[d.key] = deployments.reconcile(d, self._owned(d), self.next_index.get(d.key, 0))
        for p in delete:
            del self.pods[p.key]
        for p in create:
            self.pods[p.key] = p
        return Changes(create, delete)

    # --- delete ----------------------------------------------------------------------------

    def delete(self, kind: str, namespace: str, name: str) -> Changes:
        changes = Changes()
        if kind == "Namespace":
            if name not in self.namespaces:
                raise NotFoundError(f'namespaces "{name}" not found')
            if name == "default":
                raise ValidationError([Problem("<command line>", "", "namespace default cannot be deleted")])
            for d in [d for d in self.deployments.values() if d.meta.namespace == name]:
                changes.merge(self.delete("Deployment", name, d.meta.name))
            for x in [x for x in self.services.values() if x.meta.namespace == name]:
                self.delete("Service", name, x.meta.name)
            for x in [x for x in self.endpoint_slices.values() if x.meta.namespace == name]:
                self.delete("EndpointSlice", name, x.meta.name)
            for x in [x for x in self.network_policies.values() if x.meta.namespace == name]:
                self.delete("NetworkPolicy", name, x.meta.name)
            for p in [p for p in self.pods.values() if p.meta.namespace == name]:
                changes.merge(self.delete("Pod", name, p.meta.name))
            del self.namespaces[name]
        elif kind == "Pod":
            pod = self.pods.pop(f"{namespace}/{name}", None)
            if pod is None:
                raise NotFoundError(f'pods "{name}" not found in namespace {namespace}')
            changes.delete.append(pod)
            if pod.owner:
                # The Deployment controller replaces a deleted pod (with a new name).
                changes.merge(self._reconcile(self.deployments[f"{namespace}/{pod.owner}"]))
        elif kind == "Deployment":
            d = self.deployments.pop(f"{namespace}/{name}", None)
            if d is None:
                raise NotFoundError(f'deployments.apps "{name}" not found in namespace {namespace}')
            for p in self._owned(d):
                del self.pods[p.key]
                changes.delete.append(p)
        elif kind == "Service":
            if self.services.pop(f"{namespace}/{name}", None) is None:
                raise NotFoundError(f'services "{name}" not found in namespace {namespace}')
            self.service_status.pop(f"{namespace}/{name}", None)
        elif kind == "NetworkPolicy":
            if self.network_policies.pop(f"{namespace}/{name}", None) is None:
                raise NotFoundError(f'networkpolicies.networking.k8s.io "{name}" not found in namespace {namespace}')
        elif kind == "EndpointSlice":
            if self.endpoint_slices.pop(f"{namespace}/{name}", None) is None:
                raise NotFoundError(f'endpointslices.discovery.k8s.io "{name}" not found in namespace {namespace}')
        else:
            raise ValidationError([Problem("<command line>", "", f"cannot delete {kind} objects on a running cluster")])
        return changes

    # --- labels ----------------------------------------------------------------------------

    def label(self, kind: str, namespace: str, name: str, set_: dict[str, str], remove: list[str], overwrite: bool) -> None:
        if kind == "Namespace":
            ns = self.namespaces.get(name)
            if ns is None:
                raise NotFoundError(f'namespaces "{name}" not found')
            if NAMESPACE_NAME_LABEL in set_ or NAMESPACE_NAME_LABEL in remove:
                raise ValidationError(
                    [Problem("<command line>", "", f"label {NAMESPACE_NAME_LABEL} is set by the API server and cannot be changed")]
                )
            self.namespaces[name] = Namespace(self._relabel(ns.meta, set_, remove, overwrite))
        elif kind == "Pod":
            pod = self.pods.get(f"{namespace}/{name}")
            if pod is None:
                raise NotFoundError(f'pods "{name}" not found in namespace {namespace}')
            self.pods[pod.key] = dataclasses.replace(pod, meta=self._relabel(pod.meta, set_, remove, overwrite))
        elif kind == "Deployment":
            d = self.deployments.get(f"{namespace}/{name}")
            if d is None:
                raise NotFoundError(f'deployments.apps "{name}" not found in namespace {namespace}')
            # As kubectl: a Deployment's own labels, not its pod template's.
            self.deployments[d.key] = dataclasses.replace(d, meta=self._relabel(d.meta, set_, remove, overwrite))
        else:
            raise ValidationError([Problem("<command line>", "", f"kemu label supports pods, namespaces and deployments, not {kind}")])

    @staticmethod
    def _relabel(meta: Meta, set_: dict[str, str], remove: list[str], overwrite: bool) -> Meta:
        labels = dict(meta.labels)
        for k, v in set_.items():
            if k in labels and labels[k] != v and not overwrite:
                raise ValidationError([Problem("<command line>", "", f"'{k}' already has a value ({labels[k]}), and --overwrite is false")])
            labels[k] = v
        for k in remove:
            labels.pop(k, None)
        return dataclasses.replace(meta, labels=labels)
