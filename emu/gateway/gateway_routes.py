"""An HTTPRoute compiled, independently of where it attaches: its hostnames and, per rule,
the matches and the Action (filters, backends, timeout), plus what is wrong with it
(apis/v1/httproute_types.go).

A rule kemu cannot implement (an unknown match or filter type, a filter combination the
spec forbids) is kept with an Action that answers 500, so that requests it would have
taken are never silently routed elsewhere; the route reports it (PartiallyInvalid, or
Accepted=False when every rule is like that).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emu.digest import short_hash
from emu.gateway.gateway_common import duration_ms, ns_name, reference_granted
from emu.gateway.model import (
    Action,
    Backend,
    HeaderMatch,
    HeaderModifier,
    Match,
    Mirror,
    PathModifier,
    Redirect,
    Rewrite,
    World,
    is_path_type,
    is_value_type,
)
from emu.gateway.precedence import hostname_covers

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
REDIRECT_CODES = (301, 302, 303, 307, 308)
# Service appProtocols the proxy cannot speak to a backend (it needs TLS to the backend,
# which takes a BackendTLSPolicy kemu does not implement).
UNSUPPORTED_APP_PROTOCOLS = ("https", "kubernetes.io/wss", "tls")


class RuleError(Exception):
    """A rule kemu cannot implement: reason (UnsupportedValue, IncompatibleFilters) and why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CompiledRule:
    index: int
    matches: tuple[Match, ...]
    action: Action
    problem: str = ""  # why the rule answers 500 instead (a route condition reason)
    message: str = ""


@dataclass(frozen=True)
class CompiledRoute:
    ns: str
    name: str
    hostnames: tuple[str, ...]  # lower-cased; () = any
    rules: tuple[CompiledRule, ...]
    refs_reason: str = "ResolvedRefs"  # the first backendRef problem (RouteConditionResolvedRefs)
    refs_message: str = ""

    @property
    def key(self) -> str:
        return f"{self.ns}/{self.name}"

    @property
    def invalid_rules(self) -> tuple[CompiledRule, ...]:
        return tuple(r for r in self.rules if r.problem)

    @property
    def wholly_invalid(self) -> bool:
        return bool(self.rules) and len(self.invalid_rules) == len(self.rules)


def compile_route(world: World, route: dict[str, Any]) -> CompiledRoute:
    ns, name = ns_name(route)
    spec = route.get("spec") or {}
    hostnames = tuple(dict.fromkeys(str(h).lower() for h in spec.get("hostnames") or ()))
    raw_rules = spec.get("rules") or [{}]  # the CRD default: one rule matching everything
    problems: list[tuple[str, str]] = []
    rules = tuple(_compile_rule(world, ns, name, i, r if isinstance(r, dict) else {}, problems) for i, r in enumerate(raw_rules))
    if problems:
        return CompiledRoute(ns, name, hostnames, rules, problems[0][0], "; ".join(m for _, m in problems))
    return CompiledRoute(ns, name, hostnames, rules)


def _compile_rule(world: World, ns: str, name: str, index: int, raw: dict[str, Any], problems: list[tuple[str, str]]) -> CompiledRule:
    action_id = f"httproute/{ns}/{name}/{index}"
    matches: list[Match] = []
    try:
        for m in raw.get("matches") or [{}]:
            matches.append(_match(m if isinstance(m, dict) else {}))
        action = _action(world, ns, action_id, raw, tuple(matches), problems)
    except RuleError as e:
        return CompiledRule(index, tuple(matches), Action(id=action_id), e.reason, f"rule {index}: {e}")
    return CompiledRule(index, tuple(matches), action)


# --- matches ------------------------------------------------------------------------------


def _match(raw: dict[str, Any]) -> Match:
    path = raw.get("path") or {}
    path_type = str(path.get("type") or "PathPrefix")
    value = str(path.get("value") if path.get("value") is not None else "/")
    if not is_path_type(path_type):
        raise RuleError("UnsupportedValue", f"path match type {path_type!r}")
    if path_type == "RegularExpression":
        _check_regex(value, "path")
    elif not value.startswith("/"):
        raise RuleError("UnsupportedValue", f"path {value!r} must start with /")
    elif path_type == "PathPrefix":
        value = value.rstrip("/") or "/"  # a trailing "/" is ignored (PathMatchPathPrefix)
    method = raw.get("method")
    if method is not None and method not in METHODS:
        raise RuleError("UnsupportedValue", f"method {method!r}")
    return Match(
        path_type=path_type,
        path=value,
        headers=_value_matches(raw.get("headers"), "header", lambda n: n.lower()),
        query=_value_matches(raw.get("queryParams"), "query parameter", lambda n: n),
        method=method,
    )


