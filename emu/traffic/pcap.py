"""The classic pcap format (what `tcpdump -w` writes), read incrementally, and a merge of
several captures into one time-ordered stream. Stdlib only.

A pcap stream is a 24-byte global header (magic, version, snaplen, link type) then
records: a 16-byte header (seconds, fraction, captured length, original length) and the
packet's bytes. The magic says the byte order and whether the fraction is micro- or
nanoseconds. Records travel as raw bytes: re-encoding each one would cost more than the
merge itself at gigabit rates, so they are rewritten only when a source's format differs
from the output's.
"""

from __future__ import annotations

import heapq
import itertools
import struct
import sys
from dataclasses import dataclass

MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
GLOBAL_LEN = 24
RECORD_LEN = 16

# The link types tcpdump names in "listening on IF, link-type NAME (…)": libpcap's DLT names.
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
LINKTYPES = {"EN10MB": LINKTYPE_ETHERNET, "LINUX_SLL": LINKTYPE_LINUX_SLL, "LINUX_SLL2": LINKTYPE_LINUX_SLL2}


class PcapError(ValueError):
    """Bytes that are not a pcap stream."""


@dataclass(frozen=True)
class Header:
    """A pcap global header: byte order ("<" or ">"), precision, snaplen and link type."""

    linktype: int
    snaplen: int = 262144
    nanos: bool = False
    endian: str = "<" if sys.byteorder == "little" else ">"

    def encode(self) -> bytes:
        magic = MAGIC_NANO if self.nanos else MAGIC_MICRO
        return struct.pack(self.endian + "IHHiIII", magic, 2, 4, 0, 0, self.snaplen, self.linktype)

    @staticmethod
    def decode(data: bytes) -> Header:
        if len(data) < GLOBAL_LEN:
            raise PcapError(f"a pcap header has {GLOBAL_LEN} bytes, got {len(data)}")
        for endian in "<>":
            (magic,) = struct.unpack_from(endian + "I", data)
            if magic in (MAGIC_MICRO, MAGIC_NANO):
                _, _, _, _, _, snaplen, linktype = struct.unpack_from(endian + "IHHiIII", data)
                return Header(linktype, snaplen, magic == MAGIC_NANO, endian)
        raise PcapError(f"not a pcap stream (magic {data[:4].hex()})")


# One packet as the merge handles it: (timestamp in ns, record bytes in the *source's* format).
Packet = tuple[int, bytes]


class Reader:
    """An incremental pcap parser: feed() it chunks as they arrive, it returns whole records."""

    def __init__(self) -> None:
        self.header: Header | None = None
        self._buf = bytearray()
        self._rec = struct.Struct("<IIII")
        self._scale = 1000

    def feed(self, data: bytes) -> list[Packet]:
        buf = self._buf
        buf += data
        if self.header is None:
            if len(buf) < GLOBAL_LEN:
                return []
            self.header = Header.decode(bytes(buf[:GLOBAL_LEN]))
            self._rec = struct.Struct(self.header.endian + "IIII")
            self._scale = 1 if self.header.nanos else 1000
            del buf[:GLOBAL_LEN]
        out: list[Packet] = []
        unpack, scale, pos, end = self._rec.unpack_from, self._scale, 0, len(buf)
        while end - pos >= RECORD_LEN:
            sec, frac, incl, _orig = unpack(buf, pos)
            stop = pos + RECORD_LEN + incl
            if stop > end:
                break
            out.append((sec * 1_000_000_000 + frac * scale, bytes(buf[pos:stop])))
            pos = stop
        del buf[:pos]
        return out

    def pending(self) -> int:
        """Bytes held back: a record cut short when the stream ended."""
        return len(self._buf)


def convert(record: bytes, src: Header, dst: Header) -> bytes:
    """A record in `src`'s format rewritten in `dst`'s (byte order, precision, snaplen)."""
    if src.endian == dst.endian and src.nanos == dst.nanos and src.snaplen <= dst.snaplen:
        return record
    sec, frac, incl, orig = struct.unpack_from(src.endian + "IIII", record)
    if src.nanos != dst.nanos:
        frac = frac // 1000 if src.nanos else frac * 1000
    body = record[RECORD_LEN : RECORD_LEN + min(incl, dst.snaplen)]
    return struct.pack(dst.endian + "IIII", sec, frac, len(body), orig) + body


class Merger:
    """Packets of several sources, out in timestamp order, held no longer than needed.

    Each source delivers its own packets in order, within `window` seconds of their
    timestamp. So a packet is safe to emit once every source still open has either
    delivered one at least as late or can no longer deliver an earlier one: the packet is
    older than `window` (the source may be idle for ever). A packet delivered later than
    that is still emitted, out of order, and counted in `late`.
    """

    def __init__(self, sources: int, window: float = 0.5) -> None:
        self.window_ns = int(window * 1e9)
        self._heap: list[tuple[int, int, int, bytes]] = []
        self._seq = itertools.count()
        self._last_ts = [-1] * sources
        self._open = [True] * sources
        self._emitted_ts = -1
        self.late = 0

    def push(self, source: int, packets: list[Packet]) -> None:
        if not packets:
            return
        heap, seq = self._heap, self._seq
        for ts, raw in packets:
            heapq.heappush(heap, (ts, next(seq), source, raw))
        self._last_ts[source] = max(self._last_ts[source], packets[-1][0])

    def close(self, source: int) -> None:
        self._open[source] = False

    def watermark(self, now: float) -> float:
        """Packets up to this timestamp (ns) can go: no open source will send an earlier one."""
        floor = int(now * 1e9) - self.window_ns
        marks = [max(ts, floor) for ts, is_open in zip(self._last_ts, self._open, strict=True) if is_open]
        return min(marks) if marks else float("inf")

    def pop_ready(self, now: float) -> list[tuple[int, int, bytes]]:
        """(source, ts, record) of every packet safe to emit now, in order."""
        return self._pop(self.watermark(now))

    def drain(self) -> list[tuple[int, int, bytes]]:
        """Everything still held, in order (every source has ended)."""
        return self._pop(float("inf"))

    def _pop(self, mark: float) -> list[tuple[int, int, bytes]]:
        heap, out = self._heap, []
        while heap and heap[0][0] <= mark:
            ts, _, source, raw = heapq.heappop(heap)
            if ts < self._emitted_ts:
                self.late += 1
            else:
                self._emitted_ts = ts
            out.append((source, ts, raw))
        return out

    def held(self) -> int:
        return len(self._heap)
