"""Label selectors at the YAML boundary: the schema (with the API server's operator rules)
and the builder of the model's LabelSelector."""

from __future__ import annotations

from typing import Any

from emu.config.schema import Labels, List, Obj, Report, Str, join, label_key, label_value
from emu.model.selectors import OPERATORS, LabelSelector, Requirement


def _expression_check(value: dict[str, Any], path: str, report: Report) -> None:
    op, values = value.get("operator"), value.get("values")
    if op in ("In", "NotIn") and not values:
        report(join(path, "values"), f"must be non-empty when operator is {op}")
    if op in ("Exists", "DoesNotExist") and values:
        report(join(path, "values"), f"must be empty when operator is {op}")


SELECTOR = Obj(
    {
        "matchLabels": Labels(),
        "matchExpressions": List(
            Obj(
                {
                    "key": Str(extra=label_key),
                    "operator": Str(choices=OPERATORS),
                    "values": List(Str(extra=label_value)),
                },
                required=("key", "operator"),
                check_extra=_expression_check,
            )
        ),
    }
)


def build_selector(raw: dict[str, Any] | None) -> LabelSelector:
    raw = raw or {}
    exprs = tuple(Requirement(e["key"], e["operator"], tuple(e.get("values") or ())) for e in raw.get("matchExpressions") or ())
    return LabelSelector(dict(raw.get("matchLabels") or {}), exprs)
