"""Pod-network ("CNI") implementations, one module per plugin, chosen by spec.cni."""

from __future__ import annotations

from emu.dataplane.cni.base import CNIPlugin
from emu.dataplane.cni.bridge import BridgeCNI
from emu.dataplane.cni.routed import RoutedCNI
from emu.dataplane.cni.vxlan import VxlanCNI

PLUGINS: dict[str, type[CNIPlugin]] = {p.name: p for p in (BridgeCNI, VxlanCNI, RoutedCNI)}


def plugin_for(name: str) -> type[CNIPlugin]:
    return PLUGINS[name]
