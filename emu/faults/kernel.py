"""Faults in the kernel: each one a small, removable change on a link or on the switch.

- link down/up: the FAR end of the member's veth goes down (the switch port of a node or
  host, the node-side end of a pod's veth). The member's own eth0 then has no carrier:
  traffic stops both ways, while its addresses and routes stay — an admin-down eth0
  would make the kernel delete its routes (fib_disable_ip on NETDEV_DOWN), and kemu's
  route repair would fight the fault.
- loss: netdev tables on the ingress hooks of both ends (every frame, ARP included):
  `numgen random` drops that share of what arrives, each way.
- rate, delay: a root qdisc on both ends (each shapes the direction leaving it): tbf for
  rate; netem for delay, which this kernel may lack (said so, with tc's words).
- partition: `table bridge kemu-fault` in the switch's namespace drops frames between the
  two groups' switch ports, in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass

from emu.dataplane.run import run
from emu.errors import KemuError
from emu.netfilter.kernel import drop_table
from emu.netfilter.render import script
from emu.netfilter.ruleset import Chain
from emu.netfilter.transaction import TableDef, replace_table, rule

TABLE = "kemu-fault"
LOSS_SCALE = 10000  # numgen's modulus: loss in hundredths of a percent
TBF_LATENCY = "50ms"  # how long a packet may wait in the shaper before it is dropped


@dataclass(frozen=True)
class Link:
    """A member's link: its own end and the far end, each a (namespace, interface)."""

    netns: str
    ifname: str
    far_netns: str
    far_ifname: str


def set_link(link: Link, up: bool) -> None:
    run(["ip", "link", "set", "dev", link.far_ifname, "up" if up else "down"], netns_name=link.far_netns)


def loss_table(name: str, ifname: str, percent: float) -> TableDef:
    share = round(percent * LOSS_SCALE / 100)
    # numgen's values are 0 … LOSS_SCALE-1: "< LOSS_SCALE" is out of range for nft; all is all.
    drop = rule("drop") if share >= LOSS_SCALE else rule("numgen random mod", str(LOSS_SCALE), "<", str(share), "drop")
    return TableDef(
        "netdev",
        name,
        chains=(Chain("frames-in", (drop,), "filter", "ingress", 0, "accept", device=ifname),),
        comment="kemu fault: loss",
    )


def set_loss(link: Link, percent: float | None) -> None:
    """Loss on the link's two ingress hooks: a frame is lost as on a wire, after it left.
    (Dropping at egress instead hands the sender an error, ENOBUFS, and TCP retries at
    once rather than after a timeout.) The far end's namespace holds one table per link."""
    for ns, name, dev in ((link.netns, TABLE, link.ifname), (link.far_netns, f"{TABLE}-{link.far_ifname}", link.far_ifname)):
        if percent is None:
            run(["nft", "-f", "-"], netns_name=ns, input=drop_table("netdev", name), check=False)
        else:
            run(["nft", "-f", "-"], netns_name=ns, input=script(replace_table(loss_table(name, dev, percent))))


def tbf_args(bits: int) -> list[str]:
    # The bucket must hold at least one timer tick's worth (rate/HZ, HZ ≤ 1000) and a full
    # frame; 10 ms of the rate is both.
    burst = max(bits // 8 // 100, 5000)
    return ["tbf", "rate", f"{bits}bit", "burst", str(burst), "latency", TBF_LATENCY]


def set_qdisc(link: Link, qdisc: list[str] | None) -> None:
    """A root qdisc on both ends (None: remove them)."""
    for ns, dev in ((link.netns, link.ifname), (link.far_netns, link.far_ifname)):
        if qdisc is None:
            run(["tc", "qdisc", "del", "dev", dev, "root"], netns_name=ns, check=False)
            continue
        cp = run(["tc", "qdisc", "replace", "dev", dev, "root", *qdisc], netns_name=ns, check=False)
        if cp.returncode != 0:
            said = cp.stderr.strip().removeprefix("Error: ")
            if qdisc[0] == "netem" and "unknown" in said.lower():
                raise KemuError(f"delay needs the kernel's sch_netem module, which this kernel lacks (tc: {said})")
            raise KemuError(f"tc qdisc {qdisc[0]} on {dev}: {said}")


def partition_table(groups: list[tuple[list[str], list[str]]]) -> TableDef:
    """Drop frames between each pair of groups of switch ports, both ways."""
    rules = []
    for a, b in groups:
        sa, sb = ("{ " + ", ".join(f'"{p}"' for p in g) + " }" for g in (a, b))
        rules += [rule("iifname", sa, "oifname", sb, "drop"), rule("iifname", sb, "oifname", sa, "drop")]
    return TableDef(
        "bridge",
        TABLE,
        chains=(Chain("forward", tuple(rules), "filter", "forward", -200, "accept"),),
        comment="kemu fault: partitions",
    )


def set_partitions(switch_netns: str, groups: list[tuple[list[str], list[str]]]) -> None:
    if not groups:
        run(["nft", "-f", "-"], netns_name=switch_netns, input=drop_table("bridge", TABLE), check=False)
    else:
        run(["nft", "-f", "-"], netns_name=switch_netns, input=script(replace_table(partition_table(groups))))
