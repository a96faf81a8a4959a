"""The Gateway API conformance request tables, through compile_gateways and route(): the
answers a user of the proxy gets (backend, status, redirect, what the backend sees).
Plus the router's own pieces (path rewriting, redirects, shares) on hand-made configs."""

from __future__ import annotations

import pytest

from emu.gateway.model import (
    Action,
    Backend,
    Endpoint,
    Frontend,
    HeaderMatch,
    HeaderModifier,
    Listener,
    Match,
    PathModifier,
    ProxyConfig,
    Redirect,
    Rewrite,
    RouteEntry,
)
from emu.gateway.router import Request, apply_headers, header_value, prefix_holds, query_value, redirect_location, replace_path, route
from tests.unit.gateway_tables import (
    ALL_ROWS,
    INFRA,
    MISDIRECTED,
    MISDIRECTED_MANIFEST,
    V1,
    V2,
    V3,
    Row,
    conformance_compiled,
    conformance_world,
)

pytestmark = pytest.mark.unit


def _gateway_address(manifest: str, gateway: str, without: tuple[str, ...] = ()) -> str:
    return conformance_world(manifest, without).addresses[f"Gateway/{INFRA}/{gateway}"][0]


def _row_id(row: Row) -> str:
    return f"{row.test}:{row.method}:{row.host or ''}{row.path}:{','.join(f'{k}={v}' for k, v in row.headers)}"


@pytest.mark.parametrize("row", ALL_ROWS, ids=[_row_id(r) for r in ALL_ROWS])
def test_conformance_request(row: Row) -> None:
    compiled = conformance_compiled(row.manifest, row.without)
    config = compiled.proxies[f"Gateway/{INFRA}/{row.gateway}"]
    address = _gateway_address(row.manifest, row.gateway, row.without)
    host = row.host if row.host is not None else address
    out = route(config, Request(port=row.port, host=host, path=row.path, method=row.method, headers=row.headers))

    assert out.status == row.status, out
    if row.location is not None:
        assert out.location == row.location.format(gw=address)
    if row.status != 200:
        return
    # The request reaches the backend's pods: every candidate is that Service's.
    assert out.backends, out
    for backend, weight in out.backends:
        assert weight > 0 and not backend.invalid
        assert backend.endpoints and all(e.pod.startswith(f"{row.namespace}/{row.backend}-") for e in backend.endpoints)
    backend = out.backends[0][0]
    seen = out.request_to(backend)
    # What the backend sees: ExpectedRequest, or the request unchanged.
    assert seen.path == (row.fwd_path if row.fwd_path is not None else row.path)
    assert seen.host == (row.fwd_host if row.fwd_host is not None else host)
    for name, value in row.fwd_headers:
        assert seen.header(name) == value, name
    for name in row.fwd_absent:
        assert seen.header(name) is None, name
    answer = out.response_from(backend, row.upstream)
    for name, value in row.response:
        assert header_value(answer, name) == value, name
    for name in row.response_absent:
        assert header_value(answer, name) is None, name
    assert sorted(m.backend.name.split(":")[0] for m in out.mirrors) == sorted(row.mirrored_to)


def test_weights_are_the_backend_refs_weights() -> None:
    # HTTPRouteWeight: 70/30, and the weight-0 backend never chosen.
    config = conformance_compiled("httproute-weight").proxies[f"Gateway/{INFRA}/same-namespace"]
    out = route(config, Request(80, "172.18.255.10", "/"))
    assert out.status == 200
    shares = {b.name.split(":")[0].split("/")[1]: out.share(b.name) for b, _ in out.backends}
    assert shares == {V1: pytest.approx(0.7), V2: pytest.approx(0.3)}
    assert V3 not in shares and out.error_share == 0


# --- the router's pieces, on hand-made configs -----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "prefix", "replacement", "expected"),
    [
        # The HTTPPathModifier.ReplacePrefixMatch table of httproute_types.go.
        ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo/", "/foo", "/xyz", "/xyz/"),
        ("/foo/bar", "/foo", "", "/bar"),
        ("/foo/", "/foo", "", "/"),
        ("/foo", "/foo", "", "/"),
        ("/foo/", "/foo", "/", "/"),
        ("/foo", "/foo", "/", "/"),
        ("/a/b", "/", "/x", "/x/a/b"),
    ],
)
def test_replace_prefix_match(path: str, prefix: str, replacement: str, expected: str) -> None:
    assert replace_path(path, PathModifier("ReplacePrefixMatch", replacement, prefix=prefix)) == expected


