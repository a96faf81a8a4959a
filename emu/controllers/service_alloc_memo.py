"""The memo of Service allocations: one Service's change costs that Service, not all of them.

`allocate` (emu/controllers/service_alloc.py) asks the memo of its ClusterSpec first: it
keeps the last full run's result, each Service's claimed values and a count of every
claimed value, and answers with what a full run would give (redoing only the Services
that changed or were missing something), or None whenever it cannot prove that (a value
claimed twice, any problem, an order of Services it does not know): then the full run.
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass

from emu.controllers.changelog import LoggedDict, moved
from emu.controllers.lb_pool import pool_addresses
from emu.controllers.service_ranges import NODE_PORT_MAX, NODE_PORT_MIN, RESERVED_OFFSETS, port_key
from emu.model.objects import ClusterSpec
from emu.model.services import Service, ServiceStatus

# --- the memo: one Service's change costs that Service ------------------------------------
#
# A full run in two passes: (1) each Service keeps what it has or asks for, and a value
# two Services claim is a problem for the later one; (2) the Services still missing
# something get the lowest free values, in order. If no value is claimed twice, pass 1
# of an unchanged Service whose status is "stable" (pass 1 gives it back as it is, with
# nothing missing) is that status, and pass 2 only concerns the others: so the memo keeps
# each Service's claims and a count of every claimed value, and redoes only the Services
# that changed (or were missing something). A claim counted twice, any problem, or an
# order of Services other than "the last one's, some gone, new ones at the end": full run.

Claim = tuple[str, object]  # ("ip", "10.96.0.5"), ("port", 30080), ("lb", "192.168.0.240")
_LOCK = threading.Lock()


def _pass1(
    svc: Service, prev: ServiceStatus, net: ipaddress.IPv4Network, pool: Container[str]
) -> tuple[ServiceStatus, tuple[Claim, ...], bool]:
    """Pass 1 of a full run for one Service, without the cross-Service checks: its status
    so far, the values it claims, and whether it has no problem of its own."""
    ok = True
    ip = ""
    if svc.type != "ExternalName" and not svc.headless:
        if svc.cluster_ip:
            try:
                ok = not (prev.cluster_ip and svc.cluster_ip != prev.cluster_ip) and ipaddress.IPv4Address(svc.cluster_ip) in net
            except ValueError:
                ok = False
            ip = svc.cluster_ip
        else:
            ip = prev.cluster_ip
    claims: list[Claim] = [("ip", ip)] if ip else []
    ports: dict[str, int] = {}
    if svc.has_node_ports:
        for i, p in enumerate(svc.ports):
            k = port_key(svc, i)
            want = p.node_port or prev.node_ports.get(k, 0)
            if want:
                ok = ok and k not in ports  # two ports, one key: leave it to a full run
                claims.append(("port", want))
                ports[k] = want
    hc = 0
    if svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local":
        hc = svc.health_check_node_port or prev.health_check_node_port
        if hc:
            claims.append(("port", hc))
    lb = ""
    if svc.type == "LoadBalancer":
        lb = svc.load_balancer_ip or prev.lb_ip
        if lb:
            claims.append(("lb", lb))
        ok = ok and not (svc.load_balancer_ip and svc.load_balancer_ip not in pool)
    return ServiceStatus(ip, ports, hc, lb), tuple(claims), ok


def _missing(svc: Service, st: ServiceStatus) -> bool:
    """Whether pass 2 would give this Service something."""
    return (
        (not st.cluster_ip and svc.type != "ExternalName" and not svc.headless)
        or (svc.has_node_ports and any(port_key(svc, i) not in st.node_ports for i in range(len(svc.ports))))
        or (svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local" and not st.health_check_node_port)
        or (svc.type == "LoadBalancer" and not st.lb_ip)
    )


@dataclass(frozen=True)
class _Cursor:
    services: LoggedDict[str, Service]
    seq: int
    shapes: int
    statuses: LoggedDict[str, ServiceStatus]
    statuses_seq: int
    new_keys: list[str]  # keys the last result added (the store inserts them last, in order)
    touched: set[str]  # keys whose Service the last result set
    touched_st: set[str]  # keys whose status the last result changed


@dataclass
class _Entry:
    svc: Service
    status: ServiceStatus
    claims: tuple[Claim, ...]  # pass 1's, with `status` as the previous one
    stable: bool  # pass 1 gives `status` back, nothing missing: a full run leaves it so


class _Memo:
    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.net = ipaddress.IPv4Network(spec.service_cidr)
        self.pool = pool_addresses(spec)
        self.pool_index = {a: i for i, a in enumerate(self.pool)}
        self.services: list[Service] = []
        self.keys: list[str] = []
        self.entries: dict[str, _Entry] = {}
        self.pos: dict[str, int] = {}  # key → its place in `services`
        self.snap: dict[str, ServiceStatus] = {}  # the last result (a copy: callers may change theirs)
        self.cursor: _Cursor | None = None  # where the store's mappings stood at the last result
        self.counts: dict[Claim, int] = {}
        self.pending: set[str] = set()  # keys of entries not stable
        # Every candidate below a floor is taken (a hint where the lowest free one is).
        self.floors = {"ip": 1, "port": NODE_PORT_MIN, "lb": 0}

    def entry(self, svc: Service, st: ServiceStatus) -> _Entry:
        again, claims, ok = _pass1(svc, st, self.net, self.pool_index)
        return _Entry(svc, st, claims, ok and again == st and not _missing(svc, st))

    @classmethod
    def of(cls, spec: ClusterSpec, services: list[Service], out: dict[str, ServiceStatus]) -> _Memo | None:
        """A memo of a full run's result; None if it cannot serve (a key twice, a value
        claimed twice)."""
        memo = cls(spec)
        for svc in services:
            e = memo.entries[svc.key] = memo.entry(svc, out[svc.key])
            if not e.stable:
                memo.pending.add(svc.key)
            for c in e.claims:
                memo.counts[c] = memo.counts.get(c, 0) + 1
        if len(memo.entries) != len(services) or any(n > 1 for n in memo.counts.values()):
            return None
        memo.services, memo.keys = list(services), [s.key for s in services]
        memo.pos = {k: i for i, k in enumerate(memo.keys)}
        memo.snap = dict(out)
        return memo

    def _changes(self, services: list[Service]) -> tuple[list[int], list[str], list[str]] | None:
        """Positions of Services to redo (new or other objects), keys gone, the new key
        list; None if the order is not the last one's with some gone and new at the end."""
        old, n0 = self.services, len(self.services)
        if len(services) >= n0:
            head = services if len(services) == n0 else services[:n0]
            redo = [] if head == old else [i for i in moved(head, old) if head[i] is not old[i]]
            if all(services[i].key == self.keys[i] for i in redo):
                new_keys = [s.key for s in services[n0:]]
                if len(set(new_keys)) == len(new_keys) and not any(k in self.entries for k in new_keys):
                    return redo + list(range(n0, len(services))), [], self.keys + new_keys
        keys = [s.key for s in services]
        present = set(keys)
        if len(present) != len(keys):
            return None
        known = [k for k in keys if k in self.entries]
        if known != [k for k in self.keys if k in present] or keys[: len(known)] != known:
            return None
        redo = [i for i, (k, s) in enumerate(zip(keys, services, strict=True)) if k not in self.entries or self.entries[k].svc is not s]
        return redo, [k for k in self.keys if k not in present], keys

    def allocate(self, services: list[Service], old: Mapping[str, ServiceStatus]) -> dict[str, ServiceStatus] | None:
        """A full run's result, or None where the memo cannot tell it (run in full)."""
        self.cursor = None
        changes = self._changes(services)
        if changes is None:
            return None
        redo_at, gone, keys = changes
        redo = {services[i].key: i for i in redo_at}
        for k in self.pending:
            if k not in redo and k in self.entries and k not in gone:
                redo[k] = services.index(self.entries[k].svc)
        if len(redo) + len(gone) > 256:
            return None  # a full run costs about the same
        if old != self.snap:  # C speed, identity first
            same = (k for k in self.entries if k not in redo and k not in gone)
            if any(old.get(k) != self.entries[k].status for k in same):
                return None
        done = self._solve([(k, services[i]) for k, i in sorted(redo.items(), key=lambda kv: kv[1])], gone, old)
        if done is None:
            return None
        if gone or len(keys) != len(self.keys):
            self.pos = {k: i for i, k in enumerate(keys)}
        self.services, self.keys = list(services), keys
        return dict(self.snap)

    def allocate_keyed(
        self, current: LoggedDict[str, Service], proposed: list[Service], old: LoggedDict[str, ServiceStatus]
    ) -> dict[str, ServiceStatus] | None:
        """`allocate` for `current` with `proposed` put in (in place; new keys last), as
        the statuses that changed, in O(changes): the change logs of `current` and `old`
        since the last result say what else changed. None: not provable here."""
        cur, self.cursor = self.cursor, None
        if cur is None or cur.services is not current or cur.statuses is not old:
            return None
        logged, logged_st = current.since(cur.seq), old.since(cur.statuses_seq)
        if logged is None or logged_st is None or len(logged) + len(logged_st) + len(cur.touched) + len(cur.touched_st) > 1024:
            return None  # not logged that far back, or so much changed that comparing every Service costs less
        n_new = len(cur.new_keys)
        if current.shapes - cur.shapes != n_new or len(current) != len(self.keys):
            return None  # a Service came or went besides the last result's new ones: by list
        if n_new and list(itertools.islice(reversed(current), n_new)) != cur.new_keys[::-1]:
            return None
        # Keys not named here hold what the memo has (see `mark`).
        want = {svc.key: svc for svc in proposed}
        redo: dict[str, int] = {}
        new: list[str] = []
        for k in itertools.chain(want, logged, cur.touched):
            svc = want.get(k) or current.get(k)
            e = self.entries.get(k)
            if e is None:
                if k not in want or k in current:
                    return None
                if k not in redo:
                    redo[k] = len(self.keys) + len(new)
                    new.append(k)
            elif svc is None:
                return None
            elif svc is not e.svc:
                redo[k] = self.pos[k]
        for k in self.pending:
            redo.setdefault(k, self.pos[k])
        if len(redo) > 256:
            return None
        if any(
            k in self.entries and k not in redo and old.get(k) != self.entries[k].status for k in itertools.chain(logged_st, cur.touched_st)
        ):
            return None
        order = sorted(redo.items(), key=lambda kv: kv[1])
        before = {k: old.get(k) for k, _ in order}
        done = self._solve([(k, want.get(k) or current[k]) for k, _ in order], [], old)
        if done is None:
            return None
        for k, i in order:
            if i < len(self.services):
                self.services[i] = self.entries[k].svc
        self.services += [self.entries[k].svc for k in new]
        self.keys += new
        self.pos.update((k, i) for k, i in order)
        changed = {k: st for k, st in done.items() if before[k] != st}
        self.mark(current, old, new, want.keys() | redo.keys(), changed.keys())
        return changed

    def mark(
        self,
        current: LoggedDict[str, Service],
        old: LoggedDict[str, ServiceStatus],
        new_keys: list[str],
        touched: Iterable[str],
        touched_st: Iterable[str],
    ) -> None:
        """Where the store's mappings stand as the last result is made: `current` and
        `old` before the store applies it (`new_keys` inserted last, the Services at
        `touched` and statuses at `touched_st` set), every other entry as the memo has it."""
        self.cursor = _Cursor(current, current.seq, current.shapes, old, old.seq, list(new_keys), set(touched), set(touched_st))

    def _solve(self, redo: list[tuple[str, Service]], gone: list[str], old: Mapping[str, ServiceStatus]) -> dict[str, ServiceStatus] | None:
        """Passes 1 and 2 for the Services in `redo` (in the Services' order), those at
        `gone` dropped; their statuses, committed; None: a full run must tell."""
        delta: dict[Claim, int] = {}
        for k in itertools.chain(gone, (k for k, _ in redo)):
            for c in self.entries[k].claims if k in self.entries else ():
                delta[c] = delta.get(c, 0) - 1
        first: list[tuple[Service, ServiceStatus]] = []
        for k, svc in redo:
            st, claims, ok = _pass1(svc, old.get(k, ServiceStatus()), self.net, self.pool_index)
            if not ok:
                return None
            for c in claims:
                delta[c] = delta.get(c, 0) + 1
            first.append((svc, st))
        counts = self.counts
        if any(d > 0 and counts.get(c, 0) + d > 1 for c, d in delta.items()):
            return None  # a value claimed twice: a problem or a silent share, a full run says which
        floors = dict(self.floors)
        for c, d in delta.items():
            if d < 0 and counts.get(c, 0) + d == 0:
                kind, value = c
                at = self._position(kind, value)
                if at is not None:
                    floors[kind] = min(floors[kind], at)
        done: dict[str, ServiceStatus] = {}
        for svc, st in first:
            got = self._pass2(svc, st, delta, floors)
            if got is None:
                return None
            before = self.entries.get(svc.key)
            done[svc.key] = before.status if before is not None and before.status == got else got
        # Commit.
        for c, d in delta.items():
            n = counts.get(c, 0) + d
            if n:
                counts[c] = n
            else:
                counts.pop(c, None)
        for k in gone:
            del self.entries[k]
            del self.snap[k]
            self.pending.discard(k)
        for (k, svc), st in zip(redo, done.values(), strict=True):
            e = self.entries[k] = self.entry(svc, st)
            if e.stable:
                self.pending.discard(k)
            else:
                self.pending.add(k)
        self.snap.update(done)  # in the Services' order: new ones come last, in order
        self.floors = floors
        return done

    def _position(self, kind: str, value: object) -> int | None:
        """Where a value stands among its kind's candidates (for the floors)."""
        if kind == "ip":
            return int(ipaddress.IPv4Address(str(value))) - int(self.net.network_address)
        if kind == "port":
            return value if isinstance(value, int) else None
        return self.pool_index.get(str(value))

    def _pass2(self, svc: Service, st: ServiceStatus, delta: dict[Claim, int], floors: dict[str, int]) -> ServiceStatus | None:
        """Pass 2 for one Service: the lowest free values (None: none left, a problem)."""

        def take(kind: str, candidates: Callable[[int], Iterator[tuple[int, object]]]) -> object | None:
            for at, value in candidates(max(floors[kind], 0)):
                c = (kind, value)
                if self.counts.get(c, 0) + delta.get(c, 0) <= 0:
                    delta[c] = delta.get(c, 0) + 1
                    floors[kind] = at + 1
                    return value
            floors[kind] = 1 << 62  # nothing free above the floor
            return None

        def ips(start: int) -> Iterator[tuple[int, object]]:
            base = self.net.network_address
            return ((i, str(base + i)) for i in range(max(start, 1), self.net.num_addresses - 1) if i not in RESERVED_OFFSETS)

        def ports(start: int) -> Iterator[tuple[int, object]]:
            return ((p, p) for p in range(max(start, NODE_PORT_MIN), NODE_PORT_MAX + 1))

        def lbs(start: int) -> Iterator[tuple[int, object]]:
            return ((i, self.pool[i]) for i in range(start, len(self.pool)))

        cluster_ip = st.cluster_ip
        if not cluster_ip and svc.type != "ExternalName" and not svc.headless:
            got = take("ip", ips)
            if got is None:
                return None
            cluster_ip = str(got)
        node_ports = dict(st.node_ports)
        if svc.has_node_ports:
            for i in range(len(svc.ports)):
                k = port_key(svc, i)
                if k not in node_ports:
                    port = take("port", ports)
                    if port is None:
                        return None
                    node_ports[k] = int(str(port))
        hc = st.health_check_node_port
        if svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local" and not hc:
            hc = int(str(take("port", ports) or 0))
        lb = st.lb_ip
        if svc.type == "LoadBalancer" and not lb:
            lb = str(take("lb", lbs) or "")
        return ServiceStatus(cluster_ip, node_ports, hc, lb)


_MEMOS: dict[int, _Memo] = {}  # id(ClusterSpec) → its memo (checked: `memo.spec is spec`)
