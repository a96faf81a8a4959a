"""What the Gateway API compiler's parts share: names, object metadata, namespace labels,
ReferenceGrants and durations."""

from __future__ import annotations

import re
from typing import Any

from emu.gateway.model import World

GROUP = "gateway.networking.k8s.io"
CONTROLLER_NAME = "kemu.dev/gateway-controller"
HTTP_PROTOCOLS = ("HTTP", "HTTPS")
ROUTE_KINDS_BY_PROTOCOL: dict[str, tuple[str, ...]] = {"HTTP": ("HTTPRoute",), "HTTPS": ("HTTPRoute",)}


def ns_name(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def key_of(obj: dict[str, Any]) -> str:
    ns, name = ns_name(obj)
    return f"{ns}/{name}"


def proxy_name(gateway: dict[str, Any]) -> str:
    return f"Gateway/{key_of(gateway)}"


def namespace_labels(world: World, ns: str) -> dict[str, str]:
    """A namespace's labels, with the one the API server sets on every namespace since
    Kubernetes 1.22 (allowedRoutes selectors rely on it)."""
    return {**world.namespaces.get(ns, {}), "kubernetes.io/metadata.name": ns}


def reference_granted(
    world: World, *, from_kind: str, from_ns: str, to_group: str, to_kind: str, to_ns: str, to_name: str, from_group: str = GROUP
) -> bool:
    """A reference across namespaces is allowed when a ReferenceGrant in the target's
    namespace lists the source (group, kind, namespace) in `from` and the target (group,
    kind, and the name if it gives one) in `to` (apis/v1beta1/referencegrant_types.go)."""
    if from_ns == to_ns:
        return True
    for grant in world.of("ReferenceGrant"):
        if ns_name(grant)[0] != to_ns:
            continue
        spec = grant.get("spec") or {}
        froms = any(
            (f.get("group") or "") == from_group and f.get("kind") == from_kind and f.get("namespace") == from_ns
            for f in spec.get("from") or ()
            if isinstance(f, dict)
        )
        tos = any(
            (t.get("group") or "") == to_group and t.get("kind") == to_kind and (not t.get("name") or t.get("name") == to_name)
            for t in spec.get("to") or ()
            if isinstance(t, dict)
        )
        if froms and tos:
            return True
    return False


_DURATION = re.compile(r"([0-9]{1,5})(ms|h|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


def duration_ms(text: str) -> int:
    """A Gateway API Duration (GEP-2257: up to four "<number><unit>" parts, units h, m,
    s, ms; "1h30m", "500ms", "0s") in milliseconds. ValueError if it is not one."""
    parts = _DURATION.findall(text)
    if not text or not parts or len(parts) > 4 or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a Gateway API duration (e.g. 10s, 500ms, 1m30s)")
    return sum(int(n) * _UNIT_MS[u] for n, u in parts)
