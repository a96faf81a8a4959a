"""The one registry of kinds: every name a user may type for a kind, where it lives.

As `kubectl api-resources` lists them: kind, group/version, plural and short names,
namespaced or not. The store, the views, the control socket and the shell all resolve
kinds here; the object schemas come from the Kubernetes OpenAPI (config/openapi.py), and
kemu's own typed models (config/kinds*.py) exist only for kinds with network meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

from emu.errors import Problem, ValidationError


@dataclass(frozen=True)
class KindInfo:
    kind: str
    api_version: str  # the preferred version ("v1", "apps/v1", …)
    plural: str
    short: tuple[str, ...] = ()
    namespaced: bool = True
    kemu_only: bool = False  # kemu's own (nodes and external hosts of the topology)

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def resource(self) -> str:
        """`deployments.apps`, as the API server names a resource in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _k(kind: str, api: str, plural: str, short: tuple[str, ...] = (), namespaced: bool = True) -> KindInfo:
    return KindInfo(kind, api, plural, short, namespaced)


KINDS: tuple[KindInfo, ...] = (
    _k("Binding", "v1", "bindings"),
    _k("ComponentStatus", "v1", "componentstatuses", ("cs",), False),
    _k("ConfigMap", "v1", "configmaps", ("cm",)),
    _k("Endpoints", "v1", "endpoints", ("ep",)),
    _k("Event", "v1", "events", ("ev",)),
    _k("LimitRange", "v1", "limitranges", ("limits",)),
    _k("Namespace", "v1", "namespaces", ("ns",), False),
    _k("Node", "v1", "nodes", ("no",), False),
    _k("PersistentVolumeClaim", "v1", "persistentvolumeclaims", ("pvc",)),
    _k("PersistentVolume", "v1", "persistentvolumes", ("pv",), False),
    _k("Pod", "v1", "pods", ("po",)),
    _k("PodTemplate", "v1", "podtemplates"),
    _k("ReplicationController", "v1", "replicationcontrollers", ("rc",)),
    _k("ResourceQuota", "v1", "resourcequotas", ("quota",)),
    _k("Secret", "v1", "secrets"),
    _k("ServiceAccount", "v1", "serviceaccounts", ("sa",)),
    _k("Service", "v1", "services", ("svc",)),
    _k("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", (), False),
    _k("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", (), False),
    _k("ValidatingAdmissionPolicy", "admissionregistration.k8s.io/v1", "validatingadmissionpolicies", (), False),
    _k("ValidatingAdmissionPolicyBinding", "admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings", (), False),
    _k("CustomResourceDefinition", "apiextensions.k8s.io/v1", "customresourcedefinitions", ("crd", "crds"), False),
    _k("APIService", "apiregistration.k8s.io/v1", "apiservices", (), False),
    _k("ControllerRevision", "apps/v1", "controllerrevisions"),
    _k("DaemonSet", "apps/v1", "daemonsets", ("ds",)),
    _k("Deployment", "apps/v1", "deployments", ("deploy",)),
    _k("ReplicaSet", "apps/v1", "replicasets", ("rs",)),
    _k("StatefulSet", "apps/v1", "statefulsets", ("sts",)),
    _k("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", ("hpa",)),
    _k("CronJob", "batch/v1", "cronjobs", ("cj",)),
    _k("Job", "batch/v1", "jobs"),
    _k("CertificateSigningRequest", "certificates.k8s.io/v1", "certificatesigningrequests", ("csr",), False),
    _k("Lease", "coordination.k8s.io/v1", "leases"),
    _k("EndpointSlice", "discovery.k8s.io/v1", "endpointslices"),
    _k("FlowSchema", "flowcontrol.apiserver.k8s.io/v1", "flowschemas", (), False),
    _k("PriorityLevelConfiguration", "flowcontrol.apiserver.k8s.io/v1", "prioritylevelconfigurations", (), False),
    _k("IngressClass", "networking.k8s.io/v1", "ingressclasses", (), False),
    _k("Ingress", "networking.k8s.io/v1", "ingresses", ("ing",)),
    _k("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", ("netpol",)),
    _k("IPAddress", "networking.k8s.io/v1", "ipaddresses", ("ip",), False),
    _k("ServiceCIDR", "networking.k8s.io/v1", "servicecidrs", (), False),
    _k("RuntimeClass", "node.k8s.io/v1", "runtimeclasses", (), False),
    _k("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", ("pdb",)),
    _k("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", (), False),
    _k("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", (), False),
    _k("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings"),
    _k("Role", "rbac.authorization.k8s.io/v1", "roles"),
    _k("PriorityClass", "scheduling.k8s.io/v1", "priorityclasses", ("pc",), False),
    _k("CSIDriver", "storage.k8s.io/v1", "csidrivers", (), False),
    _k("CSINode", "storage.k8s.io/v1", "csinodes", (), False),
    _k("CSIStorageCapacity", "storage.k8s.io/v1", "csistoragecapacities"),
    _k("StorageClass", "storage.k8s.io/v1", "storageclasses", ("sc",), False),
    _k("VolumeAttachment", "storage.k8s.io/v1", "volumeattachments", (), False),
    _k("VolumeAttributesClass", "storage.k8s.io/v1", "volumeattributesclasses", ("vac",), False),
    # Gateway API (standard channel CRDs, installed in every kemu cluster).
    _k("BackendTLSPolicy", "gateway.networking.k8s.io/v1", "backendtlspolicies", ("btlspolicy",)),
    _k("GatewayClass", "gateway.networking.k8s.io/v1", "gatewayclasses", ("gc",), False),
    _k("Gateway", "gateway.networking.k8s.io/v1", "gateways", ("gtw",)),
    _k("GRPCRoute", "gateway.networking.k8s.io/v1", "grpcroutes"),
    _k("HTTPRoute", "gateway.networking.k8s.io/v1", "httproutes"),
    _k("ListenerSet", "gateway.networking.k8s.io/v1", "listenersets", ("lset",)),
    _k("ReferenceGrant", "gateway.networking.k8s.io/v1", "referencegrants", ("refgrant",)),
    _k("TCPRoute", "gateway.networking.k8s.io/v1", "tcproutes"),
    _k("TLSRoute", "gateway.networking.k8s.io/v1", "tlsroutes"),
    _k("UDPRoute", "gateway.networking.k8s.io/v1", "udproutes"),
    KindInfo("Host", "kemu/v1alpha1", "hosts", (), False, kemu_only=True),
)

