"""The echo-basic stand-in: its pure parts, and `python -m emu.workloads.echo_basic` on
127.0.0.1 answering as the conformance suite expects of echo-basic."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from emu.model.durations import parse_go_duration
from emu.workloads import echo_basic
from emu.workloads.echo_basic import echo_set_headers
from emu.workloads.go_http import Request, canonical_header_key, clean_path, parse_head

pytestmark = pytest.mark.unit


# --- pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, want",
    [
        ("x-forwarded-for", "X-Forwarded-For"),
        ("USER-AGENT", "User-Agent"),
        ("x_custom_header", "X_custom_header"),
        ("content-md5", "Content-Md5"),
        ("a--b", "A--B"),
        ("bad name", None),
        ("", None),
    ],
)
def test_canonical_header_key_as_go(name: str, want: str | None) -> None:
    assert canonical_header_key(name) == want


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("0", 0.0),
        ("1s", 1.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("300ms", 0.3),
        ("2h45m", 2 * 3600 + 45 * 60),
        ("1m30.5s", 90.5),
        ("10us", 10e-6),
        ("10µs", 10e-6),
        ("100ns", 100e-9),
        ("+2s", 2.0),
        ("-2s", -2.0),
        ("", None),
        ("1", None),
        ("invalid", None),
        ("1x", None),
        (".s", None),
        ("1s2", None),
        ("-", None),
    ],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    got = parse_go_duration(text)
    assert got == pytest.approx(seconds) if seconds is not None else got is None


@pytest.mark.parametrize(
    "path, want",
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/../a", "/a"),
        ("/a/..", "/"),
        ("//a", "/a"),
    ],
)
def test_clean_path_as_go_servemux(path: str, want: str) -> None:
    assert clean_path(path) == want


def _parsed(head: str) -> Request:
    req = parse_head(head)
    assert isinstance(req, Request)
    return req


def test_parse_head_moves_host_and_merges_headers_by_canonical_name() -> None:
    req = _parsed("GET /p?q=1 HTTP/1.1\r\nhost: example.com\r\nx-multi: 1\r\nX-MULTI:  2 \r\nAccept: */*")
    assert (req.method, req.uri, req.proto, req.host) == ("GET", "/p?q=1", "HTTP/1.1", "example.com")
    assert req.headers == {"X-Multi": ["1", "2"], "Accept": ["*/*"]}
    assert req.keep_alive and req.body == 0


def test_parse_head_body_framing_as_go_reads_it() -> None:
    chunked = _parsed("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nTrailer: X")
    assert chunked.body is None and "Transfer-Encoding" not in chunked.headers and "Content-Length" not in chunked.headers
    assert "Trailer" not in chunked.headers
    sized = _parsed("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nExpect: 100-continue")
    assert sized.body == 12 and sized.expect_continue and sized.headers["Content-Length"] == ["12"]
    assert _parsed("GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache").headers["Cache-Control"] == ["no-cache"]


@pytest.mark.parametrize(
    "head, keep_alive",
    [
        ("GET / HTTP/1.1\r\nHost: h", True),
        ("GET / HTTP/1.1\r\nHost: h\r\nConnection: close", False),
        ("GET / HTTP/1.0", False),
        ("GET / HTTP/1.0\r\nConnection: Keep-Alive", True),
    ],
)
def test_keep_alive(head: str, keep_alive: bool) -> None:
    assert _parsed(head).keep_alive is keep_alive


@pytest.mark.parametrize(
    "head, status",
    [
        ("GET / HTTP/1.1", 400),  # no Host
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b", 400),
        ("GET / HTTP/2.0\r\nHost: a", 505),
        ("GET / FOO\r\nHost: a", 400),
        ("GET nopath HTTP/1.1\r\nHost: a", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nno-colon", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip", 501),
    ],
)
def test_bad_requests(head: str, status: int) -> None:
    assert parse_head(head) == status


@pytest.mark.parametrize(
    "values, want",
    [
        (["Header1:Value1"], [("Header1", "Value1")]),
        (["Header2:Value2, Header3:Value3"], [("Header2", "Value2"), ("Header3", "Value3")]),
        ([""], []),
        (["a:1,A:2,a: 3"], [("a", "1,3"), ("A", "2")]),  # names keep their case
        (["X-Empty:"], [("X-Empty", "")]),
    ],
)
def test_echo_set_header_pairs(values: list[str], want: list[tuple[str, str]]) -> None:
    req = Request("GET", "/", "HTTP/1.1", "h", {"X-Echo-Set-Header": values}, True)
    assert echo_set_headers(req) == want


def test_echo_json_is_go_indented_and_complete() -> None:
    req = Request("GET", "/a?b=1", "HTTP/1.1", "h", {"X-B": ["2"], "Accept": ["1", 'q"uote']}, True)
    tail = echo_basic.context_json({"NAMESPACE": "ns", "POD_NAME": "p", "SERVICE_NAME": "s", "INGRESS_NAME": "i"})
    text = echo_basic.echo_json(req, tail).decode()
    assert json.loads(text) == {
        "path": "/a?b=1",
        "host": "h",
        "method": "GET",
        "proto": "HTTP/1.1",
        "headers": {"Accept": ["1", 'q"uote'], "X-B": ["2"]},
        "httpPort": "3000",
        "namespace": "ns",
        "ingress": "i",
        "service": "s",
        "pod": "p",
    }
    # json.MarshalIndent(v, "", " "): one space a level, map keys sorted.
    assert (
        text.startswith('{\n "path": "/a?b=1",\n')
        and '\n "headers": {\n  "Accept": [\n   "1",\n' in text
        and text.endswith('\n "pod": "p"\n}')
    )
    empty = Request("GET", "/", "HTTP/1.0", "", {}, False)
    assert '"headers": {}' in echo_basic.echo_json(empty, tail).decode()


# --- the server ---------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        c = self.conn()
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def raw(self, data: bytes, until_close: bool = True) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(data)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
                if not until_close and out.count(b"HTTP/1.1 ") >= data.count(b" HTTP/1."):
                    break
            return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        assert proc.poll() is None, "echo-basic exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("echo-basic did not listen in time")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    port = _free_port()
    env = {
        **os.environ,
        "HTTP_PORT": str(port),
        "NAMESPACE": "gateway-conformance-infra",
        "POD_NAME": "infra-backend-v1-abc",
        "SERVICE_NAME": "infra-backend-v1",
    }
    for mode in ("GRPC_ECHO_SERVER", "TCP_ECHO_SERVER", "UDP_ECHO_SERVER"):
        env.pop(mode, None)
    proc = subprocess.Popen([sys.executable, "-m", "emu.workloads.echo_basic"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, proc, time.monotonic() + 10)
        yield Server(port, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


def test_echo_answers_with_the_request_and_pod_context(server: Server) -> None:
    status, headers, body = server.get("/some/path?x=1&y=2", {"X-Custom": "v", "user-agent": "kemu-test"})
    assert status == 200
    assert headers["Content-Type"] == "application/json" and headers["X-Content-Type-Options"] == "nosniff"
    got = json.loads(body)
    assert got["path"] == "/some/path?x=1&y=2" and got["method"] == "GET" and got["proto"] == "HTTP/1.1"
    assert got["host"] == f"127.0.0.1:{server.port}"
    assert got["headers"]["X-Custom"] == ["v"] and got["headers"]["User-Agent"] == ["kemu-test"]
    assert "Host" not in got["headers"]
    assert (got["httpPort"], got["namespace"], got["service"], got["pod"], got["ingress"]) == (
        str(server.port),
        "gateway-conformance-infra",
        "infra-backend-v1",
        "infra-backend-v1-abc",
        "",
    )


def test_echo_set_header_sets_response_headers(server: Server) -> None:
    status, headers, _ = server.get("/", {"X-Echo-Set-Header": "X-Foo:bar, X-Baz: qux"})
    assert status == 200 and headers["X-Foo"] == "bar" and headers["X-Baz"] == "qux"


@pytest.mark.parametrize(
    "path, status, body",
    [
        ("/health", 200, b"OK"),
        ("/status/503", 503, b""),
        ("/status/404", 404, b""),
        ("/status/abc", 400, b""),
        ("/status/200?x=1", 400, b""),
    ],
)
def test_health_and_status(server: Server, path: str, status: int, body: bytes) -> None:
    got_status, _, got_body = server.get(path)
    assert (got_status, got_body) == (status, body)


def test_mux_redirects(server: Server) -> None:
    status, headers, _ = server.get("/status?a=1")
    assert status == 301 and headers["Location"] == "/status/?a=1"
    status, headers, _ = server.get("/a/./b/../c")
    assert status == 301 and headers["Location"] == "/a/c"
    status, _, body = server.get("//double//slash")
    assert status == 200 and json.loads(body)["path"] == "//double//slash"


def test_head_has_no_body(server: Server) -> None:
    status, headers, body = server.get("/x", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_keep_alive_and_bodies_on_one_connection(server: Server) -> None:
    c = server.conn()
    try:
        c.request("POST", "/one", body=b"x" * 100_000, headers={"Content-Type": "text/plain"})
        first = c.getresponse()
        assert first.status == 200 and json.loads(first.read())["headers"]["Content-Length"] == ["100000"]
        sock = c.sock
        c.request("PUT", "/two", body=iter([b"chunk-a", b"chunk-bb"]), encode_chunked=True)  # Transfer-Encoding: chunked
        second = c.getresponse()
        got = json.loads(second.read())
        assert got["path"] == "/two" and "Transfer-Encoding" not in got["headers"]
        c.request("GET", "/three")
        assert json.loads(c.getresponse().read())["path"] == "/three"
        assert c.sock is sock  # one connection throughout
    finally:
        c.close()


def test_pipelined_requests_answered_in_order(server: Server) -> None:
    data = b"".join(f"GET /{i}?delay={'50ms' if i == 0 else '0s'} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for i in range(3))
    out = server.raw(data, until_close=False)
    paths = [json.loads(part.split(b"\r\n\r\n", 1)[1].rsplit(b"}", 1)[0] + b"}")["path"] for part in out.split(b"HTTP/1.1 200 OK")[1:]]
    assert paths == ["/0?delay=50ms", "/1?delay=0s", "/2?delay=0s"]


def test_http10_closes_and_bad_request_is_400(server: Server) -> None:
    out = server.raw(b"GET /old HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in out and b'"proto": "HTTP/1.0"' in out
    assert server.raw(b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_delay_waits_without_blocking_other_connections(server: Server) -> None:
    slow = server.conn()
    try:
        start = time.monotonic()
        slow.request("GET", "/?delay=600ms")
        status, _, _ = server.get("/fast")
        fast_done = time.monotonic() - start
        response = slow.getresponse()
        slow_done = time.monotonic() - start
        assert status == 200 and response.status == 200
        assert slow_done >= 0.6 and fast_done < 0.6
    finally:
        slow.close()


def test_invalid_delay_is_a_500_with_message(server: Server) -> None:
    status, headers, body = server.get("/?delay=invalid")
    assert status == 500 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"message": 'time: invalid duration "invalid"'}


def test_sigterm_stops_the_server() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "emu.workloads.echo_basic"], env={**os.environ, "HTTP_PORT": str(port)}, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(port, proc, time.monotonic() + 10)
        proc.terminate()
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.mark.parametrize("mode", ["GRPC_ECHO_SERVER", "TCP_ECHO_SERVER", "UDP_ECHO_SERVER"])
def test_main_refuses_modes_it_does_not_serve(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv(mode, "1")
    assert echo_basic.main([]) == 2


def test_main_takes_no_arguments() -> None:
    assert echo_basic.main(["--port", "1"]) == 2
