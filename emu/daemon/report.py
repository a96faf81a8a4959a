"""Reading a detached daemon's bring-up report (its --report-fd pipe): one line per
event, `PROGRESS phase done total`, `READY [unready pods]` or `ERROR exit_code message`.
Shared by `kemu up -d` (emu/cli/lifecycle_cmd.py) and the Python API (emu/api/launch.py)."""

from __future__ import annotations

import select
import subprocess
from collections.abc import Iterator
from typing import BinaryIO

from emu.errors import KemuError

UP_DEADLINE = 900.0  # a detached bring-up that says nothing for this long has hung


class ReportSilent(KemuError):
    """The daemon said nothing for UP_DEADLINE seconds (it is still running)."""


def report_lines(rf: BinaryIO, proc: subprocess.Popen[bytes], name: str) -> Iterator[tuple[str, str]]:
    """(WORD, rest) for each line the daemon reports, until the caller stops reading.
    Raises ReportSilent when nothing comes for UP_DEADLINE s, KemuError when the daemon
    exits before it said READY or ERROR."""
    buf = b""
    while True:
        ready, _, _ = select.select([rf], [], [], UP_DEADLINE)
        if not ready:
            raise ReportSilent(f"cluster {name}: the daemon reported nothing for {UP_DEADLINE:.0f} s")
        chunk = rf.read(4096)
        if not chunk:
            code = proc.wait(30)
            raise KemuError(f"cluster {name}: the daemon exited ({code}) before the cluster was ready")
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            word, _, rest = line.decode().partition(" ")
            yield word, rest
