"""readinessProbe, as the kubelet runs it: from the node's namespace to the pod IP.

httpGet succeeds on a status in [200, 400), tcpSocket on an accepted connection, exec on
exit code 0 (run inside the pod's namespace). A container turns Ready after
successThreshold successes and unready after failureThreshold failures, probing every
periodSeconds after initialDelaySeconds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from emu.dataplane import netns
from emu.model.objects import Probe

log = logging.getLogger(__name__)


def socket_in(ns_fd: int) -> socket.socket:
    """A TCP socket in the namespace `ns_fd` (made on the calling thread, then back home)."""
    netns.set_thread_netns(ns_fd)
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    finally:
        netns.go_home()
    s.setblocking(False)
    return s


async def http_get(ns_fd: int, ip: str, port: int, path: str, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    s = socket_in(ns_fd)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(s, (ip, port))
            await loop.sock_sendall(
                s,
                f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/kemu\r\nConnection: close\r\n\r\n".encode(),
            )
            head = await loop.sock_recv(s, 4096)
        parts = head.split(b" ", 2)
        return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    except (OSError, TimeoutError):
        return False
    finally:
        s.close()


async def tcp_open(ns_fd: int, ip: str, port: int, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    s = socket_in(ns_fd)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(s, (ip, port))
        return True
    except (OSError, TimeoutError):
        return False
    finally:
        s.close()


async def exec_in(netns_name: str, command: tuple[str, ...], timeout: float) -> bool:
    try:
        proc = await asyncio.create_subprocess_exec(
            "nsenter",
            f"--net={netns.path(netns_name)}",
            "--",
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return False
    try:
        async with asyncio.timeout(timeout):
            return await proc.wait() == 0
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False


async def run_probe(
    probe: Probe,
    port: int | None,
    node_fd: int,
    pod_ip: str,
    pod_netns: str,
    on_change: Callable[[bool], None],
) -> None:
    """Probe forever (cancel the task to stop), reporting Ready transitions."""
    await asyncio.sleep(probe.initial_delay_seconds)
    ready, ok_run, bad_run = False, 0, 0
    while True:
        if probe.handler == "httpGet" and port is not None:
            ok = await http_get(node_fd, pod_ip, port, probe.path, probe.timeout_seconds)
        elif probe.handler == "tcpSocket" and port is not None:
            ok = await tcp_open(node_fd, pod_ip, port, probe.timeout_seconds)
        elif probe.handler == "exec":
            ok = await exec_in(pod_netns, probe.command, probe.timeout_seconds)
        else:
            ok = False
        ok_run, bad_run = (ok_run + 1, 0) if ok else (0, bad_run + 1)
        if not ready and ok_run >= probe.success_threshold:
            ready = True
            on_change(True)
        elif ready and bad_run >= probe.failure_threshold:
            ready = False
            on_change(False)
        # The kubelet probes every periodSeconds; until the first success it is
        # the same period, so a pod turns ready within one period of serving.
        await asyncio.sleep(probe.period_seconds if ready or ok_run else min(probe.period_seconds, 1))
