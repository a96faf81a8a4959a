"""A stand-in for the Gateway API conformance backend `gateway-api/conformance/echo-basic`.

`python -m emu.workloads.echo_basic` serves HTTP/1.1 on $HTTP_PORT (default 3000), one
asyncio loop for every connection, and answers as upstream's echo-basic.go (a Go net/http
server) does:
- `/health`: 200 "OK"; `/status/NNN`: status NNN without a body (400 unless the request
  URI is exactly that); `/status`: 301 to `/status/`, and paths with "." or ".."
  segments: 301 to the cleaned path (Go's ServeMux); "//" is read as "/" (upstream's
  preserveSlashes).
- any other path: the request as JSON {path (the request URI, query included), host,
  method, proto, headers (Go's canonical names → values in order; no Host), httpPort,
  namespace, ingress, service, pod ($NAMESPACE, $INGRESS_NAME, $SERVICE_NAME, $POD_NAME)},
  laid out as Go's json.MarshalIndent(v, "", " "). `?delay=<Go duration>` waits first (an
  invalid one: 500 {"message": …}); every "Name:value" pair of X-Echo-Set-Header
  (comma-separated) becomes a response header.
Not served: HTTPS on $HTTPS_PORT (kemu's route model has no backend TLS, and the
certificate files come from a Secret volume), the /retry/ simulator, websockets on /ws,
h2c on $H2C_PORT, and the gRPC, TCP and UDP modes ($GRPC_ECHO_SERVER, $TCP_ECHO_SERVER,
$UDP_ECHO_SERVER), which main refuses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from json.encoder import encode_basestring  # C-accelerated
from urllib.parse import parse_qs, quote, unquote

log = logging.getLogger(__name__)

MAX_HEAD = 1 << 20  # Go's DefaultMaxHeaderBytes
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS_URI = re.compile(r"/status/([0-9]{3})")
_DURATION_PART = re.compile(r"([0-9]*)(\.[0-9]*)?([^0-9.]*)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
JSON_HEADERS = (("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff"))
TEXT_HEADERS = (("Content-Type", "text/plain; charset=utf-8"),)


def context_json(env: Mapping[str, str]) -> str:
    """The JSON members after "headers" (the same for every request), from the environment."""
    fields = {
        "httpPort": env.get("HTTP_PORT") or "3000",
        "namespace": env.get("NAMESPACE", ""),
        "ingress": env.get("INGRESS_NAME", ""),
        "service": env.get("SERVICE_NAME", ""),
        "pod": env.get("POD_NAME", ""),
    }
    return "".join(f',\n "{k}": {encode_basestring(v)}' for k, v in fields.items())


_canonical: dict[str, str] = {}


def canonical_header_key(name: str) -> str | None:
    """Go's textproto.CanonicalMIMEHeaderKey: "x-forwarded-for" → "X-Forwarded-For"; None
    for a name that is not a token (RFC 9110 §5.1)."""
    key = _canonical.get(name)
    if key is None:
        if not _TOKEN.fullmatch(name):
            return None
        key = "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))
        if len(_canonical) < 4096:  # the usual few names, not whatever a client invents
            _canonical[name] = key
    return key


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go time.ParseDuration string ("1.5s", "2h45m", "300ms"), or None."""
    s = text[1:] if text[:1] in ("+", "-") else text
    if s == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        assert m is not None  # every group may be empty
        whole, frac, unit = m.group(1), m.group(2) or "", m.group(3)
        if (not whole and len(frac) <= 1) or unit not in _UNITS:
            return None
        total += float((whole or "0") + frac) * _UNITS[unit]
        pos = m.end()
    return (-total if text.startswith("-") else total) if s else None


def clean_path(path: str) -> str:
    """Go's ServeMux cleanPath: "." and ".." resolved, "//" collapsed, a trailing "/" kept."""
    out: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if out:
                out.pop()
        elif seg not in ("", "."):
            out.append(seg)
    clean = "/" + "/".join(out)
    return clean + "/" if path.endswith("/") and clean != "/" else clean


