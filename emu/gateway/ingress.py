"""Ingress (networking.k8s.io/v1) compiled to the route model.

Every Ingress of ours (see `is_ours`) goes into one shared proxy, "Ingress/kemu", as
ingress-nginx runs one proxy for all Ingresses of its class: port 80 (HTTP) always, and
port 443 (HTTPS, the same routes) when any of them has `spec.tls`.

Semantics, after the Kubernetes Ingress concept page and ingress-nginx:
- Hosts: exact ("foo.bar.com", case-insensitive) or "*.foo.com", which matches exactly
  one DNS label before ".foo.com" (neither "foo.com" nor "a.b.foo.com"); a rule without a
  host matches any host.
- Paths: `Exact` is the exact, case-sensitive string; `Prefix` matches element-wise on
  "/"-separated segments, a trailing "/" on either side ignored ("/aaa/bbb/" matches
  "/aaa/bbb", "/aaa" does not match "/aaaccc"): the route model's PathPrefix, which has
  the same definition in the Gateway API. `ImplementationSpecific` is treated as `Prefix`
  by kemu (ingress-nginx, too, treats it as a prefix unless regex annotations are used).
- Precedence: exact hosts, then wildcard hosts, then rules without a host; within a host,
  Exact paths before Prefix paths, longer prefixes first (the concept page: "the longest
  matching path", then Exact over Prefix); ties between Ingresses go to the oldest, then
  namespace/name. Requests that match no path fall through to later entries (kemu's model
  has one ordered list; ingress-nginx would stop at the host's server block).
- Default backends: an Ingress's `spec.defaultBackend` takes its hosts' requests that match
  none of their paths (ingress-nginx: "the default backend for all its rules"); requests
  that match nothing at all go to the defaultBackend of the oldest Ingress that has one.
  With none, the proxy answers 404.
- Backends: a Service port by number or by name. A missing Service or port, or a
  `resource` backend, is an invalid backend, which the route model answers with 500
  (ingress-nginx answers 503; the model shared with the Gateway API has no 503).
- Status: every Ingress of ours gets status.loadBalancer.ingress = the proxy's addresses;
  Ingresses of other classes get no status from us.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any

from emu.gateway.model import (
    Action,
    Backend,
    Certificate,
    Compiled,
    Frontend,
    Listener,
    Match,
    PathType,
    ProxyConfig,
    RouteEntry,
    World,
)
from emu.gateway.precedence import hostname_rank, match_rank

log = logging.getLogger(__name__)

CONTROLLER = "kemu.dev/ingress-controller"
CLASS_NAME = "kemu"
PROXY_NAME = "Ingress/kemu"
HTTP_PORT = 80
HTTPS_PORT = 443
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"  # deprecated before ingressClassName (1.18)


# --- which Ingresses are ours -------------------------------------------------------------


@dataclass(frozen=True)
class ClassChoice:
    """Our IngressClass names, and whether an Ingress without a class belongs to us."""

    ours: frozenset[str]
    default_is_ours: bool


def choose_classes(world: World) -> ClassChoice:
    ours: set[str] = set()
    default_ours: list[bool] = []
    for ic in world.of("IngressClass"):
        meta = ic.get("metadata") or {}
        mine = (ic.get("spec") or {}).get("controller") == CONTROLLER
        if mine:
            ours.add(str(meta.get("name", "")))
        if str((meta.get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION, "")).lower() == "true":
            default_ours.append(mine)
    # The IngressClass API: the default applies "when a single IngressClass resource has
    # this annotation"; several defaults that are all ours still leave no doubt.
    return ClassChoice(frozenset(ours), bool(default_ours) and all(default_ours))


def is_ours(ingress: dict[str, Any], classes: ClassChoice) -> bool:
    meta = ingress.get("metadata") or {}
    name = (ingress.get("spec") or {}).get("ingressClassName") or ""
    if name:
        return name in classes.ours
    legacy = str((meta.get("annotations") or {}).get(CLASS_ANNOTATION, ""))
    if legacy:
        # Controllers matched the annotation against their own class name, with or
        # without an IngressClass object (ingress-nginx's --ingress-class).
        return legacy in classes.ours or legacy == CLASS_NAME
    return classes.default_is_ours


# --- backends -----------------------------------------------------------------------------


def _resolve_backend(world: World, ns: str, ref: dict[str, Any]) -> Backend:
    service = ref.get("service")
    if not isinstance(service, dict):
        res = ref.get("resource") or {}
        return Backend(name=f"{ns}/{res.get('kind', '')}/{res.get('name', '')}", invalid="resource backends are not supported by kemu")
    svc = str(service.get("name", ""))
    port_ref = service.get("port") or {}
    number, port_name = port_ref.get("number"), str(port_ref.get("name") or "")
    wanted = str(number) if number is not None else port_name
    ports = world.services.get((ns, svc))
    if ports is None:
        return Backend(name=f"{ns}/{svc}:{wanted}", invalid=f"service {ns}/{svc} not found")
    if number is not None:
        found = next((p for p in ports if str(p.port) == wanted), None)
    else:
        found = next((p for p in ports if port_name and p.name == port_name), None)
    if found is None:
        return Backend(name=f"{ns}/{svc}:{wanted}", invalid=f"service {ns}/{svc} has no port {wanted}")
    # Named by number, so a port referred to by name and by number is one backend.
    return Backend(
        name=f"{ns}/{svc}:{found.port}",
        endpoints=found.endpoints,
        h2c=found.app_protocol == "kubernetes.io/h2c",
    )


# --- entries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    """A route entry and the key that puts it in precedence order."""

    key: tuple[Any, ...]
    entry: RouteEntry


def _path_match(path_type: str, path: str) -> Match:
    kind: PathType = "Exact" if path_type == "Exact" else "PathPrefix"  # ImplementationSpecific: a prefix
    if kind == "PathPrefix" and len(path) > 1:
        path = path.rstrip("/") or "/"  # a trailing slash is ignored by Prefix matching
    return Match(path_type=kind, path=path)


@dataclass(frozen=True)
class _Source:
    ns: str
    name: str
    created: float
    spec: dict[str, Any]

    @property
    def route(self) -> str:
        return f"Ingress/{self.ns}/{self.name}"

    @property
    def tie(self) -> tuple[float, str]:
        return (self.created, f"{self.ns}/{self.name}")


def _entries_of(world: World, src: _Source) -> list[_Candidate]:
    out: list[_Candidate] = []
    default_ref = src.spec.get("defaultBackend")
    for ri, rule in enumerate(src.spec.get("rules") or ()):
        host = str(rule.get("host") or "").lower() or None
        for pi, p in enumerate((rule.get("http") or {}).get("paths") or ()):
            path = str(p.get("path") or "/")
            if not path.startswith("/"):
                log.warning("%s: path %r is not absolute; ignored", src.route, path)
                continue
            match = _path_match(str(p.get("pathType") or "ImplementationSpecific"), path)
            action = Action(
                id=f"ingress/{src.ns}/{src.name}/{ri}/{pi}", backends=(_resolve_backend(world, src.ns, p.get("backend") or {}),)
            )
            entry = RouteEntry(hostname=host, match=match, action=action, route=src.route, one_label_wildcard=True)
            out.append(_Candidate((*hostname_rank(host), 0, *match_rank(match), *src.tie, ri, pi), entry))
        if host is not None and isinstance(default_ref, dict):
            # Unmatched requests for this host: the Ingress's own default backend, after
            # every path of the host (from any Ingress).
            action = Action(id=f"ingress/{src.ns}/{src.name}/{ri}/default", backends=(_resolve_backend(world, src.ns, default_ref),))
            entry = RouteEntry(hostname=host, match=Match(), action=action, route=src.route, one_label_wildcard=True)
            out.append(_Candidate((*hostname_rank(host), 1, *match_rank(Match()), *src.tie, ri, 0), entry))
    return out


def _catch_all(world: World, sources: list[_Source]) -> RouteEntry | None:
    """The oldest Ingress's defaultBackend, for requests that match nothing else."""
    with_default = [s for s in sources if isinstance(s.spec.get("defaultBackend"), dict)]
    if not with_default:
        return None
    src = min(with_default, key=lambda s: s.tie)
    action = Action(id=f"ingress/{src.ns}/{src.name}/default", backends=(_resolve_backend(world, src.ns, src.spec["defaultBackend"]),))
    return RouteEntry(hostname=None, match=Match(), action=action, route=src.route, one_label_wildcard=True)


