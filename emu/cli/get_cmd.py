"""`kemu get` (and `get events -w`, `get faults`) and `kemu api-resources`."""

from __future__ import annotations

import argparse
import sys

from emu.cli import watch_events
from emu.cli.argv import UsageError
from emu.cli.output import render_many
from emu.cli.output_format import Obj
from emu.cli.resources import get_named, get_objects, namespace_of, no_resources, not_found, resource_args
from emu.cli.tabwriter import format_table
from emu.config import registry
from emu.daemon.client import pick_cluster


def cmd_get(args: argparse.Namespace) -> int:
    if [w.lower() for w in args.words] in (["faults"], ["fault"]):  # not a Kubernetes kind: the daemon's fault list
        from emu.cli.fault_cmd import faults_table

        print(faults_table(pick_cluster(args.cluster), args.no_headers))
        return 0
    targets = resource_args(args.words, "get")
    named = any(names for _, names in targets)
    if named and args.selector:
        raise UsageError("name cannot be provided when a selector is specified")
    if named and args.all_namespaces:
        raise UsageError("a resource cannot be retrieved by name across all namespaces")
    cluster, ns = pick_cluster(args.cluster), namespace_of(args)
    if args.watch:
        if named or args.selector or [info.kind for info, _ in targets] != ["Event"]:
            raise UsageError("-w/--watch follows events only: kemu get events -w [-n NS | -A] [-o json|yaml]")
        return watch_events.follow(cluster, ns, args.all_namespaces, args.output, args.no_headers)
    groups: list[tuple[str, list[Obj]]] = []
    missing: list[str] = []
    for info, names in targets:
        items: list[Obj] = []
        if names:
            for name in names:
                got = get_named(cluster, info, ns, name)
                if not got:
                    missing.append(not_found(info, name))
                items += got
        else:
            items = get_objects(cluster, info.kind, ns, all_ns=args.all_namespaces, selector=args.selector)
        groups.append((info.kind, items))
    found = any(items for _, items in groups)
    single = len(targets) == 1 and len(targets[0][1]) == 1
    if found or (not named and args.output in ("json", "yaml")):
        out = render_many(groups, args.output, args.all_namespaces, single, show_labels=args.show_labels, no_headers=args.no_headers)
        if out:
            print(out, flush=True)
    for m in missing:
        print(m, file=sys.stderr)
    if not named and not found and args.output not in ("json", "yaml"):
        print(no_resources([k for k, _ in groups], args), file=sys.stderr)
    return 1 if missing else 0


def cmd_api_resources(args: argparse.Namespace) -> str:
    head, *rows = registry.api_resources_table()
    if args.namespaced is not None:
        rows = [r for r in rows if r[3] == args.namespaced]
    if args.api_group is not None:
        rows = [r for r in rows if r[2].rpartition("/")[0] == args.api_group]
    if args.output == "name":
        return "\n".join(r[0] + (f".{r[2].rpartition('/')[0]}" if "/" in r[2] else "") for r in rows)
    return format_table([head, *rows], headers=not args.no_headers)
