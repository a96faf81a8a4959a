"""The commands against a fake daemon: what each one asks for, and what it prints.

Each command module's `request` is replaced by a recorder that answers from a list of
objects in Kubernetes' JSON shape, so this checks the protocol the CLI speaks.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from emu.cli import change_cmd, describe_cmd, get_cmd, output, pod_cmd, resources
from emu.cli.main import main
from emu.config import registry
from emu.errors import KemuError, Problem, ValidationError

pytestmark = pytest.mark.unit

Obj = dict[str, Any]


def obj(kind: str, name: str, ns: str | None = "default", labels: dict[str, str] | None = None, **body: Any) -> Obj:
    info = registry.info(kind)
    meta: Obj = {"name": name, "labels": labels or {}}
    if ns and (info is None or info.namespaced):
        meta["namespace"] = ns
    return {"apiVersion": info.api_version if info else "v1", "kind": kind, "metadata": meta, **body}


def a_pod(name: str, ns: str = "default", labels: dict[str, str] | None = None, ready: bool = True) -> Obj:
    return obj(
        "Pod",
        name,
        ns,
        labels,
        spec={"containers": [{"name": "c"}], "nodeName": "node-1"},
        status={
            "phase": "Running",
            "podIP": "10.244.0.2",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "c", "ready": ready, "restartCount": 0}],
        },
    )


class FakeDaemon:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.objects: list[Obj] = []
        self.answers: dict[str, Any] = {}

    def __call__(self, cluster: str, op: str, timeout: float = 300.0, **args: Any) -> Any:
        assert cluster == "c"
        self.calls.append((op, args))
        if op in self.answers:
            a = self.answers[op]
            if isinstance(a, Exception):
                raise a
            return a(**args) if callable(a) else a
        if op == "get":
            return self.get(**args)
        raise KemuError(f"unexpected op {op}")

    def get(self, kind: str, name: str | None, namespace: str, all_namespaces: bool, selector: str | None) -> list[Obj]:
        want = dict(p.split("=", 1) for p in selector.split(",")) if selector else {}
        return [
            o
            for o in self.objects
            if o["kind"] == kind
            and (name is None or o["metadata"]["name"] == name)
            and (all_namespaces or o["metadata"].get("namespace", namespace) == namespace)
            and all(o["metadata"]["labels"].get(k) == v for k, v in want.items())
        ]

    def ops(self, op: str) -> list[dict[str, Any]]:
        return [a for o, a in self.calls if o == op]


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> FakeDaemon:
    d = FakeDaemon()
    for m in (resources, change_cmd, pod_cmd):  # the modules that ask the daemon themselves
        monkeypatch.setattr(m, "request", d)
    for m in (get_cmd, describe_cmd, change_cmd, pod_cmd):
        monkeypatch.setattr(m, "pick_cluster", lambda name: "c")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(output, "clock", lambda: 0.0)
    return d


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# --- get ---------------------------------------------------------------------------------------


def test_get_several_kinds(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.objects = [
        a_pod("a"),
        obj("Service", "b", spec={"type": "ClusterIP", "clusterIP": "10.96.0.2", "ports": [{"port": 80, "protocol": "TCP"}]}),
    ]
    code, out, err = run(capsys, "get", "pods,svc,deploy", "-n", "default")
    assert code == 0 and err == ""
    assert [(a["kind"], a["name"], a["namespace"], a["all_namespaces"], a["selector"]) for a in daemon.ops("get")] == [
        ("Pod", None, "default", False, None),
        ("Service", None, "default", False, None),
        ("Deployment", None, "default", False, None),
    ]
    assert out == (
        "NAME    READY   STATUS    RESTARTS   AGE\n"
        "pod/a   1/1     Running   0          <unknown>\n"
        "\n"
        "NAME        TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE\n"
        "service/b   ClusterIP   10.96.0.2    <none>        80/TCP    <unknown>\n"
    )


def test_get_kind_slash_name_and_missing_names(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.objects = [a_pod("a"), a_pod("b"), obj("Deployment", "web", spec={"replicas": 1}, status={})]
    code, out, err = run(capsys, "get", "pods", "a", "nope", "b")
    assert code == 1
    assert [a["name"] for a in daemon.ops("get")] == ["a", "nope", "b"]
    assert out.splitlines()[1:] == ["a      1/1     Running   0          <unknown>", "b      1/1     Running   0          <unknown>"]
    assert err == 'Error from server (NotFound): pods "nope" not found\n'
    code, out, err = run(capsys, "get", "deploy/web", "pod/a", "-o", "name")
    assert code == 0 and out == "deployment.apps/web\npod/a\n"
    code, out, err = run(capsys, "get", "deployments.apps/gone")
    assert code == 1 and out == "" and err == 'Error from server (NotFound): deployments.apps "gone" not found\n'


def test_get_json_shapes(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.objects = [a_pod("a"), obj("Service", "b", spec={"type": "ClusterIP"})]
    _, out, _ = run(capsys, "get", "pod", "a", "-o", "json")
    assert json.loads(out)["kind"] == "Pod"
    _, out, _ = run(capsys, "get", "pod/a", "svc/b", "-o", "json")
    doc = json.loads(out)
    assert doc["kind"] == "List" and [i["kind"] for i in doc["items"]] == ["Pod", "Service"]
    _, out, err = run(capsys, "get", "deploy", "-o", "yaml")
    assert out.startswith("apiVersion: v1\nkind: List\nitems: []") and err == ""


def test_get_empty_selector_and_namespaces(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.objects = [a_pod("a", "x", {"app": "web"}), a_pod("b", "y", {"app": "db"})]
    code, out, err = run(capsys, "get", "po", "-n", "z")
    assert (code, out, err) == (0, "", "No resources found in z namespace.\n")
    code, out, err = run(capsys, "get", "nodes")
    assert err == "No resources found\n"
    code, out, err = run(capsys, "get", "pods", "-A", "-l", "app=web", "--show-labels")
    assert daemon.ops("get")[-1] == {"kind": "Pod", "name": None, "namespace": "default", "all_namespaces": True, "selector": "app=web"}
    assert out.splitlines()[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"]
    assert out.splitlines()[1].split() == ["x", "a", "1/1", "Running", "0", "<unknown>", "app=web"]


def test_get_bad_input(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "get", "frobs")
    assert code == 2 and err == 'error: the server doesn\'t have a resource type "frobs" (try `kemu api-resources`)\n'
    code, _, err = run(capsys, "get", "pods", "a", "-l", "app=web")
    assert code == 2 and "name cannot be provided when a selector is specified" in err
    code, _, err = run(capsys, "get")
    assert code == 2 and "You must specify the type of resource to get" in err
    code, _, err = run(capsys, "get", "pods", "pod/a")
    assert code == 2 and "resource/name form" in err
    assert daemon.calls == []


# --- apply, delete, label ----------------------------------------------------------------------


def test_apply_sends_every_text(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "b.yaml").write_text("kind: B\n")
    (tmp_path / "m" / "a.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("kind: S\n"))
    daemon.answers["apply"] = {"results": ["deployment.apps/web created", "service/web unchanged"], "warnings": ["x is deprecated"]}
    code, out, err = run(capsys, "apply", "-f", "m", "-f", "-")
    assert code == 0
    assert daemon.ops("apply") == [{"docs": [["m/a.json", "{}"], ["m/b.yaml", "kind: B\n"], ["<stdin>", "kind: S\n"]]}]
    assert out == "deployment.apps/web created\nservice/web unchanged\n" and err == "Warning: x is deprecated\n"
    code, _, err = run(capsys, "apply", "-f", "missing.yaml")
    assert code == 2 and err == 'error: the path "missing.yaml" does not exist\n'
    code, _, err = run(capsys, "apply")
    assert code == 2


def test_delete_forms(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("kind: Pod\n")
    daemon.answers["delete_file"] = {"deleted": ['pod "x" deleted']}
    daemon.answers["delete"] = lambda **a: {"deleted": [f'{a["kind"].lower()} "{n}" deleted' for n in a["names"]]}
    code, out, _ = run(capsys, "delete", "-f", str(f), "--ignore-not-found")
    assert code == 0 and out == 'pod "x" deleted\n'
    assert daemon.ops("delete_file") == [{"docs": [[str(f), "kind: Pod\n"]], "ignore_not_found": True}]
    code, out, _ = run(capsys, "delete", "pod", "a", "b", "-n", "x", "--grace-period=0", "--wait=false")
    assert out == 'pod "a" deleted\npod "b" deleted\n'
    assert daemon.ops("delete")[-1] == {
        "kind": "Pod",
        "names": ["a", "b"],
        "namespace": "x",
        "all_namespaces": False,
        "selector": None,
        "all": False,
        "grace_period": 0,
        "wait": False,
        "ignore_not_found": False,
    }
    run(capsys, "delete", "pod/a", "svc/b")
    assert [(a["kind"], a["names"]) for a in daemon.ops("delete")[-2:]] == [("Pod", ["a"]), ("Service", ["b"])]
    run(capsys, "delete", "pods", "-l", "app=web")
    assert daemon.ops("delete")[-1]["selector"] == "app=web" and daemon.ops("delete")[-1]["names"] == []
    code, _, err = run(capsys, "delete", "netpol", "--all", "-A")
    last = daemon.ops("delete")[-1]
    assert (last["kind"], last["all"], last["all_namespaces"]) == ("NetworkPolicy", True, True)
    assert err == "No resources found\n"
    n = len(daemon.calls)
    for bad in (["delete", "pod"], ["delete", "pod", "a", "-l", "x=y"], ["delete", "pod", "a", "--all"], ["delete", "-f", str(f), "pod"]):
        assert run(capsys, *bad)[0] == 2, bad
    assert len(daemon.calls) == n


def test_label(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.answers["label"] = {"labeled": "ok"}
    code, out, _ = run(capsys, "label", "pod/a", "x=1", "--overwrite", "y-", "-n", "web")
    assert code == 0 and out == "pod/a labeled\n"
    assert daemon.ops("label") == [{"kind": "Pod", "name": "a", "namespace": "web", "set": {"x": "1"}, "remove": ["y"], "overwrite": True}]
    _, out, _ = run(capsys, "label", "deploy", "web", "tier-")
    assert out == "deployment.apps/web unlabeled\n"


# --- logs, scale, rollout, describe, api-resources -------------------------------------------------


def test_logs(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    daemon.answers["logs"] = {"text": "one\ntwo\nthree\n"}
    code, out, _ = run(capsys, "logs", "a", "-n", "x", "--tail", "2", "-c", "web")
    assert code == 0 and out == "two\nthree\n"
    assert daemon.ops("logs") == [{"pod": "a", "namespace": "x", "container": "web"}]
    # deploy/NAME: the deployment's selector picks the pods; a ready one is used.
    daemon.objects = [
        obj("Deployment", "web", spec={"selector": {"matchLabels": {"app": "web"}}}),
        a_pod("web-a", labels={"app": "web"}, ready=False),
        a_pod("web-b", labels={"app": "web"}),
        a_pod("other"),
    ]
    code, out, err = run(capsys, "logs", "deploy/web")
    assert daemon.ops("logs")[-1] == {"pod": "web-b", "namespace": "default", "container": None}
    assert err == "Found 2 pods, using pod/web-b\n"
    assert daemon.ops("get")[-1]["selector"] == "app=web"


def test_logs_follow_prints_only_what_is_new(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = iter(["a\n", "a\nb\n", "a\nb\n", "b\nc\n"])
    daemon.answers["logs"] = lambda **_: {"text": next(texts)}
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        if len(sleeps) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(pod_cmd.time, "sleep", sleep)
    code, out, _ = run(capsys, "logs", "-f", "a")
    assert code == 130 and out == "a\nb\nc\n" and sleeps == [0.5] * 4


def test_daemon_errors_pass_through(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.answers["logs"] = KemuError("a container name must be specified for pod p, choose one of: [a b]")
    code, _, err = run(capsys, "logs", "p")
    assert code == 1 and err == "error: a container name must be specified for pod p, choose one of: [a b]\n"
    # What client.request raises for a daemon's ValidationError: its text and exit code.
    remote = KemuError(str(ValidationError([Problem("<command line>", "", "container x is not valid for pod p")])))
    remote.exit_code = 2
    daemon.answers["logs"] = remote
    assert run(capsys, "logs", "p") == (2, "", "error: container x is not valid for pod p\n")
    daemon.answers["logs"] = KemuError("error: already prefixed")
    assert run(capsys, "logs", "p")[2] == "error: already prefixed\n"


def test_scale_and_rollout(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.answers["scale"] = lambda **a: {"result": f"deployment.apps/{a['name']} scaled"}
    code, out, _ = run(capsys, "scale", "deploy/web", "--replicas", "3", "-n", "x")
    assert code == 0 and out == "deployment.apps/web scaled\n"
    assert daemon.ops("scale") == [{"kind": "Deployment", "name": "web", "namespace": "x", "replicas": 3}]
    run(capsys, "scale", "sts", "db", "--replicas=0")
    assert daemon.ops("scale")[-1]["kind"] == "StatefulSet"
    assert run(capsys, "scale", "deploy", "--replicas", "1")[0] == 2

    daemon.answers["rollout_status"] = {"message": 'deployment "web" successfully rolled out', "done": True}
    code, out, _ = run(capsys, "rollout", "status", "deployment", "web", "--timeout", "1m30s")
    assert code == 0 and out == 'deployment "web" successfully rolled out\n'
    assert daemon.ops("rollout_status") == [{"kind": "Deployment", "name": "web", "namespace": "default", "rollout_timeout": 90.0}]
    daemon.answers["rollout_status"] = {"message": "error: timed out waiting for the condition", "done": False}
    assert run(capsys, "rollout", "status", "deploy/web") == (1, "", "error: timed out waiting for the condition\n")
    assert daemon.ops("rollout_status")[-1]["rollout_timeout"] == 0.0  # kubectl's default: no deadline
    daemon.answers["rollout_restart"] = {"result": "deployment.apps/web restarted"}
    code, out, _ = run(capsys, "rollout", "restart", "deploy/web")
    assert out == "deployment.apps/web restarted\n" and daemon.ops("rollout_restart") == [
        {"kind": "Deployment", "name": "web", "namespace": "default"}
    ]


def test_describe_command(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    svc = obj(
        "Service", "web", spec={"type": "ClusterIP", "clusterIP": "10.96.0.2", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    )
    sl = obj(
        "EndpointSlice",
        "web-x",
        labels={"kubernetes.io/service-name": "web"},
        addressType="IPv4",
        ports=[{"name": "http", "port": 8080}],
        endpoints=[{"addresses": ["10.244.0.2"], "conditions": {"ready": True}}],
    )
    ev = obj(
        "Event",
        "e",
        type="Normal",
        reason="Synced",
        involvedObject={"kind": "Service", "name": "web"},
        message="ok",
        source={"component": "x"},
    )
    daemon.objects = [svc, sl, ev, obj("ConfigMap", "web-config", data={"a": "1"}), a_pod("web-1")]
    code, out, _ = run(capsys, "describe", "svc", "web")
    assert code == 0 and "Endpoints:         10.244.0.2:8080" in out and "  Normal  Synced  <unknown>  x     ok" in out
    assert {
        "kind": "EndpointSlice",
        "name": None,
        "namespace": "default",
        "all_namespaces": False,
        "selector": "kubernetes.io/service-name=web",
    } in daemon.ops("get")
    assert {"kind": "Event", "name": None, "namespace": "default", "all_namespaces": False, "selector": None} in daemon.ops("get")
    code, out, _ = run(capsys, "describe", "cm", "web-con")  # kubectl's name-prefix fallback
    assert code == 0 and out.startswith("apiVersion: v1\nkind: ConfigMap\n")
    daemon.answers["get"] = lambda **a: [] if a["kind"] == "Event" else daemon.get(**a)
    code, out, _ = run(capsys, "describe", "pods")
    assert code == 0 and out.startswith("Name:         web-1\n") and re.search(r"\nEvents: +<none>\n$", out) is not None
    code, _, err = run(capsys, "describe", "pod", "zzz")
    assert code == 1 and err == 'Error from server (NotFound): pods "zzz" not found\n'


def test_api_resources_needs_no_root_nor_daemon(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, out, _ = run(capsys, "api-resources")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert any(ln.split() == ["deployments", "deploy", "apps/v1", "true", "Deployment"] for ln in lines)
    _, out, _ = run(capsys, "api-resources", "--namespaced=false", "-o", "name", "--api-group", "")
    assert "nodes" in out.split() and "pods" not in out.split() and "deployments.apps" not in out.split()
    assert run(capsys, "get", "pods")[0] == 1  # everything else needs root


# --- exec ----------------------------------------------------------------------------------------


class Execd(BaseException):
    """The fake execvp's way out: like a real exec, nothing after it runs (not even the
    CLI's handler of unexpected errors)."""


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    env = tmp_path / "web.env"
    env.write_text("A=1\n")
    data: dict[str, Any] = {
        "nodes": {"node-1": "kemu-c.node-1"},
        "hosts": {},
        "pods": {
            "tools/toolbox": {"netns": "kemu-c.tools.toolbox", "hostname": "toolbox", "containers": ["shell"]},
            "default/web-b": {
                "netns": "kemu-c.default.web-b",
                "hostname": "web-b",
                "containers": ["web", "side"],
                "env": {"web": str(env)},
            },
        },
    }
    monkeypatch.setattr(pod_cmd.Record, "load", staticmethod(lambda name: type("R", (), {"data": data})()))
    seen: dict[str, Any] = {}

    def execv(path: str, argv: list[str]) -> None:
        seen["execv"] = argv
        raise Execd

    def execvp(path: str, argv: list[str]) -> None:
        seen["execvp"] = argv
        raise Execd

    monkeypatch.setattr(pod_cmd.os, "execv", execv)
    monkeypatch.setattr(pod_cmd.os, "execvp", execvp)
    monkeypatch.setattr(pod_cmd.netns, "enter_process", lambda ns, host: seen.setdefault("entered", (ns, host)))
    return seen


