"""`kemu capture TARGET… [-i IF] [-w FILE] [-c N] [--duration S] [FILTER…]`: tcpdump in
several namespaces of a cluster at once, merged into one time-ordered stream.

TARGETs come first, then the BPF filter: `default/client` (a pod, NS/NAME), `client` (a
pod in -n's namespace), `deploy/web` (a pod it manages), `node/NAME`, `host/NAME`,
`switch` (the node network's bridge); `TARGET:IF` picks that target's interface. The
namespaces come from the cluster's record, as `kemu exec` finds them.

Without -w the packets are printed as tcpdump prints them, each line with its target: the
merged pcap stream goes through one `tcpdump -r -`, whose lines are matched back, in
order, to the packets fed in.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import IO

from emu.cli.argv import UsageError
from emu.cli.resources import resolve_pod
from emu.config import registry
from emu.daemon.client import pick_cluster
from emu.dataplane import names, netns
from emu.dataplane.network import SWITCH_BRIDGE
from emu.dataplane.ownership import Record
from emu.errors import NotFoundError, ValidationError
from emu.traffic.pcap import Header
from emu.traffic.tcpdump import Capture, FileSink, Options, Sink, Stats, Target, tcpdump_path

DEFAULT_IFACE = "eth0"
TEXT_WINDOW = 0.5  # live: packets come at once (--immediate-mode)
FILE_WINDOW = 1.5  # files: packets come in libpcap's blocks, up to 1 s late
# NS/NAME, KIND/NAME: a DNS label before the slash, so `net 10.0.0.0/8` stays filter.
SLASHED = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[^/\s]+$")
PACKET_LINE = re.compile(r"^(\d+)\.(\d+) (.*)$", re.S)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "words", nargs="+", metavar="TARGET|FILTER", help="targets (ns/pod, pod, node/N, host/N, switch[:IF]), then a BPF filter"
    )
    p.add_argument("-n", "--namespace", help="the namespace of bare pod names (default: default)")
    p.add_argument("-i", "--interface", help="interface in every target (default: eth0; br0 for switch; `any` for all)")
    p.add_argument("-w", "--write", metavar="FILE", help="write the merged pcap to FILE (- for stdout) instead of printing")
    p.add_argument("-c", "--count", type=int, default=0, help="stop after N packets in all (0: no limit)")
    p.add_argument("--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (0: at Ctrl-C)")
    p.add_argument("-s", "--snaplen", type=int, default=0, help="bytes kept of each packet (default: tcpdump's, 262144)")
    p.add_argument(
        "-B", "--buffer-size", type=int, default=16384, metavar="KIB", help="kernel capture buffer per target, KiB (default 16 MiB)"
    )


# --- targets -------------------------------------------------------------------------------


def _is_target_word(word: str, rec: Record, ns: str) -> bool:
    base = word.partition(":")[0]
    return base == "switch" or bool(SLASHED.match(base)) or f"{ns}/{base}" in rec.data["pods"]


def split_words(words: list[str], rec: Record, ns: str) -> tuple[list[str], list[str]]:
    """(targets, filter words): the first word is a target, and so is each next one that
    looks like one (switch, X/Y, a pod of `ns`); the filter starts at the first that doesn't."""
    i = 1
    while i < len(words) and _is_target_word(words[i], rec, ns):
        i += 1
    return words[:i], words[i:]


def _member(rec: Record, kind: str, name: str) -> str:
    found: dict[str, str] = rec.data["nodes" if kind == "node" else "hosts"]
    if name not in found:
        raise NotFoundError(f"{kind} {name!r} not found in cluster {rec.cluster} ({kind}s: {', '.join(sorted(found)) or 'none'})")
    return found[name]


def _pod(rec: Record, ns: str, name: str) -> Target:
    pod = rec.data["pods"].get(f"{ns}/{name}")
    if pod is None:
        raise NotFoundError(f'pod "{name}" not found in namespace {ns} (or not running)')
    return Target(f"{ns}/{name}", str(pod["netns"]), DEFAULT_IFACE)


def resolve_target(word: str, rec: Record, ns: str, iface: str | None) -> Target:
    base, colon, own_iface = word.partition(":")
    if colon and not own_iface:
        raise UsageError(f"target {word!r}: no interface after ':'")
    if base == "switch":
        sw = names.switch_ns(rec.cluster)
        if not netns.exists(sw):
            raise NotFoundError(f"the switch of cluster {rec.cluster} ({sw}) does not exist")
        t = Target("switch", sw, SWITCH_BRIDGE)
    elif "/" not in base:
        t = _pod(rec, ns, base)
    else:
        left, _, right = base.partition("/")
        if left in ("node", "host"):
            t = Target(base, _member(rec, left, right), DEFAULT_IFACE)
        elif f"{left}/{right}" in rec.data["pods"]:
            t = _pod(rec, left, right)  # NS/NAME: a namespace called like a kind still means its pod
        else:
            try:
                registry.resolve(left)
            except ValidationError:
                t = _pod(rec, left, right)  # NS/NAME of a pod that is not there: say so
            else:
                t = _pod(rec, ns, resolve_pod(rec.cluster, base, ns))  # pod/NAME, deploy/NAME
    return Target(t.label, t.netns, own_iface or iface or t.iface)


