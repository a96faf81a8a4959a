"""Building Worlds by hand, for tests: from manifests (the Gateway API conformance
suite's, or any), with fabricated ready endpoints, gateway addresses and readiness; and
the manifests tests and benchmarks apply (echo backends, TLS Secrets). Nothing here
touches a cluster."""

from __future__ import annotations

import base64
import ipaddress
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from emu.config import registry
from emu.errors import CommandError
from emu.gateway.gateway_common import CONTROLLER_NAME
from emu.gateway.model import Endpoint, ServicePortInfo, World

CLASS_NAME = "kemu"
KEMU_GATEWAY_CLASS: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": {"name": CLASS_NAME},
    "spec": {"controllerName": CONTROLLER_NAME},
}
POD_NET = ipaddress.IPv4Network("10.244.0.0/16")
GATEWAY_NET = ipaddress.IPv4Network("172.18.255.0/24")


def load_docs(text: str, class_name: str = CLASS_NAME) -> list[dict[str, Any]]:
    """The objects of a multi-document manifest, "{GATEWAY_CLASS_NAME}" (the conformance
    suite's placeholder) replaced by `class_name`."""
    return [d for d in yaml.safe_load_all(text.replace("{GATEWAY_CLASS_NAME}", class_name)) if isinstance(d, dict)]


def load_files(paths: Iterable[str], class_name: str = CLASS_NAME) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            docs.extend(load_docs(f.read(), class_name))
    return docs


def world_from_docs(
    docs: Sequence[dict[str, Any]],
    endpoints: Mapping[tuple[str, str], Sequence[str]] | None = None,
    *,
    gateway_class: bool = True,
    addresses: bool = True,
    ready: bool = True,
) -> World:
    """A World holding `docs` (in the order given: that is their creation order).

    - endpoints: (namespace, service) → pod IPs, for each port of that Service (at its
      targetPort). Services not listed get one ready endpoint per replica of the
      Deployment in their namespace whose pod labels their selector matches, the pods
      named "<ns>/<deployment>-<i>" (the conformance suite checks the pod name prefix).
    - gateway_class: add the GatewayClass "kemu" of kemu's controller if no doc names it.
    - addresses / ready: give every Gateway an address (172.18.255.x, in doc order) and
      mark its proxy ready.
    """
    docs = [_with_namespace(d) for d in docs]
    if gateway_class and not any(d.get("kind") == "GatewayClass" and d["metadata"].get("name") == CLASS_NAME for d in docs):
        docs.insert(0, KEMU_GATEWAY_CLASS)
    objects: dict[str, list[dict[str, Any]]] = {}
    created: dict[tuple[str, str, str], float] = {}
    namespaces: dict[str, dict[str, str]] = {}
    secrets: dict[tuple[str, str], dict[str, Any]] = {}
    for i, d in enumerate(docs):
        kind, meta = str(d.get("kind")), d["metadata"]
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        objects.setdefault(kind, []).append(d)
        created[(kind, ns, name)] = float(i)
        if kind == "Namespace":
            namespaces[name] = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": name}
        elif ns:
            namespaces.setdefault(ns, {"kubernetes.io/metadata.name": ns})
        if kind == "Secret":
            secrets[(ns, name)] = d
    services = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): _service_ports(d, objects.get("Deployment", []), endpoints or {})
        for d in objects.get("Service", [])
    }
    gw_addresses: dict[str, tuple[str, ...]] = {}
    gw_ready: dict[str, bool] = {}
    if addresses:
        for n, gw in enumerate(objects.get("Gateway", [])):
            proxy = f"Gateway/{gw['metadata']['namespace']}/{gw['metadata']['name']}"
            gw_addresses[proxy] = (str(GATEWAY_NET[10 + n]),)
            gw_ready[proxy] = ready
    return World(
        objects=objects, services=services, secrets=secrets, namespaces=namespaces, created=created, addresses=gw_addresses, ready=gw_ready
    )


