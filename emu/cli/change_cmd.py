"""The commands that change objects: `kemu apply`, `delete`, `label`, `scale`, `rollout`."""

from __future__ import annotations

import argparse
import re
import sys

from emu.cli.argv import UsageError
from emu.cli.manifests import read_inputs
from emu.cli.output_format import qualified_name
from emu.cli.resources import namespace_of, no_resources, resource_args
from emu.config.schema import label_key, label_value
from emu.daemon.client import pick_cluster, request
from emu.daemon.protocol import ApplyArgs
from emu.errors import Problem, ValidationError


def cmd_apply(args: argparse.Namespace) -> str | None:
    apply_args: ApplyArgs = {"docs": read_inputs(args.filename, args.recursive, verb="apply")}
    if args.namespace:
        apply_args["namespace"] = args.namespace
    res = request(pick_cluster(args.cluster), "apply", **apply_args)
    for w in res.get("warnings") or []:
        print(f"Warning: {w}", file=sys.stderr)
    return "\n".join(res.get("results") or []) or None


def cmd_delete(args: argparse.Namespace) -> str | int | None:
    grace = args.grace_period
    if args.now:
        grace = 1
    if args.force:
        print("Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated.", file=sys.stderr)
        grace = 0 if grace < 0 else grace
    if args.filename:
        if args.words or args.selector or args.all:
            raise UsageError("when -f is given, give no KIND, NAME, -l or --all")
        docs = read_inputs(args.filename, args.recursive, verb="delete")
        res = request(pick_cluster(args.cluster), "delete_file", docs=docs, ignore_not_found=args.ignore_not_found)
        return "\n".join(res.get("deleted") or []) or None
    if not args.words:
        raise UsageError("You must provide one or more resources by argument or filename.")
    targets = resource_args(args.words, "delete")
    named = any(names for _, names in targets)
    if named and args.selector:
        raise UsageError("name cannot be provided when a selector is specified")
    if named and args.all:
        raise UsageError("name cannot be provided when --all is specified")
    if not named and not args.selector and not args.all:
        raise UsageError("resource(s) were provided, but no name was specified")
    if args.selector and args.all:
        raise UsageError("--all and -l/--selector cannot be given together")
    cluster = pick_cluster(args.cluster)
    deleted: list[str] = []
    for info, names in targets:
        res = request(
            cluster,
            "delete",
            kind=info.kind,
            names=names,
            namespace=namespace_of(args),
            all_namespaces=args.all_namespaces,
            selector=args.selector,
            all=args.all,
            grace_period=grace,
            wait=args.wait,
            ignore_not_found=args.ignore_not_found,
        )
        deleted += list(res.get("deleted") or [])
    if not deleted and not named:
        print(no_resources([i.kind for i, _ in targets], args), file=sys.stderr)
    return "\n".join(deleted) or None


def parse_labels(words: list[str]) -> tuple[dict[str, str], list[str]]:
    problems: list[Problem] = []

    def report(path: str, msg: str) -> None:
        problems.append(Problem("<command line>", path, msg))

    set_: dict[str, str] = {}
    remove: list[str] = []
    for w in words:
        if w.endswith("-") and "=" not in w:
            label_key(w[:-1], w, report)
            remove.append(w[:-1])
        elif "=" in w:
            k, v = w.split("=", 1)
            label_key(k, w, report)
            label_value(v, w, report)
            set_[k] = v
        else:
            report(w, "expected KEY=VALUE to set or KEY- to remove")
    if problems:
        raise ValidationError(problems)
    return set_, remove


def cmd_label(args: argparse.Namespace) -> str:
    set_, remove = parse_labels(args.labels)
    cluster = pick_cluster(args.cluster)
    done = []
    for info, names in resource_args(args.targets, "label"):
        if not names:
            raise UsageError("one or more resources must be specified as <resource> <name> or <resource>/<name>")
        for name in names:
            request(
                cluster,
                "label",
                kind=info.kind,
                name=name,
                namespace=namespace_of(args),
                set=set_,
                remove=remove,
                overwrite=args.overwrite,
            )
            done.append(f"{qualified_name(info.kind, name)} {'unlabeled' if remove and not set_ else 'labeled'}")
    return "\n".join(done)


def cmd_scale(args: argparse.Namespace) -> str:
    if args.replicas < 0:
        raise UsageError("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    cluster, ns = pick_cluster(args.cluster), namespace_of(args)
    out = []
    for info, names in resource_args(args.words, "scale"):
        if not names:
            raise UsageError("resource(s) were provided, but no name was specified")
        for name in names:
            res = request(cluster, "scale", kind=info.kind, name=name, namespace=ns, replicas=args.replicas)
            out.append(str(res.get("result") or f"{qualified_name(info.kind, name)} scaled"))
    return "\n".join(out)


def parse_duration(text: str) -> float:
    """kubectl's durations: `30s`, `5m`, `1h30m`, `250ms`, or plain seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:ms|s|m|h))+|\d+(?:\.\d+)?)", text.strip())
    if not m:
        raise UsageError(f'invalid argument "{text}" for "--timeout" flag: expected a duration such as 30s, 5m or 1h')
    if re.fullmatch(r"\d+(?:\.\d+)?", text.strip()):
        return float(text)
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text))


def cmd_rollout(args: argparse.Namespace) -> int:
    cluster, ns = pick_cluster(args.cluster), namespace_of(args)
    wait = parse_duration(args.timeout)
    code = 0
    for info, names in resource_args(args.words, f"rollout {args.action}"):
        if not names:
            raise UsageError("resource(s) were provided, but no name was specified")
        for name in names:
            if args.action == "status":
                # `timeout` is request()'s own (the socket's); the daemon's deadline travels as rollout_timeout.
                status = request(
                    cluster,
                    "rollout_status",
                    timeout=(wait + 30.0) if wait > 0 else 7 * 86400.0,
                    kind=info.kind,
                    name=name,
                    namespace=ns,
                    rollout_timeout=wait,
                )
                done = bool(status.get("done"))
                print(status.get("message", ""), file=sys.stdout if done else sys.stderr, flush=True)
                if not done:
                    code = 1
            else:
                restarted = request(cluster, "rollout_restart", kind=info.kind, name=name, namespace=ns)
                print(restarted.get("result") or f"{qualified_name(info.kind, name)} restarted", flush=True)
    return code
