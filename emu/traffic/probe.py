"""The reachability probe: every client pod to every destination, each served port and
protocol, all at once on one event loop.

Client sockets are created inside the client pod's namespace (setns on the loop thread
for the microseconds it takes), so each attempt leaves the pod exactly as the pod's own
traffic would. TCP counts as connected when the handshake completes (upstream's netpol
e2e probe, `agnhost connect`, asks no more); UDP when the `hostname` datagram gets a reply.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import select
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NotRequired, TypedDict

from emu.dataplane import netns

DEFAULT_TIMEOUT = 1.0
CONCURRENCY = 512  # UDP attempts in flight
TCP_WINDOW = 2048  # TCP handshakes in flight (the listen backlogs are 1024 per socket)
_LINGER_ABORT = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class Client:
    name: str  # ns/pod
    netns_fd: int


@dataclass(frozen=True)
class Target:
    name: str  # ns/pod or ns/service
    ip: str
    port: int
    protocol: str  # TCP | UDP


# A Result as `kemu probe -o json` and the control socket carry it ("from" is a keyword,
# hence the functional form); "expected" is the NetworkPolicy oracle's verdict (--expect).
ProbeRow = TypedDict("ProbeRow", {"from": str, "to": str, "port": int, "protocol": str, "connected": bool, "expected": NotRequired[bool]})


@dataclass(frozen=True)
class Result:
    src: str
    dst: str
    port: int
    protocol: str
    connected: bool
    reply: str = ""

    def as_json(self) -> ProbeRow:
        return {"from": self.src, "to": self.dst, "port": self.port, "protocol": self.protocol, "connected": self.connected}


def connect_all(attempts: list[tuple[int, str, int]], timeout: float, window: int = TCP_WINDOW) -> list[bool]:
    """TCP handshakes for (netns fd, ip, port) attempts, `window` in flight at once: did
    each complete within `timeout`? One epoll set, no task per attempt; the sockets of a
    batch are made with one visit to each client's namespace."""
    results = [False] * len(attempts)
    ep = select.epoll()
    inflight: dict[int, tuple[int, socket.socket, float]] = {}  # socket fd → (attempt, socket, deadline)
    nxt = 0
    try:
        while nxt < len(attempts) or inflight:
            if nxt < len(attempts) and len(inflight) < window:
                batch = list(range(nxt, min(len(attempts), nxt + window - len(inflight))))
                nxt += len(batch)
                deadline = time.monotonic() + timeout
                for i, s in _sockets_for(attempts, batch):
                    _, ip, port = attempts[i]
                    err = s.connect_ex((ip, port))
                    if err == 0:
                        results[i] = True
                        s.close()
                    elif err != errno.EINPROGRESS:
                        s.close()
                    else:
                        ep.register(s.fileno(), select.EPOLLOUT)
                        inflight[s.fileno()] = (i, s, deadline)
            now = time.monotonic()
            wait = max(0.0, min((d for _, _, d in inflight.values()), default=now) - now)
            for fd, _ev in ep.poll(wait if nxt >= len(attempts) or len(inflight) >= window else 0):
                i, s, _ = inflight.pop(fd)
                ep.unregister(fd)
                results[i] = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                s.close()
            now = time.monotonic()
            for fd in [fd for fd, (_, _, d) in inflight.items() if d <= now]:
                _, s, _ = inflight.pop(fd)
                ep.unregister(fd)
                s.close()  # no answer in time: dropped on the way (a policy, no route)
    finally:
        for _, s, _ in inflight.values():
            s.close()
        ep.close()
    return results


