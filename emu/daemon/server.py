"""The control socket: one JSON request per connection, one JSON answer (the shapes:
emu/daemon/protocol.py).

The socket lives in /run/kemu/<cluster>/ (mode 0700) with mode 0600, and the peer's
credentials (SO_PEERCRED) must be root's: a cluster's namespaces are root's business.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from emu.cluster import views
from emu.cluster.container_kill import kill_container
from emu.cluster.explaining import expected, explain
from emu.cluster.faulting import plane_of
from emu.cluster.probing import KUBE_NAMESPACES, probe_cluster
from emu.cluster.runtime import Cluster
from emu.cluster.tracing import trace
from emu.config import registry
from emu.config.loader import load_manifest_texts
from emu.daemon.protocol import (
    ApplyArgs,
    ApplyResult,
    DeleteArgs,
    DeleteFileArgs,
    DeleteResult,
    FaultArgs,
    FaultResult,
    GetArgs,
    LogsArgs,
    LogsResult,
    ProbeArgs,
    ProbeResult,
    ReachabilityArgs,
    ReachabilityResult,
    Request,
    Response,
    RolloutStatusArgs,
    RolloutStatusResult,
    Scope,
    Sources,
    decode_request,
)
from emu.errors import KemuError, NotFoundError, Problem, ValidationError
from emu.faults.spec import parse
from emu.gateway.model import GATEWAY_KINDS
from emu.model.selectors import parse_selector

GATEWAY_WAIT = 15.0  # seconds `apply` waits for new or changed Gateways to be programmed

log = logging.getLogger(__name__)


def _result_line(kind: str, name: str, verb: str) -> str:
    info = registry.info(kind)
    return f"{(info.kind.lower() + '.' + info.group) if info and info.group else kind.lower()}/{name} {verb}"


def _deleted_line(kind: str, name: str) -> str:
    info = registry.info(kind)
    return f'{info.resource if info else kind.lower()} "{name}" deleted'


def _events(c: Cluster, a: GetArgs) -> list[dict[str, Any]]:
    """Events, oldest first; with `wait`, blocks until one newer than `since` exists."""
    since = a.get("since") or 0
    wait = min(float(a.get("wait") or 0), 60.0)  # a long poll, not a connection held forever
    if wait > 0:
        c.events.wait(since, wait)
    if a.get("selector"):
        return []  # events carry no labels
    out = []
    for e in c.events.since(since, _namespace("Event", a)):
        if a.get("name") and e.name != a.get("name"):
            continue
        v1 = e.as_v1()
        v1["metadata"]["resourceVersion"] = str(e.seq)
        out.append(v1)
    return out


def _namespace(kind: str, a: Scope) -> str | None:
    if not registry.is_namespaced(kind) or a.get("all_namespaces"):
        return None
    return a.get("namespace") or "default"


def _texts(a: Sources) -> list[tuple[str, str]]:
    docs = a.get("docs")
    if docs is not None:
        return [(str(label), str(text)) for label, text in docs]
    with open(a["file"], encoding="utf-8") as f:  # the first protocol: one path
        return [(a["file"], f.read())]


def _delete_many(c: Cluster, kind: str, a: DeleteArgs) -> list[str]:
    ns = _namespace(kind, a)
    names = list(a.get("names") or ([a["name"]] if a.get("name") else []))
    selector = a.get("selector")
    if selector or a.get("all"):
        sel = parse_selector(selector) if selector else None
        names += [o["metadata"]["name"] for o in views.objects(c, kind, ns, None, sel)]
    if not names:
        raise ValidationError(
            [Problem("<command line>", "", "resource(s) were provided, but no name was specified (give NAME, -l or --all)")]
        )
    grace = a.get("grace_period")
    done = []
    for name in dict.fromkeys(names):
        try:
            c.delete(kind, ns or "", name, None if grace is None or grace < 0 else int(grace), a.get("wait", True))
        except NotFoundError:
            if not a.get("ignore_not_found"):
                raise
            continue
        done.append(_deleted_line(kind, name))
    return done


def _delete_file(c: Cluster, a: DeleteFileArgs) -> DeleteResult:
    parsed = load_manifest_texts(_texts(a))
    done = []
    for key, obj in reversed(parsed.order):
        kind = key.split("/")[0]
        try:
            c.delete(kind, obj.meta.namespace, obj.meta.name)
        except NotFoundError:
            if not a.get("ignore_not_found"):
                raise
            continue
        done.append(_deleted_line(kind, obj.meta.name))
    return {"deleted": done}


def _apply(c: Cluster, a: ApplyArgs) -> ApplyResult:
    parsed = load_manifest_texts(_texts(a), a.get("namespace"))
    changes = c.apply(parsed)
    warnings: list[str] = []
    if any(kind in GATEWAY_KINDS for kind, *_ in changes.results):
        late = c.wait_gateways(GATEWAY_WAIT)
        if late:
            warnings.append(f"not programmed yet after {GATEWAY_WAIT:.0f}s: {', '.join(late)}")
    if parsed.manifests.network_policies and not c.spec.network_policy:
        warnings.append(
            "spec.networkPolicy is false: NetworkPolicies are accepted and have no effect (as with a pod network that does not implement them)"
        )
    if c.syncer is not None:
        # The store took the change; a node whose kernel refused it says so (and retries).
        for (plane, node), err in sorted(c.syncer.failing().items()):
            warnings.append(f"node {node}: {plane} not synced ({err}); retrying, see `kemu describe node {node}`")
    return {
        "results": [_result_line(kind, name, verb) for kind, _ns, name, verb in changes.results],
        "warnings": warnings,
    }


def _logs(c: Cluster, a: LogsArgs) -> LogsResult:
    ns, name = a.get("namespace") or "default", a["pod"]
    st = c.pods.get(f"{ns}/{name}")
    if st is None:
        raise NotFoundError(f'pods "{name}" not found')
    names = [x.name for x in (*st.pod.spec.init_containers, *st.pod.spec.containers)]
    container = a.get("container")
    if container is None:
        if len(st.pod.spec.containers) > 1:
            raise ValidationError(
                [Problem("<command line>", "", f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")]
            )
        container = st.pod.spec.containers[0].name
    if container not in names:
        raise ValidationError([Problem("<command line>", "", f"container {container} is not valid for pod {name}")])
    try:
        with open(c.kubelet.log_path(st.pod, container), encoding="utf-8", errors="replace") as f:
            return {"text": f.read()}
    except FileNotFoundError:
        return {"text": ""}


def _rollout_status(c: Cluster, kind: str, a: RolloutStatusArgs) -> RolloutStatusResult:
    ns, name = a.get("namespace") or "default", a["name"]
    deadline = time.monotonic() + float(a.get("rollout_timeout") or 3600)
    while True:
        items = views.objects(c, kind, ns, name)
        if not items:
            raise NotFoundError(f'{registry.BY_KIND[kind].resource} "{name}" not found')
        o = items[0]
        want = o["spec"].get("replicas", 1) if kind != "DaemonSet" else o["status"].get("desiredNumberScheduled", 0)
        st = o["status"]
        if kind == "DaemonSet":
            ready, updated = st.get("numberReady", 0), st.get("updatedNumberScheduled", 0)
        else:
            ready, updated = st.get("readyReplicas", 0), st.get("updatedReplicas", 0)
        total = st.get("replicas", 0) if kind != "DaemonSet" else st.get("currentNumberScheduled", 0)
        if updated >= want and ready >= want and total <= want:
            word = {"Deployment": "deployment", "StatefulSet": "statefulset rolling update", "DaemonSet": "daemon set"}.get(kind, kind)
            return {"done": True, "message": f'{word} "{name}" successfully rolled out'}
        if time.monotonic() > deadline:
            return {
                "done": False,
                "message": f"error: timed out waiting for the condition ({ready} of {want} updated replicas are available)",
            }
        time.sleep(0.1)


def _probe(c: Cluster, a: ProbeArgs) -> ProbeResult:
    results = probe_cluster(c, a.get("to", "pods"), a.get("ports"), a.get("protocols"), float(a.get("probe_timeout") or 1.0))
    rows = [r.as_json() for r in results]
    if a.get("expect"):
        for row in rows:
            row["expected"] = expected(c, dict(row))
    return rows


def _reachability(c: Cluster, a: ReachabilityArgs) -> ReachabilityResult:
    """The rows `probe` would give (the same client pods, destinations, served ports),
    each with the oracle's verdict as `probe --expect` computes it; no traffic is sent."""
    protos = {p.upper() for p in a.get("protocols") or []} or {"TCP", "UDP"}
    ports = a.get("ports")
    with c.lock:
        pods = sorted(
            (
                st
                for st in c.pods.values()
                if st.phase == "Running" and st.netns and st.ip and not st.terminating and not st.host_network
                and st.pod.meta.namespace not in KUBE_NAMESPACES
            ),
            key=lambda st: st.pod.key,
        )  # fmt: skip
        targets = [
            (st.pod.key, p.container_port, p.protocol)
            for st in pods
            for p in st.pod.spec.served_ports()
            if p.protocol in protos and (not ports or p.container_port in ports)
        ]
        rows: ReachabilityResult = []
        for src in pods:
            for dst, port, proto in targets:
                verdict = expected(c, {"from": src.pod.key, "to": dst, "port": port, "protocol": proto})
                rows.append({"from": src.pod.key, "to": dst, "port": port, "protocol": proto, "allowed": verdict})
    return rows


