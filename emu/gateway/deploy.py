"""How a proxy is deployed, as Gateway implementations deploy their data planes: a
Deployment of proxy pods behind a Service of type LoadBalancer, in the Gateway's own
namespace (NGINX Gateway Fabric's layout; the shared Ingress proxy lives in kube-system,
as ingress-nginx's controller lives in its own namespace). The LoadBalancer IP becomes
the Gateway's status.addresses (the Ingress's status.loadBalancer).

The objects are ordinary manifests applied through the store, so `kemu get`, policies,
scheduling and the service proxy treat them like any others.
"""

from __future__ import annotations

from typing import Any

from emu.digest import fit, short_hash

MANAGED_BY = "kemu.dev/gateway-controller"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"  # GEP-1762's labels
GATEWAY_CLASS_LABEL = "gateway.networking.k8s.io/gateway-class-name"
PROXY_LABEL = "kemu.dev/proxy"  # the proxy name, hashed to a label value
INGRESS_NAMESPACE = "kube-system"
INGRESS_OBJECT = "kemu-ingress"
HEALTH_PORT = 10254  # the proxy's /healthz (ingress-nginx's health port)
IMAGE = "docker.io/library/haproxy:2.6"  # what runs is Debian's haproxy, for real


def _dns_label(name: str, limit: int = 63) -> str:
    """A Service/Deployment name within a DNS label: long Gateway names (up to 253
    characters) are cut and given a hash, as Envoy Gateway names its objects."""
    return fit(name, limit)


def proxy_label(proxy: str) -> str:
    return short_hash(proxy, length=16)


def placement(proxy: str, class_name: str = "") -> tuple[str, str]:
    """(namespace, object name) of a proxy's Deployment and Service."""
    kind, _, rest = proxy.partition("/")
    if kind == "Gateway":
        ns, _, name = rest.partition("/")
        # Pod names add "-<rs hash>-<5>" (≤ 17), and a pod's master socket path must fit
        # in sun_path (108 bytes): keep the Deployment's name within 30.
        return ns, _dns_label(f"{name}-{class_name or 'kemu'}", 30)
    return INGRESS_NAMESPACE, INGRESS_OBJECT


def manifests(
    proxy: str,
    ports: tuple[tuple[int, str], ...],
    cfg_path: str,
    socket_dir: str,
    class_name: str = "",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The proxy's Service (type LoadBalancer, one port per listener port) and Deployment.
    `labels`/`annotations`: a Gateway's spec.infrastructure, put on both objects."""
    ns, name = placement(proxy, class_name)
    selector = {PROXY_LABEL: proxy_label(proxy)}
    meta_labels = {"app.kubernetes.io/managed-by": "kemu", **(labels or {}), **selector}
    if proxy.startswith("Gateway/"):
        meta_labels[GATEWAY_NAME_LABEL] = _dns_label(proxy.split("/", 2)[2])
        meta_labels[GATEWAY_CLASS_LABEL] = class_name
    meta = {"name": name, "namespace": ns, "labels": meta_labels, "annotations": dict(annotations or {})}
    svc_ports = [{"name": f"{proto.lower()}-{port}", "port": port, "targetPort": port, "protocol": "TCP"} for port, proto in sorted(ports)]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "LoadBalancer",
            "selector": dict(selector),
            # The proxies answer for every node's traffic: Cluster (the default) keeps the
            # LB IP usable from any node; the proxy sees the node's SNAT address.
            "ports": svc_ports or [{"name": "none", "port": HEALTH_PORT, "targetPort": HEALTH_PORT, "protocol": "TCP"}],
        },
    }
    container = {
        "name": "haproxy",
        "image": IMAGE,
        # Master-worker mode: the master stays, reloads start a new worker that takes the
        # listening sockets from the old one (expose-fd listeners), which finishes its
        # requests: no connection is refused or cut across a change.
        "command": ["haproxy", "-W", "-db", "-S", f"{socket_dir}/$(POD_NAME).master", "-f", cfg_path],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "KEMU_SOCKETS", "value": socket_dir},
        ],
        # No containerPorts: they are informational, and listing the listeners' ports
        # would roll the proxy pods on every listener change (a reload does it in place).
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": HEALTH_PORT}, "periodSeconds": 1},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {"labels": dict(meta_labels), "annotations": dict(annotations or {})},
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [container]},
            },
        },
    }
    return [service, deployment]


def master_socket(socket_dir: str, pod_name: str) -> str:
    return f"{socket_dir}/{pod_name}.master"


def stats_socket(socket_dir: str) -> str:
    """The worker's stats socket, one per pod: HAProxy expands ${POD_NAME} from the env."""
    return f"{socket_dir}/${{POD_NAME}}.stats"
