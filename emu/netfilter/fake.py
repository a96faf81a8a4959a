"""An in-memory nftables kernel with the real one's transaction semantics, for tests.

`FakeNft(kernel, netns).run(script)` parses the script (emu.netfilter.parse) and applies
it as ONE transaction, as nf_tables does with a netlink batch: every command sees the
effects of the ones before it; any error aborts the whole batch, leaving the ruleset as
it was, and raises CommandError(["nft", "-f", "-"], 1, nft-like message, netns).

The checks are the kernel's (nf_tables_api.c) and nft's own:
- deleting or flushing a missing table, chain or set, adding to a missing one: ENOENT;
- `table x { }` / `add table` create if missing, `create` fails if present (EEXIST);
- `add element` of a present key is a no-op if the data is the same, EEXIST if it differs
  or for `create element`; `delete element` of a missing key: ENOENT;
- element values must parse as the set's types, field for field (concatenations);
  prefixes and ranges need `flags interval`; interval elements may not overlap (EEXIST);
- a rule's `@set` must exist (`vmap @m` a verdict map, `map @m` a data map); `jump`/`goto`
  (in rules and verdict-map elements) must name an existing regular chain;
- deleting a chain with rules, or one still jumped to (by a rule or an element), or a set
  still used by a rule: EBUSY (nft(8): "the chain must not contain any rules or be used
  as jump target");
- at commit, a jump loop through chains or verdict maps: ELOOP.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from emu.errors import CommandError
from emu.netfilter.apply import Applier
from emu.netfilter.backend import NFT_ARGV
from emu.netfilter.parse import parse
from emu.netfilter.ruleset import Ruleset
from emu.netfilter.tables import TableState

log = logging.getLogger(__name__)


@dataclass
class _Namespace:
    tables: dict[tuple[str, str], TableState] = field(default_factory=dict)


class FakeKernel:
    """nftables rulesets by namespace name, with counts of transactions."""

    def __init__(self) -> None:
        self._spaces: dict[str, _Namespace] = {}
        self.transactions: Counter[str] = Counter()  # committed non-empty scripts, by netns
        self.failures: Counter[str] = Counter()  # aborted scripts, by netns

    def run(self, netns: str, script: str) -> None:
        space = self._spaces.setdefault(netns, _Namespace())
        try:
            commands = parse(script)
            if not commands:
                return
            applier = Applier(space.tables, script.split("\n"))
            for cmd in commands:
                applier.apply(cmd)
            applier.check_loops()
        except CommandError as e:
            self.failures[netns] += 1
            log.debug("fake nft in %s refused a transaction: %s", netns, e.stderr)
            raise CommandError(list(NFT_ARGV), 1, e.stderr, netns) from None
        space.tables = applier.tables
        self.transactions[netns] += 1

    def snapshot(self, netns: str) -> Ruleset:
        space = self._spaces.get(netns, _Namespace())
        return Ruleset(tuple(t.freeze() for _, t in sorted(space.tables.items())))

    def namespaces(self) -> Iterable[str]:
        return list(self._spaces)

    def backend(self, netns: str) -> FakeNft:
        return FakeNft(self, netns)


class FakeNft:
    """An NftBackend whose kernel is a FakeKernel."""

    def __init__(self, kernel: FakeKernel, netns: str) -> None:
        self.kernel = kernel
        self.netns = netns
        self.closed = False

    def run(self, script: str) -> None:
        if self.closed:
            raise CommandError(list(NFT_ARGV), 1, "Error: the nft context was closed", self.netns)
        self.kernel.run(self.netns, script)

    def close(self) -> None:
        self.closed = True

    def snapshot(self) -> Ruleset:
        return self.kernel.snapshot(self.netns)


def load(script: str, netns: str = "test") -> Ruleset:
    """The ruleset one script leaves in an empty namespace (CommandError if refused)."""
    kernel = FakeKernel()
    kernel.run(netns, script)
    return kernel.snapshot(netns)


__all__ = ["FakeKernel", "FakeNft", "Ruleset", "load"]
