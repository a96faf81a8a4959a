"""Splitting `kemu`'s command line as kubectl does: flags anywhere before `--`.

`kemu -n x get pods -o wide`, `kemu get pods -n x --cluster c -v` and
`kemu exec toolbox -n tools -c shell -- hostname` all parse: everything before the first
`--` is options and positional words in any order (argparse's intermixed parsing);
everything after it is the command, untouched.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence

from emu.errors import KemuError

# Options that may come before the verb and take a value (`kemu -n x get pods`,
# `kemu --cluster c get pods`): kubectl's global flags, as far as kemu has them.
PRE_VERB_VALUE_OPTIONS = frozenset({"--cluster", "-n", "--namespace"})

TRUE_WORDS = frozenset({"true", "1", "yes", "t", "y"})
FALSE_WORDS = frozenset({"false", "0", "no", "f", "n"})


class UsageError(KemuError):
    """The command line is wrong (exit code 2), said in one line."""

    exit_code = 2


def split_dashdash(words: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """(words before the first `--`, words after it — None when there is no `--`)."""
    words = list(words)
    if "--" not in words:
        return words, None
    i = words.index("--")
    return words[:i], words[i + 1 :]


def find_verb(words: Sequence[str], value_options: Iterable[str] = PRE_VERB_VALUE_OPTIONS) -> int | None:
    """Where the command word is: the first word that is neither an option nor an option's value.

    Returns None when there is no such word (only options, e.g. `kemu --help`). A first
    positional word that is not a known verb is returned too: the caller says it is unknown.
    """
    takes_value = set(value_options)
    skip = False
    for i, w in enumerate(words):
        if skip:
            skip = False
            continue
        if w.startswith("-") and len(w) > 1:
            skip = w in takes_value  # `-n x`, `--cluster c`; `--cluster=c` and `-nx` are one word
            continue
        return i
    return None


def bool_flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's flags that take no value, by option string (`--wait`, `--overwrite`)."""
    out: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse has no public accessor
        if action.nargs == 0 and not isinstance(action, argparse._HelpAction):
            for s in action.option_strings:
                if s.startswith("--"):
                    out[s] = action
    return out


def normalize_bools(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """kubectl's `--flag=true|false` for flags that take no value in argparse.

    `--wait=false` becomes `--no-wait` (a BooleanOptionalAction), `--overwrite=true`
    becomes `--overwrite`, `--overwrite=false` is dropped (false is its default).
    """
    flags = bool_flags(parser)
    out: list[str] = []
    for w in words:
        name, eq, value = w.partition("=")
        action = flags.get(name) if eq and name.startswith("--") else None
        if action is None:
            out.append(w)
            continue
        v = value.lower()
        if v not in TRUE_WORDS | FALSE_WORDS:
            raise UsageError(f'invalid argument "{value}" for "{name}" flag: expected true or false')
        truth = v in TRUE_WORDS
        if isinstance(action, argparse.BooleanOptionalAction):
            out.append(name if truth else "--no-" + name[2:])
        elif isinstance(action, argparse._StoreFalseAction):
            if not truth:
                out.append(name)
        elif truth:
            out.append(name)
    return out


def parse_intermixed(parser: argparse.ArgumentParser, words: Sequence[str]) -> argparse.Namespace:
    """Options and positional words in any order (`get pods -n x a b`)."""
    return parser.parse_intermixed_args(normalize_bools(parser, words))
