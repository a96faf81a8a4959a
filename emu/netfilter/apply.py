"""Applying parsed nft commands to a namespace's tables, with the kernel's checks (see
emu.netfilter.fake for the list). One Applier is one transaction: it copies a table the
first time a command changes it, so an aborted batch leaves the originals untouched."""

from __future__ import annotations

from emu.errors import CommandError
from emu.netfilter.commands import Command, RawElement
from emu.netfilter.datatypes import DataTypeError, Field, datatype, overlaps, single
from emu.netfilter.lexer import Loc, fail
from emu.netfilter.ruleset import Rule, quote
from emu.netfilter.tables import ChainState, Data, SetState, TableState, find_loop, rule_refs, unquote, verdict_target

ERRNO = {
    "ENOENT": "No such file or directory",
    "EEXIST": "File exists",
    "EBUSY": "Device or resource busy",
    "EOPNOTSUPP": "Operation not supported",
    "EINVAL": "Invalid argument",
    "ELOOP": "Too many levels of symbolic links",
}
HOOKS = {
    "ip": ("prerouting", "input", "forward", "output", "postrouting"),
    "ip6": ("prerouting", "input", "forward", "output", "postrouting"),
    "inet": ("prerouting", "input", "forward", "output", "postrouting", "ingress"),
    "bridge": ("prerouting", "input", "forward", "output", "postrouting"),
    "arp": ("input", "output"),
    "netdev": ("ingress", "egress"),
}
NAT_HOOKS = ("prerouting", "input", "output", "postrouting")


