"""`kemu describe`: kubectl's describers and its tabwriter alignment (golden text)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from emu.cli import output
from emu.cli.describe import describe_deployment, describe_node, describe_other, describe_pod, describe_service
from emu.cli.describe_sections import events_for
from emu.cli.tabwriter import tabwriter

pytestmark = pytest.mark.unit

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 +0000
Obj = dict[str, Any]


def ts(ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - ago))


@pytest.fixture(autouse=True)
def utc_now(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(output, "clock", lambda: NOW)
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_tabwriter_blocks() -> None:
    # Cells align within runs of lines that have a cell in that column; a line without one ends the run.
    assert tabwriter("a:\t1\nlonger:\t2\nbreak\nx:\t3\ny\tz\tw") == "a:       1\nlonger:  2\nbreak\nx:  3\ny   z  w"


POD_NAME = "web-6b7c8d9f5-x2k4p"


def a_pod() -> Obj:
    web = {
        "name": "web",
        "image": "registry.k8s.io/e2e-test-images/agnhost:2.40",
        "args": ["netexec", "--http-port=8080"],
        "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http"}, {"containerPort": 8081, "protocol": "UDP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2},
        "env": [
            {"name": "MODE", "value": "fast"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}},
        ],
    }
    side = {"name": "side", "image": "busybox", "command": ["sh", "-c", "sleep 1d"], "livenessProbe": {"exec": {"command": ["true"]}}}
    conditions = [{"type": t, "status": "True"} for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")]
    last = {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": ts(290), "finishedAt": ts(101)}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": POD_NAME,
            "namespace": "default",
            "labels": {"app": "web", "pod-template-hash": "6b7c8d9f5"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-6b7c8d9f5", "controller": True}],
            "creationTimestamp": ts(300),
        },
        "spec": {"containers": [web, side], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.2",
            "podIPs": [{"ip": "10.244.0.2"}],
            "hostIP": "172.30.0.2",
            "startTime": ts(300),
            "conditions": conditions,
            "containerStatuses": [
                {"name": "web", "ready": True, "restartCount": 0, "state": {"running": {"startedAt": ts(290)}}},
                {"name": "side", "ready": True, "restartCount": 1, "state": {"running": {"startedAt": ts(100)}}, "lastState": last},
            ],
        },
    }


POD_TEXT = """\
Name:         web-6b7c8d9f5-x2k4p
Namespace:    default
Priority:     0
Node:         node-1/172.30.0.2
Start Time:   Tue, 14 Nov 2023 22:08:20 +0000
Labels:       app=web
              pod-template-hash=6b7c8d9f5
Annotations:  <none>
Status:       Running
IP:           10.244.0.2
IPs:
  IP:           10.244.0.2
Controlled By:  ReplicaSet/web-6b7c8d9f5
Containers:
  web:
    Image:       registry.k8s.io/e2e-test-images/agnhost:2.40
    Ports:       8080/TCP, 8081/UDP
    Host Ports:  0/TCP, 0/UDP
    Args:
      netexec
      --http-port=8080
    State:          Running
      Started:      Tue, 14 Nov 2023 22:08:30 +0000
    Ready:          True
    Restart Count:  0
    Readiness:      http-get http://:8080/healthz delay=0s timeout=1s period=2s #success=1 #failure=3
    Environment:
      MODE:    fast
      POD_IP:  10.244.0.2 (v1:status.podIP)
      TOKEN:   <set to the key 't' in secret 'tok'>  Optional: false
    Mounts:    <none>
  side:
    Image:      busybox
    Port:       <none>
    Host Port:  <none>
    Command:
      sh
      -c
      sleep 1d
    State:          Running
      Started:      Tue, 14 Nov 2023 22:11:40 +0000
    Last State:     Terminated
      Reason:       Error
      Exit Code:    137
      Started:      Tue, 14 Nov 2023 22:08:30 +0000
      Finished:     Tue, 14 Nov 2023 22:11:39 +0000
    Ready:          True
    Restart Count:  1
    Liveness:       exec [true] delay=0s timeout=1s period=10s #success=1 #failure=3
    Environment:    <none>
    Mounts:         <none>
