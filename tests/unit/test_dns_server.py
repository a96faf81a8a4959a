"""The DNS server process (emu.dns.server) on 127.0.0.1 high ports: UDP, TCP, truncation and the
TCP retry, reload when the state file changes or on SIGHUP, forwarding to the upstream resolver,
and the metrics/health/ready endpoints. No root, no namespace."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from emu.dns.cache import Generation, cache_key
from emu.dns.records import build_index, wait_loaded, write_state
from emu.dns.resolver import respond
from emu.dns.upstream import build_upstream_index
from emu.model.objects import Meta
from emu.model.services import Service, ServicePort, ServiceStatus
from tests.conftest import REPO
from tests.unit.test_dns_records import INDEX, Z, sample

pytestmark = pytest.mark.unit

HOST = "127.0.0.1"


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1."""
    while True:
        with socket.socket() as t:
            t.bind((HOST, 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((HOST, port))
                except OSError:
                    continue
                return port


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    state: Path
    ack: Path
    dns: int
    metrics: int
    health: int
    ready: int

    def query(self, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
        return dns.query.udp(dns.message.make_query(name, rdtype, **kw), HOST, port=self.dns, timeout=2)  # type: ignore[arg-type]

    def get(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


def start(tmp: Path, upstream: str = "", index: object = INDEX, wait: bool = True) -> Server:
    state, ack = tmp / "dns.json", tmp / "ack"
    if index is not None:
        write_state(str(state), index)  # type: ignore[arg-type]
    # Four different ports: free_port() releases each one, and the kernel may hand the same
    # one out again (the server then failed to bind and this setup erred, once).
    ports: list[int] = []
    while len(ports) < 4:
        if (p := free_port()) not in ports:
            ports.append(p)
    argv = [sys.executable, "-m", "emu.dns.server", "--state", str(state), "--bind", HOST, "--ack", str(ack)]
    argv += ["--udp-port", str(ports[0]), "--tcp-port", str(ports[0]), "--metrics-port", str(ports[1])]
    argv += ["--health-port", str(ports[2]), "--ready-port", str(ports[3])]
    if upstream:
        argv += ["--upstream", upstream]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv = Server(proc, state, ack, *ports)
    deadline = time.monotonic() + 20
    while True:
        try:
            code, _ = srv.get(srv.ready, "/ready")
            if code == 200 or (not wait and code == 503):
                return srv
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the DNS server did not start (exit {proc.poll()})")
        time.sleep(0.05)


def stop(srv: Server) -> None:
    srv.proc.send_signal(signal.SIGTERM)
    try:
        srv.proc.wait(5)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start(tmp_path_factory.mktemp("dns"))
    yield srv
    stop(srv)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    srv = start(tmp_path)
    yield srv
    stop(srv)


def addresses(r: dns.message.Message) -> set[str]:
    return {rd.to_text() for rrset in r.answer for rd in rrset}


def wait_for(check: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_udp_and_tcp(server: Server) -> None:
    for _ in range(2):  # the second answer comes from the cache, with this query's ID
        q = dns.message.make_query(f"web.shop.svc.{Z}", "A")
        r = dns.query.udp(q, HOST, port=server.dns, timeout=2)
        assert r.id == q.id and r.flags & dns.flags.AA and addresses(r) == {"10.96.0.20"}
    r = dns.query.tcp(dns.message.make_query(f"_pg._tcp.db.shop.svc.{Z}", "SRV"), HOST, port=server.dns, timeout=2)
    assert len(r.answer[0]) == 2 and len(r.additional) == 2
    r = server.query(f"WEB.Shop.svc.{Z}")
    assert r.answer[0].name.to_text() == f"WEB.Shop.svc.{Z}."  # the question's case, not the cached one's
    assert server.query(f"nope.shop.svc.{Z}").rcode() == dns.rcode.NXDOMAIN
    assert server.query("www.example.com").rcode() == dns.rcode.NXDOMAIN  # no upstream


def test_truncation_and_tcp_retry(server: Server) -> None:
    name = f"many.shop.svc.{Z}"
    r = server.query(name)
    assert r.flags & dns.flags.TC and not r.answer
    r = server.query(name, use_edns=0, payload=1232)
    assert r.flags & dns.flags.TC and r.edns == 0
    r, tcp = dns.query.udp_with_fallback(dns.message.make_query(name, "A"), HOST, port=server.dns, timeout=2)
    assert tcp and len(addresses(r)) == 100


def test_edns_options_do_not_defeat_the_cache(server: Server) -> None:
    for cookie in (b"\x01" * 8, b"\x02" * 8):
        opt = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, cookie)
        r = server.query(f"db.shop.svc.{Z}", use_edns=0, options=[opt])
        assert addresses(r) == {"10.244.1.5", "10.244.2.6"}
    q = dns.message.make_query(f"web.shop.svc.{Z}", "A", use_edns=0)
    k = cache_key(q.to_wire())
    q.use_edns(0, options=[dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x03" * 8)])
    assert cache_key(q.to_wire()) == k


def test_junk_gets_formerr(server: Server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07garbage", (HOST, server.dns))
        data = s.recv(512)
    assert data[:2] == b"\xab\xcd" and data[2] & 0x80 and data[3] & 0x0F == dns.rcode.FORMERR


def test_http_endpoints(server: Server) -> None:
    server.query(f"web.shop.svc.{Z}")
    assert server.get(server.health, "/health") == (200, "OK")
    assert server.get(server.ready, "/ready") == (200, "OK")
    assert server.get(server.health, "/nope")[0] == 404
    code, text = server.get(server.metrics, "/metrics")
    assert code == 200
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    label = f'server="dns://:{server.dns}",zone=".",view=""'
    assert int(lines[f'coredns_dns_requests_total{{{label},proto="udp",family="1",type="A"}}']) >= 1
    assert int(lines[f'coredns_dns_responses_total{{{label},rcode="NOERROR",plugin=""}}']) >= 1
    assert int(lines[f'coredns_dns_request_duration_seconds_count{{{label},type="A"}}']) >= 1
    assert lines["kemu_dns_state_serial"] == "7" and int(lines["process_resident_memory_bytes"]) > 0
    assert server.ack.read_text() == "7\n"


def changed(serial: int, web_ip: str, extra: bool = False) -> object:
    """The sample index with web's ClusterIP changed (and a Service `new` added)."""
    services = [Service(Meta("web", "shop"), selector={"a": "b"}, ports=(ServicePort(80, "TCP", "http"),))]
    statuses = {"shop/web": ServiceStatus(web_ip)}
    if extra:
        services.append(Service(Meta("new", "shop"), selector={"a": "b"}))
        statuses["shop/new"] = ServiceStatus("10.96.0.99")
    return build_index(services, statuses, {}, [], namespaces=["shop"], serial=serial)


def test_reload_when_the_state_changes(fresh: Server) -> None:
    assert addresses(fresh.query(f"web.shop.svc.{Z}")) == {"10.96.0.20"}
    assert fresh.query(f"new.shop.svc.{Z}").rcode() == dns.rcode.NXDOMAIN  # cached negative answer
    write_state(str(fresh.state), changed(8, "10.96.0.21", extra=True))  # type: ignore[arg-type]
    assert wait_loaded([str(fresh.ack)], 8) == []
    assert addresses(fresh.query(f"web.shop.svc.{Z}")) == {"10.96.0.21"}  # as soon as the ack is there
    assert addresses(fresh.query(f"new.shop.svc.{Z}")) == {"10.96.0.99"}
    assert fresh.query(f"db.shop.svc.{Z}").rcode() == dns.rcode.NXDOMAIN


def test_reload_on_sighup(fresh: Server) -> None:
    fresh.ack.unlink()
    fresh.proc.send_signal(signal.SIGHUP)
    wait_for(fresh.ack.exists)
    assert fresh.ack.read_text() == "7\n"
    # A broken state file is refused; the last good index keeps answering.
    fresh.state.write_text("{not json")
    time.sleep(0.3)
    assert addresses(fresh.query(f"web.shop.svc.{Z}")) == {"10.96.0.20"}
    _, text = fresh.get(fresh.metrics, "/metrics")
    failed = [line for line in text.splitlines() if line.startswith("coredns_reload_failed_total ")]
    assert failed and int(failed[0].split()[1]) >= 1


def test_not_loaded_yet(tmp_path: Path) -> None:
    srv = start(tmp_path, index=None, wait=False)
    try:
        assert srv.get(srv.ready, "/ready")[0] == 503
        assert srv.query(f"web.shop.svc.{Z}").rcode() == dns.rcode.SERVFAIL
        write_state(str(srv.state), INDEX)
        wait_for(lambda: srv.get(srv.ready, "/ready")[0] == 200)
        assert addresses(srv.query(f"web.shop.svc.{Z}")) == {"10.96.0.20"}
    finally:
        stop(srv)


def test_forwarding_to_the_upstream_resolver(tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    (tmp_path / "cluster").mkdir()
    up_index = build_upstream_index({"node-1": "172.30.0.2", "www.example.com": "192.0.2.53"}, domain="kemu.internal")
    up = start(tmp_path / "up", index=up_index)
    try:
        r = up.query("node-1")  # asked directly (dnsPolicy: Default): a recursive resolver's answer
        assert addresses(r) == {"172.30.0.2"} and r.flags & dns.flags.RA and r.flags & dns.flags.AA
        srv = start(tmp_path / "cluster", upstream=f"{HOST}:{up.dns}")
        try:
            r = srv.query("node-1")
            assert addresses(r) == {"172.30.0.2"} and r.flags & dns.flags.RA
            assert addresses(srv.query("node-1.kemu.internal")) == {"172.30.0.2"}
            assert srv.query("nowhere.example").rcode() == dns.rcode.NXDOMAIN
            r = srv.query("2.0.30.172.in-addr.arpa", "PTR")
            assert addresses(r) == {"node-1.kemu.internal."}
            r = srv.query(f"ext.shop.svc.{Z}")  # ExternalName → www.example.com, resolved upstream
            assert addresses(r) == {"www.example.com.", "192.0.2.53"}
            _, text = srv.get(srv.metrics, "/metrics")
            assert f'coredns_forward_requests_total{{to="{HOST}:{up.dns}"}}' in text
        finally:
            stop(srv)
        stop(up)
        srv = start(tmp_path / "cluster", upstream=f"{HOST}:{up.dns}")  # the upstream is gone
        try:
            r = dns.query.udp(dns.message.make_query("node-1", "A"), HOST, port=srv.dns, timeout=5)
            assert r.rcode() == dns.rcode.SERVFAIL
            assert addresses(srv.query(f"web.shop.svc.{Z}")) == {"10.96.0.20"}  # ours still answered at once
        finally:
            stop(srv)
    finally:
        if up.proc.poll() is None:
            stop(up)


def test_cached_answers_survive_an_unrelated_change(fresh: Server) -> None:
    fresh.query(f"db.shop.svc.{Z}")
    index = sample(serial=9)  # same data, new serial: positive answers stay cached
    write_state(str(fresh.state), index)
    wait_for(lambda: fresh.ack.read_text() == "9\n")
    _, text = fresh.get(fresh.metrics, "/metrics")
    entries = [line for line in text.splitlines() if line.startswith("coredns_cache_entries")]
    assert entries and int(entries[0].rsplit(" ", 1)[1]) >= 1
    r = fresh.query(f"nope.shop.svc.{Z}")
    assert r.authority[0][0].serial == 9  # negative answers carry the new SOA
    assert os.path.exists(fresh.state)


def test_carry_keeps_unchanged_answers_and_patches_serials() -> None:
    old = Generation(INDEX)
    for name, rdtype in ((f"web.shop.svc.{Z}", "A"), (f"nope.shop.svc.{Z}", "A"), (f"db.shop.svc.{Z}", "A")):
        wire = dns.message.make_query(name, rdtype).to_wire()
        reply = respond(INDEX, wire, max_udp=1232)
        assert reply is not None
        old.udp[cache_key(wire)] = (reply.wire[2:], [0], reply.deps)
    new = Generation(sample(serial=8))  # only the serial differs
    assert new.carry(old) == [] and len(new.udp) == 3
    for tail, _, deps in new.udp.values():
        msg = dns.message.from_wire(b"\0\0" + tail)
        if msg.authority:  # the NXDOMAIN's SOA, patched
            assert msg.authority[0][0].serial == 8 and Z in deps
    moved = Generation(changed(8, "10.96.0.21"))  # web moved, db is gone
    stale = moved.carry(old)
    assert len(stale) == 2 and len(moved.udp) == 1  # nope.shop: still NXDOMAIN, serial patched
    assert dns.message.from_wire(b"\0\0" + next(iter(moved.udp.values()))[0]).authority[0][0].serial == 8
