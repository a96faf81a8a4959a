"""kubectl's resource arguments (`KIND[,KIND…] [NAME…]`, `KIND/NAME…`) and the daemon
look-ups the object commands share: objects by kind and name, and the pod a word means."""

from __future__ import annotations

import argparse
import sys

from emu.cli.argv import UsageError
from emu.cli.output_format import Obj, kind_prefix, selector_string
from emu.config import registry
from emu.daemon.client import request
from emu.errors import KemuError, ValidationError


def _resolve(word: str) -> registry.KindInfo:
    try:
        return registry.resolve(word)
    except ValidationError as e:
        raise UsageError(e.problems[0].message) from e


def resource_args(words: list[str], verb: str) -> list[tuple[registry.KindInfo, list[str]]]:
    """`KIND[,KIND…] [NAME…]` or `KIND/NAME…` → [(kind, names), ...] in the order given."""
    if not words:
        raise UsageError(
            f'You must specify the type of resource to {verb}. Use "kemu api-resources" for a complete list of supported resources.'
        )
    out: dict[str, tuple[registry.KindInfo, list[str]]] = {}
    if any("/" in w for w in words):
        for w in words:
            kind, slash, name = w.partition("/")
            if not slash or not kind or not name:
                raise UsageError(
                    f"there is no need to specify a resource type as a separate argument when passing arguments in "
                    f"resource/name form (e.g. 'kemu {verb} resource/<resource_name>' instead of "
                    f"'kemu {verb} resource resource/<resource_name>'): {w!r}"
                )
            info = _resolve(kind)
            out.setdefault(info.kind, (info, []))[1].append(name)
        return list(out.values())
    for word in words[0].split(","):
        if word:
            info = _resolve(word)
            out.setdefault(info.kind, (info, []))
    names = list(dict.fromkeys(words[1:]))
    return [(info, list(names)) for info, _ in out.values()]


def namespace_of(args: argparse.Namespace) -> str:
    return str(getattr(args, "namespace", None) or "default")


def no_resources(kinds: list[str], args: argparse.Namespace) -> str:
    if getattr(args, "all_namespaces", False) or not any(registry.is_namespaced(k) for k in kinds):
        return "No resources found"
    return f"No resources found in {namespace_of(args)} namespace."


def _is_not_found(e: KemuError) -> bool:
    return "not found" in str(e).lower()


def not_found(info: registry.KindInfo, name: str) -> str:
    return f'Error from server (NotFound): {info.resource} "{name}" not found'


def get_objects(cluster: str, kind: str, ns: str, name: str | None = None, all_ns: bool = False, selector: str | None = None) -> list[Obj]:
    items = request(cluster, "get", kind=kind, name=name, namespace=ns, all_namespaces=all_ns, selector=selector)
    return list(items or [])


def get_named(cluster: str, info: registry.KindInfo, ns: str, name: str) -> list[Obj]:
    """The named object ([] when it does not exist)."""
    try:
        return get_objects(cluster, info.kind, ns, name)
    except KemuError as e:
        if _is_not_found(e):
            return []
        raise


def selector_of(obj: Obj) -> str:
    """The pods an object manages, as a selector string (a Service's or RC's map, or a LabelSelector)."""
    sel = (obj.get("spec") or {}).get("selector")
    if not isinstance(sel, dict) or not sel:
        return ""
    if "matchLabels" in sel or "matchExpressions" in sel:
        return selector_string(sel)
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))


def _pod_rank(p: Obj) -> tuple[int, str]:
    st = p.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
    running = st.get("phase") == "Running"
    return (0 if ready else 1 if running else 2, (p.get("metadata") or {}).get("name", ""))


def resolve_pod(cluster: str, word: str, ns: str) -> str:
    """A pod's name from `NAME`, `pod/NAME` or `KIND/NAME` of something with a selector (deploy/web)."""
    kind, slash, name = word.partition("/")
    if not slash:
        return word
    info = _resolve(kind)
    if info.kind == "Pod":
        return name
    found = get_named(cluster, info, ns, name)
    if not found:
        raise KemuError(not_found(info, name))
    sel = selector_of(found[0])
    if not sel:
        raise UsageError(f"cannot attach to {kind_prefix(info.kind)}/{name}: it selects no pods")
    pods = sorted(get_objects(cluster, "Pod", ns, selector=sel), key=_pod_rank)
    if not pods:
        raise KemuError(f"no pods found for {kind_prefix(info.kind)}/{name} (selector {sel})")
    chosen = pods[0]["metadata"]["name"]
    if len(pods) > 1:
        print(f"Found {len(pods)} pods, using pod/{chosen}", file=sys.stderr)
    return str(chosen)
