"""The route model (emu.gateway.model) as an HAProxy 2.6 configuration.

`render(config, opts)` returns the configuration text and the files it refers to
(certificates, crt-lists, maps, the mirror Lua script), which the caller writes into
`opts.dir` before starting or reloading HAProxy. The output is deterministic: the same
model gives the same text, so a caller can skip reloads by comparing it.

Layout: one `frontend` per model Frontend, which chooses the entry (haproxy_match) and
from it the backend section (a map lookup, or `rand()` ranges for weighted backendRefs);
one `backend` section per distinct (action filters, model Backend) holding the filters
and the endpoints as servers (haproxy_sections); `kemu-500` for what the spec answers
with 500. HAProxy runs in master-worker mode (haproxy_ctl) and reloads without losing a
request: the new worker inherits the listening sockets, and the old one answers its idle
keep-alive connections' next request with "Connection: close" instead of closing them
under the client (`option idle-close-on-response`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from emu.gateway import haproxy_match as hm
from emu.gateway import haproxy_sections as hsec
from emu.gateway import haproxy_syntax as hs
from emu.gateway.model import Action, Certificate, Frontend, ProxyConfig

log = logging.getLogger(__name__)

MIRROR_LUA = "mirror.lua"
WEIGHT_SCALE = 1_000_000  # weighted choice resolution
_LUA_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), MIRROR_LUA)


@dataclass(frozen=True)
class RenderOptions:
    dir: str  # where the caller writes Rendered.files (absolute)
    stats_socket: str  # may hold ${VAR} references, expanded by HAProxy from its environment
    bind_address: str = ""  # "" = every address
    # Model (listener) port → port to bind, when they differ (tests bind free high ports;
    # redirects keep using the listener port, as the spec asks).
    bind_ports: dict[int, int] = field(default_factory=dict)
    timeout_connect_ms: int = 5000
    timeout_client_ms: int = 60000
    timeout_server_ms: int = 60000
    keep_alive_ms: int = 10000  # an old worker lives at most this long for an idle client
    hard_stop_after_s: int = 30  # ... and this long for long transfers and tunnels
    nbthread: int | None = None  # None: HAProxy's default (one per CPU)


@dataclass(frozen=True)
class Rendered:
    text: str  # haproxy.cfg
    files: dict[str, str]  # file name (in RenderOptions.dir) → content


def render(config: ProxyConfig, opts: RenderOptions) -> Rendered:
    files: dict[str, str] = {}
    sections = hsec.Sections()
    frontends = []
    for fe in config.frontends:
        text, fe_files = _frontend(fe, opts, sections)
        frontends.append(text)
        files.update(fe_files)
    if sections.mirrors:
        with open(_LUA_SOURCE, encoding="utf-8") as f:
            files[MIRROR_LUA] = f.read()
    parts = [
        hs.comment(f"kemu: {config.name} (generated)"),
        _global(opts, sections.mirrors),
        _defaults(opts),
        *frontends,
        *(text for _, text in sections.texts.values()),
        hsec.error_section(),
    ]
    return Rendered(text="\n".join(parts), files=files)


def _global(opts: RenderOptions, lua: bool) -> str:
    lines = [
        "global",
        # expose-fd listeners: a worker hands its listening sockets to the next one.
        f"    stats socket {hs.env_word(opts.stats_socket)} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        f"    hard-stop-after {int(opts.hard_stop_after_s)}s",
        "    ssl-default-bind-options ssl-min-ver TLSv1.2",
        # No `log` line: nothing goes to syslog; HAProxy's own alerts go to stderr.
    ]
    if opts.nbthread:
        lines.append(f"    nbthread {int(opts.nbthread)}")
    if lua:
        lines.append(f"    lua-load-per-thread {hs.word(os.path.join(opts.dir, MIRROR_LUA))}")
    return "\n".join(lines) + "\n"


def _defaults(opts: RenderOptions) -> str:
    lines = [
        "defaults",
        "    mode http",
        # Keep-alive both ways (HAProxy's default). On reload the old worker answers an
        # idle connection's next request, with "Connection: close", rather than closing
        # it while the client may be sending (the default since 2.4).
        "    option idle-close-on-response",
        "    option forwardfor",
        "    balance roundrobin",
        "    retries 2",
        "    option redispatch 1",
        f"    timeout connect {int(opts.timeout_connect_ms)}ms",
        f"    timeout client {int(opts.timeout_client_ms)}ms",
        f"    timeout server {int(opts.timeout_server_ms)}ms",
        "    timeout http-request 10s",
        f"    timeout http-keep-alive {int(opts.keep_alive_ms)}ms",
        "    timeout queue 5s",
        "    timeout tunnel 1h",
    ]
    return "\n".join(lines) + "\n"


def _bind(fe: Frontend, opts: RenderOptions) -> str:
    port = opts.bind_ports.get(fe.port, fe.port)
    addr = opts.bind_address
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _crt_list(fe: Frontend, opts: RenderOptions) -> tuple[str, dict[str, str]]:
    """The crt-list (SNI → certificate) and its PEM files. HAProxy serves the first
    entry to clients whose SNI matches none: the certificate for any host (sni=()) if
    there is one, else the first."""
    certs: list[Certificate] = sorted(fe.certificates, key=lambda c: bool(c.sni))
    files: dict[str, str] = {}
    lines = []
    for c in certs:
        fname = f"{hs.proxy_name('crt', c.name, c.pem)}.pem"
        files[fname] = c.pem if c.pem.endswith("\n") else c.pem + "\n"
        # SNI filters (HAProxy's "*.x.y" filter covers one label only).
        snis = " ".join(s.lower() for s in c.sni if _sni_safe(s))
        lines.append(f"{os.path.join(opts.dir, fname)} [alpn h2,http/1.1]" + (f" {snis}" if snis else ""))
    name = f"fe-{fe.port}.crtlist"
    files[name] = "\n".join(lines) + "\n"
    return name, files


def _sni_safe(s: str) -> bool:
    """A hostname that can stand in a crt-list line (listener hostnames are validated
    DNS names; anything else is left out rather than break the file)."""
    return bool(s) and all(c.isalnum() or c in "-.*" for c in s)


def _frontend(fe: Frontend, opts: RenderOptions, sections: hsec.Sections) -> tuple[str, dict[str, str]]:
    name = f"fe-{fe.port}"
    files: dict[str, str] = {}
    bind = f"bind {_bind(fe, opts)}"
    if fe.protocol == "HTTPS":
        if not fe.certificates:
            log.warning("HTTPS port %d has no certificate: not served", fe.port)
            return hs.comment(f"HTTPS port {fe.port}: no certificate, not served") + "\n", files
        crt_list, crt_files = _crt_list(fe, opts)
        files.update(crt_files)
        bind += f" ssl crt-list {hs.word(os.path.join(opts.dir, crt_list))}"
    chosen = hm.selection(name, fe.listeners, opts.dir, tls=fe.protocol == "HTTPS")
    files.update(chosen.files)
    scheme = "https" if fe.protocol == "HTTPS" else "http"
    single: list[tuple[int, str]] = []  # action number → its one section
    weighted: list[tuple[str, str]] = []  # "<action number>/<random prefix>" → section
    for k, action in enumerate(chosen.actions):
        targets = _targets(action, sections, scheme, fe.port)
        if len(targets) == 1:
            single.append((k, targets[0][0]))
        else:
            weighted += weighted_patterns(k, targets)
    rules = list(chosen.rules)
    if single:
        map_name = f"{name}.backends.map"
        files[map_name] = "".join(f"{k} {section}\n" for k, section in single)
        lookup = f"var(txn.act),map_int({hs.arg(os.path.join(opts.dir, map_name))})"
        rules.append(f"http-request set-var(txn.be) {hs.word(lookup)}")
    if weighted:
        # Weighted backendRefs: a random number in [1000000, 2000000) after the action's
        # number, looked up among decimal prefixes covering each backend's share: one
        # lookup, however many weighted actions there are.
        map_name = f"{name}.weights.map"
        files[map_name] = "".join(f"{key} {section}\n" for key, section in weighted)
        lookup = f"var(txn.wk),map_beg({hs.arg(os.path.join(opts.dir, map_name))})"
        rules.append(
            f"http-request set-var-fmt(txn.wk) %[var(txn.act)]/%[rand({WEIGHT_SCALE}),add({WEIGHT_SCALE})] if !{{ var(txn.be) -m found }}"
        )
        rules.append(f"http-request set-var(txn.be) {hs.word(lookup)} if !{{ var(txn.be) -m found }}")
    lines = [f"frontend {name}", hs.comment(f"{fe.protocol} port {fe.port}"), bind, *rules]
    lines += ["use_backend %[var(txn.be)] if { var(txn.be) -m found }", f"default_backend {hsec.ERROR_BACKEND}"]
    # A Server header on every answer, as proxies set it (Ingress conformance expects one);
    # a backend's own is kept.
    lines.append("http-after-response set-header Server haproxy if !{ res.hdr(server) -m found }")
    return f"{lines[0]}\n" + "".join(f"    {ln}\n" for ln in lines[1:]), files


def _targets(action: Action, sections: hsec.Sections, scheme: str, port: int) -> list[tuple[str, int]]:
    """(section, weight) of each way an action's requests can go."""
    if action.redirect is not None:
        return [(sections.redirect(action, scheme, port), 1)]
    usable = [b for b in action.backends if b.weight > 0]
    if not usable:
        return [(hsec.ERROR_BACKEND, 1)]  # no backendRef, or only weight 0: 500 (spec)
    # An invalid backend keeps its share of requests, which get 500 (spec).
    return [(sections.forward(action, b), b.weight) for b in usable]


def decimal_prefixes(low: int, high: int) -> list[str]:
    """The fewest decimal prefixes covering exactly the numbers in [low, high] (both of
    the same number of digits, the first not 0): a range as map_beg patterns."""
    width = len(str(high))
    assert len(str(low)) == width and low <= high
    out = []
    while low <= high:
        k = 0  # the largest block of 10**k numbers starting at `low` within the range
        while k < width - 1 and low % 10 ** (k + 1) == 0 and low + 10 ** (k + 1) - 1 <= high:
            k += 1
        out.append(str(low)[: width - k])
        low += 10**k
    return out


def weighted_patterns(k: int, targets: list[tuple[str, int]]) -> list[tuple[str, str]]:
    """Map patterns giving each target its share of WEIGHT_SCALE (to 1 in a million)."""
    total = sum(w for _, w in targets)
    out = []
    done = 0
    for section, weight in targets:
        low = WEIGHT_SCALE * done // total
        done += weight
        high = WEIGHT_SCALE * done // total
        if high > low:
            out += [(f"{k}/{p}", section) for p in decimal_prefixes(WEIGHT_SCALE + low, WEIGHT_SCALE + high - 1)]
    return out
