"""`kemu fault …` and `kemu get faults`: break the network on purpose, see what is
broken, heal it (the daemon's "fault" op: emu/cluster/faulting.py).

    kemu fault link TARGET down|up
    kemu fault partition A[,B…] -- C[,D…]
    kemu fault loss TARGET PERCENT
    kemu fault rate TARGET RATE
    kemu fault delay TARGET MS [JITTER]
    kemu fault kill POD [-c C]        the container's process dies (SIGKILL)
    kemu fault clear [TARGET]
"""

from __future__ import annotations

import argparse
import time

from emu.cli.output_format import human_duration
from emu.cli.tabwriter import format_table
from emu.daemon.client import pick_cluster, request
from emu.errors import Problem, ValidationError
from emu.faults.spec import KINDS, parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=[*KINDS, "kill", "clear"], help="what to break (or clear)")
    p.add_argument("words", nargs="*", metavar="TARGET [VALUE…]", help="ns/pod, node/NAME or host/NAME, then the fault's value")
    p.add_argument("-c", "--container", help="kill: the container (default: the pod's only one)")


def cmd_fault(args: argparse.Namespace) -> str:
    cluster = pick_cluster(args.cluster)
    if args.kind == "clear":
        if len(args.words) > 1:
            raise ValidationError([Problem("<command line>", "kemu fault clear", "usage: kemu fault clear [TARGET]")])
        done = request(cluster, "fault", action="clear", target=args.words[0] if args.words else None)["results"]
        return "\n".join(done) or "no faults"
    if args.kind == "kill":
        if len(args.words) != 1 or "/" not in args.words[0] or args.words[0].startswith(("node/", "host/")):
            raise ValidationError([Problem("<command line>", "kemu fault kill", "usage: kemu fault kill NS/POD [-c CONTAINER]")])
        return str(request(cluster, "fault", action="kill", target=args.words[0], container=args.container)["results"][0])
    f = parse(args.kind, args.words, args.after)  # refused here already: exit 2, nothing sent
    return "\n".join(request(cluster, "fault", action="add", kind=f.kind, words=list(args.words), others=list(args.after or []))["results"])


def faults_table(cluster: str, no_headers: bool = False) -> str:
    rows = request(cluster, "fault", action="list")["faults"]
    if not rows:
        return "No faults."
    now = time.time()
    cells = [[r["kind"].upper(), r["target"], r["value"] or "-", human_duration(now - r["since"])] for r in rows]
    return format_table([["KIND", "TARGET", "VALUE", "AGE"], *cells], headers=not no_headers)
