"""How HAProxy 2.6 spells a literal: config words, keyword arguments, log-format strings,
ACL patterns and proxy names (configuration.txt §2.2 "Quoting and escaping").

Every user-provided string reaches the configuration through one of these, so a header
value with spaces, quotes, `%`, `#` or `$`, or a regex with backslashes, stays what it is.
"""

from __future__ import annotations

import re

from emu.digest import short_hash

# Characters a word may hold unquoted: no space, quote, backslash, `#`, `$` or brace (an
# ACL delimiter). An empty word ends a line's arguments: an empty literal needs another
# spelling (see `lf_literal`, `acl_string`).
_BARE = re.compile(r"[A-Za-z0-9_./:@+=~^*,!?<>|()\[\]-]+")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def _strong(s: str, control_escapes: bool) -> str:
    """s strongly quoted: single quotes interpret nothing, so a `'` is spelled `\\'`
    between quoted runs, and control characters (not representable inside single quotes)
    as `\\xNN` outside them."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append("'" + "".join(run) + "'")
            run.clear()

    for ch in s:
        code = ord(ch)
        if ch == "'":
            flush()
            out.append("\\'")
        elif control_escapes and (code < 0x20 or code == 0x7F):
            flush()
            out.append(f"\\x{code:02x}")
        else:
            run.append(ch)
    flush()
    return "".join(out)


def word(s: str) -> str:
    """One configuration word that the parser turns back into exactly `s` (not empty)."""
    if not s:
        raise ValueError("HAProxy cannot take an empty word")
    if _BARE.fullmatch(s):
        return s
    return _strong(s, control_escapes=True)


def env_word(s: str) -> str:
    """A weakly quoted word: `${VAR}` references in `s` are expanded by HAProxy from its
    environment (a per-pod socket path); quotes and backslashes stay literal."""
    escaped = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(f"\\x{ord(c):02x}" if ord(c) < 0x20 else c for c in escaped) + '"'


def arg(s: str) -> str:
    """A keyword argument (inside `fetch(...)`) read literally by the second-level
    argument parser, which knows quotes and `\\'` but not `\\xNN`. The whole expression
    must then go through `word`."""
    if _BARE.fullmatch(s) and not re.search(r"[,()]", s):
        return s
    return _strong(s, control_escapes=False) or "''"


def lf_literal(s: str) -> str:
    """Text inside a log-format string (set-header values, redirect locations, paths):
    `%` introduces an expression, so a literal one is doubled. An empty value is an
    expression that yields nothing (a variable never set)."""
    return s.replace("%", "%%") if s else "%[var(txn.kemu_empty)]"


def acl_string(fetch: str, value: str) -> str:
    """An anonymous ACL: `fetch` equals `value` exactly (case-sensitive). `--` ends the
    flags so a value starting with `-` is a pattern; `}` alone would close the ACL and an
    empty value cannot be a word, so those take another match method."""
    if value == "":
        return "{ " + word(fetch) + " -m len 0 }"
    if value in ("}", "{"):
        return "{ " + word(fetch) + " -m reg -- " + word("^" + re.escape(value) + "$") + " }"
    return "{ " + word(fetch) + " -m str -- " + word(value) + " }"


def acl_pattern(fetch: str, method: str, pattern: str) -> str:
    """An anonymous ACL with one pattern for `-m beg|end|reg` (never empty here)."""
    return "{ " + word(fetch) + f" -m {method} -- " + word(pattern) + " }"


def join(conds: list[str]) -> str:
    """ACLs that must all hold, as one condition (empty ones left out)."""
    return " ".join(c for c in conds if c)


def full_regex(pattern: str) -> str:
    """The Gateway API's RegularExpression matches the whole value: anchor it."""
    return "^(?:" + pattern + ")$"


def digest(*parts: object) -> str:
    return short_hash(*parts)


def proxy_name(prefix: str, model_name: str, key: object) -> str:
    """A safe, unique HAProxy proxy name: the model name's safe characters (for humans)
    and a hash of everything that makes the section distinct."""
    readable = _SAFE_NAME.sub("_", model_name).strip("_")[:48]
    return f"{prefix}-{readable}-{digest(model_name, key)}" if readable else f"{prefix}-{digest(model_name, key)}"


def comment(s: str) -> str:
    """A one-line comment holding a model name (control characters made visible)."""
    return "# " + "".join(c if c.isprintable() else "?" for c in s)
