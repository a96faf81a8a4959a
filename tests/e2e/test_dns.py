"""Cluster DNS from inside pods, with real tools (dig over UDP and TCP, glibc's getent,
curl): every record of the Kubernetes DNS specification, negative answers, truncation,
names outside the cluster, policies that block and allow DNS, a DNS pod lost."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.helpers import Running, kemu, plugins, start, stop, topology_variant, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=plugins(("bridge",)))
def dns(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with open("/etc/resolv.conf", "rb") as f:
        host_resolv = f.read()
    r = start(topology_variant("dns.yaml", tmp_path_factory.mktemp(request.param), "dns", cni=request.param), "dns")
    try:
        yield r
    finally:
        stop(r)
        with open("/etc/resolv.conf", "rb") as f:
            assert f.read() == host_resolv  # the host's resolver configuration is never touched
        assert not os.path.lexists("/etc/netns/kemu-dns.a.toolbox")
        assert not os.path.ismount("/run/kemu/dns/etc")  # the files' tmpfs went with the cluster


def dig(c: Running, pod: str, *args: str) -> str:
    return c.exec(pod, "dig", "+time=2", "+tries=1", *args).stdout


def short(c: Running, pod: str, *args: str) -> list[str]:
    return sorted(dig(c, pod, "+short", *args).split())


def get(c: Running, *args: str) -> Any:
    return json.loads(kemu("--cluster", c.name, "get", *args, "-o", "json").stdout)


def svc_ip(c: Running, name: str, ns: str) -> str:
    return str(get(c, "svc", name, "-n", ns)["spec"]["clusterIP"])


def pod_ips(c: Running, ns: str, selector: str) -> list[str]:
    return sorted(p["status"]["podIP"] for p in get(c, "pods", "-n", ns, "-l", selector)["items"])


def test_each_pod_sees_its_resolv_conf_and_hosts(dns: Running) -> None:
    resolv = dns.exec("a/toolbox", "cat", "/etc/resolv.conf").stdout
    assert resolv.splitlines() == [
        "nameserver 10.96.0.10",
        "search a.svc.cluster.local svc.cluster.local cluster.local",
        "options ndots:5",
    ]
    # `ip netns exec` finds the same files (iproute2 bind-mounts /etc/netns/NAME/*).
    import subprocess

    via_ip = subprocess.run(["ip", "netns", "exec", "kemu-dns.a.toolbox", "cat", "/etc/resolv.conf"], capture_output=True, text=True)
    assert via_ip.stdout == resolv
    # The files live in the cluster's own tmpfs; /etc/netns/NAME links there (etcfiles.py).
    link = "/etc/netns/kemu-dns.a.toolbox"
    assert os.path.islink(link) and os.path.realpath(link) == "/run/kemu/dns/etc/kemu-dns.a.toolbox"
    assert os.path.ismount("/run/kemu/dns/etc")
    hosts = dns.exec("a/named", "cat", "/etc/hosts").stdout
    ip = dns.ip("a/named")
    assert f"{ip}\thost-1.sub.a.svc.cluster.local\thost-1" in hosts
    assert dns.exec("a/named", "hostname").stdout.strip() == "host-1"
    assert "nameserver 172.30.0.1" in dns.exec("node/node-1", "cat", "/etc/resolv.conf").stdout


def test_services_resolve_by_fqdn_and_search_path_over_udp_and_tcp(dns: Running) -> None:
    web = svc_ip(dns, "web", "b")
    assert short(dns, "a/toolbox", "web.b.svc.cluster.local") == [web]
    assert short(dns, "a/toolbox", "+tcp", "WEB.b.svc.Cluster.Local") == [web]  # case-insensitive, over TCP
    assert dns.exec("a/toolbox", "getent", "hosts", "web.b").stdout.split()[0] == web  # the search path, from another namespace
    assert (
        dns.exec(
            "b/" + get(dns, "pods", "-n", "b", "-l", "app=web")["items"][0]["metadata"]["name"], "getent", "hosts", "web"
        ).stdout.split()[0]
        == web
    )
    assert dns.curl("a/toolbox", "http://web.b/hostname") in {p.split("/")[1] for p in dns.pods() if p.startswith("b/web-")}
    assert short(dns, "a/toolbox", "_http._tcp.web.b.svc.cluster.local", "SRV") == ["0", "100", "80", "web.b.svc.cluster.local."]
    assert short(dns, "a/toolbox", "-x", web) == ["web.b.svc.cluster.local."]
    assert short(dns, "a/toolbox", "dns-version.cluster.local", "TXT") == ['"1.1.0"']


def test_headless_statefulset_and_pod_records(dns: Running) -> None:
    db = pod_ips(dns, "b", "app=db")
    assert short(dns, "a/toolbox", "db.b.svc.cluster.local") == db
    db0 = dns.ip("b/db-0")
    assert short(dns, "a/toolbox", "db-0.db.b.svc.cluster.local") == [db0]
    srv = dig(dns, "a/toolbox", "+short", "_tcp-db._tcp.db.b.svc.cluster.local", "SRV").splitlines()
    assert sorted(line.split()[3] for line in srv) == ["db-0.db.b.svc.cluster.local.", "db-1.db.b.svc.cluster.local."]
    assert short(dns, "a/toolbox", "-x", db0) and short(dns, "a/toolbox", "-x", db0)[0].endswith(".db.b.svc.cluster.local.")
    named = dns.ip("a/named")
    assert short(dns, "a/toolbox", "host-1.sub.a.svc.cluster.local") == [named]
    assert short(dns, "a/toolbox", f"{named.replace('.', '-')}.a.pod.cluster.local") == [named]


def test_negative_answers(dns: Running) -> None:
    nx = dig(dns, "a/toolbox", "nosuch.b.svc.cluster.local")
    assert "status: NXDOMAIN" in nx and "SOA" in nx.split("AUTHORITY SECTION")[1]
    nodata = dig(dns, "a/toolbox", "web.b.svc.cluster.local", "AAAA")
    assert "status: NOERROR" in nodata and "ANSWER: 0" in nodata and "SOA" in nodata.split("AUTHORITY SECTION")[1]
    assert "status: NXDOMAIN" in dig(dns, "a/toolbox", "example.com")  # nothing leaves the emulation


def test_large_answers_are_truncated_over_udp_and_complete_over_tcp(dns: Running) -> None:
    udp = dig(dns, "a/toolbox", "+ignore", "+bufsize=512", "many.b.svc.cluster.local")
    assert " tc" in udp.split("flags:")[1].split(";")[0]
    assert len(short(dns, "a/toolbox", "many.b.svc.cluster.local")) == 100  # dig retries over TCP, as glibc does


def test_names_outside_the_cluster_go_to_the_node_networks_resolver(dns: Running) -> None:
    assert short(dns, "a/toolbox", "node-1") == [dns.node_ip("node-1")]
    assert short(dns, "a/toolbox", "client.kemu.internal") == ["172.30.0.4"]
    assert short(dns, "node/node-2", "client") == ["172.30.0.4"]


def test_changes_are_answered_when_the_command_returns(dns: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = dig(dns, "a/toolbox", "ext.a.svc.cluster.local")
    assert "CNAME\tweb.b.svc.cluster.local." in out and svc_ip(dns, "web", "b") in out
    f = tmp_path / "ext.yaml"
    f.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: a}\n"
        "spec: {type: ClusterIP, selector: {app: toolbox}, ports: [{port: 80}]}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: fresh, namespace: a}\n"
        "spec: {selector: {app: toolbox}, ports: [{port: 80}]}\n"
    )
    kemu("--cluster", "dns", "apply", "-f", str(f))
    assert short(dns, "a/toolbox", "ext.a.svc.cluster.local") == [svc_ip(dns, "ext", "a")]
    assert short(dns, "a/toolbox", "fresh.a.svc.cluster.local") == [svc_ip(dns, "fresh", "a")]
    kemu("--cluster", "dns", "delete", "svc", "fresh", "-n", "a")
    assert "status: NXDOMAIN" in dig(dns, "a/toolbox", "fresh.a.svc.cluster.local")


def test_a_default_deny_egress_policy_blocks_dns_until_it_is_allowed(dns: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    deny = tmp_path / "deny.yaml"
    deny.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-egress, namespace: a}\n"
        "spec: {podSelector: {}, policyTypes: [Egress]}\n"
    )
    kemu("--cluster", "dns", "apply", "-f", str(deny))
    blocked = dns.exec("a/toolbox", "dig", "+time=1", "+tries=1", "web.b.svc.cluster.local", check=False)
    assert "timed out" in blocked.stdout or "no servers could be reached" in blocked.stdout
    why = kemu("--cluster", "dns", "explain", "a/toolbox", "kube-system/kube-dns:53/UDP").stdout
    assert "denied" in why and "a/deny-egress" in why
    allow = tmp_path / "allow.yaml"
    allow.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-dns, namespace: a}\n"
        "spec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n"
        "    - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]\n"
        "      ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]\n"
    )
    kemu("--cluster", "dns", "apply", "-f", str(allow))
    assert short(dns, "a/toolbox", "web.b.svc.cluster.local") == [svc_ip(dns, "web", "b")]
    assert "allowed" in kemu("--cluster", "dns", "explain", "a/toolbox", "kube-system/kube-dns:53/UDP").stdout
    kemu("--cluster", "dns", "delete", "networkpolicy", "deny-egress", "allow-dns", "-n", "a")


def test_a_dns_pod_lost_the_other_answers_and_it_is_replaced(dns: Running) -> None:
    before = [p["metadata"]["name"] for p in get(dns, "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]]
    assert len(before) == 2
    assert len({p["spec"]["nodeName"] for p in get(dns, "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]}) == 2
    kemu("--cluster", "dns", "delete", "pod", before[0], "-n", "kube-system", "--wait=false")
    for _ in range(10):
        assert short(dns, "a/toolbox", "web.b.svc.cluster.local") == [svc_ip(dns, "web", "b")]

    def replaced() -> bool:
        items = get(dns, "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
        ready = [p for p in items if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])]
        return len(ready) == 2 and before[0] not in {p["metadata"]["name"] for p in ready}

    wait_until(replaced, 30, "a replacement DNS pod")
    metrics = dns.curl("a/toolbox", f"http://{svc_ip(dns, 'kube-dns', 'kube-system')}:9153/metrics")
    assert "coredns_dns_requests_total" in metrics


def test_probe_takes_a_service_by_its_dns_name(dns: Running) -> None:
    rows = json.loads(kemu("--cluster", "dns", "probe", "--to", "web.b", "-o", "json").stdout)["results"]
    assert rows and {r["to"] for r in rows} == {"b/web"} and all(r["connected"] for r in rows)
