"""A running cluster as Graphviz DOT, from the objects `kemu get KIND -A -o json` prints.

Two views: the topology (the node network, nodes with their pods by namespace, external
hosts, Services and their ready endpoints, LoadBalancer IPs, Gateways and their routes),
and who may reach whom (pod → pod, from the NetworkPolicy oracle's verdicts). Pure: no
cluster, no graphviz; the same objects always give the same text (everything sorted).

Labels are HTML-like (`<…>`): XML escaping is the only escaping they need, where DOT's
quoted strings give backslashes meanings of their own. Node IDs are ASCII, made from the
objects' names by percent-encoding anything else, so they are stable and unambiguous.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from emu.daemon.protocol import ReachabilityRow as Verdict

Obj = dict[str, Any]

# Above this many pods, straight edges: spline routing is most of dot's time on big graphs.
LARGE = 300

FONT = "Helvetica,Arial,sans-serif"  # generic families only: no fonts to ship
C_SWITCH, C_NODE, C_NODE_BG, C_HOST = "#37474f", "#90caf9", "#e3f2fd", "#cfd8dc"
C_NS, C_POD, C_POD_UNREADY = "#c8e6c9", "#ffffff", "#ffe0b2"
C_SVC, C_SVC_LINE, C_LB = "#ffe082", "#e65100", "#6a1b9a"
C_GW, C_ROUTE = "#d1c4e9", "#f8bbd0"
C_ALLOW, C_PARTIAL, C_DENY = "#2e7d32", "#ef6c00", "#c62828"


@dataclass(frozen=True)
class Objects:
    """What the topology is drawn from (each as `kemu get -A -o json` lists it)."""

    nodes: Sequence[Obj] = ()
    pods: Sequence[Obj] = ()
    services: Sequence[Obj] = ()
    slices: Sequence[Obj] = ()
    hosts: Sequence[Obj] = ()
    gateways: Sequence[Obj] = ()
    routes: Sequence[Obj] = ()  # HTTPRoutes, GRPCRoutes


def node_id(kind: str, name: str) -> str:
    """A quoted DOT ID: `kind:name` with anything but [A-Za-z0-9_.:/-] percent-encoded."""
    safe = re.sub(r"[^A-Za-z0-9_.:/-]", lambda m: "".join(f"%{b:02x}" for b in m.group().encode()), name)
    return f'"{kind}:{safe}"'


def esc(text: object) -> str:
    """Text for an HTML-like label."""
    return html.escape(str(text), quote=True)


def lines(*parts: str) -> str:
    """An HTML-like label of (already escaped) lines."""
    return "<" + "<BR/>".join(p for p in parts if p) + ">"


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def _name(o: Obj) -> str:
    return str(_meta(o).get("name", ""))


def key(o: Obj) -> str:
    """`ns/name` (or `name` for a cluster-scoped object)."""
    ns = _meta(o).get("namespace")
    return f"{ns}/{_name(o)}" if ns else _name(o)


def _address(o: Obj, *types: str) -> str:
    for a in (o.get("status") or {}).get("addresses") or []:
        if a.get("type") in types:
            return str(a.get("address", ""))
    return ""


def pod_ready(p: Obj) -> bool:
    conds = (p.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _attrs(**kw: object) -> str:
    """DOT attributes; values starting with `<` are HTML-like labels, the rest quoted."""
    out = []
    for k, v in kw.items():
        s = str(v)
        out.append(f"{k}={s}" if s.startswith("<") else f'{k}="{s}"')
    return "[" + ", ".join(out) + "]"


def _header(name: str, title: str, large: bool) -> list[str]:
    graph = _attrs(
        rankdir="LR",
        fontname=FONT,
        fontsize=14,
        labelloc="t",
        label=lines(f"<B>{esc(title)}</B>"),
        nodesep=0.2,
        ranksep=0.9,
        newrank="true",
        bgcolor="white",
        **({"splines": "line", "nslimit": 2, "nslimit1": 2, "mclimit": 0.3, "remincross": "false"} if large else {}),
    )
    return [
        f"digraph {name} {{",
        f"  graph {graph}",
        f"  node {_attrs(fontname=FONT, fontsize=10, shape='box', style='rounded,filled', fillcolor='white')}",
        f"  edge {_attrs(fontname=FONT, fontsize=9, color='#607d8b', arrowsize=0.7)}",
    ]


# --- the topology ----------------------------------------------------------------------------


def _pod_table(ns: str, pods: list[Obj], ports: dict[str, str]) -> str:
    """One namespace's pods on one node: a table, a row (and port) per pod."""
    rows = [f'<TR><TD COLSPAN="2" BGCOLOR="{C_NS}"><B>{esc(ns)}</B></TD></TR>']
    for p in pods:
        st = p.get("status") or {}
        ready = pod_ready(p)
        name = esc(_name(p)) if ready else f"<I>{esc(_name(p))} ({esc(st.get('phase') or 'Pending')}, not ready)</I>"
        bg = C_POD if ready else C_POD_UNREADY
        rows.append(
            f'<TR><TD PORT="{ports[key(p)]}" ALIGN="LEFT" BGCOLOR="{bg}">{name}</TD>'
            f'<TD ALIGN="LEFT" BGCOLOR="{bg}">{esc(st.get("podIP") or "no IP")}</TD></TR>'
        )
    return '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">' + "".join(rows) + "</TABLE>>"


