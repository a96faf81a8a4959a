"""A running cluster changes through apply / delete / label, and the kernel follows."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from tests.e2e.helpers import Running, kemu, netns_list, wait_until

pytestmark = pytest.mark.e2e

APP = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Namespace
    metadata: {name: lab, labels: {team: a}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: duo, namespace: lab, labels: {app: duo}}
    spec:
      nodeName: node-1
      containers:
        - name: web
          command: [python3, -m, http.server, "9000", --bind, 127.0.0.1]
          ports: [{containerPort: 9000, name: web}]
          readinessProbe: {exec: {command: [curl, -sf, "http://127.0.0.1:9000/"]}, periodSeconds: 1}
        - name: netexec
          ports: [{containerPort: 80}]
    """
)


def write(tmp_path, name: str, text: str) -> str:  # type: ignore[no-untyped-def]
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def ready(c: Running, key: str) -> bool:
    pod = c.pods().get(key)
    return bool(pod) and {"type": "Ready", "status": "True"} in pod["status"]["conditions"]


def test_apply_label_delete_pod(quickstart: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = write(tmp_path, "app.yaml", APP)
    out = kemu("--cluster", "quickstart", "apply", "-f", f).stdout
    assert "namespace/lab created" in out and "pod/duo created" in out
    assert "kemu-quickstart.lab.duo" in netns_list()  # the dataplane is there when apply returns
    wait_until(lambda: ready(quickstart, "lab/duo"), 15, "lab/duo Ready (exec probe)")
    # Two containers, one namespace: netexec reaches the real process over localhost.
    assert "Directory listing" in quickstart.curl("lab/duo", "http://127.0.0.1:9000/")
    ip = quickstart.ip("lab/duo")
    assert quickstart.curl("tools/toolbox", f"http://{ip}:80/hostname") == "duo"
    # Labels change on the live object.
    kemu("--cluster", "quickstart", "label", "pod", "duo", "-n", "lab", "tier=web")
    assert quickstart.pods()["lab/duo"]["metadata"]["labels"] == {"app": "duo", "tier": "web"}
    kemu("--cluster", "quickstart", "label", "namespace", "lab", "team-")
    ns = json.loads(kemu("--cluster", "quickstart", "get", "ns", "lab", "-o", "json").stdout)
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "lab"}
    # Delete: the namespace, the process and the pod's reachability go before delete returns.
    pid_file = "/proc/{}/cmdline"
    procs = [p for p in os.listdir("/proc") if p.isdigit() and b"http.server" in open(pid_file.format(p), "rb").read()]
    assert procs
    kemu("--cluster", "quickstart", "delete", "-f", f)
    assert "kemu-quickstart.lab.duo" not in netns_list()
    assert not any(os.path.exists(f"/proc/{p}") and b"http.server" in open(pid_file.format(p), "rb").read() for p in procs)
    assert quickstart.curl("tools/toolbox", f"http://{ip}:80/hostname", check=False) == ""
    assert "lab/duo" not in quickstart.pods()


def test_deployment_scale_and_pod_replacement(quickstart: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def echo_pods() -> list[str]:
        return sorted(k for k in quickstart.pods() if k.startswith("web/echo-"))

    before = echo_pods()
    assert len(before) == 3
    with open(quickstart.file) as fh:
        import yaml

        dep = next(r for r in yaml.safe_load(fh)["spec"]["resources"] if r["kind"] == "Deployment")
    dep["spec"]["replicas"] = 5
    kemu("--cluster", "quickstart", "apply", "-f", write(tmp_path, "scale.yaml", yaml.safe_dump(dep)))
    after = echo_pods()
    assert len(after) == 5 and set(before) <= set(after)
    new = next(k for k in after if k not in before)
    assert quickstart.curl("tools/toolbox", f"http://{quickstart.ip(new)}:8080/hostname") == new.split("/")[1]
    # Deleting a pod of a Deployment: it goes, a replacement with a new name comes.
    victim = after[0]
    kemu("--cluster", "quickstart", "delete", "pod", victim.split("/")[1], "-n", "web")
    now = echo_pods()
    assert len(now) == 5 and victim not in now
    dep["spec"]["replicas"] = 3
    kemu("--cluster", "quickstart", "apply", "-f", write(tmp_path, "scale.yaml", yaml.safe_dump(dep)))
    assert len(echo_pods()) == 3
    assert len([n for n in netns_list() if n.startswith("kemu-quickstart.web.")]) == 3


def test_invalid_apply_changes_nothing(quickstart: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    before = quickstart.pods()
    bad = textwrap.dedent(
        """\
        apiVersion: v1
        kind: Pod
        metadata: {name: ok-pod, namespace: tools}
        spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: lost, namespace: nowhere}
        spec: {nodeName: node-9, containers: [{name: c}]}
        """
    )
    cp = kemu("--cluster", "quickstart", "apply", "-f", write(tmp_path, "bad.yaml", bad), check=False)
    assert cp.returncode == 2
    assert 'namespaces "nowhere" not found' in cp.stderr and "node 'node-9' does not exist" in cp.stderr
    immutable = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: toolbox, namespace: tools}\n"
        "spec: {containers: [{name: shell, ports: [{containerPort: 81}]}]}\n"
    )
    cp = kemu("--cluster", "quickstart", "apply", "-f", write(tmp_path, "imm.yaml", immutable), check=False)
    assert cp.returncode == 2 and "pod updates may not change fields" in cp.stderr
    assert quickstart.pods().keys() == before.keys()
    assert "kemu-quickstart.tools.ok-pod" not in netns_list()
    cp = kemu("--cluster", "quickstart", "label", "pod", "toolbox", "-n", "tools", "bad key=1", check=False)
    assert cp.returncode == 2


def test_readiness_probes(quickstart: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ready-now"
    pods = textwrap.dedent(
        f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: never, namespace: tools}}
        spec:
          containers:
            - name: c
              ports: [{{containerPort: 80}}]
              readinessProbe: {{httpGet: {{port: 8080, path: /}}, periodSeconds: 1}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: tcp, namespace: tools}}
        spec:
          containers:
            - name: c
              ports: [{{containerPort: 80, name: http}}]
              readinessProbe: {{tcpSocket: {{port: http}}, periodSeconds: 1}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: file, namespace: tools}}
        spec:
          containers:
            - name: c
              ports: [{{containerPort: 80}}]
              readinessProbe: {{exec: {{command: [test, -f, "{marker}"]}}, periodSeconds: 1}}
        """
    )
    f = write(tmp_path, "probes.yaml", pods)
    kemu("--cluster", "quickstart", "apply", "-f", f)
    wait_until(lambda: ready(quickstart, "tools/tcp"), 10, "tcpSocket probe")
    assert not ready(quickstart, "tools/file")
    marker.write_text("")
    wait_until(lambda: ready(quickstart, "tools/file"), 10, "exec probe after the file appears")
    marker.unlink()
    wait_until(lambda: not ready(quickstart, "tools/file"), 10, "exec probe failing again (failureThreshold 3)")
    assert not ready(quickstart, "tools/never")  # nothing listens on 8080
    kemu("--cluster", "quickstart", "delete", "-f", f)
