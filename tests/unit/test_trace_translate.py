"""Reading a traced packet in Kubernetes words (emu/trace/translate.py), from trace lines
as `nft monitor trace` prints them (the kernel tier and the e2e trace tests check the
lines against the real kernel)."""

from __future__ import annotations

import pytest

from emu.policy.compile import rule_name
from emu.proxy.plan import Backend, ProxyPlan, ServicePortPlan
from emu.trace.nftrace import TraceLine, parse_line
from emu.trace.translate import Knowledge, PolicyRule, read
from emu.trace.walks import Place, segments

pytestmark = pytest.mark.unit

A = Place("ns-a", "x/a", "pod", "n1")
N1 = Place("ns-n1", "node/n1", "node", "n1")
N2 = Place("ns-n2", "node/n2", "node", "n2")
B = Place("ns-b", "y/b", "pod", "n2")
PLACES = {p.netns: p for p in (A, N1, N2, B)}
SVC = ServicePortPlan("y/web/tcp/http", "tcp", "10.96.0.10", 80, cluster_endpoints=(Backend("10.244.1.7", 8080, "n2"),), has_endpoints=True)
EMPTY = ServicePortPlan("y/empty/tcp/80", "tcp", "10.96.0.11", 80)
ALLOW = rule_name("ingress", "y/allow-a", 0)


def knowledge() -> Knowledge:
    plans = {n: ProxyPlan(n, (ip,), "10.244.0.0/16", (SVC, EMPTY)) for n, ip in (("n1", "172.30.0.2"), ("n2", "172.30.0.3"))}
    return Knowledge(
        "nftables",
        A,
        {"10.244.0.5": "x/a", "10.244.1.7": "y/b", "172.30.0.2": "node/n1", "172.30.0.3": "node/n2"},
        {("ns-n1", "vethaaa"): "pod x/a", ("ns-n1", "eth0"): "the node network (eth0)"},
        plans,
        {ALLOW: PolicyRule("y/allow-a", "ingress", 0)},
        {"10.244.1.7": (("y/deny-all", "y/allow-a"), ())},
    )


def pkt(tid: str, table: str, chain: str, daddr: str, dport: int, ttl: int, iif: str = "", oif: str = "", saddr: str = "10.244.0.5") -> str:
    ifs = (f'iif "{iif}" ' if iif else "") + (f'oif "{oif}" ' if oif else "")
    return (
        f"trace id {tid} ip {table} {chain} packet: {ifs}ip saddr {saddr} ip daddr {daddr} ip ttl {ttl} ip id 4242 "
        f"tcp sport 21000 tcp dport {dport} tcp flags == syn"
    )


def lines(*raw: str) -> list[TraceLine]:
    out = [parse_line(r) for r in raw]
    assert all(t is not None for t in out)
    return [t for t in out if t is not None]


def to_service(tail_n2: list[str], tail_b: list[str] | None) -> dict[str, list[TraceLine]]:
    """x/a → 10.96.0.10:80; node n1 DNATs to y/b on n2; the caller says what n2 and y/b do."""
    seen = {
        # Deliberately not in path order: the TTLs and hooks order the walks.
        "ns-n2": lines(*tail_n2),
        "ns-b": lines(*(tail_b or [])),
        "ns-a": lines(
            pkt("01", "kemu-trace", "out", "10.96.0.10", 80, 64, oif="eth0"),
            "trace id 01 ip kemu-trace out rule tcp sport 21000 meta nftrace set 1 (verdict continue)",
            "trace id 01 ip kemu-trace out policy accept",
        ),
        "ns-n1": lines(
            pkt("02", "kemu-trace", "pre", "10.96.0.10", 80, 64, iif="vethaaa"),
            "trace id 02 ip kemu-trace pre policy accept",
            pkt("02", "kemu-proxy", "nat-prerouting", "10.96.0.10", 80, 64, iif="vethaaa"),
            "trace id 02 ip kemu-proxy nat-prerouting rule jump services (verdict jump services)",
            "trace id 02 ip kemu-proxy services rule ip daddr . meta l4proto . th dport vmap @service-ips (verdict goto cluster-1)",
            "trace id 02 ip kemu-proxy cluster-1 rule dnat ip to ip daddr . meta l4proto . th dport map @backends (verdict accept)",
            pkt("02", "kemu-policy", "forward", "10.244.1.7", 8080, 63, iif="vethaaa", oif="eth0"),
            "trace id 02 ip kemu-policy forward rule jump egress-check (verdict jump egress-check)",
            "trace id 02 ip kemu-policy egress-check rule ip saddr != @egress-isolated return (verdict return)",
            "trace id 02 ip kemu-policy forward policy accept",
            pkt("02", "kemu-trace", "forward-last", "10.244.1.7", 8080, 63, iif="vethaaa", oif="eth0"),
            "trace id 02 ip kemu-trace forward-last policy accept",
        ),
    }
    return seen


N2_IN = [pkt("03", "kemu-trace", "pre", "10.244.1.7", 8080, 63, iif="eth0"), "trace id 03 ip kemu-trace pre policy accept"]
N2_POLICY = pkt("03", "kemu-policy", "forward", "10.244.1.7", 8080, 62, iif="eth0", oif="cbr0")
B_IN = [
    pkt("04", "kemu-trace", "pre", "10.244.1.7", 8080, 62, iif="eth0"),
    "trace id 04 ip kemu-trace pre policy accept",
    pkt("04", "kemu-trace", "input-last", "10.244.1.7", 8080, 62, iif="eth0"),
    "trace id 04 ip kemu-trace input-last policy accept",
]


