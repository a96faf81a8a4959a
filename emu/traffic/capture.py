"""Packet capture with scapy, run *inside* a namespace.

Scapy caches the routes and interfaces it sees at import, so it must be imported in a
process that already lives in the target namespace: `capture()` starts
`python -m emu.traffic.capture NETNS IFACE FILTER COUNT TIMEOUT` there and reads JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from emu.dataplane import netns
from emu.errors import CommandError


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    proto: str
    sport: int
    dport: int
    flags: str
    icmp_type: int = -1
    icmp_code: int = -1


class Capture:
    """A capture running in the background: start it, send traffic, then `result()`."""

    def __init__(self, netns_name: str, iface: str, bpf: str, count: int = 1, timeout: float = 5.0) -> None:
        self.argv = [sys.executable, "-m", "emu.traffic.capture", netns_name, iface, bpf, str(count), str(timeout)]
        self.timeout = timeout
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The child says "ready" once its socket is open, so no packet is missed.
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.wait(5)
            raise CommandError(self.argv, self.proc.returncode, err, netns_name)

    def result(self) -> list[Packet]:
        out, err = self.proc.communicate(timeout=self.timeout + 10)
        if self.proc.returncode != 0:
            raise CommandError(self.argv, self.proc.returncode, err)
        return [Packet(**p) for p in json.loads(out or "[]")]


def _child(name: str, iface: str, bpf: str, count: int, timeout: float) -> int:
    netns.enter_process(name)
    from scapy.all import conf  # all of scapy: every layer, the platform's sockets
    from scapy.layers.inet import ICMP, IP, TCP, UDP  # where scapy.all's star-imports find them

    sock = conf.L2listen(iface=iface, filter=bpf)
    print("ready", flush=True)
    from scapy.all import sniff

    pkts = sniff(opened_socket=sock, count=count, timeout=timeout)
    out = []
    for p in pkts:
        if IP not in p:
            continue
        l4 = p[TCP] if TCP in p else p[UDP] if UDP in p else None
        out.append(
            {
                "src": p[IP].src,
                "dst": p[IP].dst,
                "proto": "TCP" if TCP in p else "UDP" if UDP in p else str(p[IP].proto),
                "sport": int(l4.sport) if l4 is not None else 0,
                "dport": int(l4.dport) if l4 is not None else 0,
                "flags": str(p[TCP].flags) if TCP in p else "",
                "icmp_type": int(p[ICMP].type) if ICMP in p else -1,
                "icmp_code": int(p[ICMP].code) if ICMP in p else -1,
            }
        )
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    sys.exit(_child(a[0], a[1], a[2], int(a[3]), float(a[4])))
