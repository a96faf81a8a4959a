"""What a producer asks of nftables, as objects: a table's definition and the commands of
one transaction on a table. The service proxy, the policy compiler and the CNI plugin
build these; emu.netfilter.render spells them as the nft script the kernel gets (the one
place kemu writes nft syntax), which the fake kernel reads back into the ruleset model.

Chains and rules are the ruleset model's own (`Chain`, `Rule`: a rule is its tokens).
Sets and maps differ from the kernel's model in one way: a producer holds element values
as nft text (`10.96.0.1 . tcp . 80`, data `goto cluster-3`), not as parsed fields — a
table for 10,000 Services has ~100,000 elements, and parsing each would cost more than
the rest of the render.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from emu.netfilter.ruleset import Chain, Rule, cached, elements_text, quote, type_text

# A set's elements (keys), or a map's (key → data); "" data is a key without data.
Elements = Mapping[str, str] | tuple[str, ...]


def tokens(*parts: str) -> tuple[str, ...]:
    """Rule tokens: each part split at spaces, so that constant statements read as one
    string — but a part holding a quoted name (`quote()`, `@"..."`) is one token."""
    out: list[str] = []
    for p in parts:
        if '"' in p:
            out.append(p)
        else:
            out += p.split()
    return tuple(out)


def rule(*parts: str, comment: str = "") -> Rule:
    return Rule(tokens(*parts), comment)


def verdict(kind: str, chain: str) -> str:
    """A verdict map's data: `goto`/`jump` to a chain, its name quoted if nft needs it."""
    return f"{kind} {quote(chain)}"


@dataclass(frozen=True)
class SetDef:
    """A named set, or a map when `data_type` is set (`("verdict",)`: a verdict map)."""

    name: str
    key_type: tuple[str, ...]
    data_type: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()
    timeout: str = ""  # e.g. "60s"
    elements: Elements = ()

    @property
    def is_map(self) -> bool:
        return bool(self.data_type)

    @cached
    def body(self) -> str:
        """What goes between its braces: `type ...; flags ...; timeout ...; elements = { ... };`.
        Cached as Rule.text is: a set kept from one render to the next is spelled once."""
        head = _head(self.key_type, self.data_type, self.flags, self.timeout)
        return f"{head} elements = {{ {elements_text(self.elements)} }};" if self.elements else head

    @cached
    def decl(self) -> str:
        """Its declaration in a table block: `set name { body }` (or `map ...`)."""
        return f"{'map' if self.data_type else 'set'} {quote(self.name)} {{ {self.body} }}"


@functools.lru_cache(maxsize=256)
def _head(key_type: tuple[str, ...], data_type: tuple[str, ...], flags: frozenset[str], timeout: str) -> str:
    # A few kinds of set, thousands of sets: spelled once per kind.
    head = f"type {type_text(key_type, data_type)};"
    if flags:
        head += f" flags {','.join(sorted(flags))};"
    if timeout:
        head += f" timeout {timeout};"
    return head


@dataclass(frozen=True)
class TableDef:
    """A whole table: its sets and maps (written first), then its chains, each in order."""

    family: str
    name: str
    sets: tuple[SetDef, ...] = ()
    chains: tuple[Chain, ...] = ()
    comment: str = ""


# The commands of a transaction. All but AddTable act on the transaction's table.


@dataclass(frozen=True)
class AddTable:
    """`table f n { ... }`: creates the table if it is missing, then adds what it holds
    (the transaction's own table: the renderer refuses another)."""

    table: TableDef


@dataclass(frozen=True)
class DeleteTable:
    pass


@dataclass(frozen=True)
class AddChain:
    """A chain declared (a base chain with its hook); its rules are AddRules."""

    chain: Chain


@dataclass(frozen=True)
class FlushChain:
    name: str


@dataclass(frozen=True)
class DeleteChain:
    name: str


@dataclass(frozen=True)
class AddRules:
    """Rules appended to a chain, in order."""

    chain: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class AddSet:
    set: SetDef


@dataclass(frozen=True)
class DeleteSet:
    name: str
    is_map: bool = False


@dataclass(frozen=True)
class FlushSet:
    name: str
    is_map: bool = False


@dataclass(frozen=True)
class AddElements:
    """Elements added to a set or map (nothing is written when there are none)."""

    set: str
    elements: Elements


@dataclass(frozen=True)
class DeleteElements:
    """Elements, by key, taken out of a set or map (nothing is written when there are none)."""

    set: str
    keys: tuple[str, ...]


Op = AddTable | DeleteTable | AddChain | FlushChain | DeleteChain | AddRules | AddSet | DeleteSet | FlushSet | AddElements | DeleteElements


@dataclass(frozen=True)
class Transaction:
    """Commands on one table, applied as one batch: all or nothing."""

    family: str
    table: str
    ops: tuple[Op, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ops)


def replace_table(t: TableDef) -> Transaction:
    """The whole table anew, whatever was there before: declaring it first makes sure
    there is one to delete (a missing table cannot be deleted)."""
    return Transaction(t.family, t.name, (AddTable(TableDef(t.family, t.name)), DeleteTable(), AddTable(t)))
