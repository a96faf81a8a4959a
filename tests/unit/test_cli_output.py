"""kubectl's column layouts, from objects in Kubernetes' JSON shape (golden tables)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from emu.cli.output import render_many
from emu.cli.output_columns import pod_status
from emu.cli.output_format import human_duration, selector_string

pytestmark = pytest.mark.unit

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
Obj = dict[str, Any]


def ts(ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - ago))


def meta(name: str, ago: float = 45, ns: str | None = "default", **kw: Any) -> Obj:
    m: Obj = {"name": name, "creationTimestamp": ts(ago), **kw}
    if ns:
        m["namespace"] = ns
    return m


def pod(name: str, ago: float = 300, ready: bool = True, ip: str = "10.244.0.2") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, ago, labels={"app": "web"}),
        "spec": {"containers": [{"name": "c", "image": "agnhost"}], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}] if ip else [],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "c", "ready": ready, "restartCount": 0, "state": {"running": {"startedAt": ts(ago)}}}],
        },
    }


def table(kind: str, items: list[Obj], output: str | None = None, all_ns: bool = False, **kw: Any) -> str:
    return render_many([(kind, items)], output, all_ns, now=NOW, **kw)


@pytest.mark.parametrize(
    "secs, want",
    [(0, "0s"), (-1, "0s"), (-5, "<invalid>"), (119, "119s"), (120, "2m"), (192, "3m12s"), (600, "10m"), (7200, "120m"),
     (3 * 3600 + 300, "3h5m"), (10 * 3600, "10h"), (2 * 86400 + 4 * 3600, "2d4h"), (30 * 86400, "30d"), (800 * 86400, "2y70d")],
)  # fmt: skip
def test_ages_as_kubectl(secs: float, want: str) -> None:
    assert human_duration(secs) == want


def test_pod_statuses() -> None:
    crash = pod("web-2", ago=3 * 86400 + 4 * 3600, ready=False)
    crash["status"]["containerStatuses"][0] = {
        "name": "c",
        "ready": False,
        "restartCount": 5,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ts(90)}},
    }
    init = pod("init", ip="")
    init["status"]["phase"] = "Pending"
    init["spec"]["initContainers"] = [{"name": "i1"}, {"name": "i2"}]
    init["status"]["initContainerStatuses"] = [{"name": "i1", "state": {"running": {}}}, {"name": "i2", "state": {"waiting": {}}}]
    init["status"]["containerStatuses"] = [{"name": "c", "ready": False, "state": {"waiting": {"reason": "PodInitializing"}}}]
    gone = pod("gone")
    gone["metadata"]["deletionTimestamp"] = ts(1)
    done = pod("done")
    done["status"]["phase"] = "Succeeded"
    done["status"]["containerStatuses"] = [{"name": "c", "ready": False, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]
    assert table("Pod", [pod("web-1"), crash, init, gone, done]) == (
        "NAME    READY   STATUS             RESTARTS      AGE\n"
        "web-1   1/1     Running            0             5m\n"
        "web-2   0/1     CrashLoopBackOff   5 (90s ago)   3d4h\n"
        "init    0/1     Init:0/2           0             5m\n"
        "gone    1/1     Terminating        0             5m\n"
        "done    0/1     Completed          0             5m"
    )
    failed_init = pod("x")
    failed_init["spec"]["initContainers"] = [{"name": "i1"}]
    failed_init["status"]["initContainerStatuses"] = [{"name": "i1", "state": {"terminated": {"exitCode": 2}}}]
    assert pod_status(failed_init)[0] == "Init:ExitCode:2"
    bare = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Succeeded"}}
    assert pod_status(bare)[:3] == ("Completed", 0, 1)


def test_pods_wide_all_namespaces() -> None:
    init = pod("init", ip="")
    assert table("Pod", [pod("web-1"), init], "wide", True) == (
        "NAMESPACE   NAME    READY   STATUS    RESTARTS   AGE   IP           NODE     NOMINATED NODE   READINESS GATES\n"
        "default     web-1   1/1     Running   0          5m    10.244.0.2   node-1   <none>           <none>\n"
        "default     init    1/1     Running   0          5m    <none>       node-1   <none>           <none>"
    )


def svc(name: str, typ: str, **spec: Any) -> Obj:
    return {
        "kind": "Service",
        "metadata": meta(name, 7200),
        "spec": {"type": typ, "clusterIP": "10.96.0.2", "selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}], **spec},
        "status": {"loadBalancer": {}},
    }


def test_services_wide() -> None:
    lb = svc("web-lb", "LoadBalancer", ports=[{"port": 80, "protocol": "TCP", "nodePort": 30000}])
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "172.30.0.192"}]}}
    items = [
        svc("web", "ClusterIP", ports=[{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]),
        svc("web-np", "NodePort", ports=[{"port": 80, "protocol": "TCP", "nodePort": 30080}], externalIPs=["1.2.3.4"]),
        lb,
        svc("pending", "LoadBalancer", ports=[{"port": 80, "protocol": "TCP", "nodePort": 30001}]),
        svc("ext", "ExternalName", externalName="example.com", clusterIP=None, ports=[]),
        svc("headless", "ClusterIP", clusterIP="None", selector={}),
    ]
    assert table("Service", items, "wide") == (
        "NAME       TYPE           CLUSTER-IP   EXTERNAL-IP    PORT(S)         AGE    SELECTOR\n"
        "web        ClusterIP      10.96.0.2    <none>         80/TCP,53/UDP   120m   app=web\n"
        "web-np     NodePort       10.96.0.2    1.2.3.4        80:30080/TCP    120m   app=web\n"
        "web-lb     LoadBalancer   10.96.0.2    172.30.0.192   80:30000/TCP    120m   app=web\n"
        "pending    LoadBalancer   10.96.0.2    <pending>      80:30001/TCP    120m   app=web\n"
        "ext        ExternalName   <none>       example.com    <none>          120m   app=web\n"
        "headless   ClusterIP      None         <none>         80/TCP          120m   <none>"
    )


TEMPLATE = {"spec": {"containers": [{"name": "web", "image": "agnhost:2.40"}, {"name": "side", "image": "busybox"}]}}


def test_workload_kinds() -> None:
    sel = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]}
    dep = {
        "metadata": meta("web"),
        "spec": {"replicas": 3, "selector": sel, "template": TEMPLATE},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert table("Deployment", [dep]) == "NAME   READY   UP-TO-DATE   AVAILABLE   AGE\nweb    2/3     3            2           45s"
    assert table("Deployment", [dep], "wide").splitlines()[1].split()[5:] == [
        "web,side",
        "agnhost:2.40,busybox",
        "app=web,tier",
        "in",
        "(a,b)",
    ]
    rs = {"metadata": meta("web-6b7c8d9f5"), "spec": {"replicas": 3}, "status": {"replicas": 3, "readyReplicas": 2}}
    assert table("ReplicaSet", [rs]) == "NAME            DESIRED   CURRENT   READY   AGE\nweb-6b7c8d9f5   3         3         2       45s"
    sts = {"metadata": meta("db"), "spec": {"replicas": 2, "template": TEMPLATE}, "status": {"readyReplicas": 1}}
    assert table("StatefulSet", [sts]) == "NAME   READY   AGE\ndb     1/2     45s"
    ds_status = dict.fromkeys(
        ("desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled", "numberAvailable"), 3
    )
    ds = {"metadata": meta("proxy"), "spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}}, "status": ds_status}
    assert table("DaemonSet", [ds]) == (
        "NAME    DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR            AGE\n"
        "proxy   3         3         3       3            3           kubernetes.io/os=linux   45s"
    )
    done = {"type": "Complete", "status": "True"}
    job = {
        "metadata": meta("pi"),
        "spec": {"completions": 1},
        "status": {"succeeded": 1, "startTime": ts(40), "completionTime": ts(28), "conditions": [done]},
    }
    par = {"metadata": meta("par"), "spec": {"parallelism": 3}, "status": {"succeeded": 0, "startTime": ts(400)}}
    assert table("Job", [job, par]) == (
        "NAME   STATUS     COMPLETIONS   DURATION   AGE\npi     Complete   1/1           12s        45s\npar    Running    0/1 of 3      6m40s      45s"
    )


def test_nodes_and_cluster_kinds() -> None:
    n1 = {
        "metadata": meta("node-1", 600, ns=None, labels={"node-role.kubernetes.io/control-plane": ""}),
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "172.30.0.2"}],
            "nodeInfo": {"kubeletVersion": "v1.30.0"},
        },
    }
    n2 = {
        "metadata": meta("node-2", 600, ns=None),
        "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "Ready", "status": "False"}], "addresses": [{"type": "InternalIP", "address": "172.30.0.3"}]},
    }
    assert table("Node", [n1, n2], all_ns=True) == (
        "NAME     STATUS                        ROLES           AGE   VERSION\n"
        "node-1   Ready                         control-plane   10m   v1.30.0\n"
        "node-2   NotReady,SchedulingDisabled   <none>          10m"
    )
    assert table("Node", [n1], "wide").splitlines()[0].split()[5:] == [
        "INTERNAL-IP",
        "EXTERNAL-IP",
        "OS-IMAGE",
        "KERNEL-VERSION",
        "CONTAINER-RUNTIME",
    ]
    ns = {"metadata": meta("x", 9 * 86400, ns=None), "status": {"phase": "Active"}}
    assert table("Namespace", [ns], all_ns=True) == "NAME   STATUS   AGE\nx      Active   9d"
    host = {
        "kind": "ExternalHost",
        "metadata": {"name": "client"},
        "status": {"addresses": [{"type": "ExternalIP", "address": "172.30.0.4"}]},
    }
    assert table("Host", [host]) == "NAME     EXTERNAL-IP\nclient   172.30.0.4"


def test_config_and_network_kinds() -> None:
    assert table("ConfigMap", [{"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}}]) == "NAME   DATA   AGE\ncfg    2      45s"
    sec = {"metadata": meta("tok"), "type": "kubernetes.io/tls", "data": {"tls.crt": "x", "tls.key": "y"}}
    assert table("Secret", [sec]) == "NAME   TYPE                DATA   AGE\ntok    kubernetes.io/tls   2      45s"
    assert table("ServiceAccount", [{"metadata": meta("default")}]) == "NAME      SECRETS   AGE\ndefault   0         45s"
    es = {
        "metadata": meta("web-abcde"),
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [f"10.244.0.{i}"]} for i in range(2, 7)],
    }
    empty = {"metadata": meta("empty-xyz"), "addressType": "IPv4", "ports": [], "endpoints": []}
    assert table("EndpointSlice", [es, empty]) == (
        "NAME        ADDRESSTYPE   PORTS     ENDPOINTS                                      AGE\n"
        "web-abcde   IPv4          8080      10.244.0.2,10.244.0.3,10.244.0.4 + 2 more...   45s\n"
        "empty-xyz   IPv4          <unset>   <unset>                                        45s"
    )
    pols = [
        {"metadata": meta("deny"), "spec": {"podSelector": {}}},
        {"metadata": meta("allow-a"), "spec": {"podSelector": {"matchLabels": {"pod": "a"}}}},
    ]
    assert table("NetworkPolicy", pols) == "NAME      POD-SELECTOR   AGE\ndeny      <none>         45s\nallow-a   pod=a          45s"
    ing = {
        "metadata": meta("web"),
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}], "tls": [{}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "172.30.0.200"}]}},
    }
    assert table("Ingress", [ing]) == (
        "NAME   CLASS   HOSTS                         ADDRESS        PORTS     AGE\nweb    nginx   a.example.com,b.example.com   172.30.0.200   80, 443   45s"
    )
    assert table("Lease", [{"metadata": meta("x")}]) == "NAME   AGE\nx      45s"


def test_events() -> None:
    ev = {
        "metadata": meta("web-1.17a"),
        "type": "Normal",
        "reason": "Scheduled",
        "involvedObject": {"kind": "Pod", "name": "web-1"},
        "message": "Successfully assigned default/web-1 to node-1",
        "lastTimestamp": ts(30),
        "firstTimestamp": ts(30),
    }
    back = {**ev, "type": "Warning", "reason": "BackOff", "involvedObject": {"kind": "Pod", "name": "web-2"}, "message": "Back-off"}
    back |= {"lastTimestamp": ts(10), "firstTimestamp": ts(600), "count": 12}
    assert table("Event", [ev, back], all_ns=True) == (
        "NAMESPACE   LAST SEEN   TYPE      REASON      OBJECT      MESSAGE\n"
        "default     30s         Normal    Scheduled   pod/web-1   Successfully assigned default/web-1 to node-1\n"
        "default     10s         Warning   BackOff     pod/web-2   Back-off"
    )


def test_several_kinds_labels_and_headers() -> None:
    groups = [("Pod", [pod("web-1")]), ("Deployment", []), ("Service", [svc("web", "ClusterIP")])]
    assert render_many(groups, None, False, now=NOW, show_labels=True) == (
        "NAME        READY   STATUS    RESTARTS   AGE   LABELS\n"
        "pod/web-1   1/1     Running   0          5m    app=web\n"
        "\n"
        "NAME          TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE    LABELS\n"
        "service/web   ClusterIP   10.96.0.2    <none>        80/TCP    120m   <none>"
    )
    dep = {"metadata": meta("web"), "spec": {"replicas": 1}, "status": {}}
    assert render_many([("Deployment", [dep]), ("ReplicaSet", [])], "name", False) == "deployment.apps/web"
    assert render_many([("Pod", [pod("a"), pod("b")])], None, False, now=NOW, no_headers=True) == (
        "a   1/1   Running   0   5m\nb   1/1   Running   0   5m"
    )
    doc = json.loads(render_many(groups, "json", False))
    assert doc["kind"] == "List" and [i["metadata"]["name"] for i in doc["items"]] == ["web-1", "web"]
    assert json.loads(render_many([("Pod", [pod("a")])], "json", False, single=True))["kind"] == "Pod"
    assert render_many([("Pod", [pod("a")])], "yaml", False).startswith("apiVersion: v1\nkind: List\n")


def test_selector_strings() -> None:
    sel = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "c", "operator": "NotIn", "values": ["y", "x"]},
            {"key": "d", "operator": "Exists"},
            {"key": "e", "operator": "DoesNotExist"},
        ],
    }
    assert selector_string(sel) == "a=1,b=2,c notin (x,y),d,!e"
    assert selector_string({}) == ""
