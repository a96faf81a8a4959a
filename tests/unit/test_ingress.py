"""Ingress v1 compiled to the route model, checked by routing requests through it.

The tables are the Kubernetes Ingress concept page's path "Examples" and the
ingress-controller-conformance features (kubernetes-sigs/ingress-controller-conformance,
features/*.feature: path_rules, host_rules, default_backend, ingress_class). Requests go
through the model's reference router (emu/gateway/router.py).
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
import yaml

from emu.gateway.ingress import CLASS_NAME, CONTROLLER, PROXY_NAME, compile_ingresses
from emu.gateway.model import Compiled, Endpoint, ProxyConfig, ServicePortInfo, World
from emu.gateway.router import Request, route

pytestmark = pytest.mark.unit

NS = "conformance"
LB_IP = "172.18.255.200"


# --- helpers ------------------------------------------------------------------------------


def served_by(proxy: ProxyConfig, host: str, path: str, port: int = 80) -> str | int:
    """The Service ("name") that answers, or the status: 404 (no route), 500 (invalid
    backend), 503 (no endpoint)."""
    outcome = route(proxy, Request(port=port, host=host, path=path))
    if outcome.status != 200:
        return outcome.status
    ((backend, _),) = outcome.backends
    return backend.name.rsplit(":", 1)[0].split("/", 1)[1]


def our_class(name: str = CLASS_NAME, default: bool = False, controller: str = CONTROLLER) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta, "spec": {"controller": controller}}


def ingress(name: str, spec: dict[str, Any], ns: str = NS, class_name: str | None = CLASS_NAME, **meta: Any) -> dict[str, Any]:
    spec = dict(spec)
    if class_name is not None:
        spec.setdefault("ingressClassName", class_name)
    return {"kind": "Ingress", "metadata": {"name": name, "namespace": ns, **meta}, "spec": spec}


def service_ports(*names: str, ns: str = NS) -> dict[tuple[str, str], tuple[ServicePortInfo, ...]]:
    """Each Service with port 8080 named "http" and one endpoint."""
    return {
        (ns, n): (ServicePortInfo(port=8080, name="http", endpoints=(Endpoint(f"10.244.1.{i + 1}", 3000, f"{ns}/{n}-pod"),)),)
        for i, n in enumerate(names)
    }


def world(
    ingresses: list[dict[str, Any]],
    services: tuple[str, ...] = (),
    classes: list[dict[str, Any]] | None = None,
    created: dict[str, float] | None = None,
    secrets: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> World:
    return World(
        objects={"IngressClass": [our_class()] if classes is None else classes, "Ingress": ingresses},
        services=service_ports(*services),
        secrets=secrets or {},
        created={
            ("Ingress", i["metadata"]["namespace"], i["metadata"]["name"]): (created or {}).get(i["metadata"]["name"], 0.0)
            for i in ingresses
        },
        addresses={PROXY_NAME: (LB_IP,)},
    )


def compiled_proxy(w: World) -> ProxyConfig:
    return compile_ingresses(w, now=1000.0).proxies[PROXY_NAME]


def tls_secret(host: str = "foo.bar.com") -> dict[str, Any]:
    crt = f"-----BEGIN CERTIFICATE-----\nfor {host}\n-----END CERTIFICATE-----\n"
    key = "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"
    data = {"tls.crt": base64.b64encode(crt.encode()).decode(), "tls.key": base64.b64encode(key.encode()).decode()}
    return {"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "conformance-tls", "namespace": NS}, "data": data}


def prefix(path: str, svc: str) -> dict[str, Any]:
    return {"path": path, "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"number": 8080}}}}


def exact(path: str, svc: str) -> dict[str, Any]:
    return {"path": path, "pathType": "Exact", "backend": {"service": {"name": svc, "port": {"number": 8080}}}}


# --- the concept page's path examples -----------------------------------------------------

# (paths as (pathType, path), request path, which path matches or None)
PATH_EXAMPLES = [
    ([("Prefix", "/")], "/", "/"),
    ([("Prefix", "/")], "/anything/at/all", "/"),
    ([("Exact", "/foo")], "/foo", "/foo"),
    ([("Exact", "/foo")], "/bar", None),
    ([("Exact", "/foo")], "/foo/", None),
    ([("Exact", "/foo/")], "/foo", None),
    ([("Prefix", "/foo")], "/foo", "/foo"),
    ([("Prefix", "/foo")], "/foo/", "/foo"),
    ([("Prefix", "/foo/")], "/foo", "/foo/"),
    ([("Prefix", "/foo/")], "/foo/", "/foo/"),
    ([("Prefix", "/aaa/bb")], "/aaa/bbb", None),
    ([("Prefix", "/aaa/bbb")], "/aaa/bbb", "/aaa/bbb"),
    ([("Prefix", "/aaa/bbb/")], "/aaa/bbb", "/aaa/bbb/"),
    ([("Prefix", "/aaa/bbb")], "/aaa/bbb/", "/aaa/bbb"),
    ([("Prefix", "/aaa/bbb")], "/aaa/bbb/ccc", "/aaa/bbb"),
    ([("Prefix", "/aaa/bbb")], "/aaa/bbbxyz", None),
    ([("Prefix", "/"), ("Prefix", "/aaa")], "/aaa/ccc", "/aaa"),
    ([("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], "/aaa/bbb", "/aaa/bbb"),
    ([("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], "/ccc", "/"),
    ([("Prefix", "/aaa")], "/ccc", None),
    ([("Prefix", "/foo"), ("Exact", "/foo")], "/foo", "Exact /foo"),
    ([("Exact", "/foo"), ("Prefix", "/foo")], "/foo", "Exact /foo"),
    ([("ImplementationSpecific", "/foo")], "/foo/bar", "/foo"),
]


@pytest.mark.parametrize("paths, request_path, want", PATH_EXAMPLES)
def test_path_examples_of_the_concept_page(paths: list[tuple[str, str]], request_path: str, want: str | None) -> None:
    # One Service per path, named after it, so the answer says which path matched.
    def svc(kind: str, path: str) -> str:
        return f"{kind.lower()}{path.replace('/', '-')}"

    http_paths = [{"path": p, "pathType": t, "backend": {"service": {"name": svc(t, p), "port": {"number": 8080}}}} for t, p in paths]
    w = world([ingress("paths", {"rules": [{"http": {"paths": http_paths}}]})], services=tuple(svc(t, p) for t, p in paths))
    got = served_by(compiled_proxy(w), "example.com", request_path)
    if want is None:
        assert got == 404
    else:
        kind, _, path = want.rpartition(" ")
        assert got == svc(kind or next(t for t, p in paths if p == path), path)


# --- features/path_rules.feature ----------------------------------------------------------

PATH_RULES = yaml.safe_load(
    """
