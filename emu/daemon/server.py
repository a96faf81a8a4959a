"""The control socket: one JSON request per connection, one JSON answer.

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
from collections.abc import Callable
from typing import Any

from emu.cluster import views
from emu.cluster.explaining import expected, explain
from emu.cluster.probing import probe_cluster
from emu.cluster.runtime import Cluster
from emu.cluster.store import canonical_kind
from emu.config.loader import load_manifest_file
from emu.errors import KemuError, NotFoundError, ValidationError

log = logging.getLogger(__name__)


CLUSTER_SCOPED = ("Namespace", "Node", "Host")


def handle_request(c: Cluster, req: dict[str, Any], on_down: Callable[[], None]) -> Any:
    op = req.get("op")
    a = req.get("args") or {}
    if op == "status":
        return {"cluster": c.name, "pid": os.getpid(), "pods": len(c.pods), "unready": c.wait_ready(0)}
    if op == "get":
        kind = canonical_kind(a["kind"])
        ns = None if a.get("all_namespaces") or kind in CLUSTER_SCOPED else (a.get("namespace") or "default")
        return views.objects(c, kind, ns, a.get("name"))
    if op == "apply":
        parsed = load_manifest_file(a["file"])
        changes = c.apply(parsed)
        out: dict[str, Any] = {"created": [p.key for p in changes.create], "deleted": [p.key for p in changes.delete]}
        if parsed.manifests.network_policies and not c.spec.network_policy:
            out["warning"] = (
                "spec.networkPolicy is false: NetworkPolicies are accepted and have no effect (as with a pod network that does not implement them)"
            )
        return out
    if op == "explain":
        return explain(c, a["src"], a["dst"], a.get("port"), a.get("protocol"))
    if op == "delete_file":
        parsed = load_manifest_file(a["file"])
        done = []
        for key, obj in reversed(parsed.order):
            kind = key.split("/")[0]
            try:
                c.delete(kind, getattr(obj.meta, "namespace", ""), obj.meta.name)
            except NotFoundError:
                if not a.get("ignore_not_found"):
                    raise
                continue
            done.append(key)
        return {"deleted": done}
    if op == "delete":
        kind = canonical_kind(a["kind"])
        grace = a.get("grace_period")
        c.delete(kind, a.get("namespace") or "default", a["name"], None if grace is None or grace < 0 else int(grace), a.get("wait", True))
        return {"deleted": [f"{kind}/{a['name']}"]}
    if op == "label":
        kind = canonical_kind(a["kind"])
        c.label(kind, a.get("namespace") or "default", a["name"], a.get("set") or {}, a.get("remove") or [], bool(a.get("overwrite")))
        return {"labeled": f"{kind}/{a['name']}"}
    if op == "probe":
        results = probe_cluster(c, a.get("to", "pods"), a.get("ports"), a.get("protocols"), float(a.get("probe_timeout") or 1.0))
        rows = [r.as_json() for r in results]
        if a.get("expect"):
            for row in rows:
                row["expected"] = expected(c, row)
        return rows
    if op == "down":
        c.down()
        on_down()
        return {"down": c.name}
    raise KemuError(f"unknown request {op!r}")


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
                    req = json.loads(self.rfile.readline())
                    result = handle_request(outer.cluster, req, outer.request_down)
                    self._send({"ok": True, "result": result})
                except ValidationError as e:
                    self._send({"ok": False, "error": str(e), "exit_code": e.exit_code})
                except KemuError as e:
                    self._send({"ok": False, "error": str(e), "exit_code": e.exit_code})
                except Exception as e:
                    log.exception("request failed")
                    self._send({"ok": False, "error": f"internal error: {e}", "exit_code": 1})

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
