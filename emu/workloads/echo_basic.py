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
The HTTP/1.1 of a Go server around the handler is emu/workloads/go_http.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Mapping
from http import HTTPStatus
from json.encoder import encode_basestring  # C-accelerated
from urllib.parse import parse_qs

from emu.model.durations import parse_go_duration
from emu.workloads.go_http import (
    _TOKEN,
    MAX_HEAD,
    Request,
    clean_path,
    http_response,
    parse_head,
    redirect,
    request_path,
    status_line,
)

log = logging.getLogger(__name__)

_STATUS_URI = re.compile(r"/status/([0-9]{3})")
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
