"""`kemu capture`: tcpdump in several namespaces at once, merged into one pcap or one
labelled text stream, stopped cleanly, and nothing left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import REPO
from tests.e2e.helpers import TOPOLOGIES, Running, kemu, netns_list, start, stop

pytestmark = pytest.mark.e2e

NAME = "capture"


@pytest.fixture(scope="module")
def cap() -> Iterator[Running]:
    r = start(os.path.join(TOPOLOGIES, "capture.yaml"), NAME)
    try:
        yield r
    finally:
        stop(r)


def tcpdumps_in_cluster() -> list[int]:
    """tcpdump processes living in one of the cluster's network namespaces."""
    inodes = {os.stat(f"/run/netns/{n}").st_ino for n in netns_list() if n == f"kemu-{NAME}" or n.startswith(f"kemu-{NAME}.")}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            if comm == "tcpdump" and os.stat(f"/proc/{pid}/ns/net").st_ino in inodes:
                found.append(int(pid))
        except OSError:
            continue  # gone meanwhile
    return found


@pytest.fixture(autouse=True)
def nothing_left(cap: Running) -> Iterator[None]:
    yield
    deadline = time.monotonic() + 5
    while tcpdumps_in_cluster() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not tcpdumps_in_cluster(), "kemu capture left tcpdump running"


class Capturing:
    """`kemu capture …` in the background, until it says it listens; always ended."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emu.cli.main", "--cluster", NAME, "capture", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.proc.stderr is not None
        self.first = self.proc.stderr.readline()  # "kemu capture: listening on …", or an error
        if "listening on" not in self.first:
            self.proc.kill()
            _out, err = self.proc.communicate()
            raise AssertionError(f"kemu capture did not start: {self.first}{err}")

    def finish(self, interrupt: bool = True, timeout: float = 15) -> tuple[int, str, str]:
        if interrupt:
            self.proc.send_signal(signal.SIGINT)  # as Ctrl-C
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, self.first + err

    def __enter__(self) -> Capturing:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def mac(c: Running, target: str) -> str:
    # `ip`, not /sys/class/net: sysfs shows the namespace that mounted it, not the pod's.
    return c.exec(target, "ip", "-br", "link", "show", "eth0").stdout.split()[2]


def test_a_service_connection_end_to_end(cap: Running, tmp_path: os.PathLike[str]) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    server = next(k for k, p in cap.pods().items() if p["metadata"]["labels"].get("app") == "web")
    server_ip, client_ip = cap.ip(server), cap.ip("default/client")
    cluster_ip = json.loads(kemu("--cluster", NAME, "get", "svc", "web", "-o", "json").stdout)["spec"]["clusterIP"]
    client_mac, server_mac = mac(cap, "default/client"), mac(cap, server)
    pcap = os.path.join(tmp_path, "svc.pcap")
    with Capturing(
        "default/client", "node/node-1", "node/node-2", server, "-w", pcap, "tcp", "port", "80", "or", "tcp", "port", "8080"
    ) as c:
        for _ in range(3):
            assert cap.curl("default/client", f"http://{cluster_ip}/hostname") == server.split("/")[1]
        time.sleep(0.2)
        rc, _, err = c.finish()
    assert rc == 0, err
    for label in ("default/client", "node/node-1", "node/node-2", server):
        line = next(x for x in err.splitlines() if x.startswith(f"kemu capture: {label} (eth0): "))
        assert ": 0 packets written" not in line, line  # every target contributed
        assert line.endswith(" 0 dropped by kernel"), line

    packets = rdpcap(pcap)
    times = [float(p.time) for p in packets]
    assert times == sorted(times), "the merged capture is not in time order"
    syns = [p for p in packets if TCP in p and p[TCP].flags == "S" and p[IP].src == client_ip]
    # The client's SYN leaves its eth0 for the ClusterIP...
    sent = [p for p in syns if p[Ether].src == client_mac]
    assert sent and all(p[IP].dst == cluster_ip and p[TCP].dport == 80 for p in sent)
    # ...and reaches the server pod's eth0 DNATed to the pod IP and target port.
    got = [p for p in syns if p[Ether].dst == server_mac]
    assert len(got) == len(sent) == 3, (server_mac, client_mac, [p.summary() for p in syns])
    assert all(p[IP].dst == server_ip and p[TCP].dport == 8080 for p in got)
    # In between, both nodes' eth0 carried it (pod IP to pod IP over the node network).
    assert len([p for p in syns if p[IP].dst == server_ip]) == 3 * 3  # node-1, node-2, the pod
    assert times[0] <= float(sent[0].time) <= float(got[0].time)


def test_count_stops_the_capture_and_lines_say_their_target(cap: Running) -> None:
    server_ip = next(p["status"]["podIP"] for p in cap.pods().values() if p["metadata"]["labels"].get("app") == "web")
    with Capturing("default/client", "node/node-1", "-c", "6", "icmp") as c:
        cap.exec("default/client", "ping", "-c", "5", "-i", "0.2", server_ip)
        rc, out, err = c.finish(interrupt=False)
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 6, out
    assert {ln.split()[1] for ln in lines} == {"default/client", "node/node-1"}
    assert all("ICMP echo" in ln for ln in lines)
    written = [int(x.split(": ")[2].split()[0]) for x in err.splitlines() if "packets written" in x]
    assert sum(written) == 6, err


def test_a_bad_filter_is_tcpdumps_word_and_exit_2(cap: Running) -> None:
    cp = kemu("--cluster", NAME, "capture", "default/client", "node/node-1", "tcp", "port", "nope", check=False, timeout=30)
    assert cp.returncode == 2
    assert cp.stderr.strip() == "error: tcpdump in default/client: unknown port 'nope'", cp.stderr
    cp = kemu("--cluster", NAME, "capture", "node/node-9", check=False, timeout=30)
    assert cp.returncode == 2 and "node 'node-9' not found" in cp.stderr, cp.stderr
