"""Reading topology and manifest files: YAML → validated frozen objects.

Every problem is collected (file, path, message) and raised together as one
ValidationError, so a user fixes a file in one pass.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from emu.config import crds, openapi, registry
from emu.config.cluster import CLUSTER, build_cluster_spec, check_manifests, check_spec
from emu.config.kinds import build_unstructured, meta_schema, secret_check, typed_kinds
from emu.config.schema import Report, collecting_no_effect, join
from emu.errors import Problem, ValidationError
from emu.gateway.model import GATEWAY_KINDS
from emu.model.objects import ClusterConfig, ClusterSpec, KubeObject, Manifests, Namespace, Pod, Unstructured, Workload
from emu.model.policy import NetworkPolicy
from emu.model.services import EndpointSlice, Service

# libyaml's loader when PyYAML has it: the pure-Python one takes ~2.6 ms per object,
# more than validating it.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Collector:
    problems: list[Problem] = field(default_factory=list)

    def at(self, file: str, path: str, message: str) -> None:
        self.problems.append(Problem(file, path, message))

    def reporter(self, file: str, prefix: str = "") -> Report:
        def report(path: str, message: str) -> None:
            full = f"{prefix}{path}" if prefix and path else (prefix.rstrip(".") if prefix else path)
            self.at(file, full, message)

        return report

    def raise_if_any(self) -> None:
        if self.problems:
            raise ValidationError(self.problems)


def _read_yaml_docs(file: str, c: Collector) -> list[Any]:
    try:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        c.at(file, "", f"cannot read file: {e.strerror}")
        return []
    return _yaml_docs(file, text, c)


def _yaml_docs(file: str, text: str, c: Collector) -> list[Any]:
    try:
        return [d for d in yaml.load_all(text, Loader=SAFE_LOADER) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        c.at(file, where, f"invalid YAML: {getattr(e, 'problem', None) or e}")
        return []


@dataclass
class ParsedManifests:
    manifests: Manifests
    where: dict[str, tuple[str, str]]  # "Kind/ns/name" → (file, path)
    order: list[tuple[str, KubeObject]]  # (key, object) in document order
    no_effect: list[tuple[str, str]] = field(default_factory=list)  # (file, path) of fields kemu accepts and ignores


WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")


def _kind_problem(raw: dict[str, Any]) -> tuple[str, str] | None:
    """(path, message) if the document's apiVersion/kind is not one the API server serves."""
    kind, api = raw.get("kind"), raw.get("apiVersion")
    if not isinstance(kind, str) or not kind:
        return "kind", "Required value: kind not set"
    if not isinstance(api, str) or not api:
        return "apiVersion", "Required value: apiVersion not set"
    if openapi.has_schema(api, kind) or crds.has_crd(api, kind):
        return None
    versions = openapi.known_versions(kind) or crds.crd_versions(kind)
    if versions:
        return "apiVersion", f'no matches for kind "{kind}" in version "{api}"; {kind} is served as: {", ".join(versions)}'
    return "kind", f'no matches for kind "{kind}" in version "{api}" (see `kemu api-resources`)'


def _check_document(raw: dict[str, Any], report: Report, no_effect: list[str]) -> dict[str, Any]:
    """Structure from the OpenAPI schema, then kemu's (the API server's) own rules; the
    document as the API server stores it (a CRD's defaults filled in)."""
    if crds.has_crd(raw["apiVersion"], raw["kind"]):
        # Gateway API kinds: the CRDs' schema, defaults and CEL rules.
        defaulted, problems = crds.validate_and_default(raw)
        for path, message in problems:
            report(path, message)
        with collecting_no_effect():
            meta_schema(namespaced=registry.is_namespaced(raw["kind"])).check(raw.get("metadata"), "metadata", report)
        return defaulted
    structural = openapi.structural_problems(raw)
    for path, message in structural:
        report(path, message)
    if structural:
        return raw
    kind = raw["kind"]
    typed = typed_kinds().get(kind)
    body = {k: v for k, v in raw.items() if k != "status"}
    if typed is None:
        # Stored as written: only the API server's own rules on names (and Secret data).
        with collecting_no_effect():
            meta_schema(namespaced=registry.is_namespaced(kind)).check(raw.get("metadata"), "metadata", report)
        if kind == "Secret":
            secret_check(body, "", report)
        return raw
    with collecting_no_effect() as ignored:
        typed.schema.check(body, "", report)
    no_effect.extend(p for p in ignored if p not in ("apiVersion", "kind"))
    return raw


# What the API server fills in: `get -o yaml` output applied again must be "unchanged".
SERVER_SET_METADATA = ("creationTimestamp", "uid", "resourceVersion", "generation", "managedFields", "selfLink", "deletionTimestamp")


