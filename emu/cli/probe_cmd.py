"""`kemu explain` and `kemu probe`: what NetworkPolicy decides for one connection, and the
reachability matrix the kernel really gives (with --expect: against the policy oracle)."""

from __future__ import annotations

import argparse
import json
import logging
import os

from emu.cli.lifecycle_cmd import progress_printer
from emu.config import load_cluster_file
from emu.daemon.client import pick_cluster, request
from emu.errors import Problem, ValidationError
from emu.traffic.probe import ProbeRow, Result, table

log = logging.getLogger("kemu")


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
    if args.watch:
        from emu.cli import probe_watch

        probe_watch.check(args)  # before FILE's branch: --watch follows a running cluster
    if args.expect and (args.file or args.to != "pods"):
        raise ValidationError([Problem("<command line>", "--expect", "compares a running cluster's pods only (no FILE, --to pods)")])
    if args.file:
        from emu.cluster.probing import probe_cluster
        from emu.cluster.runtime import Cluster
        from emu.daemon.host import raise_fd_limit

        raise_fd_limit()
        c = Cluster(load_cluster_file(args.file), progress_printer())
        try:
            c.up()
            unready = c.wait_ready(60)
            if unready:
                log.warning("probing with %d pod(s) not Ready: %s", len(unready), ", ".join(unready[:10]))
            results = probe_cluster(c, args.to, args.ports, args.protocols, args.timeout)
        finally:
            c.down()
    else:
        cluster = pick_cluster(args.cluster)

        def probe() -> list[ProbeRow]:
            return list(
                request(
                    cluster, "probe", to=args.to, ports=args.ports, protocols=args.protocols, probe_timeout=args.timeout, expect=args.expect
                )
            )

        if args.watch:
            from emu.cli import probe_watch

            return probe_watch.watch(args, cluster, probe, _probe_title(args))
        raw = probe()
        results = [Result(r["from"], r["to"], r["port"], r["protocol"], r["connected"]) for r in raw]
        if args.expect:
            diffs = [r for r in raw if r["connected"] != r["expected"]]
            if args.output in ("svg", "html"):
                _emit_picture(args, _probe_picture(args, list(raw)))
            elif args.output == "json":
                print(json.dumps({"target": args.to, "results": raw, "differences": diffs}, indent=1))
            else:
                print(table(results))
                for r in diffs:
                    want = "allowed" if r["expected"] else "denied"
                    got = "connected" if r["connected"] else "did not connect"
                    print(f"DIFFERENCE {r['from']} → {r['to']}:{r['port']}/{r['protocol']}: policy says {want}, the kernel {got}")
                print(f"{len(diffs)} difference(s) from the NetworkPolicy oracle")
            return 1 if diffs else 0
    if args.output in ("svg", "html"):
        _emit_picture(args, _probe_picture(args, [r.as_json() for r in results]))
        return 0
    if args.output == "json":
        return json.dumps({"target": args.to, "results": [r.as_json() for r in results]}, indent=1)
    return table(results)


def _probe_picture(args: argparse.Namespace, rows: list[ProbeRow]) -> str:
    """`probe -o svg|html`: the matrix as a coloured grid (emu/cli/probe_svg.py)."""
    from emu.cli import probe_svg

    title = _probe_title(args)
    return probe_svg.svg(rows, title) if args.output == "svg" else probe_svg.page(rows, title)


def _probe_title(args: argparse.Namespace) -> str:
    where = args.file or args.cluster or os.environ.get("KEMU_CLUSTER") or "the cluster"
    return f"kemu probe {where} --to {args.to}" + (" --expect" if args.expect else "")


def _emit_picture(args: argparse.Namespace, text: str) -> None:
    if args.write:
        from emu.cli.probe_watch import write_atomically

        write_atomically(args.write, text)
    else:
        print(text, end="")