Conditions:
  Type              Status
  Initialized       True
  Ready             True
  ContainersReady   True
  PodScheduled      True
Volumes:            <none>
QoS Class:          BestEffort
Node-Selectors:     <none>
Tolerations:        <none>
Events:
  Type     Reason     Age                    From               Message
  ----     ------     ----                   ----               -------
  Normal   Scheduled  5m                     default-scheduler  Successfully assigned default/web to node-1
  Warning  Unhealthy  3m20s (x3 over 4m40s)  kubelet            Readiness probe failed"""


def test_describe_pod() -> None:
    pod = a_pod()
    scheduled = {
        "type": "Normal",
        "reason": "Scheduled",
        "involvedObject": {"kind": "Pod", "name": POD_NAME, "namespace": "default"},
        "message": "Successfully assigned default/web to node-1",
        "firstTimestamp": ts(300),
        "lastTimestamp": ts(300),
        "source": {"component": "default-scheduler"},
    }
    unhealthy = {
        "type": "Warning",
        "reason": "Unhealthy",
        "involvedObject": {"kind": "Pod", "name": POD_NAME},
        "message": "Readiness probe failed",
        "firstTimestamp": ts(280),
        "lastTimestamp": ts(200),
        "count": 3,
        "source": {"component": "kubelet"},
    }
    others = [
        {**scheduled, "involvedObject": {"kind": "Pod", "name": "other"}},
        {**scheduled, "involvedObject": {"kind": "Service", "name": POD_NAME}},
    ]
    events = events_for([unhealthy, *others, scheduled], pod)
    assert describe_pod(pod, events) == POD_TEXT


def test_describe_pod_tolerates_a_minimal_object() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "x"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Pending"},
    }
    text = describe_pod(pod, [])
    assert "Node:         <none>" in text and "IPs:          <none>" in text and text.endswith("Events:           <none>")


SERVICE_TEXT = """\
Name:                        web-lb
Namespace:                   default
Labels:                      <none>
Annotations:                 kemu.io/announced-by: node-2
Selector:                    app=web
Type:                        LoadBalancer
IP Family Policy:            SingleStack
IP Families:                 IPv4
IP:                          10.96.0.4
IPs:                         10.96.0.4
LoadBalancer Ingress:        172.30.0.192 (VIP)
Port:                        http  80/TCP
TargetPort:                  http/TCP
NodePort:                    http  30000/TCP
Endpoints:                   10.244.0.2:8080,10.244.1.2:8080
Port:                        <unset>  53/UDP
TargetPort:                  53/UDP
NodePort:                    <unset>  30001/UDP
Endpoints:                   10.244.0.2:53,10.244.1.2:53
Session Affinity:            None
External Traffic Policy:     Local
Internal Traffic Policy:     Cluster
HealthCheck NodePort:        32000
LoadBalancer Source Ranges:  172.30.0.4/32
Events:                      <none>"""


def a_service() -> Obj:
    ports = [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30000},
        {"port": 53, "targetPort": 53, "protocol": "UDP", "nodePort": 30001},
    ]
    spec = {
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.4",
        "clusterIPs": ["10.96.0.4"],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "selector": {"app": "web"},
        "ports": ports,
        "sessionAffinity": "None",
        "externalTrafficPolicy": "Local",
        "internalTrafficPolicy": "Cluster",
        "healthCheckNodePort": 32000,
        "loadBalancerSourceRanges": ["172.30.0.4/32"],
    }
    return {
        "kind": "Service",
        "metadata": {"name": "web-lb", "namespace": "default", "annotations": {"kemu.io/announced-by": "node-2"}},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": "172.30.0.192", "ipMode": "VIP"}]}},
    }


def a_slice() -> Obj:
    return {
        "metadata": {"name": "web-lb-abc", "labels": {"kubernetes.io/service-name": "web-lb"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "", "port": 53, "protocol": "UDP"}],
        "endpoints": [
            {"addresses": ["10.244.0.2"], "conditions": {"ready": True}},
            {"addresses": ["10.244.1.2"], "conditions": {"ready": True}},
            {"addresses": ["10.244.2.2"], "conditions": {"ready": False}},
        ],
    }


def test_describe_service() -> None:
    assert describe_service(a_service(), [a_slice()], []) == SERVICE_TEXT
    bare = describe_service({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}, [], None)
    assert "Endpoints:         <none>" in bare and "Events" not in bare


DEPLOYMENT_TEXT = """\
Name:                   web
Namespace:              default
CreationTimestamp:      Tue, 14 Nov 2023 22:03:20 +0000
Labels:                 app=web
Annotations:            <none>
Selector:               app=web
Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 25% max surge
Pod Template:
  Labels:  app=web
  Containers:
   web:
    Image:         agnhost
    Port:          8080/TCP
    Host Port:     0/TCP
    Environment:   <none>
    Mounts:        <none>
  Volumes:         <none>
  Node-Selectors:  <none>
  Tolerations:     <none>
