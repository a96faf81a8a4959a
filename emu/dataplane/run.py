"""Running commands: an argv list, a timeout, and a failure that says what failed."""

from __future__ import annotations

import collections
import logging
import subprocess
import threading

from emu.dataplane import netns
from emu.errors import CommandError

log = logging.getLogger(__name__)

# The pids of recent commands (nsenter execs the command in place): the nftables monitor
# tells our own `iptables-restore` or `nft` transactions from someone else's by them.
_recent: collections.deque[int] = collections.deque(maxlen=512)
_recent_lock = threading.Lock()


def started_by_us(pid: int) -> bool:
    with _recent_lock:
        return pid in _recent


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
        proc = subprocess.Popen(
            full,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except FileNotFoundError as e:
        raise CommandError(argv, 127, f"{argv[0]} not found (run `make setup`)", netns_name) from e
    with _recent_lock:
        _recent.append(proc.pid)
    with proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            proc.kill()
            proc.communicate()
            raise CommandError(argv, None, f"no exit within {timeout}s", netns_name) from e
    cp = subprocess.CompletedProcess(full, proc.returncode, out, err)
    if check and cp.returncode != 0:
        raise CommandError(argv, cp.returncode, cp.stderr or cp.stdout, netns_name)
    return cp
