"""The typed model of an nftables ruleset: what a namespace's kernel holds.

Frozen dataclasses, built by the fake kernel (emu.netfilter.fake) from nft scripts and
walked by the packet evaluator (emu.netfilter.evaluate). `Ruleset.dump()` is a canonical
text — tables, sets and chains sorted by name, elements by value, values normalised (a
/32 prefix is an address, `6` is `tcp`) — so two rulesets reached by different scripts
compare equal exactly when the kernel would hold the same thing. The dump is valid nft
input (it parses back to the same model), but it is not byte-for-byte `nft list`.
Rule handles are kept (for `position`/`handle` commands) but compare and dump as equal.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from emu.netfilter.datatypes import Field, datatype

# nft's unquoted identifiers: a letter, then letters, digits, '/', '_', '.', '-'.
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9/_.-]*$")
VERDICTS = ("accept", "drop", "continue", "return")
T = TypeVar("T")


class cached(Generic[T]):
    """functools.cached_property without the lock Python 3.11 takes on every miss: the
    text of a rule or a set is computed once per object and renders call it by the
    thousand (two threads racing would just compute the same text twice)."""

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self.fn = fn
        self.name = fn.__name__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> cached[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> T | cached[T]:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)  # found there next time: no __get__
        return value


@functools.lru_cache(maxsize=65536)
def quote(name: str) -> str:
    return name if _IDENT.match(name) else f'"{name}"'


def join_tokens(tokens: tuple[str, ...] | list[str]) -> str:
    """Rule tokens as text: spaces between them, none before a comma, none after one
    outside braces (flag lists: `ct state established,related`)."""
    if "," not in tokens:
        return " ".join(tokens)  # most rules: no lists, nothing to glue
    out: list[str] = []
    depth, glue = 0, False
    for t in tokens:
        if t == "," and out:
            out[-1] += ","
            glue = depth == 0
            continue
        if glue:
            out[-1] += t
        else:
            out.append(t)
        glue = False
        depth += {"{": 1, "}": -1}.get(t, 0)
    return " ".join(out)


def elements_text(elements: Mapping[str, str] | tuple[str, ...]) -> str:
    """Elements spelled as nft values, for a set's or an `element` command's braces: keys,
    or key → data (`key : data`; "" data: a key alone), comma-separated."""
    if isinstance(elements, Mapping):
        return ", ".join([f"{k} : {v}" if v else k for k, v in elements.items()])
    return ", ".join(elements)


@dataclass(frozen=True)
class Rule:
    tokens: tuple[str, ...]  # the statements, quoted names unquoted where nft allows
    comment: str = ""
    handle: int = field(default=0, compare=False)

    @cached
    def body(self) -> str:
        return join_tokens(self.tokens)

    @cached
    def text(self) -> str:
        return self.body + f' comment "{self.comment}"' if self.comment else self.body

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Chain:
    """A regular chain, or a base chain when `hook` is set (with type, priority, policy)."""

    name: str
    rules: tuple[Rule, ...] = ()
    type: str = ""  # filter | nat | route
    hook: str = ""
    priority: int = 0
    policy: str = ""  # accept | drop ("" for a regular chain)
    device: str = ""
    comment: str = ""
    handle: int = field(default=0, compare=False)

    @property
    def is_base(self) -> bool:
        return bool(self.hook)

    def spec(self) -> str:
        dev = f" device {quote(self.device)}" if self.device else ""
        return f"type {self.type} hook {self.hook}{dev} priority {self.priority}; policy {self.policy or 'accept'};"


@dataclass(frozen=True)
class Element:
    key: tuple[Field, ...]  # one Field per concatenated type
    data: tuple[Field, ...] | str | None = None  # maps: values; verdict maps: "accept", "goto name"


@dataclass(frozen=True)
class Set:
    """A named set, or a map when `data_type` is set (`("verdict",)`: a verdict map)."""

    name: str
    key_type: tuple[str, ...]
    data_type: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()
    elements: tuple[Element, ...] = ()  # sorted by key
    timeout: str = ""
    size: int = 0
    comment: str = ""
    handle: int = field(default=0, compare=False)

    @property
    def is_map(self) -> bool:
        return bool(self.data_type)

    @property
    def is_vmap(self) -> bool:
        return self.data_type == ("verdict",)

    @property
    def interval(self) -> bool:
        return "interval" in self.flags

    def type_text(self) -> str:
        return type_text(self.key_type, self.data_type)

    def key_text(self, key: tuple[Field, ...]) -> str:
        return " . ".join(datatype(t).format(f) for t, f in zip(self.key_type, key, strict=True))

    def element_text(self, e: Element) -> str:
        key = self.key_text(e.key)
        if e.data is None:
            return key
        if isinstance(e.data, str):
            return f"{key} : {verdict_text(e.data)}"
        data = " . ".join(datatype(t).format(f) for t, f in zip(self.data_type, e.data, strict=True))
        return f"{key} : {data}"


def type_text(key_type: tuple[str, ...], data_type: tuple[str, ...] = ()) -> str:
    """A set's or map's `type`: fields joined by ' . ', a map's data after ' : '."""
    key = " . ".join(key_type)
    return f"{key} : {' . '.join(data_type)}" if data_type else key


def verdict_text(v: str) -> str:
    kind, _, target = v.partition(" ")
    return f"{kind} {quote(target)}" if target else kind


@dataclass(frozen=True)
class Table:
    family: str
    name: str
    chains: tuple[Chain, ...] = ()  # sorted by name
    sets: tuple[Set, ...] = ()  # sorted by name (maps too)
    comment: str = ""
    flags: frozenset[str] = frozenset()

    @functools.cached_property
    def _chains(self) -> dict[str, Chain]:
        return {c.name: c for c in self.chains}

    @functools.cached_property
    def _sets(self) -> dict[str, Set]:
        return {s.name: s for s in self.sets}

    def chain(self, name: str) -> Chain | None:
        return self._chains.get(name)

    def set(self, name: str) -> Set | None:
        return self._sets.get(name)

    @property
    def spec(self) -> str:
        return f"{self.family} {quote(self.name)}"


@dataclass(frozen=True)
class Ruleset:
    tables: tuple[Table, ...] = ()  # sorted by (family, name)

    def table(self, family: str, name: str) -> Table | None:
        return next((t for t in self.tables if t.family == family and t.name == name), None)

    def dump(self) -> str:
        return "".join(_dump_table(t) for t in self.tables)


def _dump_table(t: Table) -> str:
    out = [f"table {t.spec} {{"]
    if t.comment:
        out.append(f'  comment "{t.comment}"')
    if t.flags:
        out.append(f"  flags {','.join(sorted(t.flags))}")
    for s in t.sets:
        out.append(f"  {'map' if s.is_map else 'set'} {quote(s.name)} {{")
        out.append(f"    type {s.type_text()}")
        if s.flags:
            out.append(f"    flags {','.join(sorted(s.flags))}")
        if s.timeout:
            out.append(f"    timeout {s.timeout}")
        if s.size:
            out.append(f"    size {s.size}")
        if s.comment:
            out.append(f'    comment "{s.comment}"')
        if s.elements:
            out.append("    elements = {")
            out.extend(f"      {s.element_text(e)}," for e in s.elements)
            out.append("    }")
        out.append("  }")
    for c in t.chains:
        out.append(f"  chain {quote(c.name)} {{")
        if c.is_base:
            out.append(f"    {c.spec()}")
        if c.comment:
            out.append(f'    comment "{c.comment}"')
        out.extend(f"    {r.text}" for r in c.rules)
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"
