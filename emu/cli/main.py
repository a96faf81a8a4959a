"""`kemu`: argument parsing and dispatch. Data on stdout, logs on stderr.

Exit codes: 0 ok, 1 runtime failure, 2 bad input. Flags go anywhere before `--`, as
kubectl takes them (`kemu -n x get pods`, `kemu get pods -n x -o wide --cluster c`);
everything after the first `--` is the command of `exec`, untouched.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

from emu.cli import capture_cmd, change_cmd, describe_cmd, fault_cmd, get_cmd, graph_cmd, lifecycle_cmd, pod_cmd, probe_cmd, trace_cmd
from emu.cli.argv import find_verb, parse_intermixed, split_dashdash
from emu.dataplane import ownership
from emu.errors import KemuError, ValidationError

log = logging.getLogger("kemu")

NO_ROOT = frozenset({"validate", "api-resources"})
COMMAND_LINE = "<command line>: "

# Each command's handler: it returns what to print (str), an exit code (int) or None.
HANDLERS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "validate": lifecycle_cmd.cmd_validate,
    "up": lifecycle_cmd.cmd_up,
    "down": lifecycle_cmd.cmd_down,
    "clean": lifecycle_cmd.cmd_clean,
    "apply": change_cmd.cmd_apply,
    "delete": change_cmd.cmd_delete,
    "label": change_cmd.cmd_label,
    "get": get_cmd.cmd_get,
    "describe": describe_cmd.cmd_describe,
    "logs": pod_cmd.cmd_logs,
    "exec": pod_cmd.cmd_exec,
    "scale": change_cmd.cmd_scale,
    "rollout": change_cmd.cmd_rollout,
    "api-resources": get_cmd.cmd_api_resources,
    "explain": probe_cmd.cmd_explain,
    "probe": probe_cmd.cmd_probe,
    "graph": graph_cmd.cmd_graph,
    "trace": trace_cmd.cmd_trace,
    "fault": fault_cmd.cmd_fault,
    "capture": capture_cmd.cmd_capture,
}


def _globals() -> argparse.ArgumentParser:
    g = argparse.ArgumentParser(add_help=False)
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    g.add_argument("--cluster", help="which running cluster (default: the only one, or $KEMU_CLUSTER)")
    return g


def _namespace(p: argparse.ArgumentParser, all_namespaces: bool = True) -> None:
    p.add_argument("-n", "--namespace", help="the namespace (default: default)")
    if all_namespaces:
        p.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")


def build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser (help, global flags) and one parser per command."""
    g = _globals()
    ap = argparse.ArgumentParser(
        prog="kemu",
        description="The Kubernetes network model on one machine, with the real kernel. Flags go anywhere before `--`.",
        parents=[g],
    )
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    verbs: dict[str, argparse.ArgumentParser] = {}

    def add(name: str, help_: str, **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, parents=[g], **kw)
        verbs[name] = p
        return p

    p = add("validate", "check a topology file (no root needed)")
    p.add_argument("file")

    p = add("up", "bring a cluster up (shell in the foreground, or -d)")
    p.add_argument("file")
    p.add_argument("-d", "--detach", action="store_true", help="return once ready, leave a daemon running")
    p.add_argument("--ready-timeout", type=float, default=120.0, metavar="S", help="how long to wait for pods to be Ready")
    p.add_argument("--script", help="run shell commands from this file instead of an interactive shell")

    p = add("down", "take a cluster down")
    p.add_argument("name", nargs="?")

    add("clean", "remove every leftover of crashed clusters (from recorded state)")

    p = add("apply", "create or update objects from manifests (-f FILE|DIR|URL|-, several allowed)")
    p.add_argument("-f", "--filename", action="append", default=[], help="a file, a directory, a URL or - (stdin); repeatable")
    p.add_argument("-R", "--recursive", action="store_true", help="descend into the directories given with -f")
    _namespace(p, all_namespaces=False)

    p = add("delete", "delete objects: -f FILE…, KIND NAME…, KIND/NAME…, KIND -l SEL, KIND --all")
    p.add_argument("words", nargs="*", metavar="KIND[/NAME] [NAME…]")
    p.add_argument("-f", "--filename", action="append", default=[], help="a file, a directory, a URL or - (stdin); repeatable")
    p.add_argument("-R", "--recursive", action="store_true", help="descend into the directories given with -f")
    _namespace(p)
    p.add_argument("-l", "--selector", help="label selector (app=web,tier!=db)")
    p.add_argument("--all", action="store_true", help="every object of the kind in the namespace")
    p.add_argument("--grace-period", type=int, default=-1, help="seconds a pod may take to terminate (-1: its own; 0: at once)")
    p.add_argument("--now", action="store_true", help="--grace-period=1")
    p.add_argument("--force", action="store_true", help="do not wait for graceful termination (--grace-period=0)")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True, help="return only when the objects are gone")
    p.add_argument("--ignore-not-found", action="store_true", help="no error for objects that do not exist")

    p = add("label", "set (k=v) or remove (k-) labels: KIND NAME… k=v… or KIND/NAME k=v…")
    p.add_argument("words", nargs="+", metavar="KIND[/NAME] [NAME…] k=v|k-")
    _namespace(p, all_namespaces=False)
    p.add_argument("--overwrite", action="store_true", help="allow changing an existing label's value")

    p = add("get", "show objects: KIND[,KIND…] [NAME…] or KIND/NAME…")
    p.add_argument("words", nargs="*", metavar="KIND[,KIND][/NAME] [NAME…]")
    _namespace(p)
    p.add_argument("-l", "--selector", help="label selector (app=web,tier!=db)")
    p.add_argument("-o", "--output", choices=["wide", "json", "yaml", "name"])
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("--no-headers", action="store_true", help="no header line")
    p.add_argument("-w", "--watch", action="store_true", help="events: keep printing new ones until Ctrl-C")

    p = add("describe", "show one or more objects in detail")
    p.add_argument("words", nargs="+", metavar="KIND[/NAME] [NAME…]")
    _namespace(p)
    p.add_argument("-l", "--selector", help="label selector (app=web,tier!=db)")

    p = add("logs", "print a container's output: POD [-c C], or deploy/NAME")
    p.add_argument("words", nargs="+", metavar="POD|KIND/NAME [CONTAINER]")
    _namespace(p, all_namespaces=False)
    p.add_argument("-c", "--container")
    p.add_argument("--tail", type=int, default=-1, help="the last N lines only (-1: all)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output until Ctrl-C")

    p = add("exec", "run a command in a pod (or deploy/NAME, node/NAME, host/NAME): exec POD -- CMD…")
    _namespace(p, all_namespaces=False)
    p.add_argument("-c", "--container")
    p.add_argument("-i", "--stdin", action="store_true", help="accepted for kubectl habits (stdin is always passed)")
    p.add_argument("-t", "--tty", action="store_true", help="accepted for kubectl habits")
    p.add_argument("words", nargs="*", metavar="POD")

    p = add("scale", "set the replicas of a Deployment, ReplicaSet or StatefulSet")
    p.add_argument("words", nargs="+", metavar="KIND[/NAME] [NAME…]")
    _namespace(p, all_namespaces=False)
    p.add_argument("--replicas", type=int, required=True)

    p = add("rollout", "rollout status|restart KIND NAME (or KIND/NAME)")
    p.add_argument("action", choices=["status", "restart"])
    p.add_argument("words", nargs="+", metavar="KIND[/NAME] [NAME…]")
    _namespace(p, all_namespaces=False)
    p.add_argument("--timeout", default="0", help="how long `status` waits (30s, 5m, 1h; 0: for ever)")

    p = add("api-resources", "the kinds kemu knows, with their short names (no root needed)")
    p.add_argument("--namespaced", choices=["true", "false"], help="only namespaced (true) or cluster-wide (false) kinds")
    p.add_argument("--api-group", help="only this API group ('' for the core group)")
    p.add_argument("-o", "--output", choices=["wide", "name"])
    p.add_argument("--no-headers", action="store_true")

    p = add("explain", "what NetworkPolicy decides for SRC → DST, and why")
    p.add_argument("src", help="ns/pod, node/NAME, host/NAME or an IP")
    p.add_argument("dst", help="ns/pod[:PORT[/PROTO]] (no port: every port the pod serves)")

    p = add("probe", "the reachability matrix (with FILE: up, probe, down)")
    p.add_argument("--expect", action="store_true", help="compare with what NetworkPolicy allows; exit 1 on any difference")
    p.add_argument("file", nargs="?")
    p.add_argument(
        "--to", default="pods", metavar="pods|services|SVC.NS", help="every pod, every Service, or one Service (name.ns or ns/name)"
    )
    p.add_argument("--port", type=int, action="append", dest="ports")
    p.add_argument("--protocol", type=str.lower, choices=["tcp", "udp"], action="append", dest="protocols")
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("-o", "--output", choices=["table", "json", "svg", "html"], default="table", help="svg, html: a coloured grid")
    p.add_argument("-w", "--write", metavar="FILE", help="write the svg or html picture to FILE (rewritten on each change with --watch)")
    p.add_argument("--watch", action="store_true", help="probe again whenever the cluster changes, until Ctrl-C")

    p = add("graph", "a picture of the cluster (Graphviz): topology, or with --policies who may reach whom")
    graph_cmd.add_arguments(p)

    p = add("trace", "send one packet SRC → DST and show what the kernel did with it, hop by hop")
    trace_cmd.add_arguments(p)

    p = add("fault", "break the network on purpose: link, partition, loss, rate, delay; clear (see `kemu get faults`)")
    fault_cmd.add_arguments(p)

    p = add("capture", "tcpdump in pods, nodes, hosts or the switch, merged: capture TARGET… [FILTER…]")
    capture_cmd.add_arguments(p)
    return ap, verbs


