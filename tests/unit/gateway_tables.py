"""The request tables of the Gateway API conformance tests (conformance/tests/*.go at
commit 4564255ac2c35d582249b3cdf261bdf51c8bca32), transcribed: one Row per request,
with what the suite expects of the answer. Manifests are in
tests/data/gateway-conformance/tests/ (the base manifests always apply).

Where the suite sends no Host, the Host is the gateway's address (written "{gw}" in
expected Locations), as the suite's requests go to that address.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from emu.gateway.gateway_api import compile_gateways
from emu.gateway.model import Compiled, World
from emu.gateway.testing import load_files, placeholder_pem, tls_secret, world_from_docs

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "gateway-conformance")
NOW = 1_700_000_000.0
INFRA = "gateway-conformance-infra"
WEB = "gateway-conformance-web-backend"
V1, V2, V3 = "infra-backend-v1", "infra-backend-v2", "infra-backend-v3"
H = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Row:
    test: str  # the conformance test's ShortName
    manifest: str  # its manifest file, without .yaml
    gateway: str  # the gateway (in INFRA) the request is sent to
    path: str
    host: str | None = None  # None: the gateway's address
    port: int = 80
    method: str = "GET"
    headers: H = ()
    backend: str | None = None  # the Deployment whose pods must answer
    namespace: str = INFRA
    status: int = 200
    location: str | None = None
    fwd_path: str | None = None  # ExpectedRequest (default: the request unchanged)
    fwd_host: str | None = None
    fwd_headers: H = ()
    fwd_absent: tuple[str, ...] = ()
    upstream: H = ()  # BackendSetResponseHeaders
    response: H = ()
    response_absent: tuple[str, ...] = ()
    mirrored_to: tuple[str, ...] = ()  # "ns/service"
    without: tuple[str, ...] = ()  # kinds deleted from the manifest before the request


def suite_secrets() -> list[dict[str, Any]]:
    """The Secrets the conformance suite creates at run time (suite.go), as placeholders."""
    cert, key = placeholder_pem("CERTIFICATE"), placeholder_pem("PRIVATE KEY")
    return [tls_secret(WEB, "certificate", cert, key), tls_secret(INFRA, "tls-validity-checks-certificate", cert, key)]


def conformance_docs(manifest: str, without: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    docs = load_files([os.path.join(DATA, "base", "manifests.yaml"), os.path.join(DATA, "tests", f"{manifest}.yaml")])
    return [d for d in docs if d.get("kind") not in without] + suite_secrets()


@functools.cache
def conformance_world(manifest: str, without: tuple[str, ...] = ()) -> World:
    """The base manifests and one test's, as the suite applies them."""
    return world_from_docs(conformance_docs(manifest, without))


@functools.cache
def conformance_compiled(manifest: str, without: tuple[str, ...] = ()) -> Compiled:
    return compile_gateways(conformance_world(manifest, without), now=NOW)


def _rows(test: str, manifest: str, gateway: str, *rows: dict) -> list[Row]:
    return [Row(test=test, manifest=manifest, gateway=gateway, **r) for r in rows]


SN = "same-namespace"

MATCHING = _rows(
    "HTTPRouteMatching",
    "httproute-matching",
    SN,
    dict(path="/", backend=V1),
    dict(path="/example", backend=V1),
    dict(path="/", headers=(("Version", "one"),), backend=V1),
    dict(path="/v2", backend=V2),
    dict(path="/v2/example", backend=V2),
    dict(path="/", headers=(("Version", "two"),), backend=V2),
    dict(path="/v2/", backend=V2),
    dict(path="/v2example", backend=V1),  # not a segment prefix of /v2
    dict(path="/foo/v2/example", backend=V1),
)

EXACT_PATH = _rows(
    "HTTPRouteExactPathMatching",
    "httproute-exact-path-matching",
    SN,
    dict(path="/one", backend=V1),
    dict(path="/two", backend=V2),
    dict(path="/", status=404),
    dict(path="/one/example", status=404),
    dict(path="/two/", status=404),
    dict(path="/Two", status=404),
)

