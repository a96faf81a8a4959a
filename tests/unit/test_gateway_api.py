"""compile_gateways: the status the Gateway API conformance tests expect (reasons as the
.go tests check them), the proxy configuration's shape (ports, listeners, precedence,
certificates, backends), on the conformance manifests and on small hand-made ones."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from emu.gateway.conditions import find, merge_conditions
from emu.gateway.gateway_api import CONTROLLER_NAME, compile_gateways
from emu.gateway.gateway_common import duration_ms
from emu.gateway.model import Compiled, World
from emu.gateway.router import Request, route
from emu.gateway.testing import load_docs, placeholder_pem, self_signed_certificate, tls_secret, world_from_docs
from tests.unit.gateway_tables import INFRA, NOW, WEB, conformance_compiled

pytestmark = pytest.mark.unit

GROUP = "gateway.networking.k8s.io"
HTTP_ROUTE_KIND = [{"group": GROUP, "kind": "HTTPRoute"}]


def _cond(conditions: list[dict[str, Any]], type_: str) -> tuple[str, str]:
    c = find(conditions, type_)
    assert c is not None, f"no {type_} condition in {conditions}"
    return c["status"], c["reason"]


def _parent(compiled: Compiled, route: str, gateway: str, ns: str = INFRA) -> dict[str, Any]:
    parents = compiled.status[("HTTPRoute", f"{ns}/{route}")]["parents"]
    found = [p for p in parents if p["parentRef"]["name"] == gateway]
    assert len(found) == 1, parents
    return found[0]


def _route_cond(compiled: Compiled, route: str, gateway: str, type_: str, ns: str = INFRA) -> tuple[str, str]:
    return _cond(_parent(compiled, route, gateway, ns)["conditions"], type_)


def _listeners(compiled: Compiled, gateway: str) -> dict[str, dict[str, Any]]:
    return {ls["name"]: ls for ls in compiled.status[("Gateway", f"{INFRA}/{gateway}")]["listeners"]}


# --- conformance: routes ------------------------------------------------------------------------


def test_gateway_class_and_gateways_are_accepted_and_programmed() -> None:
    c = conformance_compiled("httproute-matching")
    assert _cond(c.status[("GatewayClass", "kemu")]["conditions"], "Accepted") == ("True", "Accepted")
    for gw in ("same-namespace", "all-namespaces", "backend-namespaces", "same-namespace-with-https-listener"):
        status = c.status[("Gateway", f"{INFRA}/{gw}")]
        assert _cond(status["conditions"], "Accepted") == ("True", "Accepted")
        assert _cond(status["conditions"], "Programmed") == ("True", "Programmed")
        assert status["addresses"] and status["addresses"][0]["type"] == "IPAddress"
        for ls in status["listeners"]:
            assert ls["supportedKinds"] == HTTP_ROUTE_KIND
            for t in ("Accepted", "ResolvedRefs", "Programmed"):
                assert _cond(ls["conditions"], t)[0] == "True"
    assert c.ports[f"Gateway/{INFRA}/same-namespace-with-https-listener"] == ((443, "HTTPS"),)
    assert c.ports[f"Gateway/{INFRA}/same-namespace"] == ((80, "HTTP"),)


def test_accepted_route_echoes_its_parent_ref() -> None:
    c = conformance_compiled("httproute-hostname-intersection")
    parent = _parent(c, "specific-host-matches-listener-specific-host", "httproute-hostname-intersection")
    assert parent["controllerName"] == CONTROLLER_NAME
    assert parent["parentRef"] == {"group": GROUP, "kind": "Gateway", "name": "httproute-hostname-intersection", "namespace": INFRA}
    assert _cond(parent["conditions"], "Accepted") == ("True", "Accepted")
    assert _cond(parent["conditions"], "ResolvedRefs") == ("True", "ResolvedRefs")


def test_hostname_intersection_status() -> None:
    c = conformance_compiled("httproute-hostname-intersection")
    gw = "httproute-hostname-intersection"
    assert _route_cond(c, "no-intersecting-hosts", gw, "Accepted") == ("False", "NoMatchingListenerHostname")
    # Only accepted routes count: listener-1 has two, listener-2 and -3 one each.
    attached = {name: ls["attachedRoutes"] for name, ls in _listeners(c, gw).items()}
    assert attached == {"listener-1": 2, "listener-2": 1, "listener-3": 1}


@pytest.mark.parametrize(
    ("manifest", "route", "reason"),
    [
        ("httproute-invalid-reference-grant", "reference-grant", "RefNotPermitted"),
        ("httproute-invalid-cross-namespace-backend-ref", "invalid-cross-namespace-backend-ref", "RefNotPermitted"),
        ("httproute-invalid-nonexistent-backendref", "invalid-nonexistent-backend-ref", "BackendNotFound"),
        ("httproute-invalid-backendref-unknown-kind", "invalid-backend-ref-unknown-kind", "InvalidKind"),
    ],
)
def test_unresolved_backend_refs(manifest: str, route: str, reason: str) -> None:
    c = conformance_compiled(manifest)
    assert _route_cond(c, route, "same-namespace", "Accepted") == ("True", "Accepted")
    assert _route_cond(c, route, "same-namespace", "ResolvedRefs") == ("False", reason)


def test_reference_grant_resolves_and_its_deletion_unresolves() -> None:
    assert _route_cond(conformance_compiled("httproute-reference-grant"), "reference-grant", "same-namespace", "ResolvedRefs") == (
        "True",
        "ResolvedRefs",
    )
    gone = conformance_compiled("httproute-reference-grant", ("ReferenceGrant",))
    assert _route_cond(gone, "reference-grant", "same-namespace", "ResolvedRefs") == ("False", "RefNotPermitted")


@pytest.mark.parametrize(
    ("manifest", "route", "gateway", "ns", "reason"),
    [
        (
            "httproute-invalid-parentref-not-matching-listener-port",
            "httproute-listener-not-matching-route-port",
            "same-namespace",
            INFRA,
            "NoMatchingParent",
        ),
        (
            "httproute-invalid-parentref-not-matching-section-name",
            "httproute-listener-not-matching-section-name",
            "same-namespace",
            INFRA,
            "NoMatchingParent",
        ),
        (
            "httproute-invalid-parentref-section-name-not-matching-port",
            "httproute-listener-section-name-not-matching-port",
            "gateway-with-one-not-matching-port-and-section-name-route",
            INFRA,
            "NoMatchingParent",
        ),
        (
            "httproute-invalid-cross-namespace-parent-ref",
            "invalid-cross-namespace-parent-ref",
            "same-namespace",
            WEB,
            "NotAllowedByListeners",
        ),
        ("httproute-disallowed-kind", "disallowed-kind", "tlsroutes-only", INFRA, "NotAllowedByListeners"),
    ],
)
def test_routes_that_cannot_attach(manifest: str, route: str, gateway: str, ns: str, reason: str) -> None:
    c = conformance_compiled(manifest)
    parents = c.status[("HTTPRoute", f"{ns}/{route}")]["parents"]
    assert len(parents) == 1  # HTTPRouteMustHaveNoAcceptedParents: one parent, not accepted
    assert _cond(parents[0]["conditions"], "Accepted") == ("False", reason)
    assert _cond(parents[0]["conditions"], "ResolvedRefs") == ("True", "ResolvedRefs")
    # GatewayMustHaveZeroRoutes
    assert [ls["attachedRoutes"] for ls in c.status[("Gateway", f"{INFRA}/{gateway}")]["listeners"]] == [0]


def test_disallowed_kind_gateway_has_an_unsupported_tls_listener() -> None:
    ls = _listeners(conformance_compiled("httproute-disallowed-kind"), "tlsroutes-only")["tls"]
    assert _cond(ls["conditions"], "Accepted") == ("False", "UnsupportedProtocol")
    assert _cond(ls["conditions"], "Programmed") == ("False", "Invalid")
    assert ls["supportedKinds"] == []


def test_listener_port_matching_attaches_by_port_and_section() -> None:
    c = conformance_compiled("httproute-listener-port-matching")
    gw = "httproute-listener-port-matching"
    for r in ("backend-v1", "backend-v2", "backend-v3"):
        assert _route_cond(c, r, gw, "Accepted") == ("True", "Accepted")
    attached = {name: ls["attachedRoutes"] for name, ls in _listeners(c, gw).items()}
    assert attached == {"listener-1": 1, "listener-2": 1, "listener-3": 1, "listener-4": 1, "listener-5": 0}
    assert c.ports[f"Gateway/{INFRA}/{gw}"] == ((80, "HTTP"), (8080, "HTTP"), (8090, "HTTP"))


def test_listener_hostname_matching_orders_listeners_most_specific_first() -> None:
    config = conformance_compiled("httproute-listener-hostname-matching").proxies[f"Gateway/{INFRA}/httproute-listener-hostname-matching"]
    assert [ls.hostname for ls in config.frontends[0].listeners] == ["bar.com", "foo.bar.com", "*.bar.com", "*.foo.com"]
    backend_v3 = conformance_compiled("httproute-listener-hostname-matching").status[("HTTPRoute", f"{INFRA}/backend-v3")]["parents"]
    assert [p["parentRef"]["sectionName"] for p in backend_v3] == ["listener-3", "listener-4"]


# --- conformance: gateways and listeners ------------------------------------------------------------


def test_invalid_route_kinds() -> None:
    c = conformance_compiled("gateway-invalid-route-kind")
    only = _listeners(c, "gateway-only-invalid-route-kind")["http"]
    assert only["supportedKinds"] == [] and only["attachedRoutes"] == 0
    assert _cond(only["conditions"], "ResolvedRefs") == ("False", "InvalidRouteKinds")
    both = _listeners(c, "gateway-supported-and-invalid-route-kind")["http"]
    assert both["supportedKinds"] == HTTP_ROUTE_KIND and both["attachedRoutes"] == 0
    assert _cond(both["conditions"], "ResolvedRefs") == ("False", "InvalidRouteKinds")


@pytest.mark.parametrize(
    "gateway",
    [
        "gateway-certificate-nonexistent-secret",
        "gateway-certificate-unsupported-group",
        "gateway-certificate-unsupported-kind",
        "gateway-certificate-malformed-secret",
    ],
)
def test_invalid_tls_configuration(gateway: str) -> None:
    c = conformance_compiled("gateway-invalid-tls-configuration")
    ls = _listeners(c, gateway)["https"]
    assert ls["supportedKinds"] == HTTP_ROUTE_KIND and ls["attachedRoutes"] == 0
    assert _cond(ls["conditions"], "ResolvedRefs") == ("False", "InvalidCertificateRef")
    assert _cond(ls["conditions"], "Programmed") == ("False", "Invalid")
    assert c.ports[f"Gateway/{INFRA}/{gateway}"] == ()


@pytest.mark.parametrize(
    ("manifest", "gateway", "expected"),
    [
        ("gateway-secret-invalid-reference-grant", "gateway-secret-invalid-reference-grant", ("False", "RefNotPermitted")),
        ("gateway-secret-missing-reference-grant", "gateway-secret-missing-reference-grant", ("False", "RefNotPermitted")),
        ("gateway-secret-reference-grant-all-in-namespace", "gateway-secret-reference-grant-all-in-namespace", ("True", "ResolvedRefs")),
        ("gateway-secret-reference-grant-specific", "gateway-secret-reference-grant-specific", ("True", "ResolvedRefs")),
    ],
)
def test_secret_reference_grants(manifest: str, gateway: str, expected: tuple[str, str]) -> None:
    c = conformance_compiled(manifest)
    ls = _listeners(c, gateway)["https"]
    assert ls["supportedKinds"] == HTTP_ROUTE_KIND and ls["attachedRoutes"] == 0
    assert _cond(ls["conditions"], "ResolvedRefs") == expected
    granted = expected[0] == "True"
    assert _cond(ls["conditions"], "Programmed") == (("True", "Programmed") if granted else ("False", "Invalid"))
    certs = [cert.name for f in c.proxies[f"Gateway/{INFRA}/{gateway}"].frontends for cert in f.certificates]
    assert certs == ([f"{WEB}/certificate"] if granted else [])


def test_gateway_with_attached_routes() -> None:
    c = conformance_compiled("gateway-with-attached-routes")
    assert _listeners(c, "gateway-with-one-attached-route")["http"]["attachedRoutes"] == 1
    assert _listeners(c, "gateway-with-two-attached-routes")["http"]["attachedRoutes"] == 2
    assert _route_cond(c, "http-route-not-accepted", "gateway-with-two-attached-routes", "Accepted") == (
        "False",
        "NoMatchingListenerHostname",
    )
    # AttachedRoutes is counted even on a listener that cannot be served.
    unresolved = _listeners(c, "unresolved-gateway-with-one-attached-unresolved-route")["tls"]
    assert unresolved["attachedRoutes"] == 1
    assert _cond(unresolved["conditions"], "Programmed")[0] == "False"
    assert _cond(unresolved["conditions"], "ResolvedRefs")[0] == "False"
    assert _route_cond(c, "http-route-4", "unresolved-gateway-with-one-attached-unresolved-route", "ResolvedRefs") == (
        "False",
        "BackendNotFound",
    )


def test_gateway_with_attached_routes_on_port_8080() -> None:
    c = conformance_compiled("gateway-with-attached-routes-with-port-8080")
    attached = {n: ls["attachedRoutes"] for n, ls in _listeners(c, "gateway-with-two-listeners-and-one-attached-route").items()}
    assert attached == {"http-unattached": 0, "http": 1}


def test_https_listener_certificates_and_overlap() -> None:
    c = conformance_compiled("httproute-https-listener")
    for r in ("httproute-https-test", "httproute-https-test-no-hostname"):
        assert _route_cond(c, r, "same-namespace-with-https-listener", "Accepted") == ("True", "Accepted")
    (frontend,) = c.proxies[f"Gateway/{INFRA}/same-namespace-with-https-listener"].frontends
    assert frontend.protocol == "HTTPS"
    # One Secret for all four listeners; the one without hostname makes it the default.
    assert [(cert.name, cert.sni) for cert in frontend.certificates] == [(f"{INFRA}/tls-validity-checks-certificate", ())]
    assert "-----BEGIN CERTIFICATE-----" in frontend.certificates[0].pem and "PRIVATE KEY-----" in frontend.certificates[0].pem
    listeners = _listeners(c, "same-namespace-with-https-listener")
    overlapping = {n for n, ls in listeners.items() if find(ls["conditions"], "OverlappingTLSConfig")}
    assert overlapping == {"https-with-wildcard-hostname", "https-with-hostname-matching-wildcard"}


def test_conditions_carry_generation_and_time() -> None:
    c = conformance_compiled("httproute-matching")
    parent = _parent(c, "matching", "same-namespace")
    for cond in [*parent["conditions"], *c.status[("Gateway", f"{INFRA}/same-namespace")]["conditions"]]:
        assert set(cond) == {"type", "status", "reason", "message", "observedGeneration", "lastTransitionTime"}
        assert cond["observedGeneration"] == 1 and cond["lastTransitionTime"] == "2023-11-14T22:13:20Z"


def test_timestamps_survive_a_merge_when_status_is_unchanged() -> None:
    old = [
        {"type": "Accepted", "status": "True", "lastTransitionTime": "then"},
        {"type": "Programmed", "status": "False", "lastTransitionTime": "then"},
    ]
    new = [
        {"type": "Accepted", "status": "True", "lastTransitionTime": "now"},
        {"type": "Programmed", "status": "True", "lastTransitionTime": "now"},
    ]
    assert [c["lastTransitionTime"] for c in merge_conditions(old, new)] == ["then", "now"]


# --- hand-made manifests ---------------------------------------------------------------------------

NS = "apps"


def _gateway(listeners: str, name: str = "gw", extra: str = "") -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {NS}, generation: 3}}
spec:
  gatewayClassName: kemu
  listeners:
{listeners}
{extra}"""


