"""Reading `nft monitor trace`: what nftables did with a packet marked `meta nftrace set 1`.

The kernel reports each traced packet's walk through every base chain it enters
(net/netfilter/nf_tables_trace.c; printed by nft's netlink.c trace_print_*), one line each:

    trace id 17d29abf ip kemu-trace pre packet: iif "trb" … ip saddr … tcp dport 80 …
    trace id 17d29abf ip demo input rule tcp dport 80 … reject … (verdict drop)
    trace id 17d29abf ip filter INPUT policy accept
    trace id 17d29abf ip nat-demo pre verdict continue

The id is the packet's (its skb) within one namespace: marking is per namespace, as the
kernel clears nf_trace when a packet crosses into another (skb_scrub_packet). iptables-nft
rules appear in nft's spelling, so both proxy backends read the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_LINE = re.compile(r"^trace id (?P<id>[0-9a-f]+) (?P<family>\S+) (?P<table>\S+) (?P<chain>\S+) (?P<rest>.*)$")
_VERDICT = re.compile(r"^(?P<rule>.*?)\s*\(verdict (?P<verdict>[^)]*)\)\s*$")
_COMMENT = re.compile(r'\s+comment "(?P<comment>[^"]*)"')
# The packet fields a trace line carries that a reader of kemu's trace needs.
_FIELDS = (
    re.compile(r'\b(?P<k>iif|oif) "(?P<v>[^"]+)"'),
    re.compile(r"\b(?P<k>ip (?:saddr|daddr|protocol|ttl|id)) (?P<v>\S+)"),
    re.compile(r"\b(?P<k>(?:tcp|udp) (?:sport|dport)) (?P<v>\d+)"),
    re.compile(r"\b(?P<k>tcp flags) == (?P<v>\S+)"),
    re.compile(r"\b(?P<k>icmp (?:type|id|sequence)) (?P<v>\S+)"),
    re.compile(r"\b(?P<k>meta mark|ct mark) (?P<v>0x[0-9a-f]+)"),
)


@dataclass(frozen=True)
class TraceLine:
    id: str
    family: str
    table: str
    chain: str
    kind: str  # packet | rule | policy | verdict
    text: str = ""  # rule: its statements (without comment and verdict); packet: as printed
    verdict: str = ""  # rule: continue, accept, drop, jump X, goto X, return; policy/verdict: the word
    comment: str = ""
    fields: dict[str, str] = field(default_factory=dict, compare=False)  # packet lines: "ip daddr" → value

    @property
    def decides(self) -> bool:
        """Whether this line ends the packet's walk of the hook (accept/drop, or a policy)."""
        return self.kind == "policy" or (
            self.kind in ("rule", "verdict") and self.verdict.split(" ")[0] in ("accept", "drop", "queue", "stolen")
        )


def parse_line(line: str) -> TraceLine | None:
    """One line of `nft monitor trace`; None for anything else (nft's own chatter)."""
    m = _LINE.match(line.strip())
    if m is None:
        return None
    head = (m["id"], m["family"], m["table"], m["chain"])
    rest = m["rest"].strip()
    if rest.startswith("packet:"):
        text = rest.removeprefix("packet:").strip()
        fields = {f["k"]: f["v"] for rx in _FIELDS for f in rx.finditer(text)}
        return TraceLine(*head, kind="packet", text=text, fields=fields)
    if rest.startswith("policy "):
        return TraceLine(*head, kind="policy", verdict=rest.removeprefix("policy ").strip())
    if rest.startswith("verdict "):
        return TraceLine(*head, kind="verdict", verdict=rest.removeprefix("verdict ").strip())
    if rest.startswith("rule "):
        body = rest.removeprefix("rule ")
        v = _VERDICT.match(body)
        rule, verdict = (v["rule"], v["verdict"].strip()) if v else (body, "")
        c = _COMMENT.search(rule)
        comment = c["comment"] if c else ""
        if c:
            rule = rule[: c.start()] + rule[c.end() :]
        return TraceLine(*head, kind="rule", text=rule.strip(), verdict=verdict, comment=comment)
    return TraceLine(*head, kind="unknown", text=rest)


def parse(lines: Iterable[str]) -> dict[str, list[TraceLine]]:
    """The lines of each traced packet, by trace id, in the order the kernel reported them."""
    out: dict[str, list[TraceLine]] = {}
    for raw in lines:
        t = parse_line(raw)
        if t is not None:
            out.setdefault(t.id, []).append(t)
    return out


@dataclass(frozen=True)
class Step:
    """What one base chain (a table's hook) did with the packet: the rules that matched
    with a verdict that moved it (a jump, a goto, a verdict map's choice, the final word)."""

    table: str
    chain: str  # the base chain entered
    packet: dict[str, str]  # the packet as that chain saw it
    matched: tuple[TraceLine, ...]  # rule lines, in order (`continue`s left out)
    verdict: str  # accept | drop | … ("" if the trace ended inside it)


def steps(trace: list[TraceLine]) -> list[Step]:
    """A packet's walk, one Step per base chain it entered, in order."""
    out: list[Step] = []
    table = chain = ""
    packet: dict[str, str] = {}
    matched: list[TraceLine] = []
    for t in trace:
        if t.kind == "packet":
            if table:
                out.append(Step(table, chain, packet, tuple(matched), ""))
            table, chain, packet, matched = t.table, t.chain, t.fields, []
            continue
        if t.kind == "rule" and t.verdict != "continue":
            matched.append(t)
        if t.decides or (t.kind == "verdict" and t.verdict == "continue" and t.chain == chain):
            out.append(Step(table or t.table, chain or t.chain, packet, tuple(matched), t.verdict))
            table = chain = ""
            packet, matched = {}, []
    if table:
        out.append(Step(table, chain, packet, tuple(matched), ""))
    return out