HEADER_MATCHING = _rows(
    "HTTPRouteHeaderMatching",
    "httproute-header-matching",
    SN,
    dict(path="/", headers=(("Version", "one"),), backend=V1),
    dict(path="/", headers=(("Version", "two"),), backend=V2),
    dict(path="/", headers=(("Version", "two"), ("Color", "orange")), backend=V1),
    dict(path="/", headers=(("Version", "two"), ("Color", "blue")), backend=V2),
    dict(path="/", headers=(("Color", "orange"),), status=404),
    dict(path="/", headers=(("Some-Other-Header", "one"),), status=404),
    dict(path="/", headers=(("Color", "blue"),), backend=V1),
    dict(path="/", headers=(("Color", "green"),), backend=V1),
    dict(path="/", headers=(("Color", "red"),), backend=V2),
    dict(path="/", headers=(("Color", "yellow"),), backend=V2),
    dict(path="/", headers=(("Color", "purple"),), status=404),
)

ACROSS_ROUTES = _rows(
    "HTTPRouteMatchingAcrossRoutes",
    "httproute-matching-across-routes",
    SN,
    dict(host="example.com", path="/", backend=V1),
    dict(host="example.com", path="/example", backend=V1),
    dict(host="example.net", path="/example", backend=V1),
    dict(host="example.com", path="/example", headers=(("Version", "one"),), backend=V1),
    dict(host="example.com", path="/v2", backend=V2),
    dict(host="example.net", path="/v2", backend=V1),  # v2 matches are limited to example.com
    dict(host="example.com", path="/v2/example", backend=V2),
    dict(host="example.com", path="/", headers=(("Version", "two"),), backend=V2),
)

PATH_ORDER = _rows(
    "HTTPRoutePathMatchOrder",
    "httproute-path-match-order",
    SN,
    dict(path="/match/exact/one", backend=V3),
    dict(path="/match/exact", backend=V2),
    dict(path="/match", backend=V1),
    dict(path="/match/prefix/one/any", backend=V2),
    dict(path="/match/prefix/any", backend=V1),
    dict(path="/match/any", backend=V3),
)

_HI = "httproute-hostname-intersection"
HOSTNAME_INTERSECTION = _rows(
    "HTTPRouteHostnameIntersection",
    _HI,
    _HI,
    # specific-host-matches-listener-specific-host
    dict(host="very.specific.com", path="/s1", backend=V1),
    dict(host="very.specific.com:1234", path="/s1", backend=V1),  # the port is ignored
    dict(host="non.matching.com", path="/s1", status=404),
    dict(host="foo.nonmatchingwildcard.io", path="/s1", status=404),
    dict(host="foo.wildcard.io", path="/s1", status=404),
    dict(host="very.specific.com", path="/non-matching-prefix", status=404),
    # specific-host-matches-listener-wildcard-host
    dict(host="foo.wildcard.io", path="/s2", backend=V2),
    dict(host="bar.wildcard.io", path="/s2", backend=V2),
    dict(host="foo.bar.wildcard.io", path="/s2", backend=V2),
    dict(host="non.matching.com", path="/s2", status=404),
    dict(host="wildcard.io", path="/s2", status=404),
    dict(host="very.specific.com", path="/s2", status=404),
    dict(host="foo.wildcard.io", path="/non-matching-prefix", status=404),
    # wildcard-host-matches-listener-specific-host
    dict(host="very.specific.com", path="/s3", backend=V3),
    dict(host="non.matching.com", path="/s3", status=404),
    dict(host="foo.specific.com", path="/s3", status=404),
    dict(host="foo.wildcard.io", path="/s3", status=404),
    dict(host="very.specific.com", path="/non-matching-prefix", status=404),
    # wildcard-host-matches-listener-wildcard-host
    dict(host="foo.anotherwildcard.io", path="/s4", backend=V1),
    dict(host="bar.anotherwildcard.io", path="/s4", backend=V1),
    dict(host="foo.bar.anotherwildcard.io", path="/s4", backend=V1),
    dict(host="anotherwildcard.io", path="/s4", status=404),
    dict(host="foo.wildcard.io", path="/s4", status=404),
    dict(host="very.specific.com", path="/s4", status=404),
    dict(host="foo.anotherwildcard.io", path="/non-matching-prefix", status=404),
    # no-intersecting-hosts
    dict(host="specific.but.wrong.com", path="/s5", status=404),
    dict(host="wildcard.io", path="/s5", status=404),
) + _rows(
    "HTTPRouteHostnameIntersection",
    _HI,
    f"{_HI}-all",
    dict(host="first.com", path="/", backend=V2),
    dict(host="sub.first.com", path="/", backend=V2),
    dict(host="second.com", path="/", backend=V2),
    dict(host="sub.second.com", path="/", backend=V2),
    dict(host="third.com", path="/", status=404),
    dict(host="sub.third.com", path="/", status=404),
)

