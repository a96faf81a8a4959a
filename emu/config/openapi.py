"""Strict structural validation of Kubernetes manifests against the real OpenAPI schemas.

The schemas are the ones shipped by the PyPI package `kubernetes-validate` (Kubernetes
1.37, "strict": `additionalProperties: false` everywhere, as `kubectl --validate=strict`).
`jsonschema` (Draft 2020-12) is the validator of record; this module only

- finds the schema of an (apiVersion, kind) from `x-kubernetes-group-version-kind`,
- resolves its `$ref`s once through a `referencing` registry built once from
  `_definitions.json` (the schema handed to jsonschema is the same schema with every
  reference replaced by its target and the annotations jsonschema ignores left out: the
  per-node `$ref` lookups are most of the cost of validating a Deployment otherwise),
- answers in place for leaves whose schema is a bare type check (jsonschema's own type
  checker, the verdict cannot differ; see _validator_class),
- turns jsonschema's errors into kemu's (path, message) pairs in kubectl's words
  (emu/config/openapi_messages.py), and
- caches the result by the JSON text of the manifest (many manifests repeat).

tests/unit/test_openapi.py checks that the results equal plain jsonschema's, run as
kubernetes-validate runs it, on a few hundred manifests, good and broken.

Everything is loaded on first use, under a lock: importing this module costs nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from emu.config.openapi_messages import Problem, _collect, _date_text, _type_message

if TYPE_CHECKING:
    from jsonschema.protocols import Validator
    from referencing import Registry
    from referencing._core import Resolver  # referencing exports it only from here

K8S_VERSION = "1.37.0"
_SCHEMA_DIR = f"v{K8S_VERSION}-local-strict"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# Keywords holding one subschema, a map of them, or a list of them (those used by the
# Kubernetes schemas and the rest of Draft 2020-12's applicators).
_ONE = (
    "additionalProperties",
    "items",
    "not",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_MAP = ("properties", "patternProperties", "dependentSchemas")
_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
_CACHE_SIZE = 4096
_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")

_lock = threading.RLock()
_state: _State | None = None


class _State:
    """Everything loaded from the package: built once, then only the caches grow."""

    def __init__(self) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012

        self.validator_class = _validator_class()
        self.keywords = frozenset(Draft202012Validator.VALIDATORS)
        self.dir = _schema_dir()
        with open(os.path.join(self.dir, "_definitions.json"), encoding="utf-8") as f:
            definitions = json.load(f)
        self.registry: Registry = Registry().with_resource(definitions["$id"], DRAFT202012.create_resource(definitions))
        # (apiVersion, kind) -> schema file; kind -> apiVersions, best first.
        self.files: dict[tuple[str, str], str] = {}
        self.kinds: dict[str, list[str]] = {}
        present = set(os.listdir(self.dir))
        for name, schema in definitions["$defs"].items():
            for api_version, kind in _top_level_gvks(schema):
                file = _file_name(name)
                if file in present:
                    self.files[(api_version, kind)] = file
                    self.kinds.setdefault(kind, []).append(api_version)
        for versions in self.kinds.values():
            versions.sort(key=_version_priority)
        self.validators: dict[tuple[str, str], Validator] = {}
        self.resolved: dict[int, Any] = {}  # id(schema in the registry) -> resolved copy
        self.results: OrderedDict[str, list[Problem]] = OrderedDict()

    def validator(self, api_version: str, kind: str) -> Validator | None:
        key = (api_version, kind)
        found = self.validators.get(key)
        if found is not None:
            return found
        file = self.files.get(key)
        if file is None:
            return None
        with _lock:
            found = self.validators.get(key)
            if found is None:
                with open(os.path.join(self.dir, file), encoding="utf-8") as f:
                    schema = json.load(f)
                resolver = self.registry.resolver(base_uri=schema.get("$id", ""))
                found = self.validator_class(self._resolve(schema, resolver), registry=self.registry)
                self.validators[key] = found
        return found

    def _resolve(self, schema: Any, resolver: Resolver[Any]) -> Any:
        """`schema` with its references replaced by their (shared, resolved) targets."""
        if not isinstance(schema, dict):
            return schema
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key not in self.keywords or key == "$ref":
                continue
            if key in _ONE:
                out[key] = self._resolve(value, resolver)
            elif key in _MAP:
                out[key] = {name: self._resolve(sub, resolver) for name, sub in value.items()}
            elif key in _LIST:
                out[key] = [self._resolve(sub, resolver) for sub in value]
            else:
                out[key] = value
        ref = schema.get("$ref")
        if ref is None:
            return out
        target = self._target(ref, resolver)
        if not out:  # siblings were annotations only (description, x-kubernetes-*)
            return target
        out["allOf"] = [*out.get("allOf", ()), target]
        return out

    def _target(self, ref: str, resolver: Resolver[Any]) -> Any:
        resolved = resolver.lookup(ref)
        key = id(resolved.contents)
        target = self.resolved.get(key)
        if target is None:
            # Registered before it is filled, so recursive schemas (JSONSchemaProps) become
            # cycles rather than endless recursion; jsonschema follows them lazily.
            target = self.resolved[key] = {}
            target.update(self._resolve(resolved.contents, resolved.resolver))
        return target

    def cached(self, key: str) -> list[Problem] | None:
        with _lock:
            found = self.results.get(key)
            if found is not None:
                self.results.move_to_end(key)
            return found

    def remember(self, key: str, problems: list[Problem]) -> None:
        with _lock:
            self.results[key] = problems
            if len(self.results) > _CACHE_SIZE:
                self.results.popitem(last=False)


def _validator_class() -> type[Validator]:
    """Draft 2020-12, with a short cut that cannot change a verdict.

    Most nodes of a manifest are leaves whose schema is only `type` (plus `format`, which
    asserts nothing without a format checker), or a `oneOf` of such (int-or-string,
    quantities). For those, jsonschema's own type checker answers in place; only the values
    that fail it, and every other subschema, go through jsonschema's `properties` / `items`
    / `additionalProperties`, which then report the errors exactly as before. That saves
    over half the time of a Deployment (jsonschema makes a validator object per node).
    """
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend

    base = Draft202012Validator.VALIDATORS

    def type_only(validator: Any, value: Any, schema: Any) -> bool | None:
        """jsonschema's verdict on `value` when `schema` is type-only; None for other schemas."""
        if not isinstance(schema, dict) or "type" not in schema or len(schema) > 2:
            return None
        if len(schema) == 2 and ("format" not in schema or validator.format_checker is not None):
            return None
        types = schema["type"]
        if isinstance(types, str):
            return bool(validator.is_type(value, types))
        return any(validator.is_type(value, t) for t in types)

    def passes(validator: Any, value: Any, schema: Any) -> bool:
        """True only if jsonschema would find nothing wrong (False: let jsonschema look)."""
        verdict = type_only(validator, value, schema)
        if verdict is not None:
            return verdict
        if isinstance(schema, dict) and len(schema) == 1 and "oneOf" in schema:
            verdicts = [type_only(validator, value, branch) for branch in schema["oneOf"]]
            return None not in verdicts and verdicts.count(True) == 1
        return False

    def properties(validator: Any, properties: dict[str, Any], instance: Any, schema: Any) -> Any:
        if not isinstance(instance, dict):
            return base["properties"](validator, properties, instance, schema)
        rest = {name: sub for name, sub in properties.items() if name in instance and not passes(validator, instance[name], sub)}
        return base["properties"](validator, rest, instance, schema) if rest else ()

    def items(validator: Any, items: Any, instance: Any, schema: Any) -> Any:
        if isinstance(instance, list) and "prefixItems" not in schema and all(passes(validator, each, items) for each in instance):
            return ()
        return base["items"](validator, items, instance, schema)

    def additional(validator: Any, extra: Any, instance: Any, schema: Any) -> Any:
        if isinstance(instance, dict) and isinstance(extra, dict) and "properties" not in schema and "patternProperties" not in schema:
            if all(passes(validator, each, extra) for each in instance.values()):
                return ()
        return base["additionalProperties"](validator, extra, instance, schema)

    # YAML reads an unquoted 2024-01-02 or 2024-01-02T03:04:05Z as a date; kubectl's YAML keeps
    # it a string (a ConfigMap value, a creationTimestamp): so does this check.
    types = Draft202012Validator.TYPE_CHECKER.redefine("string", lambda _, value: isinstance(value, str | datetime.date))
    keywords = {"properties": properties, "items": items, "additionalProperties": additional}
    extended: type[Validator] = extend(Draft202012Validator, keywords, type_checker=types)  # type: ignore[no-untyped-call]  # unannotated in types-jsonschema
    return extended


