"""One function per `kemu` subcommand; each returns what to print or an exit code."""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from emu.cli.output import render
from emu.config import load_cluster_file
from emu.config.schema import label_key, label_value
from emu.daemon.client import pick_cluster, request
from emu.dataplane import netns
from emu.dataplane.cleanup import clean_cluster
from emu.dataplane.ownership import Record, list_clusters
from emu.errors import DaemonError, KemuError, NotFoundError, Problem, ValidationError
from emu.traffic.probe import Result, table

log = logging.getLogger("kemu")
UP_DEADLINE = 900.0  # a detached bring-up that says nothing for this long has hung


class _RemoteDown(BaseException):
    """`kemu down` (or SIGTERM) arrived while the foreground shell was running."""


def _progress_printer() -> Any:
    tty = sys.stderr.isatty()
    shown: dict[str, int] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if total < 50:
            return
        if tty:
            end = "\n" if done == total else ""
            print(f"\r  {phase}: {done}/{total}", end=end, file=sys.stderr, flush=True)
        else:
            quarter = done * 4 // total
            if shown.get(phase, -1) < quarter:
                shown[phase] = quarter
                print(f"  {phase}: {done}/{total}", file=sys.stderr, flush=True)

    return progress


def _summary(name: str, unready: list[str], took: float) -> None:
    print(f"cluster {name} is up ({took:.1f} s)", file=sys.stderr)
    if unready:
        print(f"warning: {len(unready)} pod(s) not Ready yet: {', '.join(unready[:10])}", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> str:
    cfg = load_cluster_file(args.file)
    m = cfg.manifests
    replicas = sum(d.replicas for d in m.deployments)
    return (
        f"{args.file}: ok: cluster {cfg.spec.name}: {len(cfg.spec.nodes)} node(s), {len(cfg.spec.external_hosts)} external host(s), "
        f"{len(m.namespaces)} namespace(s), {len(m.pods) + replicas} pod(s) ({replicas} from {len(m.deployments)} deployment(s))"
    )


def cmd_up(args: argparse.Namespace) -> int:
    cfg = load_cluster_file(args.file)
    if args.detach:
        return _up_detached(args, cfg.spec.name)
    from emu.cli.shell import KemuCLI
    from emu.daemon.host import HostedCluster

    t0 = time.monotonic()
    hosted = HostedCluster(cfg, _progress_printer())

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise _RemoteDown()

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        unready = hosted.start(args.ready_timeout)
        _summary(cfg.spec.name, unready, time.monotonic() - t0)
        hosted.on_remote_down(lambda: os.kill(os.getpid(), signal.SIGTERM))
        stdin = sys.stdin if sys.stdin is not None else open(os.devnull)
        KemuCLI(hosted.cluster, stdin=stdin, script=args.script)
    except _RemoteDown:
        print("cluster taken down", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, old)
        hosted.stop()
    return 0


def _up_detached(args: argparse.Namespace, name: str) -> int:
    r, w = os.pipe()
    argv = [
        sys.executable,
        "-m",
        "emu.daemon",
        os.path.abspath(args.file),
        "--report-fd",
        str(w),
        "--ready-timeout",
        str(args.ready_timeout),
    ]
    if args.verbose:
        argv.append("-v")
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, pass_fds=[w], stdin=subprocess.DEVNULL, start_new_session=True)
    os.close(w)
    progress = _progress_printer()
    buf = b""
    with os.fdopen(r, "rb", buffering=0) as rf:
        while True:
            ready, _, _ = select.select([rf], [], [], UP_DEADLINE)
            if not ready:
                proc.kill()
                raise KemuError(f"cluster {name}: the daemon reported nothing for {UP_DEADLINE:.0f} s; killed it (run `kemu clean`)")
            chunk = rf.read(4096)
            if not chunk:
                code = proc.wait(30)
                raise KemuError(f"cluster {name}: the daemon exited ({code}) before the cluster was ready")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                word, _, rest = line.decode().partition(" ")
                if word == "PROGRESS":
                    phase, done, total = rest.split()
                    progress(phase, int(done), int(total))
                elif word == "READY":
                    _summary(name, json.loads(rest), time.monotonic() - t0)
                    print(f"daemon pid {proc.pid}; `kemu down {name}` to stop", file=sys.stderr)
                    return 0
                elif word == "ERROR":
                    code, _, msg = rest.partition(" ")
                    proc.wait(60)
                    print(f"error: {json.loads(msg)}", file=sys.stderr)
                    return int(code)


