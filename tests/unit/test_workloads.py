"""The agnhost-compatible answers, and the server over loopback (no root needed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emu.dataplane import enter
from emu.model.objects import Container, ContainerPort, Probe
from emu.workloads import readiness
from emu.workloads.netexec import NetexecServer, answer_http, answer_udp, open_sockets_here
from emu.workloads.processes import BUSYBOX, image_repository, runnable_argv, write_env_file
from emu.workloads.readiness import http_get, http_request, make_check

pytestmark = pytest.mark.unit
PEER = ("10.244.0.5", 40000)


@pytest.mark.parametrize(
    "target, want",
    [
        ("/hostname", ("200 OK", "pod-a")),
        ("/", ("200 OK", "pod-a")),
        ("/clientip", ("200 OK", "10.244.0.5:40000")),
        ("/echo?msg=hello%20there", ("200 OK", "hello there")),
        ("/healthz", ("200 OK", "ok")),
    ],
)
def test_http_answers(target: str, want: tuple[str, str]) -> None:
    assert answer_http(target, "pod-a", PEER) == want


def test_http_unknown_path_is_404() -> None:
    assert answer_http("/nope", "pod-a", PEER)[0] == "404 Not Found"


@pytest.mark.parametrize(
    "msg, want",
    [("hostname", "pod-a"), ("hostname\n", "pod-a"), ("echo hi", "hi"), ("clientip", "10.244.0.5:40000"), ("what", None)],
)
def test_udp_answers(msg: str, want: str | None) -> None:
    assert answer_udp(msg, "pod-a", PEER) == want


def test_runnable_argv() -> None:
    assert runnable_argv(Container("c")) is None
    assert runnable_argv(Container("c", command=("/agnhost", "netexec"))) is None  # not on this machine
    argv = runnable_argv(Container("c", command=("sh", "-c"), args=("sleep 1",)))
    assert argv is not None and argv[0].endswith("/sh") and argv[1:] == ["-c", "sleep 1"]


def test_server_answers_over_loopback() -> None:
    server = NetexecServer()
    server.start()
    try:
        socks = open_sockets_here([ContainerPort(0, "TCP"), ContainerPort(0, "UDP")])
        tcp_port = socks[0][1].getsockname()[1]
        udp_port = socks[1][1].getsockname()[1]
        server.serve("ns/p", "pod-p", socks)
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as c:
            c.sendall(b"GET /echo?msg=abc HTTP/1.1\r\nHost: x\r\n\r\nGET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := c.recv(4096):
                data += chunk
        assert data.count(b"HTTP/1.1 200 OK") == 2 and b"\r\n\r\nabc" in data and data.endswith(b"pod-p")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            u.sendto(b"echo hey", ("127.0.0.1", udp_port))
            assert u.recv(100) == b"hey"
        server.stop_pod("ns/p")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", tcp_port), timeout=2)
    finally:
        server.stop()


def test_serve_soon_wakes_the_loop_once_per_batch_and_serves_every_pod_in_order() -> None:
    """Pods handed over while the loop is busy are taken in one wake-up, in the order
    they came, before a call made after them (a pod's stop comes after its serving)."""
    server = NetexecServer()
    server.start()
    busy, wakes = threading.Event(), []
    real = server.loop.call_soon_threadsafe
    try:
        server.loop.call_soon_threadsafe(busy.wait, 10)  # the loop is busy until `busy` is set
        server.loop.call_soon_threadsafe = lambda *a, **k: (wakes.append(a[0]), real(*a, **k))[1]  # type: ignore[method-assign]
        pods = [(f"ns/p{i}", open_sockets_here([ContainerPort(0, "TCP")])) for i in range(10)]
        futures = [server.serve_soon(pod, pod[3:], socks) for pod, socks in pods]
        assert len(wakes) == 1  # one wake-up for the ten
        server.loop.call_soon_threadsafe = real  # type: ignore[method-assign]
        stopped = asyncio.run_coroutine_threadsafe(server._stop_pod("ns/p9"), server.loop)
        busy.set()
        for f in futures:
            f.result(10)
        stopped.result(10)
        for pod, socks in pods[:-1]:
            with socket.create_connection(("127.0.0.1", socks[0][1].getsockname()[1]), timeout=5) as c:
                c.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := c.recv(4096):
                    data += chunk
            assert data.endswith(pod[3:].encode())
        with pytest.raises(OSError):  # stopped after it was served: no server left
            socket.create_connection(("127.0.0.1", pods[-1][1][0][1].getsockname()[1]), timeout=2)
    finally:
        busy.set()
        server.stop()


# --- kubelet probes against the stand-in ---------------------------------------------------


@pytest.mark.parametrize(
    "target, ua, want",
    [
        ("/healthz/ready", "kube-probe/1.30", ("200 OK", "ok")),
        ("/actuator/health", "kube-probe/kemu", ("200 OK", "ok")),
        ("/hostname", "kube-probe/1.30", ("200 OK", "pod-a")),  # known paths answer as usual
        ("/healthz/ready", "curl/8.0", ("404 Not Found", "404 page not found: /healthz/ready")),
        ("/healthz/ready", "", ("404 Not Found", "404 page not found: /healthz/ready")),
    ],
)
def test_kube_probe_gets_200_on_any_path(target: str, ua: str, want: tuple[str, str]) -> None:
    assert answer_http(target, "pod-a", PEER, ua) == want


def test_probe_request_headers() -> None:
    plain = http_request("/ready", "10.0.0.1:8080").decode()
    assert plain.startswith("GET /ready HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n") and "User-Agent: kube-probe/kemu\r\n" in plain
    assert "Accept: */*\r\n" in plain and plain.endswith("Connection: close\r\n\r\n")
    custom = http_request("ready", "10.0.0.1:8080", [("Host", "web.example"), ("User-Agent", "mine/1"), ("X-A", "1\r\nX-Evil: 2")]).decode()
    assert custom.startswith("GET /ready HTTP/1.1\r\nHost: web.example\r\n")
    assert "kube-probe" not in custom and "User-Agent: mine/1\r\n" in custom and "X-A: 1X-Evil: 2\r\n" in custom
    assert custom.count("Host:") == 1


@pytest.fixture
def netexec_port(tmp_path: Path) -> Iterator[tuple[NetexecServer, int, int, Path]]:
    server = NetexecServer()
    server.start()
    log_path = tmp_path / "p.log"
    try:
        socks = open_sockets_here([ContainerPort(0, "TCP"), ContainerPort(0, "UDP")])
        server.serve("ns/p", "pod-p", socks, log_path=str(log_path))
        yield server, socks[0][1].getsockname()[1], socks[1][1].getsockname()[1], log_path
    finally:
        server.stop()


def test_http_get_against_stand_in(netexec_port: tuple[NetexecServer, int, int, Path]) -> None:
    server, port, _, log_path = netexec_port
    assert server.call(http_get(None, "127.0.0.1", port, "/actuator/health", 2))
    assert not server.call(http_get(None, "127.0.0.1", port, "/actuator/health", 2, headers=[("User-Agent", "curl/8")]))
    assert server.call(http_get(None, "127.0.0.1", port, "/hostname", 2, headers=[("User-Agent", "curl/8")]))
    assert not server.call(http_get(None, "127.0.0.1", port, "/", 2, scheme="HTTPS"))  # the stand-in has no TLS
    server.stop_pod("ns/p")
    lines = log_path.read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == ["GET /actuator/health 200", "GET /actuator/health 404", "GET /hostname 200"]


def test_udp_request_log(netexec_port: tuple[NetexecServer, int, int, Path]) -> None:
    server, _, udp_port, log_path = netexec_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(b"echo " + b"x" * 60 + b"\n", ("127.0.0.1", udp_port))
        assert u.recv(100) == b"x" * 60
    server.stop_pod("ns/p")
    (line,) = log_path.read_text().splitlines()
    assert re.fullmatch(r"\S+Z 127\.0\.0\.1:\d+ UDP echo x{35}", line)


def test_make_check_dispatch(netexec_port: tuple[NetexecServer, int, int, Path]) -> None:
    server, port, _, _ = netexec_port
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()

    def run(probe: Probe, p: int | None) -> bool:
        return bool(server.call(make_check(probe, p, None, "127.0.0.1", "unused")()))

    assert run(Probe("httpGet", path="/healthz/live"), port)
    assert run(Probe("httpGet", path="/healthz/live", host="localhost"), port)  # `host` is where to connect
    assert not run(Probe("httpGet", path="/x", headers=(("User-Agent", "me"),)), port)
    assert run(Probe("tcpSocket"), port) and not run(Probe("tcpSocket"), closed_port)
    assert run(Probe("grpc", grpc_service="liveness"), port) and not run(Probe("grpc"), closed_port)
    assert not run(Probe("httpGet"), None)  # a named port that matched nothing
    assert not run(Probe("sctpSocket"), port)


class _Clock:
    """Replaces the probe loop's sleep: records the schedule, returns at once."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


def _loop(results: list[bool], kind: str, probe: Probe, monkeypatch: pytest.MonkeyPatch) -> tuple[list[bool], list[float], int]:
    """Run probe_loop over scripted results; (reports, sleeps, checks made)."""
    clock = _Clock()
    monkeypatch.setattr(readiness, "_sleep", clock.sleep)
    reports: list[bool] = []
    made = 0

    async def check() -> bool:
        nonlocal made
        made += 1
        if made > len(results):
            raise asyncio.CancelledError  # the script ran out: stop the loop
        return results[made - 1]

    async def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await readiness.probe_loop(probe, check, reports.append, kind)

    asyncio.run(run())
    return reports, clock.slept, made


def test_readiness_reports_every_transition(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Probe("exec", initial_delay_seconds=5, period_seconds=10, success_threshold=2, failure_threshold=3)
    reports, slept, _ = _loop([False, True, True, False, False, True, False, False, False, True, True], "readiness", p, monkeypatch)
    assert reports == [True, False, True]
    # initial delay, then 1s retries until the first success, then the period
    assert slept[0] == pytest.approx(5, abs=0.5) and slept[1:3] == [1, 10]


def test_liveness_reports_each_failure_and_carries_on(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Probe("exec", initial_delay_seconds=20, period_seconds=7, failure_threshold=3)
    script = [True, False, False, True, False, False, False, True, False, False, False]
    reports, slept, made = _loop(script, "liveness", p, monkeypatch)
    assert reports == [False, False] and made == len(script) + 1
    # after a failure report the (restarted) container gets its initial delay again
    assert slept[1:8] == [7] * 6 + [20]


def test_startup_reports_first_success_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Probe("exec", period_seconds=2, failure_threshold=30)
    assert _loop([False, False, True, True], "startup", p, monkeypatch)[0::2] == ([True], 3)
    # failure: the container restarts, and the same loop probes the new one
    assert _loop([False, False, False, False, True, True], "startup", Probe("exec", failure_threshold=3), monkeypatch)[0::2] == (
        [False, True],
        5,
    )


def test_check_errors_are_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(readiness, "_sleep", clock.sleep)
    reports: list[bool] = []

    async def broken() -> bool:
        raise RuntimeError("boom")

    async def run() -> None:
        task = asyncio.ensure_future(readiness.probe_loop(Probe("exec", failure_threshold=2), broken, reports.append, "liveness"))
        while not reports:
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(run(), 5))
    assert reports == [False]


def test_run_probe_keeps_its_signature(netexec_port: tuple[NetexecServer, int, int, Path]) -> None:
    server, port, _, _ = netexec_port
    ready = threading.Event()
    fut = asyncio.run_coroutine_threadsafe(
        readiness.run_probe(Probe("httpGet", path="/ready"), port, None, "127.0.0.1", "unused", lambda ok: ok and ready.set()), server.loop
    )
    try:
        assert ready.wait(5)
    finally:
        fut.cancel()


# --- busybox images, container environment -----------------------------------------------


@pytest.mark.parametrize(
    "image, repo",
    [
        ("busybox", "busybox"),
        ("busybox:1.36", "busybox"),
        ("docker.io/library/busybox@sha256:" + "a" * 64, "busybox"),
        ("localhost:5000/tools/busybox:musl", "busybox"),
        ("registry.k8s.io/e2e-test-images/agnhost:2.47", "agnhost"),
        ("", ""),
    ],
)
def test_image_repository(image: str, repo: str) -> None:
    assert image_repository(image) == repo


@pytest.mark.skipif(not os.access(BUSYBOX, os.X_OK), reason="needs Debian's busybox package")
@pytest.mark.parametrize(
    "command, args, want",
    [
        (("sh", "-c"), ("sleep 1",), [BUSYBOX, "sh", "-c", "sleep 1"]),
        (("/bin/sh", "-c", "echo"), (), [BUSYBOX, "sh", "-c", "echo"]),
        (("sleep", "3600"), (), [BUSYBOX, "sleep", "3600"]),
        ((), ("wget", "-qO-", "http://x"), [BUSYBOX, "wget", "-qO-", "http://x"]),  # args replace CMD
        ((), (), [BUSYBOX, "sh"]),  # the image's CMD
    ],
)
def test_busybox_image_runs_through_busybox(command: tuple[str, ...], args: tuple[str, ...], want: list[str]) -> None:
    assert runnable_argv(Container("c", command=command, args=args, image="busybox:1.36")) == want


def test_busybox_image_with_a_non_applet_falls_back() -> None:
    assert runnable_argv(Container("c", command=("/app/server",), image="busybox")) is None
    argv = runnable_argv(Container("c", command=("python3", "-V"), image="busybox"))
    assert argv is None or argv[0].endswith("python3")


def test_enter_arguments() -> None:
    assert enter.parse(["ns", "h", "--", "sh", "-c", "x -- y"]) == enter.Invocation("ns", "h", ["sh", "-c", "x -- y"])
    assert enter.parse(["ns", "h", "--env-file", "/e.json", "--workdir", "/app", "--etc-dir", "/x", "--", "id"]) == enter.Invocation(
        "ns", "h", ["id"], "/e.json", "/app", "/x"
    )
    assert enter.parse(["ns", "h", "--bogus", "x", "--", "id"]) is None
    assert enter.parse(["ns", "h", "--"]) is None
    assert enter.parse(["ns", "h", "id"]) is None


def test_container_environ() -> None:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/root", "SUDO_USER": "me", "KEMU_SECRET": "x", "TERM": "xterm"}
    env = enter.container_environ("web-1", {"A": "1", "HOME": "/home/app"}, base)
    assert env == {"PATH": "/usr/bin:/bin", "HOME": "/home/app", "TERM": "xterm", "HOSTNAME": "web-1", "A": "1"}
    assert enter.container_environ("", {}, {})["PATH"] == enter.DEFAULT_PATH


def test_env_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "c.env.json"
    path.write_text("old")
    path.chmod(0o644)
    write_env_file(str(path), {"PASS": "s3cret"})
    assert json.loads(path.read_text()) == {"PASS": "s3cret"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_drain_waits_for_a_request_on_its_way_and_not_for_idle_connections(netexec_port: tuple[NetexecServer, int, int, Path]) -> None:
    """A pod being stopped answers the connections it already has (sent before the
    proxies dropped it) before its sockets close; an idle keep-alive one does not hold it."""
    import socket
    import threading

    server, port, _, _ = netexec_port
    idle = socket.create_connection(("127.0.0.1", port), timeout=2)
    idle.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"pod-p" in idle.recv(4096)  # answered; now idle, kept alive
    t0 = time.monotonic()
    server.drain(["ns/p"], timeout=2.0)
    assert time.monotonic() - t0 < 0.5  # nothing waits for an answer

    pending = socket.create_connection(("127.0.0.1", port), timeout=3)  # connected, request not sent yet
    done = threading.Event()
    threading.Thread(target=lambda: (server.drain(["ns/p"], timeout=2.0), done.set()), daemon=True).start()
    assert not done.wait(0.2)  # the drain waits for this connection's request
    pending.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"pod-p" in pending.recv(4096)
    assert done.wait(1.0)
    idle.close()
    pending.close()