def _service_label(s: Obj) -> str:
    sp, st = s.get("spec") or {}, s.get("status") or {}
    typ = str(sp.get("type") or "ClusterIP")
    ip = sp.get("clusterIP")
    where = sp.get("externalName") if typ == "ExternalName" else ("headless" if ip == "None" else ip or "no IP")
    ports = []
    for p in sp.get("ports") or []:
        text = f"{p.get('port')}/{p.get('protocol', 'TCP')}"
        if p.get("targetPort") not in (None, p.get("port")):
            text += f" → {p['targetPort']}"
        if p.get("nodePort"):
            text += f", node port {p['nodePort']}"
        ports.append(esc(text))
    lbs = [str(i.get("ip") or i.get("hostname")) for i in (st.get("loadBalancer") or {}).get("ingress") or []]
    return lines(
        f"<B>svc {esc(key(s))}</B>",
        f"{esc(typ)} {esc(where)}",
        *ports,
        *(f'<FONT COLOR="{C_LB}">LB {esc(ip)}</FONT>' for ip in lbs),
    )


def ready_endpoints(svc: Obj, slices: Iterable[Obj], pods_by_key: dict[str, Obj], pods_by_ip: dict[str, Obj]) -> list[str]:
    """The keys (ns/name) of the pods behind a Service's ready endpoints, sorted."""
    ns, name = _meta(svc).get("namespace"), _name(svc)
    found: set[str] = set()
    for sl in slices:
        m = _meta(sl)
        if m.get("namespace") != ns or (m.get("labels") or {}).get("kubernetes.io/service-name") != name:
            continue
        for e in sl.get("endpoints") or []:
            if (e.get("conditions") or {}).get("ready") is False:  # unset means ready (discovery/v1)
                continue
            ref = e.get("targetRef") or {}
            k = f"{ref.get('namespace') or ns}/{ref.get('name')}" if ref.get("kind", "Pod") == "Pod" and ref.get("name") else ""
            if k in pods_by_key:
                found.add(k)
                continue
            for a in e.get("addresses") or []:
                if a in pods_by_ip:
                    found.add(key(pods_by_ip[a]))
    return sorted(found)


def _gateway_label(g: Obj) -> str:
    sp, st = g.get("spec") or {}, g.get("status") or {}
    listeners = [f"{esc(x.get('name', ''))}: {esc(x.get('port'))}/{esc(x.get('protocol', ''))}" for x in sp.get("listeners") or []]
    addrs = [esc(a.get("value", "")) for a in st.get("addresses") or []]
    return lines(
        f"<B>gateway {esc(key(g))}</B>",
        f"class {esc(sp.get('gatewayClassName', ''))}",
        *(f'<FONT COLOR="{C_LB}">{a}</FONT>' for a in addrs),
        *listeners,
    )


def _route_label(r: Obj) -> str:
    hosts = (r.get("spec") or {}).get("hostnames") or []
    return lines(f"<B>{esc(str(r.get('kind') or 'HTTPRoute').lower())} {esc(key(r))}</B>", *(esc(h) for h in hosts))


