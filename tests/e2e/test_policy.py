"""NetworkPolicy on the kernel: the probe must agree with the oracle, case after case,
including every kind of live change (upstream netpol e2e layout: x, y, z × a, b, c)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.conftest import REPO
from tests.e2e.helpers import TOPOLOGIES, Running, kemu, pod_networks, start, stop, topology_variant

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=pod_networks())
def xyzp(request, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    """The same cases on every pod network under both service-proxy backends (policies
    see traffic after DNAT)."""
    cni, proxy = request.param
    path = topology_variant("netpol-xyz.yaml", tmp_path_factory.mktemp(f"{cni}-{proxy}"), "xyz", proxy=proxy, cni=cni)
    r = start(path, "xyz")
    try:
        yield r
    finally:
        stop(r)


def np(name: str, ns: str, spec: dict) -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def apply(c: Running, tmp_path, *docs: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    f = tmp_path / f"p{time.monotonic_ns()}.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    kemu("--cluster", c.name, "apply", "-f", str(f))


def check(c: Running) -> dict:  # type: ignore[type-arg]
    """Probe everything; the kernel must agree with the oracle. Returns the JSON."""
    r = kemu("--cluster", c.name, "probe", "--expect", "-o", "json", check=False)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and not doc["differences"], doc["differences"][:5]
    return doc


def connected(doc: dict, src: str, dst: str, port: int = 80, proto: str = "TCP") -> bool:  # type: ignore[type-arg]
    return next(r["connected"] for r in doc["results"] if (r["from"], r["to"], r["port"], r["protocol"]) == (src, dst, port, proto))


def clear(c: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for ns in "xyz":
        out = json.loads(kemu("--cluster", c.name, "get", "networkpolicies", "-n", ns, "-o", "json", check=False).stdout or '{"items": []}')
        for item in out.get("items", []):
            kemu("--cluster", c.name, "delete", "networkpolicy", item["metadata"]["name"], "-n", ns)


CASES = {
    "deny-all-ingress-in-x": [np("deny", "x", {"podSelector": {}})],
    "deny-all-egress-in-x": [np("deny", "x", {"podSelector": {}, "policyTypes": ["Egress"]})],
    "allow-from-ns-y-to-x-a": [
        np("deny", "x", {"podSelector": {}}),
        np(
            "from-y",
            "x",
            {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]},
        ),
    ],
    "pod-and-namespace-selector-AND": [
        np(
            "and",
            "x",
            {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}]}],
            },
        )
    ],
    "pod-or-namespace-selector-OR": [
        np(
            "or",
            "x",
            {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [
                    {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}, {"podSelector": {"matchLabels": {"pod": "b"}}}]}
                ],
            },
        )
    ],
    "named-port-udp-only": [np("udp81", "y", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-udp", "protocol": "UDP"}]}]})],
    "port-range-80-81-tcp": [np("range", "z", {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 81}]}]})],
    "egress-to-y-80-only-and-z-c-denied": [
        np(
            "x-out",
            "x",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": 80}]}],
            },
        ),
        np("z-c", "z", {"podSelector": {"matchLabels": {"pod": "c"}}}),
    ],
    "ipblock-with-except": [
        np(
            "cidr",
            "x",
            {
                "podSelector": {"matchLabels": {"pod": "b"}},
                "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.1.0/24"]}}]}],
            },
        )
    ],
}


@pytest.mark.parametrize("case", list(CASES))
def test_probe_agrees_with_oracle(xyzp: Running, tmp_path, case: str) -> None:  # type: ignore[no-untyped-def]
    clear(xyzp, tmp_path)
    apply(xyzp, tmp_path, *CASES[case])
    doc = check(xyzp)
    ok = sum(r["connected"] for r in doc["results"])
    assert 0 < ok < len(doc["results"])  # the case really blocks something, and not everything
    traces_agree(xyzp, doc)


def traces_agree(c: Running, doc: dict) -> None:  # type: ignore[type-arg]
    """`kemu trace` on a sample of the matrix — per protocol, the first flow that connected
    and the first that did not —: the kernel's path ends as the probe saw it, a denial in
    kemu-policy, and the trace agrees with the oracle."""
    sample = {(r["protocol"], r["connected"]): r for r in reversed(doc["results"])}
    for (proto, ok), r in sorted(sample.items()):
        t = json.loads(kemu("--cluster", c.name, "trace", r["from"], f"{r['to']}:{r['port']}/{proto.lower()}", "-o", "json").stdout)
        want = ("delivered", "") if ok else ("dropped", "policy")
        assert (t["verdict"], t["decided_by"]) == want, f"{r}: {t['reason']}"
        assert t["model"]["agrees"] and t["model"]["policy"] == ("allowed" if ok else "denied"), t["model"]


def test_explain_and_probe_on_a_known_case(xyzp: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clear(xyzp, tmp_path)
    apply(xyzp, tmp_path, np("deny-all", "y", {"podSelector": {}}))
    out = kemu("--cluster", "xyz", "explain", "x/a", "y/b:80").stdout.strip()
    assert (
        out
        == "x/a → y/b:80/TCP denied: x/a is not isolated for egress; y/b is isolated for ingress by y/deny-all; no ingress rule of it allows from x/a"
    )
    doc = check(xyzp)
    assert not connected(doc, "x/a", "y/b") and connected(doc, "y/b", "y/b") and connected(doc, "y/a", "x/b")
    # Traffic from a pod's own node always reaches it.
    node = xyzp.node_of("y/b")
    assert xyzp.curl(f"node/{node}", f"http://{xyzp.ip('y/b')}/hostname") == "b"


def test_live_changes_take_effect_before_the_command_returns(xyzp: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clear(xyzp, tmp_path)
    apply(
        xyzp,
        tmp_path,
        np(
            "only-team",
            "y",
            {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"team": "blue"}}, "namespaceSelector": {}}]}]},
        ),
    )
    doc = check(xyzp)
    assert not connected(doc, "x/a", "y/a")
    kemu("--cluster", "xyz", "label", "pod", "a", "-n", "x", "team=blue")  # a pod label change
    assert xyzp.curl("x/a", f"http://{xyzp.ip('y/a')}/hostname") == "a"
    kemu("--cluster", "xyz", "label", "pod", "a", "-n", "x", "team-")
    assert xyzp.curl("x/a", f"http://{xyzp.ip('y/a')}/hostname", check=False) == ""
    apply(
        xyzp,
        tmp_path,
        np("from-ns", "y", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"trusted": "yes"}}}]}]}),
    )
    kemu("--cluster", "xyz", "label", "namespace", "z", "trusted=yes")  # a namespace label change
    assert xyzp.curl("z/b", f"http://{xyzp.ip('y/a')}/hostname") == "a"
    kemu("--cluster", "xyz", "label", "namespace", "z", "trusted-")
    check(xyzp)
    # A new pod that matches a peer selector is let in as soon as it exists.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "d", "namespace": "x", "labels": {"team": "blue"}},
        "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
    }
    apply(xyzp, tmp_path, pod)
    assert xyzp.curl("x/d", f"http://{xyzp.ip('y/c')}/hostname") == "c"
    kemu("--cluster", "xyz", "delete", "pod", "d", "-n", "x")
    assert xyzp.curl("x/b", f"http://{xyzp.ip('y/c')}/hostname", check=False) == ""
    # A policy edited in place: now team=green is let in, and x/b carries it.
    apply(
        xyzp,
        tmp_path,
        np(
            "only-team",
            "y",
            {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"team": "green"}}, "namespaceSelector": {}}]}]},
        ),
    )
    kemu("--cluster", "xyz", "label", "pod", "b", "-n", "x", "team=green")
    assert xyzp.curl("x/b", f"http://{xyzp.ip('y/c')}/hostname") == "c"
    kemu("--cluster", "xyz", "label", "pod", "b", "-n", "x", "team-")
    check(xyzp)
    kemu("--cluster", "xyz", "delete", "networkpolicy", "only-team", "-n", "y")  # a policy deleted
    kemu("--cluster", "xyz", "delete", "networkpolicy", "from-ns", "-n", "y")
    assert xyzp.curl("x/a", f"http://{xyzp.ip('y/a')}/hostname") == "a"


def test_established_connections_survive_an_unrelated_change(xyzp: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clear(xyzp, tmp_path)
    apply(
        xyzp, tmp_path, np("in-z", "z", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "x"}}}]}]})
    )
    # A long-lived HTTP/1.1 connection from x/a to z/a (keep-alive), then policy churn elsewhere.
    client = (
        "import http.client,sys,time\n"
        f"c=http.client.HTTPConnection('{xyzp.ip('z/a')}',80,timeout=3)\n"
        "for i in range(2):\n"
        "    c.request('GET','/hostname'); print(c.getresponse().read().decode(), flush=True); sys.stdin.readline()\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "emu.cli.main", "--cluster", "xyz", "exec", "-n", "x", "a", "--", "python3", "-c", client],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None and p.stdin is not None
        assert p.stdout.readline().strip() == "a"
        apply(xyzp, tmp_path, np("unrelated", "y", {"podSelector": {}}))
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "a"
    finally:
        p.stdin.close() if p.stdin else None
        p.wait(10)


def test_service_traffic_is_judged_after_dnat(xyzp: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clear(xyzp, tmp_path)
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "b", "namespace": "y"},
        "spec": {"selector": {"pod": "b"}, "ports": [{"port": 8080, "targetPort": 80}]},
    }
    # ipBlock sees the client pod's IP (x/a's /32 allowed), not the Service's.
    allow = np(
        "cidr", "y", {"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{"from": [{"ipBlock": {"cidr": f"{xyzp.ip('x/a')}/32"}}]}]}
    )
    apply(xyzp, tmp_path, svc, allow)
    vip = json.loads(kemu("--cluster", "xyz", "get", "svc", "b", "-n", "y", "-o", "json").stdout)["spec"]["clusterIP"]
    assert xyzp.curl("x/a", f"http://{vip}:8080/hostname") == "b"
    assert xyzp.curl("x/b", f"http://{vip}:8080/hostname", check=False) == ""
    kemu("--cluster", "xyz", "delete", "svc", "b", "-n", "y")
    clear(xyzp, tmp_path)


def test_network_policy_off_accepts_and_ignores(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with open(os.path.join(TOPOLOGIES, "netpol-xyz.yaml")) as f:
        doc = yaml.safe_load(f)
    doc["metadata"]["name"] = "nopol"
    doc["spec"]["networkPolicy"] = False
    doc["spec"]["proxy"] = "iptables"
    doc["spec"]["resources"].append(np("deny", "x", {"podSelector": {}}))
    path = tmp_path / "nopol.yaml"
    path.write_text(yaml.safe_dump(doc))
    c = start(str(path), "nopol")
    try:
        r = kemu("--cluster", "nopol", "probe", "--expect", "-o", "json")
        out = json.loads(r.stdout)
        assert all(row["connected"] for row in out["results"]) and not out["differences"]
        f = tmp_path / "more.yaml"
        f.write_text(yaml.safe_dump(np("deny2", "y", {"podSelector": {}})))
        applied = kemu("--cluster", "nopol", "apply", "-f", str(f))
        assert "NetworkPolicies are accepted and have no effect" in applied.stderr
        assert "does not enforce NetworkPolicies" in kemu("--cluster", "nopol", "explain", "x/a", "y/b:80").stdout
        assert "kemu-policy" not in c.exec("node/node-1", "nft", "list", "tables").stdout
    finally:
        stop(c)


def test_invalid_policy_changes_nothing(xyzp: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clear(xyzp, tmp_path)
    good = np("fine", "x", {"podSelector": {}})
    bad = np("bad", "x", {"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]})
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump_all([good, bad]))
    r = kemu("--cluster", "xyz", "apply", "-f", str(f), check=False)
    assert r.returncode == 2 and "may not be specified when `port` is not a number" in r.stderr
    assert json.loads(kemu("--cluster", "xyz", "get", "networkpolicies", "-A", "-o", "json").stdout)["items"] == []
    assert xyzp.curl("y/a", f"http://{xyzp.ip('x/a')}/hostname") == "a"
