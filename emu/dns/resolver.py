"""Answers to DNS queries over an Index (pure: no sockets; forwarding is a callback).

As CoreDNS's kubernetes plugin answers: authoritative (AA) for the cluster zone and the reverse
zones of the pod and service CIDRs; NXDOMAIN for a name that does not exist, NOERROR with no
data for one that exists without the asked type, the zone's SOA in the authority section of
both (RFC 2308); ExternalName CNAMEs followed when the target resolves (RFC 1034 §4.3.2);
EDNS0 (RFC 6891) echoed, answers larger than the client's UDP size truncated to the RRsets that
fit with TC set (RFC 2181 §9), so the client retries over TCP. Names outside our zones go to
`upstream`, or get NXDOMAIN at once when there is none.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.IN.A
import dns.rdtypes.IN.SRV
import dns.rrset

from emu.dns.records import AAAA, CNAME, NS, PTR, SOA, SRV, A, Index, Record

# A forwarder: the query → the upstream's response, or None when it did not answer.
Upstream = Callable[[dns.message.Message], dns.message.Message | None]

OUR_PAYLOAD = 1232  # the UDP size we advertise (DNS flag day 2020: no IP fragmentation)
CLASSIC_UDP = 512  # RFC 1035 §4.2.1: the limit without EDNS
MAX_TCP = 65535
MAX_CHAIN = 8  # CNAME hops followed before giving up (a loop, or a silly chain)

IN = dns.rdataclass.IN
ANY = dns.rdatatype.ANY
_REFUSED_TYPES = {dns.rdatatype.AXFR, dns.rdatatype.IXFR}  # no zone transfers (CoreDNS without `transfer`)
_FORMERR_TYPES = {dns.rdatatype.OPT, dns.rdatatype.TSIG, dns.rdatatype.TKEY}  # not question types
_NAME_TYPES = {PTR: dns.rdtypes.ANY.PTR.PTR, CNAME: dns.rdtypes.ANY.CNAME.CNAME, NS: dns.rdtypes.ANY.NS.NS}
_PARSE_ERRORS = (dns.exception.DNSException, ValueError, IndexError, KeyError, UnicodeError, struct.error)


@dataclass(frozen=True)
class Reply:
    """A rendered answer, with what metrics and the server's cache need to know."""

    wire: bytes
    qtype: str  # the question's type ("A", "SRV", …) or "other"
    rcode: str  # "NOERROR", "NXDOMAIN", …
    cacheable: bool  # False when the answer came (partly) from upstream
    deps: tuple[str, ...] = ()  # the names whose data made the answer (a cache keeps it while they are unchanged)


def key(name: dns.name.Name) -> str:
    """The index's form of a name: lower-case (spec §2.1: comparisons are case-insensitive), no final dot."""
    return name.to_text(omit_final_dot=True).lower()


def udp_limit(query: dns.message.Message, max_udp: int) -> int:
    """The largest UDP answer this client takes: its EDNS payload size, else 512; at most ours."""
    client = query.payload if query.edns >= 0 else CLASSIC_UDP
    return max(CLASSIC_UDP, min(client, max_udp))


def answer(
    index: Index, query: dns.message.Message, *, max_udp: int | None = None, upstream: Upstream | None = None
) -> dns.message.Message:
    """The response to `query`. `max_udp`: the query came over UDP and this is the largest answer we
    send (the client's EDNS size or 512 applies below it): a larger one is truncated, TC set.
    None: TCP, the whole answer."""
    resp, _ = _answer(index, query, upstream, [])
    if max_udp is None:
        return resp
    wire = resp.to_wire(max_size=udp_limit(query, max_udp), prefer_truncation=True)
    an, ns, ar = struct.unpack("!HHH", wire[6:12])
    whole = sum(map(len, resp.answer)), sum(map(len, resp.authority)), sum(map(len, resp.additional)) + (resp.opt is not None)
    return resp if (an, ns, ar) == whole else dns.message.from_wire(wire)