def resolve_targets(words: list[str], rec: Record, ns: str, iface: str | None) -> list[Target]:
    targets = [resolve_target(w, rec, ns, iface) for w in words]
    seen: set[tuple[str, str]] = set()
    for t in targets:
        if (t.netns, t.iface) in seen:
            raise UsageError(f"{t.label} ({t.iface}) is named twice")
        seen.add((t.netns, t.iface))
    return targets


# --- text output ---------------------------------------------------------------------------


class TextSink:
    """Packets as tcpdump prints them, each line after its time with its target's label."""

    def __init__(self, tcpdump: str, out: IO[str]) -> None:
        self.tcpdump, self.out = tcpdump, out
        self.labels: collections.deque[str] = collections.deque()
        self.width = 0
        self.broken = False

    def start(self, header: Header, labels: list[str]) -> None:
        self.names = labels
        self.width = max(len(x) for x in labels)
        self.proc = subprocess.Popen(
            [self.tcpdump, "-n", "-l", "-tt", "-r", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # "reading from file -, link-type …"
            process_group=0,  # a Ctrl-C is kemu's to handle: this one finishes what it was fed
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(header.encode())
        self.thread = threading.Thread(target=self._print, name="capture-text", daemon=True)
        self.thread.start()

    def write(self, source: int, ts: int, record: bytes) -> None:
        assert self.proc.stdin is not None
        self.labels.append(self.names[source])
        try:
            self.proc.stdin.write(record)
        except BrokenPipeError:
            self.broken = True

    def flush(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.broken = True

    def close(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait()
        self.thread.join()

    def _print(self) -> None:
        assert self.proc.stdout is not None
        pad = " " * (16 + self.width)
        try:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                m = PACKET_LINE.match(line)
                if m and self.labels:
                    when = time.strftime("%H:%M:%S", time.localtime(int(m.group(1))))
                    line = f"{when}.{m.group(2)[:6]:<6} {self.labels.popleft():<{self.width}} {m.group(3)}"
                else:
                    line = pad + line.lstrip()  # a continuation (-v output, hex)
                if not self.broken:
                    self.out.write(line + "\n")
                    self.out.flush()
        except BrokenPipeError:  # `kemu capture … | head`: stop, but keep the decoder flowing
            self.broken = True
            for _ in self.proc.stdout:
                pass


# --- the command ---------------------------------------------------------------------------


def cmd_capture(args: argparse.Namespace) -> int:
    if args.count < 0 or args.duration < 0 or args.snaplen < 0 or args.buffer_size < 0:
        raise UsageError("-c, --duration, -s and -B take numbers ≥ 0")
    rec = Record.load(pick_cluster(args.cluster))
    ns = args.namespace or "default"
    words, bpf = split_words(args.words, rec, ns)
    targets = resolve_targets(words, rec, ns, args.interface)
    tcpdump = tcpdump_path()
    options = Options(
        bpf=bpf,
        count=args.count,
        duration=args.duration,
        snaplen=args.snaplen,
        buffer_kib=args.buffer_size,
        immediate=not args.write,
        window=FILE_WINDOW if args.write else TEXT_WINDOW,
        direct=args.write if args.write and len(targets) == 1 else "",
    )
    cap = Capture(targets, options)
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        cap.stop()

    try:
        cap.start()
        sink: Sink | None = None if options.direct else FileSink(args.write) if args.write else TextSink(tcpdump, sys.stdout)
        for sig in old:
            signal.signal(sig, on_signal)
        where = f", writing {args.write}" if args.write and args.write != "-" else ""
        listening = ", ".join(f"{t.label} ({t.iface})" for t in targets)
        print(f"kemu capture: listening on {listening}{where}; Ctrl-C to stop", file=sys.stderr, flush=True)
        stats = cap.run(sink)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        cap.close()
    return _report(stats, cap.late, args.write)


def _report(stats: list[Stats], late: int, path: str | None) -> int:
    for s in stats:
        print(f"kemu capture: {s.line()}", file=sys.stderr)
    if late:
        print(f"kemu capture: {late} packets came later than the merge window and are out of order", file=sys.stderr)
    if path and path != "-":
        print(f"kemu capture: {sum(s.written for s in stats)} packets written to {os.path.abspath(path)}", file=sys.stderr)
    return 0 if all(s.captured is not None for s in stats) else 1
