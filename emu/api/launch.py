"""Bringing a cluster up for the API as `kemu up -d` does, and taking it down as `kemu down` does.

Up starts the same detached daemon (`python -m emu.daemon FILE --report-fd N`) and reads
its report (emu/daemon/__main__.py): the cluster either comes up whole or leaves nothing
behind, also when the caller is interrupted (Ctrl-C) half-way. Down is `kemu down`'s own
code. A topology given as a YAML string, or renamed with `name=`, is written to a private
copy (its `spec.include` paths made absolute) that lives as long as the cluster.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import yaml

from emu.daemon.report import report_lines
from emu.errors import KemuError, NotFoundError, ValidationError

log = logging.getLogger(__name__)

ABORT_WAIT = 120.0  # seconds an interrupted daemon gets to unwind what it built
YAML_LABEL = "<yaml string>"


@dataclass(frozen=True)
class Source:
    """A topology as the daemon reads it."""

    path: str  # the file the daemon loads
    label: str  # what messages call it: the caller's path, or YAML_LABEL
    tmpdir: str | None = None  # the private copy's directory, removed when the cluster is down


def looks_like_yaml(text: str) -> bool:
    """A string holding a document rather than naming a file."""
    head = text.lstrip()
    return "\n" in text or head.startswith(("apiVersion:", "kind:", "{", "---", "metadata:", "spec:"))


def topology_source(path_or_yaml: str | os.PathLike[str], name: str | None = None) -> Source:
    """The file to start from: the caller's own when it can be used as it is, else a copy."""
    if isinstance(path_or_yaml, str) and looks_like_yaml(path_or_yaml):
        text, label, base = path_or_yaml, YAML_LABEL, os.getcwd()
    else:
        path = os.fspath(path_or_yaml)
        if not os.path.isfile(path):
            raise NotFoundError(f"topology file {path} does not exist" + (" (a directory)" if os.path.isdir(path) else ""))
        if name is None:
            return Source(os.path.abspath(path), path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        label, base = path, os.path.dirname(os.path.abspath(path))
    tmpdir = tempfile.mkdtemp(prefix="kemu-api-")
    copy = os.path.join(tmpdir, "topology.yaml")
    with open(copy, "w", encoding="utf-8") as f:
        f.write(_rewritten(text, name, base))
    return Source(copy, label, tmpdir)


def _rewritten(text: str, name: str | None, base: str) -> str:
    """The topology renamed to `name` with includes resolved from `base`; a text that is not
    one YAML mapping is left as it is, for the loader to report."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if not isinstance(doc, dict):
        return text
    if name is not None:
        meta = doc.get("metadata")
        doc["metadata"] = {**(meta if isinstance(meta, dict) else {}), "name": name}
    spec = doc.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("include"), list):
        spec["include"] = [os.path.join(base, i) if isinstance(i, str) and not os.path.isabs(i) else i for i in spec["include"]]
    return yaml.safe_dump(doc, sort_keys=False)


def discard(src: Source) -> None:
    if src.tmpdir:
        shutil.rmtree(src.tmpdir, ignore_errors=True)


def load(src: Source) -> Any:
    """The validated topology (emu.model.objects.ClusterConfig); problems name the caller's file."""
    from emu.config import load_cluster_file

    try:
        return load_cluster_file(src.path)
    except ValidationError as e:
        if src.path == src.label:
            raise
        problems = [dataclasses.replace(p, file=src.label) if p.file == src.path else p for p in e.problems]
        raise ValidationError(problems) from None


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """Ctrl-C while the body runs is held until it ends, then raised: a half-done
    bring-up or tear-down is worse than a late KeyboardInterrupt. (Only the main thread
    can take SIGINT's handler; elsewhere the body runs as it is.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        got.append(signum)

    old = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if got:
        raise KeyboardInterrupt


def start_daemon(path: str, name: str, ready_timeout: float, verbose: bool = False) -> list[str]:
    """Start the cluster's daemon on topology `path`; return once it is up (the pods still
    not Ready after `ready_timeout` seconds, as ns/name). On any failure, or an interrupt,
    nothing of the cluster is left and the error is raised."""
    r, w = os.pipe()
    argv = [sys.executable, "-m", "emu.daemon", path, "--report-fd", str(w), "--ready-timeout", str(ready_timeout)]
    if verbose:
        argv.append("-v")
    try:
        proc = subprocess.Popen(argv, pass_fds=[w], stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        os.close(w)
    try:
        with os.fdopen(r, "rb", buffering=0) as rf:
            return _read_report(rf, proc, name)
    except BaseException:
        with sigint_deferred():
            _abort(proc, name)
        raise


def _read_report(rf: Any, proc: subprocess.Popen[bytes], name: str) -> list[str]:
    for word, rest in report_lines(rf, proc, name):
        if word == "READY":
            return [str(p) for p in json.loads(rest)]
        if word == "ERROR":
            code, _, msg = rest.partition(" ")
            try:
                proc.wait(60)  # it unwinds, then exits; _abort finishes the job if not
            except subprocess.TimeoutExpired:
                pass
            err = KemuError(f"cluster {name}: {json.loads(msg)}")
            err.exit_code = int(code)
            raise err
        # PROGRESS lines: the API reports no progress
    raise KemuError(f"cluster {name}: the daemon's report ended")  # not reached: report_lines never ends


def _abort(proc: subprocess.Popen[bytes], name: str) -> None:
    """Unwind a bring-up that did not finish: SIGINT makes the daemon take down what it
    built (as Ctrl-C does in the foreground); a daemon that won't is killed and its record
    cleaned up, as `kemu clean` does."""
    from emu.dataplane.cleanup import clean_cluster
    from emu.dataplane.ownership import Record, list_clusters

    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(ABORT_WAIT)
        except subprocess.TimeoutExpired:
            log.warning("cluster %s: the daemon did not unwind in %.0f s; killing it", name, ABORT_WAIT)
            proc.kill()
            proc.wait()
    if name in list_clusters():
        rec = Record.load(name)
        d = rec.daemon()
        if d is not None and d.alive():
            down(name)  # it got as far as serving: take it down properly
        else:
            clean_cluster(rec)


def up(src: Source, ready_timeout: float) -> tuple[str, list[str]]:
    """(the cluster's name, pods not Ready): the topology validated, then the daemon started."""
    from emu.dataplane.ownership import list_clusters

    config = load(src)
    name = str(config.spec.name)
    if name in list_clusters():
        raise KemuError(f"a cluster named {name} is already running: take it down (`kemu down {name}`) or use emu.attach({name!r})")
    t0 = time.monotonic()
    unready = start_daemon(src.path, name, ready_timeout)
    log.info("cluster %s is up (%.1f s)", name, time.monotonic() - t0)
    if unready:
        log.warning("cluster %s: %d pod(s) not Ready after %.0f s: %s", name, len(unready), ready_timeout, ", ".join(unready[:10]))
    return name, unready


def down(name: str) -> None:
    """`kemu down NAME` (also when its daemon died: cleaned up from the record); nothing if it is not running."""
    from emu.cli.lifecycle_cmd import cmd_down
    from emu.dataplane.ownership import list_clusters

    if name in list_clusters():
        cmd_down(argparse.Namespace(name=name, cluster=None))
