"""Running commands: an argv list, a timeout, and a failure that says what failed."""

from __future__ import annotations

import logging
import subprocess

from emu.dataplane import netns
from emu.errors import CommandError

log = logging.getLogger(__name__)


def run(
    argv: list[str],
    netns_name: str | None = None,
    input: str | None = None,
    timeout: float = 30.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    full = argv if netns_name is None else ["nsenter", f"--net={netns.path(netns_name)}", "--", *argv]
    log.debug("run %s", " ".join(full))
    try:
        cp = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise CommandError(argv, None, f"no exit within {timeout}s", netns_name) from e
    except FileNotFoundError as e:
        raise CommandError(argv, 127, f"{argv[0]} not found (run `make setup`)", netns_name) from e
    if check and cp.returncode != 0:
        raise CommandError(argv, cp.returncode, cp.stderr or cp.stdout, netns_name)
    return cp
