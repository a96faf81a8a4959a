"""The netfilter a node's planes talk to, in one injectable object: nft transactions, the
iptables-restore the iptables proxy writes with, and conntrack entry deletion.

`Netfilter()` is the machine's; tests pass a `Netfilter` whose parts are fakes
(emu.netfilter.fake.FakeKernel.backend for nft), so the proxy, the policy plane and the
host ports run unchanged without root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from emu.dataplane.run import run
from emu.errors import CommandError
from emu.netfilter.backend import NftBackend, open_backend
from emu.netfilter.render import script
from emu.netfilter.transaction import AddTable, DeleteTable, TableDef, Transaction

IptablesRestore = Callable[[str, str], None]  # (netns, iptables-restore input)
ConntrackDelete = Callable[[str, list[str]], None]  # (netns, conntrack -D filter arguments)


def iptables_restore(netns_name: str, text: str) -> None:
    """One iptables-restore transaction (all tables in `text` replaced at once)."""
    run(["iptables-restore", "-w", "5"], netns_name=netns_name, input=text)


def conntrack_delete(netns_name: str, args: list[str]) -> None:
    """Delete the conntrack entries matching `args` (`conntrack -D`)."""
    # Exit code 1 means "0 flow entries deleted": not a failure.
    cp = run(["conntrack", "-D", *args], netns_name=netns_name, check=False, timeout=10)
    if cp.returncode not in (0, 1):
        raise CommandError(["conntrack", "-D", *args], cp.returncode, cp.stderr, netns_name)


@dataclass(frozen=True)
class Netfilter:
    nft: Callable[[str], NftBackend] = open_backend  # a backend bound to a namespace
    iptables_restore: IptablesRestore = iptables_restore
    conntrack_delete: ConntrackDelete = conntrack_delete


def drop_table(family: str, name: str) -> str:
    """An nft script deleting a table whether or not it exists (one transaction)."""
    return script(Transaction(family, name, (AddTable(TableDef(family, name)), DeleteTable())))
