"""Answers over the index (emu.dns.resolver), no sockets: every record kind of the Kubernetes DNS
specification, the negative answers, CNAME chasing, EDNS0, truncation, forwarding and junk."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from emu.dns.records import Index
from emu.dns.resolver import answer, respond
from emu.dns.upstream import build_upstream_index
from tests.unit.test_dns_records import INDEX, Z

pytestmark = pytest.mark.unit

NOERROR, NXDOMAIN = dns.rcode.NOERROR, dns.rcode.NXDOMAIN
SOA_TEXT = f"{Z}. 30 IN SOA ns.dns.{Z}. hostmaster.{Z}. 7 7200 1800 86400 30"


def ask(name: str, rdtype: str = "A", index: Index = INDEX, **kw: object) -> dns.message.Message:
    return answer(index, dns.message.make_query(name, rdtype), **kw)  # type: ignore[arg-type]


def texts(section: list[dns.rrset.RRset]) -> set[str]:
    return {line for rrset in section for line in rrset.to_text().splitlines()}


# (question, type) → (rcode, answer lines); every one authoritative. The specification's records:
POSITIVE = [
    (f"dns-version.{Z}", "TXT", {f'dns-version.{Z}. 30 IN TXT "1.1.0"'}),
    (f"web.shop.svc.{Z}", "A", {f"web.shop.svc.{Z}. 30 IN A 10.96.0.20"}),
    (f"_http._tcp.web.shop.svc.{Z}", "SRV", {f"_http._tcp.web.shop.svc.{Z}. 30 IN SRV 0 100 80 web.shop.svc.{Z}."}),
    ("20.0.96.10.in-addr.arpa", "PTR", {f"20.0.96.10.in-addr.arpa. 30 IN PTR web.shop.svc.{Z}."}),
    (f"db.shop.svc.{Z}", "A", {f"db.shop.svc.{Z}. 30 IN A 10.244.1.5", f"db.shop.svc.{Z}. 30 IN A 10.244.2.6"}),
    (f"pet.db.shop.svc.{Z}", "A", {f"pet.db.shop.svc.{Z}. 30 IN A 10.244.1.5"}),
    (f"10-244-2-6.db.shop.svc.{Z}", "A", {f"10-244-2-6.db.shop.svc.{Z}. 30 IN A 10.244.2.6"}),
    (
        f"_pg._tcp.db.shop.svc.{Z}",
        "SRV",
        {
            f"_pg._tcp.db.shop.svc.{Z}. 30 IN SRV 0 50 5433 pet.db.shop.svc.{Z}.",
            f"_pg._tcp.db.shop.svc.{Z}. 30 IN SRV 0 50 5433 10-244-2-6.db.shop.svc.{Z}.",
        },
    ),
    ("5.1.244.10.in-addr.arpa", "PTR", {f"5.1.244.10.in-addr.arpa. 30 IN PTR pet.db.shop.svc.{Z}."}),
    (f"ext.shop.svc.{Z}", "CNAME", {f"ext.shop.svc.{Z}. 30 IN CNAME www.example.com."}),
    (f"ext.shop.svc.{Z}", "A", {f"ext.shop.svc.{Z}. 30 IN CNAME www.example.com."}),  # no upstream: the CNAME alone
    (f"alias.shop.svc.{Z}", "A", {f"alias.shop.svc.{Z}. 30 IN CNAME web.shop.svc.{Z}.", f"web.shop.svc.{Z}. 30 IN A 10.96.0.20"}),
    (f"10-244-2-2.tools.pod.{Z}", "A", {f"10-244-2-2.tools.pod.{Z}. 30 IN A 10.244.2.2"}),
    (Z, "SOA", {SOA_TEXT}),
    (Z, "NS", {f"{Z}. 30 IN NS ns.dns.{Z}."}),
    (f"ns.dns.{Z}", "A", {f"ns.dns.{Z}. 30 IN A 10.96.0.10"}),
    (f"web.shop.svc.{Z}", "ANY", {f"web.shop.svc.{Z}. 30 IN A 10.96.0.20"}),
]


@pytest.mark.parametrize(("name", "rdtype", "want"), POSITIVE, ids=[f"{n}/{t}" for n, t, _ in POSITIVE])
def test_records(name: str, rdtype: str, want: set[str]) -> None:
    r = ask(name, rdtype)
    assert r.rcode() == NOERROR and r.flags & dns.flags.AA and r.flags & dns.flags.QR
    assert texts(r.answer) == want
    assert not r.authority


def test_srv_additional_section_has_the_targets() -> None:
    r = ask(f"_pg._tcp.db.shop.svc.{Z}", "SRV")
    assert texts(r.additional) == {f"pet.db.shop.svc.{Z}. 30 IN A 10.244.1.5", f"10-244-2-6.db.shop.svc.{Z}. 30 IN A 10.244.2.6"}
    assert texts(ask(f"_http._tcp.web.shop.svc.{Z}", "SRV").additional) == {f"web.shop.svc.{Z}. 30 IN A 10.96.0.20"}
    assert texts(ask(Z, "NS").additional) == {f"ns.dns.{Z}. 30 IN A 10.96.0.10"}


def test_case_insensitive_and_echoes_the_question() -> None:
    r = ask("WeB.SHOP.svc.Cluster.LOCAL", "A")
    assert r.rcode() == NOERROR and texts(r.answer) == {"WeB.SHOP.svc.Cluster.LOCAL. 30 IN A 10.96.0.20"}
    assert r.question[0].name.to_text() == "WeB.SHOP.svc.Cluster.LOCAL."
    r = ask("5.1.244.10.IN-ADDR.ARPA", "PTR")
    assert texts(r.answer) == {f"5.1.244.10.IN-ADDR.ARPA. 30 IN PTR pet.db.shop.svc.{Z}."}


# Negative answers: (name, type, rcode); the zone's SOA in the authority section, AA set.
NEGATIVE = [
    (f"nope.shop.svc.{Z}", "A", NXDOMAIN, Z),
    (f"empty.shop.svc.{Z}", "A", NXDOMAIN, Z),  # headless without ready endpoints
    (f"10-244-2-7.db.shop.svc.{Z}", "A", NXDOMAIN, Z),  # not ready
    (f"_9000._tcp.web.shop.svc.{Z}", "SRV", NXDOMAIN, Z),  # unnamed port
    (f"web.nope.svc.{Z}", "A", NXDOMAIN, Z),
    (f"1-2-3-4.nope.pod.{Z}", "A", NXDOMAIN, Z),
    (f"pending.shop.svc.{Z}", "A", NXDOMAIN, Z),
    ("9.9.244.10.in-addr.arpa", "PTR", NXDOMAIN, "244.10.in-addr.arpa"),
    (f"web.shop.svc.{Z}", "AAAA", NOERROR, Z),  # NODATA: the name exists
    (f"web.shop.svc.{Z}", "TXT", NOERROR, Z),
    (f"_tcp.db.shop.svc.{Z}", "A", NOERROR, Z),  # an empty non-terminal
    (f"shop.svc.{Z}", "A", NOERROR, Z),
    (f"quiet.svc.{Z}", "A", NOERROR, Z),  # a namespace without Services
    (f"svc.{Z}", "A", NOERROR, Z),
    (Z, "A", NOERROR, Z),
    (f"dns-version.{Z}", "A", NOERROR, Z),
    (f"10-244-2-2.tools.pod.{Z}", "AAAA", NOERROR, Z),
    ("5.1.244.10.in-addr.arpa", "A", NOERROR, "244.10.in-addr.arpa"),
]


@pytest.mark.parametrize(("name", "rdtype", "rcode", "zone"), NEGATIVE, ids=[f"{n}/{t}" for n, t, _, _ in NEGATIVE])
def test_negative_answers(name: str, rdtype: str, rcode: dns.rcode.Rcode, zone: str) -> None:
    r = ask(name, rdtype)
    assert r.rcode() == rcode and r.flags & dns.flags.AA
    assert not r.answer
    assert [(rr.name.to_text(), rr.rdtype) for rr in r.authority] == [(zone + ".", dns.rdatatype.SOA)]
    assert r.authority[0].ttl == 30 and r.authority[0][0].minimum == 30  # RFC 2308: negative TTL


def test_cname_to_a_missing_target_and_loops() -> None:
    r = ask(f"loop1.shop.svc.{Z}")
    assert r.rcode() == dns.rcode.SERVFAIL and len(r.answer) == 2
    idx = sample_with_dangling()
    r = ask(f"dangling.shop.svc.{Z}", index=idx)
    assert r.rcode() == NXDOMAIN  # RFC 6604: the rcode of the last name in the chain
    assert texts(r.answer) == {f"dangling.shop.svc.{Z}. 30 IN CNAME gone.shop.svc.{Z}."}


def sample_with_dangling() -> Index:
    from emu.dns.records import build_index
    from emu.model.objects import Meta
    from emu.model.services import Service

    return build_index([Service(Meta("dangling", "shop"), type="ExternalName", external_name=f"gone.shop.svc.{Z}")], {}, {}, [])


class FakeUpstream:
    """Answers www.example.com A, NXDOMAIN otherwise; or None (down)."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.asked: list[str] = []

    def __call__(self, q: dns.message.Message) -> dns.message.Message | None:
        self.asked.append(q.question[0].name.to_text())
        if self.down:
            return None
        r = dns.message.make_response(q)
        if q.question[0].name == dns.name.from_text("www.example.com"):
            r.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "A", "192.0.2.53"))
        else:
            r.set_rcode(NXDOMAIN)
        return r


