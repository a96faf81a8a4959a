"""Services and EndpointSlices as kemu models them (frozen; built by config/ and controllers/)."""

from __future__ import annotations

from dataclasses import dataclass, field

from emu.model.objects import Meta

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds, the API server's default


@dataclass(frozen=True)
class ServicePort:
    port: int
    protocol: str = "TCP"
    name: str = ""
    target_port: int | str = 0  # 0: same as port; a string names a container port
    node_port: int = 0  # 0: none (or not yet allocated)
    app_protocol: str | None = None  # L7 proxies read it (kubernetes.io/h2c, kubernetes.io/ws)


@dataclass(frozen=True)
class Service:
    meta: Meta
    type: str = "ClusterIP"  # ClusterIP | NodePort | LoadBalancer | ExternalName
    selector: dict[str, str] | None = None  # None: selector-less (manual EndpointSlices)
    ports: tuple[ServicePort, ...] = ()
    cluster_ip: str = ""  # "" allocate, "None" headless
    external_ips: tuple[str, ...] = ()
    session_affinity: str = "None"
    affinity_timeout: int = DEFAULT_AFFINITY_TIMEOUT
    external_traffic_policy: str = "Cluster"
    internal_traffic_policy: str = "Cluster"
    health_check_node_port: int = 0
    publish_not_ready_addresses: bool = False
    load_balancer_ip: str = ""  # requested (deprecated field, still honoured)
    load_balancer_source_ranges: tuple[str, ...] = ()
    external_name: str = ""
    allocate_lb_node_ports: bool = True

    @property
    def key(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}"

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"

    @property
    def has_node_ports(self) -> bool:
        return self.type == "NodePort" or (self.type == "LoadBalancer" and self.allocate_lb_node_ports)

    @property
    def external_local(self) -> bool:
        """eTP Local applies to NodePort/LoadBalancer (and externalIPs) traffic."""
        return self.external_traffic_policy == "Local" and self.type in ("NodePort", "LoadBalancer")


@dataclass(frozen=True)
class EndpointConditions:
    ready: bool = True
    serving: bool = True
    terminating: bool = False


@dataclass(frozen=True)
class Endpoint:
    addresses: tuple[str, ...]
    conditions: EndpointConditions = EndpointConditions()
    node_name: str = ""
    zone: str = ""
    target_ref: str = ""  # "ns/pod" for pods


@dataclass(frozen=True)
class EndpointPort:
    port: int
    protocol: str = "TCP"
    name: str = ""


@dataclass(frozen=True)
class EndpointSlice:
    meta: Meta
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    address_type: str = "IPv4"

    @property
    def key(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}"

    @property
    def service_name(self) -> str:
        return self.meta.labels.get(SERVICE_NAME_LABEL, "")


@dataclass(frozen=True)
class ServiceStatus:
    """What the controllers decided for a Service (allocations, LB ingress)."""

    cluster_ip: str = ""
    node_ports: dict[str, int] = field(default_factory=dict)  # port name/number → nodePort
    health_check_node_port: int = 0
    lb_ip: str = ""
    lb_node: str = ""  # the node announcing lb_ip
