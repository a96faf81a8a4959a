"""Services through the kernel, for both proxy backends (the same tests, the same answers)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import textwrap
import time
from collections.abc import Iterator

import pytest
import yaml

from emu.traffic.capture import Capture
from tests.e2e.helpers import TOPOLOGIES, Running, kemu, pod_networks, start, stop, topology_variant, variant_name, wait_until

pytestmark = pytest.mark.e2e

CLIENT_HOST, OTHER_HOST = "172.30.0.4", "172.30.0.5"
NODE_IPS = {"node-1": "172.30.0.2", "node-2": "172.30.0.3"}


@pytest.fixture(scope="module", params=pod_networks())
def svc(request, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    cni, proxy = request.param
    name = variant_name("svc", cni, proxy)
    path = topology_variant("services.yaml", tmp_path_factory.mktemp(name), name, proxy=proxy, cni=cni)
    r = start(path, name, "--ready-timeout", "5")  # pod `unready` never gets Ready
    try:
        yield r
    finally:
        stop(r)


def get_svc(c: Running, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(kemu("--cluster", c.name, "get", "svc", name, "-o", "json").stdout)


def cip(c: Running, name: str) -> str:
    return str(get_svc(c, name)["spec"]["clusterIP"])


def web_ips(c: Running) -> set[str]:
    return {p["status"]["podIP"] for k, p in c.pods().items() if k.startswith("default/web-")}


def hostnames(c: Running, src: str, url: str, n: int) -> collections.Counter[str]:
    out = c.exec(src, "sh", "-c", f"for i in $(seq {n}); do curl -s -m 2 {url}; echo; done").stdout
    return collections.Counter(line for line in out.splitlines() if line)


def test_clusterip_balances_over_ready_endpoints_without_snat(svc: Running) -> None:
    got = hostnames(svc, "default/client", f"http://{cip(svc, 'web')}/hostname", 90)
    webs = {k.split("/")[1] for k in svc.pods() if k.startswith("default/web-")}
    assert set(got) == webs and min(got.values()) >= 10, got  # ~30 each; P(a false alarm) < 1e-5
    seen = svc.curl("default/client", f"http://{cip(svc, 'web')}/clientip")
    assert seen.split(":")[0] == svc.ip("default/client")


def test_no_snat_on_the_wire(svc: Running) -> None:
    solo_ns = f"kemu-{svc.name}.default.solo"
    cap = Capture(solo_ns, "eth0", "tcp dst port 8080", count=1, timeout=5)
    assert svc.curl("default/client", f"http://{cip(svc, 'self')}/hostname") == "solo"
    (pkt,) = cap.result()
    assert (pkt.src, pkt.dst) == (svc.ip("default/client"), svc.ip("default/solo"))


def test_udp_service(svc: Running) -> None:
    out = svc.exec("default/client", "sh", "-c", f"echo hostname | nc -u -w1 {cip(svc, 'web')} 53").stdout
    assert out in {k.split("/")[1] for k in svc.pods() if k.startswith("default/web-")}


def test_hairpin(svc: Running) -> None:
    # solo reaches itself through its own Service: masqueraded, so the reply comes back.
    seen = svc.curl("default/solo", f"http://{cip(svc, 'self')}/clientip")
    assert seen and seen.split(":")[0] != svc.ip("default/solo")


def test_no_endpoints_is_refused_at_once(svc: Running) -> None:
    ip = cip(svc, "empty")
    t0 = time.monotonic()
    r = svc.exec("default/client", "curl", "-sS", "-m", "5", f"http://{ip}/", check=False)
    assert r.returncode == 7 and time.monotonic() - t0 < 3  # ECONNREFUSED, not a timeout
    client_ns = f"kemu-{svc.name}.default.client"
    cap = Capture(client_ns, "eth0", "icmp", count=1, timeout=5)
    svc.exec("default/client", "curl", "-s", "-m", "2", f"http://{ip}/", check=False)
    (pkt,) = cap.result()
    # The reject as kube-proxy sends it: ICMP destination unreachable, port unreachable.
    assert (pkt.proto, pkt.icmp_type, pkt.icmp_code, pkt.dst) == ("1", 3, 3, svc.ip("default/client"))


def test_nodeport_everywhere(svc: Running) -> None:
    for node, ip in NODE_IPS.items():
        assert svc.curl("host/client", f"http://{ip}:30080/hostname").startswith("web-")  # external host
        assert svc.curl("default/client", f"http://{ip}:30080/hostname").startswith("web-")  # pod
        assert svc.curl(f"node/{node}", f"http://{ip}:30080/hostname").startswith("web-")  # node itself
    # eTP Cluster: the client's address is masqueraded.
    seen = svc.curl("host/client", f"http://{NODE_IPS['node-1']}:30080/clientip").split(":")[0]
    assert seen != CLIENT_HOST


def test_external_traffic_policy_local(svc: Running) -> None:
    s = get_svc(svc, "solo-local")
    lb_ip = s["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert s["metadata"]["annotations"]["kemu.io/announced-by"] == "node-2"  # the node with the endpoint
    assert svc.curl("host/client", f"http://{lb_ip}/clientip").split(":")[0] == CLIENT_HOST  # source kept
    cap = Capture(f"kemu-{svc.name}.default.solo", "eth0", "tcp dst port 8080", count=1, timeout=5)
    assert svc.curl("host/client", f"http://{lb_ip}/hostname") == "solo"
    (pkt,) = cap.result()
    assert pkt.src == CLIENT_HOST  # on the wire at the endpoint, too
    assert svc.curl("host/client", f"http://{NODE_IPS['node-2']}:30081/clientip").split(":")[0] == CLIENT_HOST
    # node-1 has no local endpoint: its NodePort does not answer.
    assert svc.curl("host/client", f"http://{NODE_IPS['node-1']}:30081/clientip", check=False) == ""
    # Pods are in-cluster clients: short-circuited to the endpoint from any node.
    assert svc.curl("default/client", f"http://{NODE_IPS['node-1']}:30081/hostname") == "solo"
    hc = s["spec"]["healthCheckNodePort"]
    codes = {
        node: svc.exec("host/client", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{ip}:{hc}/").stdout
        for node, ip in NODE_IPS.items()
    }
    assert codes == {"node-1": "503", "node-2": "200"}
    body = json.loads(svc.curl("host/client", f"http://{NODE_IPS['node-2']}:{hc}/"))
    assert body["localEndpoints"] == 1 and body["service"] == {"namespace": "default", "name": "solo-local"}


def test_load_balancer_and_source_ranges(svc: Running) -> None:
    lb_ip = get_svc(svc, "web-lb")["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert lb_ip.startswith("172.30.0.")
    assert svc.curl("host/client", f"http://{lb_ip}/hostname").startswith("web-")
    assert svc.curl("host/other", f"http://{lb_ip}/hostname", check=False) == ""  # not in the range
    table = kemu("--cluster", svc.name, "get", "svc").stdout
    assert lb_ip in table and "80:" in table


def test_internal_traffic_policy_local(svc: Running) -> None:
    ip = cip(svc, "solo-itp")
    assert svc.curl("node/node-2", f"http://{ip}/hostname") == "solo"  # node with the endpoint
    assert svc.curl("default/client", f"http://{ip}/hostname", check=False) == ""  # node-1: dropped


def test_session_affinity_holds_then_expires(svc: Running) -> None:
    ip = cip(svc, "sticky")
    got = hostnames(svc, "default/client", f"http://{ip}/hostname", 15)
    assert len(got) == 1, got
    picks = set()
    for _ in range(9):
        time.sleep(1.5)  # the affinity timeout (1 s) must pass with no traffic: a wait on purpose
        picks |= set(hostnames(svc, "default/client", f"http://{ip}/hostname", 1))
    assert len(picks) > 1  # all nine the same after expiry: P = (1/3)^8


def test_external_ips_and_manual_and_not_ready_endpoints(svc: Running) -> None:
    assert svc.curl("default/client", "http://192.0.2.10:8000/hostname").startswith("web-")
    assert svc.ip("default/solo") == "10.244.1.2"  # what the manual EndpointSlice names
    assert svc.curl("default/client", f"http://{cip(svc, 'manual')}/hostname") == "solo"
    assert svc.curl("default/client", f"http://{cip(svc, 'notready')}/hostname") == "unready"  # publishNotReadyAddresses
    assert get_svc(svc, "headless")["spec"]["clusterIP"] == "None"
    assert get_svc(svc, "elsewhere")["spec"]["externalName"] == "example.com"


def test_endpointslices_view(svc: Running) -> None:
    doc = json.loads(kemu("--cluster", svc.name, "get", "endpointslices", "-o", "json").stdout)
    by_svc = collections.defaultdict(list)
    for sl in doc["items"]:
        by_svc[sl["metadata"]["labels"]["kubernetes.io/service-name"]].append(sl)
    (web,) = by_svc["web"]
    assert {a for e in web["endpoints"] for a in e["addresses"]} == web_ips(svc)
    assert {p["name"]: p["port"] for p in web["ports"]} == {"http": 8080, "udp": 8081}
    e = web["endpoints"][0]
    assert e["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert e["zone"] in ("zone-a", "zone-b") and e["targetRef"]["kind"] == "Pod"
    assert web["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    (empty,) = by_svc["empty"]
    assert empty["endpoints"] == []


def test_probe_services(svc: Running) -> None:
    doc = json.loads(kemu("--cluster", svc.name, "probe", "--to", "services", "--port", "53", "-o", "json").stdout)
    rows = {(r["from"], r["to"]): r["connected"] for r in doc["results"]}
    assert rows[("default/client", "default/web")] and not rows[("default/client", "default/empty")]


def test_live_changes_reach_every_node(svc: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Scale up: the new endpoint is in every node's rules when apply returns.
    with open(os.path.join(TOPOLOGIES, "services.yaml")) as f:
        dep = next(r for r in yaml.safe_load(f)["spec"]["resources"] if r["kind"] == "Deployment")
    dep["spec"]["replicas"] = 4
    f = tmp_path / "scale.yaml"
    f.write_text(yaml.safe_dump(dep))
    before = web_ips(svc)
    kemu("--cluster", svc.name, "apply", "-f", str(f))
    (new_ip,) = web_ips(svc) - before
    for node in NODE_IPS:
        lister = ["nft", "list", "ruleset"] if svc.name.endswith("-nft") else ["iptables-save", "-t", "nat"]
        assert new_ip in svc.exec(f"node/{node}", *lister).stdout
    # Type change ClusterIP → NodePort → ClusterIP, on the running cluster.
    change = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "self"},
        "spec": {"type": "NodePort", "selector": {"app": "solo"}, "ports": [{"port": 80, "targetPort": "http", "nodePort": 30099}]},
    }
    f.write_text(yaml.safe_dump(change))
    kemu("--cluster", svc.name, "apply", "-f", str(f))
    assert svc.curl("host/client", f"http://{NODE_IPS['node-1']}:30099/hostname") == "solo"
    change["spec"] = {"selector": {"app": "solo"}, "ports": [{"port": 80, "targetPort": "http"}]}
    f.write_text(yaml.safe_dump(change))
    kemu("--cluster", svc.name, "apply", "-f", str(f))
    assert svc.curl("host/client", f"http://{NODE_IPS['node-1']}:30099/hostname", check=False) == ""
    # … → LoadBalancer (an IP from the pool, reachable from outside) → ExternalName → ClusterIP.
    change["spec"] = {"type": "LoadBalancer", "selector": {"app": "solo"}, "ports": [{"port": 80, "targetPort": "http"}]}
    f.write_text(yaml.safe_dump(change))
    kemu("--cluster", svc.name, "apply", "-f", str(f))
    lb_ip = get_svc(svc, "self")["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert svc.curl("host/client", f"http://{lb_ip}/hostname") == "solo"
    change["spec"] = {"type": "ExternalName", "externalName": "solo.example"}
    f.write_text(yaml.safe_dump(change))
    kemu("--cluster", svc.name, "apply", "-f", str(f))
    assert get_svc(svc, "self")["spec"] == {"type": "ExternalName", "externalName": "solo.example", "ports": []}
    assert svc.curl("host/client", f"http://{lb_ip}/hostname", check=False) == ""
    change["spec"] = {"selector": {"app": "solo"}, "ports": [{"port": 80, "targetPort": "http"}]}
    f.write_text(yaml.safe_dump(change))
    kemu("--cluster", svc.name, "apply", "-f", str(f))
    assert svc.curl("default/client", f"http://{cip(svc, 'self')}/hostname") == "solo"
    # A label change moves a pod out of the Service before `kemu label` returns.
    kemu("--cluster", svc.name, "label", "pod", "solo", "app=gone", "--overwrite")
    assert svc.exec("default/client", "curl", "-sS", "-m", "2", f"http://{cip(svc, 'self')}/", check=False).returncode == 7  # refused
    kemu("--cluster", svc.name, "label", "pod", "solo", "app=solo", "--overwrite")
    assert svc.curl("default/client", f"http://{cip(svc, 'self')}/hostname") == "solo"
    dep["spec"]["replicas"] = 3
    f.write_text(yaml.safe_dump(dep))
    kemu("--cluster", svc.name, "apply", "-f", str(f))


def test_invalid_services_change_nothing(svc: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cases = {
        "ports[1].name: Required value": {"ports": [{"port": 80, "name": "a"}, {"port": 81}]},
        "provided port is not in the valid range": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 29999}]},
        "provided port is already allocated": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]},
        "The range of valid IPs is 10.96.0.0/16": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]},
        "provided IP is already allocated": {"clusterIP": cip(svc, "web"), "ports": [{"port": 80}]},
        "'Weird' is not allowed": {"type": "Weird", "ports": [{"port": 80}]},
    }
    before = kemu("--cluster", svc.name, "get", "svc", "-o", "json").stdout
    for message, spec in cases.items():
        f = tmp_path / "bad.yaml"
        f.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad"}, "spec": spec}))
        r = kemu("--cluster", svc.name, "apply", "-f", str(f), check=False)
        assert r.returncode == 2 and message in r.stderr, (message, r.stderr)
    assert kemu("--cluster", svc.name, "get", "svc", "-o", "json").stdout == before


def test_terminating_endpoints_fallback(svc: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    docs = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"slow-{i}", "labels": {"app": "slow"}},
         "spec": {"terminationGracePeriodSeconds": 60, "containers": [{"name": "c", "args": ["netexec", "--http-port=8080", "--delay-shutdown=60"], "ports": [{"containerPort": 8080}]}]}}
        for i in (1, 2)
    ] + [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "slow"}, "spec": {"selector": {"app": "slow"}, "ports": [{"port": 80, "targetPort": 8080}]}}]  # fmt: skip
    f = tmp_path / "slow.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    kemu("--cluster", svc.name, "apply", "-f", str(f))
    ip = cip(svc, "slow")
    assert set(hostnames(svc, "default/client", f"http://{ip}/hostname", 20)) == {"slow-1", "slow-2"}
    kemu("--cluster", svc.name, "delete", "pod", "slow-1", "--wait=false")
    sl = next(
        s
        for s in json.loads(kemu("--cluster", svc.name, "get", "endpointslices", "-o", "json").stdout)["items"]
        if s["metadata"]["labels"]["kubernetes.io/service-name"] == "slow"
    )
    conds = {e["targetRef"]["name"]: e["conditions"] for e in sl["endpoints"]}
    assert conds["slow-1"] == {"ready": False, "serving": True, "terminating": True}
    assert set(hostnames(svc, "default/client", f"http://{ip}/hostname", 15)) == {"slow-2"}  # ready ones only
    kemu("--cluster", svc.name, "delete", "pod", "slow-2", "--wait=false")
    assert set(hostnames(svc, "default/client", f"http://{ip}/hostname", 20)) == {"slow-1", "slow-2"}  # fallback
    kemu("--cluster", svc.name, "delete", "svc", "slow")


def test_stale_udp_conntrack_is_cleared(svc: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    docs = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"u-{i}", "labels": {"app": "u"}},
         "spec": {"nodeName": "node-2", "containers": [{"name": "c", "ports": [{"containerPort": 8081, "protocol": "UDP"}]}]}}
        for i in (1, 2)
    ] + [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "u"}, "spec": {"selector": {"app": "u"}, "ports": [{"port": 53, "protocol": "UDP", "targetPort": 8081}]}}]  # fmt: skip
    f = tmp_path / "u.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    kemu("--cluster", svc.name, "apply", "-f", str(f))
    ip = cip(svc, "u")
    # The same client port each time, as a long-lived UDP client (a resolver) would use.
    ask = textwrap.dedent(
        f"""\
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 40053))
        s.settimeout(2)
        s.sendto(b"hostname", ("{ip}", 53))
        try:
            print(s.recv(100).decode())
        except TimeoutError:
            print("timeout")
        """
    )
    first = svc.exec("default/client", "python3", "-c", ask).stdout.strip()
    assert first in ("u-1", "u-2")
    assert svc.exec("default/client", "python3", "-c", ask).stdout.strip() == first  # conntrack keeps the flow
    kemu("--cluster", svc.name, "delete", "pod", first, "--grace-period=0")
    other = {"u-1": "u-2", "u-2": "u-1"}[first]
    assert svc.exec("default/client", "python3", "-c", ask).stdout.strip() == other
    kemu("--cluster", svc.name, "delete", "svc", "u")
    kemu("--cluster", svc.name, "delete", "pod", other, "--grace-period=0")


def test_a_proxy_table_deleted_by_hand_is_restored(svc: Running) -> None:
    """Drift: someone deletes the proxy's rules on the client's node; kemu notices the
    foreign transaction and rewrites them, without any change to the cluster."""
    node = svc.node_of("default/client")
    doc = json.loads(kemu("--cluster", svc.name, "get", "node", node, "-o", "json").stdout)
    netns_name = doc["metadata"]["annotations"]["kemu.io/netns"]
    syncs = doc["status"]["dataplane"]["proxy"]["syncs"]
    table = "kemu-proxy" if svc.name.endswith("-nft") else "nat"  # iptables-nft keeps `ip nat`
    subprocess.run(["ip", "netns", "exec", netns_name, "nft", "delete", "table", "ip", table], check=True)

    def restored() -> bool:
        cp = subprocess.run(["ip", "netns", "exec", netns_name, "nft", "list", "table", "ip", table], capture_output=True)
        return cp.returncode == 0

    # Within milliseconds here (bench/drift.py measures it); the deadline is for slow machines.
    wait_until(restored, timeout=5, what=f"table ip {table} back on {node}")
    assert svc.curl("default/client", f"http://{cip(svc, 'self')}/hostname") == "solo"
    doc = json.loads(kemu("--cluster", svc.name, "get", "node", node, "-o", "json").stdout)
    assert doc["status"]["dataplane"]["proxy"]["syncs"] > syncs and "error" not in doc["status"]["dataplane"]["proxy"]
    described = kemu("--cluster", svc.name, "describe", "node", node).stdout
    assert "Dataplane:" in described and any(line.split()[:1] == ["proxy"] and "<none>" in line for line in described.splitlines())
