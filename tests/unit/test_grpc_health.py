"""gRPC health checking: the hand-made protobuf, the h2 server and the prober's client (loopback, no root)."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

from emu.model.objects import ContainerPort
from emu.workloads.grpc_health import (
    CHECK,
    WATCH,
    GrpcHealthProtocol,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    frame,
    grpc_check,
    unframe,
)
from emu.workloads.netexec import NetexecServer, open_sockets_here

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "service, wire",
    [("", b""), ("foo", b"\x0a\x03foo"), ("x" * 200, b"\x0a\xc8\x01" + b"x" * 200)],
)
def test_request_encoding(service: str, wire: bytes) -> None:
    assert encode_request(service) == wire
    assert decode_request(wire) == service


@pytest.mark.parametrize("status, wire", [(0, b""), (1, b"\x08\x01"), (2, b"\x08\x02"), (3, b"\x08\x03")])
def test_response_encoding(status: int, wire: bytes) -> None:
    assert encode_response(status) == wire
    assert decode_response(wire) == status


def test_unknown_fields_are_skipped() -> None:
    # field 2 (varint), field 3 (bytes), field 4 (fixed32), then status
    assert decode_response(b"\x10\x05\x1a\x02ab\x25\x00\x00\x00\x00\x08\x01") == 1


def test_framing() -> None:
    assert frame(b"\x08\x01") == b"\x00\x00\x00\x00\x02\x08\x01"
    assert unframe(frame(b"a") + frame(b"")) == [b"a", b""]
    with pytest.raises(ValueError):
        unframe(b"\x00\x00\x00\x00\x05ab")
    with pytest.raises(ValueError):
        unframe(b"\x01\x00\x00\x00\x01a")  # compressed: never negotiated


async def _raw_call(port: int, path: str, body: bytes, wait_end: bool = True) -> tuple[dict[str, str], bytes, dict[str, str], bool]:
    """A bare h2 client: (response headers, body, trailers, stream ended)."""
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setblocking(False)
    await loop.sock_connect(s, ("127.0.0.1", port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    req = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "x"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    conn.send_headers(sid, req)
    conn.send_data(sid, body, end_stream=True)
    await loop.sock_sendall(s, conn.data_to_send())
    headers: dict[str, str] = {}
    trailers: dict[str, str] = {}
    data = bytearray()
    ended = False
    try:
        async with asyncio.timeout(5):
            while not ended and (wait_end or not data):
                chunk = await loop.sock_recv(s, 65536)
                if not chunk:
                    break
                for ev in conn.receive_data(chunk):
                    if isinstance(ev, h2.events.ResponseReceived):
                        headers = dict(ev.headers)  # type: ignore[arg-type]
                    elif isinstance(ev, h2.events.TrailersReceived):
                        trailers = dict(ev.headers)  # type: ignore[arg-type]
                    elif isinstance(ev, h2.events.DataReceived):
                        data.extend(ev.data or b"")
                    elif isinstance(ev, h2.events.StreamEnded):
                        ended = True
                await loop.sock_sendall(s, conn.data_to_send())
        if not wait_end:  # a Watch stream stays open: nothing more comes
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await loop.sock_recv(s, 65536)
    finally:
        s.close()
    return headers, bytes(data), trailers, ended


@pytest.fixture
def h2_server() -> Iterator[tuple[asyncio.AbstractEventLoop, int, list[tuple[str, int]]]]:
    loop = asyncio.new_event_loop()
    calls: list[tuple[str, int]] = []
    server = loop.run_until_complete(loop.create_server(lambda: GrpcHealthProtocol(lambda p, c: calls.append((p, c))), "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    try:
        yield loop, port, calls
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


def test_check_is_serving(h2_server: tuple[asyncio.AbstractEventLoop, int, list[tuple[str, int]]]) -> None:
    loop, port, calls = h2_server
    headers, body, trailers, ended = loop.run_until_complete(_raw_call(port, CHECK, frame(encode_request("any.Service"))))
    assert headers[":status"] == "200" and headers["content-type"] == "application/grpc"
    assert unframe(body) == [b"\x08\x01"] and trailers == {"grpc-status": "0"} and ended
    assert calls == [(CHECK, 0)]


def test_unknown_method_is_unimplemented(h2_server: tuple[asyncio.AbstractEventLoop, int, list[tuple[str, int]]]) -> None:
    loop, port, calls = h2_server
    headers, body, _, ended = loop.run_until_complete(_raw_call(port, "/grpc.health.v1.Health/List", frame(b"")))
    assert headers["grpc-status"] == "12" and body == b"" and ended  # trailers-only
    assert calls == [("/grpc.health.v1.Health/List", 12)]


def test_watch_sends_serving_and_stays_open(h2_server: tuple[asyncio.AbstractEventLoop, int, list[tuple[str, int]]]) -> None:
    loop, port, _ = h2_server
    headers, body, trailers, ended = loop.run_until_complete(_raw_call(port, WATCH, frame(b""), wait_end=False))
    assert headers[":status"] == "200" and unframe(body) == [b"\x08\x01"] and not trailers and not ended


def test_client_against_server(h2_server: tuple[asyncio.AbstractEventLoop, int, list[tuple[str, int]]]) -> None:
    loop, port, calls = h2_server
    assert loop.run_until_complete(grpc_check(None, "127.0.0.1", port, "", 2))
    assert loop.run_until_complete(grpc_check(None, "127.0.0.1", port, "my.Service", 2))
    assert calls == [(CHECK, 0), (CHECK, 0)]


def test_client_fails_on_closed_port_and_on_http1() -> None:
    async def run() -> tuple[bool, bool]:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
        s.close()

        async def http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(100)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(http1, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await grpc_check(None, "127.0.0.1", closed_port, "", 1), await grpc_check(None, "127.0.0.1", port, "", 1)
        finally:
            server.close()

    assert asyncio.run(run()) == (False, False)


def test_netexec_port_answers_grpc_and_http(tmp_path: Path) -> None:
    server = NetexecServer()
    server.start()
    log_path = tmp_path / "pod.log"
    try:
        socks = open_sockets_here([ContainerPort(0, "TCP")])
        port = socks[0][1].getsockname()[1]
        server.serve("ns/p", "pod-p", socks, log_path=str(log_path))
        assert server.call(grpc_check(None, "127.0.0.1", port, "", 2))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := c.recv(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"pod-p")
        # A request starting like the preface but diverging stays HTTP/1.1.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"PRI /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.1 404")
        server.stop_pod("ns/p")
        lines = log_path.read_text().splitlines()
        stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z 127\.0\.0\.1:\d+ "
        assert re.fullmatch(stamp + "GRPC /grpc.health.v1.Health/Check 0", lines[0])
        assert re.fullmatch(stamp + "GET /hostname 200", lines[1])
        assert re.fullmatch(stamp + "PRI /x 404", lines[2])
    finally:
        server.stop()
