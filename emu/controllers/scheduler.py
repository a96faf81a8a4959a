"""Placement as kube-scheduler does it: filters, then a deterministic spread.

Filters run in the default profile's order (TaintToleration, NodeAffinity, NodePorts,
NodeResourcesFit, InterPodAffinity: the pod's affinity, its anti-affinity, the placed pods'
anti-affinity); a node is reported under the first that rejects it, as in the scheduler's
"0/3 nodes are available: ..." message. Among the nodes left: no
untolerated PreferNoSchedule taint first, then the fewest pods, then file order.
spec.nodeName bypasses the scheduler (the kubelet admits the pod if it has room).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from emu.model.objects import NodeDecl, NodeSelectorRequirement, ObservedPod, Pod, PodAffinityTerm, PodSpec, Taint, Toleration

__all__ = [
    "NodeInfo",
    "ObservedPod",  # re-exported: what the runtime reports back to the controllers
    "PlacedPod",
    "Scheduler",
    "choose_node",
    "node_infos",
    "node_labels",
    "placed_pod",
    "schedule_all",
    "unschedulable_reason",
]

HOSTNAME_LABEL = "kubernetes.io/hostname"
# Labels the kubelet puts on every Node.
WELL_KNOWN = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
UNLIMITED = 1 << 30

# The filters' messages (framework/plugins/*), in filter order.
R_TAINT = "node(s) had untolerated taint {%s: %s}"
R_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
R_PORTS = "node(s) didn't have free ports for the requested pod ports"
R_PODS = "Too many pods"
R_POD_AFFINITY = "node(s) didn't match pod affinity rules"
R_POD_ANTI = "node(s) didn't match pod anti-affinity rules"
R_EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"


@dataclass(frozen=True)
class NodeInfo:
    name: str
    index: int  # position in the topology file (ties go to the earliest)
    labels: dict[str, str]  # including kubernetes.io/hostname, os, arch
    taints: tuple[Taint, ...] = ()
    capacity: int = UNLIMITED  # free pod IPs
    load: int = 0  # pods already on it


@dataclass(frozen=True)
class PlacedPod:
    namespace: str
    labels: dict[str, str]
    node: str
    anti_affinity: tuple[PodAffinityTerm, ...] = ()  # its own required anti-affinity (symmetry)
    host_ports: frozenset[tuple[str, str, int]] = frozenset()  # (protocol, hostIP, hostPort)


def node_labels(name: str, labels: dict[str, str]) -> dict[str, str]:
    """A node's labels as the API shows them: the kubelet's well-known ones, then its own."""
    return {HOSTNAME_LABEL: name, **WELL_KNOWN, **labels}


def node_infos(nodes: Iterable[NodeDecl], capacity: dict[str, int] | None = None, load: dict[str, int] | None = None) -> list[NodeInfo]:
    """NodeInfos in file order; `capacity`: free pod IPs per node (None: unlimited)."""
    return [
        NodeInfo(
            n.name,
            i,
            node_labels(n.name, n.labels),
            n.taints,
            UNLIMITED if capacity is None else capacity.get(n.name, 0),
            (load or {}).get(n.name, 0),
        )
        for i, n in enumerate(nodes)
    ]


def host_ports(spec: PodSpec) -> frozenset[tuple[str, str, int]]:
    # hostNetwork pods use their container ports on the node (the API defaults hostPort to them).
    return frozenset(
        (p.protocol, p.host_ip or "0.0.0.0", p.host_port or (p.container_port if spec.host_network else 0))
        for c in spec.containers
        for p in c.ports
        if p.host_port or spec.host_network
    )


def placed_pod(pod: Pod, node: str) -> PlacedPod:
    return PlacedPod(pod.meta.namespace, pod.meta.labels, node, pod.spec.pod_anti_affinity, host_ports(pod.spec))


# --- node-level predicates (also the DaemonSet controller's) ---------------------------------


def requirement_matches(r: NodeSelectorRequirement, node: NodeInfo) -> bool:
    if r.field:
        # matchFields supports metadata.name only (In/NotIn), as the API validates.
        value: str | None = node.name if r.key == "metadata.name" else None
    else:
        value = node.labels.get(r.key)
    op = r.operator
    if op == "In":
        return value is not None and value in r.values
    if op == "NotIn":
        return value is None or value not in r.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        # Both sides parse as integers or the requirement does not match.
        try:
            have, want = int(value or ""), int(r.values[0])
        except (ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def matches_node_selector(spec: PodSpec, node: NodeInfo) -> bool:
    """nodeSelector AND required node affinity (an OR of terms, each an AND; an empty term
    matches nothing), as the NodeAffinity plugin decides."""
    if any(node.labels.get(k) != v for k, v in spec.node_selector.items()):
        return False
    if not spec.node_affinity:
        return True
    return any(term and all(requirement_matches(r, node) for r in term) for term in spec.node_affinity)


def untolerated_taint(taints: Iterable[Taint], tolerations: Iterable[Toleration], effects: tuple[str, ...]) -> Taint | None:
    """The first taint with one of `effects` that no toleration tolerates."""
    tols = tuple(tolerations)
    for t in taints:
        if t.effect in effects and not any(tol.tolerates(t) for tol in tols):
            return t
    return None


def pinned_node(spec: PodSpec) -> str:
    """The node a pod is tied to: nodeName, or a DaemonSet pod's matchFields metadata.name."""
    if spec.node_name:
        return spec.node_name
    for term in spec.node_affinity:
        for r in term:
            if r.field and r.key == "metadata.name" and r.operator == "In" and len(r.values) == 1:
                return r.values[0]
    return ""


