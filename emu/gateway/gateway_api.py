"""Gateway API (v1, standard channel) compiled to the route model: every Gateway of a
GatewayClass of ours becomes one proxy ("Gateway/<ns>/<name>"), with one frontend per
port of its servable listeners, each listener with the entries of the HTTPRoutes that
attach to it, in precedence order; and the status of every object we read.

- GatewayClass: ours when spec.controllerName is CONTROLLER_NAME; Accepted.
- Gateway: listeners resolved by gateway_listeners (protocols, conflicts, allowedRoutes,
  TLS); conditions Accepted and Programmed (True once the proxy has an address and its
  pods serve the configuration); addresses; per-listener status.
- HTTPRoute: compiled by gateway_routes; attached per parentRef (sectionName, port,
  allowedRoutes namespaces and kinds, hostname intersection); status.parents[] per
  parentRef to a Gateway of ours, with Accepted, ResolvedRefs (and PartiallyInvalid).
- Precedence in a listener: precedence.entry_sort_key (hostname, match, oldest route,
  namespace/name, rule and match order); one flat list, so a request that no entry of a
  more specific hostname takes can still match a less specific one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from emu.gateway.conditions import Stamp
from emu.gateway.gateway_common import CONTROLLER_NAME, GROUP, key_of, ns_name, proxy_name
from emu.gateway.gateway_listeners import ListenerState, listener_status, resolve_listeners
from emu.gateway.gateway_routes import CompiledRoute, compile_route, intersect_hostnames
from emu.gateway.model import Certificate, Compiled, Frontend, Listener, ProxyConfig, RouteEntry, World, is_frontend_protocol
from emu.gateway.precedence import entry_sort_key, listener_sort_key

__all__ = ["CONTROLLER_NAME", "RouteCache", "compile_gateways"]

log = logging.getLogger(__name__)


@dataclass
class _Gateway:
    obj: dict[str, Any]
    listeners: tuple[ListenerState, ...]
    # listener name → the routes attached to it, with the hostnames each serves there
    attached: dict[str, list[tuple[CompiledRoute, tuple[str | None, ...]]]] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)  # (listener, route key) attached: once each

    @property
    def ns(self) -> str:
        return ns_name(self.obj)[0]

    @property
    def proxy(self) -> str:
        return proxy_name(self.obj)


Attachment = tuple[str, str, CompiledRoute, tuple[str | None, ...]]  # (gateway key, listener, route, hostnames)


@dataclass
class RouteCache:
    """Each HTTPRoute's compiled form, parent statuses and attachments from the last
    compile, reused while its spec object and everything it depends on (Services and
    their endpoints, ReferenceGrants, namespaces, Gateways, classes) are unchanged: one
    route changed among 1,000 recompiles one. Owned by one caller (the gateway plane)."""

    inputs: Any = None
    routes: dict[str, tuple[Any, list[dict[str, Any]], list[Attachment]]] = field(default_factory=dict)


def compile_gateways(world: World, now: float | None = None, cache: RouteCache | None = None) -> Compiled:
    """Every Gateway of ours as a ProxyConfig, and the status of our GatewayClasses,
    Gateways and the HTTPRoutes that name them. `now` stamps lastTransitionTime (default:
    the current time); `cache` (optional) saves recompiling unchanged routes."""
    now = time.time() if now is None else now
    status: dict[tuple[str, str], dict[str, Any]] = {}
    classes = set()
    for gc in world.of("GatewayClass"):
        if (gc.get("spec") or {}).get("controllerName") == CONTROLLER_NAME:
            name = str((gc.get("metadata") or {}).get("name") or "")
            classes.add(name)
            status[("GatewayClass", name)] = {"conditions": [Stamp.of(gc, now).cond("Accepted", True, "Accepted", "handled by kemu")]}
    gateways = {
        key_of(gw): _Gateway(gw, resolve_listeners(world, gw))
        for gw in world.of("Gateway")
        if (gw.get("spec") or {}).get("gatewayClassName") in classes
    }
    inputs = (world.services, world.of("ReferenceGrant"), world.namespaces, world.of("Gateway"), classes)
    if cache is not None and cache.inputs != inputs:
        cache.inputs, cache.routes = inputs, {}
    for route in world.of("HTTPRoute"):
        key, spec = key_of(route), route.get("spec")
        hit = cache.routes.get(key) if cache is not None else None
        if hit is not None and hit[0] is spec:
            parents, attachments = hit[1], hit[2]
        else:
            attachments = []
            parents = _attach(world, route, gateways, now, attachments)
            if cache is not None:
                cache.routes[key] = (spec, parents, attachments)
        for gw_key, listener, compiled, hosts in attachments:
            gw = gateways[gw_key]
            if (listener, compiled.key) not in gw.seen:
                gw.seen.add((listener, compiled.key))
                gw.attached.setdefault(listener, []).append((compiled, hosts))
        if parents:
            status[("HTTPRoute", key_of(route))] = {"parents": parents}
    proxies: dict[str, ProxyConfig] = {}
    ports: dict[str, tuple[tuple[int, str], ...]] = {}
    for key, gw in sorted(gateways.items()):
        proxies[gw.proxy] = _proxy_config(world, gw)
        ports[gw.proxy] = tuple(sorted({(ls.port, ls.protocol) for ls in gw.listeners if ls.programmable}))
        status[("Gateway", key)] = _gateway_status(world, gw, now)
    return Compiled(proxies=proxies, status=status, ports=ports)


# --- attachment ---------------------------------------------------------------------------


def _attach(world: World, route: dict[str, Any], gateways: dict[str, _Gateway], now: float, out: list[Attachment]) -> list[dict[str, Any]]:
    """The listeners a route's parentRefs select (added to `out`) and its status.parents[],
    one per parentRef to a Gateway of ours (parentRefs to others get nothing from us)."""
    route_ns, _ = ns_name(route)
    stamp = Stamp.of(route, now)
    compiled: CompiledRoute | None = None
    parents = []
    for ref in (route.get("spec") or {}).get("parentRefs") or ():
        if not isinstance(ref, dict):
            continue
        group = GROUP if ref.get("group") is None else str(ref["group"])  # "" is the core group
        kind = str(ref.get("kind") or "Gateway")
        gw = gateways.get(f"{ref.get('namespace') or route_ns}/{ref.get('name')}")
        if (group, kind) != (GROUP, "Gateway") or gw is None:
            continue
        compiled = compiled or compile_route(world, route)
        ok, reason, message = _attach_to(world, compiled, ref, gw, route_ns, out)
        conditions = [
            stamp.cond("Accepted", ok, reason, message),
            stamp.cond("ResolvedRefs", compiled.refs_reason == "ResolvedRefs", compiled.refs_reason, compiled.refs_message),
        ]
        bad = compiled.invalid_rules
        if bad and not compiled.wholly_invalid:
            conditions.append(stamp.cond("PartiallyInvalid", True, bad[0].problem, "; ".join(r.message for r in bad)))
        parents.append({"parentRef": _echo(ref, group, kind), "controllerName": CONTROLLER_NAME, "conditions": conditions})
    return parents


def _echo(ref: dict[str, Any], group: str, kind: str) -> dict[str, Any]:
    """The parentRef as the API server stores it (group and kind defaulted)."""
    out: dict[str, Any] = {"group": group, "kind": kind, "name": ref.get("name")}
    for k in ("namespace", "sectionName", "port"):
        if ref.get(k) is not None:
            out[k] = ref[k]
    return out


def _attach_to(
    world: World, route: CompiledRoute, ref: dict[str, Any], gw: _Gateway, route_ns: str, out: list[Attachment]
) -> tuple[bool, str, str]:
    section, port = ref.get("sectionName"), ref.get("port")
    selected = [ls for ls in gw.listeners if (section is None or ls.name == section) and (port is None or ls.port == port)]
    if not selected:
        wanted = " on ".join(p for p in (f"named {section}" if section else "", f"port {port}" if port else "") if p)
        return False, "NoMatchingParent", f"gateway {key_of(gw.obj)} has no listener {wanted or 'at all'}"
    allowed = [ls for ls in selected if ls.admits_kind(GROUP, "HTTPRoute") and ls.admits_namespace(world, gw.ns, route_ns)]
    if not allowed:
        return False, "NotAllowedByListeners", f"no listener of {key_of(gw.obj)} admits HTTPRoutes from namespace {route_ns}"
    fits = [(ls, hosts) for ls in allowed if (hosts := intersect_hostnames(ls.hostname, route.hostnames))]
    if not fits:
        return False, "NoMatchingListenerHostname", f"no listener hostname of {key_of(gw.obj)} intersects {', '.join(route.hostnames)}"
    if route.wholly_invalid:
        return False, route.rules[0].problem, "; ".join(r.message for r in route.rules)
    out.extend((key_of(gw.obj), ls.name, route, hosts) for ls, hosts in fits)
    return True, "Accepted", f"attached to {', '.join(ls.name for ls, _ in fits)}"


# --- the proxy ------------------------------------------------------------------------------


def _proxy_config(world: World, gw: _Gateway) -> ProxyConfig:
    frontends = []
    servable = [ls for ls in gw.listeners if ls.programmable]
    for port in sorted({ls.port for ls in servable}):
        on_port = sorted((ls for ls in servable if ls.port == port), key=lambda ls: listener_sort_key(ls.hostname, ls.name))
        listeners = tuple(
            Listener(name=ls.name, hostname=ls.hostname, entries=_entries(world, gw.attached.get(ls.name, []))) for ls in on_port
        )
        protocol = on_port[0].protocol
        if not is_frontend_protocol(protocol):  # accepted listeners are HTTP or HTTPS (ROUTE_KINDS_BY_PROTOCOL)
            raise ValueError(f"listener {on_port[0].name}: no frontend serves {protocol!r}")
        frontends.append(Frontend(port=port, protocol=protocol, listeners=listeners, certificates=_merge_certificates(on_port)))
    return ProxyConfig(name=gw.proxy, frontends=tuple(frontends))


def _entries(world: World, attached: list[tuple[CompiledRoute, tuple[str | None, ...]]]) -> tuple[RouteEntry, ...]:
    keyed = []
    for route, hostnames in attached:
        created = world.created.get(("HTTPRoute", route.ns, route.name), 0.0)
        for rule in route.rules:
            for mi, match in enumerate(rule.matches):
                for hostname in hostnames:
                    entry = RouteEntry(hostname=hostname, match=match, action=rule.action, route=f"HTTPRoute/{route.key}")
                    keyed.append((entry_sort_key(entry, created, route.key, (rule.index, mi)), entry))
    keyed.sort(key=lambda ke: ke[0])
    return tuple(e for _, e in keyed)


def _merge_certificates(listeners: list[ListenerState]) -> tuple[Certificate, ...]:
    """One Certificate per Secret on a port, for the SNI names of every listener using
    it; a listener without hostname makes it a default one (sni ())."""
    by_name: dict[str, Certificate] = {}
    for ls in listeners:
        for cert in ls.certificates:
            prev = by_name.get(cert.name)
            if prev is None:
                by_name[cert.name] = cert
            elif prev.sni and cert.sni:
                by_name[cert.name] = Certificate(cert.name, cert.pem, prev.sni + tuple(s for s in cert.sni if s not in prev.sni))
            else:
                by_name[cert.name] = Certificate(cert.name, cert.pem, ())
    return tuple(by_name.values())


# --- Gateway status -----------------------------------------------------------------------------


def _gateway_status(world: World, gw: _Gateway, now: float) -> dict[str, Any]:
    stamp = Stamp.of(gw.obj, now)
    addresses = world.addresses.get(gw.proxy, ())
    invalid = [ls.name for ls in gw.listeners if not ls.accepted]
    valid = len(gw.listeners) - len(invalid)
    if not invalid and valid:
        accepted = stamp.cond("Accepted", True, "Accepted")
    else:
        # True while some listener is valid (GatewayReasonListenersNotValid).
        accepted = stamp.cond(
            "Accepted", valid > 0, "ListenersNotValid", f"listeners not accepted: {', '.join(invalid) or '(none defined)'}"
        )
    if valid == 0:
        programmed = stamp.cond("Programmed", False, "Invalid", "no listener can be served")
    elif not addresses:
        programmed = stamp.cond("Programmed", False, "AddressNotAssigned", "waiting for the LoadBalancer address of the proxy Service")
    elif not world.ready.get(gw.proxy):
        programmed = stamp.cond("Programmed", False, "Pending", "waiting for a proxy pod to serve the configuration")
    else:
        programmed = stamp.cond("Programmed", True, "Programmed")
    live = programmed["status"] == "True"
    return {
        "addresses": [{"type": "IPAddress", "value": a} for a in addresses],
        "conditions": [accepted, programmed],
        "listeners": [listener_status(ls, len(gw.attached.get(ls.name, [])), live, stamp) for ls in gw.listeners],
    }
