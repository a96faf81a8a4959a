"""Label selectors (matchLabels + matchExpressions), as in apimachinery's labels package."""

from __future__ import annotations

from dataclasses import dataclass, field

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            # NotIn matches objects without the key too (apimachinery semantics).
            return labels.get(self.key) not in self.values if self.key in labels else True
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        raise ValueError(f"unknown operator {self.operator}")


@dataclass(frozen=True)
class LabelSelector:
    """An empty selector matches everything (as a NetworkPolicy podSelector: {} does)."""

    match_labels: dict[str, str] = field(default_factory=dict)
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(r.matches(labels) for r in self.match_expressions)

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        for r in self.match_expressions:
            if r.operator in ("In", "NotIn"):
                parts.append(f"{r.key} {r.operator.lower()} ({','.join(r.values)})")
            elif r.operator == "Exists":
                parts.append(r.key)
            else:
                parts.append(f"!{r.key}")
        return ",".join(parts) or "<all>"


def parse_selector(text: str) -> LabelSelector:
    """kubectl's `-l` syntax: `a=b,c!=d,e in (f,g),h notin (i),j,!k` (`==` as `=`)."""
    import re

    labels: dict[str, str] = {}
    exprs: list[Requirement] = []
    # Split on commas outside parentheses.
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for raw in (p.strip() for p in parts):
        if not raw:
            continue
        m = re.fullmatch(r"([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)", raw)
        if m:
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            exprs.append(Requirement(m.group(1), "In" if m.group(2) == "in" else "NotIn", values))
        elif "!=" in raw:
            k, v = raw.split("!=", 1)
            exprs.append(Requirement(k.strip(), "NotIn", (v.strip(),)))
        elif "=" in raw:
            k, v = raw.replace("==", "=").split("=", 1)
            labels[k.strip()] = v.strip()
        elif raw.startswith("!"):
            exprs.append(Requirement(raw[1:].strip(), "DoesNotExist"))
        else:
            exprs.append(Requirement(raw, "Exists"))
    return LabelSelector(labels, tuple(exprs))
