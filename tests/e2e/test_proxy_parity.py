"""Parity with kube-proxy where it is easy to get wrong, through the kernel, on both backends.

Each test names the upstream behaviour it checks (pkg/proxy/{nftables,iptables}/proxier.go
and the packet-flow cases of their proxier_test.go):
- a. nftables rejects a ClusterIP reached on a port or protocol no Service port serves
  (its cluster-ips-check); iptables has no such rule and leaves it unanswered;
- b. an externalIP of a Service without endpoints is refused at once, from outside and
  from a pod; the node itself reaches externalIPs (nodes route them, as real nodes do);
- c. iptables serves NodePorts on 127.0.0.1 from the node itself, masqueraded
  (localhostNodePorts, route_localnet=1); nftables never does (kube-proxy's nftables
  mode does not support localhost NodePorts);
- d. a space-padded loadBalancerSourceRanges entry is accepted and enforced, trimmed.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import pytest
import yaml

from emu.traffic.capture import Capture
from tests.e2e.helpers import Running, cni_of, kemu, pod_networks, start, stop, topology_variant, variant_name

pytestmark = pytest.mark.e2e

NODE_1, NODE_2 = "172.30.0.2", "172.30.0.3"
CLIENT_HOST, OTHER_HOST = "172.30.0.4", "172.30.0.5"
EXT_WEB, EXT_NONE = "192.0.2.21", "192.0.2.20"  # externalIPs with and without endpoints
NODE_PORT, EMPTY_NODE_PORT = 30090, 30091

# One connection attempt from inside a namespace, told apart the way a client sees it:
# "answered", "refused" (RST or ICMP port unreachable: ECONNREFUSED), "timeout", or
# "error:<errno>" (e.g. EHOSTUNREACH after a failed ARP, ENETUNREACH without a route).
# UDP: a connected socket reports an ICMP port unreachable as ECONNREFUSED on recv.
PROBE = textwrap.dedent(
    """\
    import errno, socket, sys, time
    proto, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        s.connect((host, port))
        if proto == "udp":
            s.send(b"hostname")
            s.recv(100)
        out = "answered"
    except ConnectionRefusedError:
        out = "refused"
    except TimeoutError:
        out = "timeout"
    except OSError as e:
        out = "error:" + errno.errorcode.get(e.errno or 0, str(e.errno))
    print(out, round(time.monotonic() - t0, 2))
    """
)
AT_ONCE = 1.5  # a refusal takes a round trip; anything near the probe's timeout is not one


@pytest.fixture(scope="module", params=pod_networks())
def par(request, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    cni, proxy = request.param
    name = variant_name("par", cni, proxy)
    r = start(topology_variant("proxy-parity.yaml", tmp_path_factory.mktemp(name), name, proxy=proxy, cni=cni), name)
    try:
        hosts = json.loads(kemu("--cluster", name, "get", "hosts", "-o", "json").stdout)["items"]
        addr = {h["metadata"]["name"]: h["status"]["addresses"][0]["address"] for h in hosts}
        assert addr == {"client": CLIENT_HOST, "other": OTHER_HOST}, addr  # the source range names 172.30.0.4
        yield r
    finally:
        stop(r)


def backend(c: Running) -> str:
    return "nftables" if c.name.endswith("-nft") else "iptables"


def probe(c: Running, src: str, proto: str, host: str, port: int, timeout: float = 2.0) -> tuple[str, float]:
    out = c.exec(src, "python3", "-c", PROBE, proto, host, str(port), str(timeout)).stdout.split()
    return out[0], float(out[1])


def refused_at_once(c: Running, src: str, proto: str, host: str, port: int) -> None:
    outcome, took = probe(c, src, proto, host, port)
    assert (outcome, took < AT_ONCE) == ("refused", True), (src, proto, host, port, outcome, took)


def not_refused(c: Running, src: str, proto: str, host: str, port: int) -> None:
    outcome, took = probe(c, src, proto, host, port)
    # Unanswered: the node forwards it on-link and ARP fails (EHOSTUNREACH after ~3 s).
    assert outcome in ("timeout", "error:EHOSTUNREACH"), (src, proto, host, port, outcome, took)


def get_svc(c: Running, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(kemu("--cluster", c.name, "get", "svc", name, "-o", "json").stdout)


def cip(c: Running, name: str) -> str:
    return str(get_svc(c, name)["spec"]["clusterIP"])


def lb_ip(c: Running, name: str) -> str:
    return str(get_svc(c, name)["status"]["loadBalancer"]["ingress"][0]["ip"])


# --- a. a ClusterIP on a port or protocol no Service port serves ------------------------


def test_clusterip_unserved_port_or_protocol(par: Running) -> None:
    ip = cip(par, "web")
    assert par.curl("default/client", f"http://{ip}/hostname") == "web"  # the served port works
    if backend(par) == "iptables":
        # kube-proxy's iptables mode: no rule matches, the packet goes on unanswered
        # (TestClusterIPGeneral "svc1 does not accept svc2's ports": no output).
        not_refused(par, "default/client", "tcp", ip, 81)
        not_refused(par, "default/client", "udp", ip, 80)
        return
    # nftables: cluster-ips-check, in forward (from a pod) and after nat-output (the node).
    # TestClusterIPGeneral "svc1 does not accept svc2's ports", "TCP-only port does not
    # match UDP traffic": REJECT.
    refused_at_once(par, "default/client", "tcp", ip, 81)
    refused_at_once(par, "default/client", "udp", ip, 80)
    refused_at_once(par, "node/node-1", "tcp", ip, 81)
    cap = Capture(f"kemu-{par.name}.default.client", "eth0", "icmp", count=1, timeout=5)
    probe(par, "default/client", "tcp", ip, 8080)
    (pkt,) = cap.result()
    # The reject as kube-proxy sends it: ICMP destination unreachable, port unreachable.
    assert (pkt.proto, pkt.icmp_type, pkt.icmp_code, pkt.dst) == ("1", 3, 3, par.ip("default/client"))


# --- b. externalIPs ---------------------------------------------------------------------


def test_external_ip_without_endpoints_is_refused(par: Running) -> None:
    # The network routes the externalIPs to node-1, as a cluster's router would.
    for ip in (EXT_WEB, EXT_NONE):
        par.exec("host/client", "ip", "route", "replace", f"{ip}/32", "via", NODE_1)
    assert par.curl("host/client", f"http://{EXT_WEB}/hostname") == "web"  # with endpoints: served
    # TestNoEndpointsReject "external to external IP with no endpoints": REJECT, on both
    # backends; kube-proxy rejects it in the forward hook, which the packet reaches
    # because the node routes it onwards.
    refused_at_once(par, "host/client", "tcp", EXT_NONE, 80)
    refused_at_once(par, "default/client", "tcp", EXT_NONE, 80)


def test_node_reaches_an_external_ip(par: Running) -> None:
    # A node's own connection to an externalIP is DNATed in nat-output like any other,
    # once the node has a route for the address (a real node's default route).
    assert par.curl("node/node-1", f"http://{EXT_WEB}/hostname") == "web"
    if backend(par) == "nftables":
        refused_at_once(par, "node/node-1", "tcp", EXT_NONE, 80)  # service-endpoints-check in output
    else:
        # kube-proxy's iptables mode hooks KUBE-EXTERNAL-SERVICES in input and forward
        # only: the node's own connection is routed on, unanswered.
        not_refused(par, "node/node-1", "tcp", EXT_NONE, 80)


# --- c. NodePorts on 127.0.0.1 from the node itself ---------------------------------------


def test_localhost_nodeports(par: Running) -> None:
    assert par.curl("node/node-1", f"http://{NODE_1}:{NODE_PORT}/hostname") == "web"  # the NodePort itself works
    if backend(par) == "nftables":
        # kube-proxy's nftables mode never serves NodePorts on localhost: nothing listens
        # on 127.0.0.1:30090 in the node, so the kernel refuses.
        refused_at_once(par, "node/node-1", "tcp", "127.0.0.1", NODE_PORT)
        refused_at_once(par, "node/node-1", "tcp", "127.0.0.1", EMPTY_NODE_PORT)
        return
    # TestNodePorts "localhost to nodePort gets masqueraded" (iptables, localhostNodePorts).
    for node in ("node-1", "node-2"):
        assert par.curl(f"node/{node}", f"http://127.0.0.1:{NODE_PORT}/hostname") == "web"
    # Masqueraded: the endpoint (on node-2) sees an address of node-1, never 127.0.0.1 —
    # the one its route to the endpoint leaves by: eth0's, or the VXLAN device's
    # (10.244.0.0) on the vxlan pod network, as flannel's nodes do.
    seen = par.curl("node/node-1", f"http://127.0.0.1:{NODE_PORT}/clientip").split(":")[0]
    assert seen == ("10.244.0.0" if cni_of(par) == "vxlan" else NODE_1), seen
    # Without endpoints the localhost NodePort is rejected like any other.
    refused_at_once(par, "node/node-1", "tcp", "127.0.0.1", EMPTY_NODE_PORT)


# --- d. padded loadBalancerSourceRanges ---------------------------------------------------


def test_padded_source_range_is_trimmed_and_enforced(par: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The topology's " 172.30.0.4/32 " was accepted at `kemu up`; it guards the LB IP.
    ip = lb_ip(par, "fw")
    assert par.curl("host/client", f"http://{ip}/hostname") == "web"
    assert probe(par, "host/other", "tcp", ip, 80)[0] == "timeout"  # dropped, not refused
    # The same through `kemu apply` on the running cluster, for `other` this time.
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "fw2"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web"},
            "loadBalancerSourceRanges": ["\t172.30.0.5/32 "],
            "ports": [{"port": 80, "targetPort": "http"}],
        },
    }
    f = tmp_path / "fw2.yaml"
    f.write_text(yaml.safe_dump(svc))
    kemu("--cluster", par.name, "apply", "-f", str(f))
    try:
        ip2 = lb_ip(par, "fw2")
        assert par.curl("host/other", f"http://{ip2}/hostname") == "web"
        assert probe(par, "host/client", "tcp", ip2, 80)[0] == "timeout"
    finally:
        kemu("--cluster", par.name, "delete", "svc", "fw2")
