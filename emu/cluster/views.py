"""Objects in Kubernetes' own shape (what `kemu get -o json|yaml` prints, as kubectl)."""

from __future__ import annotations

import copy
import time
from typing import Any

from emu.cluster.node_lifecycle import UNREACHABLE
from emu.cluster.pod_state import PodState
from emu.cluster.runtime import Cluster
from emu.config import registry
from emu.config.loader import WORKLOAD_KINDS
from emu.controllers import scheduler
from emu.controllers.service_ranges import port_key
from emu.model.objects import Container, Namespace, Taint, Unstructured, Workload
from emu.model.policy import NetworkPolicy, Peer, PolicyRule
from emu.model.selectors import LabelSelector
from emu.model.services import EndpointSlice, Service, ServiceStatus


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _container(c: Container) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name}
    if c.command:
        out["command"] = list(c.command)
    if c.args:
        out["args"] = list(c.args)
    if c.ports:
        out["ports"] = [
            {"containerPort": p.container_port, "protocol": p.protocol, **({"name": p.name} if p.name else {})} for p in c.ports
        ]
    if c.readiness_probe:
        r = c.readiness_probe
        handler: dict[str, Any] = (
            {"httpGet": {"path": r.path, "port": r.port}} if r.handler == "httpGet"
            else {"tcpSocket": {"port": r.port}} if r.handler == "tcpSocket"
            else {"exec": {"command": list(r.command)}}
        )  # fmt: skip
        out["readinessProbe"] = {**handler, "periodSeconds": r.period_seconds, "initialDelaySeconds": r.initial_delay_seconds}
    return out


def _selector(s: LabelSelector) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if s.match_labels:
        out["matchLabels"] = dict(s.match_labels)
    if s.match_expressions:
        out["matchExpressions"] = [
            {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})} for r in s.match_expressions
        ]
    return out


