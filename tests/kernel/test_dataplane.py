"""Kernel tier: namespaces, the network object and clean-up, without a whole cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute

from emu.controllers.ipam import PodIPAllocator, plan_addresses
from emu.dataplane import names, netns
from emu.dataplane.cleanup import clean_cluster
from emu.dataplane.cni import plugin_for
from emu.dataplane.handles import mark_here, read_marker
from emu.dataplane.network import Network
from emu.dataplane.ownership import Record
from emu.dataplane.run import run
from emu.errors import CommandError, DataplaneError
from emu.model.objects import ClusterSpec, ExternalHostDecl, NodeDecl
from tests.conftest import REPO

pytestmark = pytest.mark.kernel


def ns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


@pytest.fixture
def throwaway() -> Iterator[str]:
    name = f"kemu-ktest-{uuid.uuid4().hex[:6]}"
    made = netns.ensure_run_dir()
    yield name
    netns.delete(name)
    netns.release_run_dir(made)


def test_the_calling_thread_always_comes_home(throwaway: str) -> None:
    """Even when the very first namespace operation of the process runs on the main thread."""
    code = (
        "import os, sys\n"
        "before = os.readlink('/proc/thread-self/ns/net')\n"
        "from emu.dataplane import netns\n"
        f"with netns.created({throwaway!r}):\n"
        "    assert os.readlink('/proc/thread-self/ns/net') != before\n"
        "assert os.readlink('/proc/thread-self/ns/net') == before, 'left in the new namespace'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_create_enter_mark_delete(throwaway: str) -> None:
    with netns.created(throwaway):
        with IPRoute() as ipr:
            mark_here(ipr, "kemu:test:1")
            assert [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()] == ["lo"]
    assert ns_exists(throwaway)
    # The creating thread is back home: it still sees the host's interfaces.
    with IPRoute() as ipr:
        assert len(ipr.get_links()) >= 1
    assert read_marker(throwaway) == "kemu:test:1"
    # `ip netns` sees it as its own.
    assert run(["ip", "-o", "link"], netns_name=throwaway).stdout.count("\n") == 1
    assert netns.delete(throwaway) and not ns_exists(throwaway)
    assert not netns.delete(throwaway)


def test_entering_a_missing_namespace_is_a_clear_error() -> None:
    with pytest.raises(DataplaneError, match="does not exist"):
        with netns.entered("kemu-no-such-ns"):
            pass


def test_command_errors_say_what_failed(throwaway: str) -> None:
    with netns.created(throwaway):
        pass
    with pytest.raises(CommandError) as e:
        run(["ip", "link", "del", "nosuchdev"], netns_name=throwaway)
    assert throwaway in str(e.value) and "nosuchdev" in str(e.value) and e.value.returncode != 0


SPEC = ClusterSpec("kt", nodes=(NodeDecl("n1"), NodeDecl("n2")), external_hosts=(ExternalHostDecl("ext"),))


@pytest.fixture(params=["bridge", "vxlan", "routed"])
def network(request: pytest.FixtureRequest) -> Iterator[Network]:
    rec = Record("kt")
    rec.data["marker"] = "kemu:kt:test"
    rec.create()
    net = Network("kt", plan_addresses(SPEC), plugin_for(request.param), SPEC.pod_cidr, rec)
    try:
        net.build()
        yield net
    finally:
        net.teardown()
        clean_cluster(rec)
    assert not os.path.isdir("/run/netns") or not [n for n in os.listdir("/run/netns") if n.startswith("kemu-kt.")]


def ping(ns: str, ip: str) -> bool:
    # Three tries 0.2 s apart, any answer counts: one echo lost on a loaded machine (a
    # bridge-variant failure seen once beside a throughput bench) is not a wiring fault.
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c3", "-i0.2", "-W2", ip], capture_output=True).returncode == 0


def test_network_wiring(network: Network) -> None:
    alloc = PodIPAllocator(network.plan)
    a = network.add_pod("x/a", "n1", alloc.allocate("n1") or "")
    b = network.add_pod("x/b", "n2", alloc.allocate("n2") or "")
    c = network.add_pod("x/c", "n1", alloc.allocate("n1") or "")
    assert (a, b) == ("kemu-kt.x.a", "kemu-kt.x.b")
    assert ping(a, "10.244.1.2") and ping(a, "10.244.0.3")  # cross-node and same-node
    assert ping("kemu-kt.n1", "10.244.0.2")  # node → its pod
    assert ping("kemu-kt.ext", "172.30.0.2")  # external host → node
    assert not ping("kemu-kt.ext", "10.244.0.2")  # but not to pods
    routes = run(["ip", "route"], netns_name="kemu-kt.n2").stdout
    plugin = network.cni.name
    if plugin == "vxlan":
        assert "10.244.0.0/24 via 10.244.0.0 dev flannel.1" in routes and "onlink" in routes
        fdb = run(["bridge", "fdb", "show", "dev", "flannel.1"], netns_name="kemu-kt.n2").stdout
        assert "dst 172.30.0.2 self permanent" in fdb
    else:
        assert "10.244.0.0/24 via 172.30.0.2 dev eth0" in routes
    assert run(["sysctl", "-n", "net.ipv4.ip_forward"], netns_name="kemu-kt.n1").stdout.strip() == "1"
    # Removing a pod cuts it off and unpins its namespace.
    network.remove_pod("x/c")
    assert not ns_exists(c) and not ping(a, "10.244.0.3")
    host_ifs = run(["ip", "-o", "link"], netns_name="kemu-kt.n1").stdout
    assert names.pod_host_if("x", "a") in host_ifs and names.pod_host_if("x", "c") not in host_ifs
    if plugin == "routed":
        # No bridge: the node routes each pod's /32 to its veth; a removed pod's route went with it.
        node_routes = run(["ip", "route"], netns_name="kemu-kt.n1").stdout
        assert f"10.244.0.2 dev {names.pod_host_if('x', 'a')} proto static scope link" in node_routes and "10.244.0.3" not in node_routes
        assert "cbr0" not in host_ifs
    else:
        bridge_ports = run(["ip", "-o", "link", "show", "master", "cbr0"], netns_name="kemu-kt.n1").stdout
        assert names.pod_host_if("x", "a") in bridge_ports and names.pod_host_if("x", "c") not in bridge_ports


def test_clean_from_record_after_an_abandoned_build() -> None:
    """A process that dies mid-way leaves namespaces; the record finds every one."""
    rec = Record("kt2")
    rec.data["marker"] = "kemu:kt2:test"
    rec.create()
    spec = ClusterSpec("kt2", nodes=(NodeDecl("n1"),))
    net = Network("kt2", plan_addresses(spec), plugin_for("bridge"), spec.pod_cidr, rec)
    net.build()
    rec.add_netns(["kemu-kt2.x.p0", "kemu-kt2.x.p1"])  # recorded before creation...
    net.add_pod("x/p0", "n1", "10.244.0.2")  # ...and only the first one made
    # Abandon `net` without teardown, as kill -9 would.
    removed = clean_cluster(Record.load("kt2"))
    assert sorted(removed) == ["netns kemu-kt2", "netns kemu-kt2.n1", "netns kemu-kt2.x.p0"]
    assert not os.path.exists("/run/kemu/kt2")
    for h in [*net.nodes.values(), net.switch]:
        assert h is not None
        h.close()


def test_clean_refuses_a_namespace_with_another_marker(throwaway: str) -> None:
    with netns.created(throwaway):
        with IPRoute() as ipr:
            mark_here(ipr, "kemu:someone-else:1")
    rec = Record("kt3")
    rec.data["marker"] = "kemu:kt3:mine"
    rec.data["netns"] = [throwaway]
    rec.create()
    assert clean_cluster(rec) == []
    assert ns_exists(throwaway)


def test_clean_fails_closed_when_a_marker_cannot_be_read(throwaway: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A namespace whose marker can't be read may be someone else's: kept, with a warning."""
    import emu.dataplane.cleanup as cleanup
    from emu.dataplane.handles import MarkerUnreadable

    with netns.created(throwaway):
        pass

    def unreadable(name: str) -> str | None:
        raise MarkerUnreadable(f"cannot read the ownership marker of netns {name}: EPERM")

    monkeypatch.setattr(cleanup, "read_marker", unreadable)
    rec = Record("kt4")
    rec.data["netns"] = [throwaway]
    rec.create()
    assert clean_cluster(rec) == []
    assert ns_exists(throwaway)


