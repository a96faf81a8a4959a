"""Running HAProxy 2.6 in master-worker mode: check a configuration, the command that
starts it, reloads that return once the new worker serves, and waiting for start-up.

The master (`-W -db -S <socket>`) stays in the foreground and owns the workers. A reload
(the master CLI's `reload`) re-executes the master, which reads the configuration again
and starts a new worker with the listening sockets of the old one; the old worker stops
accepting and finishes what it has. A configuration that does not load leaves the old
worker serving, and the master counts a failed reload: `show proc` tells both apart.
"""

from __future__ import annotations

import logging
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

from emu.errors import CommandError, DataplaneError

log = logging.getLogger(__name__)

POLL_S = 0.01
_MASTER = re.compile(r"^(\d+)\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]")
_WORKER = re.compile(r"^(\d+)\s+worker\s+(\d+)")


def binary() -> str:
    return shutil.which("haproxy") or "haproxy"


def _alerts(output: str) -> str:
    """HAProxy's alerts and warnings, without its version notices."""
    lines = [ln for ln in output.splitlines() if ln.strip() and "[NOTICE]" not in ln]
    return "\n".join(lines) or output.strip()


def check(cfg_path: str) -> None:
    """Raise CommandError with HAProxy's messages if the configuration does not load."""
    argv = [binary(), "-c", "-f", cfg_path]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as e:
        raise CommandError(argv, None, "haproxy -c did not finish") from e
    if result.returncode != 0:
        raise CommandError(argv, result.returncode, _alerts(result.stderr + result.stdout))


def argv(cfg_path: str, master_socket: str) -> list[str]:
    """Master-worker mode in the foreground, the master CLI on `master_socket`."""
    return [binary(), "-W", "-db", "-S", f"{master_socket},mode,600", "-f", cfg_path]


@dataclass(frozen=True)
class Worker:
    pid: int
    reloads: int  # how many reloads it has lived through (0: the newest)


@dataclass(frozen=True)
class ProcStatus:
    """The master CLI's `show proc`."""

    master_pid: int
    reloads: int
    failed: int  # failed reloads since the last good one
    workers: tuple[Worker, ...]  # the current worker(s)
    old_workers: tuple[Worker, ...]  # finishing their connections


def master_command(master_socket: str, command: str, timeout: float = 2.0) -> str:
    """One command on the master CLI."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(master_socket)
        s.sendall(command.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)  # no more commands: the master answers, then closes
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def parse_show_proc(text: str) -> ProcStatus:
    master = (0, 0, 0)
    current: list[Worker] = []
    old: list[Worker] = []
    section = "workers"
    for line in text.splitlines():
        if line.startswith("# "):
            section = line[2:].strip()
            continue
        if m := _MASTER.match(line):
            master = (int(m[1]), int(m[2]), int(m[3]))
        elif m := _WORKER.match(line):
            (old if section == "old workers" else current).append(Worker(int(m[1]), int(m[2])))
    if not master[0]:
        raise DataplaneError(f"unexpected answer to show proc: {text.strip()[:200]!r}")
    return ProcStatus(master[0], master[1], master[2], tuple(current), tuple(old))


def show_proc(master_socket: str) -> ProcStatus:
    return parse_show_proc(master_command(master_socket, "show proc"))


def _try_show_proc(master_socket: str) -> ProcStatus | None:
    """None while the master cannot answer (starting, or re-executing on a reload)."""
    try:
        return show_proc(master_socket)
    except (OSError, DataplaneError):
        return None


def _worker_serves(master_socket: str, pid: int) -> bool:
    """A worker answering the CLI runs its event loop, so its listeners accept."""
    try:
        return f"Pid: {pid}" in master_command(master_socket, f"@!{pid} show info")
    except OSError:
        return False


def wait_serving(master_socket: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once a worker serves; raise DataplaneError past the deadline (or as soon
    as `process`, the master, has exited)."""
    deadline = time.monotonic() + timeout
    while True:
        status = _try_show_proc(master_socket)
        if status is not None and any(_worker_serves(master_socket, w.pid) for w in status.workers):
            return
        if process is not None and process.poll() is not None:
            raise DataplaneError(f"haproxy exited ({process.returncode}) before serving")
        if time.monotonic() > deadline:
            raise DataplaneError(f"haproxy on {master_socket} not serving after {timeout:.1f}s")
        time.sleep(POLL_S)


