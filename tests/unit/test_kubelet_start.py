"""Kubelet.start_all: sandboxes made in parallel, containers started in order, and a
failed sandbox neither loses the pods made before it nor hides its error."""

from __future__ import annotations

import threading
import types
from concurrent.futures import Future
from typing import Any

import pytest

from emu.cluster.kubelet import Kubelet
from emu.cluster.pod_state import PodState
from emu.model.objects import Container, ContainerPort, Meta, Pod, PodSpec

pytestmark = pytest.mark.unit


class FakeNetwork:
    """Records which thread made which pod's namespace; fails for the pods named in `fail`."""

    def __init__(self, fail: set[str] = frozenset()) -> None:  # type: ignore[assignment]  # a frozenset is a read-only set
        self.fail = fail
        self.made: dict[str, int] = {}
        self.lock = threading.Lock()
        self.nodes: dict[str, Any] = {"n1": types.SimpleNamespace(fd=-1)}  # probes would use it; these pods have none

    def add_pod(self, key: str, node: str, ip: str, inside: Any) -> str:
        if key in self.fail:
            raise OSError(17, f"cannot make {key}")
        with self.lock:
            self.made[key] = threading.get_ident()
        return f"ns-{key}"


class FakeServer:
    def __init__(self) -> None:
        self.served: list[str] = []

    def serve_soon(self, pod: str, hostname: str, sockets: list[Any], log_path: str | None = None) -> Future[None]:
        self.served.append(pod)
        f: Future[None] = Future()
        f.set_result(None)
        return f


def kubelet(network: FakeNetwork, server: FakeServer) -> Kubelet:
    return Kubelet("t", network, server, None, "/nonexistent", threading.RLock(), lambda: None, lambda: ({}, {}))  # type: ignore[arg-type]  # fakes


def states(n: int) -> list[PodState]:
    pods = [Pod(Meta(f"p{i}", "default", {}), PodSpec((Container("c", ports=(ContainerPort(80),)),))) for i in range(n)]
    return [PodState(p, node="n1", ip=f"10.0.0.{i + 2}") for i, p in enumerate(pods)]


def test_every_pod_is_started_in_order_with_its_sandbox_whole() -> None:
    net, server = FakeNetwork(), FakeServer()
    sts = states(40)
    progress: list[int] = []
    kubelet(net, server).start_all(sts, progress.append)
    assert progress == list(range(1, 41))
    assert all(st.phase == "Running" and st.is_ready and st.netns == f"ns-{st.pod.key}" for st in sts)
    assert sorted(server.served) == sorted(st.pod.key for st in sts)
    assert threading.get_ident() not in net.made.values()  # made by the sandbox threads


def test_a_failed_sandbox_is_raised_and_the_pods_made_still_start() -> None:
    sts = states(30)
    net, server = FakeNetwork({"default/p5"}), FakeServer()
    with pytest.raises(OSError, match="cannot make default/p5"):
        kubelet(net, server).start_all(sts)
    started = {st.pod.key for st in sts if st.phase == "Running"}
    assert started == set(net.made)  # every pod with a whole sandbox runs, no other
    assert {f"default/p{i}" for i in range(5)} <= started
    assert sts[5].phase == "Pending" and not sts[5].netns
