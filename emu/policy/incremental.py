"""The policy compiler that remembers: each policy's compiled piece per node is kept
between syncs and recomputed only when the policy, the namespaces' labels or the pods it
selects or names change (a label change with 1,000 policies over 1,000 pods: ~2-7 ms
instead of ~900 ms). Same output as emu.policy.compile.compile_ruleset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emu.model.objects import PodView
from emu.model.policy import NetworkPolicy, PolicyRule
from emu.model.selectors import LabelSelector
from emu.policy.compile import (
    Memo,
    NodePolicyInput,
    NodeRuleset,
    PodIndex,
    RuleValue,
    _assemble,
    _Piece,
    _piece,
    _rule_value,
    compile_ruleset,
)
from emu.policy.oracle import View


@dataclass
class _RuleState:
    """One rule of a policy: its node-independent value, computed when first needed."""

    direction: str  # "in" | "eg"
    rule: PolicyRule
    value: list[str] | None = None


@dataclass
class _PolicyState:
    pol: NetworkPolicy
    rules: dict[tuple[str, int], _RuleState]
    selected: dict[str, dict[str, PodView]] = field(default_factory=dict)  # node → pod key → pod
    pieces: dict[str, _Piece] = field(default_factory=dict)  # node → its piece

    def selects(self, p: PodView) -> bool:
        return p.namespace == self.pol.meta.namespace and self.pol.pod_selector.matches(p.labels)


# Rules whose value a pod of one namespace may change, by a label the pod must carry
# (None: any pod may), each with the pod selector to check (None: every pod).
Watchers = dict[tuple[str, str] | None, list[tuple[_PolicyState, _RuleState, LabelSelector | None]]]


def _relevant_change(a: PodView, b: PodView) -> bool:
    # Readiness does not matter to policy; a probe flipping it must not cost a recompile.
    return a is not b and (a.labels != b.labels or a.ip != b.ip or a.node != b.node or a.spec != b.spec)


def _same(a: object, b: object) -> bool:
    return a is b or a == b


class PolicyCompiler:
    """`compile_ruleset` with memory across syncs: identical output for the same input.

    It keeps, from one call to the next, the pods and policies it last saw, which pods
    each policy selects on each node, each rule's peers (or egress targets) and each
    policy's piece of each node's ruleset. A new input is compared with the last one
    (objects are immutable and replaced on change, so identity first, then equality);
    a changed pod invalidates the selections it was or is in and the rules whose peers
    it was or is, a changed policy its own state, changed namespace labels the rules with
    namespace selectors. A rule whose value comes out unchanged invalidates nothing. A
    node none of whose pieces, pods or addresses changed gets its previous ruleset back.
    As the store's objects, inputs are never changed in place: a new View, new PodViews.
    """

    def __init__(self) -> None:
        self._view: View | None = None
        self._pods_in: tuple[PodView, ...] | None = None
        self._pods: dict[str, PodView] = {}  # with an IP, by key
        self._index = PodIndex()
        self._policies: dict[str, _PolicyState] = {}
        self._by_ns: dict[str, dict[str, _PolicyState]] = {}  # namespace → its policies
        self._watchers: dict[str, Watchers] = {}  # namespace → watchers, made when needed
        self._local: dict[str, dict[str, str]] = {}  # node → pod key → IP
        self._built: dict[str, tuple[frozenset[str], NodeRuleset]] = {}  # node → (its addresses, ruleset)
        self._dirty: set[str] = set()  # nodes to assemble again
        self._memo: Memo = {}

    def compile(self, view: View, inp: NodePolicyInput) -> NodeRuleset:
        if not self._update(view, inp.pods):
            return compile_ruleset(view, inp)  # duplicate keys: nothing to track them by
        addrs = frozenset(inp.node_addrs)
        built = self._built.get(inp.node)
        if built is not None and inp.node not in self._dirty and built[0] == addrs:
            return built[1]
        pieces = []
        for key in sorted(k for k, st in self._policies.items() if inp.node in st.selected):
            st = self._policies[key]
            pc = st.pieces.get(inp.node)
            if pc is None:
                pc = st.pieces[inp.node] = _piece(st.pol, list(st.selected[inp.node].values()), self._value_of(st), self._memo)
            pieces.append(pc)
        rs = _assemble(inp.node_addrs, list(self._local.get(inp.node, {}).values()), pieces)
        self._built[inp.node] = (addrs, rs)
        self._dirty.discard(inp.node)
        return rs

    def _value_of(self, st: _PolicyState) -> RuleValue:
        def value(direction: str, i: int, rule: PolicyRule) -> list[str]:
            rs = st.rules[(direction, i)]
            if rs.value is None:
                assert self._view is not None
                rs.value = _rule_value(st.pol, direction, rule, self._view, self._index, self._pods.values())
            return rs.value

        return value

    def _update(self, view: View, pods: tuple[PodView, ...]) -> bool:
        """Bring the state to a new input; False if it cannot be tracked (two pods or
        two policies share a key)."""
        old = self._view
        same_pods = pods is self._pods_in or pods == self._pods_in
        same_policies = old is not None and (view.policies is old.policies or view.policies == old.policies)
        ns_changed = old is None or view.namespaces != old.namespaces
        self._view = view
        if same_pods and same_policies and not ns_changed:
            return True
        changes = self._pod_changes(pods) if not same_pods else []
        policies = {p.key: p for p in view.policies} if not same_policies else {}
        if changes is None or len(policies) not in (0, len(view.policies)):
            self._view = old
            return False
        if len(self._memo) > 4096 and len(self._memo) > 8 * sum(len(st.rules) for st in self._policies.values()):
            self._memo.clear()  # keep the memo from growing with history; pieces stay cached
        # Policies that changed or went: dropped; their new versions are added last.
        added = [p for k, p in policies.items() if k not in self._policies or not _same(self._policies[k].pol, p)]
        gone = [k for k, st in self._policies.items() if not same_policies and (k not in policies or not _same(st.pol, policies[k]))]
        for key in gone:
            st = self._policies.pop(key)
            del self._by_ns[st.pol.meta.namespace][key]
            self._dirty.update(st.selected)
        if gone or added or ns_changed:
            self._watchers.clear()
        stale: dict[int, tuple[_PolicyState, _RuleState]] = {}  # id → a rule whose value may have changed
        if not same_pods:
            self._pods_in = pods
            self._update_pods(changes, stale)
        if ns_changed:
            for st in self._policies.values():
                stale |= {id(rs): (st, rs) for rs in st.rules.values() if any(p.namespace_selector for p in rs.rule.peers)}
        for pol in added:
            self._add_policy(pol)
        if added:
            self._watchers.clear()  # made above without them
        for st, rs in stale.values():
            if rs.value is None or self._policies.get(st.pol.key) is not st:
                continue
            value = _rule_value(st.pol, rs.direction, rs.rule, view, self._index, self._pods.values())
            if value != rs.value:
                rs.value = value
                st.pieces.clear()
                self._dirty.update(st.selected)
        return True

    def _pod_changes(self, pods: tuple[PodView, ...]) -> list[tuple[PodView | None, PodView | None]] | None:
        """(held, new) pairs for pods that came, went or changed; None: duplicate keys."""
        prev, held = self._pods_in, self._pods
        out: list[tuple[PodView | None, PodView | None]] = []
        if prev is not None and len(prev) == len(pods):
            # Usually the same pods in the same order: only the ones not identical count.
            for a, b in zip(prev, pods, strict=True):
                if a is b:
                    continue
                if a.namespace != b.namespace or a.name != b.name:
                    break
                cur = held.get(b.key)
                if b.ip and (cur is None or _relevant_change(cur, b)):
                    out.append((cur, b))
                elif not b.ip and cur is not None:
                    out.append((cur, None))
            else:
                return out
        current = {p.key: p for p in pods}
        if len(current) != len(pods):
            return None
        out = [(held.get(k), p) for k, p in current.items() if p.ip and (k not in held or _relevant_change(held[k], p))]
        return out + [(p, None) for k, p in held.items() if not (k in current and current[k].ip)]

    def _update_pods(self, changes: list[tuple[PodView | None, PodView | None]], stale: dict[int, tuple[_PolicyState, _RuleState]]) -> None:
        for old, new in changes:
            if old is None or new is None or old.ip != new.ip or old.node != new.node:
                self._dirty.update(p.node for p in (old, new) if p is not None)  # its node's own pods changed
            if old is not None:
                self._index.remove(old)
                del self._local[old.node][old.key], self._pods[old.key]
            if new is not None:
                self._index.add(new)
                self._local.setdefault(new.node, {})[new.key] = new.ip
                self._pods[new.key] = new
            some = new or old
            assert some is not None
            for st in self._by_ns.get(some.namespace, {}).values():
                was = old if old is not None and st.selects(old) else None
                now = new if new is not None and st.selects(new) else None
                if was is not None and now is not None and (was.node, was.ip, was.spec) == (now.node, now.ip, now.spec):
                    st.selected[now.node][now.key] = now  # same address and ports: its piece stands
                    continue
                if was is not None:
                    self._select(st, was, False)
                if now is not None:
                    self._select(st, now, True)
            for p in (old, new):
                if p is None:
                    continue
                watchers = self._watchers_of(p.namespace)
                for kv in (None, *p.labels.items()):
                    for st, rs, sel in watchers.get(kv, ()):
                        if rs.value is not None and (sel is None or sel.matches(p.labels)):
                            stale[id(rs)] = (st, rs)

    def _select(self, st: _PolicyState, p: PodView, selected: bool) -> None:
        on_node = st.selected.setdefault(p.node, {})
        if selected:
            on_node[p.key] = p
        else:
            on_node.pop(p.key, None)
            if not on_node:
                del st.selected[p.node]
        st.pieces.pop(p.node, None)
        self._dirty.add(p.node)

    def _add_policy(self, pol: NetworkPolicy) -> None:
        rules = {(d, i): _RuleState(d, rule) for d, rs in (("in", pol.ingress), ("eg", pol.egress)) for i, rule in enumerate(rs)}
        st = self._policies[pol.key] = self._by_ns.setdefault(pol.meta.namespace, {})[pol.key] = _PolicyState(pol, rules)
        for p in self._index.by_ns.get(pol.meta.namespace, {}).values():
            if st.selects(p):
                self._select(st, p, True)
        self._dirty.update(st.selected)

    def _watchers_of(self, namespace: str) -> Watchers:
        if namespace in self._watchers:
            return self._watchers[namespace]
        assert self._view is not None
        labels = self._view.namespaces.get(namespace, {})
        out: Watchers = {}
        for st in self._policies.values():
            for rs in st.rules.values():
                peers = rs.rule.peers
                if rs.direction == "eg" and any(isinstance(pp.port, str) for pp in rs.rule.ports):
                    if not peers or any(x.ip_block is not None for x in peers):
                        out.setdefault(None, []).append((st, rs, None))  # named ports on pods in address ranges
                for x in peers:
                    if x.ip_block is not None:
                        continue
                    if namespace != st.pol.meta.namespace if x.namespace_selector is None else not x.namespace_selector.matches(labels):
                        continue
                    sel = x.pod_selector
                    kv = next(iter(sel.match_labels.items())) if sel is not None and sel.match_labels else None
                    out.setdefault(kv, []).append((st, rs, sel))
        self._watchers[namespace] = out
        return out
