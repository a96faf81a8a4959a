"""A pod's /etc/resolv.conf and /etc/hosts, as the kubelet writes them (pure).

resolv.conf per dnsPolicy (kubelet's dns.Configurer): ClusterFirst → the cluster DNS
Service, `search <ns>.svc.<zone> svc.<zone> <zone>`, `options ndots:5` (a host-network pod
with ClusterFirst falls back to Default); ClusterFirstWithHostNet → the cluster DNS even on
the host network; Default → the node's resolver; None → only `dnsConfig`. `dnsConfig`
adds nameservers (at most 3 in all), search domains (at most 32) and options (a later
option of the same name wins). /etc/hosts: localhost lines, the pod's IP with its hostname
(and FQDN when it has a subdomain), then hostAliases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_NAMESERVERS = 3
MAX_SEARCH = 32


@dataclass(frozen=True)
class ClusterDNS:
    enabled: bool
    service_ip: str  # the kube-dns ClusterIP
    domain: str  # cluster.local
    upstream_ip: str  # the node network's resolver (what a node's resolv.conf names)
    upstream_search: tuple[str, ...] = ()


def node_resolv_conf(dns: ClusterDNS) -> str:
    lines = [f"nameserver {dns.upstream_ip}"]
    if dns.upstream_search:
        lines.append("search " + " ".join(dns.upstream_search))
    return "\n".join(lines) + "\n"


def resolv_conf(dns: ClusterDNS, namespace: str, spec_raw: dict[str, Any], host_network: bool) -> str:
    policy = spec_raw.get("dnsPolicy") or "ClusterFirst"
    nameservers: list[str] = []
    search: list[str] = []
    options: dict[str, str | None] = {}
    cluster = dns.enabled and (policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network))
    if cluster:
        nameservers = [dns.service_ip]
        search = [f"{namespace}.svc.{dns.domain}", f"svc.{dns.domain}", dns.domain]
        options = {"ndots": "5"}
    elif policy != "None":
        nameservers = [dns.upstream_ip]
        search = list(dns.upstream_search)
    cfg = spec_raw.get("dnsConfig") or {}
    for ns in cfg.get("nameservers") or ():
        if ns not in nameservers:
            nameservers.append(str(ns))
    for s in cfg.get("searches") or ():
        if s not in search:
            search.append(str(s))
    for o in cfg.get("options") or ():
        if isinstance(o, dict) and o.get("name"):
            options[str(o["name"])] = None if o.get("value") is None else str(o["value"])
    lines = [f"nameserver {ns}" for ns in nameservers[:MAX_NAMESERVERS]]
    if search:
        lines.append("search " + " ".join(search[:MAX_SEARCH]))
    if options:
        lines.append("options " + " ".join(k if v is None else f"{k}:{v}" for k, v in options.items()))
    return "\n".join(lines) + "\n"


def hosts_file(ip: str, hostname: str, namespace: str, spec_raw: dict[str, Any], domain: str) -> str:
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    subdomain = spec_raw.get("subdomain") or ""
    if subdomain:
        lines.append(f"{ip}\t{hostname}.{subdomain}.{namespace}.svc.{domain}\t{hostname}")
    else:
        lines.append(f"{ip}\t{hostname}")
    aliases = [a for a in spec_raw.get("hostAliases") or () if isinstance(a, dict) and a.get("ip")]
    if aliases:
        lines += ["", "# Entries added by HostAliases."]
        lines += [f"{a['ip']}\t" + "\t".join(a.get("hostnames") or ()) for a in aliases]
    return "\n".join(lines) + "\n"
