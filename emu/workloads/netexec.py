"""An agnhost `netexec`-compatible server for many pods, from one asyncio loop.

Upstream Kubernetes e2e tests talk to agnhost netexec; kemu answers the same requests:
TCP (HTTP/1.1): /hostname, /clientip, /echo?msg=X, /healthz, / ; UDP datagrams:
`hostname`, `echo X`, `clientip`. Sockets are created by the caller while its thread is
inside the pod's namespace (so they belong to the pod); the loop only serves them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from emu.model.objects import ContainerPort

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024


def http_response(status: str, body: str, close: bool) -> bytes:
    data = body.encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode() + data


def answer_http(target: str, hostname: str, peer: tuple[str, int]) -> tuple[str, str]:
    url = urlsplit(target)
    if url.path in ("/", "/hostname"):
        return "200 OK", hostname
    if url.path == "/clientip":
        return "200 OK", f"{peer[0]}:{peer[1]}"
    if url.path == "/echo":
        return "200 OK", parse_qs(url.query).get("msg", [""])[0]
    if url.path == "/healthz":
        return "200 OK", "ok"
    return "404 Not Found", f"404 page not found: {unquote(url.path)}"


def answer_udp(message: str, hostname: str, peer: tuple[str, int]) -> str | None:
    msg = message.strip()
    if msg == "hostname":
        return hostname
    if msg == "clientip":
        return f"{peer[0]}:{peer[1]}"
    if msg.startswith("echo "):
        return msg[5:]
    if msg == "echo":
        return ""
    return None


class _Http(asyncio.Protocol):
    def __init__(self, server: NetexecServer, pod: str, hostname: str) -> None:
        self.server, self.pod, self.hostname = server, pod, hostname
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._conns.setdefault(self.pod, set()).add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        conns = self.server._conns.get(self.pod)
        if conns is not None and self.transport is not None:
            conns.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        if len(self.buf) > MAX_REQUEST:
            self.transport.write(http_response("431 Request Header Fields Too Large", "", True))
            self.transport.close()
            return
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split()
            if len(parts) < 3:
                self.transport.write(http_response("400 Bad Request", "", True))
                self.transport.close()
                return
            method, target, version = parts[0], parts[1], parts[2]
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            status, body = answer_http(target, self.hostname, self.transport.get_extra_info("peername"))
            if method == "HEAD":
                body = ""
            self.transport.write(http_response(status, body, close))
            if close:
                self.transport.close()
                return


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = answer_udp(data.decode("utf-8", "replace"), self.hostname, addr)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply.encode(), addr)


def open_sockets_here(ports: list[ContainerPort]) -> list[tuple[ContainerPort, socket.socket]]:
    """Bind every port in the namespace the calling thread is in (all addresses)."""
    out = []
    try:
        for p in ports:
            kind = socket.SOCK_STREAM if p.protocol == "TCP" else socket.SOCK_DGRAM
            s = socket.socket(socket.AF_INET, kind)
            out.append((p, s))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", p.container_port))
            if kind == socket.SOCK_STREAM:
                s.listen(1024)
            s.setblocking(False)
    except BaseException:
        for _, s in out:
            s.close()
        raise
    return out


class NetexecServer:
    """Owns an event loop thread; every other workload task (probes) runs on it too."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="kemu-workloads", daemon=True)
        self._servers: dict[str, list[Any]] = {}
        self._conns: dict[str, set[asyncio.Transport]] = {}

    def start(self) -> None:
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        """Run a coroutine on the loop from another thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(self, pod: str, hostname: str, sockets: list[tuple[ContainerPort, socket.socket]]) -> None:
        """Start serving a pod's bound sockets (returns once they are all served)."""
        self.call(self._serve(pod, hostname, sockets))

    async def _serve(self, pod: str, hostname: str, sockets: list[tuple[ContainerPort, socket.socket]]) -> None:
        servers = self._servers.setdefault(pod, [])
        for p, s in sockets:
            if p.protocol == "TCP":
                servers.append(await self.loop.create_server(lambda: _Http(self, pod, hostname), sock=s))
            else:
                transport, _ = await self.loop.create_datagram_endpoint(lambda: _Udp(hostname), sock=s)
                servers.append(transport)

    def stop_pod(self, pod: str) -> None:
        self.call(self._stop_pod(pod))

    async def _stop_pod(self, pod: str) -> None:
        # Closing every socket drops the references that keep the pod's netns alive.
        for srv in self._servers.pop(pod, []):
            srv.close()
        for t in list(self._conns.pop(pod, ())):
            t.abort()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def _all() -> None:
            for pod in list(self._servers):
                await self._stop_pod(pod)
            for task in asyncio.all_tasks(self.loop):
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            self.call(_all(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
