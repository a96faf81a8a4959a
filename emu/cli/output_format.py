"""The small texts kubectl's printers share: timestamps, durations, labels, selectors, names.

What `kemu get` and `kemu describe` cells are made of, as k8s.io/apimachinery and
kubectl format them: RFC 3339 parsing, HumanDuration (`3m12s`, `2d4h`), FormatLabels,
a LabelSelector's text, `kind.group/name`, and the field lookups the per-kind columns
use. Pure functions of their arguments (no clock: ages are in emu/cli/output.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emu.config import registry

Obj = dict[str, Any]


def parse_time(ts: str | None) -> float | None:
    """An RFC 3339 timestamp (`2024-01-02T03:04:05Z`, with or without fractions) → epoch seconds."""
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery's duration.HumanDuration: 5s, 3m12s, 15m, 4h5m, 10h, 2d4h, 30d, 2y10d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


# --- small formatters -----------------------------------------------------------------------


def format_labels(labels: dict[str, str] | None) -> str:
    """labels.FormatLabels: `a=1,b=2` sorted by key, `<none>` when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def selector_string(sel: Obj | None) -> str:
    """A LabelSelector in kubectl's selector syntax (`app=web,tier in (a,b),!old`), "" when empty."""
    if not sel:
        return ""
    reqs: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], sorted(e.get("values") or [])
        if op == "In":
            reqs.append((key, f"{key} in ({','.join(values)})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({','.join(values)})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
    return ",".join(text for _, text in sorted(reqs, key=lambda r: r[0]))


def format_selector(sel: Obj | None) -> str:
    """metav1.FormatLabelSelector: the selector's text, `<none>` when empty."""
    return selector_string(sel) or "<none>"


def kind_prefix(kind: str) -> str:
    """`pod`, `service`, `deployment.apps`: how kubectl qualifies a name (`-o name`, several kinds)."""
    info = registry.info(kind)
    group = info.group if info is not None else ""
    return f"{kind.lower()}.{group}" if group else kind.lower()


def qualified_name(kind: str, name: str) -> str:
    return f"{kind_prefix(kind)}/{name}"


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def _spec(o: Obj) -> Obj:
    return o.get("spec") or {}


def _status(o: Obj) -> Obj:
    return o.get("status") or {}


def _name(o: Obj) -> str:
    return str(_meta(o).get("name", ""))


def _containers_images(template_spec: Obj) -> list[str]:
    cs = template_spec.get("containers") or []
    return [",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)]


def _lb_ingress(status: Obj, wide: bool) -> str:
    """loadBalancerStatusStringer: ingress IPs or hostnames; long lists cut unless wide."""
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    s = ",".join(i.get("ip") or i.get("hostname") or "" for i in ingress if i.get("ip") or i.get("hostname"))
    if not wide and len(s) > 16:
        s = s[:13] + "..."
    return s


def _list_with_more(items: list[str], count: int, most: int = 3) -> str:
    ret = ",".join(items[:most])
    if count > most:
        return f"{ret} + {count - most} more..."
    return ret or "<unset>"


def _true_condition(conds: list[Obj], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conds)


def _template_spec(o: Obj) -> Obj:
    return (_spec(o).get("template") or {}).get("spec") or {}
