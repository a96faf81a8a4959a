"""Containers with a `command` kemu can run on this machine: real processes in the pod.

Each runs through `python -m emu.dataplane.enter NETNS HOSTNAME -- ARGV`, which joins the
pod's network namespace and a UTS namespace carrying the pod's hostname, then execs the
command (so the recorded pid is the container's own). Output goes to a log file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from emu.dataplane.ownership import ProcRef
from emu.model.objects import Container


def runnable_argv(c: Container) -> list[str] | None:
    """The argv to run for a container, or None when the built-in server stands in.

    Kubernetes runs `command` + `args`; kemu can only run it if the program exists on
    this machine (an image's /agnhost does not: then the declared ports are served).
    """
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


def start(pod: str, c: Container, argv: list[str], netns_name: str, hostname: str, log_path: str) -> Process:
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "emu.dataplane.enter", netns_name, hostname, "--", *argv],
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