def _schema_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the Kubernetes schemas are missing: pip install kubernetes-validate")
    return os.path.join(next(iter(spec.submodule_search_locations)), "kubernetes-json-schema", _SCHEMA_DIR)


def _top_level_gvks(schema: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The (apiVersion, kind)s of a top-level API object's schema; none for the rest.

    A top-level object has `apiVersion`, `kind` and an ObjectMeta `metadata`; that leaves
    out lists, DeleteOptions, WatchEvent, Status and the discovery documents.
    """
    properties = schema.get("properties", {})
    if "apiVersion" not in properties or "kind" not in properties:
        return
    if not str(properties.get("metadata", {}).get("$ref", "")).endswith("/" + _OBJECT_META):
        return
    for gvk in schema.get("x-kubernetes-group-version-kind", ()):
        kind, group, version = gvk["kind"], gvk["group"], gvk["version"]
        if not kind.endswith("List"):
            yield (f"{group}/{version}" if group else version), kind


def _file_name(definition: str) -> str:
    """io.k8s.api.apps.v1.Deployment -> deployment-apps-v1.json (core: pod-v1.json).

    The files are named after the Go package, not the API group (StorageVersion of
    internal.apiserver.k8s.io lives in storageversion-apiserverinternal-v1alpha1.json).
    """
    *_, package, version, kind = definition.split(".")
    return f"{kind.lower()}-{version}.json" if package == "core" else f"{kind.lower()}-{package}-{version}.json"


def _version_priority(api_version: str) -> tuple[int, int, int, int, str]:
    """Kubernetes' order: GA before beta before alpha, higher first; the core group first."""
    group, _, version = api_version.rpartition("/")
    m = _VERSION.match(version)
    if m is None:
        return (3, 0, 0, 1 if group else 0, api_version)
    major, stage, minor = int(m[1]), m[2], int(m[3] or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -major, -minor, 1 if group else 0, group)


def _loaded() -> _State:
    global _state
    state = _state
    if state is None:
        with _lock:
            if _state is None:
                _state = _State()
            state = _state
    return state


# ---------------------------------------------------------------------------- public API


def has_schema(api_version: str, kind: str) -> bool:
    return (api_version, kind) in _loaded().files


def known_versions(kind: str) -> list[str]:
    """The apiVersions with a schema for `kind`, preferred first ([] for an unknown kind)."""
    return list(_loaded().kinds.get(kind, ()))


def builtin_kinds() -> dict[str, list[str]]:
    """Every built-in top-level kind -> its apiVersions, preferred first."""
    return {kind: list(versions) for kind, versions in sorted(_loaded().kinds.items())}


def structural_problems(raw: dict[str, Any]) -> list[Problem]:
    """Every structural problem of one manifest, as (path, message), sorted by path.

    An apiVersion/kind without a schema gives one problem on `kind`, kubectl's
    `no matches for kind "Foo" in version "v9"`; the caller decides what it means.
    """
    if not isinstance(raw, dict):
        return [("", _type_message(raw, "object"))]
    api_version, kind = raw.get("apiVersion"), raw.get("kind")
    head = [
        (name, "Required value" if value in (None, "") else _type_message(value, "string"))
        for name, value in (("apiVersion", api_version), ("kind", kind))
        if not isinstance(value, str) or not value
    ]
    if head:
        return head
    assert isinstance(api_version, str) and isinstance(kind, str)
    state = _loaded()
    validator = state.validator(api_version, kind)
    if validator is None:
        return [("kind", f'no matches for kind "{kind}" in version "{api_version}"')]
    try:
        # A YAML date and its text are the same to the schemas (and in the messages).
        key = f"{api_version}\0{kind}\0" + json.dumps(raw, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_date_text)
    except (TypeError, ValueError):  # not plain JSON (mixed key types, NaN): no caching
        key = None
    if key is not None:
        found = state.cached(key)
        if found is not None:
            return list(found)
    problems = _collect(raw, validator.iter_errors(raw))
    if key is not None:
        state.remember(key, problems)
    return list(problems)
