"""`kemu get` columns for the Gateway API kinds (and IngressClass): the CRDs' additionalPrinterColumns, as
kubectl prints them (wide adds the priority-1 columns)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Columns = Callable[[Obj, str, bool], list[str]]  # (object, its age, wide) → the row


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def condition(o: Obj, kind: str) -> str:
    """status of the condition of that type (kubectl's jsonpath prints "" when absent)."""
    conds = (o.get("status") or {}).get("conditions") or []
    return next((str(c.get("status", "")) for c in conds if c.get("type") == kind), "")


def gatewayclass(o: Obj, age: str, wide: bool) -> list[str]:
    spec = o.get("spec") or {}
    row = [str(_meta(o).get("name", "")), str(spec.get("controllerName", "")), condition(o, "Accepted"), age]
    return [*row, str(spec.get("description", ""))] if wide else row


def gateway(o: Obj, age: str, wide: bool) -> list[str]:
    addrs = ",".join(str(a.get("value", "")) for a in (o.get("status") or {}).get("addresses") or [])
    return [str(_meta(o).get("name", "")), str((o.get("spec") or {}).get("gatewayClassName", "")), addrs, condition(o, "Programmed"), age]


def httproute(o: Obj, age: str, wide: bool) -> list[str]:
    hosts = (o.get("spec") or {}).get("hostnames") or []
    return [str(_meta(o).get("name", "")), ",".join(hosts) if hosts else "", age]


def named(o: Obj, age: str, wide: bool) -> list[str]:
    return [str(_meta(o).get("name", "")), age]


def ingressclass(o: Obj, age: str, wide: bool) -> list[str]:
    spec = o.get("spec") or {}
    params = spec.get("parameters") or {}
    shown = "<none>"
    if params:
        # kubectl's printIngressClass: Kind[.apiGroup]/name
        kind = params.get("kind", "") + (f".{params['apiGroup']}" if params.get("apiGroup") else "")
        shown = f"{kind}/{params.get('name', '')}"
    return [str(_meta(o).get("name", "")), str(spec.get("controller", "")), shown, age]


LAYOUTS: dict[str, tuple[list[str], list[str], Columns]] = {
    "GatewayClass": (["NAME", "CONTROLLER", "ACCEPTED", "AGE"], ["DESCRIPTION"], gatewayclass),
    "Gateway": (["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"], [], gateway),
    "HTTPRoute": (["NAME", "HOSTNAMES", "AGE"], [], httproute),
    "GRPCRoute": (["NAME", "HOSTNAMES", "AGE"], [], httproute),
    "ReferenceGrant": (["NAME", "AGE"], [], named),
    "IngressClass": (["NAME", "CONTROLLER", "PARAMETERS", "AGE"], [], ingressclass),
}