def _meta(meta: Any, created: float | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": meta.name}
    if meta.namespace:
        out["namespace"] = meta.namespace
    if meta.labels:
        out["labels"] = dict(meta.labels)
    if meta.annotations:
        out["annotations"] = dict(meta.annotations)
    if created:
        out["creationTimestamp"] = _ts(created)
    out.update(extra)
    return out


def _container_status(st: PodState, name: str, init: bool) -> dict[str, Any]:
    cs = st.containers.get(name)
    out: dict[str, Any] = {"name": name, "ready": bool(st.ready.get(name)) if not init else bool(cs and cs.exit_code == 0)}
    if cs is None:
        return {**out, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
    out["restartCount"] = cs.restarts
    if cs.state == "running":
        out["state"] = {"running": {"startedAt": _ts(cs.started_at or st.started)}}
    elif cs.state == "terminated":
        out["state"] = {"terminated": {"exitCode": cs.exit_code or 0, "reason": cs.reason}}
    else:
        out["state"] = {"waiting": {"reason": cs.reason or "ContainerCreating"}}
    if not init:
        out["started"] = cs.state == "running" and cs.started
    return out


def pod_view(c: Cluster, st: PodState) -> dict[str, Any]:
    pod = st.pod
    extra: dict[str, Any] = {}
    if pod.owner:
        kind, _, owner = pod.owner.partition("/")
        info = registry.info(kind)
        api = info.api_version if info is not None else "apps/v1"
        extra["ownerReferences"] = [{"apiVersion": api, "kind": kind, "name": owner, "controller": True, "blockOwnerDeletion": True}]
    if st.terminating:
        extra["deletionTimestamp"] = _ts(time.time())
    meta = _meta(pod.meta, c.store.created.get(("Pod", pod.key)) or st.started, **extra)
    ready = st.is_ready
    status: dict[str, Any] = {
        "phase": st.phase,
        "conditions": [
            {"type": "PodScheduled", "status": "True" if st.node else "False"},
            {"type": "Initialized", "status": "True" if st.init_done >= len(pod.spec.init_containers) else "False"},
            {"type": "Ready", "status": "True" if ready else "False"},
            {"type": "ContainersReady", "status": "True" if ready else "False"},
        ],
        "containerStatuses": [_container_status(st, x.name, False) for x in pod.spec.containers],
    }
    if pod.spec.init_containers:
        status["initContainerStatuses"] = [_container_status(st, x.name, True) for x in pod.spec.init_containers]
    if not st.node:
        status["conditions"][0]["reason"] = "Unschedulable"
    if st.ip:
        status["podIP"] = st.ip
        status["podIPs"] = [{"ip": st.ip}]
        status["hostIP"] = c.plan.node(st.node).ip
        status["hostIPs"] = [{"ip": status["hostIP"]}]
    if st.started:
        status["startTime"] = _ts(st.started)
    spec: dict[str, Any] = copy.deepcopy(pod.spec.raw) if pod.spec.raw else {"containers": [_container(x) for x in pod.spec.containers]}
    if st.node:
        spec["nodeName"] = st.node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def namespace_view(c: Cluster, ns: Namespace) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _meta(ns.meta, c.store.created.get(("Namespace", ns.meta.name)) or c.started),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def workload_view(c: Cluster, w: Workload) -> dict[str, Any]:
    raw = copy.deepcopy(w.raw) if w.raw else {"spec": {"replicas": w.replicas, "selector": _selector(w.selector)}}
    body = {k: v for k, v in raw.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    spec = body.setdefault("spec", {})
    if w.kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        spec["replicas"] = w.replicas
    if "selector" not in spec:
        spec["selector"] = _selector(w.selector)  # generated (a Job's controller-uid)
    status = c.store.workload_status(w.kind, w.key)
    extra: dict[str, Any] = {}
    if w.owner:
        kind, _, owner = w.owner.partition("/")
        extra["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": kind, "name": owner, "controller": True}]
    meta = _meta(w.meta, c.store.created.get((w.kind, w.key)), **extra)
    return {"apiVersion": registry.BY_KIND[w.kind].api_version, "kind": w.kind, "metadata": meta, **body, "status": status}


def unstructured_view(c: Cluster, o: Unstructured) -> dict[str, Any]:
    raw = copy.deepcopy(o.raw)
    raw["metadata"] = {**(raw.get("metadata") or {}), **_meta(o.meta, c.store.created.get((o.kind, o.key)))}
    if (o.kind, o.key) in c.store.generation:
        raw["metadata"]["generation"] = c.store.generation[(o.kind, o.key)]
    if c.gateways is not None and (o.kind, o.key) in c.gateways.status:
        # Gateway API and Ingress objects: the status their controller (the gateway plane) wrote.
        raw["status"] = copy.deepcopy(c.gateways.status[(o.kind, o.key)])
    return raw


def node_view(c: Cluster, name: str) -> dict[str, Any]:
    n = c.plan.node(name)
    decl = next(d for d in c.store.nodes if d.name == name)  # labels as `kemu label node` left them
    labels = scheduler.node_labels(n.name, decl.labels)
    taints = decl.taints
    planes = c.syncer.status(name) if c.syncer is not None else {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": n.name,
            "labels": labels,
            "creationTimestamp": _ts(c.started),
            "annotations": {"kemu.io/netns": c.network.nodes[name].name if name in c.network.nodes else ""},
        },
        "spec": {
            "podCIDR": n.pod_cidr,
            "podCIDRs": [n.pod_cidr],
            **({"taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in taints]} if taints else {}),
        },
        "status": {
            "addresses": [{"type": "InternalIP", "address": n.ip}, {"type": "Hostname", "address": n.name}],
            "conditions": [_ready_condition(taints), *_plane_conditions(planes)],
            # kemu's own: each per-node plane's last sync (kube-proxy's sync metrics).
            "dataplane": planes,
        },
    }


def _ready_condition(taints: tuple[Taint, ...]) -> dict[str, Any]:
    # The node lifecycle controller (emu/cluster/node_lifecycle.py) taints a cut-off node
    # unreachable and its Ready condition goes Unknown, as when a kubelet stops posting.
    if any(t.key == UNREACHABLE for t in taints):
        return {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}
    return {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}


def _plane_conditions(planes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A condition per plane that is failing, as a node problem detector would add one."""
    return [
        {
            "type": f"{plane.capitalize()}SyncFailed",
            "status": "True",
            "reason": "SyncFailed",
            "message": f"{st['error']} (retrying in {st['retryInSeconds']}s)",
        }
        for plane, st in planes.items()
        if st.get("error")
    ]


def host_view(c: Cluster, name: str) -> dict[str, Any]:
    h = next(x for x in c.plan.hosts if x.name == name)
    return {
        "apiVersion": "kemu/v1alpha1",
        "kind": "ExternalHost",
        "metadata": {
            "name": h.name,
            "annotations": {"kemu.io/netns": c.network.hosts[name].name if name in c.network.hosts else ""},
        },
        "spec": {},
        "status": {"addresses": [{"type": "ExternalIP", "address": h.ip}]},
    }


def _visible(meta: Any, namespace: str | None, selector: LabelSelector | None) -> bool:
    return (namespace is None or meta.namespace == namespace) and (selector is None or selector.matches(meta.labels))


def objects(c: Cluster, kind: str, namespace: str | None, name: str | None, selector: LabelSelector | None = None) -> list[dict[str, Any]]:
    """Objects of `kind` (canonical), in `namespace` (None: all), optionally one by name."""
    with c.lock:
        if kind == "Pod":
            items = [pod_view(c, st) for st in list(c.pods.values()) if _visible(st.pod.meta, namespace, selector)]
        elif kind == "Namespace":
            items = [namespace_view(c, n) for n in c.store.namespaces.values() if _visible(n.meta, None, selector)]
        elif kind in WORKLOAD_KINDS:
            items = [workload_view(c, w) for w in c.store.list(kind, namespace) if _visible(w.meta, None, selector)]
        elif kind == "Node":
            items = [node_view(c, n.name) for n in c.plan.nodes]
            items = [i for i in items if selector is None or selector.matches(i["metadata"]["labels"])]
        elif kind == "Host":
            items = [host_view(c, h.name) for h in c.plan.hosts]
        elif kind == "NetworkPolicy":
            items = [policy_view(x) for x in c.store.network_policies.values() if _visible(x.meta, namespace, selector)]
        elif kind == "Service":
            items = [service_view(c, x) for x in c.store.services.values() if _visible(x.meta, namespace, selector)]
        elif kind == "EndpointSlice":
            managed = c.services.slices if c.services is not None else {}
            items = [
                endpointslice_view(sl, sl.key not in c.store.endpoint_slices)
                for slices in managed.values()
                for sl in slices
                if _visible(sl.meta, namespace, selector)
            ]
        else:
            items = [unstructured_view(c, o) for o in c.store.list(kind, namespace) if _visible(o.meta, None, selector)]
    if name is not None:
        items = [i for i in items if i["metadata"]["name"] == name]
    return sorted(items, key=lambda i: (i["metadata"].get("namespace", ""), i["metadata"]["name"]))


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def service_view(c: Cluster, svc: Service) -> dict[str, Any]:
    st = c.store.service_status.get(svc.key, ServiceStatus())
    ports = []
    for i, p in enumerate(svc.ports):
        d: dict[str, Any] = {"port": p.port, "protocol": p.protocol, "targetPort": p.target_port or p.port}
        if p.name:
            d["name"] = p.name
        np = st.node_ports.get(port_key(svc, i))
        if np:
            d["nodePort"] = np
        ports.append(d)
    spec: dict[str, Any] = {"type": svc.type, "ports": ports, "sessionAffinity": svc.session_affinity}
    if svc.type == "ExternalName":
        spec = {"type": svc.type, "externalName": svc.external_name, "ports": ports}
    else:
        spec["clusterIP"] = "None" if svc.headless else st.cluster_ip
        spec["clusterIPs"] = [spec["clusterIP"]]
        spec["internalTrafficPolicy"] = svc.internal_traffic_policy
    if svc.selector is not None:
        spec["selector"] = dict(svc.selector)
    if svc.type in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = svc.external_traffic_policy
    if st.health_check_node_port:
        spec["healthCheckNodePort"] = st.health_check_node_port
    if svc.external_ips:
        spec["externalIPs"] = list(svc.external_ips)
    if svc.session_affinity == "ClientIP":
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": svc.affinity_timeout}}
    if svc.load_balancer_source_ranges:
        spec["loadBalancerSourceRanges"] = list(svc.load_balancer_source_ranges)
    if svc.publish_not_ready_addresses:
        spec["publishNotReadyAddresses"] = True
    status: dict[str, Any] = {"loadBalancer": {}}
    if svc.type == "LoadBalancer" and st.lb_ip:
        status["loadBalancer"] = {"ingress": [{"ip": st.lb_ip, "ipMode": "VIP"}]}
    meta = _meta(svc.meta, c.store.created.get(("Service", svc.key)) or c.started)
    if svc.type == "LoadBalancer" and c.services is not None and c.services.lb_nodes.get(st.lb_ip):
        meta["annotations"] = {**meta.get("annotations", {}), "kemu.io/announced-by": c.services.lb_nodes[st.lb_ip]}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec, "status": status}


def endpointslice_view(sl: EndpointSlice, managed: bool) -> dict[str, Any]:
    eps = []
    for e in sl.endpoints:
        d: dict[str, Any] = {
            "addresses": list(e.addresses),
            "conditions": {"ready": e.conditions.ready, "serving": e.conditions.serving, "terminating": e.conditions.terminating},
        }
        if e.node_name:
            d["nodeName"] = e.node_name
        if e.zone:
            d["zone"] = e.zone
        if e.target_ref:
            ns, name = e.target_ref.split("/", 1)
            d["targetRef"] = {"kind": "Pod", "namespace": ns, "name": name}
        eps.append(d)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": sl.meta.name, "namespace": sl.meta.namespace, "labels": dict(sl.meta.labels)},
        "addressType": sl.address_type,
        "endpoints": eps,
        "ports": [{"name": p.name, "port": p.port, "protocol": p.protocol} for p in sl.ports],
    }


def _peer(p: Peer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.pod_selector is not None:
        out["podSelector"] = _selector(p.pod_selector)
    if p.namespace_selector is not None:
        out["namespaceSelector"] = _selector(p.namespace_selector)
    if p.ip_block is not None:
        out["ipBlock"] = {"cidr": p.ip_block.cidr, **({"except": list(p.ip_block.excepts)} if p.ip_block.excepts else {})}
    return out


def _rule(r: PolicyRule, key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.peers:
        out[key] = [_peer(p) for p in r.peers]
    if r.ports:
        out["ports"] = [
            {"protocol": p.protocol, **({"port": p.port} if p.port is not None else {}), **({"endPort": p.end_port} if p.end_port else {})}
            for p in r.ports
        ]
    return out


def policy_view(p: NetworkPolicy) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": _selector(p.pod_selector), "policyTypes": list(p.policy_types)}
    if p.ingress:
        spec["ingress"] = [_rule(r, "from") for r in p.ingress]
    if p.egress:
        spec["egress"] = [_rule(r, "to") for r in p.egress]
    meta = {"name": p.meta.name, "namespace": p.meta.namespace, "labels": dict(p.meta.labels)}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec}
