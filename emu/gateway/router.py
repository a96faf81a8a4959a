"""What a proxy does with one request, decided from its ProxyConfig alone: the reference
the HAProxy renderer is checked against (same config, same request, same answer).

1. The frontend of the request's port (none: status 0, nothing listens there).
2. The listener: the first of the frontend's listeners (most specific hostname first)
   whose hostname holds for the Host header, compared without its port and
   case-insensitively; none: 404 (listener isolation: no fallback to another listener).
3. The entry: the first of the listener's entries whose hostname and match hold; none: 404.
4. A redirect answers 3xx with Location. Otherwise the action's backends are the
   candidates (weight 0 ones left out): none, or only invalid ones, answer 500; an
   invalid backend's share of requests answers 500; valid backends without any endpoint
   answer 503 (the spec's SHOULD for Services with no ready endpoints).

Matching semantics (httproute_types.go):
- Path: Exact is the exact, case-sensitive string; PathPrefix matches whole "/"-separated
  segments, its trailing "/" ignored, "/" matching everything; RegularExpression must
  match the whole path (Python `re` syntax, in its PCRE-compatible subset). Paths are
  compared as sent (no percent-decoding, no normalization), the query string excluded.
- Headers: names case-insensitive; Exact compares a header line's whole value (no
  splitting at commas), RegularExpression must match it whole; a header sent several
  times holds if one of its lines does (the spec leaves repeated headers to the
  implementation; HAProxy's req.fhdr in an ACL tries every occurrence).
- Query parameters: names case-sensitive; the first occurrence counts; values compared
  as sent (not percent-decoded).
- Method: exact.

Filters: request headers are changed by the rule's RequestHeaderModifier, then by the
chosen backend's; responses by the backend's ResponseHeaderModifier, then by the
rule's (the order HAProxy runs frontend and backend rules in). Within one modifier: set,
then add, then remove (the spec allows one action per header name, so the order only
matters for malformed filters). A redirect answered by the proxy gets no response
header changes. URLRewrite replaces the Host header and/or the path; the query is kept,
and so is a "?" with nothing after it (forwarded paths and redirect Locations alike).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from emu.gateway.model import Backend, Frontend, HeaderMatch, HeaderModifier, Match, Mirror, PathModifier, ProxyConfig, Redirect, RouteEntry
from emu.gateway.precedence import hostname_matches, split_host

Headers = tuple[tuple[str, str], ...]
WELL_KNOWN_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Request:
    port: int
    host: str  # the Host header, as sent (may carry a port)
    path: str = "/"  # may include "?query"
    method: str = "GET"
    headers: Headers = ()
    sni: str | None = None  # the TLS server name (HTTPS frontends)


@dataclass(frozen=True)
class Forwarded:
    """The request as it leaves the proxy for a backend."""

    host: str
    path: str  # with the query string
    headers: Headers

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


@dataclass(frozen=True)
class Outcome:
    status: int  # 200 forwarded, 3xx redirect, 404 no route, 500 no valid backend, 503 no endpoint, 0 no frontend
    listener: str | None = None
    entry: RouteEntry | None = None
    location: str | None = None
    backends: tuple[tuple[Backend, int], ...] = ()  # the candidates and their weights (none of weight 0)
    forwarded: Forwarded | None = None  # after the rule's filters
    response_headers: HeaderModifier | None = None  # the rule's ResponseHeaderModifier
    mirrors: tuple[Mirror, ...] = ()
    timeout_ms: int | None = None

    @property
    def action_id(self) -> str | None:
        return self.entry.action.id if self.entry else None

    def share(self, backend_name: str) -> float:
        """The fraction of requests sent to a backend (by name)."""
        total = sum(w for _, w in self.backends)
        return sum(w for b, w in self.backends if b.name == backend_name) / total if total else 0.0

    @property
    def error_share(self) -> float:
        """The fraction of requests answered 500 because their backend is invalid."""
        total = sum(w for _, w in self.backends)
        return sum(w for b, w in self.backends if b.invalid) / total if total else 0.0

    def request_to(self, backend: Backend) -> Forwarded:
        """The request as `backend` receives it (its own RequestHeaderModifier applied)."""
        assert self.forwarded is not None, "a request that is not forwarded"
        return Forwarded(self.forwarded.host, self.forwarded.path, apply_headers(self.forwarded.headers, backend.request_headers))

    def response_from(self, backend: Backend, headers: Headers) -> Headers:
        """The headers the client gets when `backend` answers with `headers`."""
        return apply_headers(apply_headers(headers, backend.response_headers), self.response_headers)


def route(config: ProxyConfig, request: Request) -> Outcome:
    frontend = config.frontend(request.port)
    if frontend is None:
        return Outcome(status=0)
    hostname = split_host(request.host)
    listener = next((ls for ls in frontend.listeners if hostname_matches(ls.hostname, hostname, ls.one_label_wildcard)), None)
    if frontend.protocol == "HTTPS" and request.sni and listener is not None:
        # A request for another listener than the one its TLS connection was made for
        # (SNI) is misdirected: 421 (RFC 9110 §15.5.20; Gateway API's
        # GatewayHTTPSListenerDetectMisdirectedRequests).
        sni = request.sni.lower()
        by_sni = next((ls for ls in frontend.listeners if hostname_matches(ls.hostname, sni, ls.one_label_wildcard)), None)
        if by_sni is not None and by_sni is not listener:
            return Outcome(status=421, listener=listener.name)
    if listener is None:
        return Outcome(status=404)
    path, mark, query = request.path.partition("?")
    entry = next((e for e in listener.entries if entry_holds(e, hostname, path, query, request.method, request.headers)), None)
    if entry is None:
        return Outcome(status=404, listener=listener.name)
    action = entry.action
    if action.redirect is not None:
        location = redirect_location(action.redirect, frontend, hostname, path, mark + query)
        return Outcome(status=action.redirect.status, listener=listener.name, entry=entry, location=location)
    rewrite = action.rewrite
    new_path = replace_path(path, rewrite.path) if rewrite and rewrite.path else path
    forwarded = Forwarded(
        host=rewrite.hostname if rewrite and rewrite.hostname else request.host,
        path=new_path + mark + query,
        headers=apply_headers(request.headers, action.request_headers),
    )
    candidates = tuple((b, b.weight) for b in action.backends if b.weight > 0)
    valid = [b for b, _ in candidates if not b.invalid]
    status = 500 if not valid else 200 if any(b.endpoints for b in valid) else 503
    return Outcome(
        status=status,
        listener=listener.name,
        entry=entry,
        backends=candidates,
        forwarded=forwarded,
        response_headers=action.response_headers,
        mirrors=action.mirrors,
        timeout_ms=action.timeout_ms,
    )


# --- matching -------------------------------------------------------------------------------


def entry_holds(entry: RouteEntry, hostname: str, path: str, query: str, method: str, headers: Headers) -> bool:
    return hostname_matches(entry.hostname, hostname, entry.one_label_wildcard) and match_holds(entry.match, path, query, method, headers)


def match_holds(match: Match, path: str, query: str, method: str, headers: Headers) -> bool:
    if not path_holds(match, path):
        return False
    if match.method is not None and method != match.method:
        return False
    for h in match.headers:
        if not any(_value_holds(h, v) for n, v in headers if n.lower() == h.name.lower()):
            return False
    return all(_value_holds(q, query_value(query, q.name)) for q in match.query)


def path_holds(match: Match, path: str) -> bool:
    if match.path_type == "Exact":
        return path == match.path
    if match.path_type == "RegularExpression":
        return _regex(match.path).fullmatch(path) is not None
    return prefix_holds(match.path, path)


def prefix_holds(prefix: str, path: str) -> bool:
    """PathPrefix: element-wise on "/"-separated segments, the prefix's trailing "/"
    ignored ("/abc" holds for "/abc", "/abc/" and "/abc/def", not "/abcd")."""
    base = prefix.rstrip("/")
    return not base or path == base or path.startswith(base + "/")


def _value_holds(m: HeaderMatch, value: str | None) -> bool:
    """One header line's or query parameter's value against an HTTPHeaderMatch /
    HTTPQueryParamMatch (None: absent)."""
    if value is None:
        return False
    if m.type == "RegularExpression":
        return _regex(m.value).fullmatch(value) is not None
    return value == m.value


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def header_value(headers: Headers, name: str) -> str | None:
    """A header's value; repeated headers joined with "," (RFC 7230 3.2.2); None if absent."""
    values = [v for n, v in headers if n.lower() == name.lower()]
    return ",".join(values) if values else None