@pytest.mark.parametrize(
    ("prefix", "path", "holds"),
    [
        ("/abc", "/abc", True),
        ("/abc", "/abc/", True),
        ("/abc", "/abc/def", True),
        ("/abc", "/abcd", False),
        ("/abc/", "/abc", True),
        ("/", "/x", True),
    ],
)
def test_path_prefix_is_by_whole_segments(prefix: str, path: str, holds: bool) -> None:
    assert prefix_holds(prefix, path) is holds


def _config(
    entries: tuple[RouteEntry, ...], port: int = 80, protocol: str = "HTTP", hostnames: tuple[str | None, ...] = (None,)
) -> ProxyConfig:
    listeners = tuple(Listener(name=f"l{i}", hostname=h, entries=entries) for i, h in enumerate(hostnames))
    return ProxyConfig(name="Gateway/ns/gw", frontends=(Frontend(port=port, protocol=protocol, listeners=listeners),))  # type: ignore[arg-type]


def _entry(action: Action, match: Match | None = None, hostname: str | None = None) -> RouteEntry:
    return RouteEntry(hostname=hostname, match=match or Match(), action=action)


def _backend(name: str, weight: int = 1, invalid: str = "", endpoints: int = 1) -> Backend:
    eps = tuple(Endpoint(f"10.0.0.{i + 1}", 8080, f"ns/{name}-{i}") for i in range(endpoints))
    return Backend(name=name, weight=weight, endpoints=() if invalid else eps, invalid=invalid)


def test_invalid_backend_share_answers_500() -> None:
    config = _config((_entry(Action(id="a", backends=(_backend("ok"), _backend("bad", invalid="BackendNotFound")))),))
    out = route(config, Request(80, "x", "/"))
    assert out.status == 200 and out.error_share == 0.5
    only_bad = _config((_entry(Action(id="a", backends=(_backend("bad", invalid="RefNotPermitted"), _backend("zero", weight=0)))),))
    assert route(only_bad, Request(80, "x", "/")).status == 500


def test_no_backends_answers_500_and_no_endpoints_503() -> None:
    assert route(_config((_entry(Action(id="a")),)), Request(80, "x", "/")).status == 500
    assert route(_config((_entry(Action(id="a", backends=(_backend("empty", endpoints=0),))),)), Request(80, "x", "/")).status == 503


def test_unknown_port_has_no_frontend() -> None:
    assert route(_config((_entry(Action(id="a", backends=(_backend("b"),))),)), Request(81, "x", "/")).status == 0


def test_listener_isolation_no_fallback_to_a_less_specific_listener() -> None:
    # foo.example.com goes to its own listener, which has no route for /other: 404,
    # although the wildcard listener would take it.
    specific = Listener("specific", "foo.example.com", (_entry(Action(id="s", backends=(_backend("s"),)), Match(path="/only")),))
    wildcard = Listener("wild", "*.example.com", (_entry(Action(id="w", backends=(_backend("w"),))),))
    config = ProxyConfig("Gateway/ns/gw", (Frontend(80, "HTTP", (specific, wildcard)),))
    assert route(config, Request(80, "FOO.example.com:80", "/only")).action_id == "s"
    assert route(config, Request(80, "foo.example.com", "/other")).status == 404
    assert route(config, Request(80, "bar.example.com", "/other")).action_id == "w"
    assert route(config, Request(80, "example.com", "/")).status == 404


def test_header_and_query_matching_rules() -> None:
    by_header = Match(headers=(HeaderMatch("X-Env", "prod"), HeaderMatch("x-id", "[0-9]+", "RegularExpression")))
    by_query = Match(query=(HeaderMatch("q", "a b"),))
    config = _config(
        (_entry(Action(id="h", backends=(_backend("h"),)), by_header), _entry(Action(id="q", backends=(_backend("q"),)), by_query))
    )
    assert route(config, Request(80, "x", "/", headers=(("x-env", "prod"), ("X-ID", "42")))).action_id == "h"
    assert (
        route(config, Request(80, "x", "/", headers=(("x-env", "prod"), ("X-ID", "42a")))).status == 404
    )  # the regex holds for the whole value
    assert query_value("q=a%20b&q=first", "q") == "a%20b"  # as sent, first occurrence
    assert route(config, Request(80, "x", "/?q=a b&q=z")).action_id == "q"
    assert route(config, Request(80, "x", "/?Q=a b")).status == 404