_LHM = "httproute-listener-hostname-matching"
LISTENER_HOSTNAME = _rows(
    "HTTPRouteListenerHostnameMatching",
    _LHM,
    _LHM,
    dict(host="bar.com", path="/", backend=V1),
    dict(host="foo.bar.com", path="/", backend=V2),
    dict(host="baz.bar.com", path="/", backend=V3),
    dict(host="boo.bar.com", path="/", backend=V3),
    dict(host="multiple.prefixes.bar.com", path="/", backend=V3),
    dict(host="multiple.prefixes.foo.com", path="/", backend=V3),
    dict(host="foo.com", path="/", status=404),
    dict(host="no.matching.host", path="/", status=404),
)

_LPM = "httproute-listener-port-matching"
LISTENER_PORT = _rows(
    "HTTPRouteListenerPortMatching",
    _LPM,
    _LPM,
    dict(host="foo.com", path="/", backend=V1),
    dict(host="foo.com:8080", port=8080, path="/", backend=V2),
    dict(host="bar.com:8080", port=8080, path="/", backend=V2),
    dict(host="foo.com:8090", port=8090, path="/", backend=V3),
    dict(host="bar.com:8090", port=8090, path="/", status=404),
)

REFERENCES = (
    _rows(
        "HTTPRouteCrossNamespace", "httproute-cross-namespace", "backend-namespaces", dict(path="/", backend="web-backend", namespace=WEB)
    )
    + _rows(
        "HTTPRouteReferenceGrant",
        "httproute-reference-grant",
        SN,
        dict(path="/", backend="web-backend", namespace=WEB),
        dict(path="/", status=500, without=("ReferenceGrant",)),  # after deleting the grant
    )
    + _rows("HTTPRouteInvalidReferenceGrant", "httproute-invalid-reference-grant", SN, dict(path="/", status=500))
    + _rows("HTTPRouteInvalidNonExistentBackendRef", "httproute-invalid-nonexistent-backendref", SN, dict(path="/", status=500))
    + _rows("HTTPRouteInvalidBackendRefUnknownKind", "httproute-invalid-backendref-unknown-kind", SN, dict(path="/v2", status=500))
    + _rows("HTTPRouteInvalidCrossNamespaceBackendRef", "httproute-invalid-cross-namespace-backend-ref", SN, dict(path="/", status=500))
)


def _request_header_rows(test: str, manifest: str) -> list[Row]:
    return _rows(
        test,
        manifest,
        SN,
        dict(
            path="/set",
            headers=(("Some-Other-Header", "val"),),
            fwd_headers=(("Some-Other-Header", "val"), ("X-Header-Set", "set-overwrites-values")),
            backend=V1,
        ),
        dict(
            path="/set",
            headers=(("Some-Other-Header", "val"), ("X-Header-Set", "some-other-value")),
            fwd_headers=(("Some-Other-Header", "val"), ("X-Header-Set", "set-overwrites-values")),
            backend=V1,
        ),
        dict(
            path="/add",
            headers=(("Some-Other-Header", "val"),),
            fwd_headers=(("Some-Other-Header", "val"), ("X-Header-Add", "add-appends-values")),
            backend=V1,
        ),
        dict(
            path="/add",
            headers=(("Some-Other-Header", "val"), ("X-Header-Add", "some-other-value")),
            fwd_headers=(("Some-Other-Header", "val"), ("X-Header-Add", "some-other-value,add-appends-values")),
            backend=V1,
        ),
        dict(path="/remove", headers=(("X-Header-Remove", "val"),), fwd_absent=("X-Header-Remove",), backend=V1),
        dict(
            path="/multiple",
            headers=(
                ("X-Header-Set-2", "set-val-2"),
                ("X-Header-Add-2", "add-val-2"),
                ("X-Header-Remove-2", "remove-val-2"),
                ("Another-Header", "another-header-val"),
            ),
            fwd_headers=(
                ("X-Header-Set-1", "header-set-1"),
                ("X-Header-Set-2", "header-set-2"),
                ("X-Header-Add-1", "header-add-1"),
                ("X-Header-Add-2", "add-val-2,header-add-2"),
                ("X-Header-Add-3", "header-add-3"),
                ("Another-Header", "another-header-val"),
            ),
            fwd_absent=("X-Header-Remove-1", "X-Header-Remove-2"),
            backend=V1,
        ),
        dict(
            path="/case-insensitivity",
            headers=(
                ("x-header-set", "original-val-set"),
                ("x-header-add", "original-val-add"),
                ("x-header-remove", "original-val-remove"),
                ("Another-Header", "another-header-val"),
            ),
            fwd_headers=(
                ("X-Header-Set", "header-set"),
                ("X-Header-Add", "original-val-add,header-add"),
                ("Another-Header", "another-header-val"),
            ),
            fwd_absent=("x-header-remove", "X-Header-Remove"),
            backend=V1,
        ),
    )