def _value_matches(raw: Any, what: str, fold: Callable[[str], str]) -> tuple[HeaderMatch, ...]:
    """Header or query parameter matches; of entries with equivalent names only the
    first counts (HTTPHeaderMatch.Name, HTTPQueryParamMatch.Name)."""
    out: dict[str, HeaderMatch] = {}
    for h in raw or ():
        kind = str(h.get("type") or "Exact")
        if not is_value_type(kind):
            raise RuleError("UnsupportedValue", f"{what} match type {kind!r}")
        name, value = str(h.get("name") or ""), str(h.get("value") or "")
        if kind == "RegularExpression":
            _check_regex(value, what)
        out.setdefault(fold(name), HeaderMatch(name=name, value=value, type=kind))
    return tuple(out.values())


def _check_regex(pattern: str, what: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise RuleError("UnsupportedValue", f"{what} regular expression {pattern!r}: {e}") from e


# --- filters and backends ---------------------------------------------------------------------


def _action(
    world: World, ns: str, action_id: str, raw: dict[str, Any], matches: tuple[Match, ...], problems: list[tuple[str, str]]
) -> Action:
    filters = [f for f in raw.get("filters") or () if isinstance(f, dict)]
    types = [str(f.get("type") or "") for f in filters]
    for t in set(types):
        if t != "RequestMirror" and types.count(t) > 1:
            raise RuleError("IncompatibleFilters", f"filter {t} is repeated")
    if "RequestRedirect" in types and "URLRewrite" in types:
        raise RuleError("IncompatibleFilters", "RequestRedirect and URLRewrite cannot be combined")
    refs = [b for b in raw.get("backendRefs") or () if isinstance(b, dict)]
    if "RequestRedirect" in types and refs:
        raise RuleError("IncompatibleFilters", "RequestRedirect cannot be used with backendRefs")
    request_headers = response_headers = None
    redirect = rewrite = None
    mirrors: list[Mirror] = []
    for f, t in zip(filters, types, strict=True):
        if t == "RequestHeaderModifier":
            request_headers = header_modifier(f.get("requestHeaderModifier"))
        elif t == "ResponseHeaderModifier":
            response_headers = header_modifier(f.get("responseHeaderModifier"))
        elif t == "RequestRedirect":
            redirect = _redirect(f.get("requestRedirect") or {}, matches)
        elif t == "URLRewrite":
            rewrite = _rewrite(f.get("urlRewrite") or {}, matches)
        elif t == "RequestMirror":
            mirror = _mirror(world, ns, f.get("requestMirror") or {}, problems)
            if mirror is not None:
                mirrors.append(mirror)
        else:
            raise RuleError("UnsupportedValue", f"filter type {t!r} is not supported by kemu")
    backends = tuple(_backend_of(world, ns, ref, problems) for ref in refs)
    timeout_ms = None
    request_timeout = (raw.get("timeouts") or {}).get("request")
    if request_timeout is not None:
        try:
            timeout_ms = duration_ms(str(request_timeout))  # 0: no timeout (HTTPRouteTimeouts)
        except ValueError as e:
            raise RuleError("UnsupportedValue", f"timeouts.request: {e}") from e
    return Action(
        id=action_id,
        request_headers=request_headers,
        response_headers=response_headers,
        redirect=redirect,
        rewrite=rewrite,
        mirrors=tuple(mirrors),
        backends=backends,
        timeout_ms=timeout_ms,
    )


def header_modifier(raw: Any) -> HeaderModifier:
    raw = raw if isinstance(raw, dict) else {}

    def pairs(key: str) -> tuple[tuple[str, str], ...]:
        return tuple((str(h.get("name") or ""), str(h.get("value") or "")) for h in raw.get(key) or () if isinstance(h, dict))

    return HeaderModifier(set=pairs("set"), add=pairs("add"), remove=tuple(str(n) for n in raw.get("remove") or ()))


def _path_modifier(raw: Any, matches: tuple[Match, ...]) -> PathModifier | None:
    if not isinstance(raw, dict):
        return None
    kind = str(raw.get("type") or "")
    if kind == "ReplaceFullPath":
        return PathModifier("ReplaceFullPath", str(raw.get("replaceFullPath") or "/"))
    if kind == "ReplacePrefixMatch":
        # Only with exactly one PathPrefix match (HTTPRouteRule validation), whose
        # prefix is the part of the path replaced.
        if len(matches) != 1 or matches[0].path_type != "PathPrefix":
            raise RuleError("UnsupportedValue", "ReplacePrefixMatch needs exactly one PathPrefix match")
        return PathModifier("ReplacePrefixMatch", str(raw.get("replacePrefixMatch") or ""), prefix=matches[0].path)
    raise RuleError("UnsupportedValue", f"path modifier type {kind!r}")


def _redirect(raw: dict[str, Any], matches: tuple[Match, ...]) -> Redirect:
    scheme = raw.get("scheme")
    if scheme is not None and scheme not in ("http", "https"):
        raise RuleError("UnsupportedValue", f"redirect scheme {scheme!r}")
    status = raw.get("statusCode", 302)
    if status not in REDIRECT_CODES:
        raise RuleError("UnsupportedValue", f"redirect statusCode {status!r}")
    port = raw.get("port")
    hostname = raw.get("hostname")
    return Redirect(
        scheme=scheme,
        hostname=str(hostname).lower() if hostname else None,
        path=_path_modifier(raw.get("path"), matches),
        port=port if isinstance(port, int) else None,
        status=status,
    )


def _rewrite(raw: dict[str, Any], matches: tuple[Match, ...]) -> Rewrite:
    hostname = raw.get("hostname")
    return Rewrite(hostname=str(hostname) if hostname else None, path=_path_modifier(raw.get("path"), matches))


def _mirror(world: World, ns: str, raw: dict[str, Any], problems: list[tuple[str, str]]) -> Mirror | None:
    """A mirror whose backend is invalid is dropped (HTTPRequestMirrorFilter.BackendRef)."""
    backend = _backend_of(world, ns, raw.get("backendRef") or {}, problems, mirror=True)
    if backend.invalid:
        return None
    percent = 100
    if isinstance(raw.get("percent"), int):
        percent = raw["percent"]
    elif isinstance(raw.get("fraction"), dict):
        fraction = raw["fraction"]
        denominator = fraction.get("denominator") or 100
        percent = round(100 * int(fraction.get("numerator") or 0) / int(denominator))
    return Mirror(backend=backend, percent=max(0, min(100, percent)))


def _backend_of(world: World, route_ns: str, ref: dict[str, Any], problems: list[tuple[str, str]], mirror: bool = False) -> Backend:
    """A backendRef resolved to a Service port's endpoints, or an invalid Backend whose
    share of requests answers 500 (HTTPBackendRef: InvalidKind, RefNotPermitted,
    BackendNotFound, UnsupportedProtocol)."""
    group, kind = str(ref.get("group") or ""), str(ref.get("kind") or "Service")
    ns, name, port = str(ref.get("namespace") or route_ns), str(ref.get("name") or ""), ref.get("port")
    weight = ref.get("weight", 1) if not mirror else 1
    weight = weight if isinstance(weight, int) and weight >= 0 else 1
    where = f"{ns}/{name}:{port}"

    def invalid(reason: str, message: str) -> Backend:
        problems.append((reason, message))
        return Backend(name=f"invalid:{reason}:{group or 'core'}/{kind}:{where}", weight=weight, invalid=reason)

    if group != "" or kind != "Service":
        return invalid("InvalidKind", f"backendRef {where}: kind {group or 'core'}/{kind} is not supported (core/Service)")
    if not reference_granted(world, from_kind="HTTPRoute", from_ns=route_ns, to_group="", to_kind="Service", to_ns=ns, to_name=name):
        return invalid("RefNotPermitted", f"backendRef {where}: no ReferenceGrant in {ns} lets HTTPRoutes of {route_ns} use it")
    ports = world.services.get((ns, name))
    if ports is None:
        return invalid("BackendNotFound", f"backendRef {where}: service not found")
    info = next((p for p in ports if isinstance(port, int) and p.port == port), None)
    if info is None:
        return invalid("BackendNotFound", f"backendRef {where}: the service has no such port")
    if info.protocol != "TCP" or (info.app_protocol or "").lower() in UNSUPPORTED_APP_PROTOCOLS:
        return invalid("UnsupportedProtocol", f"backendRef {where}: {info.protocol}/{info.app_protocol} cannot carry HTTP from the proxy")
    request_headers = response_headers = None
    for f in ref.get("filters") or ():
        t = str(f.get("type") or "")
        if t == "RequestHeaderModifier":
            request_headers = header_modifier(f.get("requestHeaderModifier"))
        elif t == "ResponseHeaderModifier":
            response_headers = header_modifier(f.get("responseHeaderModifier"))
        else:
            raise RuleError("UnsupportedValue", f"backendRef filter type {t!r} is not supported by kemu")
    backend_name = f"{ns}/{name}:{port}"
    if request_headers or response_headers:
        # Backend-level filters make it a backend of its own (the proxy applies them there).
        backend_name += f"~{short_hash(request_headers, response_headers, length=8)}"
    return Backend(
        name=backend_name,
        weight=weight,
        endpoints=info.endpoints,
        request_headers=request_headers,
        response_headers=response_headers,
        h2c=info.app_protocol == "kubernetes.io/h2c",
    )


# --- hostnames ------------------------------------------------------------------------------


def intersect_hostnames(listener: str | None, route: tuple[str, ...]) -> tuple[str | None, ...]:
    """The hostnames a route serves on a listener (HTTPRouteSpec.Hostnames): the route's
    that the listener's hostname covers, or the listener's where a route wildcard covers
    it; a route without hostnames takes the listener's. () = no intersection."""
    if not route:
        return (listener,)
    if listener is None:
        return route
    out: list[str] = []
    for h in route:
        if hostname_covers(listener, h):
            out.append(h)
        elif hostname_covers(h, listener):
            out.append(listener)
    return tuple(dict.fromkeys(out))