def cmd_down(args: argparse.Namespace) -> str:
    name = pick_cluster(args.name or args.cluster)
    daemon = Record.load(name).daemon()
    try:
        request(name, "down", timeout=600)
        # Return once the daemon is gone too, so the name can be taken again at once:
        # a pidfd becomes readable when its process exits.
        if daemon is not None and daemon.alive():
            try:
                fd = os.pidfd_open(daemon.pid)
            except ProcessLookupError:
                fd = -1
            if fd >= 0:
                try:
                    select.select([fd], [], [], 30)
                finally:
                    os.close(fd)
    except DaemonError as e:
        # Nobody answers: the owner died. Clean up from the record instead.
        log.warning("%s; cleaning up from the recorded state", e)
        clean_cluster(Record.load(name))
    return f"cluster {name} is down"


def cmd_clean(args: argparse.Namespace) -> str:
    lines = []
    for name in list_clusters():
        rec = Record.load(name)
        d = rec.daemon()
        if d is not None and d.alive():
            try:
                request(name, "down", timeout=600)
                lines.append(f"cluster {name}: was running; taken down")
                continue
            except KemuError as e:
                log.warning("cluster %s: daemon alive but not answering (%s); killing it", name, e)
        removed = clean_cluster(rec)
        lines.append(f"cluster {name}: removed {len(removed)} leftover(s)" + "".join(f"\n  {x}" for x in removed))
    return "\n".join(lines) or "nothing to clean"


def cmd_apply(args: argparse.Namespace) -> str:
    res = request(pick_cluster(args.cluster), "apply", file=os.path.abspath(args.filename))
    if res.get("warning"):
        print(f"warning: {res['warning']}", file=sys.stderr)
    return f"applied {args.filename}: {len(res['created'])} pod(s) created, {len(res['deleted'])} deleted"


def cmd_delete(args: argparse.Namespace) -> str:
    name = pick_cluster(args.cluster)
    if args.filename:
        res = request(name, "delete_file", file=os.path.abspath(args.filename))
        return "\n".join(f"{k} deleted" for k in res["deleted"])
    if not args.kind or not args.name:
        raise ValidationError([Problem("<command line>", "", "give -f FILE, or KIND NAME")])
    request(name, "delete", kind=args.kind, name=args.name, namespace=args.namespace, grace_period=args.grace_period, wait=args.wait)
    return f"{args.kind}/{args.name} deleted"


def parse_labels(words: list[str]) -> tuple[dict[str, str], list[str]]:
    problems: list[Problem] = []

    def report(path: str, msg: str) -> None:
        problems.append(Problem("<command line>", path, msg))

    set_: dict[str, str] = {}
    remove: list[str] = []
    for w in words:
        if w.endswith("-") and "=" not in w:
            label_key(w[:-1], w, report)
            remove.append(w[:-1])
        elif "=" in w:
            k, v = w.split("=", 1)
            label_key(k, w, report)
            label_value(v, w, report)
            set_[k] = v
        else:
            report(w, "expected KEY=VALUE to set or KEY- to remove")
    if problems:
        raise ValidationError(problems)
    return set_, remove


def cmd_label(args: argparse.Namespace) -> str:
    set_, remove = parse_labels(args.labels)
    request(
        pick_cluster(args.cluster),
        "label",
        kind=args.kind,
        name=args.name,
        namespace=args.namespace,
        set=set_,
        remove=remove,
        overwrite=args.overwrite,
    )
    return f"{args.kind}/{args.name} labeled"


