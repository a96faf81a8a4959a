"""iptables spelling of a proxy plan, after kube-proxy's iptables proxier.

Rendered whole for `iptables-restore` (nat and filter tables; kemu owns the node
namespace's iptables, so base chains are restored too). Balancing is statistic-mode
random with probabilities 1/n, 1/(n-1), …; affinity uses the `recent` match; drops
decided in the nat table (which may not DROP) are marked and dropped in filter.

As kube-proxy's iptables mode with its defaults (nodePortAddresses unset,
localhostNodePorts true), NodePorts answer on every local address, 127.0.0.1 included:
that needs net.ipv4.conf.all.route_localnet=1 in the node's namespace (set by the
runtime), and the anti-martian rule kube-proxy shares with kubelet (KUBE-FIREWALL).
"""

from __future__ import annotations

import base64
import hashlib

from emu.proxy.plan import Backend, ProxyPlan, ServicePortPlan
from emu.proxy.tracer import firewall_sources

MASQ = "0x4000/0x4000"
DROP = "0x8000/0x8000"


def _h(*parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return base64.b32encode(digest)[:16].decode()


def svc(sp: ServicePortPlan) -> str:
    return "KEMU-SVC-" + _h(sp.id)


def ext(sp: ServicePortPlan) -> str:
    return "KEMU-EXT-" + _h(sp.id)


def fw(sp: ServicePortPlan) -> str:
    return "KEMU-FW-" + _h(sp.id)


def sep(sp: ServicePortPlan, b: Backend) -> str:
    return "KEMU-SEP-" + _h(sp.id, b.ip, str(b.port))


def _balance(sp: ServicePortPlan, chain: str, eps: tuple[Backend, ...], out: list[str]) -> None:
    if not eps:
        out.append(f"-A {chain} -j MARK --set-xmark {DROP}")
        return
    if sp.affinity_timeout:
        for b in eps:
            out.append(
                f"-A {chain} -m recent --name {sep(sp, b)} --mask 255.255.255.255 --rsource --rcheck --seconds {sp.affinity_timeout} --reap -j {sep(sp, b)}"
            )
    n = len(eps)
    for i, b in enumerate(eps):
        if i < n - 1:
            out.append(f"-A {chain} -m statistic --mode random --probability {1.0 / (n - i):.11f} -j {sep(sp, b)}")
        else:
            out.append(f"-A {chain} -j {sep(sp, b)}")


def render(plan: ProxyPlan) -> str:
    nat_chains = ["KEMU-SERVICES", "KEMU-NODEPORTS", "KEMU-POSTROUTING", "KEMU-MARK-MASQ"]
    nat: list[str] = [
        "-A PREROUTING -j KEMU-SERVICES",
        "-A OUTPUT -j KEMU-SERVICES",
        "-A POSTROUTING -j KEMU-POSTROUTING",
        f"-A KEMU-MARK-MASQ -j MARK --set-xmark {MASQ}",
        f"-A KEMU-POSTROUTING -m mark ! --mark {MASQ} -j RETURN",
        "-A KEMU-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        "-A KEMU-POSTROUTING -j MASQUERADE --random-fully",
    ]
    filt_chains = ["KEMU-FIREWALL", "KEMU-SERVICES", "KEMU-EXTERNAL-SERVICES", "KEMU-NODEPORTS"]
    filt: list[str] = [
        "-A INPUT -j KEMU-FIREWALL",
        "-A OUTPUT -j KEMU-FIREWALL",
        # With route_localnet=1 a remote host could reach the node's 127.0.0.1 services;
        # only DNATed (localhost NodePort) and reply packets may use a loopback address.
        "-A KEMU-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
        # No-endpoint rejects as kube-proxy hooks them: ClusterIPs in forward and output,
        # external IPs and LB IPs in input and forward (the node's own traffic to an
        # externalIP is not rejected; it is routed on).
        "-A INPUT -m conntrack --ctstate NEW -j KEMU-NODEPORTS",
        "-A INPUT -m conntrack --ctstate NEW -j KEMU-EXTERNAL-SERVICES",
        "-A FORWARD -m conntrack --ctstate NEW -j KEMU-EXTERNAL-SERVICES",
        "-A FORWARD -m conntrack --ctstate NEW -j KEMU-SERVICES",
        "-A OUTPUT -m conntrack --ctstate NEW -j KEMU-SERVICES",
        f"-A INPUT -m mark --mark {DROP} -j DROP",
        f"-A FORWARD -m mark --mark {DROP} -j DROP",
        f"-A OUTPUT -m mark --mark {DROP} -j DROP",
    ]
    svc_rules: list[str] = []
    nodeport_rules: list[str] = []
    body: list[str] = []
    for sp in plan.services:
        p = sp.protocol
        vips = [*sp.lb_ips, *sp.external_ips]
        if not sp.has_endpoints:
            for chain, ip in [("KEMU-SERVICES", sp.cluster_ip), *(("KEMU-EXTERNAL-SERVICES", v) for v in vips)]:
                filt.append(f"-A {chain} -d {ip}/32 -p {p} -m {p} --dport {sp.port} -j REJECT")
            if sp.node_port:
                filt.append(f"-A KEMU-NODEPORTS -m addrtype --dst-type LOCAL -p {p} -m {p} --dport {sp.node_port} -j REJECT")
            continue
        nat_chains.append(svc(sp))
        svc_rules.append(f"-A KEMU-SERVICES -d {sp.cluster_ip}/32 -p {p} -m {p} --dport {sp.port} -j {svc(sp)}")
        body.append(f"-A {svc(sp)} -d {sp.cluster_ip}/32 -p {p} -m {p} --dport {sp.port} ! -s {plan.pod_cidr} -j KEMU-MARK-MASQ")
        _balance(sp, svc(sp), sp.cluster_endpoints, body)
        if sp.node_port or vips:
            nat_chains.append(ext(sp))
            if sp.external_local:
                body.append(f"-A {ext(sp)} -s {plan.pod_cidr} -j {svc(sp)}")
                body.append(f"-A {ext(sp)} -m addrtype --src-type LOCAL -j KEMU-MARK-MASQ")
                body.append(f"-A {ext(sp)} -m addrtype --src-type LOCAL -j {svc(sp)}")
            else:
                body.append(f"-A {ext(sp)} -j KEMU-MARK-MASQ")
            _balance(sp, ext(sp), sp.external_endpoints, body)
            for ip in vips:
                target = fw(sp) if ip in sp.lb_ips and sp.source_ranges else ext(sp)
                svc_rules.append(f"-A KEMU-SERVICES -d {ip}/32 -p {p} -m {p} --dport {sp.port} -j {target}")
            if sp.node_port:
                # Every local address (KEMU-SERVICES jumps here for those), as kube-proxy.
                nodeport_rules.append(f"-A KEMU-NODEPORTS -p {p} -m {p} --dport {sp.node_port} -j {ext(sp)}")
            if sp.lb_ips and sp.source_ranges:
                nat_chains.append(fw(sp))
                for r in firewall_sources(plan, sp):
                    body.append(f"-A {fw(sp)} -s {r} -j {ext(sp)}")
                body.append(f"-A {fw(sp)} -j MARK --set-xmark {DROP}")
        for b in sorted({*sp.cluster_endpoints, *sp.external_endpoints}, key=lambda x: (x.ip, x.port)):
            nat_chains.append(sep(sp, b))
            body.append(f"-A {sep(sp, b)} -s {b.ip}/32 -j KEMU-MARK-MASQ")
            recent = f" -m recent --name {sep(sp, b)} --mask 255.255.255.255 --rsource --set" if sp.affinity_timeout else ""
            body.append(f"-A {sep(sp, b)} -p {p} -m {p}{recent} -j DNAT --to-destination {b.ip}:{b.port}")
    svc_rules.append("-A KEMU-SERVICES -m addrtype --dst-type LOCAL -j KEMU-NODEPORTS")  # last: after every VIP
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    lines += [f":{c} - [0:0]" for c in dict.fromkeys(nat_chains)]
    lines += (
        nat
        + svc_rules
        + nodeport_rules
        + body
        + ["COMMIT", "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    )
    lines += [f":{c} - [0:0]" for c in filt_chains] + filt + ["COMMIT"]
    return "\n".join(lines) + "\n"