def reload(master_socket: str, timeout: float = 5.0, cfg_path: str | None = None) -> None:
    """Reload and return once the new worker serves. A configuration that does not load
    raises DataplaneError saying the old worker keeps serving (with HAProxy's messages
    when `cfg_path` is given); so does a reload not done by the deadline."""
    deadline = time.monotonic() + timeout
    before = None
    while before is None:
        before = _try_show_proc(master_socket)
        if before is None:
            if time.monotonic() > deadline:
                raise DataplaneError(f"haproxy master on {master_socket} does not answer")
            time.sleep(POLL_S)
    old = {w.pid for w in before.workers} | {w.pid for w in before.old_workers}
    try:
        master_command(master_socket, "reload")
    except OSError as e:  # the master re-executes: the answer may be cut
        log.debug("reload command on %s: %s", master_socket, e)
    while True:
        status = _try_show_proc(master_socket)
        if status is not None and status.reloads > before.reloads:
            new = [w for w in status.workers if w.pid not in old]
            if new and _worker_serves(master_socket, new[0].pid):
                return
            if not new and status.failed > 0:
                raise DataplaneError(_failure(before, cfg_path))
        if time.monotonic() > deadline:
            raise DataplaneError(f"haproxy reload on {master_socket} not done after {timeout:.1f}s")
        time.sleep(POLL_S)


def _failure(before: ProcStatus, cfg_path: str | None) -> str:
    pids = ", ".join(str(w.pid) for w in before.workers) or "none"
    why = "see HAProxy's output"
    if cfg_path is not None:
        try:
            check(cfg_path)
        except CommandError as e:
            why = e.stderr
    return f"haproxy reload failed, the previous configuration keeps serving (worker {pids}): {why}"


def _cli_arg(s: str) -> str:
    # The stats CLI splits commands on ";" and words on spaces; a backslash escapes both.
    return s.replace("\\", "\\\\").replace(";", "\\;").replace(" ", "\\ ")


def _stats_command(stats_socket: str, line: str, timeout: float) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(stats_socket)
        s.sendall(line.encode() + b"\n")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


_VERSION = re.compile(r"New version created:\s*(\d+)")
MAP_BATCH = 200  # commands per line (the CLI reads a line into one buffer)


def replace_maps(stats_socket: str, maps: dict[str, str], timeout: float = 2.0) -> None:
    """Swap the contents of running maps (keyed by the file path the configuration names)
    for new ones without a reload, each atomically: `prepare map` makes an empty version,
    the entries go into it, `commit map` makes it current (HAProxy 2.4+). Raises
    DataplaneError if the worker refuses; the caller then reloads instead."""
    for path, content in maps.items():
        ref = _cli_arg(path)
        answer = _stats_command(stats_socket, f"prepare map {ref}", timeout)
        m = _VERSION.search(answer)
        if m is None:
            raise DataplaneError(f"prepare map {path}: {answer.strip()}")
        ver = m.group(1)
        adds = []
        for line in content.splitlines():
            key, _, value = line.partition(" ")
            if key:
                adds.append(f"add map @{ver} {ref} {_cli_arg(key)} {_cli_arg(value.strip())}")
        for i in range(0, len(adds), MAP_BATCH):
            answer = _stats_command(stats_socket, ";".join(adds[i : i + MAP_BATCH]), timeout)
            if answer.strip():
                raise DataplaneError(f"add map {path}: {answer.strip()[:200]}")
        answer = _stats_command(stats_socket, f"commit map @{ver} {ref}", timeout)
        if answer.strip():
            raise DataplaneError(f"commit map {path}: {answer.strip()}")
