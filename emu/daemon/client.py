"""Talking to a running cluster's control socket."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from emu.dataplane.ownership import Record, list_clusters
from emu.errors import DaemonError, KemuError, NotFoundError


def pick_cluster(name: str | None) -> str:
    """The cluster a command means: the one named, else the only one running."""
    running = list_clusters()
    if name:
        if name not in running:
            raise NotFoundError(f"no cluster named {name!r} is running" + (f" (running: {', '.join(running)})" if running else ""))
        return name
    env = os.environ.get("KEMU_CLUSTER")
    if env:
        return pick_cluster(env)
    if not running:
        raise NotFoundError("no kemu cluster is running (start one with `kemu up FILE -d`)")
    if len(running) > 1:
        raise NotFoundError(f"several clusters are running ({', '.join(running)}); name one with --cluster")
    return running[0]


def request(cluster: str, op: str, timeout: float = 300.0, **args: Any) -> Any:
    path = Record.load(cluster).data["socket"]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        raise DaemonError(f"cluster {cluster!r}: control socket {path}: {e.strerror or e}") from e
    finally:
        s.close()
    if not data:
        raise DaemonError(f"cluster {cluster!r}: the daemon closed the connection without answering")
    reply = json.loads(data)
    if not reply.get("ok"):
        err = KemuError(reply.get("error", "unknown error"))
        err.exit_code = int(reply.get("exit_code", 1))
        raise err
    return reply["result"]
