"""A traced packet's walks, one per namespace and pass, put in the order the packet made
them (pure). The kernel reports each namespace's walks apart (a trace id each); every
router on the way decrements the TTL (RFC 791), so a later walk starts lower, a
namespace's own output comes before the next one's input, and where a bridge keeps the
TTL the walk that begins with the packet the last one ended with comes next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from emu.trace.nftrace import Step, TraceLine, steps

TRACE_TABLE = "kemu-trace"
PROXY_TABLE = "kemu-proxy"
HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
# The hooks of kemu's base chains that a reader can't guess from their names.
KNOWN_HOOKS = {
    (TRACE_TABLE, "pre"): "prerouting",
    (TRACE_TABLE, "out"): "output",
    (TRACE_TABLE, "input-last"): "input",
    (TRACE_TABLE, "forward-last"): "forward",
    (TRACE_TABLE, "postrouting-last"): "postrouting",
    (PROXY_TABLE, "filter-output-post-dnat"): "output",
}


@dataclass(frozen=True)
class Place:
    """A namespace the packet may cross, as the CLI names it."""

    netns: str
    ref: str  # "x/a", "node/n1", "host/h"
    kind: str  # pod | node | host
    node: str = ""  # a pod's node; a node's own name


@dataclass(frozen=True)
class Segment:
    """One packet's walk through one namespace."""

    place: Place
    steps: tuple[Step, ...]

    @property
    def ttl(self) -> int:
        first = self.steps[0].packet.get("ip ttl", "0") if self.steps else "0"
        return int(first) if first.isdigit() else 0

    @property
    def starts_in_output(self) -> bool:
        return bool(self.steps) and hook_of(self.steps[0].table, self.steps[0].chain) == "output"


def dport(p: Mapping[str, str]) -> int:
    v = p.get("tcp dport") or p.get("udp dport") or "0"
    return int(v) if v.isdigit() else 0


def proto(p: Mapping[str, str]) -> str:
    return "tcp" if "tcp dport" in p else "udp" if "udp dport" in p else "icmp"


def to(p: Mapping[str, str]) -> str:
    d = p.get("ip daddr", "?")
    return f"{d}:{dport(p)}" if proto(p) != "icmp" else d


def hook_of(table: str, chain: str) -> str:
    if (table, chain) in KNOWN_HOOKS:
        return KNOWN_HOOKS[(table, chain)]
    low = chain.lower()
    for h in HOOKS:  # kemu-proxy's nat-prerouting, iptables' PREROUTING, kemu-policy's forward
        if low == h or low.endswith("-" + h):
            return h
    return ""


def segments(seen: Mapping[str, list[TraceLine]], places: Mapping[str, Place], src: str) -> list[Segment]:
    """The probe's walks through every namespace, in the order the packet made them.
    `seen` is in path order as far as kemu knows it (source, nodes, destinations): it
    breaks ties between walks that no router separated (a bridged hop keeps the TTL)."""
    walks: list[tuple[int, Segment]] = []
    for i, (ns, lines) in enumerate(seen.items()):
        walks += [(i, Segment(places[ns], tuple(steps(walk)))) for walk in _walks(lines)]
    # Only the probe itself: a TCP probe's socket may send more with the same source port
    # (a retransmitted SYN, the closing RST), each with its own IP id; NAT keeps the id.
    first = next((s for i, s in walks if s.place.netns == src and s.starts_in_output), None)
    ident = first.steps[0].packet.get("ip id") if first is not None and first.steps else None
    out = [(i, s) for i, s in walks if s.steps and (ident is None or s.steps[0].packet.get("ip id") == ident)]
    out.sort(key=lambda x: (-x[1].ttl, not x[1].starts_in_output, x[0]))
    return _chained([s for _, s in out])


def _sighting(p: Mapping[str, str]) -> tuple[str | None, ...]:
    return (p.get("ip saddr"), p.get("ip daddr"), p.get("ip ttl"), str(dport(p)))


def _chained(walks: list[Segment]) -> list[Segment]:
    """Each walk followed by the one that begins with the packet it ended with (a bridge
    keeps the TTL, so a pod's packet reaching itself again through its Service ties with
    the node's walk on TTL alone); where none does, the next by TTL."""
    out: list[Segment] = []
    left = list(walks)
    while left:
        nxt = left[0]
        if out:
            last = _sighting(out[-1].steps[-1].packet)
            nxt = next((w for w in left if _sighting(w.steps[0].packet) == last), nxt)
        out.append(nxt)
        left.remove(nxt)
    return out


def _walks(lines: list[TraceLine]) -> list[list[TraceLine]]:
    """A namespace's lines, one list per pass of a packet through it. The trace id alone
    does not tell passes apart: a veth hands the same skb on, so a pod that reaches itself
    through its Service sees its packet leave and come back under one id. A pass starts
    where kemu-trace's first chains (pre, out) report a packet."""
    current: dict[str, list[TraceLine]] = {}
    out: list[list[TraceLine]] = []
    for t in lines:
        if t.id not in current or (t.kind == "packet" and t.table == TRACE_TABLE and t.chain in ("pre", "out")):
            current[t.id] = []
            out.append(current[t.id])
        current[t.id].append(t)
    return out
