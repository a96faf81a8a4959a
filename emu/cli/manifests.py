"""Reading `-f` inputs as kubectl does: files, directories (`-R` descends), `-` (stdin), URLs.

The CLI reads every input itself and sends the texts to the daemon, each with the label
the user gave (the path as typed, `<stdin>`, or the URL), so messages name it.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from typing import TextIO

from emu.cli.argv import UsageError

EXTENSIONS = (".yaml", ".yml", ".json")
STDIN_LABEL = "<stdin>"


def _dir_files(path: str, recursive: bool) -> list[str]:
    """Manifest files of a directory in name order; subdirectories (in the same order) with -R."""
    out: list[str] = []
    for entry in sorted(os.listdir(path)):
        full = os.path.join(path, entry)
        if os.path.isdir(full):
            if recursive:
                out += _dir_files(full, recursive)
        elif entry.endswith(EXTENSIONS):
            out.append(full)
    return out


def _read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f'error reading "{path}": {e.strerror or e}') from e
    except UnicodeDecodeError as e:
        raise UsageError(f'error reading "{path}": not UTF-8 text ({e.reason})') from e


def _read_url(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            data: bytes = r.read()
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise UsageError(f'unable to read URL "{url}": {e}') from e
    return data.decode("utf-8", errors="replace")


def read_inputs(names: list[str], recursive: bool = False, stdin: TextIO | None = None, verb: str = "apply") -> list[list[str]]:
    """[[label, text], ...] for every `-f` argument, in the order given.

    A directory contributes its *.yaml, *.yml and *.json files in name order (with
    `recursive`, its subdirectories' too); `-` is standard input (once).
    """
    if not names:
        raise UsageError("must specify one of -f and -k")
    docs: list[list[str]] = []
    used_stdin = False
    for name in names:
        if name == "-":
            if used_stdin:
                raise UsageError("-f - (standard input) may be given only once")
            used_stdin = True
            docs.append([STDIN_LABEL, (stdin if stdin is not None else sys.stdin).read()])
        elif name.startswith(("http://", "https://")):
            docs.append([name, _read_url(name)])
        elif os.path.isdir(name):
            docs += [[p, _read_file(p)] for p in _dir_files(name, recursive)]
        elif os.path.exists(name):
            docs.append([name, _read_file(name)])
        else:
            raise UsageError(f'the path "{name}" does not exist')
    if not docs:
        raise UsageError(f"no objects passed to {verb} (no *.yaml, *.yml or *.json file in {', '.join(names)})")
    return docs
