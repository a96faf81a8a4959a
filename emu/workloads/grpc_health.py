"""gRPC health checking (grpc.health.v1.Health) over cleartext HTTP/2, both ends.

The kubelet's `grpc` probe dials the pod IP with plain-text HTTP/2 ("h2c" with prior
knowledge: no Upgrade, the client preface first) and calls Health/Check; it succeeds only
when the call returns OK with status SERVING. The stand-in server answers that on every
TCP port it serves (netexec hands a connection over here when its first bytes are the
HTTP/2 preface), and `grpc_check` is the prober's client.

The two protobuf messages are tiny, so they are encoded by hand:
  HealthCheckRequest  { string service = 1; }
  HealthCheckResponse { ServingStatus status = 1; }   UNKNOWN=0 SERVING=1 NOT_SERVING=2
Each gRPC message travels in DATA frames behind a 5-byte prefix (compressed flag, length).

Watch (a server-streaming call) sends one SERVING message and keeps the stream open until
the client goes away, as a server whose status never changes does. Any other method gets
grpc-status 12 (UNIMPLEMENTED) in a trailers-only response, as grpc-go answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from emu.dataplane import netns

log = logging.getLogger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CHECK = "/grpc.health.v1.Health/Check"
WATCH = "/grpc.health.v1.Health/Watch"
SERVING = 1
OK, INTERNAL, UNIMPLEMENTED = 0, 13, 12
MAX_MESSAGE = 64 * 1024  # a health request is a service name; refuse anything silly


def header_dict(headers: Iterable[tuple[bytes | str, bytes | str]] | None) -> dict[str, str]:
    """An event's header fields by name. h2 types them bytes, but with header_encoding set
    (both connections here set it) it hands them over decoded, as str."""
    return {_text(name): _text(value) for name, value in headers or ()}


def _text(field: bytes | str) -> str:
    return field if isinstance(field, str) else field.decode()


# --- protobuf and gRPC framing, by hand ----------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        n |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            return n, i


def _fields(msg: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message; unknown wire types are an error."""
    i = 0
    while i < len(msg):
        key, i = _read_varint(msg, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(msg, i)
            yield number, value
        elif wire == 2:
            size, i = _read_varint(msg, i)
            if i + size > len(msg):
                raise ValueError("truncated field")
            yield number, msg[i : i + size]
            i += size
        elif wire in (1, 5):  # fixed64 / fixed32: skip
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire}")


def encode_request(service: str) -> bytes:
    """HealthCheckRequest; proto3 leaves out a field holding its default ("")."""
    data = service.encode()
    return b"\x0a" + _varint(len(data)) + data if data else b""


def decode_request(msg: bytes) -> str:
    for number, value in _fields(msg):
        if number == 1 and isinstance(value, bytes):
            return value.decode("utf-8", "replace")
    return ""


def encode_response(status: int) -> bytes:
    return b"\x08" + _varint(status) if status else b""  # SERVING: b"\x08\x01"


def decode_response(msg: bytes) -> int:
    status = 0
    for number, value in _fields(msg):
        if number == 1 and isinstance(value, int):
            status = value
    return status


def frame(msg: bytes) -> bytes:
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


def unframe(data: bytes) -> list[bytes]:
    """The messages in a gRPC byte stream (compression is never negotiated here)."""
    out, i = [], 0
    while i < len(data):
        if i + 5 > len(data):
            raise ValueError("truncated gRPC message prefix")
        size = int.from_bytes(data[i + 1 : i + 5], "big")
        if data[i] != 0 or i + 5 + size > len(data):
            raise ValueError("compressed or truncated gRPC message")
        out.append(data[i + 5 : i + 5 + size])
        i += 5 + size
    return out


# --- the server side: one HTTP/2 connection ------------------------------------------------


