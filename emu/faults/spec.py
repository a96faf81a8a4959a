"""Faults a user puts on the network, as words (pure): what `kemu fault …` and the Python
API's `cluster.fault(…)` accept, checked before anything touches the kernel.

    link TARGET down|up               a pod's, node's or host's link (Mininet's `link`)
    partition A[,B…] -- C[,D…]        nodes and hosts in two groups that can't reach each other
    loss TARGET PERCENT               that share of frames lost, both directions
    rate TARGET RATE                  each direction shaped to RATE (tc units: 10mbit, 1gbit, 500kbit)
    delay TARGET MS [JITTER]          needs the kernel's sch_netem

TARGET: `ns/pod`, `node/NAME` or `host/NAME`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emu.errors import Problem, ValidationError

KINDS = ("link", "partition", "loss", "rate", "delay")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps)$", re.IGNORECASE)
_BITS = {
    "bit": 1,
    "kbit": 10**3,
    "mbit": 10**6,
    "gbit": 10**9,
    "tbit": 10**12,
    "bps": 8,
    "kbps": 8 * 10**3,
    "mbps": 8 * 10**6,
    "gbps": 8 * 10**9,
}


@dataclass(frozen=True)
class Fault:
    kind: str
    targets: tuple[str, ...]  # one, or partition's first group
    value: str = ""  # link: down; loss: percent; rate: as given; delay: "MS" or "MS JITTER"
    others: tuple[str, ...] = ()  # partition's second group

    @property
    def key(self) -> str:
        """What a later fault of the same kind on the same target replaces."""
        if self.kind == "partition":
            a, b = sorted((",".join(sorted(self.targets)), ",".join(sorted(self.others))))
            return f"partition {a} -- {b}"
        return f"{self.kind} {self.targets[0]}"

    def __str__(self) -> str:
        if self.kind == "partition":
            return f"partition {','.join(self.targets)} -- {','.join(self.others)}"
        return f"{self.kind} {self.targets[0]} {self.value}".rstrip()


def rate_bits(text: str) -> int:
    """tc's rate units, in bits per second (kbit = 1000 bit; kbps = 1000 bytes)."""
    m = _RATE.match(text.strip())
    if m is None:
        raise ValueError(text)
    return int(float(m[1]) * _BITS[m[2].lower()])


def _target_ok(word: str) -> bool:
    kind, slash, name = word.partition("/")
    return bool(slash and kind and name and "/" not in name)


def parse(kind: str, words: list[str], others: list[str] | None = None) -> Fault:
    """A fault from the command line's words; every problem at once (exit 2)."""
    where = f"kemu fault {kind}"
    problems: list[Problem] = []

    def bad(what: str, msg: str) -> None:
        problems.append(Problem("<command line>", what, msg))

    if kind not in KINDS:
        raise ValidationError([Problem("<command line>", kind, f"unknown fault; one of {', '.join(KINDS)}")])
    if kind == "partition":
        groups = [[w for word in words for w in word.split(",") if w], [w for word in others or [] for w in word.split(",") if w]]
        if not groups[0] or not groups[1]:
            bad(where, "give two groups: partition A[,B…] -- C[,D…] (nodes or hosts)")
        for w in (*groups[0], *groups[1]):
            if not w.startswith(("node/", "host/")) or not _target_ok(w):
                bad(w, "a partition splits nodes and hosts: node/NAME or host/NAME")
        if set(groups[0]) & set(groups[1]):
            bad(where, f"in both groups: {', '.join(sorted(set(groups[0]) & set(groups[1])))}")
        if problems:
            raise ValidationError(problems)
        return Fault(kind, tuple(groups[0]), "", tuple(groups[1]))
    if others:
        bad(where, f"only partition takes a second group after --, not {kind}")
    want = {"link": 2, "loss": 2, "rate": 2, "delay": (2, 3)}[kind]
    if len(words) not in (want if isinstance(want, tuple) else (want,)):
        usage = {"link": "TARGET down|up", "loss": "TARGET PERCENT", "rate": "TARGET RATE", "delay": "TARGET MS [JITTER]"}[kind]
        raise ValidationError([Problem("<command line>", where, f"usage: kemu fault {kind} {usage}")])
    target, *rest = words
    if not _target_ok(target):
        bad(target, "expected ns/pod, node/NAME or host/NAME")
    value = " ".join(rest)
    if kind == "link" and value not in ("down", "up"):
        bad(value, "a link goes down or up")
    if kind == "loss":
        try:
            pct = float(value.removesuffix("%"))
        except ValueError:
            pct = -1
        if not 0 < pct <= 100:
            bad(value, "a loss is a percentage in (0, 100]")
        value = f"{pct:g}"
    if kind == "rate":
        try:
            if rate_bits(value) < 8000:
                bad(value, "a rate of at least 8kbit")
        except ValueError:
            bad(value, "a rate in tc's units: 10mbit, 1gbit, 500kbit, 100kbps")
    if kind == "delay":
        for v in rest:
            if not v.removesuffix("ms").replace(".", "", 1).isdigit():
                bad(v, "milliseconds (a number)")
        value = " ".join(v.removesuffix("ms") for v in rest)
    if problems:
        raise ValidationError(problems)
    return Fault(kind, (target,), value)
