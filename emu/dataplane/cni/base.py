"""The contract a pod-network plugin fulfils (the role of a CNI plugin plus its node agent).

A plugin is one module in emu/dataplane/cni/ and one class here, chosen by `spec.cni`
(emu/dataplane/cni/__init__.py's PLUGINS). kemu's Network object (network.py) calls it;
the plugin never creates or deletes namespaces, assigns addresses of its own choosing or
touches anything above L3 — IPAM (controllers/ipam.py) has already decided every address.

- `__init__(plan, pod_cidr)`: the whole address plan (every node's IP, pod /24, gateway
  address) and the cluster's podCIDR. Runs once; no kernel work.
- `setup_node(node, addr)` — the node agent's start (flanneld, calico-node): called once per
  node, in the node's namespace (the calling thread is inside it, eth0 already up with its
  address on the node network). It may set the node's sysctls and make the node's own
  links, addresses, routes, neighbour and FDB entries. What it leaves is snapshotted
  afterwards: routes and links it made are watched and restored if someone removes them
  (emu/dataplane/route_watch.py).
- `add_pod(pod, node, addr, pod_ip, host_if)` — CNI ADD: receives the new pod namespace
  (the calling thread is inside it; `pod` is its netlink socket), its node, the node's
  addresses, the pod's IP (from IPAM) and the name its node-side interface must have.
  It must leave the pod with `eth0` (index 2) holding `pod_ip/32`, up, and a default route
  (no other pod device); and the node able to reach `pod_ip` — the node-side end named
  `host_if` (faults, capture and traces find the pod's link by that name). It returns
  nothing: the pod's IP is IPAM's, already known (a CNI result's `ips`). Raising leaves
  clean-up to DEL.
- `del_pod(node, host_if, pod_ip)` — CNI DEL: must remove what ADD put on the node and
  must succeed when some or all of it is already gone (a half-made pod, a repeated DEL),
  as the CNI spec requires of DEL. The pod namespace itself is kemu's to delete.
- `owned_tables()`: nftables tables the plugin keeps on every node, as scripts; the
  cluster writes them through its netfilter layer and rewrites them on drift (a plugin
  runs no `nft` itself).
- `pod_link_up(node, host_if, pod_ip)`: the node end came back up after a link fault; put
  back what the kernel dropped with it.
- `repair_node(node, addr)`: after drift repair brought a node's links and routes back,
  restore what else went with a downed link (the overlay's neighbour entries).
- `node_interfaces()`: the plugin's own node links, for traces' words.

Locking: a node's pyroute2 handle and netlink socket are shared by the threads that make
pods; hold `node.lock` around any use of `node.rtnl` or `node.ipr` in add/del (setup_node
runs before any pod exists).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from emu.controllers.ipam import AddressPlan, NodeAddr
from emu.dataplane.handles import NsHandle
from emu.dataplane.rtnl_socket import RtnlSocket


class CNIPlugin(ABC):
    name = ""

    def __init__(self, plan: AddressPlan, pod_cidr: str) -> None:
        self.plan = plan
        self.pod_cidr = pod_cidr

    @abstractmethod
    def setup_node(self, node: NsHandle, addr: NodeAddr) -> None:
        """Prepare a node namespace (the calling thread is inside it)."""

    @abstractmethod
    def add_pod(self, pod: RtnlSocket, node: NsHandle, addr: NodeAddr, pod_ip: str, host_if: str) -> None:
        """Give a new pod namespace its eth0 (the calling thread is inside the pod's netns;
        `pod` is a netlink socket of that namespace, requests deferred on it must be sent
        with the plugin's first batch there; `node.rtnl` is used holding `node.lock`)."""

    def owned_tables(self) -> dict[str, str]:
        """The nftables tables the plugin keeps on each node ("family name" → the script
        that writes it). The cluster writes them, through its netfilter layer, once the
        nodes are made and again if someone else changes the node's ruleset (the plugin
        itself runs no nft)."""
        return {}

    @abstractmethod
    def del_pod(self, node: NsHandle, host_if: str, pod_ip: str) -> None:
        """Remove a pod's link from its node."""

    def pod_link_up(self, node: NsHandle, host_if: str, pod_ip: str) -> None:
        """The node end of a pod's veth came back up after a fault: put back what the
        kernel removed when it went down (routes through it: fib_disable_ip). A plugin
        whose node end carries no routes has nothing to do."""
        return None

    def node_interfaces(self) -> dict[str, str]:
        """The plugin's own interfaces on every node, by name → what they are (for traces)."""
        return {}

    def repair_node(self, node: NsHandle, addr: NodeAddr) -> None:
        """Put back, idempotently, node state of the plugin's that the kernel drops with a
        link someone downed (neighbour entries go with it: neigh_ifdown). Called, holding
        `node.lock`, after drift repair has brought the node's links and routes back."""
        return None
