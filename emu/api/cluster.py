"""A running cluster, as the API hands it out: its members, its objects, the oracle.

Every method talks to the cluster's daemon over its control socket, as the `kemu`
command does (the ops: emu/daemon/protocol.py), and returns once the kernel reflects
the change, as the command does.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from emu.api import launch
from emu.api.faults import FaultsMixin
from emu.api.member import Member
from emu.api.names import endpoint_ref, label_changes, plain_name, split_pod, split_port
from emu.api.scapy_link import Helper, namespace_inode
from emu.daemon.client import request
from emu.errors import KemuError, NotFoundError

if TYPE_CHECKING:
    from types import TracebackType

    from emu.daemon.protocol import ApplyResult, ProbeResult, StatusResult, TraceResult
    from emu.dataplane.ownership import Record

log = logging.getLogger(__name__)


def _kind(word: str) -> str:
    """A kind as kubectl takes it (`pod`, `svc`, `networkpolicy`, `Deployment`, …)."""
    from emu.config import registry

    return registry.canonical_kind(word)


class Cluster(FaultsMixin):
    """A running kemu cluster (from `emu.up` or `emu.attach`).

    Use it as a context manager: leaving the `with` block takes down a cluster that
    `emu.up` brought up (also on an exception or Ctrl-C), and only lets go of one that
    `emu.attach` found. Namespaces default to "default", as kubectl's do.
    """

    def __init__(self, name: str, *, owned: bool, source: launch.Source | None = None, unready: Sequence[str] = ()) -> None:
        self.name = name
        self.owned = owned  # brought up by this object: taken down when it is left
        self.unready: list[str] = list(unready)  # pods (ns/name) not Ready when it came up
        self._source = source
        self._helpers: dict[str, Helper] = {}
        self._addresses: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._down = False
        if owned:  # a program that ends without leaving the block or calling down()
            atexit.register(self._at_exit)

    def __repr__(self) -> str:
        return f"<kemu cluster {self.name}{' (owned)' if self.owned else ''}>"

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.owned:
            self.down()
        else:
            self.close()

    # --- life cycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        from emu.dataplane.ownership import list_clusters

        return not self._down and self.name in list_clusters()

    def status(self) -> StatusResult:
        """The daemon's summary: pid, pod count, pods not Ready."""
        with self._remote():
            return request(self.name, "status")

    def close(self) -> None:
        """Stop the scapy helpers this object started (the cluster keeps running)."""
        with self._lock:
            helpers, self._helpers = list(self._helpers.values()), {}
        for h in helpers:
            h.close()

    def down(self) -> None:
        """Take the cluster down, as `kemu down` (whoever brought it up); a second call does nothing."""
        with launch.sigint_deferred():
            self.close()
            if not self._down:
                self._down = True
                atexit.unregister(self._at_exit)
                try:
                    launch.down(self.name)
                finally:
                    if self._source is not None:
                        launch.discard(self._source)

    def _at_exit(self) -> None:
        if not self._down:
            log.warning("cluster %s is still up as the program ends: taking it down", self.name)
            self.down()

    # --- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _remote(self) -> Iterator[None]:
        """Around each request: a cluster that is gone says so; the daemon's "not found"
        errors come back as NotFoundError."""
        if not self.running:
            raise NotFoundError(f"cluster {self.name} is not running")
        try:
            yield
        except NotFoundError:
            raise
        except KemuError as e:
            if e.exit_code == 2 and "not found" in str(e).lower():
                raise NotFoundError(str(e)) from None
            raise

    def _record(self) -> Record:
        from emu.dataplane.ownership import Record

        if not self.running:
            raise NotFoundError(f"cluster {self.name} is not running")
        return Record.load(self.name)

    def _pod_missing(self, key: str) -> NotFoundError:
        """Why a pod has no namespace: it does not exist, or is not running yet."""
        ns, name = split_pod(key)
        try:
            pod = self.get("pod", name, namespace=ns)
        except NotFoundError:
            there = sorted(self._record().data["pods"])
            near = [k for k in there if k.startswith(f"{ns}/")]
            hint = (
                f" (running in {ns}: {', '.join(n.split('/', 1)[1] for n in near[:10])})" if near else f" (no pod runs in namespace {ns})"
            )
            return NotFoundError(f'pod "{name}" not found in namespace {ns} of cluster {self.name}{hint}')
        phase = (pod.get("status") or {}).get("phase", "?")
        return NotFoundError(f"pod {key} is {phase}: it has no network namespace (not running on a node yet)")

    def _address(self, kind: str, name: str) -> str:
        """A node's InternalIP or a host's address (they never change while the cluster runs)."""
        key = (kind, name)
        if key not in self._addresses:
            obj = self.get("node" if kind == "node" else "host", name)
            addrs = (obj.get("status") or {}).get("addresses") or []
            ip = next((a["address"] for a in addrs if a.get("type") in ("InternalIP", "ExternalIP")), None)
            if ip is None:
                raise NotFoundError(f"{kind} {name} has no address")
            self._addresses[key] = str(ip)
        return self._addresses[key]

    def _helper(self, m: Member) -> Helper:
        """The scapy helper of a member's namespace (started on first use)."""
        ns = m.netns
        inode = namespace_inode(ns)
        with self._lock:
            h = self._helpers.get(ns)
            if h is not None and h.alive() and h.inode == inode:
                return h
            stale = self._helpers.pop(ns) if h is not None else None
        if stale is not None:
            stale.close()  # its namespace is gone: the pod was recreated under its name
        fresh = Helper(ns, f"{m.ref} (cluster {self.name})")
        drop: Helper | None
        with self._lock:
            other = self._helpers.get(ns)
            if other is not None and other.alive() and other.inode == fresh.inode:
                keep, drop = other, fresh  # another thread started one meanwhile
            else:
                self._helpers[ns] = keep = fresh
                drop = other
        if drop is not None:
            drop.close()
        return keep

    def _forget_gone(self) -> None:
        """Stop the helpers of namespaces that are gone (a deleted pod's): each would
        keep its namespace alive in the kernel."""
        from emu.dataplane import netns

        with self._lock:
            gone = [ns for ns in self._helpers if not netns.exists(ns)]
            helpers = [self._helpers.pop(ns) for ns in gone]
        for h in helpers:
            h.close()

    # --- members ----------------------------------------------------------------------------

    def pod(self, ref: str, namespace: str | None = None) -> Member:
        """A running pod: `"ns/name"`, or `"name"` in `namespace` (default "default")."""
        ns, name = split_pod(ref, namespace)
        m = Member(self, "pod", f"{ns}/{name}")
        m.netns  # noqa: B018 - raises NotFoundError, with the reason, for a pod that is not running
        return m

    def pods(self, namespace: str | None = None, *, selector: str | None = None, all_namespaces: bool = False) -> list[Member]:
        """The running pods of a namespace (or all), optionally matching a label selector
        (`"app=web"`, as `kemu get pods -l` takes it), by name."""
        doc = self.get("pod", namespace=namespace, selector=selector, all_namespaces=all_namespaces)
        running = self._record().data["pods"]
        keys = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in doc["items"]]
        return [Member(self, "pod", k) for k in keys if k in running]

    def node(self, name: str) -> Member:
        """A node by name."""
        m = Member(self, "node", plain_name(name, "node"))
        m.netns  # noqa: B018 - raises NotFoundError for a node that does not exist
        return m

    def host(self, name: str) -> Member:
        """An external host by name."""
        m = Member(self, "host", plain_name(name, "host"))
        m.netns  # noqa: B018 - raises NotFoundError for a host that does not exist
        return m

    # --- objects ----------------------------------------------------------------------------

    def apply(self, path_or_yaml: str | os.PathLike[str], namespace: str | None = None) -> ApplyResult:
        """`kemu apply -f`: a file, a directory of manifests, or a YAML string; `namespace`
        is -n's (for objects that name none). Returns kubectl's result lines and warnings."""
        from emu.cli.manifests import read_inputs

        if isinstance(path_or_yaml, str) and launch.looks_like_yaml(path_or_yaml):
            docs = [[launch.YAML_LABEL, path_or_yaml]]
        else:
            docs = read_inputs([os.fspath(path_or_yaml)], recursive=False, verb="apply")
        with self._remote():
            if namespace:
                return request(self.name, "apply", docs=docs, namespace=namespace)
            return request(self.name, "apply", docs=docs)

    def delete(
        self,
        kind: str,
        name: str | Sequence[str],
        namespace: str | None = None,
        *,
        wait: bool = True,
        grace_period: int | None = None,
        ignore_not_found: bool = False,
    ) -> list[str]:
        """`kemu delete KIND NAME… -n NS`: returns once the objects are gone (as kubectl
        waits; `wait=False` does not). NotFoundError unless `ignore_not_found`."""
        names = [name] if isinstance(name, str) else list(name)
        with self._remote():
            res = request(
                self.name,
                "delete",
                kind=_kind(kind),
                names=names,
                namespace=namespace or "default",
                grace_period=grace_period,
                wait=wait,
                ignore_not_found=ignore_not_found,
            )
        self._forget_gone()
        return list(res.get("deleted") or [])

    def label(self, kind: str, name: str, labels: dict[str, str | None], namespace: str | None = None, *, overwrite: bool = False) -> None:
        """`kemu label KIND NAME k=v k2-`: a value sets a label, None removes it. As
        kubectl, changing an existing label's value needs `overwrite=True`."""
        set_, remove = label_changes(labels)
        with self._remote():
            try:
                request(
                    self.name,
                    "label",
                    kind=_kind(kind),
                    name=name,
                    namespace=namespace or "default",
                    set=set_,
                    remove=remove,
                    overwrite=overwrite,
                )
            except KemuError as e:
                if "--overwrite is false" not in str(e):
                    raise
                raise KemuError(str(e).replace("--overwrite is false", "overwrite=False (pass overwrite=True to change it)")) from None

    def get(
        self,
        kind: str,
        name: str | None = None,
        namespace: str | None = None,
        *,
        selector: str | None = None,
        all_namespaces: bool = False,
    ) -> dict[str, Any]:
        """`kemu get KIND [NAME] -o json`: the object when named (NotFoundError if there
        is none), else a List (`{"kind": "List", "items": […]}`) of the namespace's, or
        every namespace's, objects of that kind, optionally matching a label selector."""
        k = _kind(kind)
        with self._remote():
            items = list(
                request(
                    self.name, "get", kind=k, name=name, namespace=namespace or "default", all_namespaces=all_namespaces, selector=selector
                )
            )
        if name is None:
            return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
        if not items:
            from emu.config import registry

            where = f" in namespace {namespace or 'default'}" if registry.is_namespaced(k) else ""
            raise NotFoundError(f'{registry.BY_KIND[k].resource} "{name}" not found{where}')
        return dict(items[0])

    # --- the oracle and traffic -------------------------------------------------------------

    def probe(
        self,
        to: str = "pods",
        *,
        ports: Sequence[int] | None = None,
        protocols: Sequence[str] | None = None,
        timeout: float = 1.0,
        expect: bool = False,
    ) -> ProbeResult:
        """`kemu probe`: every pod to every served port (`to="services"`: every Service;
        or one Service), real connections. Rows as `kemu probe -o json`'s results:
        {"from", "to", "port", "protocol", "connected"}, with "expected" (the
        NetworkPolicy oracle's verdict) when `expect`."""
        with self._remote():
            return request(
                self.name,
                "probe",
                timeout=300.0 + timeout * 10,
                to=to,
                ports=list(ports) if ports else None,
                protocols=[p.upper() for p in protocols] if protocols else None,
                probe_timeout=timeout,
                expect=expect,
            )

    def explain(self, src: str | Member, dst: str | Member, port: int | None = None, protocol: str | None = None) -> str:
        """`kemu explain SRC DST[:PORT[/PROTO]]`: what Kubernetes decides for the
        connection, and why (NetworkPolicy and Services), as text. `dst` may carry the
        port (`"y/b:80/TCP"`) or take `port=`/`protocol=`."""
        d, p, proto = split_port(endpoint_ref(dst), port, protocol)
        with self._remote():
            lines = request(self.name, "explain", src=endpoint_ref(src), dst=d, port=p, protocol=proto.upper() if proto else None)
        return "\n".join(lines)

    def trace(
        self, src: str | Member, dst: str | Member, port: int | None = None, protocol: str | None = None, *, timeout: float = 1.0
    ) -> TraceResult:
        """`kemu trace SRC DST -o json`: one real packet and what the kernel did with it,
        hop by hop ("hops", "verdict", "reason", "model", …). `dst`: a member, a Service
        (`name.ns`) or an IP, with `:PORT[/tcp|udp]` or `/icmp`, or `port=`/`protocol=`."""
        d, p, proto = split_port(endpoint_ref(dst), port, protocol)
        with self._remote():
            return request(
                self.name,
                "trace",
                timeout=60.0 + timeout,
                src=endpoint_ref(src),
                dst=d,
                port=p,
                protocol=proto.lower() if proto else None,
                trace_timeout=timeout,
            )