BY_KIND: dict[str, KindInfo] = {k.kind: k for k in KINDS}
_NAMES: dict[str, KindInfo] = {}
for _info in KINDS:
    for _name in (_info.kind.lower(), _info.plural, *_info.short, _info.resource):
        _NAMES.setdefault(_name, _info)
    if _info.group:
        _NAMES.setdefault(f"{_info.kind.lower()}.{_info.group}", _info)


def info(kind: str) -> KindInfo | None:
    """A kind by its canonical name (as in a manifest's `kind`)."""
    return BY_KIND.get(kind)


def resolve(word: str) -> KindInfo:
    """What a user typed (`po`, `pods`, `deployments.apps`, `Deployment`) → the kind."""
    found = _NAMES.get(word.lower())
    if found is None:
        raise ValidationError(
            [Problem("<command line>", "", f'the server doesn\'t have a resource type "{word}" (try `kemu api-resources`)')]
        )
    return found


def canonical_kind(word: str) -> str:
    return resolve(word).kind


def is_namespaced(kind: str) -> bool:
    found = BY_KIND.get(kind)
    return True if found is None else found.namespaced


def api_resources_table() -> list[list[str]]:
    rows = [["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]]
    for k in sorted(KINDS, key=lambda k: (k.group, k.plural)):
        rows.append([k.plural, ",".join(k.short), k.api_version, str(k.namespaced).lower(), k.kind])
    return rows