def _fault(c: Cluster, a: FaultArgs) -> FaultResult:
    plane = plane_of(c)
    if a["action"] == "list":
        return {"faults": plane.rows()}
    if a["action"] == "clear":
        return {"results": plane.clear(a.get("target"))}
    if a["action"] == "kill":
        return {"results": [kill_container(c.kubelet, a.get("target") or "", a.get("container"))]}
    return {"results": [plane.add(parse(a.get("kind") or "", a.get("words") or [], a.get("others")))]}


def handle_request(c: Cluster, req: Request, on_down: Callable[[], None]) -> Response:
    """One request (as decode_request reads it), answered; raises KemuError for the client."""
    if req["op"] == "status":
        return {"cluster": c.name, "pid": os.getpid(), "pods": len(c.pods), "unready": c.wait_ready(0)}
    if req["op"] == "get":
        a = req["args"]
        kind = registry.canonical_kind(a["kind"])
        if kind == "Event":
            return _events(c, a)
        selector = a.get("selector")
        sel = parse_selector(selector) if selector else None
        return views.objects(c, kind, _namespace(kind, a), a.get("name"), sel)
    if req["op"] == "apply":
        return _apply(c, req["args"])
    if req["op"] == "explain":
        e = req["args"]
        return explain(c, e["src"], e["dst"], e.get("port"), e.get("protocol"))
    if req["op"] == "delete_file":
        return _delete_file(c, req["args"])
    if req["op"] == "delete":
        return {"deleted": _delete_many(c, registry.canonical_kind(req["args"]["kind"]), req["args"])}
    if req["op"] == "label":
        la = req["args"]
        kind = registry.canonical_kind(la["kind"])
        c.label(kind, la.get("namespace") or "default", la["name"], la.get("set") or {}, la.get("remove") or [], bool(la.get("overwrite")))
        return {"labeled": f"{kind}/{la['name']}"}
    if req["op"] == "scale":
        sa = req["args"]
        kind = registry.canonical_kind(sa["kind"])
        c.scale(kind, sa.get("namespace") or "default", sa["name"], int(sa["replicas"]))
        return {"result": _result_line(kind, sa["name"], "scaled")}
    if req["op"] == "rollout_status":
        return _rollout_status(c, registry.canonical_kind(req["args"]["kind"]), req["args"])
    if req["op"] == "rollout_restart":
        ra = req["args"]
        kind = registry.canonical_kind(ra["kind"])
        c.restart(kind, ra.get("namespace") or "default", ra["name"])
        return {"result": _result_line(kind, ra["name"], "restarted")}
    if req["op"] == "logs":
        return _logs(c, req["args"])
    if req["op"] == "probe":
        return _probe(c, req["args"])
    if req["op"] == "fault":
        return _fault(c, req["args"])
    if req["op"] == "trace":
        ta = req["args"]
        return trace(c, ta["src"], ta["dst"], ta.get("port"), ta.get("protocol"), ta.get("trace_timeout") or 1.0)
    if req["op"] == "reachability":
        return _reachability(c, req["args"])
    if req["op"] == "down":
        c.down()
        on_down()
        return {"down": c.name}
    raise KemuError(f"unknown request {req['op']!r}")


