"""Reading `nft monitor trace` output recorded from this kernel (tests/data/nftrace/)."""

from __future__ import annotations

import os

import pytest

from emu.trace.nftrace import parse, parse_line, steps

pytestmark = pytest.mark.unit

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "nftrace")


def load(name: str) -> list[str]:
    with open(os.path.join(DATA, name)) as f:
        return f.read().splitlines()


def test_packet_lines_carry_the_fields() -> None:
    (first, *_), *_ = parse(load("dnat-vmap.txt")).values()
    assert first.kind == "packet" and (first.table, first.chain) == ("kemu-trace", "pre")
    assert first.fields["ip saddr"] == "10.77.0.1" and first.fields["ip daddr"] == "10.77.0.2"
    assert first.fields["tcp sport"] == "44444" and first.fields["tcp dport"] == "82"
    assert first.fields["tcp flags"] == "syn" and first.fields["iif"] == "trb"


def test_rule_lines_split_statements_comment_and_verdict() -> None:
    t = parse_line(
        'trace id aaffc847 ip nat-demo c1 rule meta l4proto tcp dnat to 10.77.0.2:80 comment "default/web:http" (verdict accept)'
    )
    assert t is not None and t.kind == "rule"
    assert (t.text, t.comment, t.verdict) == ("meta l4proto tcp dnat to 10.77.0.2:80", "default/web:http", "accept")
    assert t.decides
    assert parse_line("ip netns exec … nft monitor trace") is None


def test_a_dnat_through_a_verdict_map() -> None:
    traces = parse(load("dnat-vmap.txt"))
    assert len(traces) == 2  # the TCP SYN and the UDP datagram
    tcp, udp = traces.values()
    marker, nat = steps(tcp)
    assert (marker.table, marker.verdict) == ("kemu-trace", "accept")
    assert nat.table == "nat-demo" and nat.packet["tcp dport"] == "82" and nat.verdict == "accept"
    assert [(m.chain, m.verdict) for m in nat.matched] == [("pre", "goto c1"), ("c1", "accept")]
    assert nat.matched[-1].comment == "default/web:http"
    _, nat_udp = steps(udp)
    assert nat_udp.matched == () and nat_udp.verdict == "accept"  # no map entry: the policy


def test_iptables_nft_rules_read_the_same_way() -> None:
    tcp80, tcp81 = parse(load("reject-and-drop.txt")).values()
    walk = steps(tcp80)
    assert [(s.table, s.chain, s.verdict) for s in walk] == [
        ("kemu-trace", "pre", "accept"),
        ("filter", "INPUT", "accept"),
        ("demo", "input", "drop"),
    ]
    assert "reject with tcp reset" in walk[-1].matched[0].text and walk[-1].matched[0].comment == "demo reject"
    dropped = steps(tcp81)[-1]
    assert (dropped.table, dropped.chain, dropped.verdict) == ("filter", "INPUT", "drop")  # iptables -A INPUT … -j DROP
    assert dropped.matched[0].text.startswith("tcp dport 81")
