"""The DNS server a DNS pod runs (kemu starts it as the pod's container process, already in
the pod's network namespace):

    python -m emu.dns.server --state FILE [--udp-port 53] [--tcp-port 53] [--metrics-port 9153]
        [--health-port 8080] [--ready-port 8181] [--upstream IP:PORT] [--ack FILE]

It answers from the index in FILE (emu.dns.records.write_state), re-read when the file changes
(checked every 50 ms) or on SIGHUP; `--ack` gets the loaded serial after each load, so kemu can
wait until a change is served. Out-of-zone names go to `--upstream` (UDP, TCP when truncated,
2 s timeout), or get NXDOMAIN when there is none. HTTP as CoreDNS's plugins: `/metrics`
(prometheus, CoreDNS's metric names), `/health` (health) and `/ready` (ready: 200 once loaded).

Speed: answers are cached as wire bytes keyed by the query minus its ID (and minus EDNS options,
which our answers do not depend on); a hit is one dict lookup and the ID patched in, in one
thread with blocking recvfrom/sendto (faster in CPython than asyncio's datagram transport,
see bench/dns_server.py). A miss is answered with dnspython; one that needs the upstream
goes to a worker thread. A reload keeps the cached answers whose names did not change and answers the others again
in the background.
"""

from __future__ import annotations

import argparse
import bisect
import ctypes
import fcntl
import logging
import os
import signal
import socket
import sys
import termios
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dns.message
import dns.rcode

from emu.dns.cache import Entry, Generation, cache_key
from emu.dns.metrics import BUCKETS, Stats, serve_http
from emu.dns.records import load_state
from emu.dns.resolver import OUR_PAYLOAD, Reply, Upstream, error_reply, respond
from emu.dns.upstream import forwarder, recv_exact

log = logging.getLogger("emu.dns")

RELOAD_POLL = 0.05  # seconds between checks of the state file
TCP_IDLE = 10.0  # seconds a TCP connection may sit idle (RFC 7766 §6.2.3)
MAX_TCP_CONNS = 256
SO_RCVBUFFORCE = 33  # Linux; the socket module does not name it
MAX_PENDING = 512  # queries waiting for the upstream; more are dropped (the client retries)


class _NeedsUpstream(Exception):
    """Raised on the fast path when an answer needs the upstream: the query goes to a worker."""


