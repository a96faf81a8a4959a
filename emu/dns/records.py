"""The cluster's DNS data: an immutable index of owner name → records, built from Services,
EndpointSlices and pods as the Kubernetes DNS-Based Service Discovery specification
(kubernetes/dns docs/specification.md, schema 1.1.0) and CoreDNS's kubernetes plugin have it.

Names are lower-case and written without the final dot, in owners and in rdata alike (rdata
names are absolute: the resolver parses them relative to the root). A name that exists with
no records (an ancestor of an existing name, e.g. `_tcp.web.shop.svc.cluster.local`, or a
namespace) is an empty non-terminal: NODATA, not NXDOMAIN (RFC 8020).
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from emu.model.objects import PodView
from emu.model.services import EndpointSlice, Service, ServiceStatus

SCHEMA_VERSION = "1.1.0"  # spec §1
DEFAULT_ZONE = "cluster.local"
DEFAULT_TTL = 30
STATE_FORMAT = "kemu-dns/1"

# RR types (RFC 1035, 3596, 2782) as the resolver asks for them.
A, NS, CNAME, SOA, PTR, TXT, AAAA, SRV = 1, 2, 5, 6, 12, 16, 28, 33
TYPES = {"A": A, "NS": NS, "CNAME": CNAME, "SOA": SOA, "PTR": PTR, "TXT": TXT, "AAAA": AAAA, "SRV": SRV}

Record = tuple[int, str]  # (rdtype, rdata in presentation format; names without the final dot)


@dataclass(frozen=True)
class Index:
    """What a DNS server answers from: authoritative zones, records and empty non-terminals.

    records: owner → its records as lines "TYPE rdata" joined by newlines, one string an owner
    (10,000 Services and 1,000 pods: 26,000 names, ~11 MB in a server; a tuple a record took
    three times that); lookup() parses them."""

    zones: tuple[str, ...]  # apexes served authoritatively
    records: Mapping[str, str]
    ents: frozenset[str]  # names that exist and hold no records
    ttl: int = DEFAULT_TTL
    serial: int = 1
    pod_zone: str = ""  # "pod.cluster.local": answer a-b-c-d.<ns>.pod.<zone> for any IP (CoreDNS `pods insecure`)
    # Service name → its ready endpoints' IPs (space-separated) that have no hostname: their
    # names <dashed-ip>.<service> are answered from here, not stored (half the index otherwise).
    endpoints: Mapping[str, str] = field(default_factory=dict)
    recursive: bool = False  # answers with RA set even without an upstream (the data centre's resolver)
    _suffixes: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        zones = tuple(sorted({z.strip(".").lower() for z in self.zones if z.strip(".")}, key=len, reverse=True))
        object.__setattr__(self, "zones", zones)
        object.__setattr__(self, "_suffixes", tuple(("." + z, z) for z in zones))

    def zone_of(self, name: str) -> str | None:
        """The closest enclosing zone we are authoritative for (name: lower-case, no final dot)."""
        for suffix, zone in self._suffixes:
            if name.endswith(suffix) or name == zone:
                return zone
        return None

    def lookup(self, name: str) -> tuple[Record, ...] | None:
        """The records at name; () for an empty non-terminal; None when the name does not exist."""
        text = self.records.get(name)
        if text is not None:
            return tuple((TYPES[t], rdata) for t, _, rdata in (line.partition(" ") for line in text.split("\n")))
        if name in self.ents:
            return ()
        return self._synthetic(name)

    def _synthetic(self, name: str) -> tuple[Record, ...] | None:
        label, _, parent = name.partition(".")
        ips = self.endpoints.get(parent)
        if ips is not None:  # an endpoint's generated hostname (CoreDNS: the dashed IP)
            ip = undashed(label)
            return ((A if ":" not in ip else AAAA, ip),) if ip and ip in ips.split(" ") else None
        # CoreDNS `pods insecure`: <dashed-ip>.<ns>.pod.<zone> → the IP, for an existing namespace.
        if not self.pod_zone or not parent.endswith("." + self.pod_zone) or parent not in self.ents:
            return None
        if parent.count(".") != self.pod_zone.count(".") + 1:
            return None
        ip = undashed(label)
        return ((A if ":" not in ip else AAAA, ip),) if ip else None

    def fingerprint(self, name: str) -> tuple[object, ...]:
        """Everything lookup(name) depends on: equal fingerprints in two indexes, equal answers."""
        parent = name.partition(".")[2]
        return self.records.get(name), name in self.ents, self.endpoints.get(parent), parent in self.ents

    def same_frame(self, other: Index) -> bool:
        """Whether answers that depend on no name's data (zones, TTL, pod records) are the same."""
        return (self.zones, self.ttl, self.pod_zone) == (other.zones, other.ttl, other.pod_zone)

    def soa(self, zone: str) -> str:
        return next(text for t, text in self.lookup(zone) or () if t == SOA)


