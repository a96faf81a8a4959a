"""nft script text → tokens, and the token stream the script parser reads, with nft's
error messages (`/dev/stdin:LINE:COL-COL: Error: ...`, the line, carets)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from emu.errors import CommandError
from emu.netfilter.backend import NFT_ARGV
from emu.netfilter.ruleset import quote

_OPERATORS = ("==", "!=", "<=", ">=")


class Token(NamedTuple):
    kind: str  # "word" | "string" | "punct" | "nl" | "eof"
    text: str
    line: int
    col: int  # 1-based


@dataclass(frozen=True)
class Loc:
    line: int
    col: int
    end: int


def error_text(lines: list[str], loc: Loc, message: str) -> str:
    """nft's error shape: where, what, the line, carets under the culprit."""
    text = lines[loc.line - 1] if 0 < loc.line <= len(lines) else ""
    width = max(1, loc.end - loc.col + 1)
    return f"/dev/stdin:{loc.line}:{loc.col}-{loc.end}: Error: {message}\n{text}\n{' ' * (loc.col - 1)}{'^' * width}\n"


def fail(lines: list[str], loc: Loc, message: str) -> CommandError:
    return CommandError(list(NFT_ARGV), 1, error_text(lines, loc, message))


_TOKEN = re.compile(
    r"""[ \t\r]*(?:(?P<nl>\n)|(?P<cont>\\\n)|(?P<comment>\#[^\n]*)|(?P<string>"[^"\n]*")
    |(?P<punct>[{},;()])|(?P<word>[^\s"\#{},;()]+)|(?P<bad>.))""",
    re.X,
)


def tokenize(text: str) -> list[Token]:
    out: list[Token] = []
    line, line_start = 1, 0
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        start = m.start(kind)  # type: ignore[arg-type]  # lastgroup is set: every alternative is a named group
        col = start - line_start + 1
        if kind == "word":
            w = m.group(kind)
            if w[-1] in ":=" or w == "@":
                out.extend(_split_word(w, line, col))
            else:
                out.append(Token("word", w, line, col))
        elif kind == "nl" or kind == "cont":  # a backslash continues the line
            if kind == "nl":
                out.append(Token("nl", "\n", line, col))
            line, line_start = line + 1, m.end()
        elif kind == "punct":
            out.append(Token("punct", m.group(kind), line, col))
        elif kind == "string":
            out.append(Token("string", m.group(kind)[1:-1], line, col))
        elif kind == "bad":
            raise fail(text.split("\n"), Loc(line, col, col), "unterminated string")
    out.append(Token("eof", "", line, len(text) - line_start + 1))
    return _merge_refs(out) if any(t.text == "@" for t in out) else out


def _split_word(w: str, line: int, col: int) -> list[Token]:
    """`:` and a lone `=` are punctuation, also stuck to a word (`0:`, `elements=`)."""
    if w in (":", "="):
        return [Token("punct", w, line, col)]
    for p in (":", "="):
        if len(w) > 1 and w.endswith(p) and not w.endswith("::") and w not in _OPERATORS:
            return [Token("word", w[:-1], line, col), Token("punct", p, line, col + len(w) - 1)]
    return [Token("word", w, line, col)]


def _merge_refs(tokens: list[Token]) -> list[Token]:
    """`@"name"` is one reference."""
    out: list[Token] = []
    for t in tokens:
        prev = out[-1] if out else None
        if t.kind == "string" and prev and prev.kind == "word" and prev.text == "@" and prev.line == t.line and prev.col + 1 == t.col:
            out[-1] = Token("word", "@" + quote(t.text), prev.line, prev.col)
        else:
            out.append(t)
    return out


class TokenStream:
    """Tokens with look-ahead, `define`d variables expanded where they are used."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.toks = tokenize(text)
        self.i = 0
        self.defines: dict[str, list[Token]] = {}

    # -- tokens --------------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        j = self.i + ahead
        while True:
            t = self.toks[j] if j < len(self.toks) else self.toks[-1]
            if t.text[:1] == "$" and t.kind == "word":
                name = t.text[1:]
                if name not in self.defines:
                    raise self.error(t, f"unknown identifier '{name}'")
                self.toks[j : j + 1] = [Token(d.kind, d.text, t.line, t.col) for d in self.defines[name]]
                continue
            return t

    def next(self) -> Token:
        t = self.peek()
        self.i += 1
        return t

    def error(self, t: Token, message: str) -> CommandError:
        return fail(self.lines, Loc(t.line, t.col, t.col + max(len(t.text), 1) - 1), message)

    def unexpected(self, t: Token, wanted: str = "") -> CommandError:
        what = "end of file" if t.kind == "eof" else "newline" if t.kind == "nl" else repr(t.text)
        return self.error(t, f"syntax error, unexpected {what}" + (f", expecting {wanted}" if wanted else ""))

    def expect(self, text: str) -> Token:
        t = self.next()
        if t.text != text or t.kind in ("string", "eof", "nl"):
            raise self.unexpected(t, text)
        return t

    def name(self, what: str = "identifier") -> str:
        t = self.next()
        if t.kind not in ("word", "string") or (t.kind == "word" and not t.text):
            raise self.unexpected(t, what)
        return t.text

    def at_end(self) -> bool:
        t = self.peek()
        return t.kind in ("nl", "eof") or (t.kind == "punct" and t.text in ";}")

    def end_statement(self) -> None:
        if not self.at_end():
            raise self.unexpected(self.peek(), "end of statement")
        if self.peek().text in (";", "\n"):
            self.next()

    def skip_blank(self) -> None:
        while self.peek().kind == "nl" or self.peek().text == ";":
            self.next()

    def loc(self, start: Token) -> Loc:
        last = self.toks[max(self.i - 1, 0)]
        end = last.col + len(last.text) - 1 if last.line == start.line else len(self.lines[start.line - 1])
        return Loc(start.line, start.col, max(end, start.col))
