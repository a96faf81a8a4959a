"""A packet evaluator over a Ruleset: what a node's nftables does to one packet.

Given a hook and a packet it walks the base chains of that hook (tables of family ip and
inet) in priority order, follows jumps, gotos, returns and verdict maps, applies marks
and NAT, and returns the verdict and the path (table, chain, rule index, rule text) —
"a tracer walks the rendered model". `walk()` chains the hooks a packet meets in a node:
prerouting → input (to a local address) or forward → postrouting; for the node's own
packets output → postrouting, and, when they are for a local address, back in through
lo: prerouting → input (where nat chains do not run again: the connection's bindings,
or null bindings, were set up on the way out).

Kernel behaviour modelled (net/netfilter/nf_tables_core.c, nf_nat_core.c):
- `accept` ends a base chain only; the next base chain of the hook still sees the
  packet; `drop`/`reject` end everything; falling off a base chain applies its policy;
- `goto` does not return to its caller: the end of the chain returns to the last `jump`;
- nat chains see only a connection's first packet (ct state new); all nat chains of a
  hook run at the NAT core's priority (-100 for prerouting/output, 100 for input/
  postrouting), in their own priority order, until one sets up a binding (so a hostPort
  chain at -110 wins over the proxy's at -100); a nat statement ends its chain;
- a DNAT rewrites the packet at once: later chains see the new destination, and
  `ct status dnat` is true from then on.

`numgen random mod N`: `evaluate()`/`walk()` take the caller's buckets, one per numgen
met, in order (KemuError if one is missing); `all_outcomes()`/`walk_outcomes()` return
every possible outcome, one per combination of buckets, each with the buckets it took.
Dynamic sets (affinity) are what the ruleset holds: `update @set` is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from emu.errors import KemuError
from emu.netfilter.ruleset import Chain, Ruleset, Table
from emu.netfilter.statements import Branch, Packet, PacketState, RuleRunner, Step

HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
NAT_CORE = {"prerouting": -100, "output": -100, "input": 100, "postrouting": 100}
MAX_JUMPS = 16  # NFT_JUMP_STACK_SIZE


@dataclass(frozen=True)
class Outcome:
    """accept: a rule accepted; continue: no rule decided, every policy let it through;
    drop / reject: stopped; dnat / snat / masquerade: let through, rewritten."""

    verdict: str
    packet: Packet  # as it leaves: after NAT and marks
    path: tuple[Step, ...]
    dnat: tuple[str, int] | None = None  # new destination (port 0: unchanged)
    snat: str = ""  # "masquerade" or the new source address
    buckets: tuple[int, ...] = ()
    hooks: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict not in ("drop", "reject")

    def __str__(self) -> str:
        if self.verdict == "dnat" and self.dnat:
            return f"dnat to {self.dnat[0]}:{self.dnat[1]}" + (f" ({self.snat})" if self.snat else "")
        return self.verdict


class Evaluator:
    def __init__(self, ruleset: Ruleset, local_addrs: Iterable[str] = ()) -> None:
        self.ruleset = ruleset
        self.local = frozenset(local_addrs)  # the node's addresses (fib ... type local)
        self.runner = RuleRunner(self.local)
        self._slot_cache: dict[str, list[tuple[int, bool, list[tuple[Table, Chain]]]]] = {}

    # -- one hook ------------------------------------------------------------------------
    def evaluate(self, hook: str, packet: Packet, buckets: Sequence[int] = ()) -> Outcome:
        return _chosen(lambda: self._hooks([hook], packet, buckets))

    def all_outcomes(self, hook: str, packet: Packet) -> list[Outcome]:
        return _explore(lambda b: self._hooks([hook], packet, b))

    # -- a node's path -------------------------------------------------------------------
    def walk(self, packet: Packet, from_local: bool = False, buckets: Sequence[int] = ()) -> Outcome:
        return _chosen(lambda: self._hooks(_path(from_local), packet, buckets))

    def walk_outcomes(self, packet: Packet, from_local: bool = False) -> list[Outcome]:
        return _explore(lambda b: self._hooks(_path(from_local), packet, b))

    def _hooks(self, hooks: list[str], packet: Packet, buckets: Sequence[int]) -> Outcome:
        ctx = PacketState(packet, "", buckets)
        todo = list(hooks)
        seen: list[str] = []
        verdict = "continue"
        while todo:
            hook = todo.pop(0)
            if hook == "route":  # the routing decision after prerouting, on the new address
                todo = ["input"] if ctx.pkt.daddr in self.local else ["forward", "postrouting"]
                continue
            if hook == "loopback":  # the node's own packet to itself comes back in through lo
                todo = ["prerouting", "input"] if ctx.pkt.daddr in self.local else []
                continue
            seen.append(hook)
            v = self._hook(hook, ctx)
            if v in ("drop", "reject"):
                return Outcome(v, ctx.pkt, tuple(ctx.path), ctx.dnat, ctx.snat, tuple(buckets[: ctx.used]), tuple(seen))
            if v == "accept":
                verdict = "accept"
        if ctx.dnat:
            verdict = "dnat"
        elif ctx.snat:
            verdict = "masquerade" if ctx.snat == "masquerade" else "snat"
        return Outcome(verdict, ctx.pkt, tuple(ctx.path), ctx.dnat, ctx.snat, tuple(buckets[: ctx.used]), tuple(seen))

    def _slots(self, hook: str) -> list[tuple[int, bool, list[tuple[Table, Chain]]]]:
        """The hook's base chains in the order the kernel runs them: (priority, is the
        NAT core, chains); all nat chains share one slot at the NAT core's priority."""
        if hook not in self._slot_cache:
            plain: list[tuple[int, bool, list[tuple[Table, Chain]]]] = []
            nat: list[tuple[Table, Chain]] = []
            for t in self.ruleset.tables:
                if t.family in ("ip", "inet"):
                    for c in t.chains:
                        if c.hook == hook:
                            (nat.append((t, c)) if c.type == "nat" else plain.append((c.priority, False, [(t, c)])))
            plain.sort(key=lambda s: (s[0], s[2][0][0].spec, s[2][0][1].name))
            if nat:
                nat.sort(key=lambda tc: (tc[1].priority, tc[0].spec, tc[1].name))
                plain.append((NAT_CORE[hook], True, nat))
                plain.sort(key=lambda s: (s[0], s[1]))  # stable: a filter chain at -100 runs first
            self._slot_cache[hook] = plain
        return self._slot_cache[hook]

    def _hook(self, hook: str, ctx: PacketState) -> str:
        ctx.hook = hook
        accepted = False
        for _, is_nat, chains in self._slots(hook):
            manip = "dst" if hook in ("prerouting", "output") else "src"
            if is_nat and (ctx.pkt.ct_state != "new" or manip in ctx.nat_done):
                continue  # conntrack applies the binding made before (or a null one)
            for table, c in chains:
                before = (ctx.dnat, ctx.snat)
                v = self._chain(table, c, ctx)
                if v in ("drop", "reject"):
                    return v
                accepted |= v == "accept"
                if is_nat and (ctx.dnat, ctx.snat) != before:
                    break  # nf_nat_inet_fn: the first nat chain making a binding wins
            if is_nat:
                ctx.nat_done.add(manip)
        return "accept" if accepted else "continue"

    # -- chains and rules ----------------------------------------------------------------
    def _chain(self, table: Table, base: Chain, ctx: PacketState) -> str:
        stack: list[tuple[Chain, int]] = []
        chain, i = base, 0
        while True:
            if i >= len(chain.rules):
                if stack:
                    chain, i = stack.pop()
                    continue
                ctx.path.append(Step(ctx.hook, table.spec, base.name, -1, base.policy))
                return "policy" if base.policy != "drop" else "drop"
            rule = chain.rules[i]
            v = self.runner.run(table, rule.tokens, ctx)
            if v is None:
                i += 1
                continue
            ctx.path.append(Step(ctx.hook, table.spec, chain.name, i, rule.text))
            i += 1
            if v.kind in ("", "continue"):
                continue
            if v.kind in ("jump", "goto"):
                target = table.chain(v.target)
                if target is None:
                    raise KemuError(f"evaluator: chain {v.target} missing in {table.spec}")
                if v.kind == "jump":
                    if len(stack) >= MAX_JUMPS:
                        raise KemuError(f"evaluator: more than {MAX_JUMPS} nested jumps")
                    stack.append((chain, i))
                chain, i = target, 0
                continue
            if v.kind == "return":
                if stack:
                    chain, i = stack.pop()
                    continue
                ctx.path.append(Step(ctx.hook, table.spec, base.name, -1, base.policy))
                return "policy" if base.policy != "drop" else "drop"
            return v.kind  # accept | drop | reject | nat