def respond(index: Index, wire: bytes, *, max_udp: int | None = None, upstream: Upstream | None = None) -> Reply | None:
    """A query's wire → the answer's wire (None: not a query, drop it). What the server runs on a cache miss."""
    if len(wire) < 12 or wire[2] & 0x80:
        return None  # too short for a header, or a response: never answer those (no loops)
    try:
        query = dns.message.from_wire(wire)
    except _PARSE_ERRORS:
        return error_reply(wire, dns.rcode.FORMERR)
    deps: list[str] = []
    resp, forwarded = _answer(index, query, upstream, deps)
    limit = MAX_TCP if max_udp is None else udp_limit(query, max_udp)
    out = resp.to_wire(max_size=limit, prefer_truncation=True)
    qtype = dns.rdatatype.to_text(query.question[0].rdtype) if len(query.question) == 1 else "other"
    return Reply(out, qtype, dns.rcode.to_text(resp.rcode()), not forwarded, tuple(dict.fromkeys(deps)))


def error_reply(wire: bytes, rcode: dns.rcode.Rcode) -> Reply | None:
    """An answer with no sections: the query's ID, opcode and RD back (RFC 1035 §4.1.1); None for a non-query."""
    if len(wire) < 12 or wire[2] & 0x80:
        return None
    return Reply(
        wire[:2] + bytes((0x80 | (wire[2] & 0x79), rcode)) + bytes(8), "other", dns.rcode.to_text(rcode), rcode == dns.rcode.FORMERR
    )


def _answer(index: Index, query: dns.message.Message, upstream: Upstream | None, deps: list[str]) -> tuple[dns.message.Message, bool]:
    if query.flags & dns.flags.QR:
        resp = dns.message.Message(query.id)
        resp.flags = dns.flags.QR
        resp.set_rcode(dns.rcode.FORMERR)
        return resp, False
    # RA: we forward (CoreDNS's kubernetes plugin alone does not set it, and nslookup then gives up).
    resp = dns.message.make_response(query, recursion_available=upstream is not None or index.recursive, our_payload=OUR_PAYLOAD)
    if query.edns > 0:
        return _rcode(resp, dns.rcode.BADVERS), False  # RFC 6891 §6.1.3: we speak EDNS version 0
    if query.opcode() != dns.opcode.QUERY:
        return _rcode(resp, dns.rcode.NOTIMP), False
    if len(query.question) != 1:
        return _rcode(resp, dns.rcode.FORMERR), False
    q = query.question[0]
    if q.rdclass != IN:
        return _rcode(resp, dns.rcode.REFUSED), False
    if q.rdtype in _FORMERR_TYPES:
        return _rcode(resp, dns.rcode.FORMERR), False
    zone = index.zone_of(key(q.name))
    if zone is None:
        return _forward(resp, query, upstream)
    if q.rdtype in _REFUSED_TYPES:
        return _rcode(resp, dns.rcode.REFUSED), False
    if dns.rdatatype.is_metatype(q.rdtype) and q.rdtype != ANY:
        return _rcode(resp, dns.rcode.NOTIMP), False
    resp.flags |= dns.flags.AA
    return resp, _resolve(index, resp, q.name, q.rdtype, upstream, deps)


