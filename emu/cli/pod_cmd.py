"""`kemu logs` and `kemu exec`: a container's output, and a command run in a pod's (or
node's, or host's) namespaces."""

from __future__ import annotations

import argparse
import os
import sys
import time

from emu.cli.argv import UsageError
from emu.cli.resources import namespace_of, resolve_pod
from emu.daemon.client import pick_cluster, request
from emu.dataplane import netns
from emu.dataplane.ownership import Record
from emu.errors import NotFoundError

FOLLOW_INTERVAL = 0.5  # `logs -f` asks for new output this often


def new_part(old: str, new: str) -> str:
    """What `new` (a log's text now) adds to `old` (what was printed), also when the log lost lines at the front.

    The longest tail of `old` that starts a line and begins `new` is what both share.
    """
    if new.startswith(old):
        return new[len(old) :]
    for k in (i + 1 for i, ch in enumerate(old) if ch == "\n"):
        if k < len(old) and new.startswith(old[k:]):
            return new[len(old) - k :]
    return new


def _tail(text: str, n: int) -> str:
    if n < 0:
        return text
    return "".join(text.splitlines(keepends=True)[-n:]) if n else ""


def cmd_logs(args: argparse.Namespace) -> int:
    if len(args.words) > 2:
        raise UsageError("expected POD [CONTAINER] (or KIND/NAME)")
    cluster, ns = pick_cluster(args.cluster), namespace_of(args)
    container = args.container or (args.words[1] if len(args.words) > 1 else None)
    pod = resolve_pod(cluster, args.words[0], ns)

    def fetch() -> str:
        return str(request(cluster, "logs", pod=pod, namespace=ns, container=container).get("text") or "")

    text = fetch()
    sys.stdout.write(_tail(text, args.tail))
    sys.stdout.flush()
    while args.follow:
        time.sleep(FOLLOW_INTERVAL)
        now = fetch()
        part = new_part(text, now)
        if part:
            sys.stdout.write(part)
            sys.stdout.flush()
        text = now
    return 0


def _exec_pod(args: argparse.Namespace, rec: Record) -> tuple[str, str, list[str]]:
    """(netns, hostname, options of emu.dataplane.enter) of the pod (and container) `exec` means.

    The options carry the container's environment file (`--env-file`) and working
    directory (`--workdir`) when the pod's record has them.
    """
    target, ns = args.words[0], namespace_of(args)
    name = resolve_pod(pick_cluster(args.cluster), target, ns) if "/" in target else target
    pod = rec.data["pods"].get(f"{ns}/{name}")
    if pod is None:
        raise NotFoundError(f'pods "{name}" not found in namespace {ns} (or not running)')
    containers = list(pod.get("containers") or [])
    container = args.container or (containers[0] if containers else None)
    if args.container and containers and args.container not in containers:
        raise NotFoundError(f"container {args.container} is not valid for pod {name}")
    if not args.container and len(containers) > 1:
        print(f'Defaulted container "{container}" out of: {", ".join(containers)}', file=sys.stderr)
    opts: list[str] = []
    env = (pod.get("env") or {}).get(container) if container else None
    if env and os.path.exists(env):
        opts += ["--env-file", env]
    workdir = (pod.get("workdir") or {}).get(container) if container else None
    if workdir:
        opts += ["--workdir", workdir]
    if pod.get("etc"):
        opts += ["--etc-dir", pod["etc"]]  # a host-network pod's own resolv.conf and hosts
    return pod["netns"], pod["hostname"], opts


def cmd_exec(args: argparse.Namespace) -> int:
    if not args.words:
        raise UsageError("expected: kemu exec POD -- CMD... (or deploy/NAME, node/NAME, host/NAME)")
    command = args.command if args.command is not None else args.words[1:]
    if not command:
        raise UsageError("no command: kemu exec POD -- CMD...")
    if args.command is not None and len(args.words) > 1:
        raise UsageError(f"one target only before --, got {' '.join(args.words)}")
    rec = Record.load(pick_cluster(args.cluster))
    kind, _, rest = args.words[0].partition("/")
    opts: list[str] = []
    if kind in ("node", "host") and rest:
        where = rec.data["nodes" if kind == "node" else "hosts"].get(rest)
        if where is None:
            raise NotFoundError(f"{kind} {rest!r} not found")
        ns_name, hostname = where, rest
    else:
        ns_name, hostname, opts = _exec_pod(args, rec)
    if opts:  # the container's environment: emu.dataplane.enter sets it up, then execs
        os.execv(sys.executable, [sys.executable, "-m", "emu.dataplane.enter", ns_name, hostname, *opts, "--", *command])
    netns.enter_process(ns_name, hostname)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f"error: {command[0]}: {e.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached: execvp replaced this process
