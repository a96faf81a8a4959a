"""Hosting a cluster in this process: bring it up, serve its control socket, take it
down on `kemu down`, SIGTERM or SIGINT. Used by `kemu up` (foreground, with the shell)
and by the detached daemon (`kemu up -d`)."""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
from collections.abc import Callable
from types import FrameType

from emu.cluster.runtime import Cluster, Progress
from emu.daemon.server import ControlServer
from emu.model.objects import ClusterConfig

log = logging.getLogger(__name__)


# The descriptor table is sized for this many at once (see raise_fd_limit).
FD_TABLE_PRESIZE = 8192


def raise_fd_limit() -> None:
    """Every served port is a socket: 1000 pods × 4 ports needs more than the default 1024.

    The kernel grows a process's descriptor table by doubling, and each growth in a
    process with threads waits for an RCU grace period while every thread that opens a
    descriptor waits for it (fs/file.c expand_fdtable): seven of them, tens of ms each,
    in the middle of a 1,000-pod bring-up. Taking a high descriptor once, now, sizes the
    table in one step (64 KiB for 8,192)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    high = FD_TABLE_PRESIZE - 1
    if hard <= high or _is_open(high):
        return
    fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.close(os.dup2(fd, high, inheritable=False))
    finally:
        os.close(fd)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class HostedCluster:
    def __init__(self, config: ClusterConfig, progress: Progress | None = None) -> None:
        raise_fd_limit()
        self.cluster = Cluster(config, progress)
        self.done = threading.Event()
        self.control: ControlServer | None = None
        self._on_down_extra: Callable[[], None] | None = None

    def start(self, ready_timeout: float) -> list[str]:
        """Up, serving, and (within `ready_timeout`) ready; returns pods still unready."""
        self.cluster.up()
        try:
            self.control = ControlServer(self.cluster, self._down_requested)
            self.control.start()
        except BaseException:
            self.cluster.down()
            raise
        return self.cluster.wait_ready(ready_timeout)

    def _down_requested(self) -> None:
        self.done.set()
        if self._on_down_extra is not None:
            self._on_down_extra()

    def on_remote_down(self, fn: Callable[[], None]) -> None:
        self._on_down_extra = fn

    def stop(self) -> None:
        if self.control is not None:
            self.control.stop()
        self.cluster.down()

    def wait_for_signal(self) -> None:
        """Block the main thread until `kemu down`, SIGTERM or SIGINT."""

        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: taking cluster %s down", signum, self.cluster.name)
            self.done.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        self.done.wait()
