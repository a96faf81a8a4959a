"""Gateway API end to end: upstream's conformance manifests applied unchanged (the class
placeholder filled with `kemu`), every request of upstream's tables sent with curl from
an external host to the Gateway's LoadBalancer address, through the real HAProxy pods,
to the echo backends; status as `kemu get` shows it; changes under load without loss."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from emu.gateway.testing import self_signed_certificate, tls_secret
from tests.e2e.gateway_client import Answer, Ask, ask_all, curl_argv, write_docs
from tests.e2e.helpers import Running, kemu, plugins, start, stop, topology_variant, wait_until
from tests.unit.gateway_tables import ALL_ROWS, DATA, INFRA, MISDIRECTED, MISDIRECTED_MANIFEST, WEB, Row

pytestmark = pytest.mark.e2e

NAME = "gateway"
HOSTS = ["example.org", "second-example.org", "a.wildcard.org", "fourth-example.wildcard.org", "*.wildcard.org"]


def _docs(path: str, without: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("{GATEWAY_CLASS_NAME}", "kemu")
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") not in without]


@pytest.fixture(scope="module", params=plugins(("bridge",)))
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    c = start(topology_variant("gateway.yaml", tmp_path_factory.mktemp(f"{request.param}-topo"), NAME, cni=request.param), NAME)
    try:
        tmp = str(tmp_path_factory.mktemp("gw"))
        cert, key = self_signed_certificate(HOSTS)
        # The Secrets the conformance suite makes at run time, with a real certificate.
        secrets = [tls_secret(WEB, "certificate", cert, key), tls_secret(INFRA, "tls-validity-checks-certificate", cert, key)]
        base = _docs(os.path.join(DATA, "base", "manifests.yaml"))
        kemu("--cluster", NAME, "apply", "-f", write_docs(tmp, "base.yaml", base + secrets), timeout=300)
        wait_until(lambda: not _unready(c), timeout=60, what="the conformance backends to be ready")
        yield c
    finally:
        stop(c)


def _unready(c: Running) -> list[str]:
    return [
        k for k, p in c.pods().items() if not any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions", []))
    ]


def get(c: Running, *args: str) -> Any:
    return json.loads(kemu("--cluster", c.name, "get", *args, "-o", "json").stdout)


def address(c: Running, gateway: str, ns: str = INFRA) -> str:
    addrs = get(c, "gateway", gateway, "-n", ns)["status"].get("addresses") or []
    assert addrs, f"gateway {ns}/{gateway} has no address"
    return str(addrs[0]["value"])


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(x for x in obj["status"]["conditions"] if x["type"] == kind)


def test_gatewayclass_and_gateways_are_accepted_and_programmed_with_lb_addresses(gw: Running) -> None:
    gc = get(gw, "gatewayclass", "kemu")
    assert gc["spec"]["controllerName"] == "kemu.dev/gateway-controller"
    assert condition(gc, "Accepted")["status"] == "True"
    table = kemu("--cluster", NAME, "get", "gateways", "-n", INFRA).stdout.splitlines()
    assert table[0].split() == ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {"same-namespace", "same-namespace-with-https-listener", "all-namespaces", "backend-namespaces"}
    for name, cols in rows.items():
        assert cols[1] == "kemu" and cols[3] == "True", cols
        assert cols[2] == address(gw, name)
    # The proxy's LoadBalancer Service holds the address, as Gateway implementations do it.
    svcs = get(gw, "svc", "-n", INFRA)["items"]
    lb = {s["status"]["loadBalancer"]["ingress"][0]["ip"] for s in svcs if s["spec"].get("type") == "LoadBalancer"}
    assert {address(gw, n) for n in rows} <= lb
    g = get(gw, "gateway", "same-namespace", "-n", INFRA)
    assert condition(g, "Accepted")["reason"] == "Accepted"
    assert condition(g, "Programmed")["reason"] == "Programmed"
    listener = g["status"]["listeners"][0]
    assert listener["name"] == "http" and {"kind": "HTTPRoute", "group": "gateway.networking.k8s.io"} in listener["supportedKinds"]


def _groups() -> list[tuple[tuple[str, tuple[str, ...]], list[Row]]]:
    key = lambda r: (r.manifest, r.without)  # noqa: E731
    return [(k, list(v)) for k, v in itertools.groupby(sorted(ALL_ROWS, key=key), key=key)]


GROUPS = _groups()


@pytest.mark.parametrize("group", GROUPS, ids=[f"{m}{'-without-' + '-'.join(w) if w else ''}" for (m, w), _ in GROUPS])
def test_conformance_table_through_the_proxy(gw: Running, group: tuple[tuple[str, tuple[str, ...]], list[Row]], tmp_path: Any) -> None:
    (manifest, without), rows = group
    docs = _docs(os.path.join(DATA, "tests", f"{manifest}.yaml"), without)
    path = write_docs(str(tmp_path), f"{manifest}.yaml", docs)
    kemu("--cluster", NAME, "apply", "-f", path, timeout=120)
    try:
        asks = [_ask(gw, r) for r in rows]
        answers = ask_all(gw, "client", asks)
        problems = [f"{r.test} {r.host} {r.path}: {p}" for r, a in zip(rows, answers, strict=True) for p in _check(r, a, asks[0].address)]
        assert not problems, "\n".join(problems)
        for r in rows:
            for target in r.mirrored_to:
                # As upstream's suite checks mirroring: the mirror backend's log shows the path.
                wait_until(lambda t=target, p=r.fwd_path or r.path: _logged(gw, t, p), timeout=10, what=f"{r.path} mirrored to {target}")
    finally:
        kemu("--cluster", NAME, "delete", "-f", path, "--ignore-not-found", timeout=120)


def _logged(c: Running, target: str, path: str) -> bool:
    ns, svc = target.split("/")
    pods = [k.split("/")[1] for k in c.pods() if k.startswith(f"{ns}/{svc}-")]
    line = f"Echoing back request made to {path} to client"
    return any(line in kemu("--cluster", c.name, "logs", "-n", ns, p).stdout for p in pods)


def _ask(c: Running, r: Row) -> Ask:
    headers = r.headers
    if r.upstream:
        # The conformance backend sets these response headers when asked to.
        headers = (*headers, ("X-Echo-Set-Header", ",".join(f"{k}:{v}" for k, v in r.upstream)))
    return Ask(address(c, r.gateway), r.path, r.host, r.port, r.method, headers, https=r.port == 443)


def _check(r: Row, a: Answer, gw_ip: str) -> list[str]:
    if a.status != r.status:
        return [f"status {a.status} (want {r.status}) {a.error or a.body[:200]}"]
    out: list[str] = []
    if r.location is not None:
        want = r.location.replace("{gw}", gw_ip)
        if a.header("location") != want:
            out.append(f"Location {a.header('location')!r} (want {want!r})")
    if r.backend is not None:
        body = a.json()
        if body["namespace"] != r.namespace or not body["pod"].startswith(r.backend + "-"):
            out.append(f"answered by {body['namespace']}/{body['pod']} (want {r.namespace}/{r.backend}-…)")
        if r.fwd_path is not None and body["path"] != r.fwd_path:
            out.append(f"forwarded path {body['path']!r} (want {r.fwd_path!r})")
        if r.fwd_host is not None and body["host"] != r.fwd_host:
            out.append(f"forwarded host {body['host']!r} (want {r.fwd_host!r})")
        got = {k.lower(): ",".join(v) for k, v in body["headers"].items()}
        for k, v in r.fwd_headers:
            if got.get(k.lower()) != v:
                out.append(f"forwarded header {k}: {got.get(k.lower())!r} (want {v!r})")
        for k in r.fwd_absent:
            if k.lower() in got:
                out.append(f"forwarded header {k} present")
    for k, v in r.response:
        if a.header(k) != v:
            out.append(f"response header {k}: {a.header(k)!r} (want {v!r})")
    for k in r.response_absent:
        if a.header(k) is not None:
            out.append(f"response header {k} present")
    return out


def test_weighted_backends_split_traffic_as_weighted(gw: Running, tmp_path: Any) -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "canary", "namespace": INFRA},
        "spec": {
            "parentRefs": [{"name": "same-namespace"}],
            "hostnames": ["canary.example"],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "infra-backend-v1", "port": 8080, "weight": 90},
                        {"name": "infra-backend-v2", "port": 8080, "weight": 10},
                    ]
                }
            ],
        },
    }
    path = write_docs(str(tmp_path), "canary.yaml", [route])
    kemu("--cluster", NAME, "apply", "-f", path)
    try:
        ip = address(gw, "same-namespace")
        answers = ask_all(gw, "client", [Ask(ip, "/", "canary.example")] * 300)
        seen = Counter(a.json()["pod"].rsplit("-", 2)[0] for a in answers)
        # 300 draws at p=0.1: mean 30, sd 5.2; [10, 55] is beyond 3.8 sd on both sides.
        assert set(seen) == {"infra-backend-v1", "infra-backend-v2"} and 10 <= seen["infra-backend-v2"] <= 55, seen
    finally:
        kemu("--cluster", NAME, "delete", "-f", path)


def test_route_changes_take_effect_when_apply_returns_without_failing_requests(gw: Running, tmp_path: Any) -> None:
    """A client keeps sending (new connections) while the route moves between backends
    ten times: every answer is a 200, and each change is served when `apply` returns."""
    ip = address(gw, "same-namespace")

    def route(backend: str) -> str:
        doc = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "moving", "namespace": INFRA},
            "spec": {
                "parentRefs": [{"name": "same-namespace"}],
                "hostnames": ["moving.example"],
                "rules": [{"backendRefs": [{"name": backend, "port": 8080}]}],
            },
        }
        return write_docs(str(tmp_path), f"moving-{backend}.yaml", [doc])

    kemu("--cluster", NAME, "apply", "-f", route("infra-backend-v1"))
    loop = shlex.join([a for a in curl_argv(Ask(ip, "/", "moving.example")) if a != "-i"])
    script = f"end=$(($(date +%s)+600)); while [ ! -e {tmp_path}/stop ] && [ $(date +%s) -lt $end ]; do {loop} -o /dev/null -w '%{{http_code}}\\n'; done"
    load = subprocess.Popen(
        [sys.executable, "-m", "emu.cli.main", "--cluster", NAME, "exec", "host/client", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for i in range(10):
            backend = ("infra-backend-v2", "infra-backend-v1")[i % 2]
            kemu("--cluster", NAME, "apply", "-f", route(backend))
            a = ask_all(gw, "client", [Ask(ip, "/", "moving.example")])[0]
            assert a.status == 200 and a.json()["pod"].startswith(backend + "-"), (i, a.status, a.body[:200])
    finally:
        open(os.path.join(str(tmp_path), "stop"), "w").close()
        out, _ = load.communicate(timeout=30)
        kemu("--cluster", NAME, "delete", "httproute", "moving", "-n", INFRA)
    codes = Counter(out.split())
    assert codes["200"] > 20 and set(codes) == {"200"}, codes


def test_deleting_a_gateway_removes_its_proxy(gw: Running, tmp_path: Any) -> None:
    doc = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "short-lived", "namespace": INFRA},
        "spec": {"gatewayClassName": "kemu", "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]},
    }
    path = write_docs(str(tmp_path), "gw.yaml", [doc])
    kemu("--cluster", NAME, "apply", "-f", path)
    ip = address(gw, "short-lived")
    a = ask_all(gw, "client", [Ask(ip, "/", "x.example", port=8080)])[0]
    assert a.status == 404  # programmed, no routes
    before = set(gw.pods())
    kemu("--cluster", NAME, "delete", "-f", path)
    wait_until(lambda: not [k for k in gw.pods() if "short-lived" in k], timeout=20, what="the proxy pod to go")
    assert not [s for s in get(gw, "svc", "-n", INFRA)["items"] if s["metadata"]["name"].startswith("short-lived")]
    assert {k for k in before if "short-lived" not in k} <= set(gw.pods())


def test_invalid_route_is_refused_and_changes_nothing(gw: Running, tmp_path: Any) -> None:
    bad = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "bad", "namespace": INFRA},
        "spec": {
            "parentRefs": [{"name": "same-namespace"}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "no-slash"}}]}],
        },
    }
    cp = kemu("--cluster", NAME, "apply", "-f", write_docs(str(tmp_path), "bad.yaml", [bad]), check=False)
    assert cp.returncode == 2 and "must be an absolute path" in cp.stderr, cp.stderr
    assert not get(gw, "httproutes", "-n", INFRA)["items"]


def test_the_readme_tour(gw: Running) -> None:
    """examples/gateway.yaml as the README shows it: the header match, the canary split,
    a second route by hostname, and hosts outside the listener's wildcard refused."""
    path = os.path.join(os.path.dirname(DATA), "..", "..", "examples", "gateway.yaml")
    kemu("--cluster", NAME, "apply", "-f", path, timeout=120)
    try:
        wait_until(lambda: not _unready(gw), timeout=60, what="the shop pods to be ready")
        ip = address(gw, "web", "default")
        tester = ask_all(gw, "client", [Ask(ip, "/", "shop.example.com", headers=(("x-canary", "yes"),))] * 5)
        assert {a.json()["pod"].rsplit("-", 2)[0] for a in tester} == {"shop-v2"}
        everyone = Counter(a.json()["pod"].rsplit("-", 2)[0] for a in ask_all(gw, "client", [Ask(ip, "/", "shop.example.com")] * 100))
        assert everyone["shop-v1"] >= 75 and everyone["shop-v1"] + everyone["shop-v2"] == 100, everyone
        docs, other = ask_all(gw, "client", [Ask(ip, "/", "docs.example.com"), Ask(ip, "/", "shop.example.org")])
        assert docs.json()["pod"].startswith("shop-v1-") and other.status == 404
        route = get(gw, "httproute", "shop")
        assert [c["status"] for c in route["status"]["parents"][0]["conditions"][:2]] == ["True", "True"]
    finally:
        kemu("--cluster", NAME, "delete", "-f", path, timeout=120)


def test_https_requests_for_another_listener_than_their_server_name_get_421(gw: Running, tmp_path: Any) -> None:
    path = write_docs(str(tmp_path), "misdirected.yaml", _docs(os.path.join(DATA, "tests", f"{MISDIRECTED_MANIFEST}.yaml")))
    kemu("--cluster", NAME, "apply", "-f", path)
    try:
        ip = address(gw, "same-namespace-with-https-listener")
        asks = [Ask(ip, "/detect-misdirected-requests", host, 443, https=True, sni=sni) for sni, host, _, _ in MISDIRECTED]
        problems = []
        for (sni, host, status, backend), a in zip(MISDIRECTED, ask_all(gw, "client", asks), strict=True):
            if a.status != status or (backend and not a.json()["pod"].startswith(backend + "-")):
                problems.append(f"SNI {sni} Host {host}: {a.status} {a.error or a.body[:80]!r} (want {status} {backend or ''})")
        assert not problems, "\n".join(problems)
    finally:
        kemu("--cluster", NAME, "delete", "-f", path)
