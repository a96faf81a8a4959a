"""Predictable names on the machine (namespaces, interfaces ≤ 15 bytes).

Namespaces: the node network's switch is `kemu-<cluster>`, a node or external host
`kemu-<cluster>.<name>`, a pod `kemu-<cluster>.<namespace>.<pod>`. Kubernetes names never
contain '.' in node, host and namespace names, so these never collide.
"""

from __future__ import annotations

from emu.digest import fit, short_hash

IFNAMSIZ = 15


def switch_ns(cluster: str) -> str:
    return f"kemu-{cluster}"


def member_ns(cluster: str, name: str) -> str:
    return f"kemu-{cluster}.{name}"


def pod_ns(cluster: str, namespace: str, pod: str) -> str:
    return f"kemu-{cluster}.{namespace}.{pod}"


def switch_port(name: str) -> str:
    """The switch-side interface of a node or host: its name when it fits."""
    return fit(name, IFNAMSIZ, 4)


def pod_host_if(namespace: str, pod: str) -> str:
    """Node-side end of a pod's veth (as Calico's cali<hash>)."""
    return "veth" + short_hash(namespace, pod, length=11)
