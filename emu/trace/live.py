"""One traced packet through real namespaces: mark it, watch, send it, collect.

In each namespace the packet may cross, a `table ip kemu-trace` marks it at the very
start of prerouting and output (priority -350, before conntrack's -200) with `meta
nftrace set 1`, matched on what the translations along the way leave alone: the
protocol and a DSCP value chosen for this probe (the sender sets it with IP_TOS; NAT
keeps it, while the service proxy's `masquerade fully-random` changes the source port).
The kernel clears nf_trace when a packet enters another namespace (skb_scrub_packet), so
each namespace marks its own copy. `nft monitor trace` in each namespace reports the
walk (emu/trace/nftrace.py reads it); the reader keeps the walks with the probe's IP id.

A monitor subscribes asynchronously; a packet sent before would go unseen. So each
namespace's mark table also marks a canary (UDP from CANARY_PORT to 127.0.0.1) that
kemu sends there once its monitor runs: its first trace line says the monitor listens.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field

from emu.dataplane import netns
from emu.dataplane.run import run
from emu.errors import KemuError
from emu.netfilter.kernel import drop_table
from emu.netfilter.render import script
from emu.netfilter.ruleset import Chain
from emu.netfilter.transaction import TableDef, replace_table, rule
from emu.trace.nftrace import TraceLine, parse_line

log = logging.getLogger(__name__)

TABLE = "kemu-trace"
CANARY_PORT = 9  # discard: the canary goes to 127.0.0.1:9 and nowhere else
PRIORITY = -350  # before raw (-300) and conntrack (-200): the first thing the packet meets
LAST = 10000  # after filter (0), NAT (100) and anything else kemu or iptables installs


@dataclass(frozen=True)
class Probe:
    """The packet: protocol, destination, and the source port (ICMP: the echo id) that
    marks it."""

    proto: str  # tcp | udp | icmp
    dst: str
    dport: int
    sport: int
    dscp: int = 0  # 0: match the source port only (the packet is not translated on the way)


def mark_table(p: Probe) -> TableDef:
    match: tuple[str, ...]
    if p.proto == "icmp":
        # An echo reply copies the request's TOS (icmp_reply): match the request only.
        match = ("icmp type echo-request", *(("ip dscp", str(p.dscp)) if p.dscp else ("icmp id", str(p.sport))))
    elif p.dscp:
        match = ("ip dscp", str(p.dscp), "meta l4proto", p.proto)
    else:
        match = (p.proto, "sport", str(p.sport))
    canary = rule("ip daddr 127.0.0.1 udp sport", str(CANARY_PORT), "meta nftrace set 1")
    marked = rule(*match, "meta nftrace set 1")
    # Chains that come last in their hook show the packet as every other chain left it:
    # translated, routed, and accepted (delivered, at input).
    last = tuple(
        Chain(name, (), "filter", hook, LAST, "accept")
        for name, hook in (("input-last", "input"), ("forward-last", "forward"), ("postrouting-last", "postrouting"))
    )
    return TableDef(
        "ip",
        TABLE,
        chains=(
            Chain("pre", (marked,), "filter", "prerouting", PRIORITY, "accept"),
            Chain("out", (marked, canary), "filter", "output", PRIORITY, "accept"),
            *last,
        ),
        comment="kemu trace: marks one probe packet",
    )


@dataclass
class _Watch:
    netns: str
    proc: subprocess.Popen[bytes]
    buf: bytes = b""
    ready: bool = False
    canaries: set[str] = field(default_factory=set)  # trace ids of canary packets


class LiveTrace:
    """Mark and watch in `namespaces` (a context manager: everything is undone on exit,
    also on error); `send()` the probe from `src`; `lines()` what each namespace saw."""

    def __init__(self, namespaces: list[str], probe: Probe) -> None:
        self.namespaces = list(dict.fromkeys(namespaces))
        self.probe = probe
        self._watches: list[_Watch] = []
        self._marked: list[str] = []
        self._sel = selectors.DefaultSelector()
        self.seen: dict[str, list[TraceLine]] = {n: [] for n in self.namespaces}
        self.decided = False  # a marked packet was dropped or delivered
        self._answered = False  # the probe's socket became readable or writable

    def __enter__(self) -> LiveTrace:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, timeout: float = 5.0) -> None:
        text = script(replace_table(mark_table(self.probe)))
        for ns in self.namespaces:
            run(["nft", "-f", "-"], netns_name=ns, input=text)
            self._marked.append(ns)
            proc = subprocess.Popen(
                ["nsenter", f"--net={netns.path(ns)}", "--", "nft", "monitor", "trace"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            w = _Watch(ns, proc)
            self._watches.append(w)
            assert proc.stdout is not None
            self._sel.register(proc.stdout, selectors.EVENT_READ, w)
        deadline = time.monotonic() + timeout
        while not all(w.ready for w in self._watches):
            if time.monotonic() > deadline:
                late = [w.netns for w in self._watches if not w.ready]
                raise KemuError(f"trace: nft monitor did not start in {', '.join(late)}")
            for w in self._watches:
                if not w.ready:
                    _canary(w.netns)
            self._read(0.05)

    def _read(self, timeout: float, probe: socket.socket | None = None) -> bool:
        """Read what the monitors printed (and notice the probe's socket); whether
        anything came."""
        got = False
        for key, _ in self._sel.select(timeout):
            if key.data is None:  # the probe's socket: its answer (or error) is there
                self._answered = True
                continue
            w: _Watch = key.data
            chunk = key.fileobj.read1(65536)  # type: ignore[union-attr]  # a BufferedReader
            if not chunk:
                self._sel.unregister(key.fileobj)
                continue
            got = True
            w.buf += chunk
            *lines, w.buf = w.buf.split(b"\n")
            for raw in lines:
                t = parse_line(raw.decode(errors="replace"))
                if t is None:
                    continue
                if t.kind == "packet" and _is_canary(t):
                    w.canaries.add(t.id)
                    w.ready = True
                if t.id in w.canaries:
                    continue
                self.seen[w.netns].append(t)
                # The kernel has decided: a drop (a reject is one too), or a delivery.
                if t.verdict.startswith("drop") or (t.kind == "packet" and t.table == TABLE and t.chain == "input-last"):
                    self.decided = True
        return got

    def send(self, src: str, timeout: float = 1.0, settle: float = 0.15) -> str:
        """Send the probe from namespace `src` and watch until the sender has its answer
        or the kernel has decided and gone quiet (`settle` s), at most `timeout` s. What
        the sender saw: "connected", "refused", "unreachable", "no answer" (TCP); "sent"
        (UDP); "reply" or "no answer" (ICMP)."""
        p = self.probe
        kind = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}.get(p.proto, socket.SOCK_RAW)
        with netns.entered(src):
            # Raw ICMP: a new namespace allows no ICMP datagram sockets (ping_group_range "1 0").
            s = socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP if kind == socket.SOCK_RAW else 0)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if p.dscp:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, p.dscp << 2)
            s.setblocking(False)
            if p.proto == "tcp":
                s.bind(("0.0.0.0", p.sport))
                # The SYN is the traced packet; a RST ends the connection without TIME_WAIT.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                err = s.connect_ex((p.dst, p.dport))
                if err not in (0, errno.EINPROGRESS):
                    return _tcp_said(err)
                self._sel.register(s, selectors.EVENT_WRITE, None)
            else:
                try:
                    if p.proto == "udp":
                        s.bind(("0.0.0.0", p.sport))
                        s.sendto(b"kemu trace", (p.dst, p.dport))
                    else:
                        s.sendto(echo_request(p.sport, 1), (p.dst, 0))
                except OSError as e:  # no route from the source: the kernel refused to send it
                    return _tcp_said(e.errno or 0)
                if p.proto == "icmp":
                    self._sel.register(s, selectors.EVENT_READ, None)
            said = self._wait(s, timeout, settle)
            return said
        finally:
            if p.proto != "udp":
                try:
                    self._sel.unregister(s)
                except (KeyError, ValueError):
                    pass
            s.close()

    def _wait(self, s: socket.socket, timeout: float, settle: float) -> str:
        end = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while (now := time.monotonic()) < end:
            self._answered = False
            if self._read(0.02):
                quiet_since = time.monotonic()
            if self._answered:
                said = self._answer(s)
                if said:
                    return said
            if self.decided and now - quiet_since >= settle:
                break
        return "sent" if self.probe.proto == "udp" else "no answer"

    def _answer(self, s: socket.socket) -> str:
        """The probe socket's answer, "" while there is none for us yet."""
        if self.probe.proto == "tcp":
            return _tcp_said(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
        try:
            while True:
                data = s.recv(1500)
                ihl = (data[0] & 0x0F) * 4
                # An echo reply with our id (a raw socket sees every ICMP packet).
                if data[ihl] == 0 and struct.unpack("!H", data[ihl + 4 : ihl + 6])[0] == self.probe.sport:
                    return "reply"
        except BlockingIOError:
            return ""

    def collect(self, quiet: float = 0.1, deadline: float = 1.0) -> dict[str, list[TraceLine]]:
        """Wait until the monitors have been quiet for `quiet` seconds (or `deadline`)."""
        end = time.monotonic() + deadline
        last = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet:
            if self._read(0.02):
                last = time.monotonic()
        return self.seen

    def close(self) -> None:
        for w in self._watches:
            if w.proc.poll() is None:
                w.proc.terminate()
        for w in self._watches:
            try:
                w.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            if w.proc.stdout is not None:
                w.proc.stdout.close()
        self._watches.clear()
        self._sel.close()
        for ns in self._marked:
            run(["nft", "-f", "-"], netns_name=ns, input=drop_table("ip", TABLE), check=False)
        self._marked.clear()


def echo_request(ident: int, seq: int, payload: bytes = b"kemu trace") -> bytes:
    """An ICMP echo request with its checksum (RFC 792)."""
    head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    data = head + payload
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return struct.pack("!BBHHH", 8, 0, ~total & 0xFFFF, ident, seq) + payload


def _tcp_said(err: int) -> str:
    if err == 0:
        return "connected"
    if err == errno.ECONNREFUSED:
        return "refused"
    if err in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return f"error: {os.strerror(err)}"


def _canary(ns: str) -> None:
    with netns.entered(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", CANARY_PORT))
        s.sendto(b"", ("127.0.0.1", CANARY_PORT))
    except OSError as e:
        log.debug("trace canary in %s: %s", ns, e)
    finally:
        s.close()


def _is_canary(t: TraceLine) -> bool:
    return t.fields.get("ip daddr") == "127.0.0.1" and t.fields.get("udp sport") == str(CANARY_PORT)