def _rcode(resp: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
    resp.set_rcode(rcode)
    return resp


def _forward(resp: dns.message.Message, query: dns.message.Message, upstream: Upstream | None) -> tuple[dns.message.Message, bool]:
    if upstream is None:
        return _rcode(resp, dns.rcode.NXDOMAIN), False  # nothing to ask: every other name is NXDOMAIN at once
    up = upstream(query)
    if up is None:
        return _rcode(resp, dns.rcode.SERVFAIL), True  # as CoreDNS's forward when the upstream is down
    resp.answer, resp.authority, resp.additional = list(up.answer), list(up.authority), list(up.additional)
    resp.flags |= up.flags & dns.flags.AA
    resp.set_rcode(up.rcode())
    return resp, True


def _resolve(
    index: Index,
    resp: dns.message.Message,
    qname: dns.name.Name,
    qtype: dns.rdatatype.RdataType,
    upstream: Upstream | None,
    deps: list[str],
) -> bool:
    """Fill resp's sections; True when upstream was asked (the answer is not ours alone)."""
    owner = qname
    seen: set[str] = set()
    for _ in range(MAX_CHAIN):
        name = key(owner)
        if name in seen:
            break  # a CNAME loop
        seen.add(name)
        deps.append(name)
        zone = index.zone_of(name)
        if zone is None:
            return _chase_out(resp, owner, qtype, upstream)
        recs = index.lookup(name)
        if recs is None:
            resp.set_rcode(dns.rcode.NXDOMAIN)
            resp.authority.append(_soa(index, zone, deps))
            return False
        cname = next((r for t, r in recs if t == CNAME), None)
        if cname is not None and qtype not in (CNAME, ANY):
            # RFC 1034 §4.3.2: the CNAME, then the target's records (ExternalName, spec §2.5).
            resp.answer.append(_rrset(index, owner, CNAME, [cname]))
            owner = dns.name.from_text(cname)
            continue
        rrsets = _rrsets(index, owner, recs, qtype)
        if not rrsets:
            resp.authority.append(_soa(index, zone, deps))  # NODATA (RFC 2308 §2.2)
            return False
        resp.answer += rrsets
        resp.additional += _glue(index, rrsets, deps)
        return False
    resp.set_rcode(dns.rcode.SERVFAIL)  # a loop or an over-long chain, as BIND answers it
    return False


def _chase_out(resp: dns.message.Message, target: dns.name.Name, qtype: dns.rdatatype.RdataType, upstream: Upstream | None) -> bool:
    """An ExternalName pointing outside our zones: ask upstream for the target, as CoreDNS does."""
    if upstream is None:
        return False  # the CNAME alone; the client may resolve the target itself
    up = upstream(dns.message.make_query(target, qtype))
    if up is not None:
        resp.answer += up.answer
        resp.authority += up.authority
        resp.set_rcode(up.rcode())  # RFC 6604: the rcode is the last name's
    return True


def _rrset(index: Index, owner: dns.name.Name, rdtype: int, texts: list[str]) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(owner, IN, dns.rdatatype.RdataType.make(rdtype))
    for text in texts:
        rrset.add(_rdata(rdtype, text), index.ttl)
    return rrset


def _rdata(rdtype: int, text: str) -> dns.rdata.Rdata:
    # The common types built directly: dnspython's text parser takes 2-3 times as long.
    # (dnspython leaves the rdata classes' constructors unannotated.)
    if rdtype == A:
        return dns.rdtypes.IN.A.A(IN, A, text)  # type: ignore[no-untyped-call]  # unannotated in dnspython
    if rdtype == SRV:
        priority, weight, port, target = text.split(" ")
        p, w, port_number = int(priority), int(weight), int(port)
        return dns.rdtypes.IN.SRV.SRV(IN, SRV, p, w, port_number, dns.name.from_text(target))  # type: ignore[no-untyped-call]  # unannotated in dnspython
    if rdtype in _NAME_TYPES:
        return _NAME_TYPES[rdtype](IN, rdtype, dns.name.from_text(text))  # type: ignore[no-untyped-call]  # unannotated in dnspython
    return dns.rdata.from_text(IN, dns.rdatatype.RdataType.make(rdtype), text, origin=dns.name.root, relativize=False)


def _rrsets(index: Index, owner: dns.name.Name, recs: tuple[Record, ...], qtype: int) -> list[dns.rrset.RRset]:
    by_type: dict[int, list[str]] = {}
    for t, text in recs:
        if t == qtype or qtype == ANY:
            by_type.setdefault(t, []).append(text)
    return [_rrset(index, owner, t, texts) for t, texts in by_type.items()]


def _soa(index: Index, zone: str, deps: list[str]) -> dns.rrset.RRset:
    deps.append(zone)
    # The negative answer's TTL: min(SOA TTL, SOA minimum) = our TTL (RFC 2308 §3).
    return _rrset(index, dns.name.from_text(zone), SOA, [index.soa(zone)])


def _glue(index: Index, rrsets: list[dns.rrset.RRset], deps: list[str]) -> list[dns.rrset.RRset]:
    """The additional section: addresses of SRV and NS targets that we hold (spec §2.3.2, §2.4.2)."""
    out: list[dns.rrset.RRset] = []
    seen: set[str] = set()
    for rrset in rrsets:
        if rrset.rdtype not in (SRV, NS):
            continue
        for rd in rrset:
            target = rd.target
            name = key(target)
            if name in seen:
                continue
            seen.add(name)
            deps.append(name)
            recs = index.lookup(name) or ()
            for t in (A, AAAA):
                texts = [text for rt, text in recs if rt == t]
                if texts:
                    out.append(_rrset(index, target, t, texts))
    return out
