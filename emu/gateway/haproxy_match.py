"""Choosing a route entry in an HAProxy frontend: the listener by Host, then the first
entry of that listener whose hostname and match hold; its action's number goes to
`txn.act`.

  1. `txn.host` = the Host header without port, lower-cased.
  2. `txn.lst` = the first listener whose hostname matches (they come most specific
     first, GEP-1713; a request never falls through to a less specific listener).
  3. Entries in order, first match wins:
     - "simple" entries (exact or no hostname, Exact or PathPrefix path, nothing else)
       go into runs, each one map lookup: the key "<host><path>/?" against patterns
       "<host><prefix>/" (whole segments: "/a" matches "/a", "/a/", "/a/b", not "/ab")
       and "<host><path>/?" (Exact; `path` never holds "?"). HAProxy indexes `map_beg`
       patterns in a prefix tree and returns the longest match; with the entries an
       earlier one shadows dropped (an earlier pattern is a prefix of theirs), the
       longest match is the first in order, so a lookup equals the rules it replaces.
       An entry joins a run across entries it cannot compete with (another hostname, a
       disjoint path), which keeps runs long in spec-sorted routes.
     - any other entry is a rule: `!{ var(txn.act) -m found }` first (after a match the
       remaining rules cost one variable test and no header, query or regex work), then
       the cheap tests before the costly ones.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

from emu.gateway import haproxy_syntax as hs
from emu.gateway.haproxy_sections import trim_prefix
from emu.gateway.model import Action, Listener, Match, RouteEntry
from emu.gateway.precedence import hostname_matches

log = logging.getLogger(__name__)

HOST_EXPR = 'req.hdr(host),lower,regsub(":[0-9]+$","")'  # "[::1]:80" → "[::1]"
MIN_MAP_RUN = 4  # shorter runs stay rules: easier to read, as fast
MAX_JUMPED = 64  # entries a run's later members may be checked against (bounds render time)
NOT_CHOSEN = "!{ var(txn.act) -m found }"
_MAP_SAFE = re.compile(r"[!-~]+")  # a map file key: printable, no space
_KEY_VARS = {"host": ("txn.hk", "%[var(txn.host)]%[path]/?"), "any": ("txn.pk", "%[path]/?")}


def host_condition(hostname: str | None, one_label: bool, var: str = "txn.host") -> str:
    """The ACL for a listener or entry hostname: exact, or a wildcard "*.x.y" matching
    one or more labels (Gateway API) or exactly one (Ingress); on `var` (the Host
    header's name, or the TLS server name)."""
    if hostname is None:
        return ""
    host = hostname.lower()
    if not host.startswith("*."):
        return hs.acl_string(f"var({var})", host)
    suffix = host[1:]
    if one_label:
        return hs.acl_pattern(f"var({var})", "reg", "^[^.]+" + re.escape(suffix) + "$")
    return hs.acl_pattern(f"var({var})", "end", suffix)


def match_conditions(m: Match, query_vars: dict[str, str]) -> list[str]:
    """The ACLs of one HTTPRouteMatch, cheapest first (all must hold). `query_vars`:
    query parameter name → the variable holding its first value (see query_rules)."""
    conds: list[str] = []
    if m.path_type == "Exact":
        conds.append(hs.acl_string("path", m.path))
    elif m.path_type == "PathPrefix":
        p = trim_prefix(m.path)
        if p:
            conds.append(hs.acl_pattern("var(txn.pk)", "beg", p + "/"))
    else:
        conds.append(hs.acl_pattern("path", "reg", hs.full_regex(m.path)))
    if m.method:
        conds.append(hs.acl_string("method", m.method))
    for h in m.headers:
        # req.fhdr: the whole value (req.hdr would split it at commas); every occurrence
        # is tried. Header names are case-insensitive in HAProxy, as in HTTP.
        fetch = f"req.fhdr({hs.arg(h.name)})"
        conds.append(hs.acl_string(fetch, h.value) if h.type == "Exact" else hs.acl_pattern(fetch, "reg", hs.full_regex(h.value)))
    for q in m.query:
        fetch = f"var({query_vars[q.name]})"
        conds.append(hs.acl_string(fetch, q.value) if q.type == "Exact" else hs.acl_pattern(fetch, "reg", hs.full_regex(q.value)))
    return conds


def query_rules(m: Match, query_vars: dict[str, str]) -> list[str]:
    """Rules putting the first value of each query parameter `m` tests, not yet held, in
    a variable: url_param gives the first occurrence of the (case-sensitive) name, as the
    spec asks, where an ACL would try every occurrence."""
    out = []
    for q in m.query:
        if q.name not in query_vars:
            var = query_vars[q.name] = f"txn.q{len(query_vars)}"
            out.append(f"http-request set-var({var}) {hs.word(f'url_param({hs.arg(q.name)})')} if {NOT_CHOSEN}")
    return out


def map_pattern(e: RouteEntry) -> tuple[str, str] | None:
    """(key form, pattern) of an entry a map lookup can take, else None."""
    m = e.match
    if m.headers or m.query or m.method or m.path_type not in ("Exact", "PathPrefix"):
        return None
    if e.hostname is not None and e.hostname.startswith("*."):
        return None
    host = (e.hostname or "").lower()
    path = m.path + "/?" if m.path_type == "Exact" else trim_prefix(m.path) + "/"
    pattern = host + path
    if not _MAP_SAFE.fullmatch(pattern) or "#" in pattern or "\\" in pattern:
        return None
    return ("host" if e.hostname is not None else "any"), pattern


def _hosts_overlap(a: RouteEntry, b: RouteEntry) -> bool:
    if a.hostname is None or b.hostname is None:
        return True
    ha, hb = a.hostname.lower(), b.hostname.lower()
    if ha.startswith("*.") and hb.startswith("*."):
        return True
    if hb.startswith("*."):
        return hostname_matches(hb, ha, b.one_label_wildcard)
    if ha.startswith("*."):
        return hostname_matches(ha, hb, a.one_label_wildcard)
    return ha == hb


def _paths_overlap(a: Match, b: Match) -> bool:
    """Whether some path satisfies both (a regex: assume so)."""
    if a.path_type == "RegularExpression" or b.path_type == "RegularExpression":
        return True
    if a.path_type == "Exact" and b.path_type == "Exact":
        return a.path == b.path
    if a.path_type == "Exact" or b.path_type == "Exact":
        exact, prefix = (a.path, trim_prefix(b.path)) if a.path_type == "Exact" else (b.path, trim_prefix(a.path))
        return not prefix or exact == prefix or exact.startswith(prefix + "/")
    p, q = trim_prefix(a.path), trim_prefix(b.path)
    return not p or not q or p == q or p.startswith(q + "/") or q.startswith(p + "/")


def overlap(a: RouteEntry, b: RouteEntry) -> bool:
    """Whether one request could satisfy both entries' hostname and path (conservative:
    their other tests are left out)."""
    return _hosts_overlap(a, b) and _paths_overlap(a.match, b.match)


@dataclass
class _Run:
    """Simple entries looked up together at the place of the first. An entry may join
    the run across entries it cannot compete with (another hostname, a disjoint path):
    choosing it earlier changes no request's first match."""

    form: str
    listener: int
    entries: list[tuple[int, str, str]] = field(default_factory=list)  # (action number, pattern, route)
    patterns: set[str] = field(default_factory=set)
    jumped_by_host: dict[str, list[RouteEntry]] = field(default_factory=dict)  # entries after the run's place
    jumped_wide: list[RouteEntry] = field(default_factory=list)  # ... with no or a wildcard hostname
    jumped: int = 0

    def shadowed(self, pattern: str) -> bool:
        """An earlier pattern is a prefix of this one: the entry can never be first."""
        return pattern in self.patterns or any(pattern[:i] in self.patterns for i in range(1, len(pattern)) if pattern[i - 1] == "/")

    def jump_over(self, e: RouteEntry) -> None:
        self.jumped += 1
        if e.hostname is None or e.hostname.startswith("*."):
            self.jumped_wide.append(e)
        else:
            self.jumped_by_host.setdefault(e.hostname.lower(), []).append(e)

    def may_take(self, e: RouteEntry) -> bool:
        if self.jumped > MAX_JUMPED:
            return False
        if e.hostname is None:
            rivals = [x for xs in self.jumped_by_host.values() for x in xs] + self.jumped_wide
        else:
            rivals = self.jumped_by_host.get(e.hostname.lower(), []) + self.jumped_wide
        return not any(overlap(e, r) for r in rivals)


@dataclass
class Selection:
    rules: list[str]  # http-request rules leaving the action's number in txn.act
    files: dict[str, str]  # map files (name → content)
    actions: list[Action]  # by number


def selection(fe_name: str, listeners: tuple[Listener, ...], map_dir: str, tls: bool = False) -> Selection:
    head = [f"http-request set-var(txn.host) {hs.word(HOST_EXPR)}"]
    # Listener choice: skipped when one listener takes every host.
    isolated = not (len(listeners) == 1 and listeners[0].hostname is None)
    if isolated:
        for i, lst in enumerate(listeners):
            cond = hs.join([("!{ var(txn.lst) -m found }" if i else ""), host_condition(lst.hostname, lst.one_label_wildcard)])
            head.append(hs.comment(f"listener {i}: {lst.name} ({lst.hostname or 'any host'})"))
            head.append(f"http-request set-var(txn.lst) int({i})" + (f" if {cond}" if cond else ""))
    if isolated and tls:
        head += misdirected_rules(listeners)
    # Actions are numbered by value, not id: entries of one rule may carry different
    # ReplacePrefixMatch prefixes under the same id.
    index: dict[Action, int] = {}
    items: list[_Run | tuple[int, int, RouteEntry]] = []  # runs and (listener, action, entry), in order
    for i, lst in enumerate(listeners):
        runs: dict[str, _Run] = {}  # the open run of each key form
        for e in lst.entries:
            k = index.setdefault(e.action, len(index))
            simple = map_pattern(e)
            if simple is None:
                items.append((i, k, e))
                for r in runs.values():
                    r.jump_over(e)
                continue
            form, pattern = simple
            run = runs.get(form)
            if run is None or not run.may_take(e):
                run = runs[form] = _Run(form, i)
                items.append(run)
            if run.shadowed(pattern):
                log.debug("%s: entry %s shadowed by an earlier one", fe_name, e.route)
                continue
            run.entries.append((k, pattern, e.route))
            run.patterns.add(pattern)
            for r in runs.values():
                if r is not run:
                    r.jump_over(e)
    body, files, vars_needed = _entry_rules(fe_name, items, isolated, map_dir)
    head += [f"http-request set-var-fmt({var}) {fmt}" for var, fmt in _KEY_VARS.values() if var in vars_needed]
    tail = [f'http-request return status 404 content-type text/plain string "no route matches\\n" if {NOT_CHOSEN}']
    return Selection(head + body + tail, files, list(index))


def misdirected_rules(listeners: tuple[Listener, ...]) -> list[str]:
    """421 for a request whose Host selects another listener than its TLS server name
    does (RFC 9110 §15.5.20; Gateway API's HTTPS listener misdirected-request rule)."""
    out = [hs.comment("the listener the TLS server name selects: another one than the Host's is misdirected")]
    out.append("http-request set-var(txn.sni) ssl_fc_sni,lower if { ssl_fc_sni -m found }")
    for i, lst in enumerate(listeners):
        cond = hs.join(
            [
                "{ var(txn.sni) -m found }",
                ("!{ var(txn.slst) -m found }" if i else ""),
                host_condition(lst.hostname, lst.one_label_wildcard, "txn.sni"),
            ]
        )
        out.append(f"http-request set-var(txn.slst) int({i}) if {cond}")
    out.append(
        'http-request return status 421 content-type text/plain string "misdirected request\\n" '
        "if { var(txn.slst) -m found } { var(txn.lst) -m found } !{ var(txn.lst),sub(txn.slst) -m int 0 }"
    )
    return out


def _entry_rules(
    fe_name: str, items: list[_Run | tuple[int, int, RouteEntry]], isolated: bool, map_dir: str
) -> tuple[list[str], dict[str, str], set[str]]:
    out: list[str] = []
    files: dict[str, str] = {}
    vars_needed: set[str] = set()
    query_vars: dict[str, str] = {}

    def listener_cond(i: int) -> str:
        return f"{{ var(txn.lst) -m int {i} }}" if isolated else ""

    for item in items:
        if isinstance(item, _Run) and len(item.entries) >= MIN_MAP_RUN:
            var = _KEY_VARS[item.form][0]
            vars_needed.add(var)
            name = f"{fe_name}.run{len(files)}.map"
            files[name] = "".join(f"{pattern} {k}\n" for k, pattern, _ in item.entries)
            lookup = f"var({var}),map_beg_int({hs.arg(os.path.join(map_dir, name))})"
            out.append(hs.comment(f"{len(item.entries)} entries by map ({name})"))
            out.append(f"http-request set-var(txn.act) {hs.word(lookup)} if {hs.join([NOT_CHOSEN, listener_cond(item.listener)])}")
            continue
        if isinstance(item, _Run):
            # A short run: the same test spelled as rules.
            var = _KEY_VARS[item.form][0]
            vars_needed.add(var)
            for k, pattern, route in item.entries:
                out.append(hs.comment(route or "entry"))
                cond = hs.acl_pattern(f"var({var})", "beg", pattern)
                out.append(f"http-request set-var(txn.act) int({k}) if {hs.join([NOT_CHOSEN, listener_cond(item.listener), cond])}")
            continue
        i, k, e = item
        out.append(hs.comment(e.route or "entry"))
        out += query_rules(e.match, query_vars)
        if e.match.path_type == "PathPrefix" and trim_prefix(e.match.path):
            vars_needed.add("txn.pk")
        conds = [NOT_CHOSEN, listener_cond(i), host_condition(e.hostname, e.one_label_wildcard), *match_conditions(e.match, query_vars)]
        out.append(f"http-request set-var(txn.act) int({k}) if {hs.join(conds)}")
    return out, files, vars_needed