REQUEST_HEADERS = _request_header_rows("HTTPRouteRequestHeaderModifier", "httproute-request-header-modifier") + _request_header_rows(
    "HTTPRouteBackendRequestHeaderModifier", "httproute-request-header-modifier-backend"
)

RESPONSE_HEADERS = _rows(
    "HTTPRouteResponseHeaderModifier",
    "httproute-response-header-modifier",
    SN,
    dict(
        path="/set",
        upstream=(("Some-Other-Header", "val"),),
        response=(("Some-Other-Header", "val"), ("X-Header-Set", "set-overwrites-values")),
        backend=V1,
    ),
    dict(
        path="/set",
        upstream=(("Some-Other-Header", "val"), ("X-Header-Set", "some-other-value")),
        response=(("Some-Other-Header", "val"), ("X-Header-Set", "set-overwrites-values")),
        backend=V1,
    ),
    dict(
        path="/add",
        upstream=(("Some-Other-Header", "val"),),
        response=(("Some-Other-Header", "val"), ("X-Header-Add", "add-appends-values")),
        backend=V1,
    ),
    dict(
        path="/add",
        upstream=(("Some-Other-Header", "val"), ("X-Header-Add", "some-other-value")),
        response=(("Some-Other-Header", "val"), ("X-Header-Add", "some-other-value,add-appends-values")),
        backend=V1,
    ),
    dict(path="/remove", upstream=(("X-Header-Remove", "val"),), response_absent=("X-Header-Remove",), backend=V1),
    dict(
        path="/multiple",
        upstream=(
            ("X-Header-Set-2", "set-val-2"),
            ("X-Header-Add-2", "add-val-2"),
            ("X-Header-Remove-2", "remove-val-2"),
            ("Another-Header", "another-header-val"),
            ("X-Header-Remove-1", "val"),
        ),
        response=(
            ("X-Header-Set-1", "header-set-1"),
            ("X-Header-Set-2", "header-set-2"),
            ("X-Header-Add-1", "header-add-1"),
            ("X-Header-Add-2", "add-val-2,header-add-2"),
            ("X-Header-Add-3", "header-add-3"),
            ("Another-Header", "another-header-val"),
        ),
        response_absent=("X-Header-Remove-1", "X-Header-Remove-2"),
        backend=V1,
    ),
    dict(
        path="/case-insensitivity",
        upstream=(
            ("x-header-set", "original-val-set"),
            ("x-header-add", "original-val-add"),
            ("x-header-remove", "original-val-remove"),
            ("Another-Header", "another-header-val"),
        ),
        response=(
            ("X-Header-Set", "header-set"),
            ("X-Header-Add", "original-val-add,header-add"),
            ("X-Lowercase-Add", "lowercase-add"),
            ("X-Mixedcase-Add-1", "mixedcase-add-1"),
            ("X-Mixedcase-Add-2", "mixedcase-add-2"),
            ("X-Uppercase-Add", "uppercase-add"),
            ("Another-Header", "another-header-val"),
        ),
        response_absent=("x-header-remove", "X-Header-Remove"),
        backend=V1,
    ),
    dict(
        path="/response-and-request-header-modifiers",
        headers=(("X-Header-Remove", "remove-val"), ("X-Header-Add-Append", "append-val-1"), ("X-Header-Echo", "echo")),
        upstream=(
            ("X-Header-Set-2", "set-val-2"),
            ("X-Header-Add-2", "add-val-2"),
            ("X-Header-Remove-2", "remove-val-2"),
            ("Another-Header", "another-header-val"),
            ("X-Header-Remove-1", "remove-val-1"),
            ("X-Header-Echo", "echo"),
        ),
        fwd_headers=(
            ("X-Header-Add", "header-val-1"),
            ("X-Header-Set", "set-overwrites-values"),
            ("X-Header-Add-Append", "append-val-1,header-val-2"),
            ("X-Header-Echo", "echo"),
        ),
        fwd_absent=("X-Header-Remove",),
        response=(
            ("X-Header-Set-1", "header-set-1"),
            ("X-Header-Set-2", "header-set-2"),
            ("X-Header-Add-1", "header-add-1"),
            ("X-Header-Add-2", "add-val-2,header-add-2"),
            ("Another-Header", "another-header-val"),
            ("X-Header-Echo", "echo"),
        ),
        response_absent=("X-Header-Remove-1", "X-Header-Remove-2"),
        backend=V1,
    ),
)

