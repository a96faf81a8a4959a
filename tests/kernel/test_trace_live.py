"""Kernel tier: one traced packet through two plain namespaces (no cluster)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from emu.dataplane import netns
from emu.dataplane.run import run
from emu.trace.live import TABLE, LiveTrace, Probe, echo_request
from emu.trace.nftrace import TraceLine, steps

pytestmark = pytest.mark.kernel


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:6]
    a, b = f"kemu-ktr-{tag}-a", f"kemu-ktr-{tag}-b"
    made = netns.ensure_run_dir()
    try:
        for n in (a, b):
            with netns.created(n):
                pass
        # The veth is made inside a (never in the host namespace), its peer sent to b.
        run(["ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b], netns_name=a)
        run(["ip", "addr", "add", "10.77.0.1/24", "dev", "va"], netns_name=a)
        run(["ip", "addr", "add", "10.77.0.2/24", "dev", "vb"], netns_name=b)
        for n, dev in ((a, "va"), (b, "vb")):
            run(["ip", "link", "set", dev, "up"], netns_name=n)
            run(["ip", "link", "set", "lo", "up"], netns_name=n)
        run(
            ["nft", "-f", "-"],
            netns_name=b,
            input=(
                "table ip demo {\n"
                "  map svc { type ipv4_addr . inet_proto . inet_service : verdict; elements = { 10.77.0.2 . tcp . 82 : goto c1 }; }\n"
                "  chain pre { type nat hook prerouting priority -100; policy accept; ip daddr . meta l4proto . th dport vmap @svc; }\n"
                '  chain c1 { meta l4proto tcp dnat to 10.77.0.2:80 comment "default/web:http"; }\n'
                '  chain input { type filter hook input priority 0; policy accept; tcp dport 80 reject with tcp reset comment "deny web"; }\n'
                "}\n"
            ),
        )
        yield a, b
    finally:
        for n in (a, b):
            netns.delete(n)
        netns.release_run_dir(made)


def test_a_tcp_syn_through_dnat_and_a_reject(pair: tuple[str, str]) -> None:
    a, b = pair
    with LiveTrace([a, b], Probe("tcp", "10.77.0.2", 82, 40001)) as t:
        said = t.send(a)
        seen = t.collect()
    assert said == "refused"
    walk = steps(next(iter(_by_id(seen[b]).values())))
    tables = [(s.table, s.chain, s.verdict) for s in walk]
    assert ("demo", "pre", "accept") in tables and tables[-1] == ("demo", "input", "drop")
    dnat = next(s for s in walk if s.table == "demo" and s.chain == "pre")
    assert dnat.packet["tcp dport"] == "82" and [m.verdict for m in dnat.matched] == ["goto c1", "accept"]
    assert walk[-1].packet["tcp dport"] == "80"  # after the DNAT
    assert walk[-1].matched[0].comment == "deny web"
    assert seen[a]  # the sender's own output path was traced too
    for n in pair:  # nothing of the trace is left
        assert TABLE not in run(["nft", "list", "tables"], netns_name=n).stdout


def test_udp_and_icmp_probes(pair: tuple[str, str]) -> None:
    a, b = pair
    with LiveTrace([b], Probe("udp", "10.77.0.2", 53, 40002)) as t:
        assert t.send(a) == "sent"
        udp = t.collect()[b]
    assert any(x.kind == "packet" and x.fields.get("udp dport") == "53" for x in udp)
    with LiveTrace([b], Probe("icmp", "10.77.0.2", 0, 4242)) as t:
        assert t.send(a) == "reply"
        icmp = t.collect()[b]
    assert any(x.kind == "packet" and x.fields.get("icmp id") == "4242" for x in icmp)


def test_echo_request_checksum() -> None:
    pkt = echo_request(0x1234, 1, b"abc")
    words = pkt + b"\0"
    total = sum(int.from_bytes(words[i : i + 2], "big") for i in range(0, len(pkt), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF


def _by_id(lines: list[TraceLine]) -> dict[str, list[TraceLine]]:
    out: dict[str, list[TraceLine]] = {}
    for x in lines:
        out.setdefault(x.id, []).append(x)
    return out
