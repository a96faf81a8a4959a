"""The Python API and its pytest plugin as a user meets them: the examples/ suite run by
pytest in a subprocess (the plugin loaded through its installed entry point), and a run
cut short with Ctrl-C that leaves nothing behind."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO
from tests.e2e.helpers import leftovers, wait_until

pytestmark = pytest.mark.e2e

EXAMPLES = os.path.join(REPO, "examples")
TOPOLOGY = os.path.join(EXAMPLES, "traffic.yaml")


def _plugin_installed() -> None:
    eps = importlib.metadata.entry_points(group="pytest11", name="kemu")
    if not eps:
        pytest.fail("kemu's pytest plugin is not installed (no pytest11 entry point `kemu`): run `make setup`")
    assert next(iter(eps)).value == "emu.api.pytest_plugin"


def _pytest(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


def _env() -> dict[str, str]:
    """The environment a user's run has: plugins load from their entry points."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}


def _as_from_a_terminal() -> None:
    """Ctrl-C's default disposition in the child: a CI runner may start us with SIGINT
    ignored, which children inherit and Python then leaves alone (no KeyboardInterrupt);
    a user at a terminal has the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _helpers_of(cluster: str) -> list[str]:
    """Scapy helper processes still running in the cluster's namespaces."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"emu.api.scapy_child" in argv and any(a.startswith(f"kemu-{cluster}.".encode()) for a in argv):
            found.append(pid)
    return found


def test_the_examples_pass_and_leave_nothing() -> None:
    _plugin_installed()
    with open(TOPOLOGY) as f:
        name = yaml.safe_load(f)["metadata"]["name"]
    assert not leftovers(name), f"machine not clean before the test: {leftovers(name)}"
    t0 = time.monotonic()
    cp = subprocess.run(_pytest("-q", EXAMPLES), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t0
    assert cp.returncode == 0, f"the examples failed ({took:.1f} s):\n{cp.stdout}\n{cp.stderr}"
    assert "5 passed" in cp.stdout, cp.stdout
    assert not leftovers(name)
    assert not _helpers_of(name)


def test_ctrl_c_in_a_test_takes_the_cluster_down(tmp_path: pathlib.Path) -> None:
    _plugin_installed()
    name = "apicut"
    assert not leftovers(name), f"machine not clean before the test: {leftovers(name)}"
    started = tmp_path / "started"
    (tmp_path / "test_cut.py").write_text(
        f"""
import pathlib, time, pytest
pytestmark = pytest.mark.kemu_topology({TOPOLOGY!r}, name={name!r})

def test_fails(kemu_cluster):
    assert kemu_cluster.pod("x/client").run("true").returncode == 1

def test_waits(kemu_cluster):
    pathlib.Path({str(started)!r}).write_text(kemu_cluster.name)
    time.sleep(300)
"""
    )
    proc = subprocess.Popen(
        _pytest("-q", "test_cut.py"),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_as_from_a_terminal,
    )
    try:
        wait_until(started.exists, timeout=180, what="the cluster to come up and the second test to start")
        assert leftovers(name), "the cluster should be up while its tests run"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "1 failed" in out, out
    assert not leftovers(name), out


NEVER_READY = """
apiVersion: kemu/v1alpha1
kind: Cluster
metadata: {name: apiint}
spec:
  nodes: [{name: n1}]
  dns: {enabled: false}
  resources:
    - apiVersion: v1
      kind: Pod
      metadata: {name: waits}
      spec:
        containers:
          - name: c
            readinessProbe: {tcpSocket: {port: 9999}, periodSeconds: 1}   # nothing listens there
"""


def test_ctrl_c_during_bring_up_leaves_nothing(tmp_path: pathlib.Path) -> None:
    """emu.up interrupted while it waits for pods to get Ready: the half-built cluster goes."""
    name = "apiint"
    assert not leftovers(name), f"machine not clean before the test: {leftovers(name)}"
    script = tmp_path / "up.py"
    script.write_text(f"import emu\nemu.up({NEVER_READY!r}, ready_timeout=120)\nprint('returned')\n")
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_as_from_a_terminal
    )
    try:
        wait_until(lambda: os.path.exists(f"/run/kemu/{name}/state.json"), timeout=60, what="the bring-up to start")
        time.sleep(1.0)  # into the wait for readiness
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in out and "returned" not in out, out
    assert not leftovers(name), out


def test_a_program_that_forgets_down_leaves_nothing(tmp_path: pathlib.Path) -> None:
    name = "apiexit"
    assert not leftovers(name), f"machine not clean before the test: {leftovers(name)}"
    topology = NEVER_READY.replace("apiint", name).split("  resources:")[0]  # no pods: up at once
    script = tmp_path / "forget.py"
    script.write_text(f"import emu\nc = emu.up({topology!r})\nprint('up', c.pod if c.running else None)\n")
    cp = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert cp.returncode == 0 and cp.stdout.startswith("up <bound method"), cp.stdout + cp.stderr
    assert "still up as the program ends" in cp.stderr
    assert not leftovers(name)


RECREATED = """
apiVersion: kemu/v1alpha1
kind: Cluster
metadata: {name: apirec}
spec:
  nodes: [{name: n1}]
  resources:
    - {apiVersion: v1, kind: Pod, metadata: {name: a, labels: {app: a}}, spec: {containers: [{name: c}]}}
    - {apiVersion: v1, kind: Pod, metadata: {name: b}, spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}}
"""
POD_A = "{apiVersion: v1, kind: Pod, metadata: {name: a, labels: {app: a}}, spec: {containers: [{name: c}]}}"


def test_scapy_follows_a_pod_recreated_under_its_name() -> None:
    from scapy.layers.inet import IP, TCP

    import emu

    with emu.up(RECREATED) as c:
        b = c.pod("b")
        assert c.pod("a").sr1(IP(dst=b.ip) / TCP(dport=80, flags="S"), timeout=3) is not None
        # Deleted and made again behind the API's back (as an eviction or a StatefulSet
        # would): the same name, a new namespace.
        kemu_cli = [sys.executable, "-m", "emu.cli.main", "--cluster", "apirec"]
        subprocess.run([*kemu_cli, "delete", "pod", "a"], cwd=REPO, check=True, capture_output=True)
        subprocess.run([*kemu_cli, "apply", "-f", "-"], cwd=REPO, check=True, capture_output=True, input=POD_A, text=True)
        wait_until(lambda: c.get("pod", "a")["status"].get("phase") == "Running", 30, "a again")
        ans = c.pod("a").sr1(IP(dst=b.ip) / TCP(dport=80, flags="S"), timeout=3)
        assert ans is not None and ans[TCP].flags == "SA"  # sent from the new namespace, not the dead one
    assert not leftovers("apirec") and not _helpers_of("apirec")
