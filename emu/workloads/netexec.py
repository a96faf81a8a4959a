"""An agnhost `netexec`-compatible server for many pods, from one asyncio loop.

Upstream Kubernetes e2e tests talk to agnhost netexec; kemu answers the same requests:
TCP (HTTP/1.1): /hostname, /clientip, /echo?msg=X, /healthz, / ; UDP datagrams:
`hostname`, `echo X`, `clientip`. Sockets are created by the caller while its thread is
inside the pod's namespace (so they belong to the pod); the loop only serves them.

As a stand-in for whatever the real image serves, every TCP port also passes the kubelet's
probes: an HTTP request from `kube-probe/*` gets 200 on any path, and a connection opening
with the HTTP/2 preface is a gRPC health check (handed to grpc_health).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import select
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, TextIO
from urllib.parse import parse_qs, unquote, urlsplit

from emu.model.objects import ContainerPort
from emu.workloads.grpc_health import PREFACE, GrpcHealthProtocol

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024


def http_response(status: str, body: str, close: bool) -> bytes:
    data = body.encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode() + data


def answer_http(target: str, hostname: str, peer: tuple[str, int], user_agent: str = "") -> tuple[str, str]:
    status, body = _netexec_answer(target, hostname, peer)
    # Real manifests probe the image's own endpoints (/healthz/ready, /actuator/health, …);
    # the stand-in passes every kubelet probe (the kubelet sends User-Agent kube-probe/X.Y).
    if user_agent.startswith("kube-probe/") and not status.startswith("200"):
        return "200 OK", "ok"
    return status, body


def _netexec_answer(target: str, hostname: str, peer: tuple[str, int]) -> tuple[str, str]:
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


class RequestLog:
    """A pod's request log for `kemu logs`: `<RFC3339 time> <peer ip:port> <what>` a line.

    Opened at the first request (most stand-ins of a thousand-pod bring-up are never asked
    anything), then line-buffered (one write(2) a line, nothing lost on a crash); the
    timestamp's seconds part is formatted once a second, so 1000 busy pods stay cheap.
    """

    _sec = -1
    _prefix = ""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: TextIO | None = None

    @property
    def file(self) -> TextIO:
        if self._file is None:
            self._file = open(self.path, "a", buffering=1, encoding="utf-8", errors="replace")
        return self._file

    @classmethod
    def now(cls) -> str:
        t = time.time()
        sec = int(t)
        if sec != cls._sec:
            cls._sec, cls._prefix = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{cls._prefix}.{int((t - sec) * 1e6):06d}Z"

    def write(self, peer: tuple[str, int] | Any, what: str) -> None:
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "-"
        try:
            self.file.write(f"{self.now()} {where} {what}\n")
        except (OSError, ValueError):  # disk full, or closed by stop_pod: serving goes on
            pass

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _printable(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii")


class _Http(asyncio.Protocol):
    def __init__(self, server: NetexecServer, pod: str, hostname: str, reqlog: RequestLog | None = None) -> None:
        self.server, self.pod, self.hostname, self.reqlog = server, pod, hostname, reqlog
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.peer: Any = ("", 0)
        self.sniffing = True  # until the first bytes say HTTP/1.1 or HTTP/2
        self.h2: GrpcHealthProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = transport.get_extra_info("peername") or ("", 0)
        self.server._conns.setdefault(self.pod, set()).add(transport)
        self.server._busy.setdefault(self.pod, set()).add(self)  # a request is on its way

    def connection_lost(self, exc: Exception | None) -> None:
        conns = self.server._conns.get(self.pod)
        if conns is not None and self.transport is not None:
            conns.discard(self.transport)
        self.server._busy.get(self.pod, set()).discard(self)
        if self.h2 is not None:
            self.h2.connection_lost(exc)

    def _log(self, what: str) -> None:
        if self.reqlog is not None:
            self.reqlog.write(self.peer, what)

    def _grpc_call(self, path: str, code: int) -> None:
        self._log(f"GRPC {path} {code}")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.h2 is not None:
            self.h2.data_received(data)
            return
        self.buf += data
        if self.sniffing:
            # The kubelet's grpc probe speaks HTTP/2 with prior knowledge: the connection
            # opens with the client preface (RFC 9113 §3.4), which no HTTP/1.1 request does.
            if len(self.buf) < len(PREFACE) and PREFACE.startswith(self.buf):
                return
            self.sniffing = False
            if self.buf.startswith(PREFACE):
                self.h2 = GrpcHealthProtocol(self._grpc_call if self.reqlog is not None else None)
                self.h2.connection_made(self.transport)
                buf, self.buf = self.buf, b""
                self.h2.data_received(buf)
                self.server._busy.get(self.pod, set()).discard(self)  # gRPC health: answered at once
                return
        if len(self.buf) > MAX_REQUEST:
            self._log("- - 431")
            self.transport.write(http_response("431 Request Header Fields Too Large", "", True))
            self.transport.close()
            return
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split()
            if len(parts) < 3:
                self._log("- - 400")
                self.transport.write(http_response("400 Bad Request", "", True))
                self.transport.close()
                return
            method, target, version = parts[0], parts[1], parts[2]
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            status, body = answer_http(target, self.hostname, self.peer, headers.get("user-agent", ""))
            self._log(f"{method} {target} {status.split(' ', 1)[0]}")
            if method == "HEAD":
                body = ""
            self.transport.write(http_response(status, body, close))
            if close:
                self.transport.close()
                return
        busy = self.server._busy.setdefault(self.pod, set())
        if self.buf:
            busy.add(self)  # part of a request still to come
        else:
            busy.discard(self)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, hostname: str, reqlog: RequestLog | None = None) -> None:
        self.hostname, self.reqlog = hostname, reqlog
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = data.decode("utf-8", "replace")
        if self.reqlog is not None:
            self.reqlog.write(addr, f"UDP {_printable(message[:40])}")
        reply = answer_udp(message, self.hostname, addr)
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
                # Not TCP_DEFER_ACCEPT, though it would spare us the probe's bare connects:
                # a connection whose request is still on its way must be seen, so that
                # drain() waits for it before the pod stops (a rolling update lost one).
                s.listen(1024)
            s.setblocking(False)
    except BaseException:
        for _, s in out:
            s.close()
        raise
    return out


def _settle(fut: concurrent.futures.Future[None], task: asyncio.Task[None]) -> None:
    """Hand a task's outcome to the future another thread holds."""
    if fut.cancelled():
        return
    if task.cancelled():
        fut.cancel()
    elif (exc := task.exception()) is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(None)


