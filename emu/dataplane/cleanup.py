"""Removing what a cluster left behind, found from its ownership record — never by
matching names: a namespace is ours only if the record lists it and, when its `lo`
carries a marker, the marker is this cluster's."""

from __future__ import annotations

import logging
import os
import signal

from emu.dataplane import etcfiles, netns
from emu.dataplane.handles import MarkerUnreadable, read_marker
from emu.dataplane.ownership import ProcRef, Record

log = logging.getLogger(__name__)


def clean_cluster(record: Record, keep_daemon: bool = False) -> list[str]:
    """Kill recorded processes, unpin recorded namespaces, drop the record. What was removed."""
    removed: list[str] = []
    procs = [ProcRef(p["pid"], p["start"]) for p in record.data.get("processes", [])]
    daemon = record.daemon()
    if daemon is not None and not keep_daemon and daemon.pid != os.getpid():
        procs.append(daemon)
    for ref in procs:
        if ref.alive():
            try:
                os.kill(ref.pid, signal.SIGKILL)
                removed.append(f"process {ref.pid}")
            except ProcessLookupError:
                pass
    marker = record.data.get("marker", "")
    for name in reversed(record.data.get("netns", [])):
        if not netns.exists(name):
            continue
        if not os.path.ismount(netns.path(name)):
            # A pin file left by a creation that died before mounting: it holds no namespace.
            netns.delete(name)
            removed.append(f"netns {name}")
            continue
        try:
            found = read_marker(name)
        except MarkerUnreadable as e:
            log.warning("not removing netns %s: %s", name, e)  # fail closed: maybe not ours
            continue
        if found and found != marker:
            log.warning("not removing netns %s: it carries another owner's marker (%s)", name, found)
            continue
        netns.delete(name)
        removed.append(f"netns {name}")
    for directory in record.data.get("etc_dirs", []):
        if os.path.lexists(directory):
            etcfiles.remove(directory)
            removed.append(f"directory {directory}")
    etcfiles.release_parent()
    store = record.data.get("etc_store")
    if store and os.path.ismount(store):
        etcfiles.release_store(store)
        removed.append(f"tmpfs {store}")
    if record.data.get("made_run_netns"):
        netns.release_run_dir(record.data["made_run_netns"])
    record.remove()
    return removed
