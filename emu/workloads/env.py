"""A container's environment, resolved as the kubelet resolves it (pure: no I/O).

The kubelet builds it in this order (kubelet_pods.go, makeEnvironmentVariables):
1. `envFrom`, in order: every key of the ConfigMap/Secret, with `prefix`, a later source
   overriding an earlier one; keys that are not valid variable names are skipped (the
   kubelet only records an InvalidEnvironmentVariableNames event);
2. `env`, in order, overriding envFrom: `value` with `$(VAR)` expanded against what is
   defined so far, or `valueFrom` (fieldRef, resourceFieldRef, configMapKeyRef,
   secretKeyRef), which is never expanded.
A missing ConfigMap/Secret or key that is not `optional` keeps the container from
starting (CreateContainerConfigError): those are the returned problems, one each.
Service links (FOO_SERVICE_HOST, …) are not part of this.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

_FIELD_KEY = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def valid_env_name(name: str) -> bool:
    """Kubernetes >= 1.34 (RelaxedEnvironmentVariableValidation, GA): printable ASCII but '='."""
    return bool(name) and all(" " <= ch <= "~" and ch != "=" for ch in name)


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion (third_party/forked/golang/expansion).

    `$(VAR)` → its value, or left as written when VAR is undefined; `$$` → `$`; a `$` that
    starts neither stays. The kubelet applies the same to `command` and `args`.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:  # an unclosed reference is kept as written
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : close]
            out.append(env[name] if name in env else f"$({name})")
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


# --- resourceFieldRef --------------------------------------------------------------------

_SUFFIX: dict[str, Fraction] = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    **{s: Fraction(2 ** (10 * (i + 1))) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))([eE][+-]?\d+|[a-zA-Z]*)$")


def parse_quantity(q: Any) -> Fraction:
    """A resource.Quantity ("500m", "64Mi", "1e3", 2) as an exact number."""
    m = _QUANTITY.match(str(q).strip())
    if not m:
        raise ValueError(f"invalid quantity {q!r}")
    number, suffix = m.groups()
    if suffix in _SUFFIX:  # before the exponent form: a bare "E" is exa
        return Fraction(number) * _SUFFIX[suffix]
    if len(suffix) > 1 and suffix[0] in "eE":
        return Fraction(number + suffix)
    raise ValueError(f"invalid quantity {q!r}")


def _resource_value(ref: Mapping[str, Any], container: Mapping[str, Any], pod: Mapping[str, Any]) -> str:
    """The kubelet's ceil(value / divisor). A limit that is not set reads as "0" here (the
    kubelet would substitute the node's allocatable, which kemu does not model); a request
    that is not set defaults to the limit, as the API server's defaulting does."""
    target = container
    if ref.get("containerName"):
        target = next((c for c in (pod.get("spec") or {}).get("containers") or () if c.get("name") == ref["containerName"]), {})
    kind, _, name = str(ref.get("resource", "")).partition(".")
    if kind not in ("limits", "requests") or not name:
        raise ValueError(f"unsupported resource {ref.get('resource')!r}")
    resources = target.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    raw = limits.get(name) if kind == "limits" else requests.get(name, limits.get(name))
    value = parse_quantity(raw) if raw is not None else Fraction(0)
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor <= 0:
        raise ValueError(f"invalid divisor {ref.get('divisor')!r}")
    return str(math.ceil(value / divisor))


# --- fieldRef ----------------------------------------------------------------------------


def _format_map(m: Mapping[str, Any]) -> str:
    # fieldpath.FormatMap: sorted `key="value"` lines (Go's strconv.Quote for the value).
    return "\n".join(f"{k}={json.dumps(str(m[k]), ensure_ascii=False)}" for k in sorted(m))


def _field_value(path: str, pod: Mapping[str, Any], pod_ip: str, host_ip: str, node_name: str) -> str:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace") or "default",
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": node_name or spec.get("nodeName", ""),
        # The ServiceAccount admission plugin fills in "default" when none is named.
        "spec.serviceAccountName": spec.get("serviceAccountName") or spec.get("serviceAccount") or "default",
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,  # single-stack: the one IP (dual-stack would join with ",")
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    if path in ("metadata.labels", "metadata.annotations"):
        return _format_map(meta.get(path.split(".")[1]) or {})
    m = _FIELD_KEY.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ValueError(f"unsupported fieldPath: {path}")


# --- the whole environment ---------------------------------------------------------------


def _text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def container_env(
    container: dict[str, Any],
    pod: dict[str, Any],
    *,
    pod_ip: str,
    host_ip: str,
    node_name: str,
    configmaps: dict[tuple[str, str], dict[str, str]],
    secrets: dict[tuple[str, str], dict[str, str]],
) -> tuple[dict[str, str], list[str]]:
    """(environment, problems) for a raw container dict of a raw pod dict.

    `configmaps`/`secrets` map (namespace, name) → data (Secrets: decoded values). Problems
    are what the kubelet would refuse to start the container for; the environment is
    still as complete as it can be.
    """
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    sources = {"configmap": configmaps, "secret": secrets}
    env: dict[str, str] = {}
    problems: list[str] = []

    for src in container.get("envFrom") or ():
        prefix = str(src.get("prefix") or "")
        for kind, field in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = src.get(field)
            if ref is None:
                continue
            name = str(ref.get("name", ""))
            data = sources[kind].get((ns, name))
            if data is None:
                if not ref.get("optional"):
                    problems.append(f'{kind} "{name}" not found')
                continue
            for key, value in data.items():
                if valid_env_name(prefix + key):  # others: skipped, as the kubelet does
                    env[prefix + key] = _text(value)

    for var in container.get("env") or ():
        name = str(var.get("name", ""))
        value = var.get("value")
        if value not in (None, ""):
            env[name] = expand(_text(value), env)
            continue
        source = var.get("valueFrom") or {}
        try:
            if "fieldRef" in source:
                env[name] = _field_value(str(source["fieldRef"].get("fieldPath", "")), pod, pod_ip, host_ip, node_name)
            elif "resourceFieldRef" in source:
                env[name] = _resource_value(source["resourceFieldRef"], container, pod)
            elif "configMapKeyRef" in source or "secretKeyRef" in source:
                kind, ref = ("configmap", source["configMapKeyRef"]) if "configMapKeyRef" in source else ("secret", source["secretKeyRef"])
                obj, key = str(ref.get("name", "")), str(ref.get("key", ""))
                data = sources[kind].get((ns, obj))
                if data is None or key not in data:
                    if not ref.get("optional"):
                        problems.append(f'{kind} "{obj}" not found' if data is None else f'key "{key}" not found in {kind} "{obj}"')
                    continue  # optional and missing: the variable is not set at all
                env[name] = _text(data[key])
            else:
                env[name] = ""  # `value: ""` (or nothing): defined, empty
        except ValueError as e:
            problems.append(f"env {name}: {e}")
    return env, problems
