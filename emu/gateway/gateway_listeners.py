"""A Gateway's listeners, resolved: protocol, conflicts, which routes they admit
(allowedRoutes), their TLS certificates, and their status
(apis/v1/gateway_types.go: Listener, ListenerStatus and the Listener condition types).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace
from typing import Any

from emu.config.selectors import build_selector
from emu.gateway.conditions import Stamp
from emu.gateway.gateway_common import GROUP, ROUTE_KINDS_BY_PROTOCOL, namespace_labels, ns_name, reference_granted
from emu.gateway.model import Certificate, World
from emu.gateway.precedence import hostname_covers
from emu.model.selectors import OPERATORS, LabelSelector

TLS_SECRET_TYPE = "kubernetes.io/tls"


@dataclass(frozen=True)
class ListenerState:
    """One listener of a Gateway, as the compiler and the status see it."""

    name: str
    port: int
    protocol: str
    hostname: str | None
    namespaces_from: str = "Same"  # allowedRoutes.namespaces.from: Same, All, Selector or None
    selector: LabelSelector | None = None  # for Selector; None selects nothing
    kinds: tuple[str, ...] = ()  # the route kinds (group gateway.networking.k8s.io) it admits
    certificates: tuple[Certificate, ...] = ()
    accepted_reason: str = "Accepted"
    accepted_message: str = ""
    refs_reason: str = "ResolvedRefs"
    refs_message: str = ""
    conflict_reason: str = "NoConflicts"
    overlapping_tls: bool = False  # an HTTPS listener on the same port has an overlapping hostname

    @property
    def conflicted(self) -> bool:
        return self.conflict_reason != "NoConflicts"

    @property
    def accepted(self) -> bool:
        # Conflicted listeners must not be accepted (gateway_types.go, "Handling
        # indistinct Listeners": no winner is picked among them).
        return self.accepted_reason == "Accepted" and not self.conflicted

    @property
    def programmable(self) -> bool:
        """Can the proxy serve it: accepted, and for HTTPS with a usable certificate."""
        return self.accepted and (self.protocol != "HTTPS" or bool(self.certificates))

    def admits_kind(self, group: str, kind: str) -> bool:
        return group == GROUP and kind in self.kinds

    def admits_namespace(self, world: World, gateway_ns: str, route_ns: str) -> bool:
        if self.namespaces_from == "All":
            return True
        if self.namespaces_from == "Same":
            return route_ns == gateway_ns
        if self.namespaces_from == "Selector" and self.selector is not None:
            return self.selector.matches(namespace_labels(world, route_ns))
        return False


def resolve_listeners(world: World, gateway: dict[str, Any]) -> tuple[ListenerState, ...]:
    gw_ns, _ = ns_name(gateway)
    states = [_resolve(world, gw_ns, raw) for raw in (gateway.get("spec") or {}).get("listeners") or () if isinstance(raw, dict)]
    return tuple(_mark_overlapping_tls(_mark_conflicts(states)))


def _resolve(world: World, gw_ns: str, raw: dict[str, Any]) -> ListenerState:
    name = str(raw.get("name") or "")
    protocol = str(raw.get("protocol") or "")
    hostname = str(raw["hostname"]).lower() if raw.get("hostname") else None
    port = raw.get("port")
    state = ListenerState(name=name, port=port if isinstance(port, int) else 0, protocol=protocol, hostname=hostname)
    allowed = raw.get("allowedRoutes") or {}
    namespaces = allowed.get("namespaces") or {}
    state = _with_namespaces(state, str(namespaces.get("from") or "Same"), namespaces.get("selector"))
    state = _with_kinds(state, allowed.get("kinds"))
    if protocol not in ROUTE_KINDS_BY_PROTOCOL:
        return replace(
            state, accepted_reason="UnsupportedProtocol", accepted_message=f"protocol {protocol!r} is not supported (HTTP, HTTPS)"
        )
    if not isinstance(port, int) or not 1 <= port <= 65535:
        return replace(state, accepted_reason="PortUnavailable", accepted_message=f"port {port!r} is not a port number")
    if protocol == "HTTPS":
        state = _with_tls(world, gw_ns, state, raw.get("tls") or {})
    return state


def _with_namespaces(state: ListenerState, from_: str, raw_selector: Any) -> ListenerState:
    if from_ not in ("Same", "All", "Selector", "None"):
        return replace(
            state, namespaces_from="None", accepted_reason="UnsupportedValue", accepted_message=f"allowedRoutes.namespaces.from {from_!r}"
        )
    if from_ != "Selector":
        return replace(state, namespaces_from=from_)
    if not isinstance(raw_selector, dict):
        return replace(state, namespaces_from="Selector", selector=None)
    bad = [e.get("operator") for e in raw_selector.get("matchExpressions") or () if e.get("operator") not in OPERATORS]
    if bad:
        return replace(state, namespaces_from="None", accepted_reason="UnsupportedValue", accepted_message=f"selector operator {bad[0]!r}")
    return replace(state, namespaces_from="Selector", selector=build_selector(raw_selector))


def _with_kinds(state: ListenerState, raw_kinds: Any) -> ListenerState:
    """allowedRoutes.kinds: the supported ones go to supportedKinds; any other makes
    ResolvedRefs False with InvalidRouteKinds (ListenerStatus.SupportedKinds). Unset: every
    kind the protocol supports."""
    supported = ROUTE_KINDS_BY_PROTOCOL.get(state.protocol, ())
    if not raw_kinds:
        return replace(state, kinds=supported)
    valid: list[str] = []
    invalid: list[str] = []
    for k in raw_kinds:
        group = (GROUP if k.get("group") is None else str(k["group"])) if isinstance(k, dict) else ""
        kind = str(k.get("kind") or "") if isinstance(k, dict) else ""
        if group == GROUP and kind in supported:
            if kind not in valid:
                valid.append(kind)
        else:
            invalid.append(f"{group}/{kind}" if group else kind)
    state = replace(state, kinds=tuple(valid))
    if invalid:
        state = replace(
            state, refs_reason="InvalidRouteKinds", refs_message=f"route kinds not supported on {state.protocol}: {', '.join(invalid)}"
        )
    return state


def _with_tls(world: World, gw_ns: str, state: ListenerState, tls: dict[str, Any]) -> ListenerState:
    """HTTPS terminates TLS at the proxy with the certificateRefs' Secrets. A reference
    in another namespace needs a ReferenceGrant (RefNotPermitted); a missing, foreign or
    malformed one is InvalidCertificateRef. The listener is served with the usable ones."""
    mode = str(tls.get("mode") or "Terminate")
    if mode != "Terminate":
        return replace(state, accepted_reason="UnsupportedValue", accepted_message=f"tls.mode {mode} is not supported on HTTPS (Terminate)")
    refs = [r for r in tls.get("certificateRefs") or () if isinstance(r, dict)]
    if not refs:
        return replace(state, refs_reason="InvalidCertificateRef", refs_message="an HTTPS listener needs tls.certificateRefs")
    certs: list[Certificate] = []
    problems: list[tuple[str, str]] = []
    for ref in refs:
        cert_or_problem = _certificate(world, gw_ns, state.hostname, ref)
        if isinstance(cert_or_problem, Certificate):
            certs.append(cert_or_problem)
        else:
            problems.append(cert_or_problem)
    state = replace(state, certificates=tuple(certs))
    if problems:
        # RefNotPermitted says more than InvalidCertificateRef (the spec uses the latter
        # only for references that are allowed); InvalidRouteKinds comes after both.
        reason = "RefNotPermitted" if any(r == "RefNotPermitted" for r, _ in problems) else "InvalidCertificateRef"
        message = "; ".join(m for _, m in problems)
        if state.refs_reason == "InvalidRouteKinds":
            message += "; " + state.refs_message
        state = replace(state, refs_reason=reason, refs_message=message)
    return state


def _certificate(world: World, gw_ns: str, hostname: str | None, ref: dict[str, Any]) -> Certificate | tuple[str, str]:
    group, kind = str(ref.get("group") or ""), str(ref.get("kind") or "Secret")
    ns, name = str(ref.get("namespace") or gw_ns), str(ref.get("name") or "")
    where = f"{ns}/{name}"
    if group != "" or kind != "Secret":
        return ("InvalidCertificateRef", f"certificateRef {where}: {group or 'core'}/{kind} is not a Secret")
    if not reference_granted(world, from_kind="Gateway", from_ns=gw_ns, to_group="", to_kind="Secret", to_ns=ns, to_name=name):
        return ("RefNotPermitted", f"certificateRef {where}: no ReferenceGrant in {ns} lets Gateways of {gw_ns} use it")
    secret = world.secrets.get((ns, name))
    if secret is None:
        return ("InvalidCertificateRef", f"certificateRef {where}: secret not found")
    if secret.get("type", TLS_SECRET_TYPE) != TLS_SECRET_TYPE:
        return ("InvalidCertificateRef", f"certificateRef {where}: secret type is not {TLS_SECRET_TYPE}")
    crt, key = secret_text(secret, "tls.crt"), secret_text(secret, "tls.key")
    if not crt or not key or not pem_blocks(crt, "CERTIFICATE") or not pem_blocks(key, "PRIVATE KEY"):
        return ("InvalidCertificateRef", f"certificateRef {where}: tls.crt and tls.key must hold a PEM certificate and private key")
    pem = crt.rstrip("\n") + "\n" + key.rstrip("\n") + "\n"
    return Certificate(name=where, pem=pem, sni=(hostname,) if hostname else ())


def secret_text(secret: dict[str, Any], key: str) -> str | None:
    """A Secret value: `data` base64-decoded, or `stringData` (objects built by hand)."""
    string_data = secret.get("stringData") or {}
    if key in string_data:
        return str(string_data[key])
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return None
    try:
        return base64.b64decode(str(raw), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.S)


def pem_blocks(text: str, label_suffix: str) -> list[bytes]:
    """The DER bodies of the PEM blocks whose label ends with `label_suffix`
    ("CERTIFICATE"; "PRIVATE KEY" for PKCS#8, RSA and EC keys). A structural check only:
    each body must be base64 of an ASN.1 SEQUENCE; HAProxy does the real parsing."""
    out = []
    for label, body in _PEM_BLOCK.findall(text):
        if not label.endswith(label_suffix):
            continue
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except binascii.Error:
            return []
        if not der.startswith(b"\x30"):
            return []
        out.append(der)
    return out


def _mark_conflicts(states: list[ListenerState]) -> list[ListenerState]:
    """Listeners sharing a port must share a protocol (ProtocolConflict), and on one
    port and protocol their hostnames must differ (HostnameConflict). Every listener of
    an indistinct set is conflicted. Listeners of unsupported protocols are not
    accepted anyway and take no part (gateway_types.go, "Distinct Listeners")."""
    by_port: dict[int, list[int]] = {}
    for i, s in enumerate(states):
        if s.accepted_reason not in ("UnsupportedProtocol", "PortUnavailable"):
            by_port.setdefault(s.port, []).append(i)
    out = list(states)
    for indexes in by_port.values():
        if len({states[i].protocol for i in indexes}) > 1:
            for i in indexes:
                out[i] = replace(out[i], conflict_reason="ProtocolConflict")
            continue
        seen: dict[str | None, list[int]] = {}
        for i in indexes:
            seen.setdefault(states[i].hostname, []).append(i)
        for same in seen.values():
            if len(same) > 1:
                for i in same:
                    out[i] = replace(out[i], conflict_reason="HostnameConflict")
    return out


def _mark_overlapping_tls(states: list[ListenerState]) -> list[ListenerState]:
    """OverlappingTLSConfig (gateway_types.go): HTTPS listeners on one port whose
    hostnames overlap ("*.example.com" and "foo.example.com") share connections under
    HTTP connection coalescing; both get the condition. A listener without hostname is
    the fallback for names no other listener has, and overlaps none."""
    out = list(states)
    for i, a in enumerate(states):
        for j, b in enumerate(states):
            if i < j and a.protocol == b.protocol == "HTTPS" and a.port == b.port and a.hostname and b.hostname:
                if hostname_covers(a.hostname, b.hostname) or hostname_covers(b.hostname, a.hostname):
                    out[i] = replace(out[i], overlapping_tls=True)
                    out[j] = replace(out[j], overlapping_tls=True)
    return out


def listener_status(state: ListenerState, attached: int, gateway_live: bool, stamp: Stamp) -> dict[str, Any]:
    """ListenerStatus: supportedKinds, attachedRoutes (routes accepted on it, whatever
    its own conditions) and the Accepted, ResolvedRefs, Programmed and Conflicted
    conditions. Programmed is True once the proxy serves the listener."""
    if state.conflicted:
        accepted = stamp.cond(
            "Accepted", False, state.conflict_reason, f"listener {state.name} conflicts with another listener on port {state.port}"
        )
    else:
        accepted = stamp.cond("Accepted", state.accepted, state.accepted_reason, state.accepted_message)
    resolved = stamp.cond("ResolvedRefs", state.refs_reason == "ResolvedRefs", state.refs_reason, state.refs_message)
    if not state.programmable:
        programmed = stamp.cond("Programmed", False, "Invalid", "the listener is not accepted or has no usable certificate")
    elif not gateway_live:
        programmed = stamp.cond("Programmed", False, "Pending", "waiting for the proxy to serve it")
    else:
        programmed = stamp.cond("Programmed", True, "Programmed")
    conditions = [accepted, resolved, programmed, stamp.cond("Conflicted", state.conflicted, state.conflict_reason)]
    if state.overlapping_tls:
        # Negative polarity: present only when True.
        conditions.append(
            stamp.cond(
                "OverlappingTLSConfig", True, "OverlappingHostnames", "another HTTPS listener on this port has an overlapping hostname"
            )
        )
    return {
        "name": state.name,
        "supportedKinds": [{"group": GROUP, "kind": k} for k in state.kinds],
        "attachedRoutes": attached,
        "conditions": conditions,
    }
