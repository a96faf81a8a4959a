"""What kemu created, recorded before it is created, so `kemu clean` never guesses.

/run/kemu/<cluster>/state.json lists the cluster's namespaces (written *before* each
batch is created), the processes it started (pid + start time, so a reused pid is never
killed) and its daemon. The same record tells `kemu exec` where pods live.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from typing import Any

ROOT = "/run/kemu"


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # comm may contain spaces or ')': split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None  # dead, waiting to be reaped
    return int(fields[19])


@dataclass(frozen=True)
class ProcRef:
    pid: int
    start: int

    @staticmethod
    def of(pid: int) -> ProcRef | None:
        start = proc_start_time(pid)
        return None if start is None else ProcRef(pid, start)

    def alive(self) -> bool:
        return proc_start_time(self.pid) == self.start


def cluster_dir(cluster: str) -> str:
    return os.path.join(ROOT, cluster)


def list_clusters() -> list[str]:
    try:
        return sorted(d for d in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, d, "state.json")))
    except FileNotFoundError:
        return []


class Record:
    """The ownership record of one cluster; every change is written atomically."""

    def __init__(self, cluster: str, data: dict[str, Any] | None = None) -> None:
        self.cluster = cluster
        self.dir = cluster_dir(cluster)
        self.file = os.path.join(self.dir, "state.json")
        self._lock = threading.Lock()
        self.data: dict[str, Any] = data or {
            "cluster": cluster,
            "marker": "",
            "daemon": None,
            "netns": [],
            "processes": [],
            "made_run_netns": [],
            "etc_dirs": [],  # per-namespace /etc files kemu wrote (resolv.conf, hosts)
            "etc_store": "",  # the tmpfs they live in (etcfiles.mount_store)
            "pods": {},
            "nodes": {},
            "hosts": {},
            "socket": os.path.join(self.dir, "control.sock"),
            "source": "",
        }

    @staticmethod
    def load(cluster: str) -> Record:
        path = os.path.join(cluster_dir(cluster), "state.json")
        with open(path) as f:
            return Record(cluster, json.load(f))

    def create(self) -> None:
        os.makedirs(ROOT, mode=0o755, exist_ok=True)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)  # the control socket inside is root's only
        self.save()

    def save(self) -> None:
        with self._lock:
            tmp = self.file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.data, f)
            os.replace(tmp, self.file)

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.data.update(fields)
        self.save()

    def add_netns(self, names: list[str]) -> None:
        with self._lock:
            have = set(self.data["netns"])
            fresh = [n for n in names if n not in have]
            self.data["netns"].extend(fresh)
        if fresh:  # written before the namespaces exist; nothing new, nothing to write
            self.save()

    def add_etc_dirs(self, directories: list[str]) -> None:
        with self._lock:
            dirs = self.data.setdefault("etc_dirs", [])
            have = set(dirs)
            dirs.extend(d for d in directories if d not in have)
        self.save()

    def remove_etc_dir(self, directory: str) -> None:
        with self._lock:
            self.data["etc_dirs"] = [d for d in self.data.get("etc_dirs", []) if d != directory]
        self.save()

    def remove_netns(self, names: list[str]) -> None:
        gone = set(names)
        with self._lock:
            self.data["netns"] = [n for n in self.data["netns"] if n not in gone]
        self.save()

    def add_process(self, ref: ProcRef, what: str) -> None:
        with self._lock:
            self.data["processes"].append({"pid": ref.pid, "start": ref.start, "what": what})
        self.save()

    def remove_process(self, pid: int) -> None:
        with self._lock:
            self.data["processes"] = [p for p in self.data["processes"] if p["pid"] != pid]
        self.save()

    def set_pods(self, pods: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            self.data["pods"] = pods
        self.save()

    def daemon(self) -> ProcRef | None:
        d = self.data.get("daemon")
        return ProcRef(d["pid"], d["start"]) if d else None

    def remove(self) -> None:
        # The directory is ours alone (created 0700 by Record.create).
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            os.rmdir(ROOT)
        except OSError:
            pass
