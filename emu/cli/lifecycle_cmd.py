"""`kemu validate`, `up`, `down`, `clean`: a cluster's life, from its topology file to
the last leftover removed."""

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
from typing import TYPE_CHECKING

from emu.config import load_cluster_file
from emu.daemon.client import pick_cluster, request
from emu.daemon.report import ReportSilent, report_lines
from emu.dataplane.cleanup import clean_cluster
from emu.dataplane.ownership import Record, list_clusters
from emu.errors import DaemonError, KemuError

if TYPE_CHECKING:
    from emu.cluster.runtime import Progress

log = logging.getLogger("kemu")


class _RemoteDown(BaseException):
    """`kemu down` (or SIGTERM) arrived while the foreground shell was running."""


def progress_printer() -> Progress:
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
    from emu.config import loader

    cfg = load_cluster_file(args.file)
    m = cfg.manifests
    kinds: dict[str, int] = {}
    for w in m.workloads:
        kinds[w.kind] = kinds.get(w.kind, 0) + 1
    workloads = ", ".join(f"{n} {k}(s)" for k, n in sorted(kinds.items()))
    lines = [
        f"{args.file}: ok: cluster {cfg.spec.name}: {len(cfg.spec.nodes)} node(s), {len(cfg.spec.external_hosts)} external host(s), "
        f"{len(m.namespaces)} namespace(s), {len(m.pods)} pod(s)"
        + (f", {workloads}" if workloads else "")
        + f", {len(m.services)} service(s), {len(m.network_policies)} network policy(ies), {len(m.others)} other object(s)"
    ]
    summary = getattr(loader, "no_effect_summary", None)
    if summary is not None:  # fields and kinds accepted that change nothing in kemu
        text = summary(list(getattr(cfg, "no_effect", []) or []), [o.kind for o in m.others])
        if text:
            lines.append(text)
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> int:
    cfg = load_cluster_file(args.file)
    if args.detach:
        return _up_detached(args, cfg.spec.name)
    from emu.cli.shell import KemuCLI
    from emu.daemon.host import HostedCluster

    t0 = time.monotonic()
    hosted = HostedCluster(cfg, progress_printer())

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
    progress = progress_printer()
    with os.fdopen(r, "rb", buffering=0) as rf:
        try:
            for word, rest in report_lines(rf, proc, name):
                if word == "PROGRESS":
                    phase, done, total = rest.split()
                    progress(phase, int(done), int(total))
                elif word == "READY":
                    _summary(name, json.loads(rest), time.monotonic() - t0)
                    print(f"daemon pid {proc.pid}; `kemu down {name}` to stop", file=sys.stderr)
                    return 0
                elif word == "ERROR":
                    exit_code, _, msg = rest.partition(" ")
                    proc.wait(60)
                    print(f"error: {json.loads(msg)}", file=sys.stderr)
                    return int(exit_code)
        except ReportSilent as e:
            proc.kill()
            raise KemuError(f"{e}; killed it (run `kemu clean`)") from None
    return 1  # not reached: the report ends in READY or ERROR, or raises


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