class Applier:
    def __init__(self, tables: dict[tuple[str, str], TableState], lines: list[str]) -> None:
        self.tables = dict(tables)
        self._owned: set[tuple[str, str]] = set()
        self.lines = lines
        self.last = Loc(1, 1, 1)

    # -- helpers -------------------------------------------------------------------------
    def err(self, cmd: Command, errno: str, detail: str) -> CommandError:
        return fail(self.lines, cmd.loc, f"Could not process rule: {ERRNO[errno]} ({detail})")

    def bad(self, loc: Loc, detail: str) -> CommandError:
        return fail(self.lines, loc, detail)

    def table(self, cmd: Command, write: bool = True) -> TableState:
        key = (cmd.family, cmd.table if cmd.obj != "table" else cmd.name)
        if key not in self.tables:
            raise self.err(cmd, "ENOENT", f"no table {key[0]} {quote(key[1])}")
        if write and key not in self._owned:
            self.tables[key] = self.tables[key].clone()
            self._owned.add(key)
        return self.tables[key]

    def chain(self, cmd: Command, t: TableState, name: str) -> ChainState:
        if name not in t.chains:
            raise self.err(cmd, "ENOENT", f"no chain {quote(name)} in table {t.family} {quote(t.name)}")
        return t.chains[name]

    def set(self, cmd: Command, t: TableState, name: str) -> SetState:
        if name not in t.sets:
            raise self.err(cmd, "ENOENT", f"no set {quote(name)} in table {t.family} {quote(t.name)}")
        return t.sets[name]

    # -- commands ------------------------------------------------------------------------
    def apply(self, cmd: Command) -> None:
        self.last = cmd.loc
        getattr(self, f"_{cmd.obj}")(cmd)

    def _ruleset(self, cmd: Command) -> None:
        if cmd.verb != "flush":
            raise self.bad(cmd.loc, f"syntax error, unexpected {cmd.verb} ruleset")
        for key in [k for k in self.tables if not cmd.family or k[0] == cmd.family]:
            del self.tables[key]

    def _table(self, cmd: Command) -> None:
        key = (cmd.family, cmd.name)
        exists = key in self.tables
        if cmd.verb in ("add", "create"):
            if exists and cmd.verb == "create":
                raise self.err(cmd, "EEXIST", f"table {cmd.family} {quote(cmd.name)} exists")
            if not exists:
                self.tables[key] = TableState(cmd.family, cmd.name, cmd.comment, cmd.flags)
                self._owned.add(key)
            elif cmd.flags:
                self.table(cmd).flags = cmd.flags
        elif cmd.verb in ("delete", "destroy"):
            if exists:
                del self.tables[key]
            elif cmd.verb == "delete":
                self.table(cmd)
        elif cmd.verb == "flush":
            for c in self.table(cmd).chains.values():
                c.rules.clear()
        else:
            raise self.bad(cmd.loc, f"syntax error, unexpected {cmd.verb} table")

    def _chain(self, cmd: Command) -> None:
        if cmd.verb == "destroy" and (cmd.family, cmd.table) not in self.tables:
            return
        t = self.table(cmd)
        c = t.chains.get(cmd.name)
        if cmd.verb in ("add", "create"):
            d = cmd.chain
            assert d is not None
            if c is not None:
                if cmd.verb == "create":
                    raise self.err(cmd, "EEXIST", f"chain {quote(cmd.name)} exists")
                if d.hook and (d.type, d.hook, d.priority, d.device) != (c.type, c.hook, c.priority, c.device):
                    raise self.err(cmd, "EOPNOTSUPP", f"chain {quote(cmd.name)} exists with another hook, type or priority")
                if d.hook:
                    c.policy = d.policy or c.policy
                if d.comment:
                    c.comment = d.comment
                return
            if d.hook:
                if d.hook not in HOOKS.get(t.family, ()):
                    raise self.err(cmd, "EOPNOTSUPP", f"no hook {d.hook} in family {t.family}")
                if d.type not in ("filter", "nat", "route"):
                    raise self.err(cmd, "ENOENT", f"no chain type {d.type}")
                if d.type == "nat" and d.hook not in NAT_HOOKS:
                    raise self.err(cmd, "EOPNOTSUPP", f"nat chains cannot hook {d.hook}")
                if d.policy not in ("accept", "drop"):
                    raise self.err(cmd, "EINVAL", f"policy {d.policy}")
            t.chains[cmd.name] = ChainState(cmd.name, t.handle(), d.type, d.hook, d.priority, d.policy, d.device, d.comment)
            return
        if c is None:
            if cmd.verb == "destroy":
                return
            self.chain(cmd, t, cmd.name)
        assert c is not None
        if cmd.verb == "flush":
            c.rules.clear()
        elif cmd.verb in ("delete", "destroy"):
            if c.rules:
                raise self.err(cmd, "EBUSY", f"chain {quote(cmd.name)} still has {len(c.rules)} rules")
            if user := self._chain_user(t, cmd.name):
                raise self.err(cmd, "EBUSY", f"chain {quote(cmd.name)} is still used by {user}")
            del t.chains[cmd.name]
        elif cmd.verb == "rename":
            if cmd.new_name in t.chains:
                raise self.err(cmd, "EEXIST", f"chain {quote(cmd.new_name)} exists")
            self._rename(t, c, cmd.new_name)
        else:
            raise self.bad(cmd.loc, f"syntax error, unexpected {cmd.verb} chain")

    def _chain_user(self, t: TableState, name: str) -> str:
        for c in t.chains.values():
            for r in c.rules:
                if name in rule_refs(r.tokens)[1]:
                    return f"a rule of chain {quote(c.name)}"
        for s in t.sets.values():
            if any(verdict_target(d) == name for d in s.elements.values()):
                return f"an element of map {quote(s.name)}"
        return ""

    def _rename(self, t: TableState, c: ChainState, new: str) -> None:
        old = c.name

        def fix(tokens: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(quote(new) if i and tokens[i - 1] in ("jump", "goto") and unquote(w) == old else w for i, w in enumerate(tokens))

        for other in t.chains.values():
            other.rules = [Rule(fix(r.tokens), r.comment, r.handle) for r in other.rules]
        for s in t.sets.values():
            for k, d in s.elements.items():
                if verdict_target(d) == old:
                    s.elements[k] = f"{str(d).split(' ')[0]} {new}"
        del t.chains[old]
        c.name = new
        t.chains[new] = c

    def _rule(self, cmd: Command) -> None:
        t = self.table(cmd)
        c = self.chain(cmd, t, cmd.name)
        at = None
        if cmd.position is not None:
            kind, n = cmd.position
            if kind == "index":
                if n >= len(c.rules):
                    raise self.err(cmd, "ENOENT", f"no rule at index {n} in chain {quote(c.name)}")
                at = n
            else:
                at = next((i for i, r in enumerate(c.rules) if r.handle == n), None)
                if at is None:
                    raise self.err(cmd, "ENOENT", f"no rule with handle {n} in chain {quote(c.name)}")
        if cmd.verb in ("delete", "destroy"):
            assert at is not None
            del c.rules[at]
            return
        assert cmd.rule is not None
        self._check_rule(cmd, t, cmd.rule)
        rule = Rule(cmd.rule.tokens, cmd.rule.comment, t.handle())
        if cmd.verb == "replace":
            if at is None:
                raise self.bad(cmd.loc, "replace needs a handle")
            c.rules[at] = rule
        elif cmd.verb == "insert":
            c.rules.insert(at or 0, rule)
        elif cmd.verb == "add":
            c.rules.insert(len(c.rules) if at is None else at + 1, rule)
        else:
            raise self.bad(cmd.loc, f"syntax error, unexpected {cmd.verb} rule")

    def _check_rule(self, cmd: Command, t: TableState, rule: Rule) -> None:
        sets, chains = rule_refs(rule.tokens)
        for name, how in sets:
            s = self.set(cmd, t, name)
            if how == "vmap" and s.data_type != ("verdict",):
                raise self.bad(cmd.loc, f"Map '{name}' is not a verdict map (vmap needs one)")
            if how == "map" and (not s.data_type or s.data_type == ("verdict",)):
                raise self.bad(cmd.loc, f"'{name}' is not a data map")
        for name in chains:
            self._check_target(cmd, t, name)

    def _check_target(self, cmd: Command, t: TableState, name: str) -> None:
        target = self.chain(cmd, t, name)
        if target.hook:
            raise self.err(cmd, "EOPNOTSUPP", f"cannot jump to base chain {quote(name)}")

    def _map(self, cmd: Command) -> None:
        self._set(cmd)

    def _set(self, cmd: Command) -> None:
        if cmd.verb == "destroy" and (cmd.family, cmd.table) not in self.tables:
            return
        t = self.table(cmd)
        s = t.sets.get(cmd.name)
        if cmd.verb in ("add", "create"):
            d = cmd.set
            assert d is not None
            for typ in (*d.key_type, *[x for x in d.data_type if x != "verdict"]):
                try:
                    datatype(typ)
                except DataTypeError as e:
                    raise self.bad(cmd.loc, str(e)) from None
            if d.data_type and "verdict" in d.data_type and len(d.data_type) > 1:
                raise self.bad(cmd.loc, "a verdict cannot be concatenated")
            if s is not None:
                if cmd.verb == "create":
                    raise self.err(cmd, "EEXIST", f"set {quote(cmd.name)} exists")
                if (s.key_type, s.data_type, s.flags) != (d.key_type, d.data_type, d.flags):
                    raise self.err(cmd, "EEXIST", f"set {quote(cmd.name)} exists with another type or flags")
            else:
                s = SetState(cmd.name, t.handle(), d.key_type, d.data_type, d.flags, d.timeout, d.size, d.comment)
                t.sets[cmd.name] = s
            self._add_elements(cmd, t, s, d.elements, exclusive=False)
            return
        if s is None:
            if cmd.verb == "destroy":
                return
            self.set(cmd, t, cmd.name)
        assert s is not None
        if cmd.verb == "flush":
            s.elements.clear()
        elif cmd.verb in ("delete", "destroy"):
            for c in t.chains.values():
                for r in c.rules:
                    if any(n == s.name for n, _ in rule_refs(r.tokens)[0]):
                        raise self.err(cmd, "EBUSY", f"set {quote(s.name)} is still used by a rule of chain {quote(c.name)}")
            del t.sets[s.name]
        else:
            raise self.bad(cmd.loc, f"syntax error, unexpected {cmd.verb} {cmd.obj}")

    def _element(self, cmd: Command) -> None:
        if cmd.verb == "destroy" and (cmd.family, cmd.table) not in self.tables:
            return
        t = self.table(cmd)
        s = self.set(cmd, t, cmd.name)
        if cmd.verb in ("add", "create"):
            self._add_elements(cmd, t, s, cmd.elements, exclusive=cmd.verb == "create")
        elif cmd.verb in ("delete", "destroy"):
            for raw in cmd.elements:
                key = self._key(s, raw)
                if key in s.elements:
                    del s.elements[key]
                elif cmd.verb == "delete":
                    raise self.err(cmd, "ENOENT", f"no element {raw_text(raw)} in set {quote(s.name)}")
        else:
            raise self.bad(cmd.loc, f"syntax error, unexpected {cmd.verb} element")

    def _key(self, s: SetState, raw: RawElement) -> tuple[Field, ...]:
        if len(raw.key) != len(s.key_type):
            raise self.bad(
                raw.loc, f"datatype mismatch: {raw_text(raw)!r} has {len(raw.key)} fields, set {quote(s.name)} is {' . '.join(s.key_type)}"
            )
        try:
            key = tuple(datatype(typ).parse(text) for typ, text in zip(s.key_type, raw.key, strict=True))
        except DataTypeError as e:
            raise self.bad(raw.loc, f"{e} (set {quote(s.name)})") from None
        if "interval" not in s.flags and not all(single(f) for f in key):
            raise self.bad(raw.loc, f"you must add 'flags interval' to set {quote(s.name)} for {raw_text(raw)!r}")
        return key

    def _data(self, cmd: Command, t: TableState, s: SetState, raw: RawElement) -> Data:
        if not s.data_type:
            if raw.data is not None:
                raise self.bad(raw.loc, f"set {quote(s.name)} is not a map: {raw_text(raw)!r}")
            return None
        if raw.data is None:
            raise self.bad(raw.loc, f"map {quote(s.name)} needs data for {raw_text(raw)!r}")
        if s.data_type == ("verdict",):
            words = " ".join(raw.data).split()
            if len(words) == 1 and words[0] in ("accept", "drop", "continue", "return"):
                return words[0]
            if len(words) == 2 and words[0] in ("jump", "goto"):
                self._check_target(cmd, t, unquote(words[1]))
                return f"{words[0]} {unquote(words[1])}"
            raise self.bad(raw.loc, f"{' '.join(words)!r} is not a verdict")
        if len(raw.data) != len(s.data_type):
            raise self.bad(raw.loc, f"datatype mismatch: map {quote(s.name)} data is {' . '.join(s.data_type)}")
        try:
            data = tuple(datatype(typ).parse(text) for typ, text in zip(s.data_type, raw.data, strict=True))
        except DataTypeError as e:
            raise self.bad(raw.loc, f"{e} (map {quote(s.name)})") from None
        if not all(single(f) for f in data):
            raise self.bad(raw.loc, f"map data must be single values: {raw_text(raw)!r}")
        return data

    def _add_elements(self, cmd: Command, t: TableState, s: SetState, raws: tuple[RawElement, ...], exclusive: bool) -> None:
        interval = "interval" in s.flags
        for raw in raws:
            key = self._key(s, raw)
            data = self._data(cmd, t, s, raw)
            if key in s.elements:
                if exclusive or s.elements[key] != data:
                    raise self.err(cmd, "EEXIST", f"element {raw_text(raw)} exists in {quote(s.name)}")
                continue
            if interval:
                # The kernel's interval backends (rbtree, pipapo) refuse overlaps.
                for other in s.elements:
                    if all(overlaps(a, b) for a, b in zip(key, other, strict=True)):
                        raise self.err(cmd, "EEXIST", f"interval {raw_text(raw)} overlaps {quote(s.name)}'s {_key_text(s, other)}")
            s.elements[key] = data

    def check_loops(self) -> None:
        """Jumps (through rules and verdict maps) must not loop (the kernel's ELOOP)."""
        for key in self._owned:
            t = self.tables.get(key)
            if t is None:
                continue
            edges: dict[str, set[str]] = {}
            for c in t.chains.values():
                out = edges.setdefault(c.name, set())
                for r in c.rules:
                    sets, chains = rule_refs(r.tokens)
                    out.update(chains)
                    for name, how in sets:
                        if how == "vmap" and name in t.sets:
                            out.update(x for d in t.sets[name].elements.values() if (x := verdict_target(d)))
            if loop := find_loop(edges):
                raise fail(self.lines, self.last, f"Could not process rule: {ERRNO['ELOOP']} (jump loop {loop})")


def raw_text(raw: RawElement) -> str:
    key = " . ".join(raw.key)
    return f"{key} : {' . '.join(raw.data)}" if raw.data is not None else key


def _key_text(s: SetState, key: tuple[Field, ...]) -> str:
    return " . ".join(datatype(t).format(f) for t, f in zip(s.key_type, key, strict=True))
