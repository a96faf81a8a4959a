"""Placement: spec.nodeName, else nodeSelector, else the node with the fewest pods."""

from __future__ import annotations

from emu.controllers.ipam import NodeAddr
from emu.model.objects import PodSpec


def choose_node(spec: PodSpec, nodes: tuple[NodeAddr, ...], load: dict[str, int], capacity: dict[str, int]) -> str | None:
    """The node a pod goes to, or None (the pod stays Pending, as in Kubernetes).

    Ties go to the earliest node in the file, so placement is deterministic.
    """
    if spec.node_name:
        return spec.node_name if capacity.get(spec.node_name, 0) > 0 else None
    fits = [n for n in nodes if all(n.labels.get(k) == v for k, v in spec.node_selector.items()) and capacity.get(n.name, 0) > 0]
    if not fits:
        return None
    return min(fits, key=lambda n: (load.get(n.name, 0), n.index)).name