Conditions:
  Type           Status  Reason
  ----           ------  ------
  Available      True    MinimumReplicasAvailable
  Progressing    True    NewReplicaSetAvailable
OldReplicaSets:  <none>
NewReplicaSet:   web-6b7c8d9f5 (3/3 replicas created)
Events:          <none>"""


def test_describe_deployment() -> None:
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "agnhost", "ports": [{"containerPort": 8080}]}]},
    }
    conditions = [
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
    ]
    dep = {
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ts(600), "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3, "conditions": conditions},
    }
    rs = {"metadata": {"name": "web-6b7c8d9f5", "annotations": {"deployment.kubernetes.io/revision": "1"}}, "spec": {"replicas": 3}}
    rs["status"] = {"replicas": 3}
    assert describe_deployment(dep, [rs], []) == DEPLOYMENT_TEXT


NODE_TEXT = """\
Name:               node-1
Roles:              <none>
Labels:             kubernetes.io/hostname=node-1
                    kubernetes.io/os=linux
Annotations:        kemu.io/netns: kemu-q.node-1
CreationTimestamp:  Tue, 14 Nov 2023 22:03:20 +0000
Taints:             <none>
Unschedulable:      false
Conditions:
  Type    Status  LastHeartbeatTime                 LastTransitionTime                Reason         Message
  ----    ------  -----------------                 ------------------                ------         -------
  Ready   True    Tue, 14 Nov 2023 22:13:15 +0000   Tue, 14 Nov 2023 22:03:20 +0000   KubeletReady   kemu node is ready
Addresses:
  InternalIP:         172.30.0.2
  Hostname:           node-1
PodCIDR:              10.244.0.0/24
PodCIDRs:             10.244.0.0/24
Non-terminated Pods:  (1 in total)
  Namespace           Name                 IP          Age
  ---------           ----                 --          ---
  default             web-6b7c8d9f5-x2k4p  10.244.0.2  5m
Events:               <none>"""


def test_describe_node() -> None:
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "kemu node is ready",
        "lastHeartbeatTime": ts(5),
        "lastTransitionTime": ts(600),
    }
    node = {
        "kind": "Node",
        "metadata": {
            "name": "node-1",
            "creationTimestamp": ts(600),
            "labels": {"kubernetes.io/hostname": "node-1", "kubernetes.io/os": "linux"},
            "annotations": {"kemu.io/netns": "kemu-q.node-1"},
        },
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "conditions": [ready],
            "addresses": [{"type": "InternalIP", "address": "172.30.0.2"}, {"type": "Hostname", "address": "node-1"}],
        },
    }
    done = {**a_pod(), "status": {"phase": "Succeeded"}}
    assert describe_node(node, [a_pod(), done], []) == NODE_TEXT


def test_other_kinds_as_yaml() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}}
    assert describe_other(cm) == "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: '1'"
