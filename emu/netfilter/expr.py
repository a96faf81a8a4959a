"""Rule tokens → statements the packet evaluator runs (emu.netfilter.evaluate).

The subset kemu's renderers write: payload/meta/ct/fib/numgen selectors and their
concatenations, comparisons (implicit, ==, !=, <, >, flag lists), named and anonymous
sets, verdict maps, `meta mark set` / `ct mark set` (with `|`, `&`, `^`), nat statements
(dnat/snat to a literal or through a map, masquerade, redirect), verdicts, and the
no-ops counter, log, notrack and dynamic-set updates. Anything else raises KemuError, so
a renderer writing something new fails loudly instead of being misjudged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from emu.errors import KemuError
from emu.netfilter.datatypes import Field, datatype

_L4 = ("tcp", "udp", "sctp", "th", "udplite", "dccp")
_ATOM_TYPES = {
    "ip saddr": "ipv4_addr", "ip daddr": "ipv4_addr", "ip protocol": "inet_proto",
    "meta l4proto": "inet_proto", "meta mark": "mark", "meta iifname": "ifname", "meta oifname": "ifname",
    "ct state": "ct_state", "ct status": "ct_status", "ct mark": "mark",
}  # fmt: skip
_META_SHORT = ("iifname", "oifname", "mark", "l4proto")
_OPS = {
    "==": "==",
    "eq": "==",
    "!=": "!=",
    "ne": "!=",
    "<": "<",
    "lt": "<",
    ">": ">",
    "gt": ">",
    "<=": "<=",
    "le": "<=",
    ">=": ">=",
    "ge": ">=",
}
_NAT_FLAGS = ("random", "fully-random", "persistent", ",")
VERDICT_WORDS = ("accept", "drop", "continue", "return")


@dataclass(frozen=True)
class Atom:
    kind: str  # "ip saddr", "th dport", "meta mark", "ct state", "fib", "numgen", ...
    type: str  # the datatype of its value
    modulus: int = 0  # numgen
    offset: int = 0  # numgen
    fib: tuple[str, ...] = ()  # fib flags (saddr, daddr, iif, oif)


@dataclass(frozen=True)
class Selector:
    atoms: tuple[Atom, ...]  # a concatenation when more than one
    binop: tuple[str, int] | None = None  # ("&", 0x4000): `ct mark & 0x4000`

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(a.type for a in self.atoms)


Key = tuple[Field, ...]


@dataclass(frozen=True)
class Ref:
    """A named set or map (`name`), or an anonymous one (`elements`, with data for maps)."""

    name: str = ""
    elements: tuple[tuple[Key, tuple[str, ...] | None], ...] = ()


@dataclass(frozen=True)
class Match:
    sel: Selector
    op: str  # implicit | == | != | < | > | <= | >=
    values: tuple[Key, ...] = ()  # literal alternatives (a flag list)
    ref: Ref | None = None


@dataclass(frozen=True)
class VMap:
    sel: Selector
    ref: Ref


@dataclass(frozen=True)
class Verdict:
    kind: str  # accept | drop | reject | continue | return | jump | goto
    target: str = ""


@dataclass(frozen=True)
class SetValue:
    target: str  # "meta mark" | "ct mark"
    sel: Selector | None = None
    value: int = 0


@dataclass(frozen=True)
class Nat:
    kind: str  # dnat | snat | masquerade | redirect
    addr: str = ""
    port: int = 0
    sel: Selector | None = None  # `dnat ... to SEL map REF`
    ref: Ref | None = None


@dataclass(frozen=True)
class Noop:
    what: str


Statement = Match | VMap | Verdict | SetValue | Nat | Noop


def _unquote(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


class _Tokens:
    def __init__(self, tokens: tuple[str, ...]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self, k: int = 0) -> str:
        return self.t[self.i + k] if self.i + k < len(self.t) else ""

    def next(self) -> str:
        if self.i >= len(self.t):
            raise self.error("unexpected end of rule")
        self.i += 1
        return self.t[self.i - 1]

    def expect(self, word: str) -> None:
        if (got := self.next()) != word:
            raise self.error(f"expected {word!r}, got {got!r}")

    def error(self, message: str) -> KemuError:
        return KemuError(f"evaluator: {message} in rule {' '.join(self.t)!r} (at token {self.i})")


@functools.lru_cache(maxsize=65536)
def compile_rule(tokens: tuple[str, ...]) -> tuple[Statement, ...]:
    p = _Tokens(tokens)
    out: list[Statement] = []
    while p.peek():
        out.append(_statement(p))
    return tuple(out)


def _statement(p: _Tokens) -> Statement:
    w = p.peek()
    if w in VERDICT_WORDS:
        return Verdict(p.next())
    if w in ("jump", "goto"):
        p.next()
        return Verdict(w, _unquote(p.next()))
    if w == "reject":
        p.next()
        if p.peek() == "with":
            p.next()
            p.next()  # icmp | icmpx | icmpv6 | tcp
            p.next()  # type | reset
            if p.peek() and p.t[p.i - 1] == "type":
                p.next()
        return Verdict("reject")
    if w == "counter":
        p.next()
        while p.peek() in ("packets", "bytes"):
            p.next(), p.next()
        return Noop("counter")
    if w == "log":
        p.next()
        while p.peek() in ("prefix", "level", "group", "snaplen", "queue-threshold", "flags"):
            p.next(), p.next()
        return Noop("log")
    if w == "notrack":
        p.next()
        return Noop("notrack")
    if w in ("update", "add", "delete") and p.peek(1).startswith("@"):
        # Dynamic sets (affinity) fill as packets pass; the model holds what was loaded.
        p.next(), p.next()
        p.expect("{")
        while p.next() != "}":
            pass
        return Noop(f"{w} set")
    if w in ("dnat", "snat", "masquerade", "redirect"):
        return _nat(p)
    sel = _selector(p)
    if p.peek() == "set":
        p.next()
        target = " ".join(a.kind for a in sel.atoms)
        if target not in ("meta mark", "ct mark"):
            raise p.error(f"cannot set {target}")
        if p.peek()[:1].isdigit():
            return SetValue(target, value=_int(p, p.next()))
        return SetValue(target, sel=_selector(p))
    if p.peek() == "vmap":
        p.next()
        return VMap(sel, _ref(p, sel, True))
    op = "implicit"
    if p.peek() in _OPS:
        op = _OPS[p.next()]
    if p.peek().startswith("@") or p.peek() == "{":
        return Match(sel, op, ref=_ref(p, sel, False))
    values = [_literal(p, sel)]
    while p.peek() == ",":
        p.next()
        values.append(_literal(p, sel))
    return Match(sel, op, tuple(values))


def _int(p: _Tokens, text: str) -> int:
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise p.error(f"{text!r} is not a number") from None


def _atom(p: _Tokens) -> Atom:
    w = p.next()
    if w in ("ip", "ip6") or w in _L4:
        field = p.next()
        kind = f"{w} {field}"
        if w in _L4 and field in ("sport", "dport"):
            return Atom(kind, "inet_service")
        if kind in _ATOM_TYPES:
            return Atom(kind, _ATOM_TYPES[kind])
        raise p.error(f"unsupported selector {kind!r}")
    if w == "meta" or w in _META_SHORT:
        kind = f"meta {p.next() if w == 'meta' else w}"
        if kind not in _ATOM_TYPES:
            raise p.error(f"unsupported selector {kind!r}")
        return Atom(kind, _ATOM_TYPES[kind])
    if w == "ct":
        kind = f"ct {p.next()}"
        if kind not in _ATOM_TYPES:
            raise p.error(f"unsupported selector {kind!r}")
        return Atom(kind, _ATOM_TYPES[kind])
    if w == "fib":
        flags = [p.next()]
        while p.peek() == "." and p.peek(1) in ("saddr", "daddr", "iif", "oif", "mark"):
            p.next()
            flags.append(p.next())
        result = p.next()
        if result != "type" or not {"saddr", "daddr"} & set(flags):
            raise p.error(f"unsupported fib lookup {' . '.join(flags)} {result}")
        return Atom("fib", "fib_addrtype", fib=tuple(flags))
    if w == "numgen":
        mode = p.next()
        p.expect("mod")
        modulus = _int(p, p.next())
        offset = _int(p, (p.next(), p.next())[1]) if p.peek() == "offset" else 0
        if mode != "random":
            raise p.error("only `numgen random` is modelled")
        return Atom("numgen", "integer", modulus, offset)
    raise p.error(f"unsupported expression {w!r}")


def _selector(p: _Tokens) -> Selector:
    atoms = [_atom(p)]
    while p.peek() == ".":
        p.next()
        atoms.append(_atom(p))
    binop = None
    if p.peek() in ("&", "|", "^"):
        op = p.next()
        binop = (op, _int(p, p.next()))
    return Selector(tuple(atoms), binop)


def _fields(p: _Tokens, types: tuple[str, ...]) -> Key:
    out: list[Field] = []
    for i, typ in enumerate(types):
        if i:
            p.expect(".")
        text = p.next()
        try:
            out.append(datatype(typ).parse(_unquote(text)))
        except ValueError as e:
            raise p.error(str(e)) from None
    return tuple(out)


def _literal(p: _Tokens, sel: Selector) -> Key:
    return _fields(p, sel.types)


def _ref(p: _Tokens, sel: Selector, is_map: bool) -> Ref:
    if p.peek().startswith("@"):
        return Ref(name=_unquote(p.next()[1:]))
    p.expect("{")
    out: list[tuple[Key, tuple[str, ...] | None]] = []
    while p.peek() != "}":
        key = _fields(p, sel.types)
        data = None
        if p.peek() == ":":
            p.next()
            words = []
            while p.peek() not in (",", "}"):
                words.append(p.next())
            data = tuple(words)
        elif is_map:
            raise p.error("a map element needs ': data'")
        out.append((key, data))
        if p.peek() == ",":
            p.next()
    p.expect("}")
    return Ref(elements=tuple(out))


def _nat(p: _Tokens) -> Nat:
    kind = p.next()
    addr, port, sel, ref = "", 0, None, None
    if kind in ("dnat", "snat"):
        if p.peek() in ("ip", "ip6"):
            p.next()
        if p.peek() in ("addr", "prefix"):
            p.next()
            if p.peek() == ".":
                p.next()
                p.expect("port")
        p.expect("to")
        target = p.peek()
        if target[:1].isdigit():
            p.next()
            addr, _, port_text = target.partition(":")
            port = _int(p, port_text) if port_text else 0
        else:
            sel = _selector(p)
            p.expect("map")
            ref = _ref(p, sel, True)
    elif p.peek() == "to":
        p.next()
        port = _int(p, p.next().lstrip(":").split("-")[0])
    while p.peek() in _NAT_FLAGS:
        p.next()
    return Nat(kind, addr, port, sel, ref)