rules:
  - host: "exact-path-rules"
    http:
      paths:
        - {path: /foo, pathType: Exact, backend: {service: {name: foo-exact, port: {number: 8080}}}}
  - host: "prefix-path-rules"
    http:
      paths:
        - {path: /foo, pathType: Prefix, backend: {service: {name: foo-prefix, port: {number: 8080}}}}
        - {path: /aaa/bbb, pathType: Prefix, backend: {service: {name: aaa-slash-bbb-prefix, port: {number: 8080}}}}
        - {path: /aaa, pathType: Prefix, backend: {service: {name: aaa-prefix, port: {number: 8080}}}}
  - host: "mixed-path-rules"
    http:
      paths:
        - {path: /foo, pathType: Prefix, backend: {service: {name: foo-prefix, port: {number: 8080}}}}
        - {path: /foo, pathType: Exact, backend: {service: {name: foo-exact, port: {number: 8080}}}}
  - host: "trailing-slash-path-rules"
    http:
      paths:
        - {path: /aaa/bbb/, pathType: Prefix, backend: {service: {name: aaa-slash-bbb-slash-prefix, port: {number: 8080}}}}
        - {path: /foo/, pathType: Exact, backend: {service: {name: foo-slash-exact, port: {number: 8080}}}}
"""
)
PATH_RULE_SERVICES = ("foo-exact", "foo-prefix", "aaa-slash-bbb-prefix", "aaa-prefix", "aaa-slash-bbb-slash-prefix", "foo-slash-exact")


@pytest.mark.parametrize(
    "host, path, want",
    [
        ("exact-path-rules", "/foo", "foo-exact"),
        ("exact-path-rules", "/foo/", 404),
        ("exact-path-rules", "/FOO", 404),
        ("exact-path-rules", "/bar", 404),
        ("prefix-path-rules", "/foo", "foo-prefix"),
        ("prefix-path-rules", "/foo/", "foo-prefix"),
        ("prefix-path-rules", "/FOO", 404),
        ("prefix-path-rules", "/aaa/bbb", "aaa-slash-bbb-prefix"),
        ("prefix-path-rules", "/aaa/bbb/ccc", "aaa-slash-bbb-prefix"),
        ("prefix-path-rules", "/aaa/ccc", "aaa-prefix"),
        ("prefix-path-rules", "/aaaccc", 404),
        ("mixed-path-rules", "/foo", "foo-exact"),
        ("mixed-path-rules", "/foo/bar", "foo-prefix"),
        ("trailing-slash-path-rules", "/aaa/bbb", "aaa-slash-bbb-slash-prefix"),
        ("trailing-slash-path-rules", "/aaa/bbb/", "aaa-slash-bbb-slash-prefix"),
        ("trailing-slash-path-rules", "/foo", 404),
        ("trailing-slash-path-rules", "/foo/", "foo-slash-exact"),
        ("no-such-host", "/foo", 404),
    ],
)
def test_path_rules_feature(host: str, path: str, want: str | int) -> None:
    w = world([ingress("path-rules", PATH_RULES)], services=PATH_RULE_SERVICES)
    assert served_by(compiled_proxy(w), host, path) == want


def test_path_rules_status_shows_the_address() -> None:
    w = world([ingress("path-rules", PATH_RULES)], services=PATH_RULE_SERVICES)
    assert compile_ingresses(w, 0.0).status == {("Ingress", f"{NS}/path-rules"): {"loadBalancer": {"ingress": [{"ip": LB_IP}]}}}


# --- features/host_rules.feature ----------------------------------------------------------

HOST_RULES = {
    "tls": [{"hosts": ["foo.bar.com"], "secretName": "conformance-tls"}],
    "rules": [
        {"host": "*.foo.com", "http": {"paths": [prefix("/", "wildcard-foo-com")]}},
        {
            "host": "foo.bar.com",
            "http": {
                "paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "foo-bar-com", "port": {"name": "http"}}}}]
            },
        },
    ],
}


def host_rules_world(**kw: Any) -> World:
    return world(
        [ingress("host-rules", HOST_RULES)],
        services=("wildcard-foo-com", "foo-bar-com"),
        secrets={(NS, "conformance-tls"): tls_secret()},
        **kw,
    )


@pytest.mark.parametrize(
    "port, host, want",
    [
        (443, "foo.bar.com", "foo-bar-com"),
        (80, "foo.bar.com", "foo-bar-com"),
        (80, "FOO.bar.com:80", "foo-bar-com"),
        (80, "subdomain.bar.com", 404),
        (80, "bar.foo.com", "wildcard-foo-com"),
        (443, "bar.foo.com", "wildcard-foo-com"),
        (80, "baz.bar.foo.com", 404),
        (80, "foo.com", 404),
    ],
)
def test_host_rules_feature(port: int, host: str, want: str | int) -> None:
    assert served_by(compiled_proxy(host_rules_world()), host, "/", port) == want


def test_tls_certificate_from_the_secret_for_its_hosts() -> None:
    c = compile_ingresses(host_rules_world(), 0.0)
    https = c.proxies[PROXY_NAME].frontend(443)
    assert https is not None and https.protocol == "HTTPS"
    (cert,) = https.certificates
    assert cert.sni == ("foo.bar.com",)
    assert "for foo.bar.com" in cert.pem and cert.pem.index("CERTIFICATE") < cert.pem.index("PRIVATE KEY")
    assert c.ports[PROXY_NAME] == ((80, "HTTP"), (443, "HTTPS"))


def test_missing_tls_secret_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    w = world([ingress("host-rules", HOST_RULES)], services=("wildcard-foo-com", "foo-bar-com"))
    with caplog.at_level(logging.WARNING, logger="emu.gateway.ingress"):
        proxy = compiled_proxy(w)
    https = proxy.frontend(443)
    assert https is not None and https.certificates == ()
    assert "conformance-tls" in caplog.text
    assert served_by(proxy, "foo.bar.com", "/", 443) == "foo-bar-com"  # routes still served


def test_without_tls_only_port_80() -> None:
    c = compile_ingresses(world([ingress("path-rules", PATH_RULES)], services=PATH_RULE_SERVICES), 0.0)
    assert c.ports[PROXY_NAME] == ((80, "HTTP"),)
    assert c.proxies[PROXY_NAME].frontend(443) is None


def test_http_listener_takes_every_host() -> None:
    (listener,) = compiled_proxy(host_rules_world()).frontends[0].listeners
    assert listener.hostname is None and listener.one_label_wildcard


# --- features/default_backend.feature -----------------------------------------------------

DEFAULT_BACKEND = {"defaultBackend": {"service": {"name": "echo-service", "port": {"number": 8080}}}}


@pytest.mark.parametrize(
    "host, path", [("my-host", "/"), ("my-host", "/sub-path"), ("some-host", "/"), ("", "/resource"), ("some-host", "/resource")]
)
def test_default_backend_feature(host: str, path: str) -> None:
    w = world([ingress("default-backend", DEFAULT_BACKEND)], services=("echo-service",))
    c = compile_ingresses(w, 0.0)
    assert served_by(c.proxies[PROXY_NAME], host, path) == "echo-service"
    assert c.status[("Ingress", f"{NS}/default-backend")]["loadBalancer"]["ingress"] == [{"ip": LB_IP}]


def test_default_backend_comes_after_every_rule_of_every_ingress() -> None:
    rules = {"rules": [{"host": "a.example", "http": {"paths": [exact("/only", "exact-svc")]}}]}
    # The default backend's Ingress is the oldest, the rules' the youngest.
    w = world(
        [ingress("default-backend", DEFAULT_BACKEND), ingress("rules", rules)],
        services=("echo-service", "exact-svc"),
        created={"default-backend": 1.0, "rules": 2.0},
    )
    proxy = compiled_proxy(w)
    assert served_by(proxy, "a.example", "/only") == "exact-svc"
    assert served_by(proxy, "a.example", "/other") == "echo-service"
    last = proxy.frontends[0].listeners[0].entries[-1]
    assert last.hostname is None and last.match.path_type == "PathPrefix" and last.match.path == "/"


def test_oldest_ingress_default_backend_wins() -> None:
    other = {"defaultBackend": {"service": {"name": "other-svc", "port": {"number": 8080}}}}
    ings = [ingress("young", other), ingress("old", DEFAULT_BACKEND)]
    w = world(ings, services=("echo-service", "other-svc"), created={"young": 5.0, "old": 1.0})
    assert served_by(compiled_proxy(w), "x", "/") == "echo-service"
    w = world(ings, services=("echo-service", "other-svc"), created={"young": 0.5, "old": 1.0})
    assert served_by(compiled_proxy(w), "x", "/") == "other-svc"


def test_ingress_default_backend_takes_its_hosts_unmatched_requests() -> None:
    spec = {
        "defaultBackend": {"service": {"name": "host-default", "port": {"number": 8080}}},
        "rules": [{"host": "h.example", "http": {"paths": [prefix("/app", "app")]}}, {"host": "bare.example"}],
    }
    rootless = {"rules": [{"http": {"paths": [prefix("/", "hostless")]}}]}
    w = world([ingress("a", spec), ingress("b", rootless)], services=("host-default", "app", "hostless"))
    proxy = compiled_proxy(w)
    assert served_by(proxy, "h.example", "/app/x") == "app"
    assert served_by(proxy, "h.example", "/elsewhere") == "host-default"
    assert served_by(proxy, "bare.example", "/anything") == "host-default"  # a rule without http
    assert served_by(proxy, "other.example", "/anything") == "hostless"


# --- precedence between Ingresses ----------------------------------------------------------


def test_exact_host_before_wildcard_before_no_host() -> None:
    ings = [
        ingress("none", {"rules": [{"http": {"paths": [prefix("/", "no-host")]}}]}),
        ingress("wild", {"rules": [{"host": "*.example.com", "http": {"paths": [prefix("/", "wildcard")]}}]}),
        ingress("exact", {"rules": [{"host": "a.example.com", "http": {"paths": [prefix("/", "exact-host")]}}]}),
    ]
    # Created in the opposite order of precedence: age must not matter across hosts.
    w = world(ings, services=("no-host", "wildcard", "exact-host"), created={"none": 1.0, "wild": 2.0, "exact": 3.0})
    proxy = compiled_proxy(w)
    assert served_by(proxy, "a.example.com", "/") == "exact-host"
    assert served_by(proxy, "b.example.com", "/") == "wildcard"
    assert served_by(proxy, "x.b.example.com", "/") == "no-host"
    assert served_by(proxy, "example.com", "/") == "no-host"


def test_longest_prefix_across_ingresses_then_oldest() -> None:
    ings = [
        ingress("short", {"rules": [{"host": "h", "http": {"paths": [prefix("/a", "short")]}}]}),
        ingress("long", {"rules": [{"host": "h", "http": {"paths": [prefix("/a/b", "long")]}}]}),
        ingress("same-young", {"rules": [{"host": "h", "http": {"paths": [prefix("/a/b/", "young")]}}]}),
    ]
    w = world(ings, services=("short", "long", "young"), created={"short": 1.0, "long": 2.0, "same-young": 3.0})
    proxy = compiled_proxy(w)
    assert served_by(proxy, "h", "/a/b/c") == "long"
    assert served_by(proxy, "h", "/a/c") == "short"


def test_same_age_ties_break_on_namespace_and_name() -> None:
    ings = [
        ingress("b", {"rules": [{"host": "h", "http": {"paths": [prefix("/", "svc-b")]}}]}, ns="ns1"),
        ingress("a", {"rules": [{"host": "h", "http": {"paths": [prefix("/", "svc-a")]}}]}, ns="ns1"),
    ]
    w = World(
        objects={"IngressClass": [our_class()], "Ingress": ings},
        services={**service_ports("svc-a", ns="ns1"), **service_ports("svc-b", ns="ns1")},
    )
    assert served_by(compile_ingresses(w, 0.0).proxies[PROXY_NAME], "h", "/") == "svc-a"


# --- features/ingress_class.feature and class selection -----------------------------------


def test_invalid_class_is_ignored() -> None:
    spec = {
        "ingressClassName": "some-invalid-class-name",
        "rules": [{"host": "ingress-class", "http": {"paths": [prefix("/", "ingress-class-prefix")]}}],
    }
    c = compile_ingresses(world([ingress("test-ingress-class", spec)], services=("ingress-class-prefix",)), 0.0)
    assert c == Compiled()


def test_class_of_another_controller_is_ignored() -> None:
    classes = [our_class(), our_class("nginx", default=True, controller="k8s.io/ingress-nginx")]
    ings = [ingress("theirs", DEFAULT_BACKEND, class_name="nginx"), ingress("unclassed", DEFAULT_BACKEND, class_name=None)]
    assert compile_ingresses(world(ings, services=("echo-service",), classes=classes), 0.0) == Compiled()


@pytest.mark.parametrize(
    "classes, class_name, annotations, ours",
    [
        ([our_class(default=True)], None, {}, True),  # no class, our default
        ([our_class()], None, {}, False),  # no class, no default
        ([our_class(default=True), our_class("other", default=True, controller="x/y")], None, {}, False),  # two defaults
        ([our_class("k1"), our_class("k2", default=True)], "k1", {}, True),  # any of our classes
        ([our_class()], None, {"kubernetes.io/ingress.class": CLASS_NAME}, True),  # deprecated annotation
        ([our_class("custom")], None, {"kubernetes.io/ingress.class": "custom"}, True),
        ([our_class(default=True)], None, {"kubernetes.io/ingress.class": "nginx"}, False),
        ([], CLASS_NAME, {}, False),  # ingressClassName needs the IngressClass
    ],
)
def test_class_selection(classes: list[dict[str, Any]], class_name: str | None, annotations: dict[str, str], ours: bool) -> None:
    ing = ingress("i", DEFAULT_BACKEND, class_name=class_name, annotations=annotations)
    c = compile_ingresses(world([ing], services=("echo-service",), classes=classes), 0.0)
    assert (("Ingress", f"{NS}/i") in c.status) is ours
    assert (PROXY_NAME in c.proxies) is ours


def test_no_ingress_no_proxy() -> None:
    assert compile_ingresses(world([]), 0.0) == Compiled()


def test_status_without_address_yet_is_empty() -> None:
    w = World(objects={"IngressClass": [our_class()], "Ingress": [ingress("i", DEFAULT_BACKEND)]}, services=service_ports("echo-service"))
    assert compile_ingresses(w, 0.0).status[("Ingress", f"{NS}/i")] == {"loadBalancer": {"ingress": []}}


# --- backends ---------------------------------------------------------------------------


def _only_backend(spec_backend: dict[str, Any], services: tuple[str, ...] = ("echo-service",)) -> Any:
    w = world([ingress("i", {"defaultBackend": spec_backend})], services=services)
    (entry,) = compiled_proxy(w).frontends[0].listeners[0].entries
    (backend,) = entry.action.backends
    return backend


def test_backend_port_by_name_and_number_are_one_backend_with_endpoints() -> None:
    by_name = _only_backend({"service": {"name": "echo-service", "port": {"name": "http"}}})
    by_number = _only_backend({"service": {"name": "echo-service", "port": {"number": 8080}}})
    assert by_name == by_number
    assert by_name.name == f"{NS}/echo-service:8080" and not by_name.invalid
    assert by_name.endpoints == (Endpoint("10.244.1.1", 3000, f"{NS}/echo-service-pod"),)


@pytest.mark.parametrize(
    "ref",
    [
        {"service": {"name": "missing", "port": {"number": 8080}}},
        {"service": {"name": "echo-service", "port": {"number": 9999}}},
        {"service": {"name": "echo-service", "port": {"name": "grpc"}}},
        {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static-assets"}},
    ],
)
def test_unresolvable_backends_are_invalid(ref: dict[str, Any]) -> None:
    backend = _only_backend(ref)
    assert backend.invalid and backend.endpoints == ()
    w = world([ingress("i", {"defaultBackend": ref})], services=("echo-service",))
    assert served_by(compiled_proxy(w), "any", "/") == 500


def test_h2c_app_protocol() -> None:
    w = World(
        objects={"IngressClass": [our_class()], "Ingress": [ingress("i", DEFAULT_BACKEND)]},
        services={(NS, "echo-service"): (ServicePortInfo(port=8080, app_protocol="kubernetes.io/h2c"),)},
    )
    (entry,) = compiled_proxy(w).frontends[0].listeners[0].entries
    assert entry.action.backends[0].h2c


def test_action_ids_unique_and_backends_shared_by_name() -> None:
    ings = [ingress("one", PATH_RULES), ingress("two", PATH_RULES, ns=NS), ingress("dflt", DEFAULT_BACKEND)]
    entries = compiled_proxy(world(ings, services=(*PATH_RULE_SERVICES, "echo-service"))).frontends[0].listeners[0].entries
    ids = [e.action.id for e in entries]
    assert len(ids) == len(set(ids))
    by_name: dict[str, Any] = {}
    for e in entries:
        for b in e.action.backends:
            assert by_name.setdefault(b.name, b) == b  # one name, one resolved backend