def test_external_name_chased_through_upstream() -> None:
    up = FakeUpstream()
    r = ask(f"ext.shop.svc.{Z}", upstream=up)
    assert r.rcode() == NOERROR and r.flags & dns.flags.RA
    assert texts(r.answer) == {f"ext.shop.svc.{Z}. 30 IN CNAME www.example.com.", "www.example.com. 300 IN A 192.0.2.53"}
    assert up.asked == ["www.example.com."]
    r = ask(f"ext.shop.svc.{Z}", upstream=FakeUpstream(down=True))
    assert r.rcode() == NOERROR and texts(r.answer) == {f"ext.shop.svc.{Z}. 30 IN CNAME www.example.com."}


def test_forwarding_out_of_zone_names() -> None:
    r = ask("www.example.com")  # no upstream: NXDOMAIN at once, not authoritative
    assert r.rcode() == NXDOMAIN and not r.flags & dns.flags.AA and not r.authority
    r = ask("www.example.com", upstream=FakeUpstream())
    assert r.rcode() == NOERROR and texts(r.answer) == {"www.example.com. 300 IN A 192.0.2.53"}
    assert not r.flags & dns.flags.AA and r.flags & dns.flags.RA
    assert ask("nope.example.com", upstream=FakeUpstream()).rcode() == NXDOMAIN
    assert ask("www.example.com", upstream=FakeUpstream(down=True)).rcode() == dns.rcode.SERVFAIL
    up = FakeUpstream()
    ask("2.0.30.172.in-addr.arpa", "PTR", upstream=up)  # the node network's reverse zone: the upstream's
    ask(f"web.shop.svc.{Z}", upstream=up)  # ours: never forwarded
    assert up.asked == ["2.0.30.172.in-addr.arpa."]