@dataclass
class Request:
    method: str
    uri: str  # as sent: Go's RequestURI
    proto: str
    host: str
    headers: dict[str, list[str]]  # canonical name → values, as Go's r.Header
    keep_alive: bool
    body: int | None = 0  # its length, or None when chunked
    expect_continue: bool = False


def parse_head(head: str) -> Request | int:
    """A request line and header lines (no blank line), or the status to close with."""
    lines = head.split("\r\n")
    method, _, rest = lines[0].partition(" ")
    uri, _, proto = rest.partition(" ")
    if proto not in ("HTTP/1.1", "HTTP/1.0"):
        return 505 if re.fullmatch(r"HTTP/[0-9]\.[0-9]", proto) else 400
    if not _TOKEN.fullmatch(method) or not (uri.startswith("/") or uri == "*" or "://" in uri):
        return 400
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = canonical_header_key(name)
        if not colon or key is None:
            return 400  # also obsolete line folding (RFC 9112 §5.2 allows rejecting it)
        if key in headers:
            headers[key].append(value.strip(" \t"))
        else:
            headers[key] = [value.strip(" \t")]
    hosts = headers.pop("Host", [])  # Go moves it to r.Host
    if len(hosts) > 1 or (proto == "HTTP/1.1" and not hosts):
        return 400  # RFC 9112 §3.2: exactly one Host
    host = uri.split("://", 1)[1].split("/", 1)[0] if "://" in uri else (hosts[0] if hosts else "")
    keep_alive = proto == "HTTP/1.1"
    if "Connection" in headers:
        connection = {t.strip().lower() for v in headers["Connection"] for t in v.split(",")}
        keep_alive = "close" not in connection and (keep_alive or "keep-alive" in connection)
    body: int | None = 0
    if "Transfer-Encoding" in headers:
        # Go drops Transfer-Encoding (and a Content-Length beside it) from r.Header.
        if [t.strip().lower() for v in headers.pop("Transfer-Encoding") for t in v.split(",")] != ["chunked"]:
            return 501
        headers.pop("Content-Length", None)
        body = None
    elif "Content-Length" in headers:
        lengths = set(headers["Content-Length"])
        if len(lengths) != 1 or not re.fullmatch("[0-9]+", next(iter(lengths))):
            return 400
        body = int(next(iter(lengths)))
    headers.pop("Trailer", None)
    if headers.get("Pragma") == ["no-cache"] and "Cache-Control" not in headers:
        headers["Cache-Control"] = ["no-cache"]  # Go's fixPragmaCacheControl
    expect = body != 0 and any(v.lower() == "100-continue" for v in headers.get("Expect", ()))
    return Request(method, uri, proto, host, headers, keep_alive, body, expect)


def request_path(uri: str) -> tuple[str, str]:
    """(decoded path, raw query) of a request URI, as Go's r.URL has them."""
    target, _, query = uri.partition("?")
    if "://" in target:
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    return unquote(target), query


def echo_json(req: Request, tail: str) -> bytes:
    """The RequestAssertions body, laid out as Go's json.MarshalIndent(v, "", " ")."""

    hdrs = ",\n".join(
        f"  {encode_basestring(k)}: [\n   " + ",\n   ".join(map(encode_basestring, vs)) + "\n  ]" for k, vs in sorted(req.headers.items())
    )
    parts = (
        f'{{\n "path": {encode_basestring(req.uri)},\n "host": {encode_basestring(req.host)},\n',
        f' "method": {encode_basestring(req.method)},\n "proto": {encode_basestring(req.proto)},\n',
        f' "headers": {{\n{hdrs}\n }}' if hdrs else ' "headers": {}',
        tail,
        "\n}",
    )
    return "".join(parts).encode()


def echo_set_headers(req: Request) -> list[tuple[str, str]]:
    """X-Echo-Set-Header "Name:value, Other:value" → response headers. Names keep their
    case; a name given twice gets its values joined by ","."""
    out: dict[str, str] = {}
    for value in req.headers.get("X-Echo-Set-Header", ()):
        for pair in value.split(","):
            name, _, val = pair.strip().partition(":")
            if _TOKEN.fullmatch(name):  # an empty or malformed name cannot be sent
                out[name] = f"{out[name]},{val.strip()}" if name in out else val.strip()
    return list(out.items())