class DnsServer:
    def __init__(
        self,
        state: str,
        *,
        bind: str = "0.0.0.0",
        udp_port: int = 53,
        tcp_port: int = 53,
        upstream: str = "",
        ack: str = "",
        cache_size: int = 20000,
        reuse_port: bool = False,
    ) -> None:
        self.state, self.ack, self.cache_size, self.upstream_addr = state, ack, cache_size, upstream
        self.stats = Stats()
        self.upstream = forwarder(upstream, self.stats.count_forward) if upstream else None
        self.gen = Generation(None)
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.force = False
        self.seen: tuple[int, int, int] | None = None  # (inode, mtime, size) of the state loaded
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns-slow")
        self.pending = 0
        self.tcp_slots = threading.BoundedSemaphore(MAX_TCP_CONNS)
        self.server_label = f"dns://:{udp_port or tcp_port}"
        self.udp = self._socket(socket.SOCK_DGRAM, bind, udp_port, reuse_port) if udp_port else None
        self.tcp = self._socket(socket.SOCK_STREAM, bind, tcp_port, reuse_port) if tcp_port else None

    @staticmethod
    def _socket(kind: int, bind: str, port: int, reuse_port: bool) -> socket.socket:
        s = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if kind == socket.SOCK_DGRAM:
            try:  # room for bursts while a reload holds the interpreter (root may exceed rmem_max)
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((bind, port))
        if kind == socket.SOCK_STREAM:
            s.listen(128)
        return s

    # -- state ------------------------------------------------------------------------------

    def load(self) -> bool:
        t0 = time.monotonic()
        try:
            st = os.stat(self.state)
        except OSError as e:
            log.error("cannot load %s: %s", self.state, e)
            return False
        self.seen = (st.st_ino, st.st_mtime_ns, st.st_size)  # a broken file is not read again until it changes
        try:
            index = load_state(self.state, pause=self.step_aside)
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.stats.reload_failed += 1
            log.error("cannot load %s: %s", self.state, e)
            return False
        gen = Generation(index)
        stale = gen.carry(self.gen, self.step_aside)
        self.gen = gen  # the old one (and its caches) goes with its last reader
        _malloc_trim()
        if self.ack:
            tmp = f"{self.ack}.tmp.{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(f"{index.serial}\n")
            os.replace(tmp, self.ack)
        kept = len(gen.udp) + len(gen.tcp)
        log.info(
            "loaded serial %d: %d names in %.0f ms, %d answers kept", index.serial, len(index.records), (time.monotonic() - t0) * 1000, kept
        )
        self._refresh(gen, stale)
        return True

    def _refresh(self, gen: Generation, stale: list[tuple[bool, bytes]]) -> None:
        """Answer again, from the new index, what was asked before and changed: a reload under
        load costs no burst of misses (a miss takes ~0.3 ms, a hit ~10 µs). Stops at the next change."""
        for i, (udp, key) in enumerate(stale):
            if i % 64 == 0 and (self.gen is not gen or self.wake.is_set() or self._changed()):
                return
            cache = gen.udp if udp else gen.tcp
            if key in cache:
                continue
            try:
                reply = self._answer(gen, b"\0\0" + key, udp, inline=True)
            except _NeedsUpstream:
                continue
            if reply is not None:
                self._store(cache, key, reply, self.stats.cell("udp" if udp else "tcp", reply.qtype, reply.rcode))
            self.step_aside()  # ~0.3 ms an answer: let the serving threads in between

    def _changed(self) -> bool:
        try:
            st = os.stat(self.state)
        except OSError:
            return False
        return (st.st_ino, st.st_mtime_ns, st.st_size) != self.seen

    def step_aside(self) -> None:
        """A reload pauses after each piece (~0.5 ms of work) for the queries waiting: only
        giving up the interpreter lock, sleep(0), would let one packet through a piece (the
        lock's convoy effect); 1 ms of sleep lets the serving thread empty its queue."""
        queued = 0
        if self.udp is not None:
            try:
                queued = int.from_bytes(fcntl.ioctl(self.udp.fileno(), termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
            except OSError:
                queued = 1
        time.sleep(0.001 if queued else 0)

    def reload_now(self) -> None:
        """SIGHUP: reload even if the file looks unchanged."""
        self.force = True
        self.wake.set()

    def _watch(self) -> None:
        while not self.stop.is_set():
            self.wake.wait(RELOAD_POLL)
            self.wake.clear()
            if self._changed() or self.force:
                self.force = False
                self.load()

    # -- answering --------------------------------------------------------------------------

    def _answer(self, gen: Generation, data: bytes, udp: bool, inline: bool) -> Reply | None:
        if gen.index is None:  # nothing loaded yet: SERVFAIL, so the client tries the other replica
            return error_reply(data, dns.rcode.SERVFAIL)
        upstream: Upstream | None = self.upstream
        if inline and upstream is not None:
            upstream = _raise_needs_upstream
        try:
            return respond(gen.index, data, max_udp=OUR_PAYLOAD if udp else None, upstream=upstream)
        except _NeedsUpstream:
            raise
        except Exception:  # one odd query must never stop the server
            log.exception("answering a query")
            return error_reply(data, dns.rcode.SERVFAIL)

    def _store(self, cache: dict[bytes, Entry], key: bytes, reply: Reply, cell: list[float]) -> None:
        if reply.cacheable:
            if len(cache) >= self.cache_size:
                try:
                    cache.pop(next(iter(cache)), None)  # FIFO: the oldest entry goes
                except (StopIteration, RuntimeError):  # emptied or changed by another thread meanwhile
                    pass
            cache[key] = (reply.wire[2:], cell, reply.deps)

    def serve_udp(self) -> None:
        assert self.udp is not None
        recvfrom, sendto, clock, buckets = self.udp.recvfrom, self.udp.sendto, time.perf_counter, BUCKETS
        while not self.stop.is_set():
            try:
                data, addr = recvfrom(65535)
            except OSError:
                continue
            t0 = clock()
            key = cache_key(data)
            hit = self.gen.udp.get(key)  # no reference to a generation outlives the query: a reload frees the old one
            cell: list[float] | None  # the metrics cell of the answer's (transport, qtype, rcode)
            if hit is not None:
                try:
                    sendto(data[:2] + hit[0], addr)
                except OSError:
                    pass
                cell = hit[1]
            else:
                cell = self._udp_miss(data, key, addr, t0)
                if cell is None:
                    continue
            dt = clock() - t0
            cell[0] += 1
            cell[1] += dt
            cell[2 + bisect.bisect_left(buckets, dt)] += 1

    def _udp_miss(self, data: bytes, key: bytes, addr: tuple[str, int], t0: float) -> list[float] | None:
        self.stats.misses += 1
        gen = self.gen
        try:
            reply = self._answer(gen, data, True, inline=True)
        except _NeedsUpstream:
            self._defer(gen, data, addr, t0)
            return None
        if reply is None or self.udp is None:
            return None
        try:
            self.udp.sendto(reply.wire, addr)
        except OSError:
            pass
        cell = self.stats.cell("udp", reply.qtype, reply.rcode)
        self._store(gen.udp, key, reply, cell)
        return cell

    def _defer(self, gen: Generation, data: bytes, addr: tuple[str, int], t0: float) -> None:
        if self.pending >= MAX_PENDING:
            return
        self.pending += 1
        self.pool.submit(self._slow_udp, gen, data, addr, t0)

    def _slow_udp(self, gen: Generation, data: bytes, addr: tuple[str, int], t0: float) -> None:
        try:
            reply = self._answer(gen, data, True, inline=False)
            if reply is not None and self.udp is not None:
                self.udp.sendto(reply.wire, addr)
                self._observe(self.stats.cell("udp", reply.qtype, reply.rcode), t0)
        except OSError:
            pass
        finally:
            self.pending -= 1

    def _observe(self, cell: list[float], t0: float) -> None:
        dt = time.perf_counter() - t0
        cell[0] += 1
        cell[1] += dt
        cell[2 + bisect.bisect_left(BUCKETS, dt)] += 1

    def serve_tcp(self) -> None:
        assert self.tcp is not None
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                continue
            if not self.tcp_slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True).start()

    def _tcp_conn(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(TCP_IDLE)
            while True:
                data = recv_exact(conn, int.from_bytes(recv_exact(conn, 2), "big"))  # OSError at the end
                if not self._tcp_one(conn, data):
                    return
        except OSError:
            pass
        finally:
            conn.close()
            self.tcp_slots.release()

    def _tcp_one(self, conn: socket.socket, data: bytes) -> bool:
        t0 = time.perf_counter()
        gen = self.gen
        key = cache_key(data)
        hit = gen.tcp.get(key)
        if hit is not None:
            wire, cell = data[:2] + hit[0], hit[1]
        else:
            self.stats.misses += 1
            reply = self._answer(gen, data, False, inline=False)
            if reply is None:
                return False
            wire, cell = reply.wire, self.stats.cell("tcp", reply.qtype, reply.rcode)
            self._store(gen.tcp, key, reply, cell)
        conn.sendall(len(wire).to_bytes(2, "big") + wire)
        self._observe(cell, t0)
        return True

    # -- HTTP: metrics, health, ready --------------------------------------------------------

    def metrics(self) -> tuple[int, str]:
        gen = self.gen
        return 200, self.stats.render(
            self.server_label, self.upstream_addr, len(gen.udp) + len(gen.tcp), gen.index.serial if gen.index else 0
        )

    def ready(self) -> tuple[int, str]:
        return (200, "OK") if self.gen.index is not None else (503, "state not loaded\n")

    def start(self) -> None:
        self.load()
        threading.Thread(target=self._watch, daemon=True, name="dns-watch").start()
        if self.udp is not None:
            threading.Thread(target=self.serve_udp, daemon=True, name="dns-udp").start()
        if self.tcp is not None:
            threading.Thread(target=self.serve_tcp, daemon=True, name="dns-tcp").start()


def _raise_needs_upstream(_: dns.message.Message) -> dns.message.Message | None:
    raise _NeedsUpstream


def _malloc_trim() -> None:
    """Hand the freed heap of the previous index back to the kernel (glibc keeps it otherwise)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emu.dns.server", description="kemu's cluster DNS server")
    p.add_argument("--state", required=True, help="the index file (emu.dns.records.write_state)")
    p.add_argument("--bind", default="0.0.0.0", help="address for DNS and HTTP (default: all)")
    p.add_argument("--udp-port", type=int, default=53)
    p.add_argument("--tcp-port", type=int, default=53)
    p.add_argument("--metrics-port", type=int, default=9153, help="0: none")
    p.add_argument("--health-port", type=int, default=8080, help="0: none")
    p.add_argument("--ready-port", type=int, default=8181, help="0: none")
    p.add_argument("--upstream", default="", help="IP:PORT for names outside our zones (default: NXDOMAIN)")
    p.add_argument("--ack", default="", help="file that gets the serial of each state loaded")
    p.add_argument("--cache-size", type=int, default=20000, help="cached answers per transport")
    p.add_argument("--reuse-port", action="store_true", help="SO_REUSEPORT (several servers on one port)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    # Before any port answers: a SIGTERM that comes as soon as one does (a pod deleted
    # right after it started) must stop the server cleanly, not kill it by default.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    srv = DnsServer(
        a.state,
        bind=a.bind,
        udp_port=a.udp_port,
        tcp_port=a.tcp_port,
        upstream=a.upstream,
        ack=a.ack,
        cache_size=a.cache_size,
        reuse_port=a.reuse_port,
    )
    https = []
    if a.metrics_port:
        https.append(serve_http(a.metrics_port, {"/metrics": srv.metrics}, a.bind))
    if a.health_port:
        https.append(serve_http(a.health_port, {"/health": lambda: (200, "OK")}, a.bind))
    if a.ready_port:
        https.append(serve_http(a.ready_port, {"/ready": srv.ready}, a.bind))
    signal.signal(signal.SIGHUP, lambda *_: srv.reload_now())
    srv.start()
    while not stop.wait(1.0) and not srv.stop.is_set():
        pass
    srv.stop.set()
    for h in https:
        h.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
