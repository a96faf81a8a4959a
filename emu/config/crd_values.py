"""The value checks of a CRD's structural schema and their messages, in the API server's
words.

For custom resources the API server validates with kube-openapi (go-openapi's validator)
and turns its errors into field errors (k8s.io/apiextensions-apiserver/pkg/apiserver/
validation/validation.go): `required` becomes `Required value`, `enum` becomes
`Unsupported value: ...`, `maxLength` `Too long: ...`, `maxItems` `Too many: ...`, and the
rest `Invalid value: <value>: <path> in body should ...`. Type errors use kemu's wording
(`expected integer, got string`), as for the built-in kinds.

A finding is (path, message, blocking): blocking findings are the error types after which
the API server does not evaluate the CEL rules (hasBlockingErr in the custom resource
strategy: Required, NotSupported, TooLong, TooMany, TypeInvalid).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from typing import Any

from emu.config import openapi_messages

Finding = tuple[str, str, bool]

_IPV4_SLOPPY = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
_regexes: dict[str, re.Pattern[str]] = {}
_checks: dict[int, tuple[dict[str, Any], ValueChecks]] = {}  # id(schema) -> (schema, its checks)


def show(value: Any, limit: int = 200) -> str:
    """A value as a message quotes it (openapi_messages.show, with room for longer values)."""
    return openapi_messages.show(value, limit)


def type_ok(type_name: str, value: Any) -> bool:
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        return isinstance(value, list)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "boolean":
        return isinstance(value, bool)
    return True


def as_json_value(type_name: str, value: Any) -> Any:
    """What the API server would have decoded: YAML dates are JSON strings, and 3.0 is 3."""
    if type_name == "string" and isinstance(value, datetime.date):
        return value.isoformat()
    if type_name == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def type_finding(path: str, value: Any, type_name: str) -> Finding:
    return path, f"Invalid value: {show(value)}: expected {type_name}, got {openapi_messages.json_type(value)}", True


def go_regex(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled with Go's meaning of `$` (the end of the text only: Python's `$`
    also matches before a final newline, so it becomes `\\Z` outside brackets)."""
    found = _regexes.get(pattern)
    if found is None:
        out, in_class, escaped = [], False, False
        for ch in pattern:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == "[" and not in_class:
                in_class = True
            elif ch == "]" and in_class:
                in_class = False
            elif ch == "$" and not in_class:
                out.append(r"\Z")
                continue
            out.append(ch)
        found = _regexes[pattern] = re.compile("".join(out))
    return found


def _ip_sloppy(text: str) -> bool:
    """Go's net.ParseIP as kube-openapi uses it (IPv4 parts may have leading zeros)."""
    m = _IPV4_SLOPPY.match(text)
    if m:
        return all(int(part) <= 255 for part in m.groups())
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _date_time(text: str) -> bool:
    try:
        datetime.datetime.fromisoformat(text)
    except ValueError:
        return False
    return "T" in text.upper()


# The string formats kube-openapi checks for CRDs that these schemas use; int32 and int64
# are not checked (the schemas carry minimum/maximum for that).
_FORMATS = {
    "ipv4": lambda s: "." in s and _ip_sloppy(s),
    "ipv6": lambda s: ":" in s and _ip_sloppy(s),
    "date-time": _date_time,
}


_CHECKS = (
    "enum",
    "pattern",
    "min_length",
    "max_length",
    "min_items",
    "max_items",
    "min_properties",
    "max_properties",
    "minimum",
    "maximum",
    "unique_items",
    "format",
)