def test_clean_removes_a_pin_file_that_holds_no_namespace(throwaway: str) -> None:
    """A creation that died between creating the pin file and mounting the namespace on it."""
    open(netns.path(throwaway), "w").close()
    rec = Record("kt5")
    rec.data["netns"] = [throwaway]
    rec.create()
    assert clean_cluster(rec) == [f"netns {throwaway}"]
    assert not ns_exists(throwaway)


def test_the_nft_monitor_reports_transactions_of_other_processes_only(throwaway: str) -> None:
    import queue

    from emu.netfilter.backend import open_backend
    from emu.netfilter.monitor import NftMonitor

    with netns.created(throwaway):
        pass
    seen: queue.Queue[str] = queue.Queue()
    mon = NftMonitor(seen.put)
    fd = netns.open_fd(throwaway)
    nft = open_backend(throwaway)
    try:
        mon.watch(throwaway, fd)
        nft.run("table ip kemu-x {\n  chain c {\n  }\n}\n")  # ours, in-process (libnftables)
        run(["nft", "add", "chain", "ip", "kemu-x", "d"], netns_name=throwaway)  # ours, a command we ran
        subprocess.run(["ip", "netns", "exec", throwaway, "nft", "delete", "chain", "ip", "kemu-x", "c"], check=True)
        assert seen.get(timeout=5) == throwaway
        assert seen.empty()
    finally:
        nft.close()
        mon.close()
        os.close(fd)