def _as_written(raw: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in raw.items() if k != "status"}
    if isinstance(out.get("metadata"), dict):
        out["metadata"] = {k: v for k, v in out["metadata"].items() if k not in SERVER_SET_METADATA}
    return out


def _build(raw: dict[str, Any]) -> KubeObject:
    raw = _as_written(raw)
    typed = typed_kinds().get(raw["kind"])
    if typed is not None:
        return typed.build(raw)
    return build_unstructured(raw, registry.is_namespaced(raw["kind"]))


def object_key(kind: str, obj: KubeObject) -> str:
    ns = obj.meta.namespace
    return f"{kind}/{ns}/{obj.meta.name}" if ns else f"{kind}/{obj.meta.name}"


def parse_manifest_docs(docs: list[tuple[str, str, Any]], c: Collector) -> ParsedManifests:
    """Validate and build each (file, path, raw document); skip the ones with problems."""
    where: dict[str, tuple[str, str]] = {}
    order: list[tuple[str, KubeObject]] = []
    no_effect: list[tuple[str, str]] = []
    for file, path, raw in docs:
        if not isinstance(raw, dict):
            c.at(file, path, "a manifest must be a mapping with apiVersion, kind, metadata")
            continue
        if raw.get("kind") == "List" and isinstance(raw.get("items"), list):
            # `kubectl get -o yaml` output: a List of objects, applied item by item.
            inner = [(file, join(path, f"items[{i}]") if path else f"items[{i}]", d) for i, d in enumerate(raw["items"])]
            sub = parse_manifest_docs(inner, c)
            for key, obj in sub.order:
                if key not in where:
                    where[key] = sub.where[key]
                    order.append((key, obj))
            no_effect += sub.no_effect
            continue
        report = c.reporter(file, f"{path}." if path else "")
        problem = _kind_problem(raw)
        if problem:
            report(*problem)
            continue
        before = len(c.problems)
        ignored: list[str] = []
        raw = _check_document(raw, report, ignored)
        if len(c.problems) > before:
            continue
        obj = _build(raw)
        key = object_key(raw["kind"], obj)
        if key in where:
            first = " ".join(x for x in where[key] if x)
            c.at(
                file,
                join(path, "metadata.name") if path else "metadata.name",
                f"duplicate {raw['kind']} {key.split('/', 1)[1]!r} (first at {first})",
            )
            continue
        where[key] = (file, path)
        order.append((key, obj))
        no_effect += [(file, join(path, p) if path else p) for p in ignored]
    order.sort(key=lambda item: install_rank(item[0].split("/", 1)[0]))
    return ParsedManifests(manifests_of(order), where, order, no_effect)


# Helm's install order: what others depend on comes first (a Namespace before what is in
# it, ConfigMaps and Secrets before the pods that read them); the sort is stable.
INSTALL_ORDER = (
    "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodDisruptionBudget", "ServiceAccount", "Secret", "ConfigMap",
    "StorageClass", "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
    "Role", "RoleBinding", "Service", "EndpointSlice", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
    "GatewayClass", "ReferenceGrant", "Gateway", "HTTPRoute", "GRPCRoute",
)  # fmt: skip


def install_rank(kind: str) -> int:
    return INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)


def manifests_of(order: list[tuple[str, KubeObject]]) -> Manifests:
    """The objects grouped by what they are (each kind has one model class; every
    workload kind is a Workload, every kind without a model an Unstructured)."""
    namespaces: list[Namespace] = []
    pods: list[Pod] = []
    workloads: list[Workload] = []
    services: list[Service] = []
    slices: list[EndpointSlice] = []
    policies: list[NetworkPolicy] = []
    others: list[Unstructured] = []
    for _, obj in order:
        if isinstance(obj, Namespace):
            namespaces.append(obj)
        elif isinstance(obj, Pod):
            pods.append(obj)
        elif isinstance(obj, Workload):
            workloads.append(obj)
        elif isinstance(obj, Service):
            services.append(obj)
        elif isinstance(obj, EndpointSlice):
            slices.append(obj)
        elif isinstance(obj, NetworkPolicy):
            policies.append(obj)
        else:
            others.append(obj)
    return Manifests(tuple(namespaces), tuple(pods), tuple(workloads), tuple(services), tuple(slices), tuple(policies), tuple(others))


def _docs_of_file(file: str, c: Collector) -> list[tuple[str, str, Any]]:
    docs = _read_yaml_docs(file, c)
    many = len(docs) > 1
    return [(file, f"(document {i + 1})" if many else "", d) for i, d in enumerate(docs)]


def load_manifest_file(file: str) -> ParsedManifests:
    """A multi-document manifest file (for `kemu apply -f` and `delete -f`)."""
    with open(file, encoding="utf-8") as f:
        return load_manifest_texts([(file, f.read())])