REDIRECTS = (
    _rows(
        "HTTPRouteRedirectHostAndStatus",
        "httproute-redirect-host-and-status",
        SN,
        dict(path="/hostname-redirect", status=302, location="http://example.org/hostname-redirect"),
        dict(path="/host-and-status", status=301, location="http://example.org/host-and-status"),
    )
    + _rows(
        "HTTPRouteRedirectPath",
        "httproute-redirect-path",
        SN,
        dict(path="/original-prefix/lemon", status=302, location="http://{gw}/replacement-prefix/lemon"),
        dict(path="/full/path/original", status=302, location="http://{gw}/full-path-replacement"),
        dict(path="/path-and-host", status=302, location="http://example.org/replacement-prefix"),
        dict(path="/path-and-status", status=301, location="http://{gw}/replacement-prefix"),
        dict(path="/full-path-and-host", status=302, location="http://example.org/replacement-full"),
        dict(path="/full-path-and-status", status=301, location="http://{gw}/replacement-full"),
    )
    + _rows(
        "HTTPRouteRedirectPort",
        "httproute-redirect-port",
        SN,
        dict(path="/port", status=302, location="http://{gw}:8083/port"),
        dict(path="/port-and-host", status=302, location="http://example.org:8083/port-and-host"),
        dict(path="/port-and-status", status=301, location="http://{gw}:8083/port-and-status"),
        dict(path="/port-and-host-and-status", status=302, location="http://example.org:8083/port-and-host-and-status"),
    )
    + _rows(
        "HTTPRouteRedirectScheme",
        "httproute-redirect-scheme",
        SN,
        dict(path="/scheme", status=302, location="https://{gw}/scheme"),
        dict(path="/scheme-and-host", status=302, location="https://example.org/scheme-and-host"),
        dict(path="/scheme-and-status", status=301, location="https://{gw}/scheme-and-status"),
        dict(path="/scheme-and-host-and-status", status=302, location="https://example.org/scheme-and-host-and-status"),
    )
)

