"""A small cluster's Services and endpoints, shared by the tracer and golden tests."""

from __future__ import annotations

from emu.config.loader import Collector, parse_manifest_docs
from emu.controllers.endpointslices import slices_for
from emu.controllers.service_alloc import allocate
from emu.model.objects import ClusterSpec, Container, ContainerPort, NodeDecl, PodSpec, PodView
from emu.proxy.nft_render import NftState, ServiceRender
from emu.proxy.plan import ProxyPlan, compile_plan

SPEC = ClusterSpec("t", nodes=(NodeDecl("n1"), NodeDecl("n2")))
NODE_IPS = {"n1": "172.30.0.2", "n2": "172.30.0.3"}
PORTS = (ContainerPort(8080, "TCP", "http"), ContainerPort(5353, "UDP", "dns"))


def _pod(name: str, ip: str, node: str, app: str, ready: bool = True, terminating: bool = False) -> PodView:
    return PodView("default", name, {"app": app}, ip, node, PodSpec((Container("c", ports=PORTS),)), ready, terminating)


PODS = [
    _pod("web-1", "10.244.0.2", "n1", "web"),
    _pod("web-2", "10.244.1.2", "n2", "web"),
    _pod("web-3", "10.244.1.3", "n2", "web"),
    _pod("solo", "10.244.1.4", "n2", "solo"),
    _pod("old-1", "10.244.0.5", "n1", "old", ready=True, terminating=True),
    _pod("old-2", "10.244.1.5", "n2", "old", ready=False),
]

SERVICES = [
    {
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
            ],
        },
    },
    {
        "metadata": {"name": "np"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]},
    },
    {
        "metadata": {"name": "local"},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "selector": {"app": "solo"},
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30081}],
        },
    },
    {
        "metadata": {"name": "fw"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web"},
            "loadBalancerSourceRanges": ["172.30.0.100/32"],
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30082}],
        },
    },
    {
        "metadata": {"name": "itp"},
        "spec": {"internalTrafficPolicy": "Local", "selector": {"app": "solo"}, "ports": [{"port": 80, "targetPort": 8080}]},
    },
    {
        "metadata": {"name": "sticky"},
        "spec": {
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    },
    {"metadata": {"name": "empty"}, "spec": {"type": "NodePort", "selector": {"app": "none"}, "ports": [{"port": 80, "nodePort": 30083}]}},
    {"metadata": {"name": "old"}, "spec": {"selector": {"app": "old"}, "ports": [{"port": 80, "targetPort": 8080}]}},
    {
        "metadata": {"name": "ext"},
        "spec": {"externalIPs": ["192.0.2.10"], "selector": {"app": "web"}, "ports": [{"port": 8000, "targetPort": 8080}]},
    },
    {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}},
]


def services():  # type: ignore[no-untyped-def]
    c = Collector()
    docs = [("f.yaml", f"[{i}]", {"apiVersion": "v1", "kind": "Service", **s}) for i, s in enumerate(SERVICES)]
    parsed = parse_manifest_docs(docs, c)
    assert not c.problems, c.problems
    return list(parsed.manifests.services)


def plans() -> dict[str, ProxyPlan]:
    svcs = services()
    statuses = allocate(SPEC, svcs, {})
    slices = {s.key: slices_for(s, PODS, {}) for s in svcs}
    return {n: compile_plan(n, (ip,), "10.244.0.0/16", svcs, statuses, slices) for n, ip in NODE_IPS.items()}


def vip(plan: ProxyPlan, name: str) -> str:
    return next(sp.cluster_ip for sp in plan.services if sp.id.startswith(f"default/{name}/"))


def lb(plan: ProxyPlan, name: str) -> str:
    return next(sp.lb_ips[0] for sp in plan.services if sp.id.startswith(f"default/{name}/"))


def update_script(plan: ProxyPlan, old: dict[str, ServiceRender], new: dict[str, ServiceRender]) -> str:
    """The proxier's incremental transaction from `old` to `new` renders ("" if nothing changed)."""
    changed: dict[str, ServiceRender | None] = {sid: r for sid, r in new.items() if old.get(sid) != r}
    changed |= {sid: None for sid in old if sid not in new}
    return NftState(plan, old).update(changed)