def load_manifest_texts(texts: list[tuple[str, str]], namespace: str | None = None) -> ParsedManifests:
    """Manifests as the CLI sends them: (label, YAML text) for each -f input; `namespace`
    (kubectl's -n) for the namespaced objects that name none."""
    c = Collector()
    docs: list[tuple[str, str, Any]] = []
    for label, text in texts:
        found = _yaml_docs(label, text, c)
        many = len(found) > 1
        for i, d in enumerate(found):
            path = f"(document {i + 1})" if many else ""
            if namespace and isinstance(d, dict) and isinstance(d.get("metadata"), dict) and registry.is_namespaced(str(d.get("kind"))):
                given = d["metadata"].get("namespace")
                if given and given != namespace:
                    c.at(label, join(path, "metadata.namespace") if path else "metadata.namespace",
                         f'the namespace from the provided object "{given}" does not match the namespace "{namespace}". You must pass \'--namespace={given}\' to perform this operation.')  # fmt: skip
                    continue
                d["metadata"]["namespace"] = namespace
            docs.append((label, path, d))
    if not docs and not c.problems:
        c.at(", ".join(label for label, _ in texts) or "<input>", "", "no objects passed to apply")
    parsed = parse_manifest_docs(docs, c)
    c.raise_if_any()
    return parsed


def load_cluster_file(file: str) -> ClusterConfig:
    c = Collector()
    docs = _read_yaml_docs(file, c)
    c.raise_if_any()
    if len(docs) != 1:
        c.at(file, "", f"a topology file holds one `kind: Cluster` document, found {len(docs)}")
        c.raise_if_any()
    raw = docs[0]
    CLUSTER.check(raw, "", c.reporter(file))
    spec_raw = raw.get("spec") if isinstance(raw, dict) else None
    if not isinstance(spec_raw, dict):
        c.raise_if_any()  # CLUSTER.check has reported it
        raise ValidationError([Problem(file, "spec", "Required value")])
    spec_ok = not any(p.path == "spec" or (p.path.startswith("spec.") and not p.path.startswith("spec.resources")) for p in c.problems)
    docs_in = [(file, f"spec.resources[{i}]", d) for i, d in enumerate(spec_raw.get("resources") or [])]
    if not spec_ok:
        # The cluster's own fields are unusable; still report the manifests' problems.
        parse_manifest_docs(docs_in, c)
        c.raise_if_any()
    meta = raw.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) and isinstance(meta.get("name"), str) else "invalid"
    spec = build_cluster_spec({"metadata": {"name": name}, "spec": spec_raw})
    check_spec(spec, c.reporter(file))
    base = os.path.dirname(os.path.abspath(file))
    for i, inc in enumerate(spec_raw.get("include") or []):
        inc_path = inc if os.path.isabs(inc) else os.path.join(base, inc)
        if not os.path.exists(inc_path):
            c.at(file, f"spec.include[{i}]", f"included file {inc!r} does not exist")
            continue
        docs_in += _docs_of_file(os.path.relpath(inc_path) if not os.path.isabs(inc) else inc_path, c)
    parsed = parse_manifest_docs(docs_in, c)
    check_manifests(spec, parsed.manifests, parsed.where, c.at)
    c.raise_if_any()
    return ClusterConfig(spec, parsed.manifests, source=os.path.abspath(file), no_effect=tuple(parsed.no_effect))


def check_against_cluster(spec: ClusterSpec, namespaces: list[Namespace], parsed: ParsedManifests) -> None:
    """Validate manifests being applied to a running cluster (nodes, namespaces exist)."""
    c = Collector()
    m = parsed.manifests
    check_manifests(spec, dataclasses.replace(m, namespaces=(*namespaces, *m.namespaces)), parsed.where, c.at)
    c.raise_if_any()


def no_effect_summary(parsed_no_effect: list[tuple[str, str]], stored_kinds: list[str]) -> str:
    """One line for `kemu validate`: fields and kinds accepted that change nothing in kemu."""
    import re
    from collections import Counter

    fields = Counter(re.sub(r"\[\d+\]", "", path).rsplit(".", 1)[-1] for _, path in parsed_no_effect)
    parts = [f"{name} ({n})" if n > 1 else name for name, n in sorted(fields.items())]
    # ConfigMaps and Secrets feed pods; the gateway kinds program the L7 proxies.
    with_effect = {"ConfigMap", "Secret", "ServiceAccount", *GATEWAY_KINDS}
    kinds = sorted(set(stored_kinds) - with_effect)
    out = []
    if parts:
        out.append("accepted, no effect in kemu: " + ", ".join(parts))
    if kinds:
        out.append("stored, no effect on the network: " + ", ".join(kinds))
    return "\n".join(out)