def test_a_service_connection_allowed_by_a_policy_rule() -> None:
    n2 = [
        *N2_IN,
        N2_POLICY,
        "trace id 03 ip kemu-policy forward rule jump ingress-check (verdict jump ingress-check)",
        f"trace id 03 ip kemu-policy ingress-check rule ip saddr @{ALLOW}-src ip daddr @{ALLOW}-dst return (verdict return)",
        "trace id 03 ip kemu-policy forward policy accept",
    ]
    t = read(knowledge(), segments(to_service(n2, B_IN), PLACES, "ns-a"), "connected")
    assert (t.verdict, t.service, t.endpoint) == ("delivered", "y/web", "y/b")
    assert [h.namespace for h in t.hops if h.meaning][:2] == ["x/a", "node/n1"]
    dnat = next(h for h in t.hops if "DNAT" in h.meaning)
    assert dnat.namespace == "node/n1" and dnat.table == "kemu-proxy" and dnat.hook == "prerouting"
    assert "Service y/web port http (ClusterIP 10.96.0.10:80) → DNAT to 10.244.1.7:8080 (y/b)" in dnat.meaning
    assert {"name": "y/allow-a", "direction": "ingress", "rule": 1, "effect": "allows"} in t.policies
    assert any("y/allow-a ingress rule 1 allows" in h.meaning for h in t.hops)
    assert t.hops[-1].namespace == "y/b" and t.hops[-1].hook == "input"
    assert any(h.meaning == "arrives from pod x/a: 10.244.0.5 → 10.96.0.10:80" for h in t.hops)


def test_a_policy_drop_names_the_isolating_policies() -> None:
    n2 = [
        *N2_IN,
        N2_POLICY,
        "trace id 03 ip kemu-policy forward rule jump ingress-check (verdict jump ingress-check)",
        "trace id 03 ip kemu-policy ingress-check rule drop (verdict drop)",
    ]
    t = read(knowledge(), segments(to_service(n2, None), PLACES, "ns-a"), "timeout")
    assert t.verdict == "dropped" and t.endpoint == "y/b"
    assert t.reason == "dropped on node/n2: y/b is isolated for ingress by y/deny-all, y/allow-a; no rule allows x/a"
    assert t.hops[-1].rule == "drop" and t.hops[-1].table == "kemu-policy"


def test_a_service_without_endpoints_is_rejected() -> None:
    a = [
        pkt("01", "kemu-trace", "out", "10.96.0.11", 80, 64, oif="eth0"),
        "trace id 01 ip kemu-trace out policy accept",
    ]
    n1 = [
        pkt("02", "kemu-trace", "pre", "10.96.0.11", 80, 64, iif="vethaaa"),
        "trace id 02 ip kemu-trace pre policy accept",
        pkt("02", "kemu-proxy", "filter-forward", "10.96.0.11", 80, 63, iif="vethaaa", oif="eth0"),
        "trace id 02 ip kemu-proxy filter-forward rule ct state new jump service-endpoints-check (verdict jump service-endpoints-check)",
        "trace id 02 ip kemu-proxy service-endpoints-check rule ip daddr . meta l4proto . th dport vmap @no-endpoint-services "
        "(verdict goto reject-chain)",
        "trace id 02 ip kemu-proxy reject-chain rule reject (verdict drop)",
    ]
    t = read(knowledge(), segments({"ns-a": lines(*a), "ns-n1": lines(*n1)}, PLACES, "ns-a"), "refused")
    assert (t.verdict, t.service) == ("rejected", "y/empty")
    assert t.reason == "rejected on node/n1: Service y/empty has no endpoints"


def test_only_the_probe_is_read_not_the_sockets_later_packets() -> None:
    probe = lines(pkt("01", "kemu-trace", "out", "10.96.0.10", 80, 64, oif="eth0"), "trace id 01 ip kemu-trace out policy accept")
    rst = lines(
        pkt("09", "kemu-trace", "out", "10.96.0.10", 80, 64, oif="eth0").replace("ip id 4242", "ip id 4243"),
        "trace id 09 ip kemu-trace out policy accept",
    )
    segs = segments({"ns-a": probe + rst}, PLACES, "ns-a")
    assert len(segs) == 1 and segs[0].steps[0].packet["ip id"] == "4242"


def test_nothing_seen_is_not_delivered() -> None:
    t = read(knowledge(), [], "unreachable")
    assert t.verdict == "dropped" and "not sent" in t.reason


def test_a_packet_that_leaves_and_comes_back_under_one_id_is_two_passes() -> None:
    # A pod reaching itself through its Service: the veth hands on the same skb.
    out = lines(pkt("05", "kemu-trace", "out", "10.96.0.10", 80, 64, oif="eth0"), "trace id 05 ip kemu-trace out policy accept")
    back = lines(
        pkt("05", "kemu-trace", "pre", "10.244.0.5", 8080, 63, iif="eth0", saddr="10.244.0.1"),
        "trace id 05 ip kemu-trace pre policy accept",
    )
    node = lines(pkt("06", "kemu-trace", "pre", "10.96.0.10", 80, 64, iif="cbr0"), "trace id 06 ip kemu-trace pre policy accept")
    segs = segments({"ns-a": out + back, "ns-n1": node}, PLACES, "ns-a")
    assert [(s.place.ref, s.ttl) for s in segs] == [("x/a", 64), ("node/n1", 64), ("x/a", 63)]
