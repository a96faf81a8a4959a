"""The control socket's protocol: one JSON request per connection, one JSON answer.

A request is `{"op": OP, "args": {...}}`; the answer `{"ok": true, "result": ...}` or
`{"ok": false, "error": TEXT, "exit_code": N}`. The shapes of each op's args and result
are here, for the client (emu/daemon/client.py, built by emu/cli/*_cmd.py) and the
server (emu/daemon/server.py) alike. A key the server reads with `.get` is optional
(it has a default there); JSON carries tuples as lists.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NotRequired, Required, TypedDict

from emu.traffic.probe import ProbeRow

Obj = dict[str, Any]  # an object in Kubernetes' JSON shape (`kubectl get -o json`)

# --- the args of each op -------------------------------------------------------------------


class NoArgs(TypedDict):
    """status, down."""


class Scope(TypedDict, total=False):
    """Where a kind is looked up: `namespace` ("default" if unset) or every namespace;
    ignored for cluster-scoped kinds."""

    namespace: str | None
    all_namespaces: bool


class GetArgs(Scope, total=False):
    kind: Required[str]  # any spelling `kemu api-resources` lists
    name: str | None  # None: every object (of the namespace)
    selector: str | None  # a label selector, as -l takes it
    # Events only (`get events -w`): those whose metadata.resourceVersion is above
    # `since`, waiting up to `wait` seconds for one if there is none yet.
    since: int | None
    wait: float | None


class Sources(TypedDict, total=False):
    """Manifests as the CLI read them: [label, YAML text] for each -f input (a daemon
    reads no files of the user's); `file`, a path, is the first protocol's."""

    docs: list[list[str]]
    file: str


class ApplyArgs(Sources, total=False):
    namespace: str  # kubectl's -n: for the namespaced objects that name none


class DeleteFileArgs(Sources, total=False):
    ignore_not_found: bool


class DeleteArgs(Scope, total=False):
    kind: Required[str]
    names: list[str]
    name: str  # the first protocol's single name
    selector: str | None
    all: bool
    grace_period: int | None  # seconds; None or < 0: each pod's own
    wait: bool  # return only when the objects are gone (default True)
    ignore_not_found: bool


class NamedArgs(TypedDict):
    """One object of a namespaced kind (namespace "" or None: "default")."""

    kind: str
    name: str
    namespace: NotRequired[str | None]


class LabelArgs(NamedArgs, total=False):
    set: dict[str, str]
    remove: list[str]
    overwrite: bool


class ScaleArgs(NamedArgs):
    replicas: int


class RolloutStatusArgs(NamedArgs, total=False):
    rollout_timeout: float | None  # seconds the daemon waits; 0 or None: an hour


class LogsArgs(TypedDict):
    pod: str
    namespace: NotRequired[str | None]
    container: NotRequired[str | None]  # None: the only container


class ExplainArgs(TypedDict):
    src: str
    dst: str
    port: NotRequired[int | None]
    protocol: NotRequired[str | None]


class TraceArgs(TypedDict):
    src: str  # ns/pod, node/NAME, host/NAME
    dst: str  # those, a Service (name.ns or ns/name) or an IPv4 address
    port: NotRequired[int | None]
    protocol: NotRequired[str | None]  # tcp | udp | icmp
    trace_timeout: NotRequired[float | None]  # seconds the sender waits for an answer


class FaultArgs(TypedDict, total=False):
    action: Required[str]  # add | clear | list | kill
    kind: str  # add: link | partition | loss | rate | delay
    words: list[str]  # add: the fault's words (TARGET VALUE…, or partition's first group)
    others: list[str]  # add, partition: the second group
    target: str | None  # clear: only this target's faults (None: all); kill: the pod
    container: str | None  # kill: the container (None: the pod's only one)


class ProbeArgs(TypedDict, total=False):
    to: str  # pods (default), services, or one Service
    ports: list[int] | None
    protocols: list[str] | None
    probe_timeout: float | None
    expect: bool  # add each row's NetworkPolicy verdict


class ReachabilityArgs(TypedDict, total=False):
    """The probe's pairs (the same clients, destinations, ports), judged by the oracle only."""

    ports: list[int] | None
    protocols: list[str] | None


# --- requests: the op, then its args (the tag mypy narrows on) -------------------------------


class StatusRequest(TypedDict):
    op: Literal["status"]
    args: NoArgs


class GetRequest(TypedDict):
    op: Literal["get"]
    args: GetArgs


class ApplyRequest(TypedDict):
    op: Literal["apply"]
    args: ApplyArgs


class ExplainRequest(TypedDict):
    op: Literal["explain"]
    args: ExplainArgs


class DeleteFileRequest(TypedDict):
    op: Literal["delete_file"]
    args: DeleteFileArgs


class DeleteRequest(TypedDict):
    op: Literal["delete"]
    args: DeleteArgs


class LabelRequest(TypedDict):
    op: Literal["label"]
    args: LabelArgs


class ScaleRequest(TypedDict):
    op: Literal["scale"]
    args: ScaleArgs


class RolloutStatusRequest(TypedDict):
    op: Literal["rollout_status"]
    args: RolloutStatusArgs


class RolloutRestartRequest(TypedDict):
    op: Literal["rollout_restart"]
    args: NamedArgs


class LogsRequest(TypedDict):
    op: Literal["logs"]
    args: LogsArgs


class TraceRequest(TypedDict):
    op: Literal["trace"]
    args: TraceArgs


class FaultRequest(TypedDict):
    op: Literal["fault"]
    args: FaultArgs


class ProbeRequest(TypedDict):
    op: Literal["probe"]
    args: ProbeArgs


class ReachabilityRequest(TypedDict):
    op: Literal["reachability"]
    args: ReachabilityArgs


class DownRequest(TypedDict):
    op: Literal["down"]
    args: NoArgs


Request = (
    StatusRequest
    | GetRequest
    | ApplyRequest
    | ExplainRequest
    | DeleteFileRequest
    | DeleteRequest
    | LabelRequest
    | ScaleRequest
    | RolloutStatusRequest
    | RolloutRestartRequest
    | LogsRequest
    | ProbeRequest
    | TraceRequest
    | FaultRequest
    | ReachabilityRequest
    | DownRequest
)


def encode_request(op: str, args: object) -> bytes:
    return json.dumps({"op": op, "args": args}).encode() + b"\n"


def decode_request(line: bytes) -> Request:
    """A request line as the server reads it. The envelope is made whole (no "op": an
    unknown request; no "args", or null: none); the args are taken as the client's
    builders typed them: the socket answers root only, and a malformed request fails
    like any other request with a bug in it."""
    raw = json.loads(line)
    raw.setdefault("op", None)
    raw["args"] = raw.get("args") or {}
    req: Request = raw
    return req


# --- results ---------------------------------------------------------------------------------


class StatusResult(TypedDict):
    cluster: str
    pid: int
    pods: int
    unready: list[str]  # ns/name of the pods not Ready


class ApplyResult(TypedDict):
    results: list[str]  # `kind/name verb`, as kubectl prints them
    warnings: list[str]


class DeleteResult(TypedDict):
    deleted: list[str]  # `resource "name" deleted`


class LabelResult(TypedDict):
    labeled: str


class ObjectResult(TypedDict):
    """scale, rollout_restart: kubectl's line for the object."""

    result: str


class RolloutStatusResult(TypedDict):
    done: bool
    message: str


class LogsResult(TypedDict):
    text: str


class DownResult(TypedDict):
    down: str  # the cluster's name


GetResult = list[Obj]
ExplainResult = list[str]  # the explanation's lines
ProbeResult = list[ProbeRow]
FaultResult = dict[str, Any]  # add, clear: {"results": [lines]}; list: {"faults": [rows]}
TraceResult = dict[str, Any]  # emu.trace.translate.Trace.to_json, with from, to, seconds
# The NetworkPolicy oracle's verdict on one probe row, no traffic sent ("from" is a keyword).
ReachabilityRow = TypedDict("ReachabilityRow", {"from": str, "to": str, "port": int, "protocol": str, "allowed": bool})
ReachabilityResult = list[ReachabilityRow]

Response = (
    StatusResult
    | GetResult
    | ApplyResult
    | ExplainResult
    | DeleteResult
    | LabelResult
    | ObjectResult
    | RolloutStatusResult
    | LogsResult
    | ProbeResult
    | TraceResult
    | FaultResult
    | ReachabilityResult
    | DownResult
)