def _with_namespace(doc: dict[str, Any]) -> dict[str, Any]:
    meta = dict(doc.get("metadata") or {})
    if registry.is_namespaced(str(doc.get("kind"))):
        meta.setdefault("namespace", "default")
    return {**doc, "metadata": meta}


def _service_ports(
    svc: dict[str, Any], deployments: list[dict[str, Any]], given: Mapping[tuple[str, str], Sequence[str]]
) -> tuple[ServicePortInfo, ...]:
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    spec = svc.get("spec") or {}
    if (ns, name) in given:
        pods = [(ip, "") for ip in given[(ns, name)]]
    else:
        pods = _deployment_pods(ns, spec.get("selector") or {}, deployments)
    out = []
    for p in spec.get("ports") or ():
        target = p.get("targetPort", p["port"])
        port = target if isinstance(target, int) else p["port"]  # a named targetPort: the Service port
        out.append(
            ServicePortInfo(
                port=p["port"],
                name=str(p.get("name") or ""),
                protocol=str(p.get("protocol") or "TCP"),
                app_protocol=p.get("appProtocol"),
                endpoints=tuple(Endpoint(ip, port, pod) for ip, pod in pods),
            )
        )
    return tuple(out)


def _deployment_pods(ns: str, selector: dict[str, str], deployments: list[dict[str, Any]]) -> list[tuple[str, str]]:
    if not selector:
        return []
    for index, d in enumerate(deployments):
        labels = (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        if d["metadata"]["namespace"] == ns and all(labels.get(k) == v for k, v in selector.items()):
            replicas = (d.get("spec") or {}).get("replicas", 1)
            base = 256 * (index + 1)  # a /24-ish block per deployment, stable in doc order
            return [(str(POD_NET[base + i + 1]), f"{ns}/{d['metadata']['name']}-{i}") for i in range(replicas)]
    return []


# --- TLS secrets ------------------------------------------------------------------------------


ECHO_IMAGE = "registry.k8s.io/gateway-api/conformance/echo-basic:v0.1.0"


def echo_backend(name: str, namespace: str = "default", replicas: int = 1) -> list[dict[str, Any]]:
    """A Service (port 8080, named http) over a Deployment of the conformance echo
    backend, which says in its answers which pod, namespace and Service served (for e2e
    tests and benchmarks that run a cluster)."""
    labels = {"app": name}
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "SERVICE_NAME", "value": name},
    ]
    meta = {"name": name, "namespace": namespace}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080, "targetPort": 3000}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": dict(meta),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "echo", "image": ECHO_IMAGE, "env": env}]}},
            },
        },
    ]


def tls_secret(ns: str, name: str, cert_pem: str, key_pem: str) -> dict[str, Any]:
    """A kubernetes.io/tls Secret as the API server stores it (data base64-encoded)."""

    def enc(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": ns},
        "data": {"tls.crt": enc(cert_pem), "tls.key": enc(key_pem)},
    }


def placeholder_pem(label: str, seed: str = "kemu") -> str:
    """A PEM block of the right shape (an ASN.1 SEQUENCE) that no TLS library will load:
    enough for the compiler's structural check, for unit tests without a real key."""
    body = b"\x30\x82\x01\x00" + (seed.encode() * 64)[:256]
    b64 = base64.b64encode(body).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def self_signed_certificate(hostnames: Sequence[str], days: int = 2) -> tuple[str, str]:
    """A real self-signed certificate and its key (PEM) for `hostnames`, made with the
    openssl command; for tests that run a proxy."""
    with tempfile.TemporaryDirectory() as d:
        crt, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        san = ",".join(f"DNS:{h}" for h in hostnames) or "DNS:localhost"
        argv = [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            f"/CN={hostnames[0] if hostnames else 'localhost'}",
        ]
        argv += ["-addext", f"subjectAltName={san}", "-keyout", key, "-out", crt]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise CommandError(argv, done.returncode, done.stderr)
        with open(crt, encoding="ascii") as c, open(key, encoding="ascii") as k:
            return c.read(), k.read()
