"""The agnhost-compatible answers, and the server over loopback (no root needed)."""

from __future__ import annotations

import socket

import pytest

from emu.model.objects import Container, ContainerPort
from emu.workloads.netexec import NetexecServer, answer_http, answer_udp, open_sockets_here
from emu.workloads.processes import runnable_argv

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
