"""The scapy helper: `python -m emu.api.scapy_child NETNS`, one per member in use.

It moves into the member's network namespace (with its /etc files, as `kemu exec`),
*then* imports scapy, so scapy's routes, interfaces and ARP cache are the member's. It
serves requests from the API (emu/api/scapy_link.py) on stdin until stdin closes, each
on a thread of its own so a background sniff and an sr1 can run at once; answers go to
the original stdout (fd 1 is pointed at stderr: nothing scapy prints can corrupt them).

Requests (dicts; frames and packets as emu/api/scapy_wire.py makes them):
  {"id", "op": "sr1",   "pkts": [layers…], "timeout", "iface", "kwargs"}  → WirePacket | None
  {"id", "op": "send",  "pkts": [layers…], "iface", "kwargs"}             → packets sent
  {"id", "op": "sniff", "filter", "count", "timeout", "iface"}             → [WirePacket…]
        (first an event {"id", "event": "started"} once the capture socket is open)
  {"id", "op": "stop",  "target": id}                                      → True
Answers: {"id", "ok": True, "result": …} or {"id", "ok": False, "error": TEXT}.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import traceback
from typing import IO, Any

from emu.api.scapy_wire import build, read_frame, to_wire, write_frame
from emu.dataplane import netns

L3_CLASSES = ("IP", "IPv6")


def fill_source(pkt: Any) -> None:
    """An IP source the caller left out: the address the kernel would pick for the
    destination. (Scapy's own guess is 0.0.0.0 where the address is a /32 and the
    gateway is reached over the link, as in every pod.)"""
    from scapy.layers.inet import IP

    ip = pkt.getlayer(IP)
    if ip is None or "src" in ip.fields:
        return
    dst = ip.dst if isinstance(ip.dst, str) else next(iter(ip.dst), None)
    if not dst:
        return
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((str(dst), 9))  # a route lookup; nothing is sent
        ip.src = s.getsockname()[0]
    except OSError:
        pass  # no route: scapy says so when it sends
    finally:
        s.close()


def fix_routes() -> None:
    """Scapy's routes with no source address (a /32 pod address, a gateway over the
    link) get the interface's: what the kernel uses, and what scapy matches answers by."""
    from scapy.config import conf
    from scapy.interfaces import resolve_iface

    fixed = []
    for net, mask, gw, iface, addr, metric in conf.route.routes:
        if addr == "0.0.0.0":
            try:
                addr = resolve_iface(iface).ip or addr
            except Exception:  # noqa: BLE001 - an interface scapy can't name keeps its route as it was
                pass
        fixed.append((net, mask, gw, iface, addr, metric))
    conf.route.routes = fixed
    conf.route.invalidate_cache()


def _stop(sniffer: Any, join: bool) -> None:
    """Stop a capture that may have ended meanwhile (by its count, or another stop)."""
    from scapy.error import Scapy_Exception

    if sniffer.running:
        try:
            sniffer.stop(join=join)
        except Scapy_Exception:
            pass  # it had just ended


class Server:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.write_lock = threading.Lock()
        self.sniffers: dict[int, Any] = {}  # id → AsyncSniffer
        self.lock = threading.Lock()

    def reply(self, msg: dict[str, Any]) -> None:
        with self.write_lock:
            write_frame(self.out, msg)

    def serve(self, req: dict[str, Any]) -> None:
        rid = req.get("id", 0)
        try:
            result = getattr(self, "op_" + str(req.get("op")))(req)
        except Exception as e:  # noqa: BLE001 - every failure goes back to the caller, as text
            detail = traceback.format_exc(limit=3)
            sys.stderr.write(detail)
            self.reply({"id": rid, "ok": False, "error": f"{type(e).__name__}: {e}"})
        else:
            self.reply({"id": rid, "ok": True, "result": result})

    @staticmethod
    def _packets(req: dict[str, Any]) -> tuple[Any, bool]:
        """(the packet or packets, whether they go out at layer 2)."""
        pkts = [build(layers) for layers in req["pkts"]]
        for p in pkts:
            fill_source(p)
        l2 = type(pkts[0]).__name__ not in L3_CLASSES
        return (pkts[0] if len(pkts) == 1 else pkts), l2

    def op_sr1(self, req: dict[str, Any]) -> Any:
        from scapy.sendrecv import sr1, srp1

        pkt, l2 = self._packets(req)
        kw = dict(req.get("kwargs") or {})
        if l2 and req.get("iface"):
            kw["iface"] = req["iface"]
        ans = (srp1 if l2 else sr1)(pkt, timeout=req.get("timeout"), verbose=0, **kw)
        return None if ans is None else to_wire(ans)

    def op_send(self, req: dict[str, Any]) -> int:
        from scapy.sendrecv import send, sendp

        pkt, l2 = self._packets(req)
        kw = dict(req.get("kwargs") or {})
        if l2 and req.get("iface"):
            kw["iface"] = req["iface"]
        sent = (sendp if l2 else send)(pkt, verbose=0, return_packets=True, **kw)
        return len(sent) if sent is not None else 0

    def op_sniff(self, req: dict[str, Any]) -> list[Any]:
        from scapy.config import conf
        from scapy.sendrecv import AsyncSniffer

        # The sockets are open before "started": nothing sent after the caller hears it is
        # missed. One per interface (default: every one the member has), so each packet
        # says where it was seen (`sniffed_on`).
        names = [req["iface"]] if req.get("iface") else [n for _, n in socket.if_nameindex()]
        socks = {conf.L2listen(iface=n, filter=req.get("filter")): n for n in names}
        sniffer = AsyncSniffer(opened_socket=socks, count=int(req.get("count") or 0), store=True)
        with self.lock:
            self.sniffers[req["id"]] = sniffer
        try:
            sniffer.start()
            self.reply({"id": req["id"], "event": "started"})
            sniffer.join(req.get("timeout"))  # AsyncSniffer takes no timeout of its own
            _stop(sniffer, join=True)
            return [to_wire(p) for p in (sniffer.results or [])]
        finally:
            with self.lock:
                self.sniffers.pop(req["id"], None)
            for sock in socks:
                sock.close()

    def op_stop(self, req: dict[str, Any]) -> bool:
        with self.lock:
            sniffer = self.sniffers.get(req["target"])
        if sniffer is not None:
            _stop(sniffer, join=False)
        return True

    def stop_all(self) -> None:
        with self.lock:
            sniffers = list(self.sniffers.values())
        for s in sniffers:
            _stop(s, join=False)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m emu.api.scapy_child NETNS\n")
        return 2
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, not into the frames
    sys.stdout = sys.stderr
    server = Server(out)
    try:
        netns.enter_process(argv[0])
        # Only now: scapy reads this namespace's routes at import. All of it: every layer,
        # so the caller's classes are found by name.
        import scapy.all  # noqa: F401
        from scapy.config import conf

        conf.verb = 0
        fix_routes()
    except Exception as e:  # noqa: BLE001 - the caller says why it could not start
        server.reply({"id": 0, "ok": False, "error": f"{type(e).__name__}: {e}"})
        return 1
    server.reply({"id": 0, "event": "ready", "pid": os.getpid()})
    inp = sys.stdin.buffer
    while True:
        req = read_frame(inp)
        if req is None:  # the caller is gone or done
            break
        threading.Thread(target=server.serve, args=(req,), name=f"req-{req.get('id')}", daemon=True).start()
    server.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
