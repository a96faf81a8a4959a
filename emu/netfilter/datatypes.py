"""nftables data types (set keys, map data, rule literals): text to integers and back.

A value is a `Field`: an inclusive integer range (lo == hi for one value) or, for string
types such as ifname, the string. So `10.0.0.5/32` and `10.0.0.5`, `tcp` and `6`, `0x0`
and `0` compare equal, and interval and concatenated sets are plain range checks.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Field = tuple[int, int] | str

# /etc/protocols and /etc/services names nft resolves (the ones a ruleset is likely to use).
PROTOCOLS = {
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "dccp": 33,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "sctp": 132,
    "udplite": 136,
}
SERVICES = {"ssh": 22, "smtp": 25, "domain": 53, "http": 80, "https": 443, "ntp": 123, "bgp": 179, "ldap": 389}
CT_STATE = {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}
CT_STATUS = {"expected": 1, "seen-reply": 2, "assured": 4, "confirmed": 8, "snat": 16, "dnat": 32, "dying": 512}
FIB_ADDRTYPE = {
    "unspec": 0, "unicast": 1, "local": 2, "broadcast": 3, "anycast": 4,
    "multicast": 5, "blackhole": 6, "unreachable": 7, "prohibit": 8,
}  # fmt: skip
_PROTO_NAMES = {v: k for k, v in PROTOCOLS.items()}


class DataTypeError(ValueError):
    """A value that is not of the type (becomes nft's error message)."""


@dataclass(frozen=True)
class DataType:
    name: str
    bits: int  # 0: a string type
    symbols: tuple[tuple[str, int], ...] = ()
    bitmask: bool = False  # flag types: `ct state new,established` tests bits

    def parse(self, text: str) -> Field:
        """One value, prefix (`net/len`) or range (`lo-hi`)."""
        if self.bits == 0:
            return text.strip('"')
        if self.name in ("ipv4_addr", "ipv6_addr"):
            return _parse_addr(self.name, text)
        lo, sep, hi = text.partition("-") if not text.startswith("-") else (text, "", "")
        a = self._number(lo)
        b = self._number(hi) if sep else a
        if b < a:
            raise DataTypeError(f"range {text!r} is backwards")
        return (a, b)

    def _number(self, text: str) -> int:
        sym = dict(self.symbols)
        if text in sym:
            return sym[text]
        try:
            n = int(text, 16) if text.lower().startswith("0x") else int(text)
        except ValueError:
            raise DataTypeError(f"{text!r} is not a valid {self.name}") from None
        if not 0 <= n < (1 << self.bits):
            raise DataTypeError(f"{text!r} is out of range for {self.name}")
        return n

    def format(self, f: Field) -> str:
        if isinstance(f, str):
            return f'"{f}"'
        lo, hi = f
        if self.name in ("ipv4_addr", "ipv6_addr"):
            return _format_addr(self.name, lo, hi)
        one = self._format_one
        return one(lo) if lo == hi else f"{one(lo)}-{one(hi)}"

    def _format_one(self, n: int) -> str:
        if self.name == "inet_proto" and n in _PROTO_NAMES:
            return _PROTO_NAMES[n]
        if self.name in ("mark", "ct_state", "ct_status"):
            names = [k for k, v in self.symbols if v == n]
            return names[0] if names else f"0x{n:08x}"
        return str(n)


def _parse_addr(name: str, text: str) -> tuple[int, int]:
    cls = ipaddress.IPv4Network if name == "ipv4_addr" else ipaddress.IPv6Network
    addr = ipaddress.IPv4Address if name == "ipv4_addr" else ipaddress.IPv6Address
    try:
        if "/" in text:
            net = cls(text, strict=False)  # nft masks the host bits of a prefix
            return (int(net.network_address), int(net.broadcast_address))
        lo, sep, hi = text.partition("-")
        a = int(addr(lo))
        b = int(addr(hi)) if sep else a
    except ValueError:
        raise DataTypeError(f"{text!r} is not a valid {name}") from None
    if b < a:
        raise DataTypeError(f"range {text!r} is backwards")
    return (a, b)


def _format_addr(name: str, lo: int, hi: int) -> str:
    addr = ipaddress.IPv4Address if name == "ipv4_addr" else ipaddress.IPv6Address
    if lo == hi:
        return str(addr(lo))
    size = hi - lo + 1
    if size & (size - 1) == 0 and lo % size == 0:
        width = 32 if name == "ipv4_addr" else 128
        return f"{addr(lo)}/{width - size.bit_length() + 1}"
    return f"{addr(lo)}-{addr(hi)}"


def _t(name: str, bits: int, symbols: dict[str, int] | None = None, bitmask: bool = False) -> DataType:
    return DataType(name, bits, tuple((symbols or {}).items()), bitmask)


TYPES: dict[str, DataType] = {
    t.name: t
    for t in (
        _t("ipv4_addr", 32),
        _t("ipv6_addr", 128),
        _t("inet_proto", 8, PROTOCOLS),
        _t("inet_service", 16, SERVICES),
        _t("mark", 32),
        _t("integer", 32),
        _t("ifname", 0),
        _t("ether_addr", 48),
        _t("ct_state", 32, CT_STATE, bitmask=True),
        _t("ct_status", 32, CT_STATUS, bitmask=True),
        _t("fib_addrtype", 32, FIB_ADDRTYPE),
    )
}

# `typeof EXPR` in a set declaration: the type of the expression.
TYPEOF = {
    "ip saddr": "ipv4_addr",
    "ip daddr": "ipv4_addr",
    "ip6 saddr": "ipv6_addr",
    "ip6 daddr": "ipv6_addr",
    "ip protocol": "inet_proto",
    "meta l4proto": "inet_proto",
    "meta mark": "mark",
    "ct mark": "mark",
    "meta iifname": "ifname",
    "meta oifname": "ifname",
    "iifname": "ifname",
    "oifname": "ifname",
    "ether saddr": "ether_addr",
    "ether daddr": "ether_addr",
    **{f"{p} {d}": "inet_service" for p in ("th", "tcp", "udp", "sctp") for d in ("sport", "dport")},
}


def datatype(name: str) -> DataType:
    try:
        return TYPES[name]
    except KeyError:
        raise DataTypeError(f"unknown datatype {name}") from None


def single(f: Field) -> bool:
    return isinstance(f, str) or f[0] == f[1]


def contains(outer: Field, value: Field) -> bool:
    """Is `value` (a single value) inside `outer`? Strings: equal, or `eth*` wildcards."""
    if isinstance(outer, str) or isinstance(value, str):
        if not isinstance(outer, str) or not isinstance(value, str):
            return False
        return value.startswith(outer[:-1]) if outer.endswith("*") else outer == value
    return outer[0] <= value[0] and value[1] <= outer[1]


def overlaps(a: Field, b: Field) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a[0] <= b[1] and b[0] <= a[1]
