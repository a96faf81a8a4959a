"""The route model: what a proxy must do, compiled from Gateway API or Ingress objects
and independent of any proxy (the HAProxy renderer is one reader of it, the unit tests
another).

A `ProxyConfig` is one proxy deployment (one Gateway, or the shared Ingress proxy). It
has frontends (one per port), each with listeners (chosen by the request's Host, most
specific hostname first, as the Gateway API asks), each with route entries in precedence
order: the first entry whose hostname and match hold for a request takes it. One rule of
an HTTPRoute with N hostnames and M matches yields N×M entries, all pointing to the same
`Action`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard, get_args

PathType = Literal["Exact", "PathPrefix", "RegularExpression"]
ValueType = Literal["Exact", "RegularExpression"]
FrontendProtocol = Literal["HTTP", "HTTPS"]


def is_path_type(value: str) -> TypeGuard[PathType]:
    return value in get_args(PathType)


def is_value_type(value: str) -> TypeGuard[ValueType]:
    return value in get_args(ValueType)


def is_frontend_protocol(value: str) -> TypeGuard[FrontendProtocol]:
    return value in get_args(FrontendProtocol)


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    pod: str = ""  # "ns/name", for humans and tests


@dataclass(frozen=True)
class HeaderModifier:
    """RequestHeaderModifier / ResponseHeaderModifier: set replaces, add appends, remove
    deletes (names are case-insensitive, as in HTTP)."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class PathModifier:
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    value: str
    # For ReplacePrefixMatch: the PathPrefix of the match that selected the rule (the part
    # of the path to replace). The compiler fills it per entry.
    prefix: str = ""


@dataclass(frozen=True)
class Redirect:
    """RequestRedirect. None fields keep the request's value; the renderer derives the
    port as the spec says (scheme's well-known port when the scheme changes, else the
    listener's) and leaves it out of Location when it is the scheme's default."""

    scheme: str | None = None
    hostname: str | None = None
    path: PathModifier | None = None
    port: int | None = None
    status: int = 302


@dataclass(frozen=True)
class Rewrite:
    """URLRewrite: the Host header and/or the path, before the request goes upstream."""

    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True)
class Backend:
    """One backendRef, resolved: the Service port's ready endpoints. `invalid` (a reason)
    makes this backend's share of requests answer 500, as the spec requires for refs that
    are missing, of an unknown kind or not permitted."""

    name: str  # stable and unique within a ProxyConfig, e.g. "ns/svc:8080"
    weight: int = 1
    endpoints: tuple[Endpoint, ...] = ()
    invalid: str = ""
    request_headers: HeaderModifier | None = None  # backendRef-level filters
    response_headers: HeaderModifier | None = None
    h2c: bool = False  # appProtocol kubernetes.io/h2c


@dataclass(frozen=True)
class Mirror:
    backend: Backend
    percent: int = 100


@dataclass(frozen=True)
class Action:
    """What a rule does with a request it takes. With a redirect there is no forwarding;
    with no backends (or only weight-0 ones) and no redirect, the answer is 500."""

    id: str  # unique within a ProxyConfig, e.g. "httproute/ns/name/0"
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    mirrors: tuple[Mirror, ...] = ()
    backends: tuple[Backend, ...] = ()
    timeout_ms: int | None = None  # HTTPRoute timeouts.request


@dataclass(frozen=True)
class HeaderMatch:
    name: str
    value: str
    type: ValueType = "Exact"


@dataclass(frozen=True)
class Match:
    """An HTTPRouteMatch (an Ingress path is one with only `path`). All parts must hold."""

    path_type: PathType = "PathPrefix"
    path: str = "/"
    headers: tuple[HeaderMatch, ...] = ()
    query: tuple[HeaderMatch, ...] = ()  # query parameters: name is case-sensitive
    method: str | None = None


@dataclass(frozen=True)
class RouteEntry:
    """One (hostname, match) of a rule. hostname None: any host. A hostname "*.x.y"
    matches one or more labels before .x.y (Gateway API) or exactly one (Ingress, when
    `one_label_wildcard`)."""

    hostname: str | None
    match: Match
    action: Action
    route: str = ""  # "HTTPRoute/ns/name" or "Ingress/ns/name", for humans
    one_label_wildcard: bool = False


@dataclass(frozen=True)
class Certificate:
    name: str  # unique within the ProxyConfig
    pem: str  # certificate chain then private key, as HAProxy reads it
    sni: tuple[str, ...] = ()  # the hostnames it is for (listener hostname); () = default


@dataclass(frozen=True)
class Listener:
    name: str
    hostname: str | None  # None: any host
    entries: tuple[RouteEntry, ...] = ()  # in precedence order
    one_label_wildcard: bool = False


@dataclass(frozen=True)
class Frontend:
    port: int
    protocol: FrontendProtocol
    listeners: tuple[Listener, ...] = ()  # most specific hostname first
    certificates: tuple[Certificate, ...] = ()


@dataclass(frozen=True)
class ProxyConfig:
    name: str  # "Gateway/ns/name" or "Ingress/kemu"
    frontends: tuple[Frontend, ...] = ()

    def frontend(self, port: int) -> Frontend | None:
        return next((f for f in self.frontends if f.port == port), None)


# --- what the compilers read ---------------------------------------------------------------

# The kinds the gateway compilers read (and so the kinds with an effect through the proxies).
GATEWAY_KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant", "Ingress", "IngressClass")


@dataclass(frozen=True)
class ServicePortInfo:
    """A Service port as a proxy sees it: its ready endpoints (pod IP, target port)."""

    port: int
    name: str = ""
    protocol: str = "TCP"
    app_protocol: str | None = None
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True)
class World:
    """The cluster as the gateway compilers read it; plain data, built by the cluster
    (cluster/gateways.py) or by hand in unit tests. Objects are raw dicts as written
    (metadata.namespace always set for namespaced kinds)."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # kind → objects
    services: dict[tuple[str, str], tuple[ServicePortInfo, ...]] = field(default_factory=dict)  # (ns, name) → ports
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (ns, name) → raw Secret
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # name → labels
    created: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (kind, ns, name) → creation time
    addresses: dict[str, tuple[str, ...]] = field(default_factory=dict)  # proxy name → LB IPs ("Gateway/ns/name")
    ready: dict[str, bool] = field(default_factory=dict)  # proxy name → its proxy pods serve the config

    def of(self, kind: str) -> list[dict[str, Any]]:
        return self.objects.get(kind, [])


@dataclass(frozen=True)
class Compiled:
    """A compiler's result: the proxies to run and the status of every object it read,
    keyed (kind, "ns/name" or "name")."""

    proxies: dict[str, ProxyConfig] = field(default_factory=dict)
    status: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # The listener ports of each proxy (the ports its LoadBalancer Service exposes).
    ports: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)  # name → ((port, protocol), …)
