"""`kemu fault`: links down and up, partitions, loss and rate on real links, delay refused
where the kernel has no netem; `kemu get faults`; `kemu fault clear` leaves the links as
they were."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import REPO
from tests.e2e.helpers import Running, kemu, netns_list, start, stop, topology_variant, wait_until

pytestmark = pytest.mark.e2e

NAME = "faults"


@pytest.fixture(scope="module")
def fc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    # Short node-lifecycle periods (kube's are 40 s and 300 s), longer than the other
    # tests keep a link down.
    path = topology_variant("trace.yaml", tmp_path_factory.mktemp(NAME), NAME, nodeMonitorGracePeriod="3s", podEvictionTimeout="12s")
    r = start(path, NAME)
    try:
        yield r
    finally:
        stop(r)


@pytest.fixture(autouse=True)
def cleared(fc: Running) -> Iterator[None]:
    yield
    kemu("--cluster", NAME, "fault", "clear")


def ips(fc: Running) -> dict[str, str]:
    pods = {k: p["status"]["podIP"] for k, p in fc.pods().items()}
    nodes = json.loads(kemu("--cluster", NAME, "get", "nodes", "-o", "json").stdout)["items"]
    for n in nodes:
        pods["node/" + n["metadata"]["name"]] = next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
    for h in json.loads(kemu("--cluster", NAME, "get", "hosts", "-o", "json").stdout)["items"]:
        pods["host/" + h["metadata"]["name"]] = h["status"]["addresses"][0]["address"]
    return pods


def received(src: str, dst: str, count: int = 3, interval: float = 0.2) -> int:
    """Echo replies `src` (`ns/pod`, `node/N`, `host/H`) gets from `dst` (an IP)."""
    who = ["-n", *src.split("/")] if not src.startswith(("node/", "host/")) else [src]
    cp = kemu("--cluster", NAME, "exec", *who, "--", "ping", "-c", str(count), "-i", str(interval), "-W", "2", dst, check=False, timeout=60)
    m = re.search(r"(\d+) received", cp.stdout)
    assert m, cp.stdout + cp.stderr
    return int(m.group(1))


def test_a_node_link_down_cuts_it_off_and_up_heals_it(fc: Running) -> None:
    a = ips(fc)
    web2 = next(ip for k, ip in a.items() if k.startswith("default/web-") and ip.startswith("10.244.1."))
    assert received("default/free", web2) == 3
    assert kemu("--cluster", NAME, "fault", "link", "node/node-2", "down").stdout.strip() == "fault link node/node-2 down on"
    assert received("default/free", web2) == 0 and received("host/client", a["node/node-2"]) == 0
    assert received("host/client", a["node/node-1"]) == 3  # the rest of the network is fine
    assert "LINK   node/node-2   down" in kemu("--cluster", NAME, "get", "faults").stdout
    kemu("--cluster", NAME, "fault", "link", "node/node-2", "up")
    assert received("default/free", web2) == 3  # the routes survived the cut
    assert kemu("--cluster", NAME, "get", "faults").stdout.strip() == "No faults."


def test_a_pod_link(fc: Running) -> None:
    a = ips(fc)
    web1 = next(ip for k, ip in a.items() if k.startswith("default/web-") and ip.startswith("10.244.0."))
    kemu("--cluster", NAME, "fault", "link", "default/free", "down")
    assert received("default/free", web1) == 0 and received("default/client", a["default/free"]) == 0
    kemu("--cluster", NAME, "fault", "clear", "default/free")
    assert received("default/free", web1) == 3


def test_a_partition_blocks_exactly_the_pairs_it_names(fc: Running) -> None:
    a = ips(fc)
    members = ["node/node-1", "node/node-2", "host/client", "host/other"]
    kemu("--cluster", NAME, "fault", "partition", "node/node-1", "--", "node/node-2,host/other")
    cut = {("node/node-1", "node/node-2"), ("node/node-1", "host/other")}
    for src in members:
        for dst in members:
            if src != dst:
                blocked = (src, dst) in cut or (dst, src) in cut
                # Allowed: some answer (a loaded machine may be late with one); blocked: none.
                got = received(src, a[dst], count=3, interval=0.1)
                assert (got == 0) if blocked else (got > 0), (src, dst, got)
    out = kemu("--cluster", NAME, "fault", "clear").stdout
    assert out.strip() == "fault partition node/node-1 -- node/node-2,host/other cleared"
    assert received("host/other", a["node/node-1"]) == 3


def test_loss_drops_that_share(fc: Running) -> None:
    a = ips(fc)
    web1 = next(ip for k, ip in a.items() if k.startswith("default/web-") and ip.startswith("10.244.0."))
    kemu("--cluster", NAME, "fault", "loss", "default/free", "10")
    got = received("default/free", web1, count=1000, interval=0.002)
    # 10% each way: a round trip is lost 19% of the time (σ ≈ 1.2 points over 1,000 echoes).
    lost = 100 * (1000 - got) / 1000
    assert abs(lost - 19) <= 5, lost
    kemu("--cluster", NAME, "fault", "loss", "default/free", "100")  # replaces the 10
    assert received("default/free", web1) == 0
    kemu("--cluster", NAME, "fault", "clear")
    assert received("default/free", web1) == 3


def test_rate_shapes_a_tcp_flow(fc: Running) -> None:
    a = ips(fc)
    web = next(k for k in a if k.startswith("default/web-") and a[k].startswith("10.244.1."))
    server = subprocess.Popen(
        [*_kemu_argv(), "exec", "-n", "default", web.split("/")[1], "--", "iperf3", "-s", "-1", "-p", "5301"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    try:
        kemu("--cluster", NAME, "fault", "rate", "node/node-1", "20mbit")
        wait_until(lambda: _iperf_listening(web), 10, "iperf3 listening")
        out = kemu(
            "--cluster", NAME, "exec", "-n", "default", "free", "--", "iperf3", "-c", a[web], "-p", "5301", "-t", "3", "-J", timeout=60
        ).stdout
        bps = json.loads(out)["end"]["sum_received"]["bits_per_second"]
        assert abs(bps - 20e6) <= 2e6, bps  # within 10%
    finally:
        server.kill()
        server.wait()


def test_delay_needs_netem_and_bad_input_is_refused(fc: Running) -> None:
    cp = kemu("--cluster", NAME, "fault", "delay", "host/client", "10", check=False)
    if cp.returncode != 0:  # this kernel: no sch_netem
        assert cp.returncode == 1 and "sch_netem" in cp.stderr
        assert kemu("--cluster", NAME, "get", "faults").stdout.strip() == "No faults."
    for words, code, said in (
        (["loss", "default/free", "500"], 2, "percentage"),
        (["rate", "default/free", "fast"], 2, "tc's units"),
        (["link", "default/free", "sideways"], 2, "down or up"),
        (["partition", "node/node-1"], 2, "two groups"),
        (["loss", "default/nope", "5"], None, "not found"),
    ):
        cp = kemu("--cluster", NAME, "fault", *words, check=False)
        assert cp.returncode != 0 and said in cp.stderr, cp.stderr
        if code is not None:
            assert cp.returncode == code


def test_clear_leaves_no_fault_behind(fc: Running) -> None:
    kemu("--cluster", NAME, "fault", "loss", "host/client", "10")
    kemu("--cluster", NAME, "fault", "rate", "host/client", "50mbit")
    kemu("--cluster", NAME, "fault", "partition", "host/client", "--", "host/other")
    kemu("--cluster", NAME, "fault", "clear")
    for ns in (n for n in netns_list() if n == f"kemu-{NAME}" or n.startswith(f"kemu-{NAME}.")):
        tables = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"], capture_output=True, text=True).stdout
        assert "kemu-fault" not in tables, ns
        qdiscs = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "show"], capture_output=True, text=True).stdout
        assert "tbf" not in qdiscs, ns


SLEEPER = """
apiVersion: v1
kind: Pod
metadata: {name: sleeper, labels: {app: sleeper}}
spec:
  nodeName: node-1
  containers: [{name: s, command: [sleep, "3600"]}]
