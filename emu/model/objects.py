"""Kubernetes objects as kemu models them (frozen; built only by config/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from emu.model.selectors import LabelSelector

if TYPE_CHECKING:  # they import Meta from here
    from emu.model.policy import NetworkPolicy
    from emu.model.services import EndpointSlice, Service

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
    host_port: int = 0  # hostPort: DNAT on the node, as the CNI portmap plugin does
    host_ip: str = ""


@dataclass(frozen=True)
class Probe:
    """A readinessProbe: exactly one of http_path/tcp/exec_command is the handler."""

    handler: str  # "httpGet" | "tcpSocket" | "exec" | "grpc"
    port: int | str = 0  # number or a container port's name
    path: str = "/"
    command: tuple[str, ...] = ()
    grpc_service: str = ""
    host: str = ""
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
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
    image: str = ""
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None
    working_dir: str = ""
    raw: dict[str, Any] = field(default_factory=dict)  # as written (env, envFrom: resolved at start)


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"  # NoSchedule | PreferNoSchedule | NoExecute


@dataclass(frozen=True)
class Toleration:
    key: str = ""  # "" with operator Exists: tolerates everything
    operator: str = "Equal"  # Equal | Exists
    value: str = ""
    effect: str = ""  # "": every effect

    def tolerates(self, t: Taint) -> bool:
        """core/v1 helper ToleratesTaint."""
        if self.effect and self.effect != t.effect:
            return False
        if self.key and self.key != t.key:
            return False
        if self.operator == "Exists":
            return True
        return self.value == t.value


@dataclass(frozen=True)
class NodeSelectorRequirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist | Gt | Lt
    values: tuple[str, ...] = ()
    field: bool = False  # a matchFields entry (metadata.name) rather than a label


@dataclass(frozen=True)
class PodAffinityTerm:
    """A required (anti-)affinity term: pods matching `selector` in `namespaces`."""

    selector: LabelSelector
    topology_key: str
    namespaces: tuple[str, ...] = ()  # () with no namespace_selector: the pod's own namespace
    namespace_selector: LabelSelector | None = None


@dataclass(frozen=True)
class PodSpec:
    containers: tuple[Container, ...]
    node_name: str = ""
    node_selector: dict[str, str] = field(default_factory=dict)
    termination_grace_period: int = 30  # seconds, the API server's default
    init_containers: tuple[Container, ...] = ()
    host_network: bool = False
    restart_policy: str = "Always"
    hostname: str = ""
    subdomain: str = ""
    dns_policy: str = "ClusterFirst"
    service_account_name: str = ""
    tolerations: tuple[Toleration, ...] = ()
    # requiredDuringSchedulingIgnoredDuringExecution: OR of terms, each an AND.
    node_affinity: tuple[tuple[NodeSelectorRequirement, ...], ...] = ()
    pod_affinity: tuple[PodAffinityTerm, ...] = ()
    pod_anti_affinity: tuple[PodAffinityTerm, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)  # the spec as written (round trips in `get -o yaml`)

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

    @property
    def key(self) -> str:
        return self.meta.name  # cluster-scoped


@dataclass(frozen=True)
class Pod:
    meta: Meta
    spec: PodSpec
    owner: str = ""  # the controlling object, "Kind/name" (same namespace), if any

    @property
    def key(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}"


@dataclass(frozen=True)
class RollingUpdate:
    """A Deployment's (or DaemonSet's) strategy; int or "25%" as the API takes them."""

    type: str = "RollingUpdate"  # RollingUpdate | Recreate (OnDelete for DaemonSet/StatefulSet)
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    partition: int = 0  # StatefulSet


@dataclass(frozen=True)
class Workload:
    """A pod controller: Deployment, ReplicaSet, StatefulSet, DaemonSet or Job."""

    kind: str
    meta: Meta
    replicas: int
    selector: LabelSelector
    template_labels: dict[str, str]
    template_spec: PodSpec
    template_annotations: dict[str, str] = field(default_factory=dict)
    strategy: RollingUpdate = RollingUpdate()
    min_ready_seconds: int = 0
    service_name: str = ""  # StatefulSet: its headless Service (pod DNS names)
    pod_management_policy: str = "OrderedReady"  # StatefulSet
    completions: int | None = None  # Job; None: done when one pod succeeds (work queue)
    parallelism: int = 1  # Job
    backoff_limit: int = 6  # Job
    owner: str = ""  # a ReplicaSet's Deployment ("Deployment/name")
    revision_history_limit: int = 10  # Deployment: old ReplicaSets kept (scaled to 0)
    active_deadline_seconds: int | None = None  # Job: DeadlineExceeded after this long
    suspend: bool = False  # Job: no pods while suspended
    raw: dict[str, Any] = field(default_factory=dict)  # the object as written

    @property
    def key(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}"

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.meta.name}"


@dataclass(frozen=True)
class ObservedPod:
    """A pod as the kubelet reports it: what the controllers read back (status.phase,
    the Ready condition, deletionTimestamp, spec.nodeName, restart counts)."""

    pod: Pod
    phase: str = "Pending"  # Pending | Running | Succeeded | Failed
    ready: bool = False
    terminating: bool = False
    node: str = ""
    restarts: int = 0  # summed over the pod's containers
    ready_since: float = 0.0  # when it last became Ready (minReadySeconds); 0: unknown

    @property
    def key(self) -> str:
        return self.pod.key


@dataclass(frozen=True)
class Unstructured:
    """Any other kind: stored as written, served back by `get`, no effect on the network
    (ConfigMap and Secret data feed env/envFrom)."""

    kind: str
    api_version: str
    meta: Meta
    raw: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}" if self.meta.namespace else self.meta.name


@dataclass(frozen=True)
class NodeDecl:
    """A node as the topology declares it."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()


@dataclass(frozen=True)
class ExternalHostDecl:
    name: str


@dataclass(frozen=True)
class DNSSpec:
    """`spec.dns`: the cluster DNS (CoreDNS's role) and its defaults."""

    enabled: bool = True
    cluster_domain: str = "cluster.local"
    replicas: int = 2
    ttl: int = 30


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
    dns: DNSSpec = field(default_factory=lambda: DNSSpec())
    # A node cut off (its link down) turns NotReady after this long, and its pods are
    # evicted after that (kube-controller-manager's --node-monitor-grace-period, 40 s, and
    # the default tolerationSeconds for node.kubernetes.io/unreachable, 300 s).
    node_monitor_grace_s: float = 40.0
    pod_eviction_timeout_s: float = 300.0


@dataclass(frozen=True)
class Manifests:
    """The Kubernetes objects of a cluster (what `resources`/`include`/apply carry)."""

    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[Pod, ...] = ()
    workloads: tuple[Workload, ...] = ()  # Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs
    services: tuple[Service, ...] = ()
    endpoint_slices: tuple[EndpointSlice, ...] = ()  # manual ones, for selector-less Services
    network_policies: tuple[NetworkPolicy, ...] = ()
    others: tuple[Unstructured, ...] = ()  # every other kind, stored as written


# An object of any kind as emu/config builds it from a manifest (a string: three of the
# classes live in modules that import this one).
KubeObject: TypeAlias = "Namespace | Pod | Workload | Service | EndpointSlice | NetworkPolicy | Unstructured"


@dataclass(frozen=True)
class ClusterConfig:
    """A validated topology file."""

    spec: ClusterSpec
    manifests: Manifests
    source: str = ""
    no_effect: tuple[tuple[str, str], ...] = ()  # (file, path) of fields accepted with no effect in kemu
