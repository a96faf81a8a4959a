"""Gateway API kinds, validated as the API server validates them with upstream's CRDs.

The data (emu/config/crd_schemas/gateway-api.json.gz) is every served version's
openAPIV3Schema of the standard channel's CRDs (config/crd/standard/ in
kubernetes-sigs/gateway-api), written by scripts/gen_crd_schemas.py, which records the
upstream commit and bundle version (`crd_source()`).

`validate_and_default()` returns the object as the API server would store it (unknown
fields pruned, `default:` values applied, `status` dropped where the CRD has a status
subresource) and every problem the API server would report, in its words:
crd_structural does the schema, crd_rules the x-kubernetes-validations (CEL) rules.
Unknown fields are reported as `kubectl apply --validate=strict` reports them
(`unknown field "x"`); the API server's default is to drop them with a warning.

`metadata` is not checked here: the API server checks ObjectMeta on its own, as kemu's
loader does for every kind.

Everything is loaded on first use, under a lock: importing this module costs nothing.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
from typing import Any, NamedTuple

from emu.config.crd_structural import SchemaNode, validate
from emu.config.crd_values import type_finding

Problem = tuple[str, str]

DATA_FILE = os.path.join(os.path.dirname(__file__), "crd_schemas", "gateway-api.json.gz")
_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


class CrdNames(NamedTuple):
    """How a CRD names its kind (spec.names and spec.scope)."""

    group: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...]


class _Version(NamedTuple):
    storage: bool
    status_subresource: bool
    schema: dict[str, Any]


class _State:
    def __init__(self, data: dict[str, Any]) -> None:
        self.source: dict[str, str] = data["source"]
        self.names: dict[str, CrdNames] = {}
        self.versions: dict[tuple[str, str], _Version] = {}  # (apiVersion, kind)
        self.by_kind: dict[str, list[str]] = {}
        for kind, crd in data["kinds"].items():
            self.names[kind] = CrdNames(crd["group"], crd["plural"], crd["namespaced"], tuple(crd["shortNames"]))
            for version in crd["versions"]:
                api_version = f"{crd['group']}/{version['name']}"
                self.versions[(api_version, kind)] = _Version(
                    version["storage"], version["statusSubresource"], data["schemas"][version["schema"]]
                )
                self.by_kind.setdefault(kind, []).append(api_version)
        for served in self.by_kind.values():
            served.sort(key=_version_priority)
        self.roots: dict[int, SchemaNode] = {}  # index of the schema -> compiled, shared by versions

    def root(self, version: _Version) -> SchemaNode:
        key = id(version.schema)
        found = self.roots.get(key)
        if found is None:
            with _lock:
                found = self.roots.get(key)
                if found is None:
                    found = SchemaNode(version.schema, root=True)
                    for rules in found.rule_sets():  # compile errors surface now, not mid-object
                        rules.prepare()
                    self.roots[key] = found
        return found


_lock = threading.RLock()
_state: _State | None = None


def _loaded() -> _State:
    global _state
    state = _state
    if state is None:
        with _lock:
            if _state is None:
                with gzip.open(DATA_FILE, "rt", encoding="utf-8") as f:
                    _state = _State(json.load(f))
            state = _state
    return state


def _version_priority(api_version: str) -> tuple[int, int, int, str]:
    """Kubernetes' order of versions: GA before beta before alpha, higher first."""
    version = api_version.rpartition("/")[2]
    m = _VERSION.match(version)
    if m is None:
        return (3, 0, 0, version)
    stage = {None: 0, "beta": 1, "alpha": 2}[m[2]]
    return (stage, -int(m[1]), -int(m[3] or 0), version)


# ---------------------------------------------------------------------------- public API


def has_crd(api_version: str, kind: str) -> bool:
    """Whether a CRD serves `kind` at `api_version` ("gateway.networking.k8s.io/v1")."""
    return (api_version, kind) in _loaded().versions


def crd_versions(kind: str) -> list[str]:
    """The apiVersions served for `kind`, preferred first ([] for a kind no CRD defines)."""
    return list(_loaded().by_kind.get(kind, ()))


def crd_kinds() -> dict[str, CrdNames]:
    """Every kind defined by a CRD -> (group, plural, namespaced, short names)."""
    return dict(sorted(_loaded().names.items()))


def crd_source() -> dict[str, str]:
    """Where the schemas come from: repository, commit, bundleVersion, channel."""
    return dict(_loaded().source)


def validate_and_default(raw: dict[str, Any], old: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """`raw` as the API server would store it, and what it would reject, as (path, message)
    pairs; `old`, when given, is the stored object `raw` replaces (for the rules that
    compare with it, like GatewayClass's immutable controllerName). An apiVersion/kind
    that no CRD serves gives one problem and `raw` back unchanged."""
    if not isinstance(raw, dict):
        path, message, _ = type_finding("", raw, "object")
        return raw, [(path, message)]
    api_version, kind = raw.get("apiVersion"), raw.get("kind")
    for name, value in (("apiVersion", api_version), ("kind", kind)):
        if not isinstance(value, str) or not value:
            return raw, [(name, "Required value")]
    state = _loaded()
    version = state.versions.get((str(api_version), str(kind)))
    if version is None:
        return raw, [("kind", f'no matches for kind "{kind}" in version "{api_version}"')]
    if version.status_subresource and "status" in raw:
        # Written by controllers through the status subresource; a create drops it.
        raw = {key: value for key, value in raw.items() if key != "status"}
    return validate(state.root(version), raw, old)


def crd_problems(raw: dict[str, Any]) -> list[Problem]:
    """Every problem the API server would report creating `raw`, as (path, message)."""
    return validate_and_default(raw)[1]
