"""kubectl's words for a schema's verdict: jsonschema's errors as kemu's (path, message) pairs.

What emu/config/openapi.py reports for a manifest: `unknown field "x"`, `Required value`,
`Invalid value: "3": expected integer, got string`, `Unsupported value: ...: supported
values: ...`, each at a dotted path with list indexes as [i], sorted by path. A YAML date
counts as a string, as it does for kubectl; values are quoted as the API server quotes
them (`show`, also used by the CRD checks).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError as SchemaError

Problem = tuple[str, str]


def _collect(raw: dict[str, Any], errors: Iterable[SchemaError]) -> list[Problem]:
    found: dict[Problem, tuple[Any, ...]] = {}
    for error in errors:
        for where, message in _translate(error):
            problem = (_path(raw, where), message)
            found.setdefault(problem, tuple(_sort_key(part) for part in where))
    return [problem for problem, _ in sorted(found.items(), key=lambda item: (item[1], item[0][1]))]


def _translate(error: SchemaError) -> Iterator[tuple[list[Any], str]]:
    where = list(error.absolute_path)
    instance, schema, keyword = error.instance, error.schema, error.validator
    # The keyword's value in the schema: any JSON (the stubs allow jsonschema's "unset"
    # marker too, which an error from validation never carries).
    rule: Any = error.validator_value
    if keyword == "additionalProperties" and isinstance(instance, dict) and isinstance(schema, dict):
        known = schema.get("properties", {})
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        for name in instance:
            if name not in known and not any(p.search(str(name)) for p in patterns):
                yield [*where, name], f'unknown field "{name}"'
    elif keyword == "required" and isinstance(instance, dict):
        for name in rule:
            if name not in instance:
                yield [*where, name], "Required value"
    elif keyword == "type":
        if instance is None:
            # Only required fields are non-nullable in these schemas: null is a missing value.
            yield where, "Required value"
        else:
            yield where, _type_message(instance, *_types(rule))
    elif keyword == "enum":
        supported = ", ".join(show(v) for v in rule if v is not None)
        yield where, f"Unsupported value: {show(instance)}: supported values: {supported}"
    elif keyword in ("oneOf", "anyOf"):
        if instance is None:
            return  # int-or-string and quantities allow null in every branch; kubectl accepts it
        branches = rule
        simple = all(isinstance(b, dict) and set(b) <= {"type", "format"} for b in branches)
        if simple:
            types = [t for b in branches for t in _types(b.get("type", ()))]
            yield where, _type_message(instance, *types)
        elif error.context:
            from jsonschema.exceptions import best_match

            yield from _translate(best_match(error.context))
        else:
            yield where, f"Invalid value: {show(instance)}: matches more than one of the allowed forms"
    else:
        yield where, f"Invalid value: {show(instance)}: {error.message}"


def _types(value: Any) -> list[str]:
    types = [value] if isinstance(value, str) else list(value)
    return [t for t in types if t != "null"] or types


_ARTICLE = {
    "integer": "an integer",
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "number": "a number",
    "boolean": "a boolean",
}


def _type_message(value: Any, *expected: str) -> str:
    got = json_type(value)
    if len(expected) == 1:
        wanted = expected[0]
    else:  # int-or-string: "expected an integer or a string"
        order = sorted(
            dict.fromkeys(expected),
            key=lambda t: ["integer", "number", "string", "boolean", "array", "object"].index(t) if t in _ARTICLE else 9,
        )
        wanted = " or ".join(_ARTICLE.get(t, t) for t in order)
    return f"Invalid value: {show(value)}: expected {wanted}, got {got}"


def _date_text(value: Any) -> str:
    if isinstance(value, datetime.date):
        return str(value)
    raise TypeError(type(value).__name__)


def json_type(value: Any) -> str:
    """The JSON type the API server would see (a YAML date is a string)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for kind, name in ((int, "integer"), (float, "number"), (str | datetime.date, "string"), (dict, "object"), (list, "array")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def show(value: Any, limit: int = 60) -> str:
    """A value as the message quotes it: "3" for a string, 3 for a number, JSON for the rest."""
    try:
        text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _path(raw: Any, where: list[Any]) -> str:
    """kemu's path: keys joined by dots, list indexes as [i] (a mapping's int key stays a key)."""
    out = ""
    node = raw
    for part in where:
        if isinstance(node, list) and isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return out


def _sort_key(part: Any) -> tuple[int, int, str]:
    return (0, part, "") if isinstance(part, int) else (1, 0, str(part))