def test_regex_path_must_match_the_whole_path() -> None:
    config = _config((_entry(Action(id="r", backends=(_backend("r"),)), Match(path_type="RegularExpression", path="/v[0-9]+")),))
    assert route(config, Request(80, "x", "/v12")).status == 200
    assert route(config, Request(80, "x", "/v12/x")).status == 404


def test_redirect_location_keeps_the_query_and_brackets_no_default_port() -> None:
    https = Frontend(443, "HTTPS")
    http8080 = Frontend(8080, "HTTP")
    assert redirect_location(Redirect(), https, "a.com", "/p", "?x=1") == "https://a.com/p?x=1"
    assert redirect_location(Redirect(scheme="http"), https, "a.com", "/p", "") == "http://a.com/p"
    assert redirect_location(Redirect(), http8080, "a.com", "/p", "") == "http://a.com:8080/p"
    assert redirect_location(Redirect(port=443, scheme="https"), http8080, "a.com", "/", "") == "https://a.com/"
    assert redirect_location(Redirect(port=80), https, "a.com", "/", "") == "https://a.com:80/"
    prefix = PathModifier("ReplacePrefixMatch", "/new", prefix="/old")
    assert redirect_location(Redirect(path=prefix), http8080, "[::1]", "/old/x", "") == "http://[::1]:8080/new/x"


def test_header_modifier_set_add_remove_case_insensitively() -> None:
    mod = HeaderModifier(set=(("X-A", "1"),), add=(("x-b", "2"),), remove=("X-C",))
    out = apply_headers((("x-a", "0"), ("X-B", "1"), ("x-c", "gone"), ("Keep", "k")), mod)
    assert header_value(out, "X-A") == "1"
    assert header_value(out, "X-B") == "1,2"
    assert header_value(out, "x-c") is None and header_value(out, "keep") == "k"


def test_backend_level_request_filter_applies_after_the_rules() -> None:
    rule_level = HeaderModifier(set=(("X-Who", "rule"),))
    backend = Backend("b", endpoints=(Endpoint("10.0.0.1", 80),), request_headers=HeaderModifier(set=(("X-Who", "backend"),)))
    out = route(_config((_entry(Action(id="a", request_headers=rule_level, backends=(backend,))),)), Request(80, "x", "/"))
    assert out.forwarded is not None and out.forwarded.header("X-Who") == "rule"
    assert out.request_to(backend).header("X-Who") == "backend"


def test_repeated_header_holds_if_one_line_does_and_values_are_not_split() -> None:
    config = _config((_entry(Action(id="h", backends=(_backend("h"),)), Match(headers=(HeaderMatch("X-Env", "prod"),))),))
    assert route(config, Request(80, "x", "/", headers=(("X-Env", "dev"), ("x-env", "prod")))).status == 200
    assert route(config, Request(80, "x", "/", headers=(("X-Env", "dev,prod"),))).status == 404


def test_query_mark_is_kept_and_host_port_dropped() -> None:
    rewrite = Action(id="a", rewrite=Rewrite(path=PathModifier("ReplaceFullPath", "/new")), backends=(_backend("b"),))
    out = route(_config((_entry(rewrite),), hostnames=("[::1]",)), Request(80, "[::1]:80", "/old?"))
    assert out.status == 200 and out.forwarded is not None
    assert out.forwarded.path == "/new?" and out.forwarded.host == "[::1]:80"
    moved = route(_config((_entry(Action(id="r", redirect=Redirect(hostname="b.org"))),)), Request(80, "a.org", "/p?"))
    assert moved.location == "http://b.org/p?"


@pytest.mark.parametrize("sni,host,status,backend", MISDIRECTED)
def test_misdirected_requests_on_https_listeners_get_421(sni: str, host: str, status: int, backend: str | None) -> None:
    compiled = conformance_compiled(MISDIRECTED_MANIFEST)
    config = compiled.proxies[f"Gateway/{INFRA}/same-namespace-with-https-listener"]
    out = route(config, Request(443, host, "/detect-misdirected-requests", sni=sni))
    assert out.status == status
    if backend is not None:
        assert [b.name for b, _ in out.backends] == [f"{INFRA}/{backend}:8080"]


def test_without_a_server_name_the_host_alone_chooses() -> None:
    config = conformance_compiled(MISDIRECTED_MANIFEST).proxies[f"Gateway/{INFRA}/same-namespace-with-https-listener"]
    assert route(config, Request(443, "second-example.org", "/detect-misdirected-requests")).status == 200