def junk(opcode: int = dns.opcode.QUERY, rdclass: str = "IN", rdtype: str = "A", questions: int = 1) -> dns.message.Message:
    q = dns.message.make_query(f"web.shop.svc.{Z}", rdtype, rdclass)
    q.set_opcode(opcode)
    if questions == 0:
        q.question = []
    return q


@pytest.mark.parametrize(
    ("query", "rcode"),
    [
        (junk(opcode=dns.opcode.STATUS), dns.rcode.NOTIMP),
        (junk(opcode=dns.opcode.NOTIFY), dns.rcode.NOTIMP),
        (junk(opcode=dns.opcode.UPDATE), dns.rcode.NOTIMP),
        (junk(questions=0), dns.rcode.FORMERR),
        (junk(rdclass="CH"), dns.rcode.REFUSED),
        (junk(rdtype="AXFR"), dns.rcode.REFUSED),
        (junk(rdtype="IXFR"), dns.rcode.REFUSED),
        (junk(rdtype="MAILB"), dns.rcode.NOTIMP),
        (junk(rdtype="OPT"), dns.rcode.FORMERR),
    ],
    ids=["status", "notify", "update", "no-question", "chaos", "axfr", "ixfr", "mailb", "opt"],
)
def test_junk(query: dns.message.Message, rcode: dns.rcode.Rcode) -> None:
    r = answer(INDEX, query)
    assert r.rcode() == rcode and r.id == query.id and not r.answer


def test_edns() -> None:
    r = answer(INDEX, dns.message.make_query(f"web.shop.svc.{Z}", "A", use_edns=0, payload=4096))
    assert r.edns == 0 and r.payload == 1232  # echoed, with our size
    assert ask(f"web.shop.svc.{Z}").edns == -1  # none asked, none sent
    q = dns.message.make_query(f"web.shop.svc.{Z}", "A", use_edns=1)
    assert answer(INDEX, q).rcode() == dns.rcode.BADVERS


