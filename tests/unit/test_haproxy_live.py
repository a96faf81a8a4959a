"""The rendered configuration served by a real HAProxy (master-worker mode, 127.0.0.1,
free high ports) in front of small Python HTTP backends that answer what they received:
matching and precedence, weights, 404/500, redirects, header filters, rewrites, mirrors,
timeouts, HTTPS with SNI, and reloads under load without a failed request."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from emu.errors import CommandError, DataplaneError
from emu.gateway import haproxy, haproxy_ctl
from emu.gateway.model import (
    Action,
    Backend,
    Certificate,
    Endpoint,
    Frontend,
    HeaderMatch,
    HeaderModifier,
    Listener,
    Match,
    Mirror,
    PathModifier,
    ProxyConfig,
    Redirect,
    Rewrite,
    RouteEntry,
)
from tests.conftest import missing_tools

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(bool(missing_tools("haproxy", "openssl")), reason="haproxy or openssl missing"),
]

NASTY = 'it\'s "quoted" 100% \\back #hash $HOME ${X} {brace} a,b'


# --- backends -------------------------------------------------------------------------------


@dataclass
class EchoServer:
    name: str
    server: ThreadingHTTPServer
    seen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def endpoint(self) -> Endpoint:
        return Endpoint("127.0.0.1", self.port, f"test/{self.name}")


def _handler(echo: EchoServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode(errors="replace") if length else ""
            headers: dict[str, list[str]] = {}
            for k, v in self.headers.items():
                headers.setdefault(k.lower(), []).append(v)
            seen = {"backend": echo.name, "method": self.command, "path": self.path, "headers": headers, "body": body}
            echo.seen.append(seen)
            delay = self.headers.get("X-Delay-Ms")
            if delay:
                time.sleep(int(delay) / 1000)
            data = json.dumps(seen).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Backend-Extra", "yes")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # HAProxy resets idle upstream connections: not the test's business


@contextlib.contextmanager
def echo_servers(*names: str) -> Iterator[dict[str, EchoServer]]:
    servers: dict[str, EchoServer] = {}
    threads = []
    try:
        for name in names:
            srv = QuietServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
            srv.daemon_threads = True
            echo = EchoServer(name, srv)
            srv.RequestHandlerClass = _handler(echo)
            servers[name] = echo
            t = threading.Thread(target=srv.serve_forever, daemon=True)
            t.start()
            threads.append(t)
        yield servers
    finally:
        for echo in servers.values():
            echo.server.shutdown()
            echo.server.server_close()


# --- HAProxy --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    """One HAProxy master in a tmp dir; every pid it had is killed at stop()."""

    def __init__(self, d: str, ports: dict[int, int]) -> None:
        os.makedirs(d, exist_ok=True)
        self.dir = d
        self.cfg = os.path.join(d, "haproxy.cfg")
        self.master = os.path.join(d, "master.sock")
        self.opts = haproxy.RenderOptions(
            dir=d, stats_socket=os.path.join(d, "stats.sock"), bind_address="127.0.0.1", bind_ports=ports, keep_alive_ms=2000
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: set[int] = set()  # workers seen, old ones included
        self.log = open(os.path.join(d, "haproxy.log"), "wb")  # closed in stop()

    def write(self, config: ProxyConfig) -> None:
        rendered = haproxy.render(config, self.opts)
        for name, content in rendered.files.items():
            _atomic_write(os.path.join(self.dir, name), content)
        _atomic_write(self.cfg, rendered.text)

    def start(self, config: ProxyConfig) -> None:
        self.write(config)
        haproxy_ctl.check(self.cfg)
        self.process = subprocess.Popen(haproxy_ctl.argv(self.cfg, self.master), stdout=subprocess.DEVNULL, stderr=self.log)
        haproxy_ctl.wait_serving(self.master, timeout=10.0, process=self.process)
        self._remember()

    def reload(self, config: ProxyConfig) -> None:
        self.write(config)
        haproxy_ctl.reload(self.master, timeout=10.0, cfg_path=self.cfg)
        self._remember()

    def _remember(self) -> None:
        status = haproxy_ctl.show_proc(self.master)
        self.pids |= {w.pid for w in status.workers + status.old_workers}

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(OSError, DataplaneError):
                self._remember()
            self.process.terminate()  # the master stops its workers
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for pid in self.pids:  # any worker left behind (checked: a pid may be reused)
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"haproxy" not in f.read().split(b"\0")[0]:
                        continue
                os.kill(pid, signal.SIGKILL)
        self.log.close()


def _atomic_write(path: str, content: str) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(content)
    os.replace(path + ".tmp", path)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    def header(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []


def request(
    port: int, path: str, host: str = "example.com", method: str = "GET", headers: dict[str, str] | None = None, body: str | None = None
) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def backend_of(reply: Reply) -> str:
    assert reply.status == 200, (reply.status, reply.body)
    return str(reply.json()["backend"])


def eventually(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# --- the routing fixture --------------------------------------------------------------------


def _entry(path: str, action: Action, path_type: str = "PathPrefix", hostname: str | None = None, **match: Any) -> RouteEntry:
    return RouteEntry(hostname, Match(path_type, path, **match), action, route="HTTPRoute/test/r")  # type: ignore[arg-type]


def routing_config(s: dict[str, EchoServer]) -> ProxyConfig:
    a = Backend("test/a:80", 1, (s["a"].endpoint(),))
    b = Backend("test/b:80", 1, (s["b"].endpoint(),))
    to_a, to_b = Action("to-a", backends=(a,)), Action("to-b", backends=(b,))
    c = Backend(
        "test/c:80",
        1,
        (s["a"].endpoint(),),
        request_headers=HeaderModifier(set=(("X-Backend-Level", "c"),)),
        response_headers=HeaderModifier(add=(("X-From-Backend", "c"),)),
    )
    invalid = Backend("test/missing:80", 1, invalid="BackendNotFound")
    filters = Action(
        "filters",
        request_headers=HeaderModifier(set=(("X-Set", NASTY),), add=(("X-Add", "added"), ("X-Empty", "")), remove=("X-Remove",)),
        response_headers=HeaderModifier(set=(("X-Resp", NASTY),), remove=("X-Backend-Extra",)),
        backends=(c,),
    )

    def redirect(**kw: Any) -> Action:
        return Action(f"redirect-{kw}", redirect=Redirect(**kw))

    def rewrite(**kw: Any) -> Action:
        return Action(f"rewrite-{kw}", rewrite=Rewrite(**kw), backends=(a,))

    catch_all = (
        # A run of entries for one hostname: a map lookup.
        _entry("/host-entry/exact", to_a, "Exact", hostname="h.example.org"),
        _entry("/host-entry/deeper", to_a, hostname="h.example.org"),
        _entry("/host-entry", to_b, hostname="h.example.org"),
        _entry("/host-entry/deeper/still", to_b, hostname="h.example.org"),  # never first
        _entry("/other", to_b, hostname="i.example.org"),
        _entry("/exact", to_a, "Exact"),
        _entry("/prefix/", to_b),
        _entry(r"/re/\d+", to_a, "RegularExpression"),
        _entry("/hdr", to_b, headers=(HeaderMatch("X-Version", "two"),)),
        _entry("/hdr", to_b, headers=(HeaderMatch("x-nasty", NASTY),)),
        _entry("/hdr", to_b, headers=(HeaderMatch("X-Re", r"v\d+", "RegularExpression"),)),
        _entry("/hdr", to_a),
        _entry("/q", to_b, query=(HeaderMatch("mode", "fast"),)),
        _entry("/q", to_b, query=(HeaderMatch("q'1", "a$b%41"),)),
        _entry("/q", to_a),
        _entry("/m", to_b, method="POST"),
        _entry("/m", to_a),
        _entry("/weights", Action("weights", backends=(a, Backend("test/b:80", 3, (s["b"].endpoint(),))))),
        _entry("/invalid", Action("invalid", backends=(invalid,))),
        _entry("/half-invalid", Action("half", backends=(a, invalid))),
        _entry("/no-endpoints", Action("noeps", backends=(Backend("test/empty:80", 1),))),
        _entry("/no-backends", Action("nobackends")),
        _entry("/zero-weight", Action("zero", backends=(Backend("test/a:80", 0, (s["a"].endpoint(),)),))),
        _entry("/headers", filters),
        _entry("/redir-host", redirect(hostname="example.org", status=301)),
        _entry("/redir-scheme", redirect(scheme="https")),
        _entry("/redir-port", redirect(port=8443)),
        _entry("/redir-https-443", redirect(scheme="https", port=443)),
        _entry("/redir-prefix", redirect(path=PathModifier("ReplacePrefixMatch", "/new", "/redir-prefix"))),
        _entry("/redir-full", redirect(path=PathModifier("ReplaceFullPath", "/full-replaced"), status=308)),
        _entry("/prefix-rw/one", rewrite(path=PathModifier("ReplacePrefixMatch", "/one", "/prefix-rw/one"))),
        _entry("/strip-prefix", rewrite(path=PathModifier("ReplacePrefixMatch", "/", "/strip-prefix"))),
        _entry("/full-rw", rewrite(path=PathModifier("ReplaceFullPath", "/one"), hostname="rewritten.example")),
        _entry(
            "/mirror",
            Action(
                "mirror",
                request_headers=HeaderModifier(set=(("X-Mirrored", "yes"),)),
                mirrors=(Mirror(Backend("test/m:80", 1, (s["m"].endpoint(),))),),
                backends=(a,),
            ),
        ),
        _entry("/slow", Action("slow", timeout_ms=300, backends=(a,))),
    )
    listeners = (
        Listener("exact", "exact.example.com", (_entry("/", to_a),)),
        Listener("wild", "*.example.com", (_entry("/only-in-wildcard", to_b),)),
        Listener("any", None, catch_all),
    )
    other = Listener("any", None, (_entry("/redir-port-of-listener", redirect()), _entry("/redir-http", redirect(scheme="http"))))
    return ProxyConfig("Gateway/test/gw", (Frontend(80, "HTTP", listeners), Frontend(8080, "HTTP", (other,))))


@dataclass
class Routing:
    port: int
    port8080: int
    servers: dict[str, EchoServer]


@pytest.fixture(scope="module")
def routing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routing]:
    with echo_servers("a", "b", "m") as servers:
        ports = {80: free_port(), 8080: free_port()}
        proxy = Proxy(str(tmp_path_factory.mktemp("hx")), ports)
        try:
            proxy.start(routing_config(servers))
            yield Routing(ports[80], ports[8080], servers)
        finally:
            proxy.stop()


# --- matching -------------------------------------------------------------------------------


def test_paths_exact_prefix_on_segments_and_full_regex(routing: Routing) -> None:
    p = routing.port
    assert backend_of(request(p, "/exact")) == "a"
    assert request(p, "/exact/more").status == 404
    for path in ("/prefix", "/prefix/", "/prefix/x/y", "/prefix?x=1"):
        assert backend_of(request(p, path)) == "b", path
    assert request(p, "/prefixx").status == 404
    assert backend_of(request(p, "/re/123")) == "a"
    assert request(p, "/re/123/x").status == 404  # the whole path must match


def test_headers_query_and_method_with_precedence(routing: Routing) -> None:
    p = routing.port
    assert backend_of(request(p, "/hdr")) == "a"
    assert backend_of(request(p, "/hdr", headers={"x-version": "two"})) == "b"  # name case-insensitive
    assert backend_of(request(p, "/hdr", headers={"X-Version": "TWO"})) == "a"  # value exact
    assert backend_of(request(p, "/hdr", headers={"X-Nasty": NASTY})) == "b"
    assert backend_of(request(p, "/hdr", headers={"X-Re": "v42"})) == "b"
    assert backend_of(request(p, "/hdr", headers={"X-Re": "v42x"})) == "a"  # full match
    assert backend_of(request(p, "/q?mode=fast")) == "b"
    assert backend_of(request(p, "/q?x=1&mode=fast")) == "b"
    assert backend_of(request(p, "/q?Mode=fast")) == "a"  # names are case-sensitive
    assert backend_of(request(p, "/q?mode=slow&mode=fast")) == "a"  # the first occurrence counts
    assert backend_of(request(p, "/q?q'1=a$b%41")) == "b"
    assert backend_of(request(p, "/m", method="POST", body="x")) == "b"
    assert backend_of(request(p, "/m")) == "a"


def test_listener_by_host_most_specific_first_and_isolated(routing: Routing) -> None:
    p = routing.port
    assert backend_of(request(p, "/anything", host="Exact.Example.com:80")) == "a"
    assert backend_of(request(p, "/only-in-wildcard", host="x.y.example.com")) == "b"  # several labels
    # exact.example.com's listener has no such route: no falling through to the wildcard.
    assert backend_of(request(p, "/only-in-wildcard", host="exact.example.com")) == "a"
    assert request(p, "/exact", host="foo.example.com").status == 404  # the wildcard listener's
    assert backend_of(request(p, "/exact", host="example.com")) == "a"  # the catch-all listener
    h = "h.example.org"
    assert backend_of(request(p, "/host-entry", host=h)) == "b"
    assert backend_of(request(p, "/host-entry/exact", host=h)) == "a"
    assert backend_of(request(p, "/host-entry/exact/x", host=h)) == "b"
    assert backend_of(request(p, "/host-entry/deeper/still", host=h)) == "a"  # the first match
    assert request(p, "/host-entryx", host=h).status == 404
    assert request(p, "/host-entry", host="other.example.org").status == 404
    assert backend_of(request(p, "/other", host="i.example.org")) == "b"
    assert request(p, "/other", host=h).status == 404


def test_weights_and_500s(routing: Routing) -> None:
    p = routing.port
    counts = Counter(backend_of(request(p, "/weights")) for _ in range(400))
    assert 240 <= counts["b"] <= 360, counts  # 3:1 → 300 expected
    assert request(p, "/invalid").status == 500
    assert request(p, "/no-endpoints").status == 500
    assert request(p, "/no-backends").status == 500
    assert request(p, "/zero-weight").status == 500
    statuses = Counter(request(p, "/half-invalid").status for _ in range(200))
    assert set(statuses) == {200, 500} and 60 <= statuses[500] <= 140, statuses


def test_redirect_locations(routing: Routing) -> None:
    p, host = routing.port, "Foo.Example:1234"

    def where(path: str, port: int = p) -> tuple[int, str]:
        r = request(port, path, host=host)
        return r.status, r.headers["Location"]

    assert where("/redir-host") == (301, "http://example.org/redir-host")  # listener port 80: no port
    assert where("/redir-scheme?a=1") == (302, "https://foo.example/redir-scheme?a=1")
    assert where("/redir-port") == (302, "http://foo.example:8443/redir-port")
    assert where("/redir-https-443") == (302, "https://foo.example/redir-https-443")
    assert where("/redir-prefix/a/b?x=1") == (302, "http://foo.example/new/a/b?x=1")
    assert where("/redir-prefix") == (302, "http://foo.example/new")
    assert where("/redir-full/x?y=%20") == (308, "http://foo.example/full-replaced?y=%20")
    assert where("/redir-port-of-listener", routing.port8080) == (302, "http://foo.example:8080/redir-port-of-listener")
    assert where("/redir-http", routing.port8080) == (302, "http://foo.example/redir-http")


def test_header_modifiers_both_ways(routing: Routing) -> None:
    r = request(routing.port, "/headers", headers={"X-Set": "old", "X-Add": "first", "X-Remove": "gone"})
    seen = r.json()["headers"]
    assert seen["x-set"] == [NASTY]
    assert seen["x-add"] == ["first", "added"]
    assert seen["x-empty"] == [""]
    assert "x-remove" not in seen
    assert seen["x-backend-level"] == ["c"]  # backendRef-level filter
    assert r.header("X-Resp") == [NASTY]
    assert r.header("X-From-Backend") == ["c"]
    assert r.header("X-Backend-Extra") == []
    plain = request(routing.port, "/exact")  # another action's responses are untouched
    assert plain.header("X-Resp") == [] and plain.header("X-Backend-Extra") == ["yes"]


def test_url_rewrites(routing: Routing) -> None:
    p = routing.port
    assert request(p, "/prefix-rw/one/two?k=v").json()["path"] == "/one/two?k=v"
    assert request(p, "/prefix-rw/one").json()["path"] == "/one"
    assert request(p, "/strip-prefix/three").json()["path"] == "/three"
    assert request(p, "/strip-prefix").json()["path"] == "/"
    assert request(p, "/strip-prefix/").json()["path"] == "/"
    seen = request(p, "/full-rw/one/two?q=1").json()
    assert seen["path"] == "/one?q=1"
    assert seen["headers"]["host"] == ["rewritten.example"]


def test_mirror_gets_a_copy(routing: Routing) -> None:
    mirror = routing.servers["m"]
    r = request(routing.port, "/mirror/x?id=42", method="POST", body="payload", headers={"X-Client": "c"})
    assert backend_of(r) == "a"
    eventually(lambda: any(s["path"] == "/mirror/x?id=42" for s in mirror.seen))
    copy = next(s for s in mirror.seen if s["path"] == "/mirror/x?id=42")
    assert copy["method"] == "POST" and copy["body"] == "payload"
    assert copy["headers"]["x-client"] == ["c"] and copy["headers"]["x-mirrored"] == ["yes"]
    assert copy["headers"]["host"] == ["example.com"]


def test_request_timeout_gives_504(routing: Routing) -> None:
    start = time.monotonic()
    assert request(routing.port, "/slow", headers={"X-Delay-Ms": "3000"}).status == 504
    assert time.monotonic() - start < 2.5
    assert backend_of(request(routing.port, "/slow")) == "a"


def _first_match(entries: list[RouteEntry], host: str, path: str, headers: dict[str, str]) -> int | None:
    """The spec's rule, spelled plainly: the first entry whose hostname and match hold."""
    for k, e in enumerate(entries):
        m = e.match
        if e.hostname is not None and e.hostname != host:
            continue
        if any(headers.get(h.name) != h.value for h in m.headers):
            continue
        prefix = m.path.rstrip("/")
        if m.path_type == "Exact" and path == m.path:
            return k
        if m.path_type == "PathPrefix" and (not prefix or path == prefix or path.startswith(prefix + "/")):
            return k
        if m.path_type == "RegularExpression" and re.fullmatch(m.path, path):
            return k
    return None


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_map_lookups_choose_as_rules_do(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Entries in any order (shadowed ones, exact and prefix on the same path, hostnames
    and none, some with a header or a regex in between): the map lookups, the rules and
    the plain first-match rule agree."""
    import random

    from emu.gateway import haproxy_match

    rnd = random.Random(seed)

    def path(depth: int) -> str:
        return "/" + "/".join(rnd.choice("abc") for _ in range(depth))

    def match() -> Match:
        kind = rnd.random()
        if kind < 0.1:
            return Match("RegularExpression", path(rnd.randint(0, 2)) + "/[bc].*")
        headers = (HeaderMatch("X-K", "1"),) if kind < 0.3 else ()
        return Match(rnd.choice(["Exact", "PathPrefix"]), path(rnd.randint(1, 3)) + rnd.choice(["", "/"]), headers=headers)  # type: ignore[arg-type]

    entries = [
        RouteEntry(rnd.choice([None, "x.test", "y.test"]), match(), Action(f"e{k}", redirect=Redirect(hostname=f"e{k}.test")))
        for k in range(60)
    ]
    config = ProxyConfig("Gateway/test/maps", (Frontend(80, "HTTP", (Listener("any", None, tuple(entries)),)),))
    requests = [
        (rnd.choice(["x.test", "y.test", "z.test"]), path(rnd.randint(0, 4)) + rnd.choice(["", "/"]), rnd.choice([{}, {"X-K": "1"}]))
        for _ in range(200)
    ]
    expected = [_first_match(entries, *r) for r in requests]
    assert len({x for x in expected if x is not None}) >= 10  # many entries win some request
    for label, min_run in (("maps", 1), ("rules", 10**6)):
        monkeypatch.setattr(haproxy_match, "MIN_MAP_RUN", min_run)
        port = free_port()
        proxy = Proxy(str(tmp_path / label), {80: port})
        try:
            proxy.start(config)
            assert ("map_beg" in open(proxy.cfg).read()) == (label == "maps")
            for (host, p, headers), want in zip(requests, expected, strict=True):
                r = request(port, p, host=host, headers=headers)
                got = None if r.status == 404 else int(r.headers["Location"].split("//")[1].split(".")[0][1:])
                assert got == want, (label, host, p, headers)
        finally:
            proxy.stop()


# --- HTTPS ----------------------------------------------------------------------------------


def _self_signed(d: str, host: str) -> tuple[str, str]:
    key, crt = os.path.join(d, f"{host}.key"), os.path.join(d, f"{host}.crt")
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
    argv += ["-keyout", key, "-out", crt, "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}"]
    subprocess.run(
        argv,
        check=True,
        capture_output=True,
        timeout=30,
    )
    with open(crt) as c, open(key) as k:
        return c.read(), k.read()


def _tls_get(port: int, sni: str, host: str, cadata: str) -> tuple[str, str]:
    """(the certificate's CN, the backend) for one request with that SNI and Host."""
    ctx = ssl.create_default_context(cadata=cadata)
    ctx.check_hostname = False  # the default certificate is checked by name below
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=sni) as tls:
        cert = tls.getpeercert() or {}
        cn = next(v for rdn in cert["subject"] for k, v in rdn if k == "commonName")
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return cn, json.loads(body)["backend"]


def test_https_sni_selects_certificate_and_listener(tmp_path: Any) -> None:
    a_crt, a_key = _self_signed(str(tmp_path), "a.example.com")
    b_crt, b_key = _self_signed(str(tmp_path), "b.example.com")
    with echo_servers("a", "b") as s:
        to = {n: Action(f"to-{n}", backends=(Backend(f"test/{n}:80", 1, (s[n].endpoint(),)),)) for n in "ab"}
        fe = Frontend(
            443,
            "HTTPS",
            (Listener("a", "a.example.com", (_entry("/", to["a"]),)), Listener("b", "b.example.com", (_entry("/", to["b"]),))),
            (Certificate("test/a", a_crt + a_key, ("a.example.com",)), Certificate("test/b", b_crt + b_key, ("b.example.com",))),
        )
        port = free_port()
        proxy = Proxy(str(tmp_path), {443: port})
        try:
            proxy.start(ProxyConfig("Gateway/test/tls", (fe,)))
            both = a_crt + b_crt
            assert _tls_get(port, "b.example.com", "b.example.com", both) == ("b.example.com", "b")
            assert _tls_get(port, "a.example.com", "a.example.com", both) == ("a.example.com", "a")
            assert _tls_get(port, "other.example.com", "b.example.com", both) == ("a.example.com", "b")  # default: the first
        finally:
            proxy.stop()


# --- reloads --------------------------------------------------------------------------------


def _moving_route(s: dict[str, EchoServer], to: str) -> ProxyConfig:
    be = Backend(f"test/{to}:80", 1, (s[to].endpoint(),))
    entry = RouteEntry(None, Match("PathPrefix", "/"), Action("r", backends=(be,)))
    return ProxyConfig("Gateway/test/reload", (Frontend(80, "HTTP", (Listener("any", None, (entry,)),)),))


def test_reloads_under_load_lose_nothing(tmp_path: Any) -> None:
    with echo_servers("a", "b") as s:
        port = free_port()
        proxy = Proxy(str(tmp_path), {80: port})
        stop = threading.Event()
        failures: list[str] = []
        served = Counter[str]()

        def new_connections() -> None:
            while not stop.is_set():
                try:
                    served[backend_of(request(port, "/new"))] += 1
                except (OSError, AssertionError, http.client.HTTPException) as e:
                    failures.append(f"new connection: {e!r}")

        def keep_alive() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            while not stop.is_set():
                try:
                    conn.request("GET", "/keep", headers={"Host": "example.com"})
                    resp = conn.getresponse()
                    body = resp.read()
                    if resp.status != 200:
                        failures.append(f"keep-alive: {resp.status}")
                    else:
                        served[json.loads(body)["backend"]] += 1
                except (OSError, http.client.HTTPException) as e:
                    failures.append(f"keep-alive: {e!r}")
                    conn.close()
            conn.close()

        try:
            proxy.start(_moving_route(s, "a"))
            clients = [threading.Thread(target=new_connections), threading.Thread(target=keep_alive)]
            for t in clients:
                t.start()
            try:
                for i in range(100):
                    proxy.reload(_moving_route(s, "b" if i % 2 == 0 else "a"))
            finally:
                stop.set()
                for t in clients:
                    t.join(timeout=15)
            assert failures == []
            assert served["a"] > 50 and served["b"] > 50, served
            assert backend_of(request(port, "/after")) == "a"  # the 100th configuration
        finally:
            proxy.stop()


def test_bad_configuration_keeps_the_old_worker(tmp_path: Any) -> None:
    with echo_servers("a") as s:
        port = free_port()
        proxy = Proxy(str(tmp_path), {80: port})
        try:
            proxy.start(_moving_route(s, "a"))
            with open(proxy.cfg, "a") as f:
                f.write("frontend broken\n    no-such-keyword\n")
            with pytest.raises(CommandError, match="no-such-keyword"):
                haproxy_ctl.check(proxy.cfg)
            with pytest.raises(DataplaneError, match=r"previous configuration keeps serving.*no-such-keyword"):
                haproxy_ctl.reload(proxy.master, timeout=10.0, cfg_path=proxy.cfg)
            assert backend_of(request(port, "/")) == "a"
            proxy.reload(_moving_route(s, "a"))  # a good one loads again
            assert backend_of(request(port, "/")) == "a"
        finally:
            proxy.stop()


def test_stats_socket_path_expands_the_environment(tmp_path: Any) -> None:
    d = str(tmp_path)
    with echo_servers("a") as s:
        proxy = Proxy(d, {80: free_port()})
        proxy.opts = haproxy.RenderOptions(
            dir=d, stats_socket=d + "/${POD_NAME}.stats", bind_address="127.0.0.1", bind_ports=proxy.opts.bind_ports
        )
        proxy.write(_moving_route(s, "a"))
        proxy.process = subprocess.Popen(
            haproxy_ctl.argv(proxy.cfg, proxy.master),
            env={**os.environ, "POD_NAME": "pod-1"},
            stdout=subprocess.DEVNULL,
            stderr=proxy.log,
        )
        try:
            haproxy_ctl.wait_serving(proxy.master, timeout=10.0, process=proxy.process)
            assert os.path.exists(os.path.join(d, "pod-1.stats"))
        finally:
            proxy.stop()
