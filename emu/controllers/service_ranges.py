"""What Service allocations draw from: the NodePort range, the reserved ClusterIPs, port keys.

Shared by the full allocation (emu/controllers/service_alloc.py) and its memo
(emu/controllers/service_alloc_memo.py): the API server's default NodePort range, the
offsets in the service CIDR kept for the `kubernetes` Service and cluster DNS, and the
key a Service port's NodePort is recorded under in the Service's status.
"""

from __future__ import annotations

from emu.model.services import Service

NODE_PORT_MIN, NODE_PORT_MAX = 30000, 32767
# 10.96.0.1 is the `kubernetes` Service's and 10.96.0.10 cluster DNS's by convention.
RESERVED_OFFSETS = (1, 10)


def port_key(svc: Service, i: int) -> str:
    p = svc.ports[i]
    return p.name or f"{p.port}/{p.protocol}"
