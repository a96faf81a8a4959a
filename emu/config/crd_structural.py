"""A CRD version's structural schema, compiled once, and the one pass over an object that
does what the API server does to a custom resource on create or update:

1. prune: fields the schema does not declare are dropped (reported as
   `unknown field "x"`, as `kubectl apply --validate=strict` reports them);
   `null` values of non-nullable fields are dropped too (or defaulted);
2. default: an absent property with a `default` gets it (deep-copied), and the default
   is defaulted in turn (k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting);
3. validate the defaulted object against the schema (crd_values), and the uniqueness of
   `x-kubernetes-list-type: set` and `map` lists;
4. collect, in pre-order as the API server walks them, the values that carry
   x-kubernetes-validations rules; they are evaluated (crd_rules) only when step 3 found
   nothing blocking, as the API server does.

`metadata` at the root is passed through untouched: the API server checks ObjectMeta
itself, not through the CRD's schema.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from emu.config import crd_rules
from emu.config.crd_values import Finding, ValueChecks, as_json_value, combinator_findings, show, type_finding, type_ok

Problem = tuple[str, str]
_COMBINATORS = ("oneOf", "anyOf", "allOf", "not")
_NOT_CHECKED = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"


_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}


class SchemaNode:
    """One node of a structural schema, with what validating a value against it needs."""

    __slots__ = (
        "additional",
        "cel_names",
        "checks",
        "combinators",
        "default",
        "defaults",
        "escapes",
        "has_default",
        "items",
        "leaf",
        "list_type",
        "map_keys",
        "not_bool",
        "nullable",
        "preserve_unknown",
        "properties",
        "python_type",
        "required",
        "rules",
        "schema",
        "type",
    )

    def __init__(self, schema: dict[str, Any], root: bool = False) -> None:
        self.schema = schema
        self.type: str = schema.get("type", "")
        self.python_type = _PYTHON_TYPES.get(self.type, object)
        self.not_bool = self.type in ("integer", "number")  # JSON has no 1 == true
        self.nullable = bool(schema.get("nullable"))
        self.has_default = "default" in schema
        self.default = schema.get("default")
        self.properties = {name: SchemaNode(sub) for name, sub in (schema.get("properties") or {}).items()}
        if root and "metadata" in self.properties:
            self.properties["metadata"] = SchemaNode({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
        self.defaults = tuple((name, node) for name, node in self.properties.items() if node.has_default)
        self.required: tuple[str, ...] = tuple(schema.get("required", ()))
        extra = schema.get("additionalProperties")
        self.additional = SchemaNode(extra) if isinstance(extra, dict) else None
        self.preserve_unknown = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or extra is True
        items = schema.get("items")
        self.items = SchemaNode(items) if isinstance(items, dict) else None
        checks = ValueChecks(schema)
        self.checks = checks if checks.any else None
        self.combinators = any(key in schema for key in _COMBINATORS)
        self.list_type: str = schema.get("x-kubernetes-list-type", "")
        self.map_keys: tuple[str, ...] = tuple(schema.get("x-kubernetes-list-map-keys", ()))
        self.rules = crd_rules.rules_of(schema)
        # A scalar checked on its own: validated in place by its parent, no recursion.
        self.leaf = self.type in ("string", "integer", "number", "boolean") and self.rules is None and not self.combinators
        self.cel_names = {name: crd_rules.cel_name(name) for name in self.properties}
        # Whether a rule sees this subtree with some property names changed (or hidden).
        self.escapes: bool = (
            any(cel != name for name, cel in self.cel_names.items())
            or any(node.escapes for node in self.properties.values())
            or bool(self.items and self.items.escapes)
            or bool(self.additional and self.additional.escapes)
        )

    def rule_sets(self) -> list[crd_rules.RuleSet]:
        """The rules of every node in this subtree (to compile them ahead, and for tests)."""
        found = [self.rules] if self.rules else []
        for child in (*self.properties.values(), self.items, self.additional):
            if child is not None:
                found += child.rule_sets()
        return found

    def cel_view(self, value: Any, memo: dict[int, Any]) -> Any:
        """`value` as a rule sees it: escaped property names (`__namespace__`). `memo`
        (by id, for one object) makes the views of nested rule sites one conversion."""
        if not self.escapes:
            return value
        found = memo.get(id(value))
        if found is not None:
            return found
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                node = self.properties.get(key)
                if node is not None:
                    name = self.cel_names[key]
                    if name is not None:
                        out[name] = node.cel_view(item, memo)
                elif self.additional is not None:
                    out[key] = self.additional.cel_view(item, memo)
            view: Any = out
        elif isinstance(value, list) and self.items is not None:
            view = [self.items.cel_view(item, memo) for item in value]
        else:
            return value
        memo[id(value)] = view
        return view


class _Walk:
    """One pass over one object: the pruned, defaulted copy, the findings, the rule sites."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.rule_sites: list[tuple[SchemaNode, Any, str, Any, bool] | None] = []

    def visit(self, node: SchemaNode, value: Any, path: str, old: Any, has_old: bool) -> Any:
        if not isinstance(value, node.python_type) or (node.not_bool and isinstance(value, bool)):
            value = as_json_value(node.type, value)
            if not type_ok(node.type, value):
                self.findings.append(type_finding(path, value, node.type))
                return value
        if node.leaf:
            if node.checks is not None and node.checks.findings(value, ""):
                self.findings += node.checks.findings(value, path)  # again, now with the path
            return value
        site = -1
        if node.rules is not None:
            site = len(self.rule_sites)
            self.rule_sites.append(None)  # the parent's rules run before its children's
        if isinstance(value, dict):
            value = self._object(node, value, path, old if has_old and isinstance(old, dict) else None)
        elif isinstance(value, list):
            value = self._array(node, value, path, old if has_old and isinstance(old, list) else None)
        if node.checks is not None:
            self.findings += node.checks.findings(value, path)
        if node.combinators:
            self.findings += combinator_findings(node.schema, value, path)[0]
        if site >= 0:
            self.rule_sites[site] = (node, value, path, old, has_old)
        return value

    def _object(self, node: SchemaNode, value: dict[Any, Any], path: str, old: dict[Any, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        prefix = f"{path}." if path else ""
        properties = node.properties
        for key, item in value.items():
            child = properties.get(key)
            if child is None:
                child = node.additional
                if child is None:
                    if node.preserve_unknown:
                        out[key] = copy.deepcopy(item) if isinstance(item, dict | list) else item
                    else:
                        self.findings.append((f"{prefix}{key}", f'unknown field "{key}"', False))
                    continue
            if item is None and not child.nullable:
                if not child.has_default:
                    continue  # the API server drops it (PruneNonNullableNullsWithoutDefaults)
                item = copy.deepcopy(child.default)
            if child.leaf and isinstance(item, child.python_type) and not (child.not_bool and isinstance(item, bool)):
                # The common case, inline: a well-typed scalar (the path only for a finding).
                if child.checks is not None and child.checks.findings(item, ""):
                    self.findings += child.checks.findings(item, f"{prefix}{key}")
                out[key] = item
                continue
            if old is not None and key in old:
                out[key] = self.visit(child, item, f"{prefix}{key}", old[key], True)
            else:
                out[key] = self.visit(child, item, f"{prefix}{key}", None, False)
        for key, child in node.defaults:
            if key not in out:
                default = copy.deepcopy(child.default)
                if old is not None and key in old:
                    out[key] = self.visit(child, default, f"{prefix}{key}", old[key], True)
                else:
                    out[key] = self.visit(child, default, f"{prefix}{key}", None, False)
        for key in node.required:
            if key not in out:
                self.findings.append((f"{prefix}{key}", "Required value", True))
        return out

    def _array(self, node: SchemaNode, value: list[Any], path: str, old: list[Any] | None) -> list[Any]:
        items = node.items
        if items is None:
            return copy.deepcopy(value)
        old_by_key = {_map_key(node, item): item for item in old} if old is not None and node.map_keys else {}
        out = []
        for i, item in enumerate(value):
            if item is None and items.has_default and not items.nullable:
                item = copy.deepcopy(items.default)
            previous = old_by_key.get(_map_key(node, item), _ABSENT) if old_by_key else _ABSENT
            out.append(self.visit(items, item, f"{path}[{i}]", previous, previous is not _ABSENT))
        if len(out) > 1:
            if node.list_type == "set":
                self._duplicates(path, out)
            elif node.list_type == "map" and node.map_keys:
                keys = node.map_keys
                self._duplicates(path, [{k: item[k] for k in keys if k in item} if isinstance(item, dict) else item for item in out])
        return out

    def _duplicates(self, path: str, keys: list[Any]) -> None:
        """`Duplicate value` for each item whose key (a set item is its own) came before."""
        seen: set[Any] = set()
        for i, key in enumerate(keys):
            try:
                mark: Any = tuple(sorted(key.items())) if isinstance(key, dict) else key
                hash(mark)
            except TypeError:  # lists or objects: compare their JSON
                mark = json.dumps(key, sort_keys=True, default=str)
            if mark in seen:
                self.findings.append((f"{path}[{i}]", f"Duplicate value: {show(key)}", False))
            seen.add(mark)


_ABSENT = object()


def _map_key(node: SchemaNode, item: Any) -> str:
    """The keys of an item of a map-type list (defaults count): on update, an item
    correlates with the old list's item of the same keys."""
    if not isinstance(item, dict) or node.items is None:
        return ""
    defaults = dict((name, child.default) for name, child in node.items.defaults if name in node.map_keys)
    return json.dumps([item.get(k, defaults.get(k)) for k in node.map_keys], default=str)


def validate(root: SchemaNode, raw: dict[str, Any], old: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """`raw` pruned and defaulted, and every problem the API server would report for it
    (structural problems in document order, then the rules'); `old` is the object being
    replaced, for the rules that compare with it."""
    walk = _Walk()
    result = walk.visit(root, raw, "", old, old is not None)
    problems = [(path, message) for path, message, _ in walk.findings]
    if any(blocking for _, _, blocking in walk.findings):
        if any(site is not None for site in walk.rule_sites):
            problems.append(("", _NOT_CHECKED))
        return result, problems
    memo: dict[int, Any] = {}
    for site in walk.rule_sites:
        if site is None:
            continue
        node, value, path, previous, has_old = site
        assert node.rules is not None
        old_view = node.cel_view(previous, memo) if has_old else None
        problems += node.rules.check(path, node.type, node.cel_view(value, memo), old_view, has_old)
    return result, problems
