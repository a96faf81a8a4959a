"""Clean-up you can trust: `down` leaves nothing; after kill -9 at any point, `kemu clean`
removes every leftover; the host namespace is the same before and after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO
from tests.e2e.helpers import host_snapshot, kemu, leftovers, netns_list, wait_until

pytestmark = pytest.mark.e2e


def topology(tmp_path, name: str, pods: int, command: bool = False) -> str:  # type: ignore[no-untyped-def]
    container = (
        '{name: c, command: [sleep, "3600"], ports: [{containerPort: 80}]}' if command else "{name: c, ports: [{containerPort: 80}]}"
    )
    text = textwrap.dedent(
        f"""\
        apiVersion: kemu/v1alpha1
        kind: Cluster
        metadata: {{name: {name}}}
        spec:
          nodes: [{{name: n1}}, {{name: n2}}]
          externalHosts: [{{name: ext}}]
          resources:
            - apiVersion: apps/v1
              kind: Deployment
              metadata: {{name: d}}
              spec:
                replicas: {pods}
                selector: {{matchLabels: {{app: d}}}}
                template:
                  metadata: {{labels: {{app: d}}}}
                  spec: {{containers: [{container}]}}
        """
    )
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return str(p)


def state(name: str) -> dict:  # type: ignore[type-arg]
    with open(f"/run/kemu/{name}/state.json") as f:
        return json.load(f)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_host_namespace_is_unchanged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    before = host_snapshot()
    f = topology(tmp_path, "hostcheck", 4, command=True)
    kemu("up", f, "-d")
    try:
        kemu("--cluster", "hostcheck", "probe")
        during = host_snapshot()
        assert during["links"] == before["links"] and during["routes"] == before["routes"]
        assert during["nft"] == before["nft"] and during["sysctls"] == before["sysctls"]
    finally:
        kemu("down", "hostcheck")
    assert not leftovers("hostcheck")
    assert host_snapshot() == before


def test_kill_9_after_ready_then_clean(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = topology(tmp_path, "killed", 4, command=True)
    kemu("up", f, "-d")
    st = state("killed")
    daemon = st["daemon"]["pid"]
    containers = [p["pid"] for p in st["processes"] if p["what"].startswith("default/")]
    assert len(containers) == 4 and all(alive(p) for p in containers)
    containers = [p["pid"] for p in st["processes"]]  # with the DNS servers: all must go
    os.kill(daemon, signal.SIGKILL)
    wait_until(lambda: not alive(daemon), 5, "daemon gone")
    assert leftovers("killed")  # the namespaces outlive their creator
    out = kemu("clean").stdout
    assert "cluster killed: removed" in out
    assert not leftovers("killed")
    assert not any(alive(p) for p in containers)


def test_kill_9_during_bring_up_then_clean(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = topology(tmp_path, "midway", 150)
    up = subprocess.Popen(
        [sys.executable, "-m", "emu.cli.main", "up", f, "-d"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: len([n for n in netns_list() if n.startswith("kemu-midway.default.")]) >= 20, 30, "20 pods created")
        daemon = state("midway")["daemon"]["pid"]
        os.kill(daemon, signal.SIGKILL)
        wait_until(lambda: not alive(daemon), 5, "daemon gone")
        assert up.wait(30) != 0  # the client reports the failure
    finally:
        if up.poll() is None:
            up.kill()
    assert leftovers("midway")
    kemu("clean")
    assert not leftovers("midway")


def test_kill_9_of_foreground_up_then_clean(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = topology(tmp_path, "fg", 3, command=True)
    # Foreground `up` hosts the cluster in its own process; stdin open keeps the shell waiting.
    fg = subprocess.Popen(
        [sys.executable, "-m", "emu.cli.main", "up", f], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_until(
            lambda: (
                os.path.exists("/run/kemu/fg/state.json") and sum(p["what"].startswith("default/") for p in state("fg")["processes"]) == 3
            ),
            30,
            "3 containers up",
        )
        fg.kill()
        fg.wait(10)
    finally:
        if fg.poll() is None:
            fg.kill()
    kemu("clean")
    assert not leftovers("fg")


def test_up_again_after_a_crash_reclaims_the_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = topology(tmp_path, "again", 2)
    kemu("up", f, "-d")
    daemon = state("again")["daemon"]["pid"]
    os.kill(daemon, signal.SIGKILL)
    wait_until(lambda: not alive(daemon), 5, "daemon gone")
    kemu("up", f, "-d")  # cleans the crashed run's leftovers itself
    try:
        assert kemu("--cluster", "again", "probe").stdout.splitlines()[-1] == "4/4 connected"
        second = kemu("up", f, "-d", check=False)
        assert second.returncode == 1 and "already running" in second.stderr
    finally:
        kemu("down", "again")
    assert not leftovers("again")


def test_clean_with_nothing_to_do() -> None:
    assert kemu("clean").stdout.strip() in ("nothing to clean",) or "removed" in kemu("clean").stdout


def fault_everything(name: str) -> None:
    pod = next(iter(json.loads(kemu("--cluster", name, "get", "pods", "-o", "json").stdout)["items"]))["metadata"]["name"]
    for words in (
        ["loss", f"default/{pod}", "20"],
        ["rate", "host/ext", "10mbit"],
        ["partition", "node/n1", "--", "host/ext"],
        ["link", "node/n2", "down"],
    ):
        kemu("--cluster", name, "fault", *words)
    assert len(kemu("--cluster", name, "get", "faults", "--no-headers").stdout.splitlines()) == 4


def test_faults_are_gone_after_down_and_after_kill_9_and_clean(tmp_path) -> None:  # type: ignore[no-untyped-def]
    before = host_snapshot()
    kemu("up", topology(tmp_path, "fltdown", 2), "-d")
    fault_everything("fltdown")
    kemu("down", "fltdown")
    assert not leftovers("fltdown")

    kemu("up", topology(tmp_path, "fltk9", 2), "-d")
    fault_everything("fltk9")
    daemon = state("fltk9")["daemon"]["pid"]
    os.kill(daemon, signal.SIGKILL)
    wait_until(lambda: not alive(daemon), 5, "daemon gone")
    assert "cluster fltk9: removed" in kemu("clean").stdout
    assert not leftovers("fltk9")
    assert host_snapshot() == before  # the faults lived in the cluster's namespaces only
