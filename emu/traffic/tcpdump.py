"""Captures in several network namespaces at once: one tcpdump per target, merged.

Each target gets `nsenter --net=/run/netns/NS -- tcpdump -i IF -U -w -` (as
emu.dataplane.run enters namespaces); one loop reads every pipe with a selector, parses
the pcap records (emu.traffic.pcap) and hands them, in timestamp order, to a sink. tcpdump
says on stderr when it listens (with the link type and snaplen, which make the output's
header) and, when stopped, how many packets it captured and the kernel dropped.

The tcpdumps run in a process group of their own, so a Ctrl-C at the terminal reaches
kemu only: kemu stops them one by one with SIGINT and reads what they flush. They also
get SIGTERM should kemu die without that (PR_SET_PDEATHSIG; `-Z root` keeps tcpdump from
changing user, which would clear it).
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Protocol

from emu.dataplane import netns
from emu.errors import KemuError
from emu.traffic.pcap import LINKTYPES, Header, Merger, Reader, convert

log = logging.getLogger(__name__)

LISTENING = re.compile(r"listening on (\S+), link-type (\S+) .*snapshot length (\d+)")
STAT = re.compile(r"^(\d+) packets? (captured|received by filter|dropped by kernel)", re.M)
PR_SET_PDEATHSIG = 1
F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20  # room for a burst while the merge is busy (the default is 64 KiB)
READ_SIZE = 1 << 20
STOP_GRACE = 5.0
LINGER = 1.2  # tcpdump's packet buffer timeout (1 s), and a margin


class CaptureError(KemuError):
    """A tcpdump would not start (a bad filter or interface: bad input, exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Target:
    label: str  # as the user named it: default/client, node/node-1, switch
    netns: str
    iface: str


@dataclass(frozen=True)
class Options:
    bpf: list[str] = field(default_factory=list)
    count: int = 0  # total packets over all targets (0: no limit)
    duration: float = 0.0  # seconds (0: until stopped)
    snaplen: int = 0  # bytes per packet kept (0: tcpdump's default, 262144)
    buffer_kib: int = 0  # the kernel's capture buffer per target (tcpdump -B; 0: its default)
    # Live (text) output wants each packet at once: --immediate-mode, a short merge window.
    # A file wants no drops: libpcap's blocks (TPACKET_V3) cost a fraction of a wakeup per
    # packet but hand packets over up to tcpdump's 1 s timeout late, so the window is longer.
    immediate: bool = True
    window: float = 0.5  # seconds a packet may wait for a slower source
    # One target and a file: tcpdump writes it itself ("-": kemu's stdout), nothing to
    # merge, and no copy through kemu (which, on a busy machine, costs drops).
    direct: str = ""


@dataclass
class Stats:
    target: Target
    written: int = 0
    captured: int | None = None
    received: int | None = None
    dropped: int | None = None
    error: str = ""

    def line(self) -> str:
        head = f"{self.target.label} ({self.target.iface}): {self.written} packets written"
        if self.captured is None:
            return head + (f"; tcpdump: {self.error}" if self.error else "; tcpdump gave no counts")
        return f"{head}, {self.captured} captured, {self.dropped} dropped by kernel"


class Sink(Protocol):
    broken: bool  # the reader went away (`| head`): stop capturing

    def start(self, header: Header, labels: list[str]) -> None: ...
    def write(self, source: int, ts: int, record: bytes) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class FileSink:
    """The merged stream as a pcap file (or stdout's file descriptor)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.broken = False
        self._f = open(1, "wb", closefd=False) if path == "-" else open(path, "wb")

    def start(self, header: Header, labels: list[str]) -> None:
        self._f.write(header.encode())
        self._f.flush()

    def write(self, source: int, ts: int, record: bytes) -> None:
        if not self.broken:
            try:
                self._f.write(record)
            except BrokenPipeError:
                self.broken = True

    def flush(self) -> None:
        try:
            self._f.flush()  # `-w - | wireshark -k -i -` shows packets as they come
        except BrokenPipeError:
            self.broken = True

    def close(self) -> None:
        try:
            self._f.close()
        except BrokenPipeError:
            pass


class NullSink:
    """Where packets go when tcpdump writes the file itself: nowhere."""

    broken = False

    def start(self, header: Header, labels: list[str]) -> None:
        pass

    def write(self, source: int, ts: int, record: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def tcpdump_path() -> str:
    path = shutil.which("tcpdump")
    if path is None:
        raise KemuError("tcpdump not found: install it (apt-get install tcpdump, or `make setup`)")
    return path


def tcpdump_argv(tcpdump: str, t: Target, o: Options) -> list[str]:
    out = o.direct or "-"
    argv = ["nsenter", f"--net={netns.path(t.netns)}", "--", tcpdump, "-Z", "root", "-i", t.iface, "-n", "-U", "-w", out]
    if o.immediate:
        argv.append("--immediate-mode")
    if o.count:
        argv += ["-c", str(o.count)]  # no target can contribute more than the total
    if o.snaplen:
        argv += ["-s", str(o.snaplen)]
    if o.buffer_kib:
        argv += ["-B", str(o.buffer_kib)]
    return argv + o.bpf


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def tcpdump_message(stderr: str) -> str:
    """tcpdump's own words for why it stopped: its first `tcpdump: …` line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    said = [ln.removeprefix("tcpdump: ") for ln in lines if ln.startswith("tcpdump: ") and "listening on" not in ln]
    return (said or lines or ["no message"])[0]


def parse_stats(stderr: str) -> dict[str, int]:
    return {kind: int(n) for n, kind in STAT.findall(stderr)}


class _Source:
    def __init__(self, index: int, target: Target, proc: subprocess.Popen[bytes]) -> None:
        self.index, self.target, self.proc = index, target, proc
        self.reader = Reader()
        self.err = b""
        self.out_open = True
        self.err_open = True
        self.listening: re.Match[str] | None = None
        self.stats = Stats(target)


class Capture:
    """Start with start(); run() until the count, the duration, EOF of every source or
    `stop()`; stats after. Always call close() (it ends whatever still runs)."""

    def __init__(self, targets: list[Target], options: Options) -> None:
        self.targets, self.o = targets, options
        self.sources: list[_Source] = []
        self.sel = selectors.DefaultSelector()
        self.header: Header | None = None
        self.merger = Merger(len(targets), options.window)
        self._stops = 0
        self.late = 0

    # --- starting ---------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Header:
        tcpdump = tcpdump_path()
        if self.o.direct and len(self.targets) != 1:
            raise ValueError("a direct file takes one target")
        pgid = 0
        for i, t in enumerate(self.targets):
            argv = tcpdump_argv(tcpdump, t, self.o)
            log.debug("capture %s: %s", t.label, " ".join(argv))
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=(None if self.o.direct == "-" else subprocess.DEVNULL) if self.o.direct else subprocess.PIPE,
                stderr=subprocess.PIPE,
                process_group=pgid,
                preexec_fn=_die_with_parent,  # no threads yet when the tcpdumps start: safe
            )
            pgid = pgid or proc.pid
            src = _Source(i, t, proc)
            self.sources.append(src)
            if self.o.direct:
                src.out_open = False
                self.merger.close(i)
            for f, what in ((proc.stdout, "out"), (proc.stderr, "err")):
                if f is None:
                    continue
                os.set_blocking(f.fileno(), False)
                if what == "out":
                    try:
                        fcntl.fcntl(f.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
                    except OSError:  # above /proc/sys/fs/pipe-max-size: keep the default
                        pass
                self.sel.register(f.fileno(), selectors.EVENT_READ, (src, what))
        deadline = time.monotonic() + timeout
        while not all(s.listening for s in self.sources):
            # Settled when each has started or exited; then the first failure in the order
            # the targets were given (not whichever exited first: the same words each run).
            if all(s.listening or not s.err_open for s in self.sources):
                failed = next(s for s in self.sources if not s.listening)
                raise CaptureError(f"tcpdump in {failed.target.label}: {tcpdump_message(failed.err.decode(errors='replace'))}")
            if time.monotonic() > deadline:
                slow = [s.target.label for s in self.sources if not s.listening]
                raise KemuError(f"tcpdump did not start within {timeout:.0f}s in {', '.join(slow)}")
            self._poll(0.1, started=False)
        self.header = self._header()
        return self.header

    def _header(self) -> Header:
        kinds = {}
        for s in self.sources:
            assert s.listening is not None
            kinds[s.target.label] = (s.listening.group(2), int(s.listening.group(3)))
        types = {k for k, _ in kinds.values()}
        if len(types) > 1:
            said = ", ".join(f"{label} is {k}" for label, (k, _) in kinds.items())
            raise CaptureError(f"the interfaces' link types differ ({said}): use interfaces of one kind (-i)")
        (name,) = types
        if name not in LINKTYPES:
            raise CaptureError(f"link type {name} is not supported (only {', '.join(LINKTYPES)})")
        return Header(LINKTYPES[name], max(n for _, n in kinds.values()))

    # --- running ----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end (a signal handler may call it; twice: without lingering)."""
        self._stops += 1

    def run(self, sink: Sink | None) -> list[Stats]:
        """Merge into `sink` (None: a direct file) until done; the stats of each target."""
        assert self.header is not None
        o, written = self.o, 0
        sink = sink or NullSink()
        sink.start(self.header, [t.label for t in self.targets])
        deadline = time.monotonic() + o.duration if o.duration else None
        # Asked to stop (Ctrl-C, --duration) at `end_ts`: without --immediate-mode packets
        # before it may still sit in a kernel block for up to tcpdump's 1 s timeout, and a
        # tcpdump stopped now would lose them. So SIGINT comes LINGER later, and what was
        # captured after end_ts is left out.
        end_ts: int | None = None
        sigint_at: float | None = None
        stopping_since: float | None = None

        def emit(ready: list[tuple[int, int, bytes]]) -> bool:
            nonlocal written
            for source, ts, raw in ready:
                if (o.count and written >= o.count) or (end_ts is not None and ts > end_ts):
                    break
                src = self.sources[source]
                assert src.reader.header is not None and self.header is not None
                sink.write(source, ts, convert(raw, src.reader.header, self.header))
                src.stats.written += 1
                written += 1
            if ready:
                sink.flush()
            return bool(o.count and written >= o.count)

        while any(s.out_open or s.err_open for s in self.sources):
            self._poll(0.05)
            done = emit(self.merger.pop_ready(time.time()))
            now = time.monotonic()
            if sigint_at is None and (done or sink.broken):
                sigint_at = now  # nothing more is wanted
            elif end_ts is None and (self._stops or (deadline is not None and now >= deadline)):
                end_ts = time.time_ns()
                later = now if o.immediate else now + LINGER
                sigint_at = later if sigint_at is None else min(sigint_at, later)
            if self._stops > 1:
                sigint_at = now  # a second Ctrl-C: at once
            if stopping_since is None and sigint_at is not None and now >= sigint_at:
                stopping_since = now
                self._signal(signal.SIGINT)
            elif stopping_since is not None and now - stopping_since > STOP_GRACE:
                log.warning("tcpdump did not stop within %.0fs of SIGINT: killed", STOP_GRACE)
                self._signal(signal.SIGKILL)
                break
        emit(self.merger.drain())
        sink.close()
        self.late = self.merger.late
        return self._finish()

    def _poll(self, timeout: float, started: bool = True) -> None:
        for key, _ in self.sel.select(timeout):
            src, what = key.data
            try:
                data = os.read(key.fd, READ_SIZE)
            except BlockingIOError:
                continue
            if not data:
                self.sel.unregister(key.fd)
                if what == "out":
                    src.out_open = False
                    self.merger.close(src.index)
                else:
                    src.err_open = False
            elif what == "out":
                self.merger.push(src.index, src.reader.feed(data))
            else:
                src.err += data
                if src.listening is None:
                    src.listening = LISTENING.search(src.err.decode(errors="replace"))

    def _signal(self, sig: int) -> None:
        for s in self.sources:
            if s.proc.poll() is None:
                try:
                    s.proc.send_signal(sig)
                except ProcessLookupError:
                    pass

    def _finish(self) -> list[Stats]:
        for s in self.sources:
            try:
                s.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()
            text = s.err.decode(errors="replace")
            st = parse_stats(text)
            s.stats.captured = st.get("captured")
            if self.o.direct:
                s.stats.written = s.stats.captured or 0
            s.stats.received = st.get("received by filter")
            s.stats.dropped = st.get("dropped by kernel")
            if s.stats.captured is None:
                s.stats.error = tcpdump_message(text) if text.strip() else f"exited {s.proc.returncode}"
            if s.reader.pending():
                log.warning("%s: the last %d bytes were a cut-off record", s.target.label, s.reader.pending())
        return [s.stats for s in self.sources]

    def close(self) -> None:
        """End every tcpdump still running (on any path out, errors included)."""
        self._signal(signal.SIGKILL)
        for s in self.sources:
            s.proc.wait()
            for f in (s.proc.stdout, s.proc.stderr):
                if f is not None:
                    f.close()
        self.sel.close()
