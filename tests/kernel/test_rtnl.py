"""Kernel tier: our rtnetlink module against the real kernel, checked with iproute2."""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from emu.dataplane import netns, rtnl
from emu.dataplane.handles import mark_request, read_marker
from emu.dataplane.rtnl_socket import RtnlError, RtnlSocket
from emu.dataplane.run import run

pytestmark = pytest.mark.kernel


@pytest.fixture
def two_ns() -> Iterator[tuple[str, str]]:
    """Two throwaway namespaces ("node" and "pod"), removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    made = netns.ensure_run_dir()
    names = (f"kemu-ktest-{tag}-a", f"kemu-ktest-{tag}-b")
    try:
        for name in names:
            with netns.created(name):
                pass
        yield names
    finally:
        for name in names:
            netns.delete(name)
        netns.release_run_dir(made)


@pytest.fixture
def sock(two_ns: tuple[str, str]) -> Iterator[RtnlSocket]:
    fd = netns.open_fd(two_ns[0])
    try:
        s = RtnlSocket.open_in(fd, two_ns[0])
    finally:
        os.close(fd)
    with s:
        yield s


def ip_json(ns: str, *args: str) -> Any:
    return json.loads(run(["ip", "-j", *args], netns_name=ns).stdout or "[]")


def test_errors_carry_the_errno_and_what_was_asked(sock: RtnlSocket, two_ns: tuple[str, str]) -> None:
    with pytest.raises(RtnlError) as e:
        sock.request(rtnl.link_del("nosuchdev"))
    assert e.value.errno == errno.ENODEV
    assert "link del nosuchdev" in str(e.value) and two_ns[0] in str(e.value) and "ENODEV" in str(e.value)
    with pytest.raises(RtnlError) as e:
        sock.request(rtnl.addr_add(4242, "10.9.0.1", 24))
    assert e.value.errno == errno.ENODEV and "addr add 10.9.0.1/24 dev index 4242" in e.value.what
    # The kernel's own explanation (extended ack) comes with the errno when it gives one.
    with pytest.raises(RtnlError) as e:
        sock.request(rtnl.addr_add(1, "10.9.0.1", 33))
    assert e.value.errno == errno.EINVAL and "addr add 10.9.0.1/33 dev index 1" in str(e.value)
    assert e.value.detail in str(e.value)
    # Failures that mean "already so" are not errors when the request says so.
    sock.request(rtnl.link_del("nosuchdev", missing_ok=True), rtnl.neigh_del(1, "10.9.0.9", missing_ok=True))
    # The socket still works after errors (no stale ack is taken for a new one).
    sock.request(rtnl.link_add_bridge("kbr0"))
    with pytest.raises(RtnlError) as e:
        sock.request(rtnl.link_add_bridge("kbr0"))
    assert e.value.errno == errno.EEXIST


def test_a_batch_is_applied_in_order_and_the_first_failure_is_reported(sock: RtnlSocket, two_ns: tuple[str, str]) -> None:
    ns = two_ns[0]
    sock.request(rtnl.link_add_bridge("kbr0", address="0a:58:0a:09:00:01"))
    br = sock.get_link("kbr0")
    assert br is not None and br.address == "0a:58:0a:09:00:01"
    sock.request(
        rtnl.link_set(br.index, up=True),
        rtnl.addr_add(br.index, "10.9.0.1", 24),
        rtnl.route_add("10.10.0.0/16", gateway="10.9.0.254"),
        rtnl.route_add("0.0.0.0/0", gateway="10.9.0.254", oif=br.index),
        rtnl.neigh_replace(br.index, "10.9.0.7", "0a:58:0a:09:00:07"),
    )
    addrs = ip_json(ns, "addr", "show", "dev", "kbr0")
    assert [(a["local"], a["prefixlen"]) for a in addrs[0]["addr_info"] if a["family"] == "inet"] == [("10.9.0.1", 24)]
    routes = {r["dst"]: r for r in ip_json(ns, "route")}
    assert routes["10.10.0.0/16"]["gateway"] == "10.9.0.254" and routes["default"]["dev"] == "kbr0"
    neigh = ip_json(ns, "neigh", "show", "10.9.0.7")
    assert neigh[0]["lladdr"] == "0a:58:0a:09:00:07" and "PERMANENT" in neigh[0]["state"]
    # The kernel handles every message of a datagram: the second fails, the third is done.
    with pytest.raises(RtnlError) as e:
        sock.request(
            rtnl.route_add("10.11.0.0/16", gateway="10.9.0.254"),
            rtnl.route_add("10.10.0.0/16", gateway="10.9.0.254"),  # exists
            rtnl.route_add("10.12.0.0/16", gateway="10.9.0.254"),
        )
    assert e.value.errno == errno.EEXIST and "route add 10.10.0.0/16" in e.value.what
    assert {"10.11.0.0/16", "10.12.0.0/16"} <= {r["dst"] for r in ip_json(ns, "route")}
    # A batch longer than one datagram holds (MAX_BATCH) is split, and every ack is read.
    many = [rtnl.route_add(f"10.200.{i}.0/24", gateway="10.9.0.254") for i in range(rtnl.MAX_BATCH * 2 + 5)]
    sock.request(*many)
    assert sum(1 for r in ip_json(ns, "route") if r["dst"].startswith("10.200.")) == len(many)
    sock.request(rtnl.link_set(br.index, up=False))  # the socket is in step after it
    assert "UP" not in ip_json(ns, "link", "show", "dev", "kbr0")[0]["flags"]


def test_a_veth_made_with_its_peer_in_another_namespace(sock: RtnlSocket, two_ns: tuple[str, str]) -> None:
    node, pod = two_ns
    sock.request(rtnl.link_add_bridge("kbr0"))
    br = sock.get_link("kbr0")
    assert br is not None
    pod_fd = netns.open_fd(pod)
    try:
        sock.request(
            rtnl.link_add_veth(
                "vethktest",
                "eth0",
                index=1007,
                peer_index=2,
                peer_address="0a:58:0a:09:00:07",
                peer_netns_fd=pod_fd,
                master=br.index,
                up=True,
            ),
            rtnl.bridge_port_set(1007, hairpin=True),
        )
    finally:
        os.close(pod_fd)
    host = ip_json(node, "-d", "link", "show", "dev", "vethktest")[0]
    assert host["ifindex"] == 1007 and host["master"] == "kbr0" and "UP" in host["flags"]
    assert host["linkinfo"]["info_slave_kind"] == "bridge" and host["linkinfo"]["info_slave_data"]["hairpin"] is True
    got = sock.get_link("vethktest")
    assert got is not None and (got.index, got.name, got.master) == (1007, "vethktest", br.index)
    assert sock.get_link("eth0") is None  # the peer is not here...
    with netns.entered(pod):
        with RtnlSocket(pod) as p:
            p.defer(mark_request("kemu:ktest:1"))
            p.request(rtnl.addr_add(2, "10.9.0.7", 32), rtnl.link_set(2, up=True))
            eth0 = p.get_link("eth0")
    assert eth0 is not None and (eth0.index, eth0.address) == (2, "0a:58:0a:09:00:07")  # ...but there
    links = {link["ifname"]: link for link in ip_json(pod, "addr")}
    assert set(links) == {"lo", "eth0"}
    assert links["eth0"]["address"] == "0a:58:0a:09:00:07"
    assert [(a["local"], a["prefixlen"]) for a in links["eth0"]["addr_info"] if a["family"] == "inet"] == [("10.9.0.7", 32)]
    assert "UP" in links["lo"]["flags"] and read_marker(pod) == "kemu:ktest:1"
    # Deleting one end by name removes the pair.
    sock.request(rtnl.link_del("vethktest"))
    assert set(link["ifname"] for link in ip_json(pod, "link")) == {"lo"}


def test_a_pod_the_kernel_refuses_unwinds_with_the_errno() -> None:
    """Network.add_pod over rtnl: a failure names the request and errno, and leaves no
    namespace, link or neighbour entry of the half-made pod behind."""
    from emu.controllers.ipam import plan_addresses
    from emu.dataplane.cleanup import clean_cluster
    from emu.dataplane.cni import plugin_for
    from emu.dataplane.network import Network
    from emu.dataplane.ownership import Record
    from emu.model.objects import ClusterSpec, NodeDecl

    spec = ClusterSpec("ktr", nodes=(NodeDecl("n1"),))
    rec = Record("ktr")
    rec.data["marker"] = "kemu:ktr:test"
    rec.create()
    net = Network("ktr", plan_addresses(spec), plugin_for("bridge"), spec.pod_cidr, rec)
    try:
        net.build()
        ok = net.add_pod("x/a", "n1", "10.244.0.2")
        # The same IP again: its node-side interface index (1000 + last octet) is taken.
        with pytest.raises(RtnlError) as e:
            net.add_pod("x/b", "n1", "10.244.0.2")
        assert e.value.errno == errno.EEXIST and "link add" in e.value.what and e.value.netns == "kemu-ktr.n1"
        assert not netns.exists("kemu-ktr.x.b") and netns.exists(ok)
        assert "x/b" not in net.pods
        net.remove_pod("x/a")
        assert not netns.exists(ok)
        assert ip_json("kemu-ktr.n1", "neigh", "show", "dev", "cbr0") == []
        assert [link["ifname"] for link in ip_json("kemu-ktr.n1", "link", "show", "master", "cbr0")] == []
    finally:
        net.teardown()
        clean_cluster(rec)
