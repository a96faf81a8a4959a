"""kube-proxy's service health check server: healthCheckNodePort on every node.

For a LoadBalancer Service with externalTrafficPolicy: Local, a load balancer asks each
node `GET /` on the healthCheckNodePort: 200 when the node has local endpoints, 503 when
it has none, with kube-proxy's JSON body.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

from emu.dataplane import netns


class _Health(asyncio.Protocol):
    def __init__(self, namespace: str, name: str, count: Callable[[], int]) -> None:
        self.namespace, self.name, self.count = namespace, name, count
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if b"\r\n\r\n" not in self.buf:
            return
        n = self.count()
        body = json.dumps({"service": {"namespace": self.namespace, "name": self.name}, "localEndpoints": n, "serviceProxyHealthy": True})
        status = "200 OK" if n > 0 else "503 Service Unavailable"
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        self.transport.write(head.encode() + body.encode())
        self.transport.close()


def open_listener(node_fd: int, port: int) -> socket.socket:
    netns.set_thread_netns(node_fd)
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    finally:
        netns.go_home()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    s.setblocking(False)
    return s


async def serve(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, namespace: str, name: str, count: Callable[[], int]
) -> asyncio.AbstractServer:
    return await loop.create_server(lambda: _Health(namespace, name, count), sock=sock)
