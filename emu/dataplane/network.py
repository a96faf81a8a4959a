"""The network object: realises an address plan as namespaces, links and routes.

As in Mininet, the topology is data and this object builds it; the pod-network plugin
is passed in as a class. Unlike Mininet, no shell runs per node: namespaces are made
with unshare/bind-mount and configured over netlink (pods: our own rtnl module, a few
batched datagrams each; nodes: pyroute2), which is what makes 1000 pods take seconds
rather than a minute.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

from emu.controllers.ipam import AddressPlan, NodeAddr
from emu.dataplane import names, netns
from emu.dataplane.cni.base import CNIPlugin
from emu.dataplane.handles import NsHandle, mark_here, mark_request
from emu.dataplane.ownership import Record
from emu.dataplane.rtnl_socket import RtnlSocket
from emu.errors import DataplaneError

log = logging.getLogger(__name__)

SWITCH_BRIDGE = "br0"


class Network:
    def __init__(self, cluster: str, plan: AddressPlan, cni_class: type[CNIPlugin], pod_cidr: str, record: Record) -> None:
        self.cluster = cluster
        self.plan = plan
        self.cni = cni_class(plan, pod_cidr)
        self.record = record
        self.marker = record.data["marker"]
        self.switch: NsHandle | None = None
        self.nodes: dict[str, NsHandle] = {}
        self.hosts: dict[str, NsHandle] = {}
        self.pods: dict[str, tuple[str, str, str, str]] = {}  # key → (netns, node, host_if, ip)
        self._lock = threading.Lock()

    # --- the node network -------------------------------------------------------------

    def build(self) -> None:
        made = netns.ensure_run_dir()
        if made:
            self.record.update(made_run_netns=made)
        sw = names.switch_ns(self.cluster)
        members = [names.member_ns(self.cluster, n.name) for n in self.plan.nodes]
        members += [names.member_ns(self.cluster, h.name) for h in self.plan.hosts]
        self.record.add_netns([sw, *members])
        with netns.created(sw):
            self.switch = NsHandle.open_here(sw)
            mark_here(self.switch.ipr, self.marker)
            self.switch.ipr.link("add", ifname=SWITCH_BRIDGE, kind="bridge")
            self.switch.ipr.link("set", index=self.switch.index(SWITCH_BRIDGE), state="up")
        for n in self.plan.nodes:
            self.nodes[n.name] = self._member(n.name, n.ip, n.prefixlen, functools.partial(self._setup_node, n))
        for h in self.plan.hosts:
            self.hosts[h.name] = self._member(h.name, h.ip, h.prefixlen, None)

    def _setup_node(self, addr: NodeAddr, h: NsHandle) -> None:
        self.cni.setup_node(h, addr)

    def add_switch_address(self, ip: str, prefixlen: int) -> None:
        """An address of the node network's own (its router's, the data centre's DNS)."""
        assert self.switch is not None
        with self.switch.lock:
            self.switch.ipr.addr("add", index=self.switch.index(SWITCH_BRIDGE), address=ip, prefixlen=prefixlen)

    def _member(self, name: str, ip: str, prefixlen: int, then: Callable[[NsHandle], None] | None) -> NsHandle:
        """A node or external host: a namespace with eth0 on the switch."""
        assert self.switch is not None
        ns = names.member_ns(self.cluster, name)
        port = names.switch_port(name)
        with netns.created(ns):
            h = NsHandle.open_here(ns)
            mark_here(h.ipr, self.marker)
            h.ipr.link("add", ifname="eth0", kind="veth", peer={"ifname": port, "net_ns_fd": self.switch.fd})
            with self.switch.lock:
                self.switch.ipr.link("set", index=self.switch.index(port), master=self.switch.index(SWITCH_BRIDGE), state="up")
            eth0 = h.index("eth0")
            h.ipr.addr("add", index=eth0, address=ip, prefixlen=prefixlen)
            h.ipr.link("set", index=eth0, state="up")
            if then is not None:
                then(h)
        return h

    # --- pods --------------------------------------------------------------------------

    def add_pod(self, key: str, node: str, ip: str, inside: Callable[[], None] | None = None) -> str:
        """Create a pod's namespace and wire it; `inside` runs in the new namespace
        (the workload server opens the pod's sockets there). Returns the netns name."""
        namespace, pod = key.split("/", 1)
        ns = names.pod_ns(self.cluster, namespace, pod)
        host_if = names.pod_host_if(namespace, pod)
        node_h = self.nodes[node]
        try:
            with netns.created(ns):
                sock = RtnlSocket(ns)
                try:
                    sock.defer(mark_request(self.marker))  # sent with the plugin's first batch
                    self.cni.add_pod(sock, node_h, self.plan.node(node), ip, host_if)
                finally:
                    sock.close()
                if inside is not None:
                    inside()
        except BaseException:
            # Half-made pod: cut its link and unpin it before reporting the failure.
            self.cni.del_pod(node_h, host_if, ip)
            netns.delete(ns)
            raise
        with self._lock:
            self.pods[key] = (ns, node, host_if, ip)
        return ns

    def remove_pod(self, key: str, cut_link: bool = True) -> str | None:
        with self._lock:
            entry = self.pods.pop(key, None)
        if entry is None:
            return None
        ns, node, host_if, ip = entry
        if cut_link:
            # Deleting the veth cuts the pod off at once, even while something still pins
            # the netns. Each deletion waits for an RCU grace period (~30 ms), so a whole
            # teardown skips it and lets the kernel free namespaces in batches.
            self.cni.del_pod(self.nodes[node], host_if, ip)
        netns.delete(ns)
        return ns

    def teardown(self) -> None:
        """Unpin every namespace this network made (the kernel frees links with them)."""
        errors = []
        for key in list(self.pods):
            try:
                self.remove_pod(key, cut_link=False)
            except Exception as e:  # noqa: BLE001 - keep unwinding, report at the end
                errors.append(f"pod {key}: {e}")
        handles = [*self.hosts.values(), *self.nodes.values()]
        if self.switch is not None:
            handles.append(self.switch)
        for h in handles:
            try:
                h.close()
            except Exception:  # noqa: BLE001
                pass
            netns.delete(h.name)
        self.hosts.clear()
        self.nodes.clear()
        self.switch = None
        if errors:
            raise DataplaneError("teardown: " + "; ".join(errors))
