"""One function per `kemu` subcommand; each returns what to print or an exit code."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING

from emu.cli import watch_events
from emu.cli.argv import UsageError
from emu.cli.describe import describe_deployment, describe_node, describe_other, describe_pod, describe_service
from emu.cli.describe_sections import events_for
from emu.cli.manifests import read_inputs
from emu.cli.output import render_many
from emu.cli.output_format import Obj, kind_prefix, qualified_name, selector_string
from emu.cli.tabwriter import format_table
from emu.config import load_cluster_file, registry
from emu.config.schema import label_key, label_value
from emu.daemon.client import pick_cluster, request
from emu.daemon.protocol import ApplyArgs
from emu.daemon.report import ReportSilent, report_lines
from emu.dataplane import netns
from emu.dataplane.cleanup import clean_cluster
from emu.dataplane.ownership import Record, list_clusters
from emu.errors import DaemonError, KemuError, NotFoundError, Problem, ValidationError
from emu.traffic.probe import ProbeRow, Result, table

if TYPE_CHECKING:
    from emu.cluster.runtime import Progress

log = logging.getLogger("kemu")
FOLLOW_INTERVAL = 0.5  # `logs -f` asks for new output this often


class _RemoteDown(BaseException):
    """`kemu down` (or SIGTERM) arrived while the foreground shell was running."""


def _progress_printer() -> Progress:
    tty = sys.stderr.isatty()
    shown: dict[str, int] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if total < 50:
            return
        if tty:
            end = "\n" if done == total else ""
            print(f"\r  {phase}: {done}/{total}", end=end, file=sys.stderr, flush=True)
        else:
            quarter = done * 4 // total
            if shown.get(phase, -1) < quarter:
                shown[phase] = quarter
                print(f"  {phase}: {done}/{total}", file=sys.stderr, flush=True)

    return progress


def _summary(name: str, unready: list[str], took: float) -> None:
    print(f"cluster {name} is up ({took:.1f} s)", file=sys.stderr)
    if unready:
        print(f"warning: {len(unready)} pod(s) not Ready yet: {', '.join(unready[:10])}", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> str:
    from emu.config import loader

    cfg = load_cluster_file(args.file)
    m = cfg.manifests
    kinds: dict[str, int] = {}
    for w in m.workloads:
        kinds[w.kind] = kinds.get(w.kind, 0) + 1
    workloads = ", ".join(f"{n} {k}(s)" for k, n in sorted(kinds.items()))
    lines = [
        f"{args.file}: ok: cluster {cfg.spec.name}: {len(cfg.spec.nodes)} node(s), {len(cfg.spec.external_hosts)} external host(s), "
        f"{len(m.namespaces)} namespace(s), {len(m.pods)} pod(s)"
        + (f", {workloads}" if workloads else "")
        + f", {len(m.services)} service(s), {len(m.network_policies)} network policy(ies), {len(m.others)} other object(s)"
    ]
    summary = getattr(loader, "no_effect_summary", None)
    if summary is not None:  # fields and kinds accepted that change nothing in kemu
        text = summary(list(getattr(cfg, "no_effect", []) or []), [o.kind for o in m.others])
        if text:
            lines.append(text)
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> int:
    cfg = load_cluster_file(args.file)
    if args.detach:
        return _up_detached(args, cfg.spec.name)
    from emu.cli.shell import KemuCLI
    from emu.daemon.host import HostedCluster

    t0 = time.monotonic()
    hosted = HostedCluster(cfg, _progress_printer())

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise _RemoteDown()

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        unready = hosted.start(args.ready_timeout)
        _summary(cfg.spec.name, unready, time.monotonic() - t0)
        hosted.on_remote_down(lambda: os.kill(os.getpid(), signal.SIGTERM))
        stdin = sys.stdin if sys.stdin is not None else open(os.devnull)
        KemuCLI(hosted.cluster, stdin=stdin, script=args.script)
    except _RemoteDown:
        print("cluster taken down", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, old)
        hosted.stop()
    return 0


def _up_detached(args: argparse.Namespace, name: str) -> int:
    r, w = os.pipe()
    argv = [
        sys.executable,
        "-m",
        "emu.daemon",
        os.path.abspath(args.file),
        "--report-fd",
        str(w),
        "--ready-timeout",
        str(args.ready_timeout),
    ]
    if args.verbose:
        argv.append("-v")
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, pass_fds=[w], stdin=subprocess.DEVNULL, start_new_session=True)
    os.close(w)
    progress = _progress_printer()
    with os.fdopen(r, "rb", buffering=0) as rf:
        try:
            for word, rest in report_lines(rf, proc, name):
                if word == "PROGRESS":
                    phase, done, total = rest.split()
                    progress(phase, int(done), int(total))
                elif word == "READY":
                    _summary(name, json.loads(rest), time.monotonic() - t0)
                    print(f"daemon pid {proc.pid}; `kemu down {name}` to stop", file=sys.stderr)
                    return 0
                elif word == "ERROR":
                    exit_code, _, msg = rest.partition(" ")
                    proc.wait(60)
                    print(f"error: {json.loads(msg)}", file=sys.stderr)
                    return int(exit_code)
        except ReportSilent as e:
            proc.kill()
            raise KemuError(f"{e}; killed it (run `kemu clean`)") from None
    return 1  # not reached: the report ends in READY or ERROR, or raises


def cmd_down(args: argparse.Namespace) -> str:
    name = pick_cluster(args.name or args.cluster)
    daemon = Record.load(name).daemon()
    try:
        request(name, "down", timeout=600)
        # Return once the daemon is gone too, so the name can be taken again at once:
        # a pidfd becomes readable when its process exits.
        if daemon is not None and daemon.alive():
            try:
                fd = os.pidfd_open(daemon.pid)
            except ProcessLookupError:
                fd = -1
            if fd >= 0:
                try:
                    select.select([fd], [], [], 30)
                finally:
                    os.close(fd)
    except DaemonError as e:
        # Nobody answers: the owner died. Clean up from the record instead.
        log.warning("%s; cleaning up from the recorded state", e)
        clean_cluster(Record.load(name))
    return f"cluster {name} is down"


def cmd_clean(args: argparse.Namespace) -> str:
    lines = []
    for name in list_clusters():
        rec = Record.load(name)
        d = rec.daemon()
        if d is not None and d.alive():
            try:
                request(name, "down", timeout=600)
                lines.append(f"cluster {name}: was running; taken down")
                continue
            except KemuError as e:
                log.warning("cluster %s: daemon alive but not answering (%s); killing it", name, e)
        removed = clean_cluster(rec)
        lines.append(f"cluster {name}: removed {len(removed)} leftover(s)" + "".join(f"\n  {x}" for x in removed))
    return "\n".join(lines) or "nothing to clean"


# --- resource arguments, as kubectl's resource builder reads them ---------------------------


def _resolve(word: str) -> registry.KindInfo:
    try:
        return registry.resolve(word)
    except ValidationError as e:
        raise UsageError(e.problems[0].message) from e


def resource_args(words: list[str], verb: str) -> list[tuple[registry.KindInfo, list[str]]]:
    """`KIND[,KIND…] [NAME…]` or `KIND/NAME…` → [(kind, names), ...] in the order given."""
    if not words:
        raise UsageError(
            f'You must specify the type of resource to {verb}. Use "kemu api-resources" for a complete list of supported resources.'
        )
    out: dict[str, tuple[registry.KindInfo, list[str]]] = {}
    if any("/" in w for w in words):
        for w in words:
            kind, slash, name = w.partition("/")
            if not slash or not kind or not name:
                raise UsageError(
                    f"there is no need to specify a resource type as a separate argument when passing arguments in "
                    f"resource/name form (e.g. 'kemu {verb} resource/<resource_name>' instead of "
                    f"'kemu {verb} resource resource/<resource_name>'): {w!r}"
                )
            info = _resolve(kind)
            out.setdefault(info.kind, (info, []))[1].append(name)
        return list(out.values())
    for word in words[0].split(","):
        if word:
            info = _resolve(word)
            out.setdefault(info.kind, (info, []))
    names = list(dict.fromkeys(words[1:]))
    return [(info, list(names)) for info, _ in out.values()]


def _namespace(args: argparse.Namespace) -> str:
    return str(getattr(args, "namespace", None) or "default")


def _no_resources(kinds: list[str], args: argparse.Namespace) -> str:
    if getattr(args, "all_namespaces", False) or not any(registry.is_namespaced(k) for k in kinds):
        return "No resources found"
    return f"No resources found in {_namespace(args)} namespace."


def _is_not_found(e: KemuError) -> bool:
    return "not found" in str(e).lower()


def _not_found(info: registry.KindInfo, name: str) -> str:
    return f'Error from server (NotFound): {info.resource} "{name}" not found'


def _get(cluster: str, kind: str, ns: str, name: str | None = None, all_ns: bool = False, selector: str | None = None) -> list[Obj]:
    items = request(cluster, "get", kind=kind, name=name, namespace=ns, all_namespaces=all_ns, selector=selector)
    return list(items or [])


def _get_named(cluster: str, info: registry.KindInfo, ns: str, name: str) -> list[Obj]:
    """The named object ([] when it does not exist)."""
    try:
        return _get(cluster, info.kind, ns, name)
    except KemuError as e:
        if _is_not_found(e):
            return []
        raise


def _selector_of(obj: Obj) -> str:
    """The pods an object manages, as a selector string (a Service's or RC's map, or a LabelSelector)."""
    sel = (obj.get("spec") or {}).get("selector")
    if not isinstance(sel, dict) or not sel:
        return ""
    if "matchLabels" in sel or "matchExpressions" in sel:
        return selector_string(sel)
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))


def _pod_rank(p: Obj) -> tuple[int, str]:
    st = p.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
    running = st.get("phase") == "Running"
    return (0 if ready else 1 if running else 2, (p.get("metadata") or {}).get("name", ""))


def resolve_pod(cluster: str, word: str, ns: str) -> str:
    """A pod's name from `NAME`, `pod/NAME` or `KIND/NAME` of something with a selector (deploy/web)."""
    kind, slash, name = word.partition("/")
    if not slash:
        return word
    info = _resolve(kind)
    if info.kind == "Pod":
        return name
    found = _get_named(cluster, info, ns, name)
    if not found:
        raise KemuError(_not_found(info, name))
    sel = _selector_of(found[0])
    if not sel:
        raise UsageError(f"cannot attach to {kind_prefix(info.kind)}/{name}: it selects no pods")
    pods = sorted(_get(cluster, "Pod", ns, selector=sel), key=_pod_rank)
    if not pods:
        raise KemuError(f"no pods found for {kind_prefix(info.kind)}/{name} (selector {sel})")
    chosen = pods[0]["metadata"]["name"]
    if len(pods) > 1:
        print(f"Found {len(pods)} pods, using pod/{chosen}", file=sys.stderr)
    return str(chosen)


