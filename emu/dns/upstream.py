"""The emulated data centre's resolver: it lives on the node network and knows the topology's
nodes and external hosts by name, and nothing else. It never forwards: no query leaves the
machine, every other name is NXDOMAIN at once. The cluster's DNS pods forward out-of-cluster
names to it (as CoreDNS forwards to the node's resolver) and pods with `dnsPolicy: Default`
use it directly.

Names, both answered with A and the IPs' PTR (the reverse zones of the node network):
- `<host>.kemu.internal` — `.internal` is the top-level domain reserved for private networks
  (ICANN, 2024), so it can never clash with a real name; the domain is a parameter;
- the bare `<host>` (`node-1`, `client`): what a pod's ClusterFirst search path ends up asking
  for after the cluster suffixes, as a data centre resolver with a search domain would answer.

The server is emu.dns.server with this index in its state file (no --upstream): it is run as
`python -m emu.dns.upstream --state FILE …`, the same arguments. forwarder() is the other end:
how a cluster DNS server asks this one.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.rcode

from emu.dns.records import DEFAULT_TTL, Builder, Index, reverse_name, reverse_zones
from emu.dns.resolver import Upstream

DEFAULT_DOMAIN = "kemu.internal"
FORWARD_TIMEOUT = 2.0


def build_upstream_index(
    hosts: Mapping[str, str | Sequence[str]],
    *,
    domain: str = DEFAULT_DOMAIN,
    cidrs: Sequence[str] = (),
    resolver_ip: str = "",
    ttl: int = DEFAULT_TTL,
    serial: int = 1,
) -> Index:
    """hosts: name → IP(s) (nodes, external hosts). cidrs: the node network(s), whose reverse zones
    we answer; by default the /24 (or /64) of every address. resolver_ip: ns.<domain>'s address."""
    domain = domain.strip(".").lower()
    b = Builder(ttl, serial)
    ns_name, hostmaster = f"ns.{domain}", f"hostmaster.{domain}"
    b.zone(domain, ns_name, hostmaster)
    if resolver_ip:
        b.address(ns_name, resolver_ip)
    ips = {name: [ip] if isinstance(ip, str) else list(ip) for name, ip in hosts.items()}
    nets = list(cidrs) or [str(ipaddress.ip_interface(f"{ip}/{24 if ':' not in ip else 64}").network) for v in ips.values() for ip in v]
    for cidr in dict.fromkeys(nets):
        for rz in reverse_zones(cidr):
            if rz not in b.zones:
                b.zone(rz, ns_name, hostmaster)
    for name, addrs in ips.items():
        bare = name.strip(".").lower()
        fqdn = bare if bare.endswith("." + domain) else f"{bare}.{domain}"
        if bare != fqdn and bare not in b.zones:
            b.zone(bare, ns_name, hostmaster)  # a single-label name is a zone of its own
        for ip in addrs:
            b.address(fqdn, ip)
            if bare != fqdn:
                b.address(bare, ip)
            b.add(reverse_name(ip), f"PTR {fqdn}")
    return b.build(recursive=True)  # it stands for the data centre's recursive resolver: RA set


def forwarder(target: str, count: Callable[[str], None], timeout: float = FORWARD_TIMEOUT) -> Upstream:
    """The cluster DNS server's side: ask IP:PORT over UDP, over TCP when the answer is truncated;
    count(rcode or "error") after each. Raw sockets: dns.query would bring the ssl module (5 MB)."""
    host, _, port_text = target.rpartition(":")
    addr = (host.strip("[]"), int(port_text))
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET

    def ask(query: dns.message.Message) -> dns.message.Message | None:
        wire = query.to_wire()
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.connect(addr)
                s.send(wire)
                resp = dns.message.from_wire(s.recv(65535), raise_on_truncation=False)
                while not query.is_response(resp):  # a stray datagram: keep waiting for ours
                    resp = dns.message.from_wire(s.recv(65535), raise_on_truncation=False)
            if resp.flags & dns.flags.TC:
                with socket.create_connection(addr, timeout=timeout) as s:
                    s.sendall(len(wire).to_bytes(2, "big") + wire)
                    resp = dns.message.from_wire(recv_exact(s, int.from_bytes(recv_exact(s, 2), "big")))
        except (dns.exception.DNSException, OSError, ValueError):
            count("error")
            return None
        count(dns.rcode.to_text(resp.rcode()))
        return resp

    return ask


def recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


if __name__ == "__main__":
    from emu.dns.server import main

    raise SystemExit(main())
