"""`kemu get events -w`: the events there are, then each new one as it happens, until
Ctrl-C (as `kubectl get events -w`). The daemon answers a long poll: events whose
resourceVersion is above the last one seen, waiting up to POLL_S for one."""

from __future__ import annotations

import signal
import sys

from emu.cli.output import dump, render_many
from emu.cli.output_format import Obj
from emu.daemon.client import request

POLL_S = 30.0


def _version(items: list[Obj], last: int) -> int:
    return max([last, *(int((o.get("metadata") or {}).get("resourceVersion") or 0) for o in items)])


def _show(items: list[Obj], output: str | None, all_ns: bool, headers: bool) -> None:
    if not items:
        return
    if output in ("json", "yaml"):
        for o in items:  # one document per event, as kubectl's watch prints them
            print(dump(o, output), flush=True)
        return
    print(render_many([("Event", items)], output, all_ns, no_headers=not headers), flush=True)


def follow(cluster: str, namespace: str, all_ns: bool, output: str | None, no_headers: bool = False) -> int:
    # Ctrl-C ends the watch even when SIGINT came ignored (a command started in the
    # background by a non-interactive shell inherits that), as tcpdump's does.
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _follow(cluster, namespace, all_ns, output, no_headers)
    finally:
        signal.signal(signal.SIGINT, old)


def _follow(cluster: str, namespace: str, all_ns: bool, output: str | None, no_headers: bool) -> int:
    items = list(request(cluster, "get", kind="Event", namespace=namespace, all_namespaces=all_ns) or [])
    _show(items, output, all_ns, headers=not no_headers)
    last = _version(items, 0)
    headers = not items and not no_headers
    try:
        while True:
            fresh = list(
                request(
                    cluster, "get", timeout=POLL_S + 10, kind="Event", namespace=namespace, all_namespaces=all_ns, since=last, wait=POLL_S
                )
                or []
            )
            _show(fresh, output, all_ns, headers=headers and bool(fresh))
            headers = headers and not fresh
            last = _version(fresh, last)
    except KeyboardInterrupt:
        sys.stdout.flush()
        return 0