class GrpcHealthProtocol(asyncio.Protocol):
    """Serves grpc.health.v1.Health on one HTTP/2 connection (always SERVING).

    `on_call(path, grpc_status)` is told about every call (netexec's request log).
    """

    def __init__(self, on_call: Callable[[str, int], None] | None = None) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.on_call = on_call
        self.calls: dict[int, tuple[str, bytearray]] = {}  # open stream → (path, request bytes)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.initiate_connection()
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._close()  # h2 queued a GOAWAY with the reason
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self._request(ev.stream_id, header_dict(ev.headers))
            elif isinstance(ev, h2.events.DataReceived):
                call = self.calls.get(ev.stream_id)
                if call is not None and len(call[1]) < MAX_MESSAGE:
                    call[1].extend(ev.data or b"")
                # Always give the window back, or a long-lived connection stalls.
                self.conn.acknowledge_received_data(ev.flow_controlled_length or 0, ev.stream_id or 0)
            elif isinstance(ev, h2.events.StreamEnded):
                self._end(ev.stream_id or 0)
            elif isinstance(ev, h2.events.StreamReset):
                self.calls.pop(ev.stream_id or 0, None)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self._close()
                return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.clear()

    def _request(self, sid: int, headers: dict[str, str]) -> None:
        path = headers.get(":path", "")
        if headers.get(":method") != "POST" or not headers.get("content-type", "").startswith("application/grpc"):
            # grpc-go answers a non-gRPC request with HTTP 415.
            self.conn.send_headers(sid, [(":status", "415"), ("content-type", "text/plain")], end_stream=True)
            return
        if path in (CHECK, WATCH):
            self.calls[sid] = (path, bytearray())
            return
        self._trailers_only(sid, UNIMPLEMENTED, f"unknown method {path}")
        self._told(path, UNIMPLEMENTED)

    def _end(self, sid: int) -> None:
        call = self.calls.get(sid)
        if call is None:
            return
        path, body = call
        try:
            messages = unframe(bytes(body))
            for m in messages:
                decode_request(m)  # any service name is SERVING; parse only to reject garbage
        except ValueError as e:
            del self.calls[sid]
            self._trailers_only(sid, INTERNAL, f"grpc: error unmarshalling request: {e}")
            self._told(path, INTERNAL)
            return
        self.conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        self.conn.send_data(sid, frame(encode_response(SERVING)))
        if path == CHECK:
            del self.calls[sid]
            self.conn.send_headers(sid, [("grpc-status", str(OK))], end_stream=True)
        # Watch: the stream stays open (the status never changes) until the client leaves.
        self._told(path, OK)

    def _trailers_only(self, sid: int, code: int, message: str) -> None:
        self.conn.send_headers(
            sid,
            [
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", str(code)),
                ("grpc-message", message.replace("%", "%25")),
            ],
            end_stream=True,
        )

    def _told(self, path: str, code: int) -> None:
        if self.on_call is not None:
            self.on_call(path, code)

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self) -> None:
        self._flush()
        if self.transport is not None:
            self.transport.close()


# --- the client side: the kubelet's grpc probe ---------------------------------------------


async def grpc_check(ns_fd: int | None, ip: str, port: int, service: str, timeout: float) -> bool:
    """Health/Check from namespace `ns_fd` to ip:port: True iff OK and SERVING (the kubelet's rule)."""
    loop = asyncio.get_running_loop()
    s = netns.socket_in(ns_fd)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(s, (ip, port))
            conn.initiate_connection()
            sid = conn.get_next_available_stream_id()
            conn.send_headers(
                sid,
                [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", CHECK),
                    (":authority", f"{ip}:{port}"),
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                    ("user-agent", "kube-probe/kemu"),
                ],
            )
            conn.send_data(sid, frame(encode_request(service)), end_stream=True)
            await loop.sock_sendall(s, conn.data_to_send())
            http_status, grpc_status, body = "", "", bytearray()
            ended = False
            while not ended:
                data = await loop.sock_recv(s, 65536)
                if not data:
                    return False
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived | h2.events.TrailersReceived) and ev.stream_id == sid:
                        headers = header_dict(ev.headers)
                        http_status = str(headers.get(":status", http_status))
                        grpc_status = str(headers.get("grpc-status", grpc_status))
                    elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                        body.extend(ev.data or b"")
                        conn.acknowledge_received_data(ev.flow_controlled_length or 0, sid)
                    elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                        ended = True
                    elif isinstance(ev, h2.events.StreamReset | h2.events.ConnectionTerminated):
                        return False
                if out := conn.data_to_send():
                    await loop.sock_sendall(s, out)
            conn.close_connection()
            try:
                await loop.sock_sendall(s, conn.data_to_send())
            except OSError:
                pass
        if http_status != "200" or grpc_status != str(OK):
            return False
        messages = unframe(bytes(body))
        return len(messages) == 1 and decode_response(messages[0]) == SERVING
    except (OSError, TimeoutError, ValueError, h2.exceptions.H2Error) as e:
        log.debug("grpc probe %s:%d: %s", ip, port, e)
        return False
    finally:
        s.close()