def build_parser() -> argparse.ArgumentParser:
    return build_parsers()[0]


def parse(argv: list[str] | None) -> argparse.Namespace:
    """kubectl's way: global and command flags anywhere before `--`, the rest untouched."""
    top, verbs = build_parsers()
    before, after = split_dashdash(sys.argv[1:] if argv is None else argv)
    i = find_verb(before)
    if i is None:
        top.parse_args(before)  # --help, or "the following arguments are required"
        top.error("a command is required")
    verb = before[i]
    if verb not in verbs:
        top.error(f"unknown command {verb!r} (choose from {', '.join(verbs)})")
    p = verbs[verb]
    args = parse_intermixed(p, before[:i] + before[i + 1 :])
    args.cmd = verb
    if verb == "exec":
        args.command = after
    elif verb == "fault":
        args.after = after  # partition's second group
    elif after is not None:
        p.error(f"unexpected arguments after --: {' '.join(after)} (only exec takes a command, and fault partition a second group)")
    if verb == "label":
        # `kemu label pod a x=1 --overwrite y=2`: labels are the words with = or a trailing -.
        args.labels = [w for w in args.words if "=" in w or w.endswith("-")]
        args.targets = [w for w in args.words if w not in args.labels]
        if not args.labels:
            p.error("at least one label update is required (k=v or k-)")
        if not args.targets:
            p.error("give the object: KIND NAME or KIND/NAME")
    return args


