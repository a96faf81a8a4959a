"""Kubernetes objects as kemu models them (frozen; built only by config/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emu.model.selectors import LabelSelector

# The label every Namespace carries (Kubernetes >= 1.21 sets it automatically).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Meta:
    name: str
    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    protocol: str = "TCP"
    name: str = ""


@dataclass(frozen=True)
class Probe:
    """A readinessProbe: exactly one of http_path/tcp/exec_command is the handler."""

    handler: str  # "httpGet" | "tcpSocket" | "exec"
    port: int | str = 0  # number or a container port's name
    path: str = "/"
    command: tuple[str, ...] = ()
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class Container:
    name: str
    ports: tuple[ContainerPort, ...] = ()
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    readiness_probe: Probe | None = None
    shutdown_delay: int = 0  # agnhost netexec --delay-shutdown: serve this long after SIGTERM


@dataclass(frozen=True)
class PodSpec:
    containers: tuple[Container, ...]
    node_name: str = ""
    node_selector: dict[str, str] = field(default_factory=dict)
    termination_grace_period: int = 30  # seconds, the API server's default

    def served_ports(self) -> list[ContainerPort]:
        return [p for c in self.containers for p in c.ports]

    def resolve_port(self, port: int | str) -> int | None:
        """A named port resolves against the pod's container ports (as kubelet does)."""
        if isinstance(port, int):
            return port
        for p in self.served_ports():
            if p.name == port:
                return p.container_port
        return None


@dataclass(frozen=True)
class PodView:
    """A running pod as controllers, the proxy and the policy engine see it."""

    namespace: str
    name: str
    labels: dict[str, str]
    ip: str
    node: str = ""
    spec: PodSpec | None = None
    ready: bool = True
    terminating: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Namespace:
    meta: Meta


@dataclass(frozen=True)
class Pod:
    meta: Meta
    spec: PodSpec
    owner: str = ""  # name of the owning Deployment, if any

    @property
    def key(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}"


@dataclass(frozen=True)
class Deployment:
    meta: Meta
    replicas: int
    selector: LabelSelector
    template_labels: dict[str, str]
    template_spec: PodSpec

    @property
    def key(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}"


@dataclass(frozen=True)
class NodeDecl:
    """A node as the topology declares it."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExternalHostDecl:
    name: str


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    pod_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    node_cidr: str = "172.30.0.0/24"
    cni: str = "bridge"
    proxy: str = "nftables"
    network_policy: bool = True
    nodes: tuple[NodeDecl, ...] = ()
    external_hosts: tuple[ExternalHostDecl, ...] = ()
    lb_pool: tuple[str, ...] = ()  # CIDRs or "a-b" ranges; () = the default pool


@dataclass(frozen=True)
class Manifests:
    """The Kubernetes objects of a cluster (what `resources`/`include`/apply carry)."""

    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[Pod, ...] = ()
    deployments: tuple[Deployment, ...] = ()
    services: tuple[Any, ...] = ()  # emu.model.services.Service
    endpoint_slices: tuple[Any, ...] = ()  # manual ones, for selector-less Services
    network_policies: tuple[Any, ...] = ()  # emu.model.policy.NetworkPolicy


@dataclass(frozen=True)
class ClusterConfig:
    """A validated topology file."""

    spec: ClusterSpec
    manifests: Manifests
    source: str = ""
