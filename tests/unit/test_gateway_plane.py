"""The gateway plane's pure parts: what the compilers read from the store, the proxies'
objects, and status times kept across compiles."""

from __future__ import annotations

import pytest

from emu.cluster.gateways import GATEWAY_CLASS, keep_transition_times, service_ports, world_of
from emu.cluster.store import Store
from emu.config.loader import load_manifest_texts
from emu.gateway import deploy
from emu.gateway.gateway_api import compile_gateways
from emu.model.objects import ClusterSpec, Meta, NodeDecl
from emu.model.services import Endpoint, EndpointConditions, EndpointPort, EndpointSlice, Service, ServicePort

pytestmark = pytest.mark.unit

MANIFESTS = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: a}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: kemu}
spec: {controllerName: kemu.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  gatewayClassName: kemu
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080, targetPort: 3000, appProtocol: kubernetes.io/h2c}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{name: web}]
  rules: [{backendRefs: [{name: api, port: 8080}]}]
"""


def test_world_from_the_store_has_objects_defaults_namespaces_and_generations() -> None:
    store = Store(ClusterSpec("t", nodes=(NodeDecl("n1"),)))
    store.apply(load_manifest_texts([("m", MANIFESTS)]), now=100.0)
    w = world_of(store, {}, {})
    gw = w.of("Gateway")[0]
    assert gw["metadata"]["namespace"] == "shop" and gw["metadata"]["generation"] == 1
    # The CRD's defaults, as the API server stores the object.
    assert gw["spec"]["listeners"][0]["allowedRoutes"]["namespaces"]["from"] == "Same"
    assert w.namespaces["shop"]["team"] == "a"
    assert w.created[("HTTPRoute", "shop", "r")] == 100.0
    (port,) = w.services[("shop", "api")]
    assert (port.port, port.app_protocol, port.endpoints) == (8080, "kubernetes.io/h2c", ())
    compiled = compile_gateways(w, now=100.0)
    assert "Gateway/shop/web" in compiled.proxies
    assert compiled.status[("HTTPRoute", "shop/r")]["parents"][0]["conditions"][0]["status"] == "True"
    # A spec change bumps the generation (observedGeneration follows it).
    store.apply(load_manifest_texts([("m", MANIFESTS.replace("port: 80,", "port: 81,"))]), now=101.0)
    assert world_of(store, {}, {}).of("Gateway")[0]["metadata"]["generation"] == 2


def test_service_ports_take_ready_endpoints_by_port_name() -> None:
    svc = Service(
        Meta("api", "shop"),
        selector={"app": "api"},
        ports=(ServicePort(8080, name="http", target_port="web"), ServicePort(9090, name="metrics")),
    )
    ready, unready = EndpointConditions(ready=True), EndpointConditions(ready=False, serving=True)
    sl = EndpointSlice(
        Meta("api-x", "shop", labels={"kubernetes.io/service-name": "api"}),
        endpoints=(Endpoint(("10.0.0.2",), ready, target_ref="shop/a"), Endpoint(("10.0.0.3",), unready, target_ref="shop/b")),
        ports=(EndpointPort(3000, name="http"), EndpointPort(9100, name="metrics")),
    )
    got = {
        p.port: [(e.ip, e.port, e.pod) for e in p.endpoints] for p in service_ports({"shop/api": svc}, {"shop/api": [sl]})[("shop", "api")]
    }
    assert got == {8080: [("10.0.0.2", 3000, "shop/a")], 9090: [("10.0.0.2", 9100, "shop/a")]}


def test_proxy_objects_are_a_deployment_and_a_loadbalancer_service_with_the_listener_ports() -> None:
    svc, dep = deploy.manifests(
        "Gateway/shop/web", ((80, "HTTP"), (443, "HTTPS")), "/run/kemu/t/gw/x/haproxy.cfg", "/run/kemu/t/gw", "kemu", labels={"a": "b"}
    )
    assert (svc["kind"], svc["spec"]["type"], dep["kind"]) == ("Service", "LoadBalancer", "Deployment")
    assert [p["port"] for p in svc["spec"]["ports"]] == [80, 443]
    assert svc["metadata"]["namespace"] == "shop" and svc["metadata"]["labels"]["a"] == "b"
    assert svc["metadata"]["labels"][deploy.GATEWAY_NAME_LABEL] == "web"
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["template"]["spec"]["containers"][0]["command"][0] == "haproxy"


def test_long_gateway_names_give_short_unique_object_names_and_sockets_that_fit() -> None:
    long_a, long_b = "g" * 253, "g" * 252 + "h"
    na, nb = deploy.placement(f"Gateway/ns/{long_a}")[1], deploy.placement(f"Gateway/ns/{long_b}")[1]
    assert na != nb and len(na) <= 30 and len(nb) <= 30
    pod = f"{na}-{'x' * 10}-{'y' * 5}"  # a Deployment's pod name
    cluster_dir = "/run/kemu/" + "c" * 12 + "/gw"  # the longest cluster name
    assert len(deploy.master_socket(cluster_dir, pod)) < 108  # sun_path


def test_transition_times_are_kept_while_a_condition_holds() -> None:
    def status(accepted: str, t: str) -> dict[str, object]:
        cond = {"type": "Accepted", "status": accepted, "reason": "Accepted", "lastTransitionTime": t}
        return {"conditions": [cond], "listeners": [{"name": "http", "conditions": [dict(cond)]}]}

    old = status("True", "T1")
    assert keep_transition_times(old, status("True", "T2"))["conditions"][0]["lastTransitionTime"] == "T1"
    assert keep_transition_times(old, status("True", "T2"))["listeners"][0]["conditions"][0]["lastTransitionTime"] == "T1"
    assert keep_transition_times(old, status("False", "T2"))["conditions"][0]["lastTransitionTime"] == "T2"


def test_the_default_gatewayclass_is_a_valid_object() -> None:
    import yaml

    parsed = load_manifest_texts([("gc", yaml.safe_dump(GATEWAY_CLASS))])
    assert [k for k, _ in parsed.order] == ["GatewayClass/kemu"]


def test_compiling_with_the_route_cache_equals_compiling_afresh() -> None:
    import copy
    import dataclasses

    from emu.gateway.gateway_api import RouteCache
    from tests.unit.gateway_tables import conformance_world

    world = conformance_world("httproute-matching-across-routes")
    cache = RouteCache()
    assert compile_gateways(world, now=1.0, cache=cache) == compile_gateways(world, now=1.0)
    # One route changed (a new spec object), the others reused from the cache.
    objects = copy.copy(world.objects)
    routes = [dict(r) for r in objects["HTTPRoute"]]
    routes[0]["spec"] = {**routes[0]["spec"], "hostnames": ["changed.example"]}
    objects["HTTPRoute"] = routes
    changed = dataclasses.replace(world, objects=objects)
    assert compile_gateways(changed, now=1.0, cache=cache).proxies == compile_gateways(changed, now=1.0).proxies
    assert compile_gateways(changed, now=1.0, cache=cache).status == compile_gateways(changed, now=1.0).status
