"""The DNS plane of a running cluster: the records the cluster DNS serves, recomputed from
the store on every sync and handed to the DNS pods' servers (a state file they check every 50 ms; a change returns
only once every running server has loaded it, so a name answers as soon
as `kemu apply` returns), and the node network's own resolver (the data centre's DNS, on
the node network's .1, in the switch namespace) that knows nodes and external hosts.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from emu.cluster import system
from emu.controllers.changelog import Snapshot
from emu.controllers.ipam import AddressPlan
from emu.dataplane.ownership import Record
from emu.dns import records, upstream
from emu.model.objects import ClusterSpec, Container, PodView
from emu.model.services import EndpointSlice, Service, ServiceStatus
from emu.workloads import processes

log = logging.getLogger(__name__)
UPSTREAM_DOMAIN = upstream.DEFAULT_DOMAIN


class DNSPlane:
    def __init__(self, spec: ClusterSpec, plan: AddressPlan, record: Record) -> None:
        self.spec = spec
        self.plan = plan
        self.record = record
        self.dir = os.path.join(record.dir, "dns")
        self.state_file = os.path.join(self.dir, "cluster.state")
        self.ack_dir = os.path.join(self.dir, "acks")
        self.serial = 0
        self.cache = RecordCache(spec.dns.cluster_domain, spec.dns.ttl, spec.service_cidr, spec.pod_cidr, system.dns_service_ip(spec))
        self.upstream_proc: processes.Process | None = None
        os.makedirs(self.ack_dir, exist_ok=True)

    def manifests(self) -> list[dict[str, Any]]:
        return system.dns_manifests(self.spec, self.state_file, self.ack_dir)

    # --- the node network's resolver ---------------------------------------------------------

    def start_upstream(self, switch_netns: str) -> None:
        """The data centre's resolver: nodes and external hosts by name (and under
        .kemu.internal), NXDOMAIN for anything else; nothing leaves the emulation."""
        hosts = {n.name: n.ip for n in self.plan.nodes} | {h.name: h.ip for h in self.plan.hosts}
        ip = system.upstream_ip(self.spec)
        index = upstream.build_upstream_index(hosts, domain=UPSTREAM_DOMAIN, cidrs=[self.spec.node_cidr], resolver_ip=ip)
        path = os.path.join(self.dir, "upstream.state")
        records.write_state(path, index)
        argv = [sys.executable, "-m", "emu.dns.server", "--state", path, "--bind", ip]
        argv += ["--metrics-port", "0", "--health-port", "0", "--ready-port", "0"]
        log_path = os.path.join(self.record.dir, "logs", "kemu-system_dns-upstream.log")
        self.upstream_proc = processes.start("kemu-system/dns-upstream", Container("resolver"), argv, switch_netns, "", log_path)
        self.record.add_process(self.upstream_proc.ref, "the node network's resolver")

    def stop(self) -> None:
        if self.upstream_proc is not None:
            processes.stop([self.upstream_proc])
            self.upstream_proc = None

    # --- the cluster's records ------------------------------------------------------------------

    def sync(
        self,
        services: dict[str, Service],
        statuses: dict[str, ServiceStatus],
        slices: dict[str, list[EndpointSlice]],
        pods: list[PodView],
        namespaces: list[str],
        servers: list[tuple[int, str]],  # (pid, ack file) of the running DNS servers
    ) -> None:
        """Write the records when they changed; wait until every running server has them."""
        # Rebuilt when what they depend on changed: Services and their allocations, the
        # endpoints of headless Services (a ClusterIP's records do not change with its
        # endpoints), pods that have a hostname and subdomain, the namespaces. Readiness
        # flips of the pods behind ClusterIPs — most syncs — leave the records alone.
        # Only the Services that changed are looked at again, and nothing is written when
        # their records came out the same (a targetPort changed, say).
        if not self.cache.note(services, statuses, slices, pods, namespaces):
            return
        if not self.cache.refresh(services, statuses, slices):
            return
        self.serial += 1
        index = self.cache.index(self.serial)
        records.write_state(self.state_file, index)
        # Each server checks the file every 50 ms (no signal: one sent before a new server
        # has set its handler would kill it). Wait for the ones that have loaded before:
        # a server that has not loaded yet starts with these records anyway.
        acks = [ack for _, ack in servers if os.path.exists(ack)]
        late = records.wait_loaded(acks, self.serial, timeout=5.0)
        if late:
            log.warning("DNS servers slow to load the new records: %s", ", ".join(late))


Parts = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # an owner's lines, SRV targets, endpoint IPs
_GONE = object()


class RecordCache:
    """The cluster's records (records.build_index's result, exactly) kept per Service:
    a Service's records depend only on it, its status, its slices and the hostnames of
    the pods those name, so only Services whose inputs changed are built again, and only
    the owner names whose records changed are joined again (a pod's PTR name gathers a
    line from every Service selecting it, in the Services' order: each Service has a
    sequence number in that order)."""

    def __init__(self, zone: str, ttl: int, service_cidr: str, pod_cidr: str, dns_ip: str) -> None:
        self.zone, self.ttl = zone.strip(".").lower(), ttl
        self._frame_args = (self.zone, ttl, service_cidr, pod_cidr, dns_ip)
        fr = records.frame(*self._frame_args, serial=0)
        self.apexes = frozenset(fr.zones)
        self.frame_owners = frozenset(fr.recs)
        self._snaps = (Snapshot(), Snapshot(), Snapshot())  # services, statuses, slices
        self._seen: dict[str, tuple[object, object, object]] = {}  # key → what the trigger compares
        self._hostnames: tuple[tuple[str, str, str, str], ...] = ()
        self._namespaces: tuple[str, ...] = ()
        self._known: frozenset[str] = frozenset()
        self._published = False
        self._reset()

    def _reset(self) -> None:
        self.hosts: dict[str, tuple[str, str]] = {}
        self._contrib: dict[str, dict[str, Parts]] = {}  # Service key → owner → its parts
        self._refs: dict[str, frozenset[str]] = {}  # Service key → pod keys of its ready endpoints
        self._seq: dict[str, int] = {}
        self._order: list[str] = []  # Service keys in the order last seen
        self._owners: dict[str, dict[str, Parts]] = {}  # owner → Service key → parts
        self._text: dict[str, str] = {}  # owner (under a zone, not the frame's) → its records
        self._eps: dict[str, str] = {}  # owner → its endpoints' IPs
        self._anc: dict[str, int] = {}  # name → how many owners in _text have it as an ancestor below their zone
        self._ns: dict[str, int] = {}  # namespace → its Services
        self._nskeys: set[str] = set()  # the Services counted there
        self._next = 0  # the next sequence number
        self.pending: set[str] = set()  # Services to build again
        self.dirty = True  # records changed since the last index()

    def note(
        self,
        services: dict[str, Service],
        statuses: dict[str, ServiceStatus],
        slices: dict[str, list[EndpointSlice]],
        pods: list[PodView],
        namespaces: list[str],
    ) -> bool:
        """Take a sync's inputs; whether what the records are rebuilt on changed."""
        changed = self._snaps[0].changed(services) | self._snaps[1].changed(statuses) | self._snaps[2].changed(slices)
        keys = self._order if self._snaps[0].same_order else list(services)  # the log says: no Service came or went
        if keys is not self._order and keys != self._order:
            if not self._ordered(keys):
                self._reset()
                changed = set(keys)
                self._seen.clear()
                for k in keys:  # numbered in the Services' order now: refresh() walks a set
                    self._seq[k] = self._next = self._next + 1
            self._order = keys
        self.pending |= changed
        trigger = False
        for key in changed:
            svc = services.get(key)
            sl = slices.get(key)
            view = (svc, statuses.get(key, _GONE), tuple(sl) if svc is not None and svc.headless and sl is not None else None)
            if svc is None:
                self._seen.pop(key, None)
                trigger = True
            elif self._seen.get(key) != view:
                trigger = True
                self._seen[key] = view
        hosts = {p.key: (p.spec.hostname, p.spec.subdomain) for p in pods if p.spec and p.spec.hostname and p.spec.subdomain}
        if hosts != self.hosts:
            moved = {k for k in hosts.keys() | self.hosts.keys() if hosts.get(k) != self.hosts.get(k)}
            self.pending |= {k for k, refs in self._refs.items() if not refs.isdisjoint(moved)}
            self.hosts = hosts
        hostnames = tuple(sorted((p.key, p.ip, p.spec.hostname, p.spec.subdomain) for p in pods if p.spec is not None and p.spec.subdomain))
        ns = tuple(sorted(namespaces))
        known = frozenset(namespaces) | {p.namespace for p in pods}
        if known != self._known:
            self._known, self.dirty = known, True
        if (hostnames, ns) != (self._hostnames, self._namespaces):
            self._hostnames, self._namespaces, trigger = hostnames, ns, True
        return trigger or not self._published

    def _ordered(self, keys: list[str]) -> bool:
        """Whether `keys` is the last order with some gone and new ones at the end (new
        ones get the next sequence numbers); False: start again."""
        present = set(keys)
        known = [k for k in keys if k in self._seq]
        if known != [k for k in self._order if k in present] or keys[: len(known)] != known:
            return False
        for k in keys[len(known) :]:
            self._seq[k] = self._next = self._next + 1
        return True

    def refresh(self, services: dict[str, Service], statuses: dict[str, ServiceStatus], slices: dict[str, list[EndpointSlice]]) -> bool:
        """Build the pending Services' records again; whether any record changed since
        the last index()."""
        touched: set[str] = set()  # owners to join again, once each (10,000 Services may share one)
        for key in self.pending:
            svc = services.get(key)
            before = self._contrib.get(key, {})
            after: dict[str, Parts] = {}
            if svc is None:
                self._contrib.pop(key, None)
                self._refs.pop(key, None)
                self._seq.pop(key, None)
            else:
                sl = slices.get(key, ())
                b = records.Builder(self.ttl, 0)
                records.add_service(b, svc, statuses.get(key), sl, self.hosts, self.zone)
                for owner in b.recs.keys() | b.srv.keys() | b.endpoints.keys():
                    after[owner] = (tuple(b.recs.get(owner, ())), tuple(b.srv.get(owner, ())), tuple(b.endpoints.get(owner, ())))
                self._contrib[key] = after
                self._refs[key] = frozenset(ep.target_ref for s in sl for ep in s.endpoints if ep.conditions.ready)
                if key not in self._seq:
                    self._seq[key] = self._next = self._next + 1
            self._count_ns(key, svc)
            if after == before:
                continue
            for owner in before.keys() | after.keys():
                parts = after.get(owner)
                if before.get(owner) == parts:
                    continue
                by_key = self._owners.setdefault(owner, {})
                if parts is None:
                    del by_key[key]
                else:
                    by_key[key] = parts
                touched.add(owner)
        for owner in touched:
            self._owner_changed(owner)
        self.pending.clear()
        return self.dirty

    def _count_ns(self, key: str, svc: Service | None) -> None:
        """Keep the count of Services per namespace (each one's namespace once)."""
        ns = key.split("/", 1)[0]
        had, has = key in self._nskeys, svc is not None
        if had != has:
            self._ns[ns] = self._ns.get(ns, 0) + (1 if has else -1)
            if not self._ns[ns]:
                del self._ns[ns]
            (self._nskeys.add if has else self._nskeys.discard)(key)

    def _ordered_parts(self, owner: str) -> list[Parts]:
        by_key = self._owners.get(owner) or {}
        if len(by_key) < 2:
            return list(by_key.values())
        seq = self._seq
        return [by_key[k] for k in sorted(by_key, key=lambda k: seq.get(k, 0))]

    def _owner_changed(self, owner: str) -> None:
        self.dirty = True
        if owner in self.frame_owners:
            return  # joined with the frame's lines in index()
        text, eps = _joined((), self._ordered_parts(owner))
        if not self._owners.get(owner):
            self._owners.pop(owner, None)
        if eps is None:
            self._eps.pop(owner, None)
        else:
            self._eps[owner] = eps
        had = owner in self._text
        if text is None or (not had and self._above(owner) is None):
            if had:
                del self._text[owner]
                for name in self._above(owner) or ():
                    self._anc[name] -= 1
                    if not self._anc[name]:
                        del self._anc[name]
            return
        self._text[owner] = text
        if not had:
            for name in self._above(owner) or ():
                self._anc[name] = self._anc.get(name, 0) + 1

    def _above(self, owner: str) -> list[str] | None:
        """The names between owner and its zone's apex; None when no zone holds it."""
        name, above = owner, []
        while name not in self.apexes:
            name = name.partition(".")[2]
            if not name:
                return None
            above.append(name)
        return above[:-1]

    def index(self, serial: int) -> records.Index:
        """The index build_index gives for the inputs last refreshed."""
        fr = records.frame(*self._frame_args, serial=serial)
        out = dict(self._text)
        eps = dict(self._eps)
        ents = set(self._anc)
        for owner, lines in fr.recs.items():
            text, e = _joined(tuple(lines), self._ordered_parts(owner))
            if text is not None:
                out[owner] = text
                ents.update(self._above(owner) or ())
            if e is not None:
                eps[owner] = e
        ents.update(fr.ents)
        for ns in self._known | self._ns.keys():
            ents.update((f"{ns}.svc.{self.zone}".lower(), f"{ns}.pod.{self.zone}".lower()))
        ents = {n for n in ents if n not in out and n not in self.apexes}
        endpoints = {o: ips for o, ips in eps.items() if o in out}
        self.dirty, self._published = False, True
        return records.Index(tuple(fr.zones), out, frozenset(ents), self.ttl, serial, f"pod.{self.zone}", endpoints)


def _joined(frame_lines: tuple[str, ...], parts: list[Parts]) -> tuple[str | None, str | None]:
    """An owner's records and endpoints from the frame's lines and each Service's parts,
    as Builder.build joins them."""
    lines = list(frame_lines)
    targets: list[str] = []
    ips: list[str] = []
    for ls, srv, ep in parts:
        lines += ls
        targets += srv
        ips += ep
    if targets:
        lines += records.srv_lines(targets)
    return (records.rrset_text(lines) if lines else None), (" ".join(dict.fromkeys(ips)) if ips else None)