class ControlServer:
    def __init__(self, cluster: Cluster, on_down: Callable[[], None]) -> None:
        self.cluster = cluster
        self.path = cluster.record.data["socket"]
        self.on_down = on_down
        self.down_requested = False
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                creds = self.request.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                _, uid, _ = struct.unpack("3i", creds)
                if uid != 0:
                    self._send({"ok": False, "error": "permission denied: kemu's control socket is root's", "exit_code": 1})
                    return
                try:
                    req = decode_request(self.rfile.readline())
                    result = handle_request(outer.cluster, req, outer.request_down)
                    self._send({"ok": True, "result": result})
                except ValidationError as e:
                    self._send({"ok": False, "error": str(e), "exit_code": e.exit_code})
                except KemuError as e:
                    self._send({"ok": False, "error": str(e), "exit_code": e.exit_code})
                except Exception as e:
                    log.exception("request failed")
                    where = os.path.join(outer.cluster.record.dir, "daemon.log")
                    self._send({"ok": False, "error": f"internal error: {type(e).__name__}: {e} (traceback in {where})", "exit_code": 1})

                finally:
                    if outer.down_requested:
                        # Answered after teardown finished; now let the owner exit.
                        outer.on_down()

            def _send(self, obj: dict[str, Any]) -> None:
                try:
                    self.wfile.write(json.dumps(obj).encode() + b"\n")
                except OSError:
                    pass  # the client went away

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        if os.path.exists(self.path):
            os.unlink(self.path)
        old = os.umask(0o177)
        try:
            self.server = Server(self.path, Handler)
        finally:
            os.umask(old)
        self._inode = os.stat(self.path).st_ino
        self.thread = threading.Thread(target=self.server.serve_forever, name="kemu-control", daemon=True)

    def request_down(self) -> None:
        self.down_requested = True

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self.server.shutdown()
        self.server.server_close()
        try:
            # Only our own socket: a new cluster of the same name may have made its own.
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
