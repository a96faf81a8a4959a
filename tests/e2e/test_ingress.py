"""Ingress end to end, after kubernetes-sigs/ingress-controller-conformance's features
(path rules, host rules with TLS, default backend, load balancing over 10 pods, ingress
class): each Ingress as the feature writes it, requests with curl from an external host
to the address in the Ingress's status, through the shared HAProxy proxy."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from emu.gateway.testing import echo_backend, self_signed_certificate, tls_secret
from tests.e2e.gateway_client import Ask, ask_all, write_docs
from tests.e2e.helpers import Running, kemu, plugins, start, stop, topology_variant, wait_until

pytestmark = pytest.mark.e2e

NAME = "gateway"
NS = "conformance"
SERVICES = [
    "echo-service",
    "foo-exact",
    "foo-prefix",
    "aaa-slash-bbb-prefix",
    "aaa-prefix",
    "aaa-slash-bbb-slash-prefix",
    "foo-slash-exact",
    "wildcard-foo-com",
    "foo-bar-com",
    "ingress-class-prefix",
]


@pytest.fixture(scope="module", params=plugins(("bridge",)))
def ing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    c = start(topology_variant("gateway.yaml", tmp_path_factory.mktemp(f"{request.param}-topo"), NAME, cni=request.param), NAME)
    try:
        tmp = tmp_path_factory.mktemp("ing")
        cert, key = self_signed_certificate(["foo.bar.com"])
        docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}]
        docs += [tls_secret(NS, "conformance-tls", cert, key)]
        for s in SERVICES:
            docs += echo_backend(s, NS, 10 if s == "echo-service" else 1)
        kemu("--cluster", NAME, "apply", "-f", write_docs(tmp, "backends.yaml", docs), timeout=300)
        wait_until(lambda: all(_ready(p) for p in c.pods().values()), timeout=60, what="the backends to be ready")
        yield c
    finally:
        stop(c)


def _ready(p: dict[str, Any]) -> bool:
    return any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions", []))


def ingress(name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def applied(c: Running, tmp: Any, doc: dict[str, Any]) -> str:
    kemu("--cluster", c.name, "apply", "-f", write_docs(tmp, f"{doc['metadata']['name']}.yaml", [doc]))
    return str(doc["metadata"]["name"])


def lb_ip(c: Running, name: str) -> str | None:
    doc = json.loads(kemu("--cluster", c.name, "get", "ingress", name, "-n", NS, "-o", "json").stdout)
    got = ((doc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return str(got[0]["ip"]) if got else None


def served(c: Running, ip: str, cases: list[tuple[str, str, str | None]], https: bool = False) -> list[str]:
    """Problems with (host, path, service or None for 404) cases."""
    asks = [Ask(ip, path, host, 443 if https else 80, https=https) for host, path, _ in cases]
    problems = []
    for (host, path, svc), a in zip(cases, ask_all(c, "client", asks), strict=True):
        if svc is None:
            if a.status != 404:
                problems.append(f"{host}{path}: {a.status}, want 404")
        elif a.status != 200 or a.json()["service"] != svc or a.json()["host"] != host:
            problems.append(f"{host}{path}: {a.status} {a.body[:120]!r}, want {svc}")
    return problems


PATH_RULES = {
    "rules": [
        {
            "host": "exact-path-rules",
            "http": {
                "paths": [{"path": "/foo", "pathType": "Exact", "backend": {"service": {"name": "foo-exact", "port": {"number": 8080}}}}]
            },
        },
        {
            "host": "prefix-path-rules",
            "http": {
                "paths": [
                    {"path": "/foo", "pathType": "Prefix", "backend": {"service": {"name": "foo-prefix", "port": {"number": 8080}}}},
                    {
                        "path": "/aaa/bbb",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "aaa-slash-bbb-prefix", "port": {"number": 8080}}},
                    },
                    {"path": "/aaa", "pathType": "Prefix", "backend": {"service": {"name": "aaa-prefix", "port": {"number": 8080}}}},
                ]
            },
        },
        {
            "host": "mixed-path-rules",
            "http": {
                "paths": [
                    {"path": "/foo", "pathType": "Prefix", "backend": {"service": {"name": "foo-prefix", "port": {"number": 8080}}}},
                    {"path": "/foo", "pathType": "Exact", "backend": {"service": {"name": "foo-exact", "port": {"number": 8080}}}},
                ]
            },
        },
        {
            "host": "trailing-slash-path-rules",
            "http": {
                "paths": [
                    {
                        "path": "/aaa/bbb/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "aaa-slash-bbb-slash-prefix", "port": {"number": 8080}}},
                    },
                    {"path": "/foo/", "pathType": "Exact", "backend": {"service": {"name": "foo-slash-exact", "port": {"number": 8080}}}},
                ]
            },
        },
    ]
}
PATH_CASES: list[tuple[str, str, str | None]] = [
    ("exact-path-rules", "/foo", "foo-exact"),
    ("exact-path-rules", "/foo/", None),
    ("exact-path-rules", "/FOO", None),
    ("exact-path-rules", "/bar", None),
    ("prefix-path-rules", "/foo", "foo-prefix"),
    ("prefix-path-rules", "/foo/", "foo-prefix"),
    ("prefix-path-rules", "/FOO", None),
    ("prefix-path-rules", "/aaa/bbb", "aaa-slash-bbb-prefix"),
    ("prefix-path-rules", "/aaa/bbb/ccc", "aaa-slash-bbb-prefix"),
    ("prefix-path-rules", "/aaa/ccc", "aaa-prefix"),
    ("prefix-path-rules", "/aaaccc", None),
    ("mixed-path-rules", "/foo", "foo-exact"),
    ("trailing-slash-path-rules", "/aaa/bbb", "aaa-slash-bbb-slash-prefix"),
    ("trailing-slash-path-rules", "/aaa/bbb/", "aaa-slash-bbb-slash-prefix"),
    ("trailing-slash-path-rules", "/foo", None),
]


def test_path_rules(ing: Running, tmp_path: Any) -> None:
    name = applied(ing, tmp_path, ingress("path-rules", PATH_RULES))
    try:
        ip = lb_ip(ing, name)
        assert ip, "no address in the Ingress status"
        assert not served(ing, ip, PATH_CASES)
    finally:
        kemu("--cluster", NAME, "delete", "ingress", name, "-n", NS)


def test_host_rules_with_tls_and_one_label_wildcards(ing: Running, tmp_path: Any) -> None:
    spec = {
        "tls": [{"hosts": ["foo.bar.com"], "secretName": "conformance-tls"}],
        "rules": [
            {
                "host": "*.foo.com",
                "http": {
                    "paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "wildcard-foo-com", "port": {"number": 8080}}}}
                    ]
                },
            },
            {
                "host": "foo.bar.com",
                "http": {
                    "paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "foo-bar-com", "port": {"name": "http"}}}}
                    ]
                },
            },
        ],
    }
    name = applied(ing, tmp_path, ingress("host-rules", spec))
    try:
        ip = lb_ip(ing, name)
        assert ip
        cases: list[tuple[str, str, str | None]] = [
            ("foo.bar.com", "/", "foo-bar-com"),
            ("subdomain.bar.com", "/", None),
            ("bar.foo.com", "/", "wildcard-foo-com"),
            ("baz.bar.foo.com", "/", None),
            ("foo.com", "/", None),
        ]
        assert not served(ing, ip, cases)
        assert not served(ing, ip, [("foo.bar.com", "/", "foo-bar-com")], https=True)
        # The certificate served for foo.bar.com is the Secret's: curl verifies it against itself.
        with open(os.path.join(str(tmp_path), "ca.pem"), "w") as f:
            f.write(_secret_cert(ing))
        out = ing.exec(
            "host/client",
            "curl",
            "-sS",
            "--cacert",
            os.path.join(str(tmp_path), "ca.pem"),
            "--resolve",
            f"foo.bar.com:443:{ip}",
            "https://foo.bar.com/",
        ).stdout
        assert json.loads(out)["service"] == "foo-bar-com"
    finally:
        kemu("--cluster", NAME, "delete", "ingress", name, "-n", NS)


def _secret_cert(c: Running) -> str:
    import base64

    doc = json.loads(kemu("--cluster", c.name, "get", "secret", "conformance-tls", "-n", NS, "-o", "json").stdout)
    return base64.b64decode(doc["data"]["tls.crt"]).decode()


def test_default_backend_takes_every_method_host_and_path(ing: Running, tmp_path: Any) -> None:
    name = applied(
        ing, tmp_path, ingress("default-backend", {"defaultBackend": {"service": {"name": "echo-service", "port": {"number": 8080}}}})
    )
    try:
        ip = lb_ip(ing, name)
        assert ip
        cases = [
            ("GET", "my-host", "/"),
            ("GET", "my-host", "/sub-path"),
            ("POST", "some-host", "/"),
            ("PUT", None, "/resource"),
            ("DELETE", "some-host", "/resource"),
            ("PATCH", "my-host", "/resource"),
        ]
        answers = ask_all(ing, "client", [Ask(ip, path, host, method=m) for m, host, path in cases])
        for (m, _host, path), a in zip(cases, answers, strict=True):
            body = a.json()
            assert a.status == 200 and body["service"] == "echo-service", (m, path, a.status)
            assert (body["method"], body["path"], body["proto"]) == (m, path, "HTTP/1.1")
            for h in ("content-length", "content-type", "date", "server"):
                assert a.header(h), (h, a.headers)
    finally:
        kemu("--cluster", NAME, "delete", "ingress", name, "-n", NS)


def test_load_balancing_reaches_all_10_pods(ing: Running, tmp_path: Any) -> None:
    name = applied(
        ing, tmp_path, ingress("load-balancing", {"defaultBackend": {"service": {"name": "echo-service", "port": {"number": 8080}}}})
    )
    try:
        ip = lb_ip(ing, name)
        assert ip
        answers = ask_all(ing, "client", [Ask(ip, "/", "load-balancing")] * 100)
        assert all(a.status == 200 for a in answers)
        assert len({a.json()["pod"] for a in answers}) == 10
    finally:
        kemu("--cluster", NAME, "delete", "ingress", name, "-n", NS)


def test_an_ingress_of_another_class_gets_no_address_and_no_traffic(ing: Running, tmp_path: Any) -> None:
    spec = {
        "ingressClassName": "some-invalid-class-name",
        "rules": [
            {
                "host": "ingress-class",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "ingress-class-prefix", "port": {"number": 8080}}},
                        }
                    ]
                },
            }
        ],
    }
    other = applied(ing, tmp_path, ingress("test-ingress-class", spec))
    ours = applied(ing, tmp_path, ingress("ours", {"rules": [{"host": "ours", "http": PATH_RULES["rules"][0]["http"]}]}))
    try:
        assert lb_ip(ing, other) is None
        ip = lb_ip(ing, ours)  # no class: the default class, kemu's
        assert ip
        assert not served(ing, ip, [("ingress-class", "/", None), ("ours", "/foo", "foo-exact")])
        table = kemu("--cluster", NAME, "get", "ingress", "-n", NS).stdout.splitlines()
        assert table[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
        rows = {line.split()[0]: line.split() for line in table[1:]}
        assert rows["ours"][1:5] == ["<none>", "ours", ip, "80"]
    finally:
        kemu("--cluster", NAME, "delete", "ingress", other, ours, "-n", NS)
