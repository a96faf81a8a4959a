"""Schema and builder for NetworkPolicy, with the API server's own checks."""

from __future__ import annotations

import ipaddress
from typing import Any

from emu.config.schema import AnyValue, Int, IntOrName, Labels, List, Obj, Report, Str, dns_label, dns_subdomain, join
from emu.config.selectors import SELECTOR, build_selector
from emu.model.objects import Meta
from emu.model.policy import IPBlock, NetworkPolicy, Peer, PolicyPort, PolicyRule


def _strict_subnet(sub: ipaddress.IPv4Network | ipaddress.IPv6Network, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """`sub` lies inside `net` and is smaller (never across address families)."""
    if isinstance(sub, ipaddress.IPv4Network) and isinstance(net, ipaddress.IPv4Network):
        return sub.subnet_of(net) and sub != net
    if isinstance(sub, ipaddress.IPv6Network) and isinstance(net, ipaddress.IPv6Network):
        return sub.subnet_of(net) and sub != net
    return False


def _ip_block_check(value: dict[str, Any], path: str, report: Report) -> None:
    try:
        net = ipaddress.ip_network(value.get("cidr", ""), strict=False)
    except ValueError:
        return  # reported by the cidr check
    for i, e in enumerate(value.get("except") or []):
        try:
            sub = ipaddress.ip_network(e, strict=False)
        except ValueError:
            continue
        if not _strict_subnet(sub, net):
            report(join(join(path, "except"), i), f"Invalid value: {e!r}: must be a strict subset of `cidr`")


def _cidr_any(value: str, path: str, report: Report) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as e:
        report(path, f"Invalid value: {value!r}: must be a valid CIDR ({e})")


def _peer_check(value: dict[str, Any], path: str, report: Report) -> None:
    if "ipBlock" in value and ("podSelector" in value or "namespaceSelector" in value):
        report(path, "Forbidden: may not specify more than 1 peer type (ipBlock with a selector)")
    if not value:
        report(path, "Required value: must specify a peer")


def _port_check(value: dict[str, Any], path: str, report: Report) -> None:
    end, port = value.get("endPort"), value.get("port")
    if end is None:
        return
    if not isinstance(port, int) or isinstance(port, bool):
        report(join(path, "endPort"), "Invalid value: may not be specified when `port` is not a number")
    elif isinstance(end, int) and end < port:
        report(join(path, "endPort"), "Invalid value: must be greater than or equal to `port`")


PEER = Obj(
    {
        "podSelector": SELECTOR,
        "namespaceSelector": SELECTOR,
        "ipBlock": Obj(
            {"cidr": Str(extra=_cidr_any), "except": List(Str(extra=_cidr_any))}, required=("cidr",), check_extra=_ip_block_check
        ),
    },
    check_extra=_peer_check,
)
PORT = Obj(
    {"protocol": Str(choices=("TCP", "UDP", "SCTP")), "port": IntOrName(), "endPort": Int(1, 65535)},
    check_extra=_port_check,
)


def _policy_check(value: dict[str, Any], path: str, report: Report) -> None:
    spec = value.get("spec")
    if not isinstance(spec, dict):
        return
    types = spec.get("policyTypes")
    if isinstance(types, list) and len(set(types)) != len(types):
        report(join(path, "spec.policyTypes"), "Duplicate value")


NETWORK_POLICY = Obj(
    {
        "apiVersion": Str(choices=("networking.k8s.io/v1",)),
        "kind": Str(),
        "metadata": Obj(
            {"name": dns_subdomain(), "namespace": dns_label(), "labels": Labels(), "annotations": Labels(values_are_labels=False)},
            required=("name",),
        ),
        "status": AnyValue(),
        "spec": Obj(
            {
                "podSelector": SELECTOR,
                "policyTypes": List(Str(choices=("Ingress", "Egress"))),
                "ingress": List(Obj({"from": List(PEER), "ports": List(PORT)})),
                "egress": List(Obj({"to": List(PEER), "ports": List(PORT)})),
            },
            required=("podSelector",),
        ),
    },
    required=("apiVersion", "kind", "metadata", "spec"),
    check_extra=_policy_check,
)


def _rule(raw: dict[str, Any], peers_key: str) -> PolicyRule:
    peers = []
    for p in raw.get(peers_key) or ():
        block = p.get("ipBlock")
        peers.append(
            Peer(
                build_selector(p["podSelector"]) if "podSelector" in p else None,
                build_selector(p["namespaceSelector"]) if "namespaceSelector" in p else None,
                IPBlock(
                    str(ipaddress.ip_network(block["cidr"], strict=False)),
                    tuple(str(ipaddress.ip_network(e, strict=False)) for e in block.get("except") or ()),
                )
                if block
                else None,
            )
        )
    ports = tuple(PolicyPort(p.get("protocol", "TCP"), p.get("port"), p.get("endPort")) for p in raw.get("ports") or ())
    return PolicyRule(tuple(peers), ports)


def build_network_policy(raw: dict[str, Any]) -> NetworkPolicy:
    m, spec = raw["metadata"], raw["spec"]
    ingress = tuple(_rule(r or {}, "from") for r in spec.get("ingress") or ())
    egress = tuple(_rule(r or {}, "to") for r in spec.get("egress") or ())
    # Defaults as the API server sets them: Ingress always, Egress when egress rules exist.
    types = tuple(spec.get("policyTypes") or (["Ingress"] + (["Egress"] if spec.get("egress") else [])))
    return NetworkPolicy(
        Meta(m["name"], m.get("namespace") or "default", dict(m.get("labels") or {}), dict(m.get("annotations") or {})),
        build_selector(spec.get("podSelector")),
        types,
        ingress,
        egress,
    )
