"""`kemu graph`: a picture of the running cluster (Graphviz), or its DOT source.

    kemu graph [-o svg|png|dot] [-w FILE] [--policies]

The objects come from the daemon as `kemu get -A -o json` shows them; with --policies,
the NetworkPolicy oracle's verdicts too (the "reachability" op: no traffic is sent).
The drawing itself is emu/cli/graph_dot.py's; `dot` lays it out.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys

from emu.cli import graph_dot
from emu.cli.argv import UsageError
from emu.daemon.client import pick_cluster, request
from emu.errors import KemuError

log = logging.getLogger(__name__)
DOT_TIMEOUT = 300.0  # seconds `dot` may take on a very large cluster


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=["svg", "png", "dot"], default="svg", help="the format (dot: the Graphviz source)")
    p.add_argument("-w", "--write", metavar="FILE", help="write to FILE instead of stdout (needed for png)")
    p.add_argument("--policies", action="store_true", help="who may reach whom (NetworkPolicy), instead of the topology")


def _get(cluster: str, kind: str, optional: bool = False) -> list[graph_dot.Obj]:
    try:
        return list(request(cluster, "get", kind=kind, namespace="default", all_namespaces=True) or [])
    except KemuError as e:
        if not optional:
            raise
        log.debug("get %s: %s", kind, e)  # a cluster without the Gateway API kinds
        return []


def objects(cluster: str) -> graph_dot.Objects:
    return graph_dot.Objects(
        nodes=_get(cluster, "Node"),
        pods=_get(cluster, "Pod"),
        services=_get(cluster, "Service"),
        slices=_get(cluster, "EndpointSlice"),
        hosts=_get(cluster, "Host"),
        gateways=_get(cluster, "Gateway", optional=True),
        routes=_get(cluster, "HTTPRoute", optional=True) + _get(cluster, "GRPCRoute", optional=True),
    )


def render(source: str, fmt: str) -> bytes:
    """DOT → svg or png bytes, with `dot`."""
    try:
        cp = subprocess.run(["dot", f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=DOT_TIMEOUT)
    except FileNotFoundError:
        raise KemuError(_NO_DOT) from None
    except subprocess.TimeoutExpired:
        raise KemuError(f"dot took more than {DOT_TIMEOUT:.0f} s; try -o dot and another Graphviz layout (sfdp)") from None
    if cp.returncode != 0:
        err = cp.stderr.decode(errors="replace").strip().splitlines()
        raise KemuError(f"dot failed ({cp.returncode}): {err[0] if err else 'no message'}")
    return cp.stdout


_NO_DOT = "Graphviz's `dot` is not installed (apt-get install graphviz); `-o dot` prints the source without it"


def cmd_graph(args: argparse.Namespace) -> str | int | None:
    fmt = args.output
    if fmt == "png" and not args.write:
        raise UsageError("-o png needs -w FILE (a PNG is not for the terminal)")
    if fmt != "dot" and shutil.which("dot") is None:
        raise KemuError(_NO_DOT)
    cluster = pick_cluster(args.cluster)
    if args.policies:
        pods = _get(cluster, "Pod")
        verdicts = request(cluster, "reachability")
        source = graph_dot.policies(pods, verdicts, cluster)
    else:
        source = graph_dot.topology(objects(cluster), cluster)
    data = source.encode() if fmt == "dot" else render(source, fmt)
    if args.write:
        try:
            with open(args.write, "wb") as f:
                f.write(data)
        except OSError as e:
            raise KemuError(f"cannot write {args.write}: {e.strerror or e}") from e
        return None
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0