def dashed(ip: str) -> str:
    """CoreDNS's generated endpoint hostname and the pod-record label: 10.244.1.5 → 10-244-1-5."""
    return ip.replace(".", "-").replace(":", "-")


def undashed(label: str) -> str:
    """The IP a dashed label stands for (as CoreDNS reads it), or "" if it is none."""
    text = label.replace("-", ".") if label.count("-") == 3 and "--" not in label else label.replace("-", ":")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return ""


def reverse_name(ip: str) -> str:
    """5.1.244.10.in-addr.arpa for 10.244.1.5 (spec §2.3.3); nibbles under ip6.arpa for IPv6."""
    if ":" not in ip:
        a, b, c, d = ip.split(".")
        return f"{d}.{c}.{b}.{a}.in-addr.arpa"
    return ipaddress.ip_address(ip).reverse_pointer


def reverse_zones(cidr: str) -> list[str]:
    """The octet- (nibble-) aligned reverse zones covering a CIDR: 10.96.0.0/12 → 96…111.10.in-addr.arpa."""
    net = ipaddress.ip_network(cidr, strict=False)
    step = 8 if net.version == 4 else 4
    bits = max(step, -(-net.prefixlen // step) * step)
    labels = bits // step
    out = []
    for sub in net.subnets(new_prefix=bits) if bits > net.prefixlen else [net]:
        full = reverse_name(str(sub.network_address)).split(".")
        out.append(".".join(full[len(full) - 2 - labels :]))
    return out


def soa_text(mname: str, rname: str, serial: int, ttl: int) -> str:
    # CoreDNS's SOA: refresh 7200, retry 1800, expire 86400, minimum = the TTL (negative caching).
    return f"{mname} {rname} {serial % 2**32} 7200 1800 86400 {ttl}"


def srv_lines(targets: Sequence[str]) -> list[str]:
    """An owner's SRV records from its targets ("port name"), duplicates once."""
    unique = dict.fromkeys(targets) if len(targets) > 1 else targets
    weight = max(1, round(100 / len(unique)))  # RFC 2782: equal shares at priority 0, as CoreDNS
    return [f"SRV 0 {weight} {t}" for t in unique]


def rrset_text(lines: Sequence[str]) -> str:
    """An owner's lines as the index holds them, duplicates once."""
    return lines[0] if len(lines) == 1 else "\n".join(dict.fromkeys(lines))


class Builder:
    """Collects records, then freezes them into an Index (shared by the cluster and upstream builders)."""

    def __init__(self, ttl: int, serial: int) -> None:
        self.ttl = ttl
        self.serial = serial
        self.zones: list[str] = []
        self.recs: dict[str, list[str]] = {}  # owner → lines "TYPE rdata"
        self.srv: dict[str, list[str]] = {}  # owner → "port target"; weights at the end
        self.ents: set[str] = set()
        self.endpoints: dict[str, list[str]] = {}

    def add(self, owner: str, line: str) -> None:
        lines = self.recs.get(owner)
        if lines is None:
            self.recs[owner] = [line]
        else:
            lines.append(line)

    def address(self, owner: str, ip: str) -> None:
        self.add(owner, f"AAAA {ip}" if ":" in ip else f"A {ip}")

    def add_srv(self, owner: str, port: int, target: str) -> None:
        targets = self.srv.get(owner)
        if targets is None:
            self.srv[owner] = [f"{port} {target}"]
        else:
            targets.append(f"{port} {target}")

    def zone(self, apex: str, ns_name: str, hostmaster: str) -> None:
        self.zones.append(apex)
        self.add(apex, f"SOA {soa_text(ns_name, hostmaster, self.serial, self.ttl)}")
        self.add(apex, f"NS {ns_name}")

    def build(self, pod_zone: str = "", recursive: bool = False) -> Index:
        for owner, targets in self.srv.items():
            self.recs.setdefault(owner, []).extend(srv_lines(targets))
        apexes = set(self.zones)
        ents = set(self.ents)
        records: dict[str, str] = {}
        for owner, lines in self.recs.items():
            # Walk up to the apex: the ancestors are empty non-terminals; no apex: not ours
            # (e.g. a PTR for an endpoint outside the pod and service CIDRs), dropped.
            name, above = owner, []
            while name not in apexes and name not in ents:
                name = name.partition(".")[2]
                if not name:
                    break
                above.append(name)
            if not name:
                continue
            ents.update(above)
            records[owner] = rrset_text(lines)
        endpoints = {owner: " ".join(dict.fromkeys(ips)) for owner, ips in self.endpoints.items() if owner in records}
        ents -= records.keys() | apexes
        return Index(tuple(self.zones), records, frozenset(ents), self.ttl, self.serial, pod_zone, endpoints, recursive)


def frame(zone: str, ttl: int, service_cidr: str, pod_cidr: str, dns_ip: str, serial: int) -> Builder:
    """A builder with what the cluster zone holds before any Service (`zone`: lower-case, no
    final dot): the zones' SOA and NS, the schema version, the name server's address."""
    b = Builder(ttl, serial)
    ns_name, hostmaster = f"ns.dns.{zone}", f"hostmaster.{zone}"
    b.zone(zone, ns_name, hostmaster)
    for cidr in (service_cidr, pod_cidr):
        for rz in reverse_zones(cidr) if cidr else ():
            if rz not in b.zones:
                b.zone(rz, ns_name, hostmaster)
    b.add(f"dns-version.{zone}", f'TXT "{SCHEMA_VERSION}"')  # spec §2.2
    if dns_ip:
        b.address(ns_name, dns_ip)  # the NS target, as CoreDNS answers it
    b.ents.update((f"svc.{zone}", f"pod.{zone}"))
    return b


def build_index(
    services: Iterable[Service],
    statuses: Mapping[str, ServiceStatus],
    slices: Mapping[str, Sequence[EndpointSlice]],
    pods: Iterable[PodView] = (),
    *,
    namespaces: Iterable[str] = (),
    zone: str = DEFAULT_ZONE,
    ttl: int = DEFAULT_TTL,
    service_cidr: str = "10.96.0.0/16",
    pod_cidr: str = "10.244.0.0/16",
    dns_ip: str = "",
    hostnames: Mapping[str, tuple[str, str]] | None = None,
    serial: int = 1,
    pods_mode: str = "insecure",
) -> Index:
    """The cluster's records. `statuses` and `slices` are keyed by the Service's "ns/name" (as the
    store's service_status and the EndpointSlice controller's output are). `hostnames` maps a pod
    key to (hostname, subdomain) and overrides what the pods' specs say. `pods_mode`: insecure
    (any dashed IP in an existing namespace), verified (only running pods' IPs) or disabled."""
    zone = zone.strip(".").lower()
    b = frame(zone, ttl, service_cidr, pod_cidr, dns_ip, serial)

    pods = list(pods)
    known = set(namespaces) | {p.namespace for p in pods}
    hosts = {p.key: (p.spec.hostname, p.spec.subdomain) for p in pods if p.spec and p.spec.hostname and p.spec.subdomain}
    hosts.update(hostnames or {})
    for svc in services:
        known.add(svc.meta.namespace)
        add_service(b, svc, statuses.get(svc.key), slices.get(svc.key, ()), hosts, zone)
    for ns in known:
        b.ents.update((f"{ns}.svc.{zone}".lower(), f"{ns}.pod.{zone}".lower()))
    if pods_mode == "verified":
        for p in pods:
            if p.ip:
                b.address(f"{dashed(p.ip)}.{p.namespace}.pod.{zone}".lower(), p.ip)
    return b.build(f"pod.{zone}" if pods_mode == "insecure" else "")


def add_service(
    b: Builder, svc: Service, st: ServiceStatus | None, slices: Sequence[EndpointSlice], hosts: Mapping[str, tuple[str, str]], zone: str
) -> None:
    """One Service's records (`zone`: lower-case, no final dot): they depend on nothing
    else than these arguments (RecordCache in emu/cluster/dns.py relies on it)."""
    name = svc.meta.name.lower()
    base = f"{name}.{svc.meta.namespace}.svc.{zone}".lower()
    if svc.type == "ExternalName":
        if svc.external_name:
            b.add(base, f"CNAME {svc.external_name.strip('.').lower()}")  # spec §2.5
        return
    cluster_ip = "" if svc.headless else (st.cluster_ip if st and st.cluster_ip else svc.cluster_ip)
    if not svc.headless and not cluster_ip:
        return  # not allocated yet
    if cluster_ip:
        b.address(base, cluster_ip)  # §2.3.1
        b.add(reverse_name(cluster_ip), f"PTR {base}")  # §2.3.3
        for p in svc.ports:
            if p.name:  # §2.3.2: unnamed ports have no SRV record
                b.add_srv(f"_{p.name}._{p.protocol}.{base}".lower(), p.port, base)
    for sl in slices:
        srv = [(f"_{p.name}._{p.protocol}.{base}".lower(), p.port) for p in sl.ports if p.name] if svc.headless else []
        for ep in sl.endpoints:
            if not ep.conditions.ready:  # publishNotReadyAddresses is folded into `ready` by the controller
                continue
            hostname = getattr(ep, "hostname", "")
            if not hostname and ep.target_ref in hosts:
                h, sub = hosts[ep.target_ref]
                hostname = h.lower() if sub.lower() == name else ""  # as the EndpointSlice controller sets it
            for ip in ep.addresses:
                # §2.4.1: a headless Service's name lists its ready endpoints; every Service's endpoints
                # get <hostname>.<service> (CoreDNS; the "DNS for Services and Pods" page), dashed IP by default.
                target = f"{hostname or dashed(ip)}.{base}"
                if svc.headless:
                    b.address(base, ip)
                    for owner, port in srv:  # §2.4.2: the endpoint's port, where the client connects
                        b.add_srv(owner, port, target)
                if hostname:
                    b.address(target, ip)
                else:
                    b.endpoints.setdefault(base, []).append(ip)  # Index._synthetic answers it
                b.add(reverse_name(ip), f"PTR {target}")  # §2.4.3


# The state file a DNS server loads (written atomically by kemu, re-read on change or SIGHUP):
# JSON lines, a header object then chunks of at most CHUNK entries, {"records": {owner: text}},
# {"ents": [names]} or {"endpoints": {service: ips}}, so that a server parses it a piece at a
# time and keeps answering in between (one json.loads of the whole holds the interpreter ~50 ms).

CHUNK = 500


def write_state(path: str, index: Index) -> None:
    """Write the index for a server to load: a temporary file beside it, then os.replace."""
    head = {"format": STATE_FORMAT, "serial": index.serial, "ttl": index.ttl, "zones": list(index.zones), "pod_zone": index.pod_zone}
    head["recursive"] = index.recursive
    lines = [json.dumps(head)]
    records, ents, endpoints = list(index.records.items()), sorted(index.ents), list(index.endpoints.items())
    lines += [_chunk_line("records", dict(records[i : i + CHUNK])) for i in range(0, len(records), CHUNK)]
    lines += [_chunk_line("ents", ents[i : i + CHUNK]) for i in range(0, len(ents), CHUNK)]
    lines += [_chunk_line("endpoints", dict(endpoints[i : i + CHUNK])) for i in range(0, len(endpoints), CHUNK)]
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def _chunk_line(key: str, part: object) -> str:
    return json.dumps({key: part}, separators=(",", ":"))


def load_state(path: str, pause: Callable[[], None] | None = None) -> Index:
    """The index in a state file; pause() is called between chunks (a server yields to its threads)."""
    records: dict[str, str] = {}
    ents: list[str] = []
    endpoints: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        head = json.loads(f.readline() or "{}")
        if head.get("format") != STATE_FORMAT:
            raise ValueError(f"not a {STATE_FORMAT} state: format {head.get('format')!r}")
        for line in f:
            part = json.loads(line)
            records.update(part.get("records", ()))
            ents.extend(part.get("ents", ()))
            endpoints.update(part.get("endpoints", ()))
            if pause is not None:
                pause()
    zones, ttl, serial = tuple(head["zones"]), int(head["ttl"]), int(head["serial"])
    return Index(zones, records, frozenset(ents), ttl, serial, head.get("pod_zone", ""), endpoints, bool(head.get("recursive")))


def wait_loaded(acks: list[str], serial: int, timeout: float = 5.0) -> list[str]:
    """For kemu: wait until every server's --ack file shows `serial` (after write_state, and a
    SIGHUP if you like); returns the ack files that did not in time."""
    deadline = time.monotonic() + timeout
    while True:
        late = []
        for path in acks:
            try:
                with open(path) as f:
                    if int(f.read().strip() or 0) == serial:
                        continue
            except (OSError, ValueError):
                pass
            late.append(path)
        if not late or time.monotonic() >= deadline:
            return late
        time.sleep(0.005)