def _path(from_local: bool) -> list[str]:
    return ["output", "postrouting", "loopback"] if from_local else ["prerouting", "route"]


def _chosen(run: Callable[[], Outcome]) -> Outcome:
    try:
        return run()
    except Branch as b:
        raise KemuError(f"evaluator: `numgen random mod {b.modulus}` met with no bucket given; pass buckets or use *_outcomes") from None


def _explore(run: Callable[[tuple[int, ...]], Outcome]) -> list[Outcome]:
    """Every outcome, trying each bucket of each numgen met (depth first)."""
    out: list[Outcome] = []
    todo: list[tuple[int, ...]] = [()]
    while todo:
        prefix = todo.pop()
        try:
            out.append(run(prefix))
        except Branch as b:
            todo.extend((*prefix, k) for k in reversed(range(b.modulus)))
    return out


def evaluate(ruleset: Ruleset, hook: str, packet: Packet, local_addrs: Iterable[str] = (), buckets: Sequence[int] = ()) -> Outcome:
    return Evaluator(ruleset, local_addrs).evaluate(hook, packet, buckets)


def all_outcomes(ruleset: Ruleset, hook: str, packet: Packet, local_addrs: Iterable[str] = ()) -> list[Outcome]:
    return Evaluator(ruleset, local_addrs).all_outcomes(hook, packet)


def walk(
    ruleset: Ruleset, packet: Packet, local_addrs: Iterable[str] = (), from_local: bool = False, buckets: Sequence[int] = ()
) -> Outcome:
    return Evaluator(ruleset, local_addrs).walk(packet, from_local, buckets)


def walk_outcomes(ruleset: Ruleset, packet: Packet, local_addrs: Iterable[str] = (), from_local: bool = False) -> list[Outcome]:
    return Evaluator(ruleset, local_addrs).walk_outcomes(packet, from_local)


__all__ = ["Evaluator", "Outcome", "Packet", "Step", "all_outcomes", "evaluate", "walk", "walk_outcomes"]