def topology(objs: Objects, title: str = "cluster") -> str:
    """The topology as DOT (a digraph named `kemu`)."""
    pods = sorted(objs.pods, key=lambda p: ((p.get("spec") or {}).get("nodeName") or "", key(p)))
    out = _header("kemu", f"cluster {title}", len(pods) > LARGE)
    out.append(f"  switch {_attrs(label=lines('<B>node network</B>', 'switch'), shape='box', fillcolor=C_SWITCH, fontcolor='white')}")
    for h in sorted(objs.hosts, key=_name):
        label = lines(f"<B>{esc(_name(h))}</B>", esc(_address(h, "ExternalIP", "InternalIP")), "<I>external host</I>")
        out.append(f"  {node_id('host', _name(h))} {_attrs(label=label, fillcolor=C_HOST)}")
        out.append(f"  {node_id('host', _name(h))} -> switch {_attrs(dir='none', penwidth=2, color=C_SWITCH)}")

    # Pods by node, then namespace: one table per (node, namespace), a port per row.
    ports = {key(p): f"p{i}" for i, p in enumerate(pods)}
    where: dict[str, str] = {}  # pod key → the table's ID
    by_node: dict[str, dict[str, list[Obj]]] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName") or ""
        by_node.setdefault(node, {}).setdefault(str(_meta(p).get("namespace") or "default"), []).append(p)
    nodes = {_name(n): n for n in objs.nodes}
    for node in sorted(set(nodes) | set(by_node), key=lambda n: (n == "", n)):
        nid = node_id("node", node)
        if node:
            n = nodes.get(node, {})
            label = f"<B>node {esc(node)}</B>" if node in nodes else f"<B>node {esc(node)}</B> (not found)"
            out.append(f"  subgraph {node_id('cluster_node', node)} {{")
            out.append(f"    graph {_attrs(label=lines(label), style='rounded,filled', fillcolor=C_NODE_BG, color='#1565c0', fontsize=12)}")
            cidr = (n.get("spec") or {}).get("podCIDR")
            nlabel = lines(f"<B>{esc(node)}</B>", esc(_address(n, "InternalIP")), f"pods {esc(cidr)}" if cidr else "")
            out.append(f"    {nid} {_attrs(label=nlabel, shape='box3d', style='filled', fillcolor=C_NODE)}")
        else:
            out.append(f"  subgraph {node_id('cluster_node', '')} {{")
            out.append(f"    graph {_attrs(label=lines('<B>not scheduled</B>'), style='dashed', color='#9e9e9e')}")
        for ns, group in sorted(by_node.get(node, {}).items()):
            tid = node_id("pods", f"{node}/{ns}")
            for p in group:
                where[key(p)] = tid
            out.append(f"    {tid} {_attrs(shape='plain', style='', label=_pod_table(ns, group, ports))}")
            if node:
                out.append(f"    {nid} -> {tid} {_attrs(style='invis')}")
        out.append("  }")
        if node:
            out.append(f"  switch -> {nid} {_attrs(dir='none', penwidth=2, color=C_SWITCH)}")

    # Services: to the pods of their ready endpoints; a LoadBalancer IP to the node announcing it.
    by_key = {key(p): p for p in pods}
    by_ip = {str((p.get("status") or {}).get("podIP")): p for p in pods if (p.get("status") or {}).get("podIP")}
    services = sorted(objs.services, key=key)
    # A box around the Services reads well, but a cluster of many costs dot most of its
    # crossing minimisation (1,000 pods: 1.8 s with it, 0.7 s without): small graphs only.
    boxed = bool(services) and len(pods) <= LARGE
    if boxed:
        out.append("  subgraph cluster_services {")
        out.append(f"    graph {_attrs(label=lines('<B>Services</B>'), style='rounded', color=C_SVC_LINE, fontsize=12)}")
    for s in services:
        out.append(f"  {node_id('svc', key(s))} {_attrs(label=_service_label(s), fillcolor=C_SVC, color=C_SVC_LINE)}")
    if boxed:
        out.append("  }")
    for s in services:
        sid = node_id("svc", key(s))
        for k in ready_endpoints(s, objs.slices, by_key, by_ip):
            out.append(f"  {sid} -> {where[k]}:{ports[k]}:w {_attrs(color=C_SVC_LINE)}")
        by = (_meta(s).get("annotations") or {}).get("kemu.io/announced-by")
        if by:
            out.append(
                f"  {sid} -> {node_id('node', by)} {_attrs(style='dashed', color=C_LB, fontcolor=C_LB, label='announced by', constraint='false')}"
            )

    # Gateways → their routes (parentRefs) → the routes' backend Services.
    svc_keys = {key(s) for s in services}
    for g in sorted(objs.gateways, key=key):
        out.append(f"  {node_id('gw', key(g))} {_attrs(label=_gateway_label(g), fillcolor=C_GW, color='#4527a0')}")
    gw_keys = {key(g) for g in objs.gateways}
    missing: set[str] = set()
    for r in sorted(objs.routes, key=lambda r: (str(r.get("kind")), key(r))):
        rid = node_id("route", f"{r.get('kind')}/{key(r)}")
        ns = str(_meta(r).get("namespace") or "default")
        out.append(f"  {rid} {_attrs(label=_route_label(r), fillcolor=C_ROUTE, color='#ad1457')}")
        sp = r.get("spec") or {}
        for ref in sp.get("parentRefs") or []:
            gk = f"{ref.get('namespace') or ns}/{ref.get('name')}"
            if ref.get("kind", "Gateway") == "Gateway" and gk in gw_keys:
                out.append(f"  {node_id('gw', gk)} -> {rid} {_attrs(color='#4527a0')}")
        backends = sorted(
            {
                (f"{b.get('namespace') or ns}/{b.get('name')}", str(b.get("port", "")))
                for rule in sp.get("rules") or []
                for b in rule.get("backendRefs") or []
                if b.get("kind", "Service") == "Service" and b.get("name")
            }
        )
        for bk, port in backends:
            if bk not in svc_keys and bk not in missing:
                missing.add(bk)
                label = lines(f"<B>svc {esc(bk)}</B>", "<I>not found</I>")
                out.append(f"  {node_id('svc', bk)} {_attrs(label=label, style='dashed', color=C_DENY)}")
            out.append(f"  {rid} -> {node_id('svc', bk)} {_attrs(color='#ad1457', label=port)}")
    out.append("}")
    return "\n".join(out) + "\n"