def test_truncation_and_tcp() -> None:
    name = f"many.shop.svc.{Z}"
    plain = answer(INDEX, dns.message.make_query(name, "A"), max_udp=1232)  # no EDNS: 512 bytes
    assert plain.flags & dns.flags.TC and not plain.answer and plain.rcode() == NOERROR
    edns = answer(INDEX, dns.message.make_query(name, "A", use_edns=0, payload=4096), max_udp=1232)
    assert edns.flags & dns.flags.TC and edns.edns == 0  # 100 A records: 1,6xx bytes > 1232
    whole = answer(INDEX, dns.message.make_query(name, "A"), max_udp=None)  # TCP
    assert not whole.flags & dns.flags.TC and len(whole.answer[0]) == 100
    fits = answer(INDEX, dns.message.make_query(name, "A", use_edns=0, payload=4096), max_udp=4096)
    assert not fits.flags & dns.flags.TC and len(fits.answer[0]) == 100
    srv = dns.message.make_query(f"_pg._tcp.db.shop.svc.{Z}", "SRV")
    assert not answer(INDEX, srv, max_udp=1232).flags & dns.flags.TC  # small answers are whole


def test_truncated_srv_drops_additional_before_answer() -> None:
    q = dns.message.make_query(f"_http._tcp.many.shop.svc.{Z}", "SRV", use_edns=0, payload=8192)
    r = answer(INDEX, q, max_udp=8192)  # 100 SRV (~5.9 KB, targets uncompressed) fit, their 100 A records not all
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 100 and 0 < len(r.additional) < 100
    reply = respond(INDEX, q.to_wire(), max_udp=8192)
    assert reply is not None and len(reply.wire) <= 8192


def test_respond_wire() -> None:
    q = dns.message.make_query(f"web.shop.svc.{Z}", "A")
    r = respond(INDEX, q.to_wire(), max_udp=1232)
    assert r is not None and r.qtype == "A" and r.rcode == "NOERROR" and r.cacheable
    assert set(r.deps) == {f"web.shop.svc.{Z}"}
    assert dns.message.from_wire(r.wire).answer[0][0].address == "10.96.0.20"
    neg = respond(INDEX, dns.message.make_query(f"nope.shop.svc.{Z}", "A").to_wire())
    assert neg is not None and neg.rcode == "NXDOMAIN" and set(neg.deps) == {f"nope.shop.svc.{Z}", Z}
    bad = respond(INDEX, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07garbage")
    assert bad is not None and bad.rcode == "FORMERR" and bad.wire[:2] == b"\x12\x34" and bad.wire[3] & 0x0F == 1
    assert respond(INDEX, b"\x12\x34") is None  # not even a header
    resp = dns.message.make_response(q).to_wire()
    assert respond(INDEX, resp) is None  # a response: never answered
    fwd = respond(INDEX, dns.message.make_query("www.example.com", "A").to_wire(), upstream=FakeUpstream())
    assert fwd is not None and not fwd.cacheable


# The emulated data centre's resolver.
UP = build_upstream_index({"node-1": "172.30.0.2", "node-2": "172.30.0.3", "client": ["172.30.0.9"]}, resolver_ip="172.30.0.254")

UPSTREAM = [
    ("node-1", "A", NOERROR, {"node-1. 30 IN A 172.30.0.2"}),
    ("NODE-2.kemu.internal", "A", NOERROR, {"NODE-2.kemu.internal. 30 IN A 172.30.0.3"}),
    ("client.kemu.internal", "A", NOERROR, {"client.kemu.internal. 30 IN A 172.30.0.9"}),
    ("9.0.30.172.in-addr.arpa", "PTR", NOERROR, {"9.0.30.172.in-addr.arpa. 30 IN PTR client.kemu.internal."}),
    ("ns.kemu.internal", "A", NOERROR, {"ns.kemu.internal. 30 IN A 172.30.0.254"}),
    ("node-1.kemu.internal", "AAAA", NOERROR, set()),
    ("nope.kemu.internal", "A", NXDOMAIN, set()),
    ("8.0.30.172.in-addr.arpa", "PTR", NXDOMAIN, set()),
]


@pytest.mark.parametrize(("name", "rdtype", "rcode", "want"), UPSTREAM, ids=[f"{n}/{t}" for n, t, _, _ in UPSTREAM])
def test_upstream_names(name: str, rdtype: str, rcode: dns.rcode.Rcode, want: set[str]) -> None:
    r = ask(name, rdtype, index=UP)
    assert r.rcode() == rcode and r.flags & dns.flags.AA and texts(r.answer) == want


def test_upstream_never_forwards() -> None:
    r = ask("www.example.com", index=UP)
    assert r.rcode() == NXDOMAIN and r.flags & dns.flags.RA  # a recursive resolver that knows nothing else
    assert ask(f"web.shop.svc.{Z}", index=UP).rcode() == NXDOMAIN