# --- apply, delete ---------------------------------------------------------------------------


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
            namespace=_namespace(args),
            all_namespaces=args.all_namespaces,
            selector=args.selector,
            all=args.all,
            grace_period=grace,
            wait=args.wait,
            ignore_not_found=args.ignore_not_found,
        )
        deleted += list(res.get("deleted") or [])
    if not deleted and not named:
        print(_no_resources([i.kind for i, _ in targets], args), file=sys.stderr)
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
                namespace=_namespace(args),
                set=set_,
                remove=remove,
                overwrite=args.overwrite,
            )
            done.append(f"{qualified_name(info.kind, name)} {'unlabeled' if remove and not set_ else 'labeled'}")
    return "\n".join(done)


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
    cluster, ns = pick_cluster(args.cluster), _namespace(args)
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
                got = _get_named(cluster, info, ns, name)
                if not got:
                    missing.append(_not_found(info, name))
                items += got
        else:
            items = _get(cluster, info.kind, ns, all_ns=args.all_namespaces, selector=args.selector)
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
        print(_no_resources([k for k, _ in groups], args), file=sys.stderr)
    return 1 if missing else 0


def _events(cluster: str, ns: str, cache: dict[str, list[Obj]]) -> list[Obj]:
    """The events of a namespace ([] when the daemon has none or keeps none)."""
    if ns not in cache:
        try:
            cache[ns] = _get(cluster, "Event", ns)
        except KemuError as e:
            log.debug("no events: %s", e)
            cache[ns] = []
    return cache[ns]


