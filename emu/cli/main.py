"""`kemu`: argument parsing and dispatch. Data on stdout, logs on stderr.

Exit codes: 0 ok, 1 runtime failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from emu.cli import commands
from emu.errors import KemuError, ValidationError

log = logging.getLogger("kemu")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kemu", description="The Kubernetes network model on one machine, with the real kernel.")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    ap.add_argument("--cluster", help="which running cluster (default: the only one, or $KEMU_CLUSTER)")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a topology file (no root needed)")
    p.add_argument("file")

    p = sub.add_parser("up", help="bring a cluster up (shell in the foreground, or -d)")
    p.add_argument("file")
    p.add_argument("-d", "--detach", action="store_true", help="return once ready, leave a daemon running")
    p.add_argument("--ready-timeout", type=float, default=120.0, metavar="S", help="how long to wait for pods to be Ready")
    p.add_argument("--script", help="run shell commands from this file instead of an interactive shell")

    p = sub.add_parser("down", help="take a cluster down")
    p.add_argument("name", nargs="?")

    sub.add_parser("clean", help="remove every leftover of crashed clusters (from recorded state)")

    p = sub.add_parser("apply", help="create or update objects from a manifest file")
    p.add_argument("-f", "--filename", required=True)

    p = sub.add_parser("delete", help="delete objects (-f FILE, or KIND NAME)")
    p.add_argument("-f", "--filename")
    p.add_argument("kind", nargs="?")
    p.add_argument("name", nargs="?")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--grace-period", type=int, default=-1, help="seconds a pod may take to terminate (-1: its own; 0: at once)")
    p.add_argument(
        "--wait",
        type=lambda v: v.lower() not in ("false", "0", "no"),
        default=True,
        metavar="true|false",
        help="return only when the pods are gone",
    )

    p = sub.add_parser("label", help="set (k=v) or remove (k-) labels")
    p.add_argument("kind", choices=["pod", "pods", "namespace", "namespaces", "ns", "node", "deployment", "deployments", "deploy"])
    p.add_argument("name")
    p.add_argument("labels", nargs="+", metavar="k=v|k-")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--overwrite", action="store_true", help="allow changing an existing label's value")

    p = sub.add_parser("get", help="show objects")
    p.add_argument("kind")
    p.add_argument("name", nargs="?")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-o", "--output", choices=["wide", "json", "yaml"])

    p = sub.add_parser("exec", help="run a command in a pod (or node/NAME, host/NAME)")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("-c", "--container")
    p.add_argument("-i", "--stdin", action="store_true", help="accepted for kubectl habits (stdin is always passed)")
    p.add_argument("-t", "--tty", action="store_true", help="accepted for kubectl habits")
    p.add_argument("target")
    p.add_argument("command", nargs=argparse.REMAINDER)

    p = sub.add_parser("explain", help="what NetworkPolicy decides for SRC → DST, and why")
    p.add_argument("src", help="ns/pod, node/NAME, host/NAME or an IP")
    p.add_argument("dst", help="ns/pod[:PORT[/PROTO]] (no port: every port the pod serves)")

    p = sub.add_parser("probe", help="the reachability matrix (with FILE: up, probe, down)")
    p.add_argument("--expect", action="store_true", help="compare with what NetworkPolicy allows; exit 1 on any difference")
    p.add_argument("file", nargs="?")
    p.add_argument("--to", choices=["pods", "services"], default="pods")
    p.add_argument("--port", type=int, action="append", dest="ports")
    p.add_argument("--protocol", type=str.lower, choices=["tcp", "udp"], action="append", dest="protocols")
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    return ap


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = build_parser()
    args, extra = ap.parse_known_args(argv)
    # `kemu label pod a x=1 --overwrite y=2`: labels after an option, as kubectl takes them.
    if args.cmd == "label":
        args.labels += [w for w in extra if not w.startswith("-")]
        extra = [w for w in extra if w.startswith("-")]
    if extra:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="kemu: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    handler = getattr(commands, f"cmd_{args.cmd}")
    if args.cmd not in ("validate",) and os.geteuid() != 0:
        print(f"kemu {args.cmd}: needs root (network namespaces); try sudo", file=sys.stderr)
        return 1
    try:
        result: Any = handler(args)
    except ValidationError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        print(f"{len(e.problems)} problem(s) found", file=sys.stderr)
        return 2
    except KemuError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if isinstance(result, int):
        return result
    if result is not None:
        print(result if isinstance(result, str) else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
