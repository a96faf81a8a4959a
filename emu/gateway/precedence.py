"""Which hostname and which match win: the precedence rules of the Gateway API as sort
keys (smaller sorts first), and the hostname matching they rest on. Shared by the
compilers (which order a listener's entries with `entry_sort_key`) and the router (which
takes the first entry that holds, as the proxy does).

Sources: apis/v1/gateway_types.go (GatewaySpec.Listeners, "Listeners that are distinct
only by Hostname") and apis/v1/httproute_types.go (HTTPRouteSpec.Hostnames,
HTTPRouteRule.Matches).
"""

from __future__ import annotations

import re
from typing import Any

from emu.gateway.model import Match, RouteEntry

# RegularExpression path precedence is implementation-specific (httproute_types.go). kemu
# puts it after Exact and before PathPrefix: a regex is written to pick out requests a
# prefix would also take, so it must be tried first.
PATH_TYPE_RANK = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}


def split_host(host: str) -> str:
    """The hostname of a Host header: lower-cased, a trailing ":<digits>" port dropped
    (the spec: "MUST ignore any port value"); "[::1]:80" gives "[::1]". Nothing else is
    normalized (a trailing dot stays), as the proxy sees it."""
    return _PORT.sub("", host.strip().lower())


_PORT = re.compile(r":[0-9]+$")


def hostname_matches(pattern: str | None, host: str, one_label_wildcard: bool = False) -> bool:
    """Does a listener or route hostname hold for a request's hostname (already split)?
    None matches any host. "*.example.com" matches one or more labels before
    ".example.com" (Gateway API), or exactly one (Ingress, `one_label_wildcard`); never
    "example.com" itself."""
    if pattern is None:
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]
        if not host.endswith(suffix):
            return False
        head = host[: -len(suffix)]
        return bool(head) and ("." not in head if one_label_wildcard else True)
    return host == pattern


def hostname_covers(pattern: str, hostname: str) -> bool:
    """Does `pattern` (exact or "*.suffix") hold for every name `hostname` (exact or
    wildcard) stands for? "*.example.com" covers "a.example.com" and "*.a.example.com",
    not "example.com"; an exact hostname covers only itself."""
    if pattern == hostname:
        return True
    if not pattern.startswith("*."):
        return False
    suffix = pattern[1:]
    return hostname.endswith(suffix) and len(hostname) > len(pattern if hostname.startswith("*.") else suffix)


def listener_sort_key(hostname: str | None, name: str = "") -> tuple[Any, ...]:
    """Listeners that differ only by hostname: exact before wildcard, more labels to the
    right of the wildcard first, and no hostname last (gateway_types.go)."""
    if hostname is None:
        return (2, 0, 0, "", name)
    if hostname.startswith("*."):
        return (1, -hostname.count("."), -len(hostname), hostname, name)
    return (0, 0, 0, hostname, name)


def hostname_rank(hostname: str | None) -> tuple[int, int]:
    """Route hostnames that both hold for a request: the one with more characters in a
    matching non-wildcard hostname first, then more characters in the matching hostname
    (HTTPRouteSpec.Hostnames). No hostname ranks last."""
    if hostname is None:
        return (0, 0)
    exact = 0 if hostname.startswith("*.") else len(hostname)
    return (-exact, -len(hostname))


def match_rank(match: Match) -> tuple[int, int, int, int, int]:
    """HTTPRouteRule.Matches precedence: Exact path, then RegularExpression (kemu's
    choice, see PATH_TYPE_RANK), then the longest PathPrefix; then a method match; then
    the most header matches; then the most query parameter matches."""
    # A PathPrefix's trailing "/" is ignored when matching, so it does not count either.
    length = len(match.path.rstrip("/")) if match.path_type == "PathPrefix" else len(match.path)
    return (
        PATH_TYPE_RANK.get(match.path_type, len(PATH_TYPE_RANK)),
        -length,
        0 if match.method else 1,
        -len(match.headers),
        -len(match.query),
    )


def entry_sort_key(entry: RouteEntry, created: float, key: str, order: tuple[int, ...] = ()) -> tuple[Any, ...]:
    """The full order of a listener's entries: hostname, then match, then the oldest
    route (`created`), then "namespace/name" (`key`) alphabetically, then the rule and
    match order within the route (`order`, e.g. (rule index, match index)). The last
    part only makes the order total (entries with different hostnames of equal rank
    never both hold for one request)."""
    return (*hostname_rank(entry.hostname), *match_rank(entry.match), created, key, order, entry.hostname or "")
