"""What the kubelet reports about a pod and its containers (its status), kept per pod.
Which lock guards which field is written down in emu/cluster/kubelet.py."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from emu.model.objects import Pod
from emu.workloads import processes


@dataclass
class ContainerState:
    proc: processes.Process | None = None
    restarts: int = 0
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    exit_code: int | None = None
    started_at: float = 0.0
    restart_at: float = 0.0  # when a crashed container may start again
    started: bool = True  # startupProbe passed (or none)


@dataclass
class PodState:
    """Status of one pod as the kubelet would report it."""

    pod: Pod
    node: str = ""
    ip: str = ""
    netns: str = ""
    phase: str = "Pending"
    ready: dict[str, bool] = field(default_factory=dict)  # container → ready
    started: float = 0.0
    containers: dict[str, ContainerState] = field(default_factory=dict)
    init_done: int = 0  # init containers completed
    probes: list[Future[Any]] = field(default_factory=list)
    terminating: bool = False
    finalizer: threading.Thread | None = None
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # container → its environment
    unschedulable: str = ""  # the scheduler's reason, while Pending
    etc_dir: str = ""  # its resolv.conf and hosts
    ready_since: float = 0.0
    env_files: dict[str, str] = field(default_factory=dict)  # container → JSON env file (for exec)
    # Its node is NotReady (cut off): the node lifecycle controller marks its pods not
    # ready (MarkPodsNotReady), whatever their probes say, until the node is back.
    node_lost: bool = False

    @property
    def is_ready(self) -> bool:
        return self.phase == "Running" and all(self.ready.values()) and not self.node_lost

    @property
    def restarts(self) -> int:
        return sum(c.restarts for c in self.containers.values())

    @property
    def procs(self) -> list[processes.Process]:
        return [c.proc for c in self.containers.values() if c.proc is not None]

    @property
    def host_network(self) -> bool:
        return self.pod.spec.host_network
