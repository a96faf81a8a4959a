"""Hosting a cluster in this process: bring it up, serve its control socket, take it
down on `kemu down`, SIGTERM or SIGINT. Used by `kemu up` (foreground, with the shell)
and by the detached daemon (`kemu up -d`)."""

from __future__ import annotations

import logging
import resource
import signal
import threading
from collections.abc import Callable
from types import FrameType

from emu.cluster.runtime import Cluster, Progress
from emu.daemon.server import ControlServer
from emu.model.objects import ClusterConfig

log = logging.getLogger(__name__)


def raise_fd_limit() -> None:
    """Every served port is a socket: 1000 pods × 4 ports needs more than the default 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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