_PS = "httproute-redirect-port-and-scheme"
PORT_AND_SCHEME = (
    _rows(
        "HTTPRouteRedirectPortAndScheme",
        _PS,
        SN,
        dict(path="/scheme-nil-and-port-nil", status=302, location="http://example.org/scheme-nil-and-port-nil"),
        dict(path="/scheme-nil-and-port-80", status=302, location="http://example.org/scheme-nil-and-port-80"),
        dict(path="/scheme-nil-and-port-8080", status=302, location="http://example.org:8080/scheme-nil-and-port-8080"),
        dict(path="/scheme-https-and-port-nil", status=302, location="https://example.org/scheme-https-and-port-nil"),
        dict(path="/scheme-https-and-port-443", status=302, location="https://example.org/scheme-https-and-port-443"),
        dict(path="/scheme-https-and-port-8443", status=302, location="https://example.org:8443/scheme-https-and-port-8443"),
    )
    + _rows(
        "HTTPRouteRedirectPortAndScheme",
        _PS,
        "same-namespace-with-http-listener-on-8080",
        dict(port=8080, path="/scheme-nil-and-port-nil", status=302, location="http://example.org:8080/scheme-nil-and-port-nil"),
        dict(port=8080, path="/scheme-nil-and-port-80", status=302, location="http://example.org/scheme-nil-and-port-80"),
        dict(port=8080, path="/scheme-https-and-port-nil", status=302, location="https://example.org/scheme-https-and-port-nil"),
    )
    + _rows(
        "HTTPRouteRedirectPortAndScheme",
        _PS,
        "same-namespace-with-https-listener",
        dict(
            port=443,
            host="example.org",
            path="/scheme-nil-and-port-nil",
            status=302,
            location="https://example.org/scheme-nil-and-port-nil",
        ),
        dict(
            port=443,
            host="example.org",
            path="/scheme-nil-and-port-443",
            status=302,
            location="https://example.org/scheme-nil-and-port-443",
        ),
        dict(
            port=443,
            host="example.org",
            path="/scheme-nil-and-port-8443",
            status=302,
            location="https://example.org:8443/scheme-nil-and-port-8443",
        ),
        dict(
            port=443,
            host="example.org",
            path="/scheme-http-and-port-nil",
            status=302,
            location="http://example.org/scheme-http-and-port-nil",
        ),
        dict(
            port=443, host="example.org", path="/scheme-http-and-port-80", status=302, location="http://example.org/scheme-http-and-port-80"
        ),
        dict(
            port=443,
            host="example.org",
            path="/scheme-http-and-port-8080",
            status=302,
            location="http://example.org:8080/scheme-http-and-port-8080",
        ),
    )
)

QUERY_PARAMS = _rows(
    "HTTPRouteQueryParamMatching",
    "httproute-query-param-matching",
    SN,
    dict(path="/?animal=whale", backend=V1),
    dict(path="/?animal=dolphin", backend=V2),
    dict(path="/?animal=dolphin&color=blue", backend=V3),
    dict(path="/?ANIMAL=Whale", backend=V3),
    dict(path="/?animal=whale&otherparam=irrelevant", backend=V1),
    dict(path="/?animal=dolphin&color=yellow", backend=V2),
    dict(path="/?color=blue", status=404),
    dict(path="/?animal=dog", status=404),
    dict(path="/?animal=whaledolphin", status=404),
    dict(path="/", status=404),
    # combinations with core match types
    dict(path="/path1?animal=whale", backend=V1),
    dict(path="/?animal=whale", headers=(("version", "one"),), backend=V2),
    dict(path="/path2?animal=whale", headers=(("version", "two"),), backend=V3),
    # matches ORed together
    dict(path="/path3?animal=shark", backend=V1),
    dict(path="/path4?animal=kraken", headers=(("version", "three"),), backend=V1),
    # match types ANDed together
    dict(path="/?animal=shark", status=404),
    dict(path="/path4?animal=kraken", status=404),
    # precedence
    dict(path="/path5?animal=hydra", backend=V1),
    dict(path="/?animal=hydra", headers=(("version", "four"),), backend=V3),
)

METHODS = _rows(
    "HTTPRouteMethodMatching",
    "httproute-method-matching",
    SN,
    dict(method="POST", path="/", backend=V1),
    dict(method="GET", path="/", backend=V2),
    dict(method="HEAD", path="/", status=404),
    dict(path="/path1", method="GET", backend=V1),
    dict(path="/", method="PUT", headers=(("version", "one"),), backend=V2),
    dict(path="/path2", method="POST", headers=(("version", "two"),), backend=V3),
    dict(path="/path3", method="PATCH", backend=V1),
    dict(path="/path4", method="DELETE", headers=(("version", "three"),), backend=V1),
    dict(path="/", method="PUT", status=404),
    dict(path="/path4", method="DELETE", status=404),
    dict(path="/path5", method="PATCH", backend=V1),
    dict(path="/", method="PATCH", headers=(("version", "four"),), backend=V2),
)