class _Date:
    sec = -1
    text = ""

    @classmethod
    def now(cls) -> str:
        sec = int(time.time())
        if sec != cls.sec:  # formatted once a second
            cls.sec, cls.text = sec, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(sec))
        return cls.text


def status_line(status: int) -> str:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else f"status code {status}"  # Go's text
    return f"HTTP/1.1 {status} {phrase}\r\n"


def http_response(status: int, headers: tuple[tuple[str, str], ...], body: bytes, req: Request | None, sized: bool = True) -> bytes:
    """A response; without `req` (a bad request) it closes the connection."""
    lines = [status_line(status), *(f"{k}: {v}\r\n" for k, v in headers), f"Date: {_Date.now()}\r\n"]
    if sized:
        lines.append(f"Content-Length: {len(body)}\r\n")
    if req is None or not req.keep_alive:
        lines.append("Connection: close\r\n")
    elif req.proto == "HTTP/1.0":
        lines.append("Connection: keep-alive\r\n")
    head = ("".join(lines) + "\r\n").encode("utf-8", "replace")
    return head if req is not None and req.method == "HEAD" else head + body


def redirect(req: Request, path: str, query: str) -> bytes:
    location = quote(path, safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")
    body = f'<a href="{location}">Moved Permanently</a>.\n\n'.encode() if req.method in ("GET", "HEAD") else b""
    return http_response(301, (("Content-Type", "text/html; charset=utf-8"), ("Location", location)), body, req)


class EchoProtocol(asyncio.Protocol):
    """One connection: requests answered in order (keep-alive, pipelining); bodies are
    read and dropped, as the echo handler never reads them."""

    def __init__(self, tail: str) -> None:
        self.tail = tail
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.req: Request | None = None  # whose body is being dropped
        self.skip = 0  # bytes of body (or of chunk + CRLF) still to drop
        self.trailers = False  # a chunked body's last chunk was read
        self.busy = False  # a delayed answer is pending: later requests wait for it
        self.delayed: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self.process()

    def process(self) -> None:
        while not self.busy and self.transport is not None:
            if self.req is not None:
                if not self._drop_body(self.req):
                    return
                req, self.req = self.req, None
                self._answer(req)
                continue
            while self.buf.startswith(b"\r\n"):  # RFC 9112 §2.2: empty lines before a request
                del self.buf[:2]
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self._fail(431)
                return
            parsed = parse_head(self.buf[:end].decode("utf-8", "replace"))
            del self.buf[: end + 4]
            if isinstance(parsed, int):
                self._fail(parsed)
            elif parsed.body == 0:
                self._answer(parsed)
            else:
                self.req, self.skip, self.trailers = parsed, parsed.body or 0, False
                if parsed.expect_continue:
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _drop_body(self, req: Request) -> bool:
        """Drop the body's bytes as they come; True once all are read."""
        while True:
            n = min(self.skip, len(self.buf))
            del self.buf[:n]
            self.skip -= n
            if self.skip:
                return False
            if req.body is not None:
                return True
            end = self.buf.find(b"\r\n")  # a chunk-size line (RFC 9112 §7.1), or a trailer
            if end < 0:
                return False
            line = bytes(self.buf[:end]).split(b";", 1)[0].strip()
            del self.buf[: end + 2]
            if self.trailers:
                if not line:
                    return True
            elif not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", line):
                self._fail(400)
                return False
            elif (size := int(line, 16)) == 0:
                self.trailers = True
            else:
                self.skip = size + 2

    def _fail(self, status: int) -> None:
        if self.transport is not None:
            self.transport.write(http_response(status, TEXT_HEADERS, HTTPStatus(status).phrase.encode(), None))
            self.transport.close()
        self.transport = None

    def _send(self, req: Request, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)
            if not req.keep_alive:
                self.transport.close()
                self.transport = None

    def _answer(self, req: Request) -> None:
        path, query = request_path(req.uri)
        path = path.replace("//", "/")  # upstream's preserveSlashes, before the mux
        if req.method != "CONNECT" and path != "*" and clean_path(path) != path:
            self._send(req, redirect(req, clean_path(path), query))
        elif path == "/health":
            self._send(req, http_response(200, TEXT_HEADERS, b"OK", req))
        elif path in ("/status", "/retry"):  # Go's ServeMux: a subtree pattern's root
            self._send(req, redirect(req, path + "/", query))
        elif path.startswith("/status/"):
            self._status(req)
        else:
            # Upstream's line for every echoed request, on stdout (the pod's log): the
            # conformance suite finds mirrored requests by it.
            peer = self.transport.get_extra_info("peername") if self.transport else None
            client = f"{peer[0]}:{peer[1]}" if peer else ""
            sys.stdout.write(f"Echoing back request made to {req.uri} to client ({client})\n")
            sys.stdout.flush()
            delay = parse_qs(query, keep_blank_values=True).get("delay", [""])[0] if "delay" in query else ""
            seconds = parse_go_duration(delay) if delay else 0.0
            if seconds is None:
                message = 'time: invalid duration "' + delay + '"'  # Go's error text
                body = ('{"message":' + encode_basestring(message) + "}").encode()
                self._send(req, http_response(500, JSON_HEADERS, body, req))
            elif seconds > 0:
                self.busy = True  # the loop keeps only weak references to tasks: hold it
                self.delayed = asyncio.get_running_loop().create_task(self._delayed(req, seconds))
            else:
                self._send(req, self._echo(req))

    def _status(self, req: Request) -> None:
        m = _STATUS_URI.fullmatch(req.uri)
        code = int(m.group(1)) if m else 400
        if code < 100 or self.transport is None:  # Go's WriteHeader panics: the connection drops
            if self.transport is not None:
                self.transport.abort()
            self.transport = None
            return
        if code < 200 and code != 101:  # informational, then the handler's implicit 200
            self.transport.write(status_line(code).encode() + b"\r\n")
            code = 200
        self._send(req, http_response(code, (), b"", req, sized=code not in (101, 204, 304)))
        if code == 101 and self.transport is not None:
            self.transport.close()  # no protocol to switch to
            self.transport = None

    def _echo(self, req: Request) -> bytes:
        return http_response(200, (*echo_set_headers(req), *JSON_HEADERS), echo_json(req, self.tail), req)

    async def _delayed(self, req: Request, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.busy = False
        self._send(req, self._echo(req))
        self.process()


async def serve(env: Mapping[str, str], host: str = "0.0.0.0") -> asyncio.Server:
    """Start the HTTP listener on $HTTP_PORT."""
    tail, port = context_json(env), int(env.get("HTTP_PORT") or "3000")
    server = await asyncio.get_running_loop().create_server(lambda: EchoProtocol(tail), host, port, backlog=1024, reuse_address=True)
    log.info("Starting server, listening on port %s (http)", port)
    return server


async def _run(env: Mapping[str, str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before listening: a SIGTERM that comes as soon as the port answers (a pod deleted
    # right after it started) must stop the server cleanly, not kill it by default.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await serve(env)
    await stop.wait()
    server.close()


def main(argv: list[str]) -> int:
    """Serve until SIGTERM or SIGINT. Configuration is the environment, as upstream's."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv:
        log.error("echo-basic takes no arguments (it is configured by its environment): %s", " ".join(argv))
        return 2
    modes = [m for m in ("GRPC_ECHO_SERVER", "TCP_ECHO_SERVER", "UDP_ECHO_SERVER") if os.environ.get(m)]
    if modes:
        log.error("kemu's echo-basic serves HTTP only; %s is not supported", modes[0])
        return 2
    try:
        asyncio.run(_run(os.environ))
    except (OSError, ValueError) as e:  # a port in use, or not a port number
        log.error("Failed to start listening: %s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
