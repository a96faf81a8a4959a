"""A live handle on one namespace: its fd and netlink sockets opened inside it."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from emu.dataplane import netns
from emu.dataplane.rtnl import Request, link_set
from emu.dataplane.rtnl_socket import RtnlSocket
from emu.errors import DataplaneError, KemuError


@dataclass
class NsHandle:
    """`ipr` and `rtnl` were opened inside the namespace, so they act there from any
    thread. `rtnl` (ours, fast, not thread-safe: use it holding `lock`) serves the
    per-pod path; `ipr` (pyroute2) the rest."""

    name: str
    fd: int
    ipr: IPRoute
    rtnl: RtnlSocket
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def open_here(name: str) -> NsHandle:
        """For a thread currently inside netns `name`."""
        return NsHandle(name, netns.open_fd(name), IPRoute(), RtnlSocket(name))

    _indexes: dict[str, int] = field(default_factory=dict)

    def index(self, ifname: str) -> int:
        """An interface's index (cached: only for interfaces that live as long as the node)."""
        if ifname not in self._indexes:
            found = self.ipr.link_lookup(ifname=ifname)
            if not found:
                raise LookupError(f"no interface {ifname} in {self.name}")
            self._indexes[ifname] = int(found[0])
        return self._indexes[ifname]

    def close(self) -> None:
        try:
            self.ipr.close()
        finally:
            self.rtnl.close()
            os.close(self.fd)


def write_sysctl_here(key: str, value: str) -> bool:
    """Set a per-namespace sysctl for the namespace the calling thread is in.

    /proc/sys/net resolves against the opening thread's namespace. Returns False if the
    key does not exist (e.g. bridge-nf-call-iptables without br_netfilter loaded).
    """
    p = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(p, "w") as f:
            f.write(value)
    except FileNotFoundError:
        return False
    return True


LO_INDEX = 1  # lo is always ifindex 1 in a netns


def mark_here(ipr: IPRoute, marker: str) -> None:
    """Bring `lo` up and tag it with kemu's ownership marker (read back by `kemu clean`)."""
    ipr.link("set", index=LO_INDEX, state="up", ifalias=marker)


def mark_request(marker: str) -> Request:
    """mark_here() as a request of ours, to send in a batch on a namespace's RtnlSocket."""
    return link_set(LO_INDEX, up=True, alias=marker)


class MarkerUnreadable(DataplaneError):
    """A namespace whose ownership marker could not be read: clean-up must leave it alone."""


def read_marker(name: str) -> str | None:
    """The marker on a namespace's `lo`; None if it has none (made by kemu, died before
    marking). Raises MarkerUnreadable when the namespace can't be entered or asked: clean-up
    fails closed, it never removes what it can't prove is ours."""
    try:
        with netns.entered(name):
            with IPRoute() as ipr:
                found = ipr.link_lookup(ifname="lo")
                links = ipr.get_links(found[0]) if found else []
                return links[0].get("IFLA_IFALIAS") if links else None
    except (OSError, NetlinkError, KemuError) as e:
        raise MarkerUnreadable(f"cannot read the ownership marker of netns {name}: {e}") from e
