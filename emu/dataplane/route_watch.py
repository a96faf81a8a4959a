"""Routes and links of a node that someone else deletes or downs, put back.

A node's own routes (other nodes' pod subnets, the Service range) and links (eth0, the
pod bridge) are fixed once the node is built: `snapshot` records them then. A socket in
the node's namespace joins the link and IPv4 route groups; a deleted route or a link of
the snapshot that goes down or away is reported, and `restore` re-adds what is missing.
Routes and links of pods come and go with the pods and are not watched. A deleted link
can't be rebuilt here (its peer went with it): `restore` says so, and the syncer keeps
reporting it.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emu.dataplane.handles import NsHandle
from emu.dataplane.netlink_watch import NetlinkWatch, attributes, messages, types_and_indexes
from emu.errors import DataplaneError

log = logging.getLogger(__name__)

NETLINK_ROUTE = 0
RTNLGRP_LINK = 1
RTNLGRP_IPV4_ROUTE = 7
RTM_NEWLINK, RTM_DELLINK, RTM_DELROUTE = 16, 17, 25
IFF_UP = 1
RT_TABLE_MAIN = 254
RTA_DST = 1
RTNH_F_ONLINK = 4


@dataclass(frozen=True)
class Route:
    dst: str  # "10.244.1.0/24"
    gateway: str | None
    oif: int | None
    onlink: bool = False  # the gateway is on the link without a connected route (an overlay's)


@dataclass(frozen=True)
class NodeNet:
    links: dict[int, str]  # ifindex → name, the links that must stay up
    routes: tuple[Route, ...]


def _route(r: Any) -> Route:
    """A pyroute2 route message as a Route (what snapshot records and restore compares)."""
    return Route(
        f"{r.get_attr('RTA_DST')}/{r['dst_len']}", r.get_attr("RTA_GATEWAY"), r.get_attr("RTA_OIF"), bool(r["flags"] & RTNH_F_ONLINK)
    )


def snapshot(h: NsHandle) -> NodeNet:
    """The node's links and its main-table routes other than connected ones."""
    with h.lock:
        links = {int(m["index"]): str(m.get_attr("IFLA_IFNAME")) for m in h.ipr.get_links() if m["index"] != 1}
        routes = []
        for r in h.ipr.get_routes(family=2, table=RT_TABLE_MAIN):
            if r.get_attr("RTA_PREFSRC") is not None or r["dst_len"] == 0:
                continue  # connected routes come back with their address; no default route
            routes.append(_route(r))
    return NodeNet(links, tuple(routes))


def restore(h: NsHandle, want: NodeNet) -> bool:
    """Bring the snapshot's links up and re-add its missing routes; True if anything was."""
    changed = False
    with h.lock:
        present = {int(m["index"]): m for m in h.ipr.get_links()}
        gone = [name for i, name in want.links.items() if i not in present]
        for i in want.links:
            if i in present and not present[i]["flags"] & IFF_UP:
                h.ipr.link("set", index=i, state="up")
                changed = True
        have = {_route(r) for r in h.ipr.get_routes(family=2, table=RT_TABLE_MAIN)}
        for r in want.routes:
            if r not in have and (r.oif is None or r.oif in present):
                kw: dict[str, Any] = {"gateway": r.gateway} if r.gateway else {}
                if r.onlink:
                    kw["flags"] = RTNH_F_ONLINK
                h.ipr.route("replace", dst=r.dst, oif=r.oif, **kw)
                changed = True
    if gone:
        raise DataplaneError(f"{h.name}: link(s) {', '.join(gone)} deleted by someone else; kemu can't rebuild them (recreate the cluster)")
    return changed


def node_filter(want: NodeNet) -> bytes:
    """Only what `_matters` can care about reaches the socket: route deletions and the
    messages about the node's own links. Without it every pod that comes up wakes the watch
    several times (its veth's creation, master, hairpin, carrier), 1,000 pods a few
    thousand wake-ups of Python while bring-up is CPU-bound."""
    return types_and_indexes((RTM_DELROUTE,), (RTM_NEWLINK, RTM_DELLINK), tuple(sorted(want.links)))


class RouteWatch:
    """Reports (namespace name) when a watched node loses a route or a link goes down."""

    def __init__(self, on_change: Callable[[str], None]) -> None:
        self._on_change = on_change
        self._want: dict[str, NodeNet] = {}
        self._watch = NetlinkWatch(NETLINK_ROUTE, (RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE), self._on_data, "kemu-route-watch")

    def watch(self, h: NsHandle, want: NodeNet) -> None:
        self._want[h.name] = want
        self._watch.watch(h.name, h.fd, node_filter(want))

    def close(self) -> None:
        self._watch.close()

    def _on_data(self, name: str, data: bytes | None) -> None:
        if data is None or any(self._matters(name, typ, body) for typ, body in messages(data)):
            self._on_change(name)

    def _matters(self, name: str, typ: int, body: bytes) -> bool:
        want = self._want[name]
        if typ in (RTM_NEWLINK, RTM_DELLINK) and len(body) >= 16:
            _family, _type, index, flags = struct.unpack_from("=BxHiI", body)
            return index in want.links and (typ == RTM_DELLINK or not flags & IFF_UP)
        if typ == RTM_DELROUTE and len(body) >= 12:
            dst_len, table = body[1], body[4]
            if table != RT_TABLE_MAIN:
                return False
            dst = attributes(body, 12).get(RTA_DST)  # after struct rtmsg
            prefix = ".".join(str(b) for b in dst) if dst and len(dst) == 4 else ""
            return any(r.dst == f"{prefix}/{dst_len}" for r in want.routes)
        return False