def cmd_get(args: argparse.Namespace) -> str:
    from emu.cluster.store import canonical_kind

    kind = canonical_kind(args.kind)
    items = request(
        pick_cluster(args.cluster), "get", kind=kind, name=args.name, namespace=args.namespace, all_namespaces=args.all_namespaces
    )
    if args.name and not items:
        raise NotFoundError(f'{args.kind} "{args.name}" not found')
    out = render(kind, items, args.output, args.all_namespaces, bool(args.name))
    if not out:
        print(
            "No resources found"
            + ("" if args.all_namespaces or kind in ("Node", "Host", "Namespace") else f" in {args.namespace} namespace")
            + ".",
            file=sys.stderr,
        )
    return out


def cmd_exec(args: argparse.Namespace) -> int:
    rec = Record.load(pick_cluster(args.cluster))
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ValidationError([Problem("<command line>", "", "no command: kemu exec POD -- CMD...")])
    kind, _, rest = args.target.partition("/")
    if kind in ("node", "host") and rest:
        where = rec.data["nodes" if kind == "node" else "hosts"].get(rest)
        if where is None:
            raise NotFoundError(f"{kind} {rest!r} not found")
        ns_name, hostname = where, rest
    else:
        pod = rec.data["pods"].get(f"{args.namespace}/{args.target}")
        if pod is None:
            raise NotFoundError(f'pods "{args.target}" not found in namespace {args.namespace} (or not running)')
        if args.container and args.container not in pod.get("containers", [args.container]):
            raise NotFoundError(f"container {args.container} is not valid for pod {args.target}")
        ns_name, hostname = pod["netns"], pod["hostname"]
    netns.enter_process(ns_name, hostname)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f"error: {command[0]}: {e.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached: execvp replaced this process


def cmd_explain(args: argparse.Namespace) -> str:
    dst, port, proto = args.dst, None, None
    if ":" in dst:
        dst, _, rest = dst.partition(":")
        p, _, proto = rest.partition("/")
        if not p.isdigit() or not 0 < int(p) < 65536 or (proto and proto.upper() not in ("TCP", "UDP", "SCTP")):
            raise ValidationError([Problem("<command line>", args.dst, "expected ns/pod:PORT[/TCP|UDP|SCTP]")])
        port, proto = int(p), (proto.upper() or None)
    lines = request(pick_cluster(args.cluster), "explain", src=args.src, dst=dst, port=port, protocol=proto)
    return "\n".join(lines)


def cmd_probe(args: argparse.Namespace) -> str | int:
    if args.expect and (args.file or args.to != "pods"):
        raise ValidationError([Problem("<command line>", "--expect", "compares a running cluster's pods only (no FILE, --to pods)")])
    if args.file:
        from emu.cluster.probing import probe_cluster
        from emu.cluster.runtime import Cluster
        from emu.daemon.host import raise_fd_limit

        raise_fd_limit()
        c = Cluster(load_cluster_file(args.file), _progress_printer())
        try:
            c.up()
            unready = c.wait_ready(60)
            if unready:
                log.warning("probing with %d pod(s) not Ready: %s", len(unready), ", ".join(unready[:10]))
            results = probe_cluster(c, args.to, args.ports, args.protocols, args.timeout)
        finally:
            c.down()
    else:
        raw = request(
            pick_cluster(args.cluster),
            "probe",
            to=args.to,
            ports=args.ports,
            protocols=args.protocols,
            probe_timeout=args.timeout,
            expect=args.expect,
        )
        results = [Result(r["from"], r["to"], r["port"], r["protocol"], r["connected"]) for r in raw]
        if args.expect:
            diffs = [r for r in raw if r["connected"] != r["expected"]]
            if args.output == "json":
                print(json.dumps({"target": args.to, "results": raw, "differences": diffs}, indent=1))
            else:
                print(table(results))
                for r in diffs:
                    want = "allowed" if r["expected"] else "denied"
                    got = "connected" if r["connected"] else "did not connect"
                    print(f"DIFFERENCE {r['from']} → {r['to']}:{r['port']}/{r['protocol']}: policy says {want}, the kernel {got}")
                print(f"{len(diffs)} difference(s) from the NetworkPolicy oracle")
            return 1 if diffs else 0
    if args.output == "json":
        return json.dumps({"target": args.to, "results": [r.as_json() for r in results]}, indent=1)
    return table(results)