# --- the scheduler ---------------------------------------------------------------------


@dataclass
class _TermIndex:
    """Matching placed pods of one (anti-)affinity term, counted per topology value."""

    term: PodAffinityTerm
    namespaces: frozenset[str] | None  # None: every namespace
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0


class Scheduler:
    """Places pods one by one, keeping load, free IPs and placed pods up to date (so a batch
    of pods spreads and respects the affinity of the ones placed before it)."""

    def __init__(
        self, nodes: list[NodeInfo], placed: Iterable[PlacedPod] = (), namespaces: dict[str, dict[str, str]] | None = None
    ) -> None:
        self.nodes = sorted(nodes, key=lambda n: n.index)
        self.by_name = {n.name: n for n in self.nodes}
        self.load = {n.name: n.load for n in self.nodes}
        self.free = {n.name: n.capacity for n in self.nodes}
        self.namespaces = namespaces or {}
        self.placed: list[PlacedPod] = []
        # Placed pods' anti-affinity, by distinct term: (term, its namespaces, domains taken).
        self.anti: dict[tuple[int, str], tuple[PodAffinityTerm, frozenset[str] | None, set[tuple[str, str]]]] = {}
        self.ports: dict[str, set[tuple[str, str, int]]] = {n.name: set() for n in self.nodes}
        self._terms: dict[tuple[int, str], _TermIndex] = {}
        for p in placed:
            self._add(p)

    # --- bookkeeping ---

    def _add(self, p: PlacedPod) -> None:
        self.placed.append(p)
        node = self.by_name.get(p.node)
        for t in p.anti_affinity:
            entry = self.anti.get((id(t), p.namespace))
            if entry is None or entry[0] is not t:
                entry = self.anti[(id(t), p.namespace)] = (t, self.term_namespaces(t, p.namespace), set())
            value = node.labels.get(t.topology_key) if node is not None else None
            if value is not None:
                entry[2].add((t.topology_key, value))
        if p.host_ports and p.node in self.ports:
            self.ports[p.node] |= p.host_ports
        for idx in self._terms.values():
            self._count(idx, p)

    def _count(self, idx: _TermIndex, p: PlacedPod) -> None:
        node = self.by_name.get(p.node)
        if node is None or (idx.namespaces is not None and p.namespace not in idx.namespaces):
            return
        if not idx.term.selector.matches(p.labels):
            return
        idx.total += 1
        value = node.labels.get(idx.term.topology_key)
        if value is not None:
            idx.counts[value] = idx.counts.get(value, 0) + 1

    def term_namespaces(self, term: PodAffinityTerm, own: str) -> frozenset[str] | None:
        """namespaces ∪ namespaceSelector's; neither: the pod's own; `{}` selector: all."""
        if term.namespace_selector is None:
            return frozenset(term.namespaces or (own,))
        if term.namespace_selector.is_empty:
            return None
        chosen = {ns for ns, labels in self.namespaces.items() if term.namespace_selector.matches(labels)}
        return frozenset(chosen | set(term.namespaces))

    def _index(self, term: PodAffinityTerm, own: str) -> _TermIndex:
        key = (id(term), own)
        idx = self._terms.get(key)
        if idx is None or idx.term is not term:
            idx = _TermIndex(term, self.term_namespaces(term, own))
            for p in self.placed:
                self._count(idx, p)
            self._terms[key] = idx
        return idx

    # --- filters ---

    def _blocked_by_existing(self, pod: Pod) -> set[tuple[str, str]]:
        """(topology key, value) domains where a placed pod's anti-affinity forbids `pod`."""
        out: set[tuple[str, str]] = set()
        for term, nss, domains in self.anti.values():
            if domains and (nss is None or pod.meta.namespace in nss) and term.selector.matches(pod.meta.labels):
                out |= domains
        return out

    def _failure(self, pod: Pod, node: NodeInfo, blocked: set[tuple[str, str]], affinity: list[_TermIndex], anti: list[_TermIndex]) -> str:
        """'' if `pod` fits `node`, else the first failing filter's reason."""
        spec = pod.spec
        t = untolerated_taint(node.taints, spec.tolerations, ("NoSchedule", "NoExecute"))
        if t is not None:
            return R_TAINT % (t.key, t.value)
        if not matches_node_selector(spec, node):
            return R_AFFINITY
        wanted = host_ports(spec)
        if wanted and _ports_conflict(wanted, self.ports.get(node.name, set())):
            return R_PORTS
        if not spec.host_network and self.free.get(node.name, 0) <= 0:
            return R_PODS
        # InterPodAffinity: the pod's affinity, its anti-affinity, then the placed pods'.
        if affinity and not self._affinity_ok(pod, node, affinity):
            return R_POD_AFFINITY
        for idx in anti:
            value = node.labels.get(idx.term.topology_key)
            if value is not None and idx.counts.get(value, 0) > 0:
                return R_POD_ANTI
        if blocked and any((k, v) in blocked for k, v in node.labels.items()):
            return R_EXISTING_ANTI
        return ""

    def _affinity_ok(self, pod: Pod, node: NodeInfo, affinity: list[_TermIndex]) -> bool:
        ok = True
        for idx in affinity:
            value = node.labels.get(idx.term.topology_key)
            if value is None or idx.counts.get(value, 0) == 0:
                ok = False
                break
        if ok:
            return True
        # The first pod of a group that selects itself may go anywhere (no matching pod yet).
        if all(idx.total == 0 for idx in affinity):
            return all(
                (idx.namespaces is None or pod.meta.namespace in idx.namespaces) and idx.term.selector.matches(pod.meta.labels)
                for idx in affinity
            )
        return False

    def evaluate(self, pod: Pod) -> tuple[list[NodeInfo], dict[str, str]]:
        """(nodes that fit, node → reason for the ones that don't)."""
        blocked = self._blocked_by_existing(pod) if self.anti else set()
        affinity = [self._index(t, pod.meta.namespace) for t in pod.spec.pod_affinity]
        anti = [self._index(t, pod.meta.namespace) for t in pod.spec.pod_anti_affinity]
        fits, failed = [], {}
        for n in self.nodes:
            reason = self._failure(pod, n, blocked, affinity, anti)
            if reason:
                failed[n.name] = reason
            else:
                fits.append(n)
        return fits, failed

    def choose(self, pod: Pod) -> str | None:
        """The node `pod` goes to, or None (it stays Pending, as in Kubernetes)."""
        spec = pod.spec
        if spec.node_name:
            ok = spec.node_name in self.by_name and (spec.host_network or self.free[spec.node_name] > 0)
            return spec.node_name if ok else None
        fits, _ = self.evaluate(pod)
        if not fits:
            return None

        def score(n: NodeInfo) -> tuple[int, int, int]:
            prefer = untolerated_taint(n.taints, spec.tolerations, ("PreferNoSchedule",)) is not None
            return (int(prefer), self.load[n.name], n.index)

        return min(fits, key=score).name

    def place(self, pod: Pod, node: str) -> None:
        self.load[node] = self.load.get(node, 0) + 1
        if not pod.spec.host_network:
            self.free[node] = self.free.get(node, 0) - 1
        self._add(placed_pod(pod, node))

    def schedule(self, pod: Pod) -> str | None:
        node = self.choose(pod)
        if node is not None:
            self.place(pod, node)
        return node

    def reason(self, pod: Pod) -> str:
        """Why `pod` fits nowhere, in the scheduler's words (the PodScheduled condition)."""
        spec = pod.spec
        if spec.node_name:
            if spec.node_name not in self.by_name:
                return f'node "{spec.node_name}" not found'
            return "Pod was rejected: Node didn't have enough resource: pods"
        if not self.nodes:
            return "no nodes available to schedule pods"
        _, failed = self.evaluate(pod)
        histogram: dict[str, int] = {}
        for r in failed.values():
            histogram[r] = histogram.get(r, 0) + 1
        reasons = sorted(f"{count} {r}" for r, count in histogram.items())
        return f"0/{len(self.nodes)} nodes are available: {', '.join(reasons)}."


def _ports_conflict(wanted: frozenset[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    for proto, ip, port in wanted:
        for p2, ip2, port2 in used:
            if proto == p2 and port == port2 and (ip == ip2 or "0.0.0.0" in (ip, ip2)):
                return True
    return False


def choose_node(
    pod: Pod, nodes: list[NodeInfo], placed: Iterable[PlacedPod] = (), namespaces: dict[str, dict[str, str]] | None = None
) -> str | None:
    return Scheduler(nodes, placed, namespaces).choose(pod)


def unschedulable_reason(
    pod: Pod, nodes: list[NodeInfo], placed: Iterable[PlacedPod] = (), namespaces: dict[str, dict[str, str]] | None = None
) -> str:
    return Scheduler(nodes, placed, namespaces).reason(pod)


def schedule_all(
    pods: Iterable[Pod], nodes: list[NodeInfo], placed: Iterable[PlacedPod] = (), namespaces: dict[str, dict[str, str]] | None = None
) -> dict[str, str | None]:
    """Pod key → node (None: Pending), placing in order so later pods see earlier ones."""
    s = Scheduler(nodes, placed, namespaces)
    return {p.key: s.schedule(p) for p in pods}
