"""Containers with a `command` kemu can run on this machine: real processes in the pod.

Each runs through `python -m emu.dataplane.enter NETNS HOSTNAME [--env-file F] [--workdir D]
-- ARGV`, which joins the pod's network namespace and a UTS namespace carrying the pod's
hostname, sets the container's environment, then execs the command (so the recorded pid
is the container's own). Output goes to a log file.

Busybox images (the usual `sh -c`, `sleep 3600`, `wget` test clients) run through this
machine's /bin/busybox (Debian's `busybox` package), so they behave as the image would.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from emu.dataplane.ownership import ProcRef
from emu.model.objects import Container

BUSYBOX = "/bin/busybox"


def image_repository(image: str) -> str:
    """The last path component of an image reference, without tag or digest:
    `docker.io/library/busybox@sha256:…` and `localhost:5000/busybox:1.36` → `busybox`."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


@functools.cache
def busybox_applets() -> frozenset[str]:
    """The applets this machine's busybox has (empty when busybox is not installed)."""
    if not os.access(BUSYBOX, os.X_OK):
        return frozenset()
    try:
        out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(out.split())


def _busybox_argv(c: Container) -> list[str] | None:
    # The image has no ENTRYPOINT and CMD ["sh"]: `args` alone replace CMD, and with
    # neither it runs `sh`, which exits at once on a closed stdin (as the real one does).
    argv = [*c.command, *c.args] if c.command else list(c.args) or ["sh"]
    applet = os.path.basename(argv[0])
    if applet in busybox_applets():
        return [BUSYBOX, applet, *argv[1:]]  # busybox picks the applet from argv[1]
    return None


ECHO_BASIC = "echo-basic"  # gateway-api/conformance/echo-basic


def runnable_argv(c: Container) -> list[str] | None:
    """The argv to run for a container, or None when the built-in server stands in.

    Kubernetes runs `command` + `args`; kemu can only run it if the program exists on
    this machine (an image's /agnhost does not: then the declared ports are served).
    A busybox image's applets (sh, sleep, wget, nc, …) run through /bin/busybox.
    """
    if ECHO_BASIC in (getattr(c, "image", "") or "") and not c.command:
        # The Gateway API conformance backend: kemu's stand-in serves its JSON on :3000.
        return [sys.executable, "-m", "emu.workloads.echo_basic"]
    if image_repository(getattr(c, "image", "") or "") == "busybox":
        bb = _busybox_argv(c)
        if bb is not None:
            return bb
    argv = [*c.command, *c.args]
    if not c.command:
        return None
    prog = argv[0]
    found = prog if os.path.isabs(prog) and os.access(prog, os.X_OK) else shutil.which(prog)
    return [found, *argv[1:]] if found else None


@dataclass
class Process:
    pod: str
    container: str
    popen: subprocess.Popen[bytes]
    ref: ProcRef


def write_env_file(path: str, env: dict[str, str]) -> None:
    """JSON {name: value}, readable by root only (it may hold Secret values)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT
        json.dump(env, f)


def start(
    pod: str,
    c: Container,
    argv: list[str],
    netns_name: str,
    hostname: str,
    log_path: str,
    env_file: str = "",
    workdir: str = "",
    etc_dir: str = "",
) -> Process:
    """Start a container's process. With `env_file` (see write_env_file) it gets that
    environment (on top of PATH, HOME, HOSTNAME) instead of kemu's; `workdir` is its
    working directory if it exists; `etc_dir` holds its resolv.conf and hosts."""
    opts: list[str] = []
    if env_file:
        opts += ["--env-file", env_file]
    if workdir:
        opts += ["--workdir", workdir]
    if etc_dir:
        opts += ["--etc-dir", etc_dir]
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "emu.dataplane.enter", netns_name, hostname, *opts, "--", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the shell must not reach containers
        )
    ref = ProcRef.of(popen.pid) or ProcRef(popen.pid, 0)
    return Process(pod, c.name, popen, ref)


def signal_all(procs: list[Process], sig: int = signal.SIGTERM) -> None:
    for p in procs:
        if p.popen.poll() is None:
            p.popen.send_signal(sig)


def wait_all(procs: list[Process], deadline: float) -> bool:
    """Wait until every process exited or the monotonic deadline passed; True if all did."""
    for p in procs:
        try:
            p.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
    return True


def stop(procs: list[Process], grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (a pod's termination, shortened)."""
    for p in procs:
        if p.popen.poll() is None:
            p.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.popen.kill()
            p.popen.wait(5)
