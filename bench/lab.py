"""Helpers shared by the benchmarks: a server in a namespace, connect latencies."""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time

from emu.dataplane import netns
from emu.model.objects import ClusterConfig, ClusterSpec, Container, ContainerPort, Manifests, Meta, NodeDecl, PodSpec, Workload
from emu.model.selectors import LabelSelector


def serve(netns_name: str, port: int) -> socket.socket:
    """An accept-and-close TCP server on `port` inside `netns_name` (close it to stop)."""
    with netns.entered(netns_name):
        s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(4096)

    def loop() -> None:
        while True:
            try:
                c, _ = s.accept()
                c.close()
            except OSError:
                return

    threading.Thread(target=loop, daemon=True).start()
    return s


def connect_ms(netns_name: str, ip: str, port: int, n: int = 200) -> float:
    """Median time of a fresh TCP connect from `netns_name`, in milliseconds."""
    fd = netns.open_fd(netns_name)
    times = []
    try:
        for _ in range(n):
            netns.set_thread_netns(fd)
            try:
                c = socket.socket()
            finally:
                netns.go_home()
            c.settimeout(2)
            t = time.perf_counter()
            c.connect((ip, port))
            times.append(time.perf_counter() - t)
            c.close()
    finally:
        os.close(fd)
    return statistics.median(times) * 1000


def config(name: str, nodes: int, per_node: int, ports: tuple[int, ...], cni: str = "bridge") -> ClusterConfig:
    """N nodes and one Deployment of N × M pods serving `ports` (spread: M a node)."""
    spec = ClusterSpec(name, cni=cni, nodes=tuple(NodeDecl(f"node-{i + 1}") for i in range(nodes)))
    container = Container("c", ports=tuple(ContainerPort(p) for p in ports))
    dep = Workload(
        "Deployment", Meta("pod", "default"), nodes * per_node, LabelSelector({"app": name}), {"app": name}, PodSpec((container,))
    )
    return ClusterConfig(spec, Manifests(workloads=(dep,)), source=name)