SERVICES = f"""
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {NS}}}
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 8080, targetPort: 80}}
  - {{name: grpc, port: 9090, targetPort: 90, appProtocol: kubernetes.io/h2c}}
  - {{name: tls, port: 8443, targetPort: 443, appProtocol: https}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NS}}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template: {{metadata: {{labels: {{app: web}}}}}}
"""


def _route(name: str, spec: str, ns: str = NS) -> str:
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw, namespace: {NS}}}]
{spec}"""


HTTP80 = "  - {name: http, port: 80, protocol: HTTP}"


def _compile(text: str, **kw: Any) -> Compiled:
    return compile_gateways(world_from_docs(load_docs(text), **kw), now=NOW)


def _rc(c: Compiled, route_name: str, type_: str, ns: str = NS) -> tuple[str, str]:
    return _route_cond(c, route_name, "gw", type_, ns)


def _config(c: Compiled, name: str = "gw") -> Any:
    return c.proxies[f"Gateway/{NS}/{name}"]


def test_other_controllers_classes_are_left_alone() -> None:
    text = (
        """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
---"""
        + _gateway(HTTP80).replace("gatewayClassName: kemu", "gatewayClassName: other")
        + _route("r", "  rules: [{}]")
    )
    c = _compile(text)
    assert ("GatewayClass", "other") not in c.status and ("GatewayClass", "kemu") in c.status
    assert c.proxies == {} and ("HTTPRoute", f"{NS}/r") not in c.status


def test_gateway_programmed_waits_for_address_and_readiness() -> None:
    text = _gateway(HTTP80)
    assert _cond(_compile(text, addresses=False).status[("Gateway", f"{NS}/gw")]["conditions"], "Programmed") == (
        "False",
        "AddressNotAssigned",
    )
    pending = _compile(text, ready=False).status[("Gateway", f"{NS}/gw")]
    assert _cond(pending["conditions"], "Programmed") == ("False", "Pending")
    assert _cond(pending["listeners"][0]["conditions"], "Programmed") == ("False", "Pending")
    assert pending["conditions"][0]["observedGeneration"] == 3


def test_conflicting_listeners_are_not_accepted() -> None:
    listeners = "\n".join(
        [
            "  - {name: a, port: 80, protocol: HTTP, hostname: a.com}",
            "  - {name: a2, port: 80, protocol: HTTP, hostname: a.com}",
            "  - {name: b, port: 80, protocol: HTTP, hostname: b.com}",
            "  - {name: p, port: 8080, protocol: HTTP}",
            "  - {name: q, port: 8080, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}",
            "  - {name: t, port: 9000, protocol: TCP}",
        ]
    )
    c = _compile(_gateway(listeners))
    status = c.status[("Gateway", f"{NS}/gw")]
    by = {ls["name"]: ls for ls in status["listeners"]}
    assert _cond(by["a"]["conditions"], "Conflicted") == ("True", "HostnameConflict")
    assert _cond(by["a2"]["conditions"], "Accepted") == ("False", "HostnameConflict")
    assert _cond(by["b"]["conditions"], "Conflicted") == ("False", "NoConflicts")
    assert _cond(by["p"]["conditions"], "Conflicted") == ("True", "ProtocolConflict")
    assert _cond(by["q"]["conditions"], "Conflicted") == ("True", "ProtocolConflict")
    assert _cond(by["t"]["conditions"], "Accepted") == ("False", "UnsupportedProtocol")
    # Some listener is valid: the Gateway is accepted, saying some are not.
    assert _cond(status["conditions"], "Accepted") == ("True", "ListenersNotValid")
    assert c.ports[f"Gateway/{NS}/gw"] == ((80, "HTTP"),)
    assert [ls.name for ls in _config(c).frontends[0].listeners] == ["b"]


def test_allowed_routes_namespace_selector_with_expressions() -> None:
    listener = "  - name: http\n    port: 80\n    protocol: HTTP\n    allowedRoutes:\n      namespaces:\n        from: Selector\n        selector:\n          matchExpressions: [{key: team, operator: In, values: [blue, green]}]"
    namespaces = """
