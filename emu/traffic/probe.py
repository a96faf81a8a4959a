"""The reachability probe: every client pod to every destination, each served port and
protocol, all at once on one event loop.

Client sockets are created inside the client pod's namespace (setns on the loop thread
for the microseconds it takes), so each attempt leaves the pod exactly as the pod's own
traffic would. TCP counts as connected when the server answers the HTTP request; UDP when
the `hostname` datagram gets a reply.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import socket
from dataclasses import dataclass

from emu.dataplane import netns

DEFAULT_TIMEOUT = 1.0
CONCURRENCY = 512


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


@dataclass(frozen=True)
class Result:
    src: str
    dst: str
    port: int
    protocol: str
    connected: bool
    reply: str = ""

    def as_json(self) -> dict[str, object]:
        return {"from": self.src, "to": self.dst, "port": self.port, "protocol": self.protocol, "connected": self.connected}


async def _tcp(fd: int, ip: str, port: int, timeout: float) -> tuple[bool, str]:
    loop = asyncio.get_running_loop()
    s = netns.socket_in(fd, socket.SOCK_STREAM)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(s, (ip, port))
            await loop.sock_sendall(s, f"GET /hostname HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := await loop.sock_recv(s, 4096):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return head.startswith(b"HTTP/"), body.decode(errors="replace")
    except (OSError, TimeoutError):
        return False, ""
    finally:
        s.close()


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
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(c: Client, t: Target) -> Result:
        async with sem:
            fn = _tcp if t.protocol == "TCP" else _udp
            ok, reply = await fn(c.netns_fd, t.ip, t.port, timeout)
        return Result(c.name, t.name, t.port, t.protocol, ok, reply)

    return list(await asyncio.gather(*(one(c, t) for c in clients for t in targets)))


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
