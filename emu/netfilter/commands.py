"""What an nft script asks for, command by command: the parser's output (emu.netfilter.
parse), the fake kernel's input (emu.netfilter.apply). Element values stay text until
they meet their set's types."""

from __future__ import annotations

from dataclasses import dataclass, field

from emu.netfilter.lexer import Loc
from emu.netfilter.ruleset import Rule


@dataclass(frozen=True)
class ChainDecl:
    type: str = ""
    hook: str = ""
    priority: int = 0
    policy: str = ""
    device: str = ""
    comment: str = ""


@dataclass(frozen=True)
class RawElement:
    key: tuple[str, ...]  # one text per concatenated field
    data: tuple[str, ...] | None  # map data fields, or a verdict's words joined
    loc: Loc


@dataclass(frozen=True)
class SetDecl:
    is_map: bool
    key_type: tuple[str, ...] = ()
    data_type: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()
    timeout: str = ""
    size: int = 0
    comment: str = ""
    elements: tuple[RawElement, ...] = ()


@dataclass(frozen=True)
class Command:
    verb: str  # add | create | insert | replace | delete | destroy | flush | rename | list
    obj: str  # table | chain | rule | set | map | element | ruleset
    loc: Loc
    family: str = "ip"
    table: str = ""
    name: str = ""  # chain or set name
    chain: ChainDecl | None = None
    set: SetDecl | None = None
    rule: Rule | None = None
    elements: tuple[RawElement, ...] = ()
    position: tuple[str, int] | None = None  # ("position" | "handle" | "index", n)
    new_name: str = ""
    comment: str = ""  # a table's
    flags: frozenset[str] = field(default_factory=frozenset)  # a table's
