"""Running one rule's statements (emu.netfilter.expr) on a packet: the values a packet
offers to selectors, set and map lookups, marks, NAT. Used by the evaluator
(emu.netfilter.evaluate), which walks chains and hooks."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from emu.errors import KemuError
from emu.netfilter.datatypes import CT_STATE, CT_STATUS, FIB_ADDRTYPE, PROTOCOLS, contains, datatype
from emu.netfilter.expr import Atom, Match, Nat, Noop, Ref, Selector, SetValue, Statement, Verdict, VMap, compile_rule
from emu.netfilter.ruleset import Set, Table

Index = tuple[dict[tuple[object, ...], object], list[tuple[tuple[object, ...], object]]]


@dataclass(frozen=True)
class Packet:
    saddr: str
    daddr: str
    l4proto: str = "tcp"
    dport: int = 0
    sport: int = 40000
    ct_state: str = "new"  # new | established | related | invalid | untracked
    ct_status: frozenset[str] = frozenset()  # dnat, snat, ...
    iif: str = ""
    oif: str = ""
    mark: int = 0
    ct_mark: int = 0


@dataclass(frozen=True)
class Step:
    hook: str
    table: str  # "ip kemu-proxy"
    chain: str
    index: int  # the rule's position in its chain; -1: the chain's policy
    rule: str

    def __str__(self) -> str:
        where = f"{self.hook} {self.table} {self.chain}"
        return f"{where} policy {self.rule}" if self.index < 0 else f"{where} [{self.index}] {self.rule}"


class Branch(Exception):
    """A numgen with no bucket chosen yet: the evaluator explores each, or complains."""

    def __init__(self, modulus: int) -> None:
        self.modulus = modulus


@dataclass
class PacketState:
    """One packet's way through a node's hooks, as it goes."""

    pkt: Packet
    hook: str
    buckets: Sequence[int]
    used: int = 0
    path: list[Step] = field(default_factory=list)
    dnat: tuple[str, int] | None = None
    snat: str = ""
    nat_done: set[str] = field(default_factory=set)  # "dst", "src": bindings set up


@functools.lru_cache(maxsize=4096)
def _ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


class RuleRunner:
    """Runs rules of one ruleset; keeps an index of each named set it looked in."""

    def __init__(self, local: frozenset[str]) -> None:
        self.local = local  # the node's addresses (fib ... type local)
        self._index: dict[tuple[str, str], Index] = {}

    def run(self, table: Table, tokens: tuple[str, ...], ctx: PacketState) -> Verdict | None:
        """None: the rule did not match; Verdict("") : it matched and gave no verdict."""
        for st in compile_rule(tokens):
            r = self._statement(table, st, ctx)
            if r is False:
                return None
            if isinstance(r, Verdict):
                return r
        return Verdict("")

    def _statement(self, table: Table, st: Statement, ctx: PacketState) -> Verdict | bool:
        if isinstance(st, Match):
            return self._match(table, st, ctx)
        if isinstance(st, Verdict):
            return st
        if isinstance(st, VMap):
            key = self._key(st.sel, ctx)
            data = None if key is None else self._lookup(table, st.ref, key)
            if data is None:
                return False
            words = data if isinstance(data, str) else " ".join(data)  # type: ignore[arg-type]  # a verdict map's data are words
            kind, _, target = str(words).partition(" ")
            return Verdict(kind, target.strip('"'))
        if isinstance(st, SetValue):
            value = st.value if st.sel is None else self._key(st.sel, ctx)
            if value is None:
                return False
            n = value if isinstance(value, int) else value[0]
            pkt = replace(ctx.pkt, mark=n) if st.target == "meta mark" else replace(ctx.pkt, ct_mark=n)  # type: ignore[arg-type]  # mark keys are integers
            ctx.pkt = pkt
            return True
        if isinstance(st, Nat):
            return self._nat(table, st, ctx)
        assert isinstance(st, Noop)
        return True

    def _value(self, a: Atom, ctx: PacketState) -> int | str | None:
        p = ctx.pkt
        atom_kind = a.kind
        if atom_kind == "ip saddr":
            return _ip(p.saddr)
        if atom_kind == "ip daddr":
            return _ip(p.daddr)
        if atom_kind in ("meta l4proto", "ip protocol"):
            return PROTOCOLS.get(p.l4proto, 0)
        if atom_kind.endswith(("dport", "sport")):
            proto = atom_kind.split(" ")[0]
            if (proto == "th" and p.l4proto not in ("tcp", "udp", "sctp", "udplite", "dccp")) or (proto != "th" and proto != p.l4proto):
                return None  # no such header: the match fails
            return p.dport if atom_kind.endswith("dport") else p.sport
        if atom_kind == "meta mark":
            return p.mark
        if atom_kind == "ct mark":
            return p.ct_mark
        if atom_kind == "ct state":
            return CT_STATE[p.ct_state]
        if atom_kind == "ct status":
            return sum(CT_STATUS[s] for s in p.ct_status)
        if atom_kind == "meta iifname":
            return p.iif
        if atom_kind == "meta oifname":
            return p.oif
        if atom_kind == "fib":
            addr = p.saddr if "saddr" in a.fib else p.daddr
            return FIB_ADDRTYPE["local"] if addr in self.local else FIB_ADDRTYPE["unicast"]
        if atom_kind == "numgen":
            if ctx.used >= len(ctx.buckets):
                raise Branch(a.modulus)
            b = ctx.buckets[ctx.used]
            ctx.used += 1
            return b % a.modulus + a.offset
        raise KemuError(f"evaluator: no value for {atom_kind}")

    def _key(self, sel: Selector, ctx: PacketState) -> tuple[int | str, ...] | None:
        out: list[int | str] = []
        for a in sel.atoms:
            v = self._value(a, ctx)
            if v is None:
                return None
            out.append(v)
        if sel.binop is not None and len(out) == 1 and isinstance(out[0], int):
            op, arg = sel.binop
            out[0] = out[0] & arg if op == "&" else out[0] | arg if op == "|" else out[0] ^ arg
        return tuple(out)

    def _match(self, table: Table, m: Match, ctx: PacketState) -> bool:
        key = self._key(m.sel, ctx)
        if key is None:
            return False
        if m.ref is not None:
            found = self._lookup(table, m.ref, key) is not None
            return found != (m.op == "!=")
        bitmask = len(key) == 1 and datatype(m.sel.atoms[0].type).bitmask
        if bitmask and m.op == "implicit":
            v = key[0]
            return any(isinstance(v, int) and v & alt[0][0] for alt in m.values)  # type: ignore[operator]  # bitmask types hold integers
        if m.op in ("<", ">", "<=", ">="):
            v, lit = key[0], m.values[0][0]
            assert isinstance(v, int) and not isinstance(lit, str)
            return {"<": v < lit[0], ">": v > lit[1], "<=": v <= lit[1], ">=": v >= lit[0]}[m.op]
        hit = any(_key_in(alt, key) for alt in m.values)
        return hit != (m.op == "!=")

    def _lookup(self, table: Table, ref: Ref, key: tuple[int | str, ...]) -> object | None:
        """The element's data (True for a plain set) if `key` is in the set, else None."""
        if not ref.name:
            for k, data in ref.elements:
                if _key_in(k, key):
                    return True if data is None else data
            return None
        s = table.set(ref.name)
        if s is None:
            raise KemuError(f"evaluator: set {ref.name} missing in {table.spec}")
        if len(s.key_type) != len(key):
            raise KemuError(f"evaluator: {len(key)} values looked up in {s.name} ({s.type_text()})")
        exact, ranges = self._set_index(table, s)
        if key in exact:
            hit = exact[key]
        else:
            hit = next((d for k, d in ranges if _key_in(k, key)), _MISSING)
        if hit is _MISSING:
            return None
        return True if hit is None else hit

    def _set_index(self, table: Table, s: Set) -> tuple[dict[tuple[object, ...], object], list[tuple[tuple[object, ...], object]]]:
        k = (table.spec, s.name)
        if k not in self._index:
            exact: dict[tuple[object, ...], object] = {}
            ranges: list[tuple[tuple[object, ...], object]] = []
            for e in s.elements:
                data = e.data if not isinstance(e.data, tuple) else _data_words(s, e.data)
                if all(isinstance(f, str) or f[0] == f[1] for f in e.key) and "interval" not in s.flags:
                    exact[tuple(f if isinstance(f, str) else f[0] for f in e.key)] = data
                else:
                    ranges.append((e.key, data))
            self._index[k] = (exact, ranges)
        return self._index[k]

    def _nat(self, table: Table, st: Nat, ctx: PacketState) -> Verdict | bool:
        if st.kind in ("masquerade", "snat"):
            ctx.snat = "masquerade" if st.kind == "masquerade" else st.addr
            ctx.pkt = replace(ctx.pkt, ct_status=ctx.pkt.ct_status | {"snat"})
            return Verdict("nat")
        addr, port = st.addr, st.port
        if st.sel is not None and st.ref is not None:
            key = self._key(st.sel, ctx)
            data = None if key is None else self._lookup(table, st.ref, key)
            if data is None:
                return False  # no mapping: the rule breaks, evaluation goes on
            words = [w for w in (data if isinstance(data, tuple) else str(data).split()) if w != "."]
            addr, port = words[0], int(words[1]) if len(words) > 1 else 0
        if st.kind == "redirect":
            addr = next(iter(sorted(self.local)), ctx.pkt.daddr)
        ctx.dnat = (addr, port)
        ctx.pkt = replace(ctx.pkt, daddr=addr, dport=port or ctx.pkt.dport, ct_status=ctx.pkt.ct_status | {"dnat"})
        return Verdict("nat")


_MISSING = object()


def _key_in(k: tuple[object, ...], key: tuple[int | str, ...]) -> bool:
    return len(k) == len(key) and all(contains(f, v if isinstance(v, str) else (v, v)) for f, v in zip(k, key, strict=True))  # type: ignore[arg-type]  # element fields match the key's types


def _data_words(s: Set, data: tuple[object, ...]) -> tuple[str, ...]:
    return tuple(datatype(t).format(f) for t, f in zip(s.data_type, data, strict=True))  # type: ignore[arg-type]  # data fields match the map's types