_MODIFY = dict(
    fwd_headers=(
        ("X-Header-Add", "header-val-1"),
        ("X-Header-Add-Append", "append-val-1,header-val-2"),
        ("X-Header-Set", "set-overwrites-values"),
    ),
    fwd_absent=("X-Header-Remove",),
)
REWRITES = _rows(
    "HTTPRouteRewritePath",
    "httproute-rewrite-path",
    SN,
    dict(path="/prefix/one/two", fwd_path="/one/two", backend=V1),
    dict(path="/strip-prefix/three", fwd_path="/three", backend=V1),
    dict(path="/strip-prefix", fwd_path="/", backend=V1),
    dict(path="/full/one/two", fwd_path="/one", backend=V1),
    dict(
        path="/full/rewrite-path-and-modify-headers/test",
        headers=(("X-Header-Remove", "remove-val"), ("X-Header-Add-Append", "append-val-1"), ("X-Header-Set", "set-val")),
        fwd_path="/test",
        backend=V1,
        **_MODIFY,
    ),
    dict(
        path="/prefix/rewrite-path-and-modify-headers/one",
        headers=(("X-Header-Remove", "remove-val"), ("X-Header-Add-Append", "append-val-1"), ("X-Header-Set", "set-val")),
        fwd_path="/prefix/one",
        backend=V1,
        **_MODIFY,
    ),
) + _rows(
    "HTTPRouteRewriteHost",
    "httproute-rewrite-host",
    SN,
    dict(host="rewrite.example", path="/one", fwd_path="/one", fwd_host="one.example.org", backend=V1),
    dict(host="rewrite.example", path="/two", fwd_path="/two", fwd_host="example.org", backend=V2),
    dict(
        host="rewrite.example",
        path="/rewrite-host-and-modify-headers",
        headers=(("X-Header-Remove", "remove-val"), ("X-Header-Add-Append", "append-val-1")),
        fwd_path="/rewrite-host-and-modify-headers",
        fwd_host="test.example.org",
        backend=V2,
        **_MODIFY,
    ),
)

MIRRORS = _rows(
    "HTTPRouteRequestMirror",
    "httproute-request-mirror",
    SN,
    dict(path="/mirror", fwd_path="/mirror", backend=V1, mirrored_to=(f"{INFRA}/{V2}",)),
    dict(
        path="/mirror-and-modify-headers",
        headers=(("X-Header-Remove", "remove-val"), ("X-Header-Add-Append", "append-val-1")),
        fwd_path="/mirror-and-modify-headers",
        backend=V1,
        mirrored_to=(f"{INFRA}/{V2}",),
        **_MODIFY,
    ),
)

HTTPS_LISTENER = _rows(
    "HTTPRouteHTTPSListener",
    "httproute-https-listener",
    "same-namespace-with-https-listener",
    dict(port=443, host="example.org", path="/", backend=V1),
    dict(port=443, host="unknown-example.org", path="/", status=404),
    dict(port=443, host="second-example.org", path="/", backend=V2),
)

ALL_ROWS: list[Row] = [
    *MATCHING,
    *EXACT_PATH,
    *HEADER_MATCHING,
    *ACROSS_ROUTES,
    *PATH_ORDER,
    *HOSTNAME_INTERSECTION,
    *LISTENER_HOSTNAME,
    *LISTENER_PORT,
    *REFERENCES,
    *REQUEST_HEADERS,
    *RESPONSE_HEADERS,
    *REDIRECTS,
    *PORT_AND_SCHEME,
    *QUERY_PARAMS,
    *METHODS,
    *REWRITES,
    *MIRRORS,
    *HTTPS_LISTENER,
]


# HTTPRouteHTTPSListenerDetectMisdirectedRequests: (TLS server name, Host, status, backend).
MISDIRECTED_MANIFEST = "httproute-https-listener-detect-misdirected-requests"
MISDIRECTED: list[tuple[str, str, int, str | None]] = [
    ("example.org", "example.org", 200, V1),
    ("example.org", "second-example.org", 421, None),
    ("example.org", "unknown-example.org", 404, None),
    ("second-example.org", "second-example.org", 200, V2),
    ("second-example.org", "example.org", 421, None),
    ("second-example.org", "unknown-example.org", 421, None),
    ("third-example.wildcard.org", "third-example.wildcard.org", 200, V3),
    ("third-example.wildcard.org", "fith-example.wildcard.org", 200, V3),
    ("third-example.wildcard.org", "fourth-example.wildcard.org", 421, None),
    ("third-example.wildcard.org", "second-example.org", 421, None),
    ("third-example.wildcard.org", "unknown-example.org", 421, None),
    ("fourth-example.wildcard.org", "fourth-example.wildcard.org", 200, V1),
    ("fourth-example.wildcard.org", "fith-example.wildcard.org", 421, None),
    ("unknown-example.org", "example.org", 200, V1),
    ("unknown-example.org", "unknown-example.org", 404, None),
]