"""


def test_kill_a_container_and_the_kubelet_restarts_it(fc: Running, tmp_path: pytest.TempPathFactory) -> None:
    def restarts(pod: str) -> int:
        doc = json.loads(kemu("--cluster", NAME, "get", "pod", pod, "-o", "json").stdout)
        return int(doc["status"]["containerStatuses"][0]["restartCount"])

    kemu("--cluster", NAME, "apply", "-f", "-", input=SLEEPER)
    try:
        wait_until(lambda: fc.pods().get("default/sleeper", {}).get("status", {}).get("phase") == "Running", 30, "sleeper running")
        out = kemu("--cluster", NAME, "fault", "kill", "default/sleeper").stdout
        assert out.startswith("container s of pod default/sleeper killed (pid ")
        wait_until(lambda: restarts("sleeper") == 1, 20, "the killed process restarted")  # restartPolicy Always, no back-off the first time
        web = next(k for k in fc.pods() if k.startswith("default/web-"))
        before = restarts(web.split("/")[1])
        kemu("--cluster", NAME, "fault", "kill", web, "-c", "netexec")  # a stand-in container
        wait_until(lambda: restarts(web.split("/")[1]) == before + 1, 20, "the stand-in container restarted")
        assert "Killed" in kemu("--cluster", NAME, "get", "events", "-o", "json").stdout
        bad = kemu("--cluster", NAME, "fault", "kill", web, "-c", "nope", check=False)
        assert bad.returncode == 2 and "pick one with -c" in bad.stderr
    finally:
        kemu("--cluster", NAME, "delete", "pod", "sleeper", "--grace-period", "0", check=False)


def node_ready() -> dict[str, str]:
    nodes = json.loads(kemu("--cluster", NAME, "get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready") for n in nodes}


def ready_endpoints() -> dict[str, set[str]]:
    """Every Service's ready endpoints, by the node they are on."""
    out: dict[str, set[str]] = {}
    for sl in json.loads(kemu("--cluster", NAME, "get", "endpointslices", "-A", "-o", "json").stdout)["items"]:
        svc = sl["metadata"]["labels"].get("kubernetes.io/service-name", "")
        for e in sl.get("endpoints") or []:
            if e["conditions"].get("ready"):
                out.setdefault(e.get("nodeName", ""), set()).add(svc)
    return out