---
apiVersion: v1
kind: Namespace
metadata: {name: blue-ns, labels: {team: blue}}
---
apiVersion: v1
kind: Namespace
metadata: {name: red-ns, labels: {team: red}}"""
    text = _gateway(listener) + namespaces + _route("in-blue", "  rules: [{}]", "blue-ns") + _route("in-red", "  rules: [{}]", "red-ns")
    c = _compile(text)
    assert _rc(c, "in-blue", "Accepted", "blue-ns") == ("True", "Accepted")
    assert _rc(c, "in-red", "Accepted", "red-ns") == ("False", "NotAllowedByListeners")


def test_precedence_across_routes_hostname_then_age_then_name() -> None:
    text = (
        _gateway(HTTP80)
        + SERVICES
        # Created first (older), but a wildcard hostname loses to an exact one.
        + _route(
            "wild",
            "  hostnames: ['*.example.com']\n  rules: [{matches: [{path: {type: PathPrefix, value: /api}}], backendRefs: [{name: web, port: 8080}]}]",
        )
        + _route("exact", "  hostnames: [foo.example.com]\n  rules: [{backendRefs: [{name: web, port: 8080}]}]")
        # Same match as "b-same": the older one (created first) wins, whatever its name.
        + _route("z-old", "  rules: [{matches: [{path: {type: Exact, value: /same}}], backendRefs: [{name: web, port: 8080}]}]")
        + _route("b-same", "  rules: [{matches: [{path: {type: Exact, value: /same}}], backendRefs: [{name: web, port: 8080}]}]")
    )
    config = _config(_compile(text))
    take = lambda host, path: route(config, Request(80, host, path)).entry.route  # type: ignore[union-attr]  # noqa: E731
    assert take("foo.example.com", "/api/x") == f"HTTPRoute/{NS}/exact"
    # An exact-host entry that does not match leaves the request to less specific ones.
    config2 = _config(
        _compile(
            text.replace(
                "rules: [{backendRefs: [{name: web, port: 8080}]}]",
                "rules: [{matches: [{path: {value: /only}}], backendRefs: [{name: web, port: 8080}]}]",
            )
        )
    )
    assert route(config2, Request(80, "foo.example.com", "/api/x")).entry.route == f"HTTPRoute/{NS}/wild"  # type: ignore[union-attr]
    assert take("bar.example.com", "/same") == f"HTTPRoute/{NS}/z-old"
    # Equal age: alphabetical by namespace/name.
    world = world_from_docs(load_docs(text))
    same_age = World(**{**world.__dict__, "created": {}})
    assert route(_config(compile_gateways(same_age, now=NOW)), Request(80, "x", "/same")).entry.route == f"HTTPRoute/{NS}/b-same"  # type: ignore[union-attr]


def test_regular_expression_paths_rank_between_exact_and_prefix() -> None:
    rules = """  rules:
  - matches: [{path: {type: PathPrefix, value: /v1/users/long-prefix}}]
    backendRefs: [{name: web, port: 8080}]
  - matches: [{path: {type: RegularExpression, value: '/v1/.*'}}]
    backendRefs: [{name: web, port: 9090}]
  - matches: [{path: {type: Exact, value: /v1/users/long-prefix}}]
    backendRefs: [{name: web, port: 8080}]"""
    config = _config(_compile(_gateway(HTTP80) + SERVICES + _route("r", rules)))
    assert [e.match.path_type for e in config.frontends[0].listeners[0].entries] == ["Exact", "RegularExpression", "PathPrefix"]
    assert route(config, Request(80, "x", "/v1/users/long-prefix/more")).action_id == f"httproute/{NS}/r/1"


def test_backends_weights_h2c_names_and_endpoints() -> None:
    rules = """  rules:
  - backendRefs:
    - {name: web, port: 8080}
    - {name: web, port: 9090, weight: 0}
    - name: web
      port: 8080
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-B, value: '1'}]}}]
    - {name: web, port: 8443}
    - {name: web}
    timeouts: {request: 1m30s}"""
    c = _compile(_gateway(HTTP80) + SERVICES + _route("r", rules))
    (entry,) = _config(c).frontends[0].listeners[0].entries
    plain, h2c, filtered, tls, portless = entry.action.backends
    assert plain.name == f"{NS}/web:8080" and plain.weight == 1 and not plain.h2c
    assert [(e.port, e.pod) for e in plain.endpoints] == [(80, f"{NS}/web-0"), (80, f"{NS}/web-1"), (80, f"{NS}/web-2")]
    assert h2c.h2c and h2c.weight == 0 and h2c.endpoints[0].port == 90
    assert filtered.name.startswith(f"{NS}/web:8080~") and filtered.request_headers is not None
    assert tls.invalid == "UnsupportedProtocol" and portless.invalid == "BackendNotFound"
    assert entry.action.timeout_ms == 90_000
    assert _rc(c, "r", "ResolvedRefs") == ("False", "UnsupportedProtocol")


def test_unsupported_filter_makes_the_rule_answer_500() -> None:
    rules = """  rules:
  - matches: [{path: {value: /ext}}]
    filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Thing, name: x}}]
    backendRefs: [{name: web, port: 8080}]
  - backendRefs: [{name: web, port: 8080}]"""
    c = _compile(_gateway(HTTP80) + SERVICES + _route("r", rules))
    assert _rc(c, "r", "Accepted") == ("True", "Accepted")
    assert _rc(c, "r", "PartiallyInvalid") == ("True", "UnsupportedValue")
    assert route(_config(c), Request(80, "x", "/ext/a")).status == 500
    assert route(_config(c), Request(80, "x", "/other")).status == 200
    only_bad = _compile(_gateway(HTTP80) + SERVICES + _route("r", "\n".join(rules.splitlines()[:4])))
    assert _rc(only_bad, "r", "Accepted") == ("False", "UnsupportedValue")
    assert route(_config(only_bad), Request(80, "x", "/ext")).status == 404


def test_redirect_with_backend_refs_is_incompatible() -> None:
    rules = (
        "  rules:\n  - filters: [{type: RequestRedirect, requestRedirect: {hostname: x.org}}]\n    backendRefs: [{name: web, port: 8080}]"
    )
    c = _compile(_gateway(HTTP80) + SERVICES + _route("r", rules))
    assert _rc(c, "r", "Accepted") == ("False", "IncompatibleFilters")


def test_invalid_mirror_is_dropped() -> None:
    rules = "  rules:\n  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: missing, port: 80}}}]\n    backendRefs: [{name: web, port: 8080}]"
    c = _compile(_gateway(HTTP80) + SERVICES + _route("r", rules))
    out = route(_config(c), Request(80, "x", "/"))
    assert out.status == 200 and out.mirrors == ()
    assert _rc(c, "r", "ResolvedRefs") == ("False", "BackendNotFound")


def test_cross_namespace_certificate_needs_a_grant_and_sni_is_the_hostname() -> None:
    cert, key = placeholder_pem("CERTIFICATE"), placeholder_pem("PRIVATE KEY")
    listeners = (
        "  - {name: s, port: 443, protocol: HTTPS, hostname: secure.example.com, tls: {certificateRefs: [{name: c, namespace: certs}]}}"
    )
    docs = [*load_docs(_gateway(listeners)), tls_secret("certs", "c", cert, key)]
    denied = compile_gateways(world_from_docs(docs), now=NOW)
    assert _cond(denied.status[("Gateway", f"{NS}/gw")]["listeners"][0]["conditions"], "ResolvedRefs") == ("False", "RefNotPermitted")
    grant = load_docs(
        f"""
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: g, namespace: certs}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: Gateway, namespace: {NS}}}]
  to: [{{group: '', kind: Secret}}]"""
    )
    allowed = compile_gateways(world_from_docs(docs + grant), now=NOW)
    (frontend,) = _config(allowed).frontends
    assert [(c.name, c.sni) for c in frontend.certificates] == [("certs/c", ("secure.example.com",))]
    assert frontend.certificates[0].pem == cert + key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
def test_a_real_self_signed_certificate_is_accepted() -> None:
    cert, key = self_signed_certificate(["secure.example.com"])
    listeners = "  - {name: s, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: c}]}}"
    c = compile_gateways(world_from_docs([*load_docs(_gateway(listeners)), tls_secret(NS, "c", cert, key)]), now=NOW)
    assert _cond(c.status[("Gateway", f"{NS}/gw")]["listeners"][0]["conditions"], "ResolvedRefs") == ("True", "ResolvedRefs")
    assert c.ports[f"Gateway/{NS}/gw"] == ((443, "HTTPS"),)


@pytest.mark.parametrize(("text", "ms"), [("10s", 10_000), ("500ms", 500), ("1m", 60_000), ("1h30m", 5_400_000), ("0s", 0)])
def test_durations(text: str, ms: int) -> None:
    assert duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "10", "1.5s", "10d", "1h1m1s1ms1h", "s"])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError):
        duration_ms(text)
