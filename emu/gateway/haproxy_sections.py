"""The HAProxy backend sections a frontend sends requests to: one per distinct (what an
action does to the request, which model Backend it goes to), holding the action's
filters, the backendRef's filters and the Backend's endpoints as servers.

Filters live in these sections rather than in the frontend so that a request runs only
its own action's rules: a frontend with 1,000 routes does not test 1,000 actions' filter
guards per request. Actions that only forward (no filters) to the same Backend share one
section, and so its connection pool. A RequestRedirect has a section of its own with no
servers (the redirect depends on the listener's scheme and port).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from emu.gateway import haproxy_syntax as hs
from emu.gateway.model import Action, Backend, HeaderModifier, PathModifier, Redirect

ERROR_BACKEND = "kemu-500"  # answers 500: invalid backendRefs, no usable backend (spec)
WELL_KNOWN_PORTS = {"http": 80, "https": 443}


def trim_prefix(path: str) -> str:
    """A PathPrefix value without its trailing slash ("/" → ""): the spec ignores it."""
    return path.rstrip("/")


def header_rules(kind: str, mod: HeaderModifier | None) -> list[str]:
    """http-request/http-response rules of a Request/ResponseHeaderModifier: set replaces
    every value, add appends another, remove deletes every occurrence."""
    if mod is None:
        return []
    out = [f"{kind} set-header {hs.word(n)} {hs.word(hs.lf_literal(v))}" for n, v in mod.set]
    out += [f"{kind} add-header {hs.word(n)} {hs.word(hs.lf_literal(v))}" for n, v in mod.add]
    out += [f"{kind} del-header {hs.word(n)}" for n in mod.remove]
    return out


def new_path_rules(mod: PathModifier) -> list[str]:
    """Rules leaving the modified path in `txn.np` (HTTPPathModifier). ReplacePrefixMatch
    keeps what follows the matched prefix: "/prefix/one/two" with prefix "/prefix/one"
    and "/one" gives "/one/two"; with "/" or "" the rest alone, and "/" if nothing is left
    (the spec's table), never "//"."""
    if mod.type == "ReplaceFullPath":
        return [f"http-request set-var-fmt(txn.np) {hs.word(hs.lf_literal(mod.value or '/'))}"]
    prefix = trim_prefix(mod.prefix)
    replacement = trim_prefix(mod.value)
    rest = f"%[path,bytes({len(prefix)})]"
    rules = [f"http-request set-var-fmt(txn.np) {hs.word(hs.lf_literal(replacement) + rest if replacement else rest)}"]
    if prefix:
        # Nothing follows the prefix: the replacement alone (or "/").
        rules.append(f"http-request set-var-fmt(txn.np) {hs.word(hs.lf_literal(replacement or '/'))} if {hs.acl_string('path', prefix)}")
    return rules


def location(r: Redirect, listener_scheme: str, listener_port: int) -> str:
    """The Location header's scheme://host[:port] (HTTPRequestRedirectFilter): the port is
    the one given, else the scheme's well-known port when the scheme is set, else the
    listener's; it is left out when it is the scheme's default. No hostname: the
    request's, without its port."""
    scheme = (r.scheme or listener_scheme).lower()
    if r.port is not None:
        port = r.port
    elif r.scheme:
        port = WELL_KNOWN_PORTS.get(scheme, listener_port)
    else:
        port = listener_port
    host = hs.lf_literal(r.hostname.lower()) if r.hostname else "%[var(txn.host)]"
    shown = "" if WELL_KNOWN_PORTS.get(scheme) == port else f":{port}"
    return f"{hs.lf_literal(scheme)}://{host}{shown}"


def _backend_key(b: Backend) -> tuple[object, ...]:
    return (b.name, b.endpoints, b.h2c, b.request_headers, b.response_headers)


@dataclass
class Sections:
    """The sections rendered so far, by what makes them distinct."""

    texts: dict[tuple[object, ...], tuple[str, str]] = field(default_factory=dict)  # key → (name, text)
    mirrors: bool = False  # some section runs the mirror Lua action

    def forward(self, action: Action, backend: Backend) -> str:
        """The section sending `action`'s requests to `backend`."""
        if backend.invalid:
            return ERROR_BACKEND
        treatment = (action.request_headers, action.response_headers, action.rewrite, action.mirrors, action.timeout_ms)
        key = ("forward", treatment, _backend_key(backend))
        found = self.texts.get(key)
        if found is None:
            name = hs.proxy_name("be", backend.name, key)
            found = self.texts[key] = (name, self._forward_text(name, action, backend))
        return found[0]

    def redirect(self, action: Action, scheme: str, port: int) -> str:
        assert action.redirect is not None
        key = ("redirect", action.redirect, scheme, port)
        found = self.texts.get(key)
        if found is None:
            name = hs.proxy_name("redirect", action.id, key)
            found = self.texts[key] = (name, _redirect_text(name, action, scheme, port))
        return found[0]

    def _forward_text(self, name: str, action: Action, b: Backend) -> str:
        rules = [hs.comment(f"{b.name} (first for {action.id})")]
        if not b.endpoints:
            # A Service without ready endpoints: 500, as for any backend that cannot serve.
            rules.append('http-request return status 500 content-type text/plain string "no endpoints\\n"')
        if action.timeout_ms:
            # HTTPRoute timeouts.request as the server inactivity timeout: 504 past it.
            rules.append(f"timeout server {int(action.timeout_ms)}ms")
        rules += header_rules("http-request", action.request_headers)
        rw = action.rewrite
        if rw is not None and rw.hostname:
            rules.append(f"http-request set-header host {hs.word(hs.lf_literal(rw.hostname))}")
        if rw is not None and rw.path is not None:
            rules += new_path_rules(rw.path)
            rules.append("http-request set-path %[var(txn.np)]")
        # The mirror's copy leaves here: after the rule's filters, before the backendRef's
        # (which are for this backend only).
        rules += self._mirror_rules(action)
        rules += header_rules("http-request", b.request_headers)
        rules += header_rules("http-response", b.response_headers)
        rules += header_rules("http-response", action.response_headers)
        proto = " proto h2" if b.h2c else ""
        for i, e in enumerate(b.endpoints):
            addr = f"[{e.ip}]" if ":" in e.ip else e.ip
            if e.pod:
                rules.append(hs.comment(e.pod))
            rules.append(f"server ep{i} {addr}:{int(e.port)}{proto}")
        return _section(name, rules)

    def _mirror_rules(self, action: Action) -> list[str]:
        targets = [m for m in action.mirrors if m.percent > 0 and m.backend.endpoints and not m.backend.invalid]
        if not targets:
            return []
        self.mirrors = True
        # The copy carries the body: wait for it (up to a buffer) before copying.
        out = ["http-request wait-for-body time 1s"]
        for m in targets:
            eps = ",".join(f"[{e.ip}]:{e.port}" if ":" in e.ip else f"{e.ip}:{e.port}" for e in m.backend.endpoints)
            chance = "" if m.percent >= 100 else f" if {{ rand(100) -m int lt {int(m.percent)} }}"
            out.append(f"http-request lua.kemu_mirror {hs.word(eps)}{chance}")
        return out


def _redirect_text(name: str, action: Action, scheme: str, port: int) -> str:
    r = action.redirect
    assert r is not None
    rules = [hs.comment(f"redirect (first for {action.id})")]
    path = "%[path]"
    if r.path is not None:
        rules += new_path_rules(r.path)
        path = "%[var(txn.np)]"
    base = location(r, scheme, port) + path
    code = int(r.status)
    # The query string is kept ("?" even when empty, as the request had it).
    rules.append(f"http-request redirect location {hs.word(base + '?%[query]')} code {code} if {{ query -m found }}")
    rules.append(f"http-request redirect location {hs.word(base)} code {code}")
    return _section(name, rules)


def _section(name: str, rules: list[str]) -> str:
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", name), name
    return f"backend {name}\n" + "".join(f"    {r}\n" for r in rules)


def error_section() -> str:
    return _section(ERROR_BACKEND, ['http-request return status 500 content-type text/plain string "no usable backend\\n"'])