def _message(e: KemuError) -> str:
    """One error as kubectl words it: `error: …`, or the API server's `Error from server (…): …` as is."""
    msg = str(e).removeprefix(COMMAND_LINE)  # a daemon's ValidationError about what was asked
    return msg if msg.startswith(("error:", "Error from server", "Error: ")) else f"error: {msg}"


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
    except KemuError as e:
        print(_message(e), file=sys.stderr)
        return e.exit_code
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="kemu: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    handler = HANDLERS[args.cmd]
    if args.cmd not in NO_ROOT and os.geteuid() != 0:
        print(f"kemu {args.cmd}: needs root (network namespaces); try sudo", file=sys.stderr)
        return 1
    try:
        return _run(handler, args)
    except BrokenPipeError:  # `kemu get pods | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _save_traceback(args: argparse.Namespace) -> str:
    """Append the current exception's traceback to kemu's error log; its path."""
    path = os.path.join(ownership.ROOT, "errors.log")
    try:
        os.makedirs(ownership.ROOT, mode=0o755, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} kemu {args.cmd}\n{traceback.format_exc()}")
    except OSError:
        path = os.path.join(tempfile.gettempdir(), f"kemu-error-{os.getpid()}.log")
        with open(path, "w") as f:
            f.write(traceback.format_exc())
    return path


def _run(handler: Any, args: argparse.Namespace) -> int:
    try:
        result: Any = handler(args)
    except ValidationError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        print(f"{len(e.problems)} problem(s) found", file=sys.stderr)
        return 2
    except KemuError as e:
        print(_message(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise  # the reader of our output left (`| head`): main() ends quietly
    except Exception as e:
        # Anything the library did not translate into a KemuError (a netlink error, a key
        # missing) is kemu's failure, not bad input: one line, exit 1, the traceback in a log.
        logging.getLogger("emu.cli").debug("unexpected error", exc_info=True)
        print(f"error: unexpected {type(e).__name__}: {e} (traceback in {_save_traceback(args)})", file=sys.stderr)
        return 1
    if isinstance(result, int):
        return result
    if result is not None:
        print(result if isinstance(result, str) else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
