"""A namespace's nftables tables as the fake kernel holds them: mutable while a
transaction changes a copy, frozen into the Ruleset model (emu.netfilter.ruleset) for
everyone else; and what refers to what (jumps, set lookups), for the kernel's checks."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

from emu.netfilter.datatypes import Field
from emu.netfilter.ruleset import Chain, Element, Rule, Set, Table

Data = tuple[Field, ...] | str | None  # an element's: map data, a verdict, or None (a set)


@dataclass
class ChainState:
    name: str
    handle: int
    type: str = ""
    hook: str = ""
    priority: int = 0
    policy: str = ""
    device: str = ""
    comment: str = ""
    rules: list[Rule] = field(default_factory=list)


@dataclass
class SetState:
    name: str
    handle: int
    key_type: tuple[str, ...]
    data_type: tuple[str, ...]
    flags: frozenset[str]
    timeout: str = ""
    size: int = 0
    comment: str = ""
    elements: dict[tuple[Field, ...], Data] = field(default_factory=dict)


@dataclass
class TableState:
    family: str
    name: str
    comment: str = ""
    flags: frozenset[str] = frozenset()
    chains: dict[str, ChainState] = field(default_factory=dict)
    sets: dict[str, SetState] = field(default_factory=dict)
    next_handle: int = 1

    def handle(self) -> int:
        self.next_handle += 1
        return self.next_handle - 1

    def clone(self) -> TableState:
        """A copy to change: rules, keys and data are immutable and shared."""
        return replace(
            self,
            chains={n: replace(c, rules=list(c.rules)) for n, c in self.chains.items()},
            sets={n: replace(s, elements=dict(s.elements)) for n, s in self.sets.items()},
        )

    def freeze(self) -> Table:
        chains = tuple(
            Chain(c.name, tuple(c.rules), c.type, c.hook, c.priority, c.policy, c.device, c.comment, c.handle)
            for _, c in sorted(self.chains.items())
        )
        sets = tuple(
            Set(
                s.name,
                s.key_type,
                s.data_type,
                s.flags,
                tuple(Element(k, d) for k, d in sorted(s.elements.items(), key=lambda kv: kv[0])),
                s.timeout,
                s.size,
                s.comment,
                s.handle,
            )
            for _, s in sorted(self.sets.items())
        )
        return Table(self.family, self.name, chains, sets, self.comment, self.flags)


@functools.lru_cache(maxsize=65536)
def rule_refs(tokens: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """The named sets a rule uses, with how (`vmap`, `map` or a lookup), and the chains it
    jumps or goes to."""
    sets, chains = [], []
    for i, t in enumerate(tokens):
        if t.startswith("@") and len(t) > 1:
            sets.append((unquote(t[1:]), tokens[i - 1] if i and tokens[i - 1] in ("vmap", "map") else "lookup"))
        elif t in ("jump", "goto") and i + 1 < len(tokens):
            chains.append(unquote(tokens[i + 1]))
    return tuple(sets), tuple(chains)


def unquote(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


def verdict_target(data: Data) -> str | None:
    if isinstance(data, str) and data.startswith(("jump ", "goto ")):
        return data.split(" ", 1)[1]
    return None


def find_loop(edges: dict[str, set[str]]) -> str:
    """A cycle in the jump graph, as `a -> b -> a`, or ""."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(n: str, trail: list[str]) -> str:
        state[n] = 1
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return " -> ".join([*trail[trail.index(m) :], m])
            if m not in state and (found := visit(m, [*trail, m])):
                return found
        state[n] = 2
        return ""

    for n in sorted(edges):
        if n not in state and (found := visit(n, [n])):
            return found
    return ""