def connect_parallel(attempts: list[tuple[int, str, int]], timeout: float) -> list[bool]:
    """connect_all over one thread per core: the kernel does most of a local handshake
    inside connect() (softirq on the sender's CPU), with the GIL released."""
    n = max(1, min(os.cpu_count() or 1, 4, len(attempts) // 256))
    if n == 1:
        return connect_all(attempts, timeout)
    parts = [attempts[i::n] for i in range(n)]
    with ThreadPoolExecutor(n, thread_name_prefix="kemu-probe") as pool:
        done = list(pool.map(lambda part: connect_all(part, timeout, TCP_WINDOW // n), parts))
    out = [False] * len(attempts)
    for i, res in enumerate(done):
        out[i::n] = res
    return out


def _sockets_for(attempts: list[tuple[int, str, int]], batch: list[int]) -> list[tuple[int, socket.socket]]:
    out = []
    by_ns: dict[int, list[int]] = {}
    for i in batch:
        by_ns.setdefault(attempts[i][0], []).append(i)
    for fd, idx in by_ns.items():
        netns.set_thread_netns(fd)
        try:
            for i in idx:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                # Close with a RST: no FIN exchange, no TIME_WAIT; the server's end goes too.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
                out.append((i, s))
        finally:
            netns.go_home()
    return out


# UDP probe source ports, handed out in turn: a UDP conntrack entry lives on for 30 s after
# its reply, and the policy engine lets established flows through, so a probe that reused
# an earlier probe's 5-tuple (the kernel picks ephemeral ports at random) would pass on a
# flow a new NetworkPolicy now denies. 20,000 ports in turn come back after minutes.
_UDP_PORTS = itertools.cycle(range(40000, 60000))


def _bind_fresh_port(s: socket.socket) -> None:
    for _ in range(20):
        try:
            s.bind(("0.0.0.0", next(_UDP_PORTS)))
            return
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    s.bind(("0.0.0.0", 0))


async def _udp(fd: int, ip: str, port: int, timeout: float) -> tuple[bool, str]:
    loop = asyncio.get_running_loop()
    s = netns.socket_in(fd, socket.SOCK_DGRAM)
    try:
        _bind_fresh_port(s)
        async with asyncio.timeout(timeout):
            await loop.sock_connect(s, (ip, port))
            await loop.sock_sendall(s, b"hostname")
            data = await loop.sock_recv(s, 4096)
        return True, data.decode(errors="replace")
    except (OSError, TimeoutError):
        return False, ""
    finally:
        s.close()


async def run_matrix(clients: list[Client], targets: list[Target], timeout: float = DEFAULT_TIMEOUT) -> list[Result]:
    """Every client to every target. TCP runs in a worker thread (connect_all) so that this
    loop, which also serves the pods' sockets, is free to accept; UDP runs here."""
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(c: Client, t: Target) -> Result:
        async with sem:
            ok, reply = await _udp(c.netns_fd, t.ip, t.port, timeout)
        return Result(c.name, t.name, t.port, t.protocol, ok, reply)

    pairs = [(c, t) for c in clients for t in targets]
    tcp = [(c, t) for c, t in pairs if t.protocol == "TCP"]
    loop = asyncio.get_running_loop()
    tcp_done = loop.run_in_executor(None, connect_parallel, [(c.netns_fd, t.ip, t.port) for c, t in tcp], timeout)
    udp = await asyncio.gather(*(one(c, t) for c, t in pairs if t.protocol != "TCP"))
    tcp_ok = await tcp_done
    got = {(c.name, t.name, t.port, "TCP"): Result(c.name, t.name, t.port, "TCP", ok) for (c, t), ok in zip(tcp, tcp_ok, strict=True)}
    got |= {(r.src, r.dst, r.port, r.protocol): r for r in udp}
    return [got[(c.name, t.name, t.port, t.protocol)] for c, t in pairs]


def table(results: list[Result]) -> str:
    """Rows are clients, columns destinations, one mark per port/protocol ('.' connected,
    'X' not), in the order printed on the first line — like upstream's netpol truth tables."""
    combos = sorted({(r.port, r.protocol) for r in results})
    clients = sorted({r.src for r in results})
    dests = sorted({r.dst for r in results})
    got = {(r.src, r.dst, r.port, r.protocol): r.connected for r in results}
    legend = "marks per cell: " + " ".join(f"{p}/{proto}" for p, proto in combos) + "   (. connected, X not, - not served)"
    cells = {
        (c, d): "".join("-" if (c, d, p, pr) not in got else ("." if got[(c, d, p, pr)] else "X") for p, pr in combos)
        for c in clients
        for d in dests
    }
    w0 = max([len(c) for c in clients] + [0])
    widths = {d: max(len(d), len(combos)) for d in dests}
    lines = [legend, " " * w0 + "  " + "  ".join(d.ljust(widths[d]) for d in dests)]
    for c in clients:
        lines.append(c.ljust(w0) + "  " + "  ".join(cells[(c, d)].ljust(widths[d]) for d in dests))
    ok = sum(1 for r in results if r.connected)
    lines.append(f"{ok}/{len(results)} connected")
    return "\n".join(lines)