# --- TLS ----------------------------------------------------------------------------------


def _secret_value(secret: dict[str, Any], key: str) -> str | None:
    data = secret.get("data") or {}
    if key in data:
        try:
            return base64.b64decode(str(data[key]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    string_data = secret.get("stringData") or {}  # objects built by hand, before the API server
    return str(string_data[key]) if key in string_data else None


def _certificates(world: World, sources: list[_Source]) -> tuple[Certificate, ...]:
    by_name: dict[str, Certificate] = {}
    for src in sorted(sources, key=lambda s: s.tie):
        for tls in src.spec.get("tls") or ():
            secret_name = str(tls.get("secretName") or "")
            hosts = tuple(str(h).lower() for h in tls.get("hosts") or ())
            secret = world.secrets.get((src.ns, secret_name)) if secret_name else None
            if secret is None:
                log.warning("%s: TLS secret %r not found in namespace %s; its hosts get no certificate", src.route, secret_name, src.ns)
                continue
            crt, key = _secret_value(secret, "tls.crt"), _secret_value(secret, "tls.key")
            if secret.get("type", "kubernetes.io/tls") != "kubernetes.io/tls" or not crt or not key:
                log.warning("%s: secret %s/%s is not a kubernetes.io/tls secret with tls.crt and tls.key", src.route, src.ns, secret_name)
                continue
            name = f"{src.ns}/{secret_name}"
            previous = by_name.get(name)
            sni = hosts if previous is None else previous.sni + tuple(h for h in hosts if h not in previous.sni)
            by_name[name] = Certificate(name=name, pem=crt.rstrip("\n") + "\n" + key.rstrip("\n") + "\n", sni=sni)
    return tuple(by_name.values())


# --- the compiler -------------------------------------------------------------------------


def compile_ingresses(world: World, now: float) -> Compiled:
    """The shared Ingress proxy and the status of every Ingress of ours. Objects without
    a recorded creation time count as created `now` (younger than every other)."""
    classes = choose_classes(world)
    sources: list[_Source] = []
    for ing in world.of("Ingress"):
        if not is_ours(ing, classes):
            continue
        meta = ing.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name", ""))
        sources.append(_Source(ns, name, world.created.get(("Ingress", ns, name), now), ing.get("spec") or {}))
    if not sources:
        return Compiled()

    candidates = [c for src in sources for c in _entries_of(world, src)]
    entries = [c.entry for c in sorted(candidates, key=lambda c: c.key)]
    catch_all = _catch_all(world, sources)
    if catch_all is not None:
        entries.append(catch_all)
    listener = Listener(name="ingress", hostname=None, entries=tuple(entries), one_label_wildcard=True)

    frontends = [Frontend(port=HTTP_PORT, protocol="HTTP", listeners=(listener,))]
    if any(src.spec.get("tls") for src in sources):
        frontends.append(Frontend(port=HTTPS_PORT, protocol="HTTPS", listeners=(listener,), certificates=_certificates(world, sources)))

    addresses = world.addresses.get(PROXY_NAME, ())
    status = {("Ingress", f"{s.ns}/{s.name}"): {"loadBalancer": {"ingress": [{"ip": a} for a in addresses]}} for s in sources}
    return Compiled(
        proxies={PROXY_NAME: ProxyConfig(name=PROXY_NAME, frontends=tuple(frontends))},
        status=status,
        ports={PROXY_NAME: tuple((f.port, f.protocol) for f in frontends)},
    )
