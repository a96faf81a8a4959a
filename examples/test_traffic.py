"""Traffic tests against an emulated cluster, with scapy: a suite to copy.

Run as root, from a virtualenv with kemu installed (its pytest plugin comes with it):

    sudo .venv/bin/pytest examples/test_traffic.py

The marker names the topology (relative to this file); the fixture `kemu_cluster` brings
it up once for the module and takes it down after the last test, also when a test fails
or you press Ctrl-C. Packets are built here and sent from inside the pod: fields you
leave out (the source address, the MACs) are filled in there, as if the pod sent them.
"""

from __future__ import annotations

import random
import time

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.packet import Packet
from scapy.volatile import RandShort

from emu.api import Cluster, Member

pytestmark = pytest.mark.kemu_topology("traffic.yaml")

DENY_WEB = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web, namespace: y}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]          # no ingress rule: nothing may reach the web pods
"""


@pytest.fixture(scope="module")
def client(kemu_cluster: Cluster) -> Member:
    return kemu_cluster.pod("x/client")


@pytest.fixture(scope="module")
def server(kemu_cluster: Cluster) -> Member:
    return kemu_cluster.pod("y/server")


def cluster_ip(cluster: Cluster, service: str) -> str:
    """A Service's ClusterIP (`service` as ns/name)."""
    ns, name = service.split("/")
    return str(cluster.get("svc", name, namespace=ns)["spec"]["clusterIP"])


def syn(dst: str, port: int, sport: int | None = None) -> Packet:
    # A fresh source port each time: no conntrack entry from an earlier test is reused.
    return IP(dst=dst) / TCP(sport=sport or RandShort(), dport=port, flags="S")


def test_syn_through_a_cluster_ip_gets_a_syn_ack(kemu_cluster: Cluster, client: Member) -> None:
    web = cluster_ip(kemu_cluster, "y/web")
    ans = client.sr1(syn(web, 80), timeout=3)
    assert ans is not None, "no answer to a SYN sent to the ClusterIP"
    assert TCP in ans and ans[TCP].flags == "SA"
    assert ans[IP].src == web  # the reply is un-DNATed: it comes from the ClusterIP


def test_no_nat_between_pods(kemu_cluster: Cluster, client: Member, server: Member) -> None:
    web = cluster_ip(kemu_cluster, "y/web")
    # Listening in the server pod before the client sends (sniff_async returns once it
    # listens), for this SYN only: its source port (NAT would keep it) tells it from the
    # kubelet's readiness probes.
    sport = random.randint(20000, 60000)
    capture = server.sniff_async(filter=f"tcp dst port 8080 and tcp src port {sport}", count=1, timeout=5)
    assert client.sr1(syn(web, 80, sport), timeout=3) is not None
    pkts = capture.join()
    assert len(pkts) == 1, "the server pod saw no SYN from the client's port"
    seen = pkts[0]
    assert seen[IP].src == client.ip  # the client pod's own address: no SNAT on the way
    assert seen[IP].dst == server.ip  # DNAT to the endpoint, on its target port
    # The same seen by a process in the pod: netexec echoes the address it was called from.
    out = client.run(["curl", "-s", "--max-time", "3", f"http://{web}/clientip"], check=True).stdout
    assert out.rsplit(":", 1)[0] == client.ip


def test_policy_drop_is_silent_but_no_endpoints_rejects(kemu_cluster: Cluster, client: Member, server: Member) -> None:
    nobody = cluster_ip(kemu_cluster, "y/nobody")
    ans = client.sr1(syn(nobody, 80), timeout=3)
    assert ans is not None, "a Service without endpoints must reject, not drop"
    assert (TCP in ans and ans[TCP].flags.R) or (ICMP in ans and ans[ICMP].type == 3)

    web = cluster_ip(kemu_cluster, "y/web")
    kemu_cluster.apply(DENY_WEB)
    try:
        assert "denied" in kemu_cluster.explain(client, server, port=8080)
        assert client.sr1(syn(web, 80), timeout=2) is None  # dropped: no RST, no ICMP
        assert client.sr1(syn(server.ip, 8080), timeout=2) is None  # straight to the pod too
    finally:
        kemu_cluster.delete("networkpolicy", "deny-web", namespace="y")
    assert client.sr1(syn(web, 80), timeout=3) is not None  # open again once it is gone


def received(member: Member, ip: str, count: int) -> int:
    """Echo replies out of `count` pings from `member` to `ip`."""
    out = member.run(["ping", "-c", str(count), "-i", "0.02", "-W", "1", ip]).stdout
    return int(out.split(" received")[0].rsplit(" ", 1)[1])


def test_loss_under_a_fault(kemu_cluster: Cluster, client: Member, server: Member) -> None:
    assert received(client, server.ip, 20) == 20
    kemu_cluster.fault("loss", client, 50)  # half of the frames lost, each way
    assert kemu_cluster.faults()[0]["kind"] == "loss"
    got = received(client, server.ip, 100)
    assert 5 <= got <= 50  # a round trip survives a quarter of the time
    kemu_cluster.fault_clear()  # (the plugin clears faults after each test anyway)
    assert received(client, server.ip, 20) == 20


def test_failover_when_a_node_goes_down(kemu_cluster: Cluster, client: Member) -> None:
    ha = cluster_ip(kemu_cluster, "y/ha")

    def answers(n: int) -> set[str]:
        return {client.run(["curl", "-s", "--max-time", "2", f"http://{ha}/hostname"]).stdout for _ in range(n)}

    assert answers(20) == {"ha-1", "ha-2"}  # both nodes serve
    kemu_cluster.fault("link", "node/node-2", "down")
    deadline = time.monotonic() + 30  # NotReady after the grace period (2 s here), then no endpoint there
    while kemu_cluster.get("node", "node-2")["status"]["conditions"][0]["status"] == "True":
        assert time.monotonic() < deadline, "node-2 did not turn NotReady"
        time.sleep(0.2)
    assert answers(20) == {"ha-1"}  # every connection goes to the node that is up
    kemu_cluster.fault("link", "node/node-2", "up")