class ValueChecks:
    """Every check of one schema node except type, properties, items and the combinators."""

    __slots__ = (
        "any",
        "enum",
        "exclusive_maximum",
        "exclusive_minimum",
        "format",
        "max_items",
        "max_length",
        "max_properties",
        "maximum",
        "min_items",
        "min_length",
        "min_properties",
        "minimum",
        "pattern",
        "pattern_text",
        "unique_items",
    )

    def __init__(self, schema: dict[str, Any]) -> None:
        self.enum: tuple[Any, ...] | None = tuple(schema["enum"]) if "enum" in schema else None
        self.pattern_text: str | None = schema.get("pattern")
        self.pattern = go_regex(self.pattern_text) if self.pattern_text else None
        self.min_length: int | None = schema.get("minLength")
        self.max_length: int | None = schema.get("maxLength")
        self.min_items: int | None = schema.get("minItems")
        self.max_items: int | None = schema.get("maxItems")
        self.min_properties: int | None = schema.get("minProperties")
        self.max_properties: int | None = schema.get("maxProperties")
        self.minimum: float | None = schema.get("minimum")
        self.maximum: float | None = schema.get("maximum")
        self.exclusive_minimum = bool(schema.get("exclusiveMinimum"))
        self.exclusive_maximum = bool(schema.get("exclusiveMaximum"))
        self.unique_items = bool(schema.get("uniqueItems"))
        self.format = _FORMATS.get(str(schema.get("format")))
        self.any = any(getattr(self, name) is not None and getattr(self, name) is not False for name in _CHECKS)

    def findings(self, value: Any, path: str) -> list[Finding]:
        out: list[Finding] = []
        if self.enum is not None and not any(_same(value, allowed) for allowed in self.enum):
            supported = ", ".join(json.dumps(str(v)) for v in self.enum)
            out.append((path, f"Unsupported value: {show(value)}: supported values: {supported}", True))
        if isinstance(value, str):
            self._string(value, path, out)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._number(value, path, out)
        elif isinstance(value, list):
            if self.max_items is not None and len(value) > self.max_items:
                out.append((path, f"Too many: {len(value)}: must have at most {self.max_items} {_items(self.max_items)}", True))
            if self.min_items is not None and len(value) < self.min_items:
                out.append((path, f"Invalid value: {len(value)}: {path} in body should have at least {self.min_items} items", False))
            if self.unique_items and len({json.dumps(v, sort_keys=True, default=str) for v in value}) < len(value):
                out.append((path, f"Invalid value: {show(value)}: {path} in body shouldn't contain duplicates", False))
        elif isinstance(value, dict):
            if self.max_properties is not None and len(value) > self.max_properties:
                out.append((path, f"Too many: {len(value)}: must have at most {self.max_properties} {_items(self.max_properties)}", True))
            if self.min_properties is not None and len(value) < self.min_properties:
                out.append(
                    (path, f"Invalid value: {len(value)}: {path} in body should have at least {self.min_properties} properties", False)
                )
        return out

    def _string(self, value: str, path: str, out: list[Finding]) -> None:
        if self.max_length is not None and len(value) > self.max_length:
            out.append((path, f"Too long: may not be more than {self.max_length} {'byte' if self.max_length == 1 else 'bytes'}", True))
        if self.min_length is not None and len(value) < self.min_length:
            out.append((path, f"Invalid value: {show(value)}: {path} in body should be at least {self.min_length} chars long", False))
        if self.pattern is not None and not self.pattern.search(value):
            out.append((path, f"Invalid value: {show(value)}: {path} in body should match '{self.pattern_text}'", False))
        if self.format is not None and not self.format(value):
            out.append(
                (path, f"Invalid value: {show(value)}: {path} in body must be of type {_format_name(self.format)}: {show(value)}", False)
            )

    def _number(self, value: float, path: str, out: list[Finding]) -> None:
        if self.minimum is not None and (value < self.minimum or (self.exclusive_minimum and value == self.minimum)):
            bound = "greater than" if self.exclusive_minimum else "greater than or equal to"
            out.append((path, f"Invalid value: {show(value)}: {path} in body should be {bound} {_number(self.minimum)}", False))
        if self.maximum is not None and (value > self.maximum or (self.exclusive_maximum and value == self.maximum)):
            bound = "less than" if self.exclusive_maximum else "less than or equal to"
            out.append((path, f"Invalid value: {show(value)}: {path} in body should be {bound} {_number(self.maximum)}", False))


def _same(value: Any, allowed: Any) -> bool:
    """JSON equality (Python's has True == 1)."""
    if isinstance(value, bool) or isinstance(allowed, bool):
        return type(value) is type(allowed) and value == allowed
    return bool(value == allowed)


def _items(n: int) -> str:
    return "item" if n == 1 else "items"


def _number(n: float) -> str:
    return str(int(n)) if isinstance(n, float) and n.is_integer() else str(n)


def _format_name(check: Any) -> str:
    return next(name for name, f in _FORMATS.items() if f is check)


# ------------------------------------------------------------- oneOf, anyOf, allOf, not


def combinator_findings(schema: dict[str, Any], value: Any, path: str) -> tuple[list[Finding], int]:
    """Findings of the value validations oneOf/anyOf/allOf/not of `schema`, as go-openapi
    reports them (the failures of the best-matching branch follow the summary), and how
    many checks passed (go-openapi's MatchCount, which picks that branch)."""
    out: list[Finding] = []
    matched = 0
    if "oneOf" in schema:
        results = [conformance(branch, value, path) for branch in schema["oneOf"]]
        valid = sum(1 for findings, _ in results if not findings)
        if valid == 1:
            matched += 1
        else:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            out.append((path, f'Invalid value: "": {path} in body must validate one and only one schema (oneOf). {found}', False))
            if valid == 0:
                out += _best(results)
    if "anyOf" in schema:
        results = [conformance(branch, value, path) for branch in schema["anyOf"]]
        if any(not findings for findings, _ in results):
            matched += 1
        else:
            out.append((path, f'Invalid value: "": {path} in body must validate at least one schema (anyOf)', False))
            out += _best(results)
    if "allOf" in schema:
        results = [conformance(branch, value, path) for branch in schema["allOf"]]
        failed = [finding for findings, _ in results for finding in findings]
        if failed:
            out.append((path, f'Invalid value: "": {path} in body must validate all the schemas (allOf)', False))
            out += failed
        else:
            matched += 1
    if "not" in schema:
        findings, _ = conformance(schema["not"], value, path)
        if findings:
            matched += 1
        else:
            out.append((path, f'Invalid value: "": {path} in body must not validate the schema (not)', False))
    return out, matched


def _best(results: list[tuple[list[Finding], int]]) -> list[Finding]:
    best: tuple[list[Finding], int] | None = None
    for result in results:
        if best is None or result[1] > best[1]:
            best = result
    return best[0] if best else []


def conformance(schema: dict[str, Any], value: Any, path: str) -> tuple[list[Finding], int]:
    """Whether `value` satisfies a value-validation schema (no pruning, no defaults)."""
    type_name = schema.get("type")
    if type_name and not type_ok(type_name, value):
        return [type_finding(path, value, type_name)], 0
    known = _checks.get(id(schema))
    if known is None or known[0] is not schema:
        known = _checks[id(schema)] = (schema, ValueChecks(schema))
    findings = known[1].findings(value, path)
    matched = (1 if type_name else 0) + (0 if findings else 1)
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                findings.append((f"{path}.{name}", "Required value", True))
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                sub_findings, sub_matched = conformance(sub, value[name], f"{path}.{name}")
                findings += sub_findings
                matched += sub_matched
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            sub_findings, sub_matched = conformance(schema["items"], item, f"{path}[{i}]")
            findings += sub_findings
            matched += sub_matched
    more, more_matched = combinator_findings(schema, value, path)
    return findings + more, matched + more_matched
