"""The real proxier, policy plane and node syncer on a fake kernel: what they write is
what a Service and a policy need, a failed write is retried in full, and a UDP endpoint
change deletes the stale conntrack entries — no root."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest

from emu.dataplane.node_sync import NodeSyncer
from emu.errors import CommandError
from emu.netfilter.evaluate import Packet, walk_outcomes
from emu.netfilter.fake import FakeKernel, FakeNft, load
from emu.netfilter.kernel import Netfilter
from emu.proxy import nft_render
from emu.proxy.proxier import Proxier
from tests.unit.proxy_fixture import NODE_IPS, plans, vip

pytestmark = pytest.mark.unit


class Flaky(FakeNft):
    """A fake backend whose next `fail` transactions are refused by the 'kernel'."""

    fail = 0

    def run(self, script: str) -> None:
        if Flaky.fail:
            Flaky.fail -= 1
            raise CommandError(["nft", "-f", "-"], 1, "Error: Could not process rule: Cannot allocate memory", self.netns)
        super().run(script)


def netfilter(kernel: FakeKernel, calls: list[Any]) -> Netfilter:
    return Netfilter(
        nft=lambda ns: Flaky(kernel, ns),
        iptables_restore=lambda ns, text: calls.append(("iptables-restore", ns, text)),
        conntrack_delete=lambda ns, args: calls.append(("conntrack", ns, tuple(args))),
    )


def test_the_proxier_writes_what_a_service_needs_and_retries_in_full() -> None:
    kernel, calls = FakeKernel(), []
    p = plans()["n1"]
    proxier = Proxier("n1", "nftables", netfilter(kernel, calls))
    syncer = NodeSyncer(lambda: None)
    try:
        assert syncer.run("proxy", "n1", lambda full: proxier.sync(p, full))
        # A new connection from a pod to the web ClusterIP is DNATed to a web pod.
        pkt = Packet(saddr="10.244.0.9", daddr=vip(p, "web"), l4proto="tcp", dport=80)
        dnats = {o.dnat for o in walk_outcomes(kernel.snapshot("n1"), pkt, NODE_IPS.values())}
        assert dnats == {("10.244.0.2", 8080), ("10.244.1.2", 8080), ("10.244.1.3", 8080)}
        # The kernel refuses the next change; the node's rules stay as they were, the
        # syncer reports it and the retry rewrites everything.
        changed = dataclasses.replace(p, services=tuple(s for s in p.services if not s.id.startswith("default/web/")))
        before = kernel.snapshot("n1").dump()
        Flaky.fail = 1  # the partial update
        assert not syncer.run("proxy", "n1", lambda full: proxier.sync(changed, full))
        assert kernel.snapshot("n1").dump() == before
        assert "Cannot allocate memory" in syncer.status("n1")["proxy"]["error"]
        assert syncer.run("proxy", "n1", lambda full: proxier.sync(changed, full))
        assert kernel.snapshot("n1").dump() == load(nft_render.render_full(changed)).dump()
        assert "error" not in syncer.status("n1")["proxy"]
    finally:
        syncer.close()
        Flaky.fail = 0


def test_a_udp_endpoint_gone_deletes_its_conntrack_entries() -> None:
    kernel, calls = FakeKernel(), []
    p = plans()["n1"]
    proxier = Proxier("n1", "iptables", netfilter(kernel, calls))
    proxier.sync(p)
    assert calls[0][0] == "iptables-restore" and "*nat" in calls[0][2]
    dns = next(s for s in p.services if s.id.startswith("default/web/") and s.protocol == "udp")
    gone = dns.cluster_endpoints[0]
    fewer = dataclasses.replace(dns, cluster_endpoints=dns.cluster_endpoints[1:], external_endpoints=dns.external_endpoints[1:])
    proxier.sync(dataclasses.replace(p, services=tuple(fewer if s is dns else s for s in p.services)))
    assert ("conntrack", "n1", ("-p", "udp", "--orig-dst", dns.cluster_ip, "--reply-src", gone.ip)) in calls


def test_the_policy_plane_writes_through_the_injected_backend() -> None:
    from emu.cluster.policies import PolicyPlane
    from emu.policy.oracle import View

    kernel = FakeKernel()
    node = SimpleNamespace(name="n1", ip="172.30.0.2", gateway="10.244.0.1")
    addr = SimpleNamespace(nodes=[node])
    syncer = NodeSyncer(lambda: None)
    try:
        plane = PolicyPlane(addr, {"n1": SimpleNamespace(name="kemu-t.n1")}, True, syncer, netfilter(kernel, []))  # type: ignore[arg-type]  # duck-typed plan and handles
        plane.sync(View({}, (), {"n1": frozenset({"172.30.0.2", "10.244.0.1"})}), [])
        assert kernel.snapshot("kemu-t.n1").table("ip", "kemu-policy") is not None
    finally:
        syncer.close()
