"""`kemu probe --watch`: the reachability matrix, probed again whenever the cluster
changes, until Ctrl-C.

A change is an event (emu/cluster/events.py: a pod started, became ready or was
killed, endpoints changed, a proxy or policy sync); events that come in a burst (an
apply) are waited out before probing, so one change gives one new matrix. The table is
redrawn in place on a terminal and appended otherwise; svg and html are rewritten in a
file (`-w FILE`, atomically: a reader never sees half a picture), and the html page
reloads itself in the browser that shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable

from emu.cli import probe_svg
from emu.cli.output_format import Obj
from emu.daemon.client import request
from emu.errors import Problem, ValidationError
from emu.traffic.probe import ProbeRow, Result, table

POLL_S = 30.0  # the daemon's long poll for events
QUIET_S = 0.5  # a burst of events is over when none came for this long
BURST_MAX_S = 5.0  # … or after this long, whatever still comes
RELOAD_S = 2  # the html page's reload period


def check(args: argparse.Namespace) -> None:
    problems = []
    if args.file:
        problems.append(Problem("<command line>", "--watch", "follows a running cluster: no FILE"))
    if args.output in ("svg", "html") and not args.write:
        problems.append(Problem("<command line>", "--watch", f"rewrites a picture in a file: give -w FILE with -o {args.output}"))
    if problems:
        raise ValidationError(problems)


def watch(args: argparse.Namespace, cluster: str, probe: Callable[[], list[ProbeRow]], title: str) -> int:
    check(args)
    # Ctrl-C ends the watch even when SIGINT came ignored (started in the background).
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        last = _version(request(cluster, "get", kind="Event", all_namespaces=True))
        while True:
            show(args, probe(), title)
            last = _next_change(cluster, last)
    except KeyboardInterrupt:
        sys.stdout.flush()
        return 0
    finally:
        signal.signal(signal.SIGINT, old)


def _version(items: list[Obj], last: int = 0) -> int:
    return max([last, *(int((o.get("metadata") or {}).get("resourceVersion") or 0) for o in items)])


def _next_change(cluster: str, last: int) -> int:
    """Wait for an event after `last`, then for the burst it starts to end."""
    while True:
        fresh = request(cluster, "get", timeout=POLL_S + 10, kind="Event", all_namespaces=True, since=last, wait=POLL_S)
        if fresh:
            last = _version(list(fresh), last)
            break
    end = time.monotonic() + BURST_MAX_S
    while (left := end - time.monotonic()) > 0:
        more = request(cluster, "get", timeout=POLL_S + 10, kind="Event", all_namespaces=True, since=last, wait=min(QUIET_S, left))
        if not more:
            break
        last = _version(list(more), last)
    return last


def show(args: argparse.Namespace, rows: list[ProbeRow], title: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    ok = sum(1 for r in rows if r["connected"])
    summary = f"{ok}/{len(rows)} connected at {stamp}"
    if args.output in ("svg", "html"):
        text = probe_svg.svg(rows, title) if args.output == "svg" else probe_svg.page(rows, f"{title} (at {stamp})", reload_s=RELOAD_S)
        write_atomically(args.write, text)
        print(f"kemu probe: wrote {args.write}: {summary}", file=sys.stderr, flush=True)
        return
    if args.output == "json":
        print(json.dumps({"target": args.to, "at": stamp, "results": rows}), flush=True)
        return
    results = [Result(r["from"], r["to"], r["port"], r["protocol"], r["connected"]) for r in rows]
    if sys.stdout.isatty():
        print("\x1b[H\x1b[2J", end="")  # home, clear: redraw in place as watch(1) does
    diffs = probe_svg.disagreements(rows)
    lines = [probe_svg.difference_line(r) for r in diffs]
    if any("expected" in r for r in rows):
        lines.append(f"{len(diffs)} difference(s) from the NetworkPolicy oracle")
    print(f"{title} --watch: {summary} (Ctrl-C to stop)\n{table(results)}", *lines, sep="\n", flush=True)


def write_atomically(path: str, text: str) -> None:
    where = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".kemu-probe-", dir=where)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
