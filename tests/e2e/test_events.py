"""`kemu get events` and `describe`'s events: what the cluster did, when, from real runs."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from tests.conftest import REPO
from tests.e2e.helpers import Running, kemu, wait_until


def events(c: Running, *scope: str) -> list[dict[str, Any]]:
    return json.loads(kemu("--cluster", c.name, "get", "events", *scope, "-o", "json").stdout)["items"]


def about(evs: list[dict[str, Any]], kind: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in evs if e["involvedObject"]["kind"] == kind and e["reason"] == reason]


def test_bring_up_is_told_in_events(quickstart: Running) -> None:
    pods = json.loads(kemu("--cluster", "quickstart", "get", "pods", "-A", "-o", "json").stdout)["items"]
    names = {p["metadata"]["name"] for p in pods if p["metadata"]["namespace"] in ("web", "tools")}
    wait_until(lambda: {e["involvedObject"]["name"] for e in about(events(quickstart, "-A"), "Pod", "Ready")} >= names, 20, "Ready events")
    evs = events(quickstart, "-A")
    scheduled = {e["involvedObject"]["name"]: e for e in about(evs, "Pod", "Scheduled")}
    assert names <= set(scheduled)
    toolbox = scheduled["toolbox"]
    assert toolbox["source"]["component"] == "default-scheduler"
    assert (
        toolbox["message"]
        == f"Successfully assigned tools/toolbox to {next(p['spec']['nodeName'] for p in pods if p['metadata']['name'] == 'toolbox')}"
    )
    started = about(evs, "Pod", "Started")
    assert {e["involvedObject"]["name"] for e in started} >= names
    assert all(e["source"]["component"] == "kubelet" and e["source"]["host"].startswith("node-") for e in started)
    assert about(evs, "Deployment", "ScalingReplicaSet") and about(evs, "ReplicaSet", "SuccessfulCreate")
    (ep,) = [e for e in about(evs, "Service", "EndpointsChanged") if e["involvedObject"]["name"] == "echo"][-1:]
    assert ep["message"].startswith("ready endpoints: ") and ep["message"].count(":8080") == 3
    synced = about(evs, "Node", "Synced")
    assert {e["source"]["component"] for e in synced} >= {"kube-proxy"}
    assert all(" sync in " in e["message"] and e["message"].endswith(" ms") for e in synced)
    stamps = [e["lastTimestamp"] for e in evs]
    assert stamps == sorted(stamps)  # oldest first
    table = kemu("--cluster", "quickstart", "get", "events", "-n", "tools").stdout.splitlines()
    assert table[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any(line.split()[1:4] == ["Normal", "Scheduled", "pod/toolbox"] for line in table[1:])
    described = kemu("--cluster", "quickstart", "describe", "pod", "toolbox", "-n", "tools").stdout
    events_part = described[described.index("Events:") :]
    assert "Scheduled" in events_part and "Started" in events_part and "default-scheduler" in events_part


def _reader(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)


def test_watch_follows_a_scale_up_and_down(quickstart: Running) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emu.cli.main", "--cluster", "quickstart", "get", "events", "-n", "web", "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(proc, lines), daemon=True).start()
    seen: list[str] = []

    def saw(*words: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in seen:
                if all(w in line for w in words):
                    seen.remove(line)
                    return line
            try:
                seen.append(lines.get(timeout=0.2))
            except queue.Empty:
                pass
        raise AssertionError(f"no event line with {words} in {timeout} s; saw {seen}")

    try:
        saw("ScalingReplicaSet")  # what was there: the watch starts with the list
        before = {
            p["metadata"]["name"]
            for p in json.loads(kemu("--cluster", "quickstart", "get", "pods", "-n", "web", "-o", "json").stdout)["items"]
        }
        kemu("--cluster", "quickstart", "scale", "deployment", "echo", "--replicas", "4", "-n", "web")
        # Lines of the first listing may still be arriving: look only for the new pod's.
        new_pod = ""
        while not new_pod:
            line = saw("SuccessfulCreate", "replicaset/echo-")
            name = line.split("Created pod: ")[1].strip()
            new_pod = name if name not in before else ""
        saw("Scheduled", f"pod/{new_pod}")
        saw("Ready", f"pod/{new_pod}")
        while saw("EndpointsChanged", "service/echo").count(":8080") != 4:
            pass  # the first listing's lines (three endpoints) until the one with four
        kemu("--cluster", "quickstart", "scale", "deployment", "echo", "--replicas", "3", "-n", "web")
        saw("SuccessfulDelete", "replicaset/echo-")
        saw("Killing", "Stopping container netexec")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()  # nothing of ours left running, whatever the outcome
            proc.wait()
            raise
    assert code == 0  # Ctrl-C ends a watch, as kubectl's (also when SIGINT came ignored, as under CI)


def test_watch_is_for_events_only(quickstart: Running) -> None:
    cp = kemu("--cluster", "quickstart", "get", "pods", "-w", check=False)
    assert cp.returncode == 2 and "-w/--watch follows events only" in cp.stderr