class NetexecServer:
    """Owns an event loop thread; every other workload task (probes) runs on it too."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="kemu-workloads", daemon=True)
        self._servers: dict[str, list[Any]] = {}
        self._conns: dict[str, set[asyncio.Transport]] = {}
        self._busy: dict[str, set[Any]] = {}  # pod → connections with a request not yet answered
        self._logs: dict[str, RequestLog] = {}
        # serve_soon's requests not yet taken by the loop (see there), under _queued_lock.
        self._queued: list[tuple[concurrent.futures.Future[None], Coroutine[Any, Any, None]]] = []
        self._queued_lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        """Run a coroutine on the loop from another thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(self, pod: str, hostname: str, sockets: list[tuple[ContainerPort, socket.socket]], log_path: str | None = None) -> None:
        """Start serving a pod's bound sockets (returns once they are all served).

        With `log_path`, every HTTP request, UDP datagram and gRPC call is appended there.
        """
        self.serve_soon(pod, hostname, sockets, log_path).result(30.0)

    def serve_soon(
        self, pod: str, hostname: str, sockets: list[tuple[ContainerPort, socket.socket]], log_path: str | None = None
    ) -> concurrent.futures.Future[None]:
        """As serve(), without waiting: the future says when (and whether) it is done.

        Requests wait in a queue and the loop is woken once for all that came in since it
        last looked: during a bring-up the sandbox threads hand over a pod every few
        hundred microseconds, and a wake-up each (asyncio's self-pipe write, then a GIL
        hand-off between busy threads) cost them ~8% of their time. Requests are served,
        and ordered with other calls to the loop, as run_coroutine_threadsafe would."""
        reqlog = RequestLog(log_path) if log_path else None
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._queued_lock:
            self._queued.append((fut, self._serve(pod, hostname, sockets, reqlog)))
            first = len(self._queued) == 1  # else a wake-up is on its way already
        if first:
            self.loop.call_soon_threadsafe(self._serve_queued)
        return fut

    def _serve_queued(self) -> None:
        with self._queued_lock:
            batch, self._queued = self._queued, []
        for fut, coro in batch:
            if fut.cancelled():
                coro.close()
                continue
            self.loop.create_task(coro).add_done_callback(functools.partial(_settle, fut))

    async def _serve(
        self, pod: str, hostname: str, sockets: list[tuple[ContainerPort, socket.socket]], reqlog: RequestLog | None = None
    ) -> None:
        if reqlog is not None:
            if pod in self._logs:  # served again (more ports): keep the one open file
                reqlog.close()
            reqlog = self._logs.setdefault(pod, reqlog)
        else:
            reqlog = self._logs.get(pod)
        servers = self._servers.setdefault(pod, [])
        for i, (p, s) in enumerate(sockets):
            srv: Any
            if p.protocol == "TCP":
                srv = await self.loop.create_server(lambda: _Http(self, pod, hostname, reqlog), sock=s)
            else:
                srv, _ = await self.loop.create_datagram_endpoint(lambda: _Udp(hostname, reqlog), sock=s)
            if self._servers.get(pod) is not servers:
                # The pod was stopped while this awaited (a stop asked right after serving
                # runs between the steps of this task): the stop wins.
                srv.close()
                for _, rest in sockets[i + 1 :]:
                    rest.close()
                return
            servers.append(srv)

    def stop_pod(self, pod: str) -> None:
        self.call(self._stop_pod(pod))

    def drain(self, pods: list[str], timeout: float = 1.0) -> None:
        """Answer the requests a pod already has before it stops: connections the proxies
        sent it before they dropped it may still be in its accept queue or mid-request.
        Returns when no served connection of these pods waits for an answer (idle
        keep-alive connections do not count), or at the deadline."""
        self.call(self._drain(pods, timeout), timeout=timeout + 5)

    async def _drain(self, pods: list[str], timeout: float) -> None:
        deadline = self.loop.time() + timeout
        listening = [
            sock.fileno() for p in pods for srv in self._servers.get(p, []) if isinstance(srv, asyncio.Server) for sock in srv.sockets
        ]

        def quiet() -> bool:
            # Nothing queued to accept, no accepted connection waiting for its answer.
            return not select.select(listening, [], [], 0)[0] and not any(self._busy.get(p) for p in pods)

        # Quiet twice in a row: an accepted connection reaches connection_made a few turns
        # of the loop after the accept, so one look could miss it.
        calm = 0
        while calm < 2 and self.loop.time() < deadline:
            await asyncio.sleep(0.002)
            calm = calm + 1 if quiet() else 0

    async def _stop_pod(self, pod: str) -> None:
        # Closing every socket drops the references that keep the pod's netns alive.
        for srv in self._servers.pop(pod, []):
            srv.close()
        for t in list(self._conns.pop(pod, ())):
            t.abort()
        self._busy.pop(pod, None)
        reqlog = self._logs.pop(pod, None)
        if reqlog is not None:
            reqlog.close()

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