# --- who may reach whom --------------------------------------------------------------------


def policies(pods: Sequence[Obj], verdicts: Iterable[Verdict], title: str = "cluster", show_denied: bool = True) -> str:
    """Pod → pod edges from the oracle's verdicts, one per (client, destination) pair:
    green when every served port is allowed, orange (labelled with the allowed ports) when
    some are, dashed red when none is (omitted unless `show_denied`). A pod's own traffic
    is never cut off, so self pairs are not drawn."""
    allowed: dict[tuple[str, str], list[str]] = {}
    denied: dict[tuple[str, str], list[str]] = {}
    for v in verdicts:
        if v["from"] == v["to"]:
            continue
        pair = (v["from"], v["to"])
        allowed.setdefault(pair, [])
        denied.setdefault(pair, [])
        (allowed if v["allowed"] else denied)[pair].append(f"{v['port']}/{v['protocol']}")
    keys = sorted({k for pair in allowed for k in pair})
    ips = {key(p): (p.get("status") or {}).get("podIP") or "" for p in pods}
    out = _header("kemu_policies", f"cluster {title}: who may reach whom (NetworkPolicy)", len(allowed) > LARGE * 10)
    by_ns: dict[str, list[str]] = {}
    for k in keys:
        by_ns.setdefault(k.split("/", 1)[0] if "/" in k else "", []).append(k)
    for ns, group in sorted(by_ns.items()):
        out.append(f"  subgraph {node_id('cluster_ns', ns)} {{")
        out.append(
            f"    graph {_attrs(label=lines(f'<B>namespace {esc(ns)}</B>'), style='rounded,filled', fillcolor='#f1f8e9', fontsize=12)}"
        )
        for k in group:
            label = lines(f"<B>{esc(k.split('/', 1)[-1])}</B>", esc(ips.get(k, "")))
            out.append(f"    {node_id('pod', k)} {_attrs(label=label, fillcolor=C_NS)}")
        out.append("  }")
    for pair in sorted(allowed):
        ok, no = sorted(allowed[pair]), sorted(denied[pair])
        src, dst = node_id("pod", pair[0]), node_id("pod", pair[1])
        if ok and not no:
            out.append(f"  {src} -> {dst} {_attrs(color=C_ALLOW)}")
        elif ok:
            out.append(f"  {src} -> {dst} {_attrs(color=C_PARTIAL, fontcolor=C_PARTIAL, label=', '.join(ok))}")
        elif show_denied:
            out.append(f"  {src} -> {dst} {_attrs(color=C_DENY, style='dashed', arrowhead='tee')}")
    legend = lines(
        "<B>legend</B>",
        f'<FONT COLOR="{C_ALLOW}">green: every served port allowed</FONT>',
        f'<FONT COLOR="{C_PARTIAL}">orange: only the ports named</FONT>',
        f'<FONT COLOR="{C_DENY}">dashed red: all denied</FONT>' if show_denied else "denied pairs: not drawn",
    )
    out.append(f"  legend {_attrs(label=legend, shape='note', style='filled', fillcolor='#fafafa')}")
    out.append("}")
    return "\n".join(out) + "\n"
