"""Talking to a running cluster's control socket."""

from __future__ import annotations

import json
import os
import socket
from typing import Any, Literal, Unpack, overload

from emu.daemon.protocol import (
    ApplyArgs,
    ApplyResult,
    DeleteArgs,
    DeleteFileArgs,
    DeleteResult,
    DownResult,
    ExplainArgs,
    ExplainResult,
    FaultArgs,
    FaultResult,
    GetArgs,
    GetResult,
    LabelArgs,
    LabelResult,
    LogsArgs,
    LogsResult,
    NamedArgs,
    NoArgs,
    ObjectResult,
    ProbeArgs,
    ProbeResult,
    ReachabilityArgs,
    ReachabilityResult,
    RolloutStatusArgs,
    RolloutStatusResult,
    ScaleArgs,
    StatusResult,
    TraceArgs,
    TraceResult,
    encode_request,
)
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


# One signature per op (emu/daemon/protocol.py): the keyword arguments are the request's
# args, checked against the op's shape; `timeout` is the socket's own.
@overload
def request(cluster: str, op: Literal["status"], timeout: float = ..., **args: Unpack[NoArgs]) -> StatusResult: ...
@overload
def request(cluster: str, op: Literal["get"], timeout: float = ..., **args: Unpack[GetArgs]) -> GetResult: ...
@overload
def request(cluster: str, op: Literal["apply"], timeout: float = ..., **args: Unpack[ApplyArgs]) -> ApplyResult: ...
@overload
def request(cluster: str, op: Literal["explain"], timeout: float = ..., **args: Unpack[ExplainArgs]) -> ExplainResult: ...
@overload
def request(cluster: str, op: Literal["delete_file"], timeout: float = ..., **args: Unpack[DeleteFileArgs]) -> DeleteResult: ...
@overload
def request(cluster: str, op: Literal["delete"], timeout: float = ..., **args: Unpack[DeleteArgs]) -> DeleteResult: ...
@overload
def request(cluster: str, op: Literal["label"], timeout: float = ..., **args: Unpack[LabelArgs]) -> LabelResult: ...
@overload
def request(cluster: str, op: Literal["scale"], timeout: float = ..., **args: Unpack[ScaleArgs]) -> ObjectResult: ...
@overload
def request(
    cluster: str, op: Literal["rollout_status"], timeout: float = ..., **args: Unpack[RolloutStatusArgs]
) -> RolloutStatusResult: ...
@overload
def request(cluster: str, op: Literal["rollout_restart"], timeout: float = ..., **args: Unpack[NamedArgs]) -> ObjectResult: ...
@overload
def request(cluster: str, op: Literal["logs"], timeout: float = ..., **args: Unpack[LogsArgs]) -> LogsResult: ...
@overload
def request(cluster: str, op: Literal["probe"], timeout: float = ..., **args: Unpack[ProbeArgs]) -> ProbeResult: ...
@overload
def request(cluster: str, op: Literal["fault"], timeout: float = ..., **args: Unpack[FaultArgs]) -> FaultResult: ...
@overload
def request(cluster: str, op: Literal["trace"], timeout: float = ..., **args: Unpack[TraceArgs]) -> TraceResult: ...
@overload
def request(cluster: str, op: Literal["reachability"], timeout: float = ..., **args: Unpack[ReachabilityArgs]) -> ReachabilityResult: ...
@overload
def request(cluster: str, op: Literal["down"], timeout: float = ..., **args: Unpack[NoArgs]) -> DownResult: ...
def request(cluster: str, op: str, timeout: float = 300.0, **args: Any) -> Any:
    path = Record.load(cluster).data["socket"]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(encode_request(op, args))
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
