"""The pcap reader and the time-ordered merge behind `kemu capture` (no root needed)."""

from __future__ import annotations

import io
import struct

import pytest

from emu.traffic.pcap import LINKTYPE_ETHERNET, Header, Merger, PcapError, Reader, convert

pytestmark = pytest.mark.unit

BASE = 1_700_000_000


def record(sec: int, usec: int, body: bytes, endian: str = "<", orig: int | None = None) -> bytes:
    return struct.pack(endian + "IIII", sec, usec, len(body), len(body) if orig is None else orig) + body


def frame(n: int) -> bytes:
    """A 60-byte Ethernet frame whose last bytes say which one it is."""
    return b"\xff" * 12 + b"\x08\x00" + bytes(42) + n.to_bytes(4, "big")


def test_header_round_trip_both_byte_orders_and_precisions() -> None:
    for endian in "<>":
        for nanos in (False, True):
            h = Header(LINKTYPE_ETHERNET, 65535, nanos, endian)
            assert Header.decode(h.encode()) == h


def test_not_a_pcap_stream() -> None:
    with pytest.raises(PcapError, match="not a pcap"):
        Reader().feed(b"\x0a\x0d\x0d\x0a" + bytes(40))  # pcapng's magic


def test_reader_takes_records_cut_anywhere() -> None:
    stream = Header(LINKTYPE_ETHERNET).encode() + b"".join(record(BASE + i, 999_999 - i, frame(i)) for i in range(5))
    whole = Reader().feed(stream)
    for cut in (1, 7, 23, 25, 39, 40, 41, 100):
        r, got = Reader(), []
        for i in range(0, len(stream), cut):
            got += r.feed(stream[i : i + cut])
        assert got == whole, cut
        assert r.pending() == 0
    assert [ts for ts, _ in whole] == [(BASE + i) * 10**9 + (999_999 - i) * 1000 for i in range(5)]
    assert whole[3][1] == record(BASE + 3, 999_996, frame(3))  # the record's own bytes, header included


def test_reader_big_endian_nanoseconds() -> None:
    stream = Header(LINKTYPE_ETHERNET, nanos=True, endian=">").encode() + record(BASE, 123_456_789, frame(1), ">")
    r = Reader()
    ((ts, _raw),) = r.feed(stream)
    assert ts == BASE * 10**9 + 123_456_789
    assert r.header is not None and r.header.nanos and r.header.endian == ">"


def test_reader_holds_a_cut_off_record() -> None:
    r = Reader()
    data = Header(LINKTYPE_ETHERNET).encode() + record(BASE, 0, frame(1)) + record(BASE, 1, frame(2))[:-5]
    assert len(r.feed(data)) == 1
    assert r.pending() == 16 + 60 - 5


def test_convert_to_the_output_format() -> None:
    src = Header(LINKTYPE_ETHERNET, nanos=True, endian=">")
    dst = Header(LINKTYPE_ETHERNET, snaplen=20)
    out = convert(record(BASE, 123_456_789, frame(7), ">"), src, dst)
    assert struct.unpack_from("<IIII", out) == (BASE, 123_456, 20, 60)  # captured 20 of 60
    assert out[16:] == frame(7)[:20]
    same = record(BASE, 5, frame(1))
    assert convert(same, Header(LINKTYPE_ETHERNET), Header(LINKTYPE_ETHERNET)) is same  # no copy


def ns(sec: float) -> int:
    return int(sec * 1e9)


def pkts(*times: float) -> list[tuple[int, bytes]]:
    return [(ns(t), f"{t}".encode()) for t in times]


def test_merge_waits_for_every_busy_source() -> None:
    m = Merger(2, window=0.5)
    m.push(0, pkts(10.0, 10.2, 10.4))
    # Source 1 may still hold packets up to now - window: only those older go.
    assert [ts for _, ts, _ in m.pop_ready(now=10.6)] == [ns(10.0)]
    m.push(1, pkts(10.1, 10.3))
    assert [(s, ts) for s, ts, _ in m.pop_ready(now=10.65)] == [(1, ns(10.1)), (0, ns(10.2)), (1, ns(10.3))]
    assert m.held() == 1  # 10.4: source 1 has said nothing past 10.3 yet


def test_merge_does_not_wait_for_an_idle_source_for_ever() -> None:
    m = Merger(3, window=0.5)
    m.push(0, pkts(10.0, 10.1))
    assert m.pop_ready(now=10.2) == []
    assert [ts for _, ts, _ in m.pop_ready(now=10.61)] == [ns(10.0), ns(10.1)]


def test_merge_closed_sources_and_drain_in_order() -> None:
    m = Merger(2, window=5)
    m.push(0, pkts(1.0, 3.0))
    m.push(1, pkts(2.0))
    m.close(1)
    assert [ts for _, ts, _ in m.pop_ready(now=3.5)] == [ns(1.0), ns(2.0), ns(3.0)]
    m.push(0, pkts(4.0, 4.0, 5.0))
    m.close(0)
    assert [ts for _, ts, _ in m.drain()] == [ns(4.0), ns(4.0), ns(5.0)]
    assert m.late == 0


def test_merge_equal_timestamps_keep_arrival_order() -> None:
    m = Merger(2, window=1)
    m.push(0, [(ns(1), b"a")])
    m.push(1, [(ns(1), b"b")])
    m.push(0, [(ns(1), b"c")])
    assert [raw for _, _, raw in m.drain()] == [b"a", b"b", b"c"]


def test_merge_counts_a_packet_later_than_the_window() -> None:
    m = Merger(2, window=0.5)
    m.push(0, pkts(10.0))
    assert len(m.pop_ready(now=11.0)) == 1
    m.push(1, pkts(9.9))  # source 1 was slower than the window promised
    assert [ts for _, ts, _ in m.pop_ready(now=11.0)] == [ns(9.9)]
    assert m.late == 1


def test_merged_file_reads_back_with_scapy(tmp_path: object) -> None:
    """What FileSink writes (a header, then records in merge order) is a pcap scapy reads."""
    from scapy.utils import rdpcap

    m = Merger(2, window=0.1)
    m.push(0, [(ns(BASE + 0.3), record(BASE, 300_000, frame(3))), (ns(BASE + 0.5), record(BASE, 500_000, frame(5)))])
    m.push(1, [(ns(BASE + 0.1), record(BASE, 100_000, frame(1))), (ns(BASE + 0.4), record(BASE, 400_000, frame(4)))])
    buf = io.BytesIO(Header(LINKTYPE_ETHERNET).encode() + b"".join(raw for _, _, raw in m.drain()))
    got = rdpcap(buf)
    assert [int.from_bytes(bytes(p)[-4:], "big") for p in got] == [1, 3, 4, 5]
    assert [float(p.time) for p in got] == pytest.approx([BASE + 0.1, BASE + 0.3, BASE + 0.4, BASE + 0.5])
