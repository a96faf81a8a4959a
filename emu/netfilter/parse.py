"""nft script text → a list of commands, as `nft -f` reads it (the fake kernel applies them).

General over nft's grammar for tables, chains, sets, maps, elements and rules — `add`,
`create`, `insert`, `replace`, `delete`, `destroy`, `flush`, `rename`, the implicit add
(`table ... { }`, `chain ...`), blocks, `define`/`$var` — while rule bodies stay token
lists. A table block expands as nft's `nft_cmd_expand` does: the table, then every chain,
then every set (with its elements), then every rule, so a block's rules and map elements
may name chains and sets declared later in the same block.
"""

from __future__ import annotations

from emu.netfilter.commands import ChainDecl, Command, RawElement, SetDecl
from emu.netfilter.datatypes import TYPEOF
from emu.netfilter.lexer import Loc, Token, TokenStream
from emu.netfilter.ruleset import Rule, quote

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
ELEMENT_OPTIONS = ("timeout", "expires", "comment", "counter")
# Standard priority names (nft(8) "PRIORITY") of the ip, ip6 and inet families.
PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}


class Parser(TokenStream):
    def script(self) -> list[Command]:
        out: list[Command] = []
        while True:
            self.skip_blank()
            if self.peek().kind == "eof":
                return out
            out.extend(self.command())
            self.end_statement()

    def family(self) -> str:
        t, after = self.peek(), self.peek(1)
        if t.kind == "word" and t.text in FAMILIES and after.kind in ("word", "string"):
            self.next()
            return t.text
        return "ip"

    def command(self) -> list[Command]:
        start = self.peek()
        verb = start.text if start.kind == "word" else ""
        if verb in ("define", "redefine"):
            self.next()
            name = self.name()
            self.expect("=")
            value = []
            while not self.at_end():
                value.append(self.next())
            self.defines[name] = value
            return []
        if verb == "undefine":
            self.next()
            self.defines.pop(self.name(), None)
            return []
        if verb in ("add", "create", "insert", "replace", "delete", "destroy", "flush", "rename", "list", "reset", "get"):
            self.next()
        elif verb in ("table", "chain", "set", "map", "element", "rule"):
            verb = "add"
        else:
            raise self.unexpected(start)
        obj = self.next()
        kind = obj.text if obj.kind == "word" else ""
        if verb in ("list", "reset", "get"):
            while not self.at_end():  # listing changes nothing
                self.next()
            return []
        if kind == "ruleset":
            fam = self.next().text if self.peek().kind == "word" and self.peek().text in FAMILIES else ""
            return [Command(verb, "ruleset", self.loc(start), family=fam)]
        if kind == "table":
            return self.table_command(verb, start)
        if kind == "chain":
            return self.chain_command(verb, start)
        if kind in ("set", "map"):
            return self.set_command(verb, kind, start)
        if kind == "element":
            fam = self.family()
            table, name = self.name(), self.name()
            elements = self.elements()
            return [Command(verb, "element", self.loc(start), fam, table, name, elements=elements)]
        if kind == "rule":
            return [self.rule_command(verb, start)]
        raise self.unexpected(obj, "table, chain, rule, set, map or element")

    def table_command(self, verb: str, start: Token) -> list[Command]:
        fam = self.family()
        if self.peek().text == "handle":
            raise self.error(self.peek(), "kemu's fake nft does not address tables by handle")
        name = self.name("table name")
        loc = self.loc(start)
        if self.peek().text != "{" or verb not in ("add", "create"):
            return [Command(verb, "table", loc, fam, name, name)]
        self.expect("{")
        comment, flags = "", set()
        chains: list[Command] = []
        sets: list[Command] = []
        rules: list[Command] = []
        while True:
            self.skip_blank()
            t = self.next()
            if t.text == "}" and t.kind == "punct":
                break
            if t.text == "comment":
                comment = self.name("string")
            elif t.text == "flags":
                flags |= self.word_list()
            elif t.text == "chain":
                cname = self.name("chain name")
                cloc = self.loc(t)
                decl, body = self.chain_block()
                chains.append(Command("add", "chain", cloc, fam, name, cname, chain=decl))
                rules += [Command("add", "rule", rl, fam, name, cname, rule=r) for r, rl in body]
            elif t.text in ("set", "map"):
                sname = self.name("set name")
                sets.append(Command("add", t.text, self.loc(t), fam, name, sname, set=self.set_block(t.text == "map")))
            else:
                raise self.unexpected(t, "chain, set, map, comment or flags")
            self.end_statement()
        table = Command(verb, "table", loc, fam, name, name, comment=comment, flags=frozenset(flags))
        return [table, *chains, *sets, *rules]

    def chain_command(self, verb: str, start: Token) -> list[Command]:
        fam = self.family()
        table = self.name("table name")
        if self.peek().text == "handle":
            raise self.error(self.peek(), "kemu's fake nft does not address chains by handle")
        name = self.name("chain name")
        if verb == "rename":
            new = self.name("chain name")
            return [Command(verb, "chain", self.loc(start), fam, table, name, new_name=new)]
        loc = self.loc(start)
        if self.peek().text == "{" and verb in ("add", "create"):
            decl, body = self.chain_block()
            head = Command(verb, "chain", loc, fam, table, name, chain=decl)
            return [head, *[Command("add", "rule", rl, fam, table, name, rule=r) for r, rl in body]]
        return [Command(verb, "chain", loc, fam, table, name, chain=ChainDecl() if verb in ("add", "create") else None)]

    def chain_block(self) -> tuple[ChainDecl, list[tuple[Rule, Loc]]]:
        self.expect("{")
        spec: dict[str, str | int] = {}
        rules: list[tuple[Rule, Loc]] = []
        while True:
            self.skip_blank()
            t = self.peek()
            if t.kind == "punct" and t.text == "}":
                self.next()
                break
            if t.text == "type" and t.kind == "word" and not rules:
                self.next()
                spec["type"] = self.name("chain type")
                self.expect("hook")
                spec["hook"] = self.name("hook")
                if self.peek().text == "device":
                    self.next()
                    spec["device"] = self.name("device")
                self.expect("priority")
                spec["priority"] = self.priority(str(spec["hook"]))
            elif t.text == "policy" and t.kind == "word" and not rules:
                self.next()
                spec["policy"] = self.name("accept or drop")
            elif t.text == "comment" and t.kind == "word" and self.peek(1).kind == "string" and self.after_string_ends(2):
                self.next()
                spec["comment"] = self.next().text
            else:
                rules.append(self.rule_body(t))
                continue
            self.end_statement()
        decl = ChainDecl(**spec)  # type: ignore[arg-type]  # keys and value types checked by the grammar above
        if decl.hook and not decl.policy:
            decl = ChainDecl(decl.type, decl.hook, decl.priority, "accept", decl.device, decl.comment)
        return decl, rules

    def after_string_ends(self, ahead: int) -> bool:
        t = self.peek(ahead)
        return t.kind in ("nl", "eof") or (t.kind == "punct" and t.text in ";}")

    def priority(self, hook: str) -> int:
        t = self.next()
        base: int
        names = PRIORITIES  # the bridge family's names mean other numbers: kemu writes numbers
        try:
            base = int(t.text)
        except ValueError:
            if t.text not in names:
                raise self.error(t, f"'{t.text}' is not a valid priority") from None
            base = names[t.text]
        while self.peek().text in ("+", "-") and self.peek(1).kind == "word":
            sign = 1 if self.next().text == "+" else -1
            base += sign * int(self.next().text)
        return base

    def rule_body(self, start: Token) -> tuple[Rule, Loc]:
        """Tokens up to the end of the statement (newlines inside braces do not end it)."""
        toks: list[Token] = []
        depth = 0
        while True:
            t = self.peek()
            if t.kind == "eof":
                break
            if depth == 0 and (t.kind == "nl" or (t.kind == "punct" and t.text in ";}")):
                break
            self.next()
            if t.kind == "nl":
                continue
            if t.kind == "punct" and t.text == "{":
                depth += 1
            elif t.kind == "punct" and t.text == "}":
                depth -= 1
            toks.append(t)
        if depth != 0:
            raise self.unexpected(self.peek(), "'}'")
        if not toks:
            raise self.unexpected(self.peek(), "a rule")
        comment = ""
        if len(toks) >= 2 and toks[-2].kind == "word" and toks[-2].text == "comment" and toks[-1].kind == "string":
            comment = toks[-1].text
            toks = toks[:-2]
        words = tuple(quote(t.text) if t.kind == "string" else t.text for t in toks)
        return Rule(words, comment), self.loc(start)

    def rule_command(self, verb: str, start: Token) -> Command:
        fam = self.family()
        table, chain = self.name("table name"), self.name("chain name")
        position = None
        if self.peek().text in ("position", "handle", "index"):
            kind = self.next().text
            num = self.next()
            if not num.text.isdigit():
                raise self.unexpected(num, "number")
            position = (kind, int(num.text))
        rule = None
        if verb in ("add", "insert", "replace", "create"):
            rule, _ = self.rule_body(self.peek())
        elif position is None or position[0] != "handle":
            raise self.unexpected(self.peek(), "handle")
        return Command("add" if verb == "create" else verb, "rule", self.loc(start), fam, table, chain, rule=rule, position=position)

    def set_command(self, verb: str, kind: str, start: Token) -> list[Command]:
        fam = self.family()
        table = self.name("table name")
        if self.peek().text == "handle":
            raise self.error(self.peek(), "kemu's fake nft does not address sets by handle")
        name = self.name("set name")
        loc = self.loc(start)
        decl = None
        if verb in ("add", "create"):
            if self.peek().text != "{":
                raise self.unexpected(self.peek(), "'{'")
            decl = self.set_block(kind == "map")
        return [Command(verb, kind, loc, fam, table, name, set=decl)]

    def word_list(self) -> set[str]:
        out = {self.name()}
        while self.peek().text == ",":
            self.next()
            out.add(self.name())
        return out

    def type_list(self, typeof: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
        key: list[str] = []
        data: list[str] = []
        cur, words = key, list[str]()
        while True:
            t = self.peek()
            if self.at_end() or (t.kind == "punct" and t.text == ":") or t.text == ".":
                if not words:
                    raise self.unexpected(t, "a type")
                expr = " ".join(words)
                if typeof and expr != "verdict":
                    if expr not in TYPEOF:
                        raise self.error(t, f"kemu's fake nft knows no type for 'typeof {expr}'")
                    expr = TYPEOF[expr]
                cur.append(expr)
                words = []
                if self.at_end():
                    return tuple(key), tuple(data)
                self.next()
                if t.text == ":":
                    if cur is data:
                        raise self.unexpected(t)
                    cur = data
                continue
            words.append(self.next().text)

    def set_block(self, is_map: bool) -> SetDecl:
        self.expect("{")
        fields: dict[str, object] = {"is_map": is_map}
        while True:
            self.skip_blank()
            t = self.next()
            if t.kind == "punct" and t.text == "}":
                break
            if t.text in ("type", "typeof"):
                fields["key_type"], fields["data_type"] = self.type_list(t.text == "typeof")
            elif t.text == "flags":
                fields["flags"] = frozenset(self.word_list())
            elif t.text == "timeout":
                fields["timeout"] = self.name("time")
            elif t.text == "size":
                fields["size"] = int(self.name("number"))
            elif t.text == "comment":
                fields["comment"] = self.name("string")
            elif t.text in ("gc-interval", "policy"):
                self.name()
            elif t.text == "counter":
                pass
            elif t.text == "auto-merge":  # nft would merge overlaps instead of refusing them
                raise self.error(t, "kemu's fake nft does not model auto-merge")
            elif t.text == "elements":
                self.expect("=")
                fields["elements"] = self.elements()
            else:
                raise self.unexpected(t, "type, flags, timeout, size, elements, comment")
            self.end_statement()
        decl = SetDecl(**fields)  # type: ignore[arg-type]  # keys and value types checked by the grammar above
        if not decl.key_type:
            raise self.unexpected(self.toks[self.i - 1], "a type declaration")
        if is_map != bool(decl.data_type):
            raise self.error(self.toks[self.i - 1], "a map needs 'type KEY : DATA', a set no data type")
        return decl

    def elements(self) -> tuple[RawElement, ...]:
        self.expect("{")
        out: list[RawElement] = []
        while True:
            while self.peek().kind == "nl":
                self.next()
            if self.peek().text == "}" and self.peek().kind == "punct":
                self.next()
                return tuple(out)
            out.append(self.element())
            while self.peek().kind == "nl":
                self.next()
            t = self.peek()
            if t.kind == "punct" and t.text == ",":
                self.next()
            elif not (t.kind == "punct" and t.text == "}"):
                raise self.unexpected(t, "',' or '}'")

    def element(self) -> RawElement:
        start = self.peek()
        key: list[str] = []
        data: list[str] | None = None
        cur: list[str] = []
        words: list[str] = []
        options = False
        while True:
            t = self.peek()
            if t.kind in ("nl", "eof") or (t.kind == "punct" and t.text in ",}"):
                break
            self.next()
            if options:
                continue
            if t.kind == "word" and t.text in ELEMENT_OPTIONS and words:
                options = True  # per-element timeout/comment/counter: not modelled
                continue
            if t.kind == "punct" and t.text == ":" and data is None:
                cur.append("".join(words))
                key, cur, words, data = cur, [], [], []
                continue
            if t.text == "." and t.kind == "word":
                cur.append("".join(words) if data is None or not _is_verdict(words) else " ".join(words))
                words = []
                continue
            words.append(quote(t.text) if t.kind == "string" else t.text)
        if not words:
            raise self.unexpected(self.peek(), "a value")
        cur.append(" ".join(words) if data is not None and _is_verdict(words) else "".join(words))
        loc = Loc(start.line, start.col, start.col + len(start.text) - 1)
        if data is None:
            return RawElement(tuple(cur), None, loc)
        return RawElement(tuple(key), tuple(cur), loc)


def _is_verdict(words: list[str]) -> bool:
    return bool(words) and words[0] in ("accept", "drop", "continue", "return", "jump", "goto")


def parse(text: str) -> list[Command]:
    """The commands of a script, in the order the kernel sees them; CommandError (with
    nft's message shape) on a syntax error."""
    return Parser(text).script()