def test_a_cut_off_node_turns_not_ready_and_heals(fc: Running) -> None:
    served = ready_endpoints()["node-2"]
    assert {"web", "solo-local", "self"} <= served
    kemu("--cluster", NAME, "fault", "link", "node/node-2", "down")
    wait_until(lambda: node_ready()["node-2"] == "Unknown", 20, "node-2 NotReady")
    assert "NotReady" in kemu("--cluster", NAME, "get", "nodes").stdout
    assert "node-2" not in ready_endpoints()  # no Service sends anything there any more
    kemu("--cluster", NAME, "fault", "link", "node/node-2", "up")  # before the eviction timeout
    wait_until(lambda: node_ready()["node-2"] == "True", 20, "node-2 Ready again")
    wait_until(lambda: ready_endpoints().get("node-2") == served, 20, "node-2's endpoints ready again")
    taints = json.loads(kemu("--cluster", NAME, "get", "node", "node-2", "-o", "json").stdout)["spec"].get("taints") or []
    assert not [t for t in taints if t["key"] == "node.kubernetes.io/unreachable"]


def test_a_cut_off_node_s_pods_are_evicted_and_move(fc: Running) -> None:
    # Last in the module: its evictions leave node-2 without the test pods.
    def web_endpoints() -> list[tuple[str, bool]]:
        doc = json.loads(kemu("--cluster", NAME, "get", "endpointslices", "-o", "json").stdout)["items"]
        eps = [e for s in doc if s["metadata"]["labels"].get("kubernetes.io/service-name") == "web" for e in s["endpoints"]]
        return [(e["nodeName"], e["conditions"]["ready"]) for e in eps]

    assert ("node-2", True) in web_endpoints()
    kemu("--cluster", NAME, "fault", "link", "node/node-2", "down")
    wait_until(lambda: node_ready()["node-2"] == "Unknown", 20, "node-2 NotReady")
    wait_until(lambda: sorted(web_endpoints()) == [("node-1", True), ("node-1", True)], 60, "web's pods evicted and recreated on node-1")
    assert "default/solo" not in fc.pods()  # a bare pod is evicted and nothing brings it back
    reasons = kemu("--cluster", NAME, "get", "events", "-o", "json").stdout
    assert "NodeNotReady" in reasons and "TaintManagerEviction" in reasons
    kemu("--cluster", NAME, "fault", "link", "node/node-2", "up")
    wait_until(lambda: node_ready()["node-2"] == "True", 20, "node-2 Ready again")


def _kemu_argv() -> list[str]:
    return [sys.executable, "-m", "emu.cli.main", "--cluster", NAME]


def _iperf_listening(pod: str) -> bool:
    cp = kemu("--cluster", NAME, "exec", "-n", "default", pod.split("/")[1], "--", "ss", "-ltn", check=False)
    return ":5301" in cp.stdout
