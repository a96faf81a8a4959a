"""The DNS server's answer cache: rendered answers keyed by the query's bytes, kept across
reloads while the names they depend on are unchanged."""

from __future__ import annotations

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

    def carry(self, old: Generation) -> list[tuple[bool, bytes]]:
        """Keep the old answers whose names are unchanged; return the others as (udp, key)."""
        o, n = old.index, self.index
        if o is None or n is None or not o.same_frame(n):
            return []
        same: dict[str, bool] = {}
        stale = []
        for udp, src, dst in ((True, old.udp, self.udp), (False, old.tcp, self.tcp)):
            for key, entry in list(src.items()):
                for name in entry[2]:
                    if name not in same:
                        same[name] = o.fingerprint(name) == n.fingerprint(name)
                    if not same[name]:
                        stale.append((udp, key))
                        break
                else:
                    dst[key] = entry
        return stale
