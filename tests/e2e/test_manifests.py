"""Manifests as projects publish them, applied unchanged to a running cluster, with real
traffic: a Helm-style Deployment with its ConfigMap/Secret/ServiceAccount, a StatefulSet
behind a headless Service, DaemonSets (host network, hostPort), a Job, a gRPC-probed
stand-in; rolling updates under load, identities that survive deletion, namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.e2e.helpers import Running, kemu, start, stop, wait_until

pytestmark = pytest.mark.e2e

CORPUS = os.path.join(REPO, "tests", "data", "manifests")
TOPOLOGY = {
    "apiVersion": "kemu/v1alpha1",
    "kind": "Cluster",
    "metadata": {"name": "apps"},
    "spec": {
        "nodes": [
            {"name": "node-1"},
            {"name": "node-2"},
            # Only pods that tolerate `dedicated=web` land here (and DaemonSets that tolerate everything).
            {"name": "node-3", "taints": [{"key": "dedicated", "value": "web", "effect": "NoSchedule"}]},
        ],
        "externalHosts": [{"name": "client"}],
        "resources": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "toolbox", "labels": {"app": "toolbox"}},
                "spec": {"containers": [{"name": "shell", "image": "busybox", "command": ["sleep", "100000"]}]},
            }
        ],
    },
}


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("apps") / "apps.yaml"
    path.write_text(yaml.safe_dump(TOPOLOGY))
    r = start(str(path), "apps")
    try:
        kemu("--cluster", "apps", "apply", "-f", CORPUS)
        yield r
    finally:
        stop(r)


def get(c: Running, *args: str) -> Any:
    return json.loads(kemu("--cluster", c.name, "get", *args, "-o", "json").stdout)


def pods(c: Running, ns: str, selector: str) -> list[dict[str, Any]]:
    return list(get(c, "pods", "-n", ns, "-l", selector)["items"])


def ready(p: dict[str, Any]) -> bool:
    return any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"]["conditions"])


def wait_ready(c: Running, ns: str, selector: str, n: int, timeout: float = 60) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        found = [p for p in pods(c, ns, selector) if "deletionTimestamp" not in p["metadata"]]
        return found if len(found) == n and all(ready(p) for p in found) else None

    return wait_until(check, timeout, f"{n} ready pods {selector} in {ns}")  # type: ignore[no-any-return]


def test_corpus_validates_and_says_what_has_no_effect(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = dict(TOPOLOGY)
    doc["spec"] = {**TOPOLOGY["spec"], "include": sorted(os.path.join(CORPUS, f) for f in os.listdir(CORPUS))}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = kemu("validate", str(path))
    assert "ok: cluster apps" in out.stdout
    assert "no effect in kemu" in out.stdout + out.stderr
    assert "securityContext" in out.stdout + out.stderr


def test_helm_style_deployment_comes_ready_with_its_environment(apps: Running) -> None:
    web = wait_ready(apps, "shop", "app.kubernetes.io/name=web", 2)
    # Tolerating dedicated=web is allowed, not required: the pods spread over all nodes they fit.
    assert {p["spec"]["nodeName"] for p in web} <= {"node-1", "node-2", "node-3"}
    name = web[0]["metadata"]["name"]
    env = apps.exec(f"shop/{name}", "sh", "-c", "echo $POD_NAME $GREETING $PASSWORD $LOG_LEVEL $POD_IP").stdout.split()
    assert env == [name, "hello", "s3cret", "info", web[0]["status"]["podIP"]]
    init = web[0]["status"]["initContainerStatuses"][0]
    assert init["name"] == "wait-for-config" and init["state"]["terminated"]["exitCode"] == 0
    # A Service port name of upstream's style (a DNS label longer than 15 characters).
    svc = get(apps, "svc", "web", "-n", "shop")
    assert svc["spec"]["ports"][0]["name"] == "service-port-tcp-80"
    got = apps.curl("default/toolbox", f"http://{svc['spec']['clusterIP']}/hostname")
    assert got in {p["metadata"]["name"] for p in web}


def test_every_kind_is_stored_and_round_trips(apps: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for kind in ("cm", "secret", "sa", "pdb", "hpa"):
        items = get(apps, kind, "-n", "shop")["items"]
        assert items, kind
    secret = get(apps, "secret", "web-secret", "-n", "shop")
    assert secret["data"]["password"] == "czNjcmV0"  # stringData comes back base64 in data
    assert "stringData" not in secret
    out = kemu("--cluster", "apps", "get", "deploy", "web", "-n", "shop", "-o", "yaml").stdout
    f = tmp_path / "web.yaml"
    f.write_text(out)
    again = kemu("--cluster", "apps", "apply", "-f", str(f))
    assert "deployment.apps/web unchanged" in again.stdout


def test_statefulset_identities_survive_deletion(apps: Running) -> None:
    db = wait_ready(apps, "shop", "app=db", 3, timeout=90)
    assert sorted(p["metadata"]["name"] for p in db) == ["db-0", "db-1", "db-2"]
    assert apps.exec("shop/db-1", "hostname").stdout.strip() == "db-1"
    old_ip = next(p for p in db if p["metadata"]["name"] == "db-1")["status"]["podIP"]
    kemu("--cluster", "apps", "delete", "pod", "db-1", "-n", "shop")
    back = wait_ready(apps, "shop", "app=db", 3, timeout=60)
    assert sorted(p["metadata"]["name"] for p in back) == ["db-0", "db-1", "db-2"]
    assert apps.exec("shop/db-1", "hostname").stdout.strip() == "db-1"
    assert old_ip  # the IP may change, as in Kubernetes; the name and hostname stay


def test_daemonsets_land_per_node_and_host_ports_are_reached_from_outside(apps: Running) -> None:
    agents = wait_ready(apps, "kube-system", "k8s-app=node-agent", 3)
    nodes = {n["metadata"]["name"]: n for n in get(apps, "nodes")["items"]}
    assert sorted(p["spec"]["nodeName"] for p in agents) == ["node-1", "node-2", "node-3"]
    for p in agents:
        node_ip = apps.node_ip(p["spec"]["nodeName"])
        assert p["status"]["podIP"] == node_ip  # host network: the node's address
        assert apps.curl("host/client", f"http://{node_ip}:9100/hostname").strip() == p["metadata"]["name"]
    edge = wait_ready(apps, "shop", "app=edge", 2)  # node-3's taint is not tolerated
    assert sorted(p["spec"]["nodeName"] for p in edge) == ["node-1", "node-2"]
    assert len(nodes) == 3
    for p in edge:
        node_ip = apps.node_ip(p["spec"]["nodeName"])
        assert apps.curl("host/client", f"http://{node_ip}:8088/hostname").strip() == p["metadata"]["name"]


def test_job_runs_to_completion(apps: Running) -> None:
    def done() -> dict[str, Any] | None:
        job = get(apps, "job", "migrate", "-n", "shop")
        return job if job["status"].get("succeeded") == 2 else None

    job = wait_until(done, 60, "job migrate to succeed twice")
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"].get("conditions", []))
    ran = [p for p in pods(apps, "shop", "job-name=migrate") if p["status"]["phase"] == "Succeeded"]
    assert len(ran) == 2
    logs = kemu("--cluster", "apps", "logs", ran[0]["metadata"]["name"], "-n", "shop").stdout
    assert "migrating" in logs


def test_grpc_probed_stand_in_becomes_ready(apps: Running) -> None:
    (cart,) = wait_ready(apps, "shop", "app=cart", 1)
    assert cart["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] == 7070


def test_microservices_demo_comes_ready_and_is_reached_through_its_load_balancer(apps: Running) -> None:
    deploys = get(apps, "deploy", "-n", "boutique")["items"]
    assert len(deploys) == 11

    def all_ready() -> bool:
        items = get(apps, "deploy", "-n", "boutique")["items"]
        return all(d["status"].get("readyReplicas", 0) == d["spec"]["replicas"] for d in items)

    wait_until(all_ready, 60, "every boutique Deployment ready")
    lb = get(apps, "svc", "frontend-external", "-n", "boutique")["status"]["loadBalancer"]["ingress"][0]["ip"]
    front = {p["metadata"]["name"] for p in pods(apps, "boutique", "app=frontend")}
    assert apps.curl("host/client", f"http://{lb}/hostname").strip() in front


def test_rolling_update_under_steady_requests_loses_none(apps: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    before = {p["metadata"]["name"] for p in wait_ready(apps, "shop", "app.kubernetes.io/name=web", 2)}
    ip = get(apps, "svc", "web", "-n", "shop")["spec"]["clusterIP"]
    # Steady requests from a pod, counted: every answer's status code on one line each.
    loop = (
        f"end=$(($(date +%s)+40)); while [ $(date +%s) -lt $end ]; do "
        f"curl -s -m 2 -o /dev/null -w '%{{http_code}}\\n' http://{ip}/hostname || echo fail; "
        f"[ -e /tmp/kemu-rollout-done ] && break; done"
    )
    client = subprocess.Popen(
        [sys.executable, "-m", "emu.cli.main", "--cluster", "apps", "exec", "toolbox", "--", "sh", "-c", loop],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        time.sleep(1)  # let the client reach a steady state before the change
        with open(os.path.join(CORPUS, "helm-web.yaml")) as f:
            docs = list(yaml.safe_load_all(f))
        for d in docs:
            if d["kind"] == "Deployment":
                d["spec"]["template"]["metadata"]["annotations"]["checksum/config"] = "changed"
        f2 = tmp_path / "web-v2.yaml"
        f2.write_text(yaml.safe_dump_all(docs))
        kemu("--cluster", "apps", "apply", "-f", str(f2))
        status = kemu("--cluster", "apps", "rollout", "status", "deployment", "web", "-n", "shop", "--timeout", "60")
        assert "successfully rolled out" in status.stdout
        after = {p["metadata"]["name"] for p in wait_ready(apps, "shop", "app.kubernetes.io/name=web", 2)}
        assert not after & before  # every pod replaced
        time.sleep(1)
    finally:
        open("/tmp/kemu-rollout-done", "w").close()
        out, _ = client.communicate(timeout=60)
        os.unlink("/tmp/kemu-rollout-done")
    codes = out.split()
    assert len(codes) > 20, codes
    assert codes.count("200") == len(codes), f"{len(codes) - codes.count('200')} of {len(codes)} requests failed: {set(codes)}"


def test_liveness_failure_restarts_the_container_and_scale_works(apps: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "flaky.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "flaky", "namespace": "shop"},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "echo started; sleep 100000"],
                            "livenessProbe": {"exec": {"command": ["sh", "-c", "exit 1"]}, "periodSeconds": 1, "failureThreshold": 2},
                        }
                    ]
                },
            }
        )
    )
    kemu("--cluster", "apps", "apply", "-f", str(f))

    def restarted() -> int:
        p = get(apps, "pod", "flaky", "-n", "shop")
        return int(p["status"]["containerStatuses"][0]["restartCount"])

    wait_until(lambda: restarted() >= 2, 30, "two liveness restarts")
    assert kemu("--cluster", "apps", "logs", "flaky", "-n", "shop").stdout.count("started") >= 2
    table = kemu("--cluster", "apps", "get", "pod", "flaky", "-n", "shop").stdout
    assert table.splitlines()[0].split()[:4] == ["NAME", "READY", "STATUS", "RESTARTS"]
    described = kemu("--cluster", "apps", "describe", "pod", "flaky", "-n", "shop").stdout
    assert "Restart Count:" in described and "Liveness:" in described
    kemu("--cluster", "apps", "delete", "pod", "flaky", "-n", "shop", "--grace-period", "0")
    kemu("--cluster", "apps", "scale", "deployment", "cart", "-n", "shop", "--replicas", "3")
    assert len(wait_ready(apps, "shop", "app=cart", 3)) == 3
    kemu("--cluster", "apps", "scale", "deploy/cart", "-n", "shop", "--replicas", "1")
    assert len(wait_ready(apps, "shop", "app=cart", 1)) == 1


def test_missing_namespace_is_refused_and_namespace_delete_cascades(apps: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "svc.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: nowhere}\nspec: {selector: {a: b}, ports: [{port: 80}]}\n")
    r = kemu("--cluster", "apps", "apply", "-f", str(f), check=False)
    assert r.returncode == 2 and 'namespaces "nowhere" not found' in r.stderr
    kemu("--cluster", "apps", "delete", "namespace", "shop")
    assert not get(apps, "pods", "-n", "shop")["items"]
    assert not get(apps, "cm", "-n", "shop")["items"]
    assert "shop" not in {n["metadata"]["name"] for n in get(apps, "ns")["items"]}
