"""kemu's Python API: bring a cluster up, reach into its pods, nodes and hosts, send and
capture packets with scapy from inside them, change the cluster, ask the oracle.

    import emu
    from scapy.layers.inet import IP, TCP

    with emu.up("topo.yaml") as cluster:             # or emu.attach("name"): a running one
        a, b = cluster.pod("x/a"), cluster.pod("y/b")  # also cluster.node(…), cluster.host(…)
        a.run("curl -s http://web.y/hostname")          # CompletedProcess, run inside the pod
        ans = a.sr1(IP(dst=b.ip) / TCP(dport=80, flags="S"), timeout=2)   # sent from inside a
        cap = b.sniff_async(filter="tcp port 80", count=1, timeout=5)   # already listening
        a.send(IP(dst=b.ip) / TCP(dport=80, flags="S"))
        cap.join()                                      # scapy packets, captured inside b
        cluster.apply("extra.yaml")                     # a path or a YAML string (kemu apply -f)
        cluster.delete("networkpolicy", "deny", namespace="y")
        cluster.label("pod", "a", {"tier": "x"}, namespace="x")
        cluster.get("svc", "web", namespace="y")        # dicts shaped as `kemu get -o json`
        cluster.probe(); cluster.explain(a, b); cluster.trace(a, "web.y:80")

Everything needs root, as kemu does. Errors are kemu's (emu.errors): NotFoundError for a
pod, node, object or cluster that is not there, ValidationError for bad input (a
topology, a manifest, an argument), CommandError for a command that failed or timed out
(`run(check=True)`), ScapyError when scapy fails inside a member, KemuError otherwise.
The pytest plugin (emu/api/pytest_plugin.py) brings a cluster up per test module.
"""

from __future__ import annotations

import os

from emu.api import launch
from emu.api.cluster import Cluster
from emu.api.member import Member
from emu.api.scapy_link import ScapyError, SniffHandle

__all__ = ["Cluster", "Member", "ScapyError", "SniffHandle", "attach", "up"]

READY_TIMEOUT = 120.0  # as `kemu up`'s --ready-timeout


def up(path_or_yaml: str | os.PathLike[str], name: str | None = None, *, ready_timeout: float = READY_TIMEOUT) -> Cluster:
    """Bring a cluster up, as `kemu up FILE -d`, and return it once every pod is Ready
    (pods still not Ready after `ready_timeout` seconds are listed in `cluster.unready`,
    and logged). `path_or_yaml` is a topology file or its YAML text; `name` replaces
    the topology's metadata.name (so one file can run twice, or beside a running copy).

    Use the result as a context manager: the cluster is taken down when the block is
    left, also on an exception or Ctrl-C (or call `cluster.down()`; one still up when
    the program ends is taken down then). A failed or
    interrupted bring-up leaves nothing behind. Raises ValidationError for a topology
    with problems (all of them at once), KemuError when the name is taken or the
    cluster cannot come up.
    """
    src = launch.topology_source(path_or_yaml, name)
    try:
        cluster_name, unready = launch.up(src, ready_timeout)
    except BaseException:
        launch.discard(src)
        raise
    return Cluster(cluster_name, owned=True, source=src, unready=unready)


def attach(name: str | None = None) -> Cluster:
    """A cluster that is already running (started with `kemu up -d` or by another
    program): the one named, else the only one running (or $KEMU_CLUSTER). Leaving its
    `with` block does not take it down. Raises NotFoundError when there is none."""
    from emu.daemon.client import pick_cluster

    return Cluster(pick_cluster(name), owned=False)
