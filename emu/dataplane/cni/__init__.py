"""Pod-network ("CNI") implementations, one module per plugin, chosen by spec.cni."""

from __future__ import annotations

from emu.dataplane.cni.base import CNIPlugin
from emu.dataplane.cni.bridge import BridgeCNI

PLUGINS: dict[str, type[CNIPlugin]] = {"bridge": BridgeCNI}


def plugin_for(name: str) -> type[CNIPlugin]:
    return PLUGINS[name]
