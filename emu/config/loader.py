"""Reading topology and manifest files: YAML → validated frozen objects.

Every problem is collected (file, path, message) and raised together as one
ValidationError, so a user fixes a file in one pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from emu.config.cluster import CLUSTER, build_cluster_spec, check_manifests, check_spec
from emu.config.kinds import KINDS, kind_problem
from emu.config.schema import join
from emu.errors import Problem, ValidationError
from emu.model.objects import ClusterConfig, ClusterSpec, Manifests


@dataclass
class Collector:
    problems: list[Problem] = field(default_factory=list)

    def at(self, file: str, path: str, message: str) -> None:
        self.problems.append(Problem(file, path, message))

    def reporter(self, file: str, prefix: str = ""):  # type: ignore[no-untyped-def]
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
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        c.at(file, where, f"invalid YAML: {getattr(e, 'problem', None) or e}")
        return []


@dataclass
class ParsedManifests:
    manifests: Manifests
    where: dict[str, tuple[str, str]]  # "Kind/ns/name" → (file, path)
    order: list[tuple[str, Any]]  # (key, object) in document order


def parse_manifest_docs(docs: list[tuple[str, str, Any]], c: Collector) -> ParsedManifests:
    """Validate and build each (file, path, raw document); skip the ones with problems."""
    by_kind: dict[str, list[Any]] = {k: [] for k in KINDS}
    where: dict[str, tuple[str, str]] = {}
    order: list[tuple[str, Any]] = []
    for file, path, raw in docs:
        if not isinstance(raw, dict):
            c.at(file, path, "a manifest must be a mapping with apiVersion, kind, metadata")
            continue
        kind = raw.get("kind")
        problem = kind_problem(kind)
        if problem:
            c.at(file, join(path, "kind") if path else "kind", problem)
            continue
        before = len(c.problems)
        KINDS[kind].schema.check(raw, "", c.reporter(file, f"{path}." if path else ""))
        if len(c.problems) > before:
            continue
        obj = KINDS[kind].build(raw)
        ns = getattr(obj.meta, "namespace", "")
        key = f"{kind}/{ns}/{obj.meta.name}" if ns else f"{kind}/{obj.meta.name}"
        if key in where:
            first = " ".join(x for x in where[key] if x)
            where_name = join(path, "metadata.name") if path else "metadata.name"
            c.at(file, where_name, f"duplicate {kind} {key.split('/', 1)[1]!r} (first at {first})")
            continue
        where[key] = (file, path)
        order.append((key, obj))
        by_kind[kind].append(obj)
    m = Manifests(
        tuple(by_kind["Namespace"]),
        tuple(by_kind["Pod"]),
        tuple(by_kind["Deployment"]),
        tuple(by_kind["Service"]),
        tuple(by_kind["EndpointSlice"]),
        tuple(by_kind["NetworkPolicy"]),
    )
    return ParsedManifests(m, where, order)


def _docs_of_file(file: str, c: Collector) -> list[tuple[str, str, Any]]:
    docs = _read_yaml_docs(file, c)
    many = len(docs) > 1
    return [(file, f"(document {i + 1})" if many else "", d) for i, d in enumerate(docs)]


def load_manifest_file(file: str) -> ParsedManifests:
    """A multi-document manifest file (for `kemu apply -f` and `delete -f`)."""
    c = Collector()
    docs = _docs_of_file(file, c)
    if not docs and not c.problems:
        c.at(file, "", "no manifests in file")
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
        c.raise_if_any()
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
    return ClusterConfig(spec, parsed.manifests, source=os.path.abspath(file))


def check_against_cluster(spec: ClusterSpec, merged: Manifests, parsed: ParsedManifests) -> None:
    """Validate manifests being applied to a running cluster (nodes, namespaces exist)."""
    c = Collector()
    check_manifests(spec, merged, parsed.where, c.at)
    c.raise_if_any()
