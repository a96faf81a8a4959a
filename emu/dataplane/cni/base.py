"""The contract a pod-network plugin fulfils (the role of a CNI plugin plus its node agent)."""

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
