"""NetworkPolicy (networking.k8s.io/v1) as kemu models it (frozen; built by config/)."""

from __future__ import annotations

from dataclasses import dataclass

from emu.model.objects import Meta
from emu.model.selectors import LabelSelector


@dataclass(frozen=True)
class IPBlock:
    cidr: str
    excepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Peer:
    """One entry of `from`/`to`: selectors (AND when both are set) or an ipBlock."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    protocol: str = "TCP"
    port: int | str | None = None  # None: every port; a string names a container port
    end_port: int | None = None


@dataclass(frozen=True)
class PolicyRule:
    peers: tuple[Peer, ...] = ()  # empty: every source/destination
    ports: tuple[PolicyPort, ...] = ()  # empty: every port


@dataclass(frozen=True)
class NetworkPolicy:
    meta: Meta
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]  # "Ingress", "Egress"
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}"