def query_value(query: str, name: str) -> str | None:
    """The first value of a query parameter, as sent; None if absent."""
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if part and key == name:
            return value
    return None


# --- filters --------------------------------------------------------------------------------


def apply_headers(headers: Headers, modifier: HeaderModifier | None) -> Headers:
    if modifier is None:
        return headers
    out = list(headers)
    for name, value in modifier.set:
        out = [h for h in out if h[0].lower() != name.lower()] + [(name, value)]
    out.extend(modifier.add)
    removed = {n.lower() for n in modifier.remove}
    return tuple(h for h in out if h[0].lower() not in removed)


def replace_path(path: str, modifier: PathModifier) -> str:
    """ReplaceFullPath, or ReplacePrefixMatch as the HTTPPathModifier table has it:
    the matched prefix (whole segments) replaced, trailing slashes of the prefix and of
    the replacement ignored ("/foo/bar", prefix "/foo", "/xyz" → "/xyz/bar"; "/foo",
    prefix "/foo", "" → "/")."""
    if modifier.type == "ReplaceFullPath":
        return modifier.value
    prefix = modifier.prefix.rstrip("/")
    if not prefix_holds(prefix or "/", path):
        return path
    return modifier.value.rstrip("/") + path[len(prefix) :] or "/"


def redirect_location(redirect: Redirect, frontend: Frontend, hostname: str, path: str, query: str) -> str:
    """HTTPRequestRedirectFilter: scheme, hostname and path default to the request's;
    the port is the redirect's, else the scheme's well-known port when the redirect sets
    a scheme, else the listener's; a port that is the scheme's default is left out.
    `query` is the request's query part with its "?" ("" when it had none)."""
    scheme = redirect.scheme or ("https" if frontend.protocol == "HTTPS" else "http")
    if redirect.port is not None:
        port = redirect.port
    elif redirect.scheme is not None:
        port = WELL_KNOWN_PORTS.get(redirect.scheme, frontend.port)
    else:
        port = frontend.port
    host = redirect.hostname or hostname
    authority = host if WELL_KNOWN_PORTS.get(scheme) == port else f"{host}:{port}"
    new_path = replace_path(path, redirect.path) if redirect.path else path
    return f"{scheme}://{authority}{new_path}{query}"