def _tolerant_get(cluster: str, kind: str, ns: str, all_ns: bool = False, selector: str | None = None) -> list[Obj]:
    try:
        return _get(cluster, kind, ns, all_ns=all_ns, selector=selector)
    except KemuError as e:
        log.debug("get %s: %s", kind, e)
        return []


def describe_one(cluster: str, kind: str, obj: Obj, events_cache: dict[str, list[Obj]]) -> str:
    meta = obj.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    name = str(meta.get("name", ""))
    events = events_for(_events(cluster, ns, events_cache), {**obj, "kind": kind})
    if kind == "Pod":
        return describe_pod(obj, events)
    if kind == "Service":
        slices = _tolerant_get(cluster, "EndpointSlice", ns, selector=f"kubernetes.io/service-name={name}")
        return describe_service(obj, slices, events)
    if kind == "Deployment":
        sel = _selector_of(obj)
        rss = _tolerant_get(cluster, "ReplicaSet", ns, selector=sel or None)
        owned = [
            r
            for r in rss
            if not (r.get("metadata") or {}).get("ownerReferences")
            or any(o.get("kind") == "Deployment" and o.get("name") == name for o in r["metadata"]["ownerReferences"])
        ]
        return describe_deployment(obj, owned, events)
    if kind == "Node":
        pods = [p for p in _tolerant_get(cluster, "Pod", "default", all_ns=True) if (p.get("spec") or {}).get("nodeName") == name]
        return describe_node(obj, pods, events)
    return describe_other(obj)


