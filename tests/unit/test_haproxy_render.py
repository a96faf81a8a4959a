"""The HAProxy configuration rendered from route models: its structure, how it spells
user strings, the spec's redirect port rules, and that HAProxy loads every rendered
configuration (`haproxy -c`), 1,000 routes included."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from typing import Any

import pytest

from emu.gateway import haproxy, haproxy_ctl
from emu.gateway import haproxy_syntax as hs
from emu.gateway.haproxy_sections import location
from emu.gateway.model import (
    Action,
    Backend,
    Certificate,
    Endpoint,
    Frontend,
    HeaderMatch,
    HeaderModifier,
    Listener,
    Match,
    Mirror,
    PathModifier,
    ProxyConfig,
    Redirect,
    Rewrite,
    RouteEntry,
)
from tests.conftest import missing_tools

pytestmark = pytest.mark.unit
log = logging.getLogger(__name__)

NASTY = 'it\'s "quoted" 100% \\back #hash $HOME ${X} {brace} }'
A = Backend("ns/a:80", 1, (Endpoint("10.0.0.1", 8080, "ns/a-1"), Endpoint("10.0.0.2", 8080)))
B = Backend("ns/b:80", 1, (Endpoint("fd00::5", 9090),), h2c=True)


def opts(d: str = "/run/kemu/gw", **kw: Any) -> haproxy.RenderOptions:
    return haproxy.RenderOptions(dir=d, stats_socket=f"{d}/stats.sock", **kw)


def one_listener(*entries: RouteEntry, port: int = 80, protocol: str = "HTTP", certs: tuple[Certificate, ...] = ()) -> ProxyConfig:
    fe = Frontend(port, protocol, (Listener("any", None, tuple(entries)),), certs)  # type: ignore[arg-type]
    return ProxyConfig("Gateway/ns/gw", (fe,))


def entry(path: str, action: Action, path_type: str = "PathPrefix", hostname: str | None = None, **match: Any) -> RouteEntry:
    return RouteEntry(hostname, Match(path_type, path, **match), action, "HTTPRoute/ns/r")  # type: ignore[arg-type]


def nasty_config() -> ProxyConfig:
    action = Action(
        "httproute/ns/r/0",
        request_headers=HeaderModifier(set=(("X-Set", NASTY),), add=(("X-Add", "%{+Q}o"), ("X-Empty", "")), remove=("X-Gone",)),
        response_headers=HeaderModifier(set=(("X-Resp", NASTY),)),
        rewrite=Rewrite(hostname="a b.example", path=PathModifier("ReplaceFullPath", "/100%/'q'")),
        backends=(A,),
    )
    return one_listener(
        entry("/p", action, headers=(HeaderMatch("X-H", NASTY), HeaderMatch("X-R", r"a\d+'$", "RegularExpression"))),
        entry(r"/re/\d+/'x'", action, "RegularExpression", query=(HeaderMatch("q'#$", "}"), HeaderMatch("e", ""))),
        entry("/exact", action, "Exact", method="PATCH"),
    )


# --- spelling -------------------------------------------------------------------------------


def test_words_keep_user_strings_literal() -> None:
    assert hs.word("plain/path-1.2") == "plain/path-1.2"
    assert hs.word("a b") == "'a b'"
    assert hs.word("it's") == "'it'\\''s'"  # strong quotes cannot hold a quote
    assert hs.word("#x $y \\z") == "'#x $y \\z'"  # nothing inside single quotes is read
    assert hs.word("line\nbreak") == "'line'\\x0a'break'"
    with pytest.raises(ValueError):
        hs.word("")
    assert hs.arg("X-Name") == "X-Name"
    assert hs.arg("a,b)c") == "'a,b)c'"  # argument delimiters quoted for the second parser
    assert hs.lf_literal("100% sure") == "100%% sure"
    assert hs.lf_literal("") == "%[var(txn.kemu_empty)]"  # an empty word would end the line
    assert hs.env_word('/run/${POD_NAME}.stats "x"') == '"/run/${POD_NAME}.stats \\"x\\""'


def test_acls_for_values_that_look_like_syntax() -> None:
    assert hs.acl_string("path", "-i") == "{ path -m str -- -i }"  # not a flag
    assert hs.acl_string("path", "}") == "{ path -m reg -- '^\\}$' }"  # not the ACL's end
    assert hs.acl_string("req.fhdr(x)", "") == "{ req.fhdr(x) -m len 0 }"
    assert hs.acl_string("req.fhdr('a b')", "v") == "{ 'req.fhdr('\\''a b'\\'')' -m str -- v }"


def test_proxy_names_are_safe_and_distinct() -> None:
    a = hs.proxy_name("be", "ns/svc:80", 1)
    b = hs.proxy_name("be", "ns_svc_80", 1)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", a) and a != b
    assert hs.proxy_name("be", "ns/svc:80", 1) == a  # stable across renders


# --- structure ------------------------------------------------------------------------------


def test_small_config_structure() -> None:
    cfg = one_listener(entry("/", Action("to-a", backends=(A,))), entry("/b", Action("to-b", backends=(B,))))
    r = haproxy.render(cfg, opts(bind_address="127.0.0.1", bind_ports={80: 18080}))
    text = r.text
    assert '    stats socket "/run/kemu/gw/stats.sock" mode 600 level admin expose-fd listeners\n' in text
    assert "\n    log " not in text  # no syslog
    assert "option idle-close-on-response" in text
    assert "frontend fe-80\n" in text and "    bind 127.0.0.1:18080\n" in text
    names = re.findall(r"^backend (\S+)$", text, re.M)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", n) for n in names)
    assert "kemu-500" in names and len(names) == 3
    assert "    # ns/a-1\n    server ep0 10.0.0.1:8080\n    server ep1 10.0.0.2:8080\n" in text
    assert "    server ep0 [fd00::5]:9090 proto h2\n" in text  # h2c backend
    assert "use_backend %[var(txn.be)] if { var(txn.be) -m found }" in text
    assert sorted(r.files) == ["fe-80.backends.map"]
    assert haproxy.render(cfg, opts(bind_address="127.0.0.1", bind_ports={80: 18080})) == r  # deterministic


def test_bind_all_addresses_by_default() -> None:
    text = haproxy.render(one_listener(entry("/", Action("a", backends=(A,)))), opts()).text
    assert "    bind :80\n" in text


def test_filters_live_in_the_action_sections() -> None:
    plain = Action("plain", backends=(A,))
    other_plain = Action("other-plain", backends=(A,))
    filtered = Action("filtered", request_headers=HeaderModifier(set=(("X-A", "1"),)), backends=(A,))
    with_ref_filter = Action("ref", backends=(Backend("ns/a:80", 1, A.endpoints, request_headers=HeaderModifier(remove=("X",))),))
    cfg = one_listener(entry("/1", plain), entry("/2", other_plain), entry("/3", filtered), entry("/4", with_ref_filter))
    r = haproxy.render(cfg, opts())
    sections = re.findall(r"^backend (be-\S+)$", r.text, re.M)
    assert len(sections) == 3  # the two plain actions share one (and its connections)
    assert "set-header X-A" not in r.text.split("backend ")[0]  # not in the frontend
    actions = dict(line.split() for line in r.files["fe-80.backends.map"].splitlines())
    assert actions["0"] == actions["1"] and len(set(actions.values())) == 3


def test_500_for_invalid_empty_and_missing_backends() -> None:
    invalid = Backend("ns/gone:80", 1, invalid="BackendNotFound")
    cfg = one_listener(
        entry("/invalid", Action("i", backends=(invalid,))),
        entry("/none", Action("n")),
        entry("/zero", Action("z", backends=(Backend("ns/a:80", 0, A.endpoints),))),
        entry("/empty", Action("e", backends=(Backend("ns/empty:80", 1),))),
    )
    r = haproxy.render(cfg, opts())
    targets = [line.split()[1] for line in r.files["fe-80.backends.map"].splitlines()]
    assert targets[:3] == ["kemu-500"] * 3
    empty = r.text.split(f"backend {targets[3]}\n")[1].split("\n\n")[0]
    assert "http-request return status 500" in empty and "server " not in empty


def test_actions_numbered_by_value_not_id() -> None:
    # One rule, two matches: the compiler fills the prefix per entry under the same id.
    def strip(prefix: str) -> Action:
        return Action("httproute/ns/r/0", rewrite=Rewrite(path=PathModifier("ReplacePrefixMatch", "/", prefix)), backends=(A,))

    text = haproxy.render(one_listener(entry("/one", strip("/one")), entry("/three", strip("/three"))), opts()).text
    assert "%[path,bytes(4)]" in text and "%[path,bytes(6)]" in text


def test_weighted_backends_by_random_ranges() -> None:
    cfg = one_listener(entry("/", Action("w", backends=(A, Backend("ns/b:80", 3, B.endpoints)))))
    r = haproxy.render(cfg, opts())
    rows = [line.split() for line in r.files["fe-80.weights.map"].splitlines()]
    share: dict[str, int] = {}  # out of the 1,000,000 random numbers
    for key, section in rows:
        share[section] = share.get(section, 0) + 10 ** (7 - len(key.split("/")[1]))
    assert sorted(share.values()) == [250_000, 750_000]


def test_decimal_prefixes_cover_exactly() -> None:
    import random

    rnd = random.Random(7)
    for _ in range(300):
        low = rnd.randint(1_000_000, 1_999_999)
        high = rnd.randint(low, 1_999_999)
        prefixes = haproxy.decimal_prefixes(low, high)
        for x in [low, high, low - 1, high + 1, *(rnd.randint(1_000_000, 1_999_999) for _ in range(40))]:
            assert sum(str(x).startswith(p) for p in prefixes) == (1 if low <= x <= high else 0)


def test_simple_entries_become_one_map_lookup() -> None:
    to = Action("to", backends=(A,))
    cfg = one_listener(
        entry("/a/b", to, hostname="Foo.Example"),
        entry("/a", to, "Exact", hostname="foo.example"),
        entry("/a", to, hostname="foo.example"),
        entry("/a/b/c", to, hostname="foo.example"),  # /a/b comes first: never chosen
        entry("/x", to, hostname="bar.example"),
        entry("/h", to, hostname="foo.example", headers=(HeaderMatch("X", "1"),)),  # a rule
        entry("/y", to, hostname="bar.example"),  # cannot compete with /h: same map
    )
    r = haproxy.render(cfg, opts())
    assert r.files["fe-80.run0.map"] == "foo.example/a/b/ 0\nfoo.example/a/? 0\nfoo.example/a/ 0\nbar.example/x/ 0\nbar.example/y/ 0\n"
    assert r.text.count("map_beg_int") == 1 and "req.fhdr(X)" in r.text


def test_redirect_sections_and_query() -> None:
    redirect = Action("r", redirect=Redirect(scheme="https", path=PathModifier("ReplacePrefixMatch", "/new", "/old"), status=301))
    text = haproxy.render(one_listener(entry("/old", redirect)), opts()).text
    assert "http-request redirect location 'https://%[var(txn.host)]%[var(txn.np)]?%[query]' code 301 if { query -m found }" in text
    assert "http-request redirect location 'https://%[var(txn.host)]%[var(txn.np)]' code 301\n" in text


@pytest.mark.parametrize(
    "scheme, port, listener, expected",
    [
        (None, None, ("http", 80), "http://%[var(txn.host)]"),
        (None, None, ("http", 8080), "http://%[var(txn.host)]:8080"),
        (None, None, ("https", 443), "https://%[var(txn.host)]"),
        (None, None, ("https", 8443), "https://%[var(txn.host)]:8443"),
        ("https", None, ("http", 8080), "https://%[var(txn.host)]"),  # the scheme's well-known port
        ("http", None, ("https", 443), "http://%[var(txn.host)]"),
        (None, 80, ("http", 8080), "http://%[var(txn.host)]"),
        (None, 8080, ("http", 80), "http://%[var(txn.host)]:8080"),
        ("https", 8443, ("http", 80), "https://%[var(txn.host)]:8443"),
        ("https", 443, ("http", 80), "https://%[var(txn.host)]"),
    ],
)
def test_redirect_port_rules(scheme: str | None, port: int | None, listener: tuple[str, int], expected: str) -> None:
    assert location(Redirect(scheme=scheme, port=port), *listener) == expected
    assert location(Redirect(hostname="Example.ORG", port=port), "http", 80).startswith("http://example.org")


def test_https_crt_list_puts_the_default_first() -> None:
    certs = (
        Certificate("ns/a", "A-PEM", ("a.example.com",)),
        Certificate("ns/any", "ANY-PEM"),
        Certificate("ns/b", "B-PEM", ("*.b.example.com",)),
    )
    r = haproxy.render(one_listener(entry("/", Action("a", backends=(A,))), port=443, protocol="HTTPS", certs=certs), opts())
    lines = r.files["fe-443.crtlist"].splitlines()
    assert [ln.split("]")[-1] for ln in lines] == ["", " a.example.com", " *.b.example.com"]
    pems = {os.path.join("/run/kemu/gw", n): c for n, c in r.files.items() if n.endswith(".pem")}
    assert pems[lines[0].split()[0]] == "ANY-PEM\n"
    assert "    bind :443 ssl crt-list /run/kemu/gw/fe-443.crtlist\n" in r.text


def test_https_without_certificates_is_not_served() -> None:
    r = haproxy.render(one_listener(entry("/", Action("a", backends=(A,))), port=443, protocol="HTTPS"), opts())
    assert "frontend fe-443" not in r.text and "# HTTPS port 443: no certificate, not served" in r.text


def test_mirror_script_only_when_mirroring() -> None:
    mirror = Action("m", mirrors=(Mirror(Backend("ns/m:80", 1, (Endpoint("10.0.0.9", 80),)), 25),), backends=(A,))
    r = haproxy.render(one_listener(entry("/", mirror)), opts())
    assert "lua-load-per-thread /run/kemu/gw/mirror.lua" in r.text and "core.register_action" in r.files["mirror.lua"]
    assert "http-request lua.kemu_mirror 10.0.0.9:80 if { rand(100) -m int lt 25 }" in r.text
    plain = haproxy.render(one_listener(entry("/", Action("p", backends=(A,)))), opts())
    assert "lua" not in plain.text and "mirror.lua" not in plain.files


def test_timeouts_in_the_action_section() -> None:
    text = haproxy.render(one_listener(entry("/", Action("t", timeout_ms=1500, backends=(A,)))), opts()).text
    assert "    timeout server 1500ms\n" in text.split("backend be-")[1]


def test_listeners_by_host_most_specific_first() -> None:
    to = Action("to", backends=(A,))
    listeners = (
        Listener("exact", "Foo.Example.com", (entry("/", to),)),
        Listener("wild", "*.example.com", (entry("/", to),)),
        Listener("one", "*.ingress.test", (entry("/", to),), one_label_wildcard=True),
        Listener("any", None, (entry("/", to),)),
    )
    text = haproxy.render(ProxyConfig("Gateway/ns/gw", (Frontend(80, "HTTP", listeners),)), opts()).text
    assert "set-var(txn.lst) int(0) if { var(txn.host) -m str -- foo.example.com }" in text
    assert "set-var(txn.lst) int(1) if !{ var(txn.lst) -m found } { var(txn.host) -m end -- .example.com }" in text
    assert "set-var(txn.lst) int(2) if !{ var(txn.lst) -m found } { var(txn.host) -m reg -- '^[^.]+\\.ingress\\.test$' }" in text
    assert "set-var(txn.lst) int(3) if !{ var(txn.lst) -m found }\n" in text


# --- HAProxy reads it -----------------------------------------------------------------------


def write(rendered: haproxy.Rendered, d: str) -> str:
    for name, content in rendered.files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(content)
    path = os.path.join(d, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(rendered.text)
    return path


def _pem(d: str) -> str:
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
    subprocess.run([*argv, "-keyout", key, "-out", crt, "-subj", "/CN=a.example.com"], check=True, capture_output=True, timeout=30)
    with open(crt) as c, open(key) as k:
        return c.read() + k.read()


def thousand_routes() -> ProxyConfig:
    entries = []
    for i in range(1000):
        backends = tuple(
            Backend(f"ns/svc{(i + j) % 50}:80", 1 + j, (Endpoint("10.1.0.1", 8000 + (i + j) % 50),)) for j in range(1 + (i % 4 == 0))
        )
        filters = HeaderModifier(set=(("X-Route", f"r{i}"),)) if i % 3 == 0 else None
        headers = (HeaderMatch("X-Env", "prod"),) if i % 5 == 0 else ()
        action = Action(f"httproute/ns/r{i}/0", request_headers=filters, backends=backends)
        entries.append(
            RouteEntry(f"host{i % 100}.example.com", Match("PathPrefix", f"/app{i}/api", headers=headers), action, f"HTTPRoute/ns/r{i}")
        )
    return ProxyConfig("Gateway/ns/big", (Frontend(80, "HTTP", (Listener("any", None, tuple(entries)),)),))


def test_thousand_routes_render_fast() -> None:
    cfg = thousand_routes()
    start = time.perf_counter()
    r = haproxy.render(cfg, opts())
    elapsed = time.perf_counter() - start
    log.info("1,000 routes rendered in %.0f ms (%d lines)", elapsed * 1000, r.text.count("\n"))
    assert elapsed < 1.0
    frontend = r.text.split("frontend fe-80\n")[1].split("\n\n")[0]
    # Per request the frontend runs its rules: the entries with a header match, not 1,000.
    assert frontend.count("http-request") < 250


CONFIGS = {
    "nasty": lambda d: nasty_config(),
    "https": lambda d: one_listener(
        entry("/", Action("a", backends=(A,))), port=443, protocol="HTTPS", certs=(Certificate("ns/a", _pem(d), ("a.example.com",)),)
    ),
    "mirror": lambda d: one_listener(entry("/", Action("m", mirrors=(Mirror(B, 50),), timeout_ms=10, backends=(A, B)))),
    "redirects": lambda d: one_listener(
        *(
            entry(f"/r{i}", Action(f"r{i}", redirect=Redirect(hostname="x.example", port=8443, path=PathModifier(t, v, "/r"))))
            for i, (t, v) in enumerate([("ReplaceFullPath", "/x y"), ("ReplacePrefixMatch", "/"), ("ReplacePrefixMatch", "/%")])
        )
    ),
    "thousand": lambda d: thousand_routes(),
}


@pytest.mark.skipif(bool(missing_tools("haproxy", "openssl")), reason="haproxy or openssl missing")
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_haproxy_loads_the_rendered_configuration(tmp_path: Any, name: str) -> None:
    d = str(tmp_path)
    path = write(haproxy.render(CONFIGS[name](d), opts(d)), d)
    start = time.perf_counter()
    haproxy_ctl.check(path)
    log.info("haproxy -c on %s: %.0f ms", name, (time.perf_counter() - start) * 1000)


@pytest.mark.skipif(bool(missing_tools("haproxy")), reason="haproxy missing")
def test_check_reports_haproxy_messages(tmp_path: Any) -> None:
    from emu.errors import CommandError

    path = write(haproxy.render(nasty_config(), opts(str(tmp_path))), str(tmp_path))
    with open(path, "a") as f:
        f.write("backend broken\n    server x 256.0.0.1:80\n")
    with pytest.raises(CommandError, match=r"256\.0\.0\.1"):
        haproxy_ctl.check(path)