def test_exec_in_process_without_env_file(daemon: FakeDaemon, state: dict[str, Any]) -> None:
    with pytest.raises(Execd):
        main(["exec", "toolbox", "-n", "tools", "-c", "shell", "--", "hostname", "-f"])
    assert state == {"entered": ("kemu-c.tools.toolbox", "toolbox"), "execvp": ["hostname", "-f"]}


def test_exec_with_env_file_and_deploy(daemon: FakeDaemon, state: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    daemon.objects = [obj("Deployment", "web", spec={"selector": {"matchLabels": {"app": "web"}}}), a_pod("web-b", labels={"app": "web"})]
    with pytest.raises(Execd):
        main(["exec", "deploy/web", "--", "env"])
    argv = state["execv"]
    assert argv[:3] == [sys.executable, "-m", "emu.dataplane.enter"]
    assert argv[3:] == ["kemu-c.default.web-b", "web-b", "--env-file", argv[6], "--", "env"] and argv[6].endswith("web.env")
    assert 'Defaulted container "web" out of: web, side' in capsys.readouterr().err


def test_exec_errors(daemon: FakeDaemon, state: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exec", "-n", "z", "nope", "--", "true"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["exec", "pod/web-b", "-c", "nope", "--", "true"]) == 2
    assert main(["exec", "toolbox", "-n", "tools"]) == 2
    with pytest.raises(Execd):
        main(["exec", "pod/web-b", "-c", "side", "--", "true"])  # no env file for `side`: in-process
    assert state["execvp"] == ["true"]


@pytest.mark.parametrize(
    "old, new, want",
    [
        ("a\n", "a\nb\n", "b\n"),
        ("a\nb\n", "a\nb\n", ""),
        ("a\nb\n", "b\nc\n", "c\n"),  # the daemon dropped the oldest line
        ("a\nb\n", "x\n", "x\n"),  # nothing shared: a new log
        ("", "a\n", "a\n"),
    ],
)
def test_follow_overlap(old: str, new: str, want: str) -> None:
    assert pod_cmd.new_part(old, new) == want