def cmd_describe(args: argparse.Namespace) -> int:
    targets = resource_args(args.words, "describe")
    named = any(names for _, names in targets)
    if named and args.selector:
        raise UsageError("name cannot be provided when a selector is specified")
    cluster, ns = pick_cluster(args.cluster), _namespace(args)
    texts: list[str] = []
    missing: list[str] = []
    events: dict[str, list[Obj]] = {}
    for info, names in targets:
        objs: list[Obj] = []
        if names:
            for name in names:
                got = _get_named(cluster, info, ns, name)
                if not got:  # kubectl describe falls back to a name prefix
                    everything = _get(cluster, info.kind, ns)
                    got = [o for o in everything if str((o.get("metadata") or {}).get("name", "")).startswith(name)]
                if not got:
                    missing.append(_not_found(info, name))
                objs += got
        else:
            objs = _get(cluster, info.kind, ns, all_ns=args.all_namespaces, selector=args.selector)
        texts += [describe_one(cluster, info.kind, o, events) for o in objs]
    if texts:
        print("\n\n\n".join(texts), flush=True)
    for m in missing:
        print(m, file=sys.stderr)
    if not texts and not named:
        print(_no_resources([i.kind for i, _ in targets], args), file=sys.stderr)
    return 1 if missing else 0


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
    cluster, ns = pick_cluster(args.cluster), _namespace(args)
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


def cmd_scale(args: argparse.Namespace) -> str:
    if args.replicas < 0:
        raise UsageError("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    cluster, ns = pick_cluster(args.cluster), _namespace(args)
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
    cluster, ns = pick_cluster(args.cluster), _namespace(args)
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


def cmd_api_resources(args: argparse.Namespace) -> str:
    head, *rows = registry.api_resources_table()
    if args.namespaced is not None:
        rows = [r for r in rows if r[3] == args.namespaced]
    if args.api_group is not None:
        rows = [r for r in rows if r[2].rpartition("/")[0] == args.api_group]
    if args.output == "name":
        return "\n".join(r[0] + (f".{r[2].rpartition('/')[0]}" if "/" in r[2] else "") for r in rows)
    return format_table([head, *rows], headers=not args.no_headers)


def _exec_pod(args: argparse.Namespace, rec: Record) -> tuple[str, str, list[str]]:
    """(netns, hostname, options of emu.dataplane.enter) of the pod (and container) `exec` means.

    The options carry the container's environment file (`--env-file`) and working
    directory (`--workdir`) when the pod's record has them.
    """
    target, ns = args.words[0], _namespace(args)
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
        c = Cluster(load_cluster_file(args.file), _progress_printer())
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
