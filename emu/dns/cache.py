"""The DNS server's answer cache: rendered answers keyed by the query's bytes, kept across
reloads while the names they depend on are unchanged."""

from __future__ import annotations

import struct
from collections.abc import Callable

from emu.dns.records import Index


def cache_key(data: bytes) -> bytes:
    """The query minus its ID; with EDNS, minus the options (as if rdlen were 0)."""
    if len(data) < 12 or data[10:12] != b"\x00\x01":
        return data[2:]
    i, n = 12, len(data)
    while i < n and 0 < data[i] < 0x40:
        i += data[i] + 1
    j = i + 5  # the root label, qtype, qclass
    if data[j : j + 3] == b"\x00\x00\x29" and n >= j + 11:  # OPT: root owner, type 41
        return data[2 : j + 9] + b"\x00\x00"
    return data[2:]


Entry = tuple[bytes, list[float], tuple[str, ...]]  # (the answer minus its ID, its metrics cell, Reply.deps)


class Generation:
    """One loaded state: the index and the answers cached from it (per transport)."""

    __slots__ = ("index", "tcp", "udp")

    def __init__(self, index: Index | None) -> None:
        self.index = index
        self.udp: dict[bytes, Entry] = {}
        self.tcp: dict[bytes, Entry] = {}

    def carry(self, old: Generation, pause: Callable[[], None] = lambda: None) -> list[tuple[bool, bytes]]:
        """Keep the old answers whose names are unchanged; return the others as (udp, key).
        A zone whose SOA changed in its serial only (every write bumps it) is patched in the
        answers that carry it (negative ones): no reason to answer those again."""
        o, n = old.index, self.index
        if o is None or n is None or not o.same_frame(n):
            return []
        same: dict[str, bool] = {}
        patches = {z: p for z in n.zones if (p := _serial_patch(o, n, z))}
        stale = []
        for udp, src, dst in ((True, old.udp, self.udp), (False, old.tcp, self.tcp)):
            for i, (key, (wire, cell, deps)) in enumerate(list(src.items())):
                if i % 256 == 255:
                    pause()  # let the queries in (DnsServer.step_aside)
                for name in deps:
                    if name not in same:
                        same[name] = o.fingerprint(name) == n.fingerprint(name)
                    if same[name]:
                        continue
                    if name not in patches:
                        stale.append((udp, key))
                        break
                    wire = wire.replace(*patches[name])
                else:
                    dst[key] = (wire, cell, deps)
        return stale


def _serial_patch(old: Index, new: Index, zone: str) -> tuple[bytes, bytes] | None:
    """(old, new) wire bytes of the zone's SOA serial..minimum when nothing else changed at the apex."""
    if old.fingerprint(zone)[1:] != new.fingerprint(zone)[1:]:
        return None
    a, b = old.soa(zone).split(), new.soa(zone).split()
    if a[:2] + a[3:] != b[:2] + b[3:] or (old.records[zone].replace(old.soa(zone), new.soa(zone)) != new.records[zone]):
        return None
    pack = struct.Struct("!IIIII").pack
    return pack(*map(int, a[2:])), pack(*map(int, b[2:]))
