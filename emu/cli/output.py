"""Printing objects as kubectl does: tables, -o wide|name|json|yaml, from Kubernetes' JSON shape.

The column layouts follow kubectl's printers (pkg/printers/internalversion): the same
headers, the same cell texts (`<none>`, `<pending>`, `Init:0/2`, `80:30080/TCP`, ages
like `3m12s` or `2d4h`). Kinds come from the registry (emu/config/registry.py) only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import yaml

from emu.cli import output_gateway
from emu.config import registry

Obj = dict[str, Any]


# --- time -------------------------------------------------------------------------------


def clock() -> float:
    """Now, in epoch seconds (tests replace it)."""
    return time.time()


def parse_time(ts: str | None) -> float | None:
    """An RFC 3339 timestamp (`2024-01-02T03:04:05Z`, with or without fractions) → epoch seconds."""
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery's duration.HumanDuration: 5s, 3m12s, 15m, 4h5m, 10h, 2d4h, 30d, 2y10d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(ts: str | None, now: float | None = None) -> str:
    """kubectl's translateTimestampSince: `<unknown>` when there is no timestamp."""
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    return human_duration((clock() if now is None else now) - t)


# --- small formatters -----------------------------------------------------------------------


def format_labels(labels: dict[str, str] | None) -> str:
    """labels.FormatLabels: `a=1,b=2` sorted by key, `<none>` when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def selector_string(sel: Obj | None) -> str:
    """A LabelSelector in kubectl's selector syntax (`app=web,tier in (a,b),!old`), "" when empty."""
    if not sel:
        return ""
    reqs: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], sorted(e.get("values") or [])
        if op == "In":
            reqs.append((key, f"{key} in ({','.join(values)})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({','.join(values)})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
    return ",".join(text for _, text in sorted(reqs, key=lambda r: r[0]))


def format_selector(sel: Obj | None) -> str:
    """metav1.FormatLabelSelector: the selector's text, `<none>` when empty."""
    return selector_string(sel) or "<none>"


def kind_prefix(kind: str) -> str:
    """`pod`, `service`, `deployment.apps`: how kubectl qualifies a name (`-o name`, several kinds)."""
    info = registry.info(kind)
    group = info.group if info is not None else ""
    return f"{kind.lower()}.{group}" if group else kind.lower()


def qualified_name(kind: str, name: str) -> str:
    return f"{kind_prefix(kind)}/{name}"


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def _spec(o: Obj) -> Obj:
    return o.get("spec") or {}


def _status(o: Obj) -> Obj:
    return o.get("status") or {}


def _name(o: Obj) -> str:
    return str(_meta(o).get("name", ""))


def _created(o: Obj, now: float | None) -> str:
    return age(_meta(o).get("creationTimestamp"), now)


def _containers_images(template_spec: Obj) -> list[str]:
    cs = template_spec.get("containers") or []
    return [",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)]


def _lb_ingress(status: Obj, wide: bool) -> str:
    """loadBalancerStatusStringer: ingress IPs or hostnames; long lists cut unless wide."""
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    s = ",".join(i.get("ip") or i.get("hostname") or "" for i in ingress if i.get("ip") or i.get("hostname"))
    if not wide and len(s) > 16:
        s = s[:13] + "..."
    return s


def _list_with_more(items: list[str], count: int, most: int = 3) -> str:
    ret = ",".join(items[:most])
    if count > most:
        return f"{ret} + {count - most} more..."
    return ret or "<unset>"


# --- one function per kind: (header, wide header, cells) -------------------------------------

Cells = Callable[[Obj, float | None, bool], list[str]]


def _true_condition(conds: list[Obj], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conds)


def pod_status(o: Obj) -> tuple[str, int, int, int, float | None]:
    """kubectl's printPod: (STATUS, ready, total, restarts, last restart time)."""
    spec, st = _spec(o), _status(o)
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(1 for c in init_specs.values() if c.get("restartPolicy") == "Always")
    phase = st.get("phase") or "Pending"
    reason = st.get("reason") or ("Completed" if phase == "Succeeded" else phase)
    for c in st.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    restarts = ready = 0
    last_restart: float | None = None
    sidecar_restarts = 0
    sidecar_last: float | None = None

    def finished(cs: Obj) -> float | None:
        return parse_time((((cs.get("lastState") or {}).get("terminated")) or {}).get("finishedAt"))

    initializing = False
    inits = st.get("initContainerStatuses") or []
    for i, cs in enumerate(inits):
        restarts += int(cs.get("restartCount") or 0)
        t = finished(cs)
        if t is not None and (last_restart is None or t > last_restart):
            last_restart = t
        sidecar = (init_specs.get(cs.get("name")) or {}).get("restartPolicy") == "Always"
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            if t is not None and (sidecar_last is None or t > sidecar_last):
                sidecar_last = t
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term is not None and int(term.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if term.get("reason"):
                reason = "Init:" + term["reason"]
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode', 0)}"
        elif wait is not None and wait.get("reason") and wait.get("reason") != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs) or len(inits)}"
        initializing = True
        break
    if not initializing or _true_condition(st.get("conditions") or [], "Initialized"):
        restarts, last_restart = sidecar_restarts, sidecar_last
        has_running = False
        for cs in reversed(st.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            t = finished(cs)
            if t is not None and (last_restart is None or t > last_restart):
                last_restart = t
            state = cs.get("state")
            wait = (state or {}).get("waiting")
            term = (state or {}).get("terminated")
            if wait is not None and wait.get("reason"):
                reason = wait["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"
            elif cs.get("ready") and (not state or "running" in state):  # no state: trust ready
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _true_condition(st.get("conditions") or [], "Ready") else "NotReady"
    if _meta(o).get("deletionTimestamp"):
        reason = "Unknown" if st.get("reason") == "NodeLost" else "Terminating"
    return reason, ready, total, restarts, last_restart


def _pod(o: Obj, now: float | None, wide: bool) -> list[str]:
    reason, ready, total, restarts, last = pod_status(o)
    restarts_s = str(restarts)
    if restarts and last is not None:
        restarts_s = f"{restarts} ({human_duration((clock() if now is None else now) - last)} ago)"
    cells = [_name(o), f"{ready}/{total}", reason, restarts_s, _created(o, now)]
    if wide:
        spec, st = _spec(o), _status(o)
        ips = st.get("podIPs") or []
        ip = (ips[0].get("ip") if ips else None) or st.get("podIP") or "<none>"
        gates = spec.get("readinessGates") or []
        gates_s = "<none>"
        if gates:
            conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
            gates_s = f"{sum(1 for g in gates if conds.get(g.get('conditionType')) == 'True')}/{len(gates)}"
        cells += [ip, spec.get("nodeName") or "<none>", st.get("nominatedNodeName") or "<none>", gates_s]
    return cells


def service_external_ip(o: Obj, wide: bool) -> str:
    sp, typ = _spec(o), _spec(o).get("type", "ClusterIP")
    ext = list(sp.get("externalIPs") or [])
    if typ in ("ClusterIP", "NodePort"):
        return ",".join(ext) or "<none>"
    if typ == "LoadBalancer":
        lb = _lb_ingress(_status(o), wide)
        return ",".join(([lb] if lb else []) + ext) or "<pending>"
    if typ == "ExternalName":
        return str(sp.get("externalName", ""))
    return "<unknown>"


def service_ports(o: Obj) -> str:
    out = []
    for p in _spec(o).get("ports") or []:
        proto = p.get("protocol", "TCP")
        out.append(f"{p.get('port')}:{p['nodePort']}/{proto}" if p.get("nodePort") else f"{p.get('port')}/{proto}")
    return ",".join(out) or "<none>"


def _service(o: Obj, now: float | None, wide: bool) -> list[str]:
    sp = _spec(o)
    cells = [_name(o), sp.get("type", "ClusterIP"), sp.get("clusterIP") or "<none>", service_external_ip(o, wide), service_ports(o)]
    cells.append(_created(o, now))
    if wide:
        cells.append(format_labels(sp.get("selector")))
    return cells


def _template_spec(o: Obj) -> Obj:
    return (_spec(o).get("template") or {}).get("spec") or {}


def _deployment(o: Obj, now: float | None, wide: bool) -> list[str]:
    sp, st = _spec(o), _status(o)
    want = sp.get("replicas", 1)
    cells = [
        _name(o),
        f"{st.get('readyReplicas', 0)}/{want}",
        str(st.get("updatedReplicas", 0)),
        str(st.get("availableReplicas", 0)),
        _created(o, now),
    ]
    if wide:
        cells += [*_containers_images(_template_spec(o)), format_selector(sp.get("selector"))]
    return cells


def _replicaset(o: Obj, now: float | None, wide: bool) -> list[str]:
    sp, st = _spec(o), _status(o)
    cells = [_name(o), str(sp.get("replicas", 1)), str(st.get("replicas", 0)), str(st.get("readyReplicas", 0)), _created(o, now)]
    if wide:
        cells += [*_containers_images(_template_spec(o)), format_selector(sp.get("selector"))]
    return cells


def _replicationcontroller(o: Obj, now: float | None, wide: bool) -> list[str]:
    sp, st = _spec(o), _status(o)
    cells = [_name(o), str(sp.get("replicas", 1)), str(st.get("replicas", 0)), str(st.get("readyReplicas", 0)), _created(o, now)]
    if wide:
        cells += [*_containers_images(_template_spec(o)), format_labels(sp.get("selector"))]
    return cells


def _statefulset(o: Obj, now: float | None, wide: bool) -> list[str]:
    cells = [_name(o), f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}", _created(o, now)]
    if wide:
        cells += _containers_images(_template_spec(o))
    return cells


def _daemonset(o: Obj, now: float | None, wide: bool) -> list[str]:
    st = _status(o)
    cells = [_name(o)] + [
        str(st.get(k, 0))
        for k in ("desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled", "numberAvailable")
    ]
    cells += [format_labels(_template_spec(o).get("nodeSelector")), _created(o, now)]
    if wide:
        cells += [*_containers_images(_template_spec(o)), format_selector(_spec(o).get("selector"))]
    return cells


def _job(o: Obj, now: float | None, wide: bool) -> list[str]:
    sp, st = _spec(o), _status(o)
    succeeded = st.get("succeeded", 0)
    if sp.get("completions") is not None:
        completions = f"{succeeded}/{sp['completions']}"
    elif (sp.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {sp['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start, end = parse_time(st.get("startTime")), parse_time(st.get("completionTime"))
    duration = ""
    if start is not None:
        duration = human_duration((end if end is not None else (clock() if now is None else now)) - start)
    conds = st.get("conditions") or []
    if _true_condition(conds, "Complete"):
        status = "Complete"
    elif _true_condition(conds, "Failed"):
        status = "Failed"
    elif _meta(o).get("deletionTimestamp"):
        status = "Terminating"
    elif _true_condition(conds, "Suspended"):
        status = "Suspended"
    elif _true_condition(conds, "FailureTarget"):
        status = "FailureTarget"
    else:
        status = "Running"
    cells = [_name(o), status, completions, duration, _created(o, now)]
    if wide:
        cells += [*_containers_images(_template_spec(o)), format_selector(sp.get("selector"))]
    return cells


def node_status(o: Obj) -> str:
    ready = next((c for c in _status(o).get("conditions") or [] if c.get("type") == "Ready"), None)
    status = ["Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")]
    if _spec(o).get("unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_roles(o: Obj) -> str:
    roles = set()
    for k, v in (_meta(o).get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1]:
            roles.add(k.split("/", 1)[1])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return ",".join(sorted(roles)) or "<none>"


def address(o: Obj, kind: str) -> str:
    return next((a["address"] for a in _status(o).get("addresses") or [] if a.get("type") == kind), "<none>")


def _node(o: Obj, now: float | None, wide: bool) -> list[str]:
    info = _status(o).get("nodeInfo") or {}
    cells = [_name(o), node_status(o), node_roles(o), _created(o, now), info.get("kubeletVersion", "")]
    if wide:
        cells += [
            address(o, "InternalIP"),
            address(o, "ExternalIP"),
            info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>",
        ]
    return cells


def _host(o: Obj, now: float | None, wide: bool) -> list[str]:
    return [_name(o), address(o, "ExternalIP")]


def _namespace(o: Obj, now: float | None, wide: bool) -> list[str]:
    return [_name(o), _status(o).get("phase", "Active"), _created(o, now)]


def _configmap(o: Obj, now: float | None, wide: bool) -> list[str]:
    return [_name(o), str(len(o.get("data") or {}) + len(o.get("binaryData") or {})), _created(o, now)]


def _secret(o: Obj, now: float | None, wide: bool) -> list[str]:
    return [_name(o), o.get("type", "Opaque"), str(len(o.get("data") or {}) + len(o.get("stringData") or {})), _created(o, now)]


def _serviceaccount(o: Obj, now: float | None, wide: bool) -> list[str]:
    return [_name(o), str(len(o.get("secrets") or [])), _created(o, now)]


def _endpointslice(o: Obj, now: float | None, wide: bool) -> list[str]:
    ports = o.get("ports") or []
    port_texts = [str(p["port"]) if p.get("port") is not None else (p.get("name") or "<unset>") for p in ports]
    addrs = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        _name(o),
        o.get("addressType", ""),
        _list_with_more(port_texts, len(ports)),
        _list_with_more(addrs, len(addrs)),
        _created(o, now),
    ]


def _networkpolicy(o: Obj, now: float | None, wide: bool) -> list[str]:
    return [_name(o), format_selector(_spec(o).get("podSelector")), _created(o, now)]


def _ingress(o: Obj, now: float | None, wide: bool) -> list[str]:
    sp = _spec(o)
    rules = sp.get("rules") or []
    hosts = [r["host"] for r in rules[:3] if r.get("host")]
    hosts_s = ",".join(hosts) or "*"
    if len(rules) > 3 and hosts:
        hosts_s += f" + {len(rules) - 3} more..."
    ports = "80, 443" if sp.get("tls") else "80"
    return [_name(o), sp.get("ingressClassName") or "<none>", hosts_s, _lb_ingress(_status(o), wide), ports, _created(o, now)]


def event_times(o: Obj, now: float | None) -> tuple[str, str, int]:
    """(last seen, first seen, count) as kubectl's printEvent computes them."""
    first = age(o.get("firstTimestamp"), now) if o.get("firstTimestamp") else age(o.get("eventTime"), now)
    last = age(o.get("lastTimestamp"), now) if o.get("lastTimestamp") else first
    count = int(o.get("count") or 0)
    series = o.get("series")
    if series:
        last = age(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1
    return last, first, count


def _event(o: Obj, now: float | None, wide: bool) -> list[str]:
    last, first, count = event_times(o, now)
    inv = o.get("involvedObject") or o.get("regarding") or {}
    target = f"{str(inv.get('kind', '')).lower()}/{inv['name']}" if inv.get("name") else str(inv.get("kind", "")).lower()
    message = str(o.get("message") or o.get("note") or "").strip()
    if wide:
        src = o.get("source") or {}
        return [
            last,
            o.get("type", ""),
            o.get("reason", ""),
            target,
            inv.get("fieldPath", ""),
            src.get("component", ""),
            src.get("host", ""),
            message,
            first,
            str(count),
            _name(o),
        ]
    return [last, o.get("type", ""), o.get("reason", ""), target, message]


def _other(o: Obj, now: float | None, wide: bool) -> list[str]:
    return [_name(o), _created(o, now)]


# kind → (header, extra wide header, cells, first column is NAME)
LAYOUTS: dict[str, tuple[list[str], list[str], Cells, bool]] = {
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"], _pod, True),
    "Service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"], _service, True),
    "Deployment": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"], _deployment, True),
    "ReplicaSet": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"], _replicaset, True),
    "ReplicationController": (
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        _replicationcontroller,
        True,
    ),
    "StatefulSet": (["NAME", "READY", "AGE"], ["CONTAINERS", "IMAGES"], _statefulset, True),
    "DaemonSet": (
        ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        _daemonset,
        True,
    ),
    "Job": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"], _job, True),
    "Node": (
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"],
        _node,
        True,
    ),
    "Host": (["NAME", "EXTERNAL-IP"], [], _host, True),
    "Namespace": (["NAME", "STATUS", "AGE"], [], _namespace, True),
    "ConfigMap": (["NAME", "DATA", "AGE"], [], _configmap, True),
    "Secret": (["NAME", "TYPE", "DATA", "AGE"], [], _secret, True),
    "ServiceAccount": (["NAME", "SECRETS", "AGE"], [], _serviceaccount, True),
    "EndpointSlice": (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], [], _endpointslice, True),
    "NetworkPolicy": (["NAME", "POD-SELECTOR", "AGE"], [], _networkpolicy, True),
    "Ingress": (["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"], [], _ingress, True),
    "Event": (["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], [], _event, False),
}


def _aged(columns: output_gateway.Columns) -> Cells:
    """Columns that take the object's age, given the clock."""

    def cells(o: Obj, now: float | None, wide: bool) -> list[str]:
        return columns(o, _created(o, now), wide)

    return cells


LAYOUTS.update({kind: (head, wide_head, _aged(columns), True) for kind, (head, wide_head, columns) in output_gateway.LAYOUTS.items()})
EVENT_WIDE_HEADER = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"]
DEFAULT_LAYOUT: tuple[list[str], list[str], Cells, bool] = (["NAME", "AGE"], [], _other, True)


def rows(
    kind: str,
    items: list[Obj],
    wide: bool,
    all_ns: bool,
    *,
    show_labels: bool = False,
    with_kind: bool = False,
    now: float | None = None,
) -> list[list[str]]:
    """The table (header first) for objects of one kind, as kubectl prints it."""
    head, wide_head, cells, has_name = LAYOUTS.get(kind, DEFAULT_LAYOUT)
    head = EVENT_WIDE_HEADER if kind == "Event" and wide else head + (wide_head if wide else [])
    out = [cells(o, now, wide) for o in items]
    if with_kind and has_name:
        out = [[qualified_name(kind, r[0]), *r[1:]] for r in out]
    if show_labels:
        head = [*head, "LABELS"]
        out = [[*r, format_labels(_meta(o).get("labels"))] for o, r in zip(items, out, strict=True)]
    if all_ns and registry.is_namespaced(kind):
        head = ["NAMESPACE", *head]
        out = [[str(_meta(o).get("namespace", "")), *r] for o, r in zip(items, out, strict=True)]
    return [head, *out]


def format_table(table: list[list[str]], headers: bool = True) -> str:
    """Columns three spaces apart, as kubectl's tabwriter sets them; the last one unpadded."""
    body = table if headers else table[1:]
    if not body:
        return ""
    widths = [max(len(r[i]) for r in body) for i in range(len(table[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body)


def as_list(items: list[Obj]) -> Obj:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def dump(doc: Any, output: str) -> str:
    if output == "json":
        return json.dumps(doc, indent=4)
    return yaml.safe_dump(doc, sort_keys=False).rstrip()


def render_many(
    groups: list[tuple[str, list[Obj]]],
    output: str | None,
    all_ns: bool,
    single: bool = False,
    *,
    show_labels: bool = False,
    no_headers: bool = False,
    now: float | None = None,
) -> str:
    """Objects of one or several kinds ([(kind, items), ...], in the order asked), as kubectl prints them.

    Several kinds: one table per kind with `kind/name` names, a blank line between
    tables; `-o json|yaml` one List (the object itself when `single` was asked and found).
    """
    every = [o for _, items in groups for o in items]
    if output in ("json", "yaml"):
        return dump(every[0] if single and len(every) == 1 else as_list(every), output)
    if output == "name":
        return "\n".join(qualified_name(kind, _name(o)) for kind, items in groups for o in items)
    with_kind = len({kind for kind, _ in groups}) > 1
    tables = [
        format_table(
            rows(kind, items, output == "wide", all_ns, show_labels=show_labels, with_kind=with_kind, now=now),
            headers=not no_headers,
        )
        for kind, items in groups
        if items
    ]
    return "\n\n".join(t for t in tables if t)


def render(kind: str, items: list[Obj], output: str | None, all_ns: bool, single: bool) -> str:
    """One kind (the shell's `get`)."""
    if output in ("json", "yaml"):
        return render_many([(kind, items)], output, all_ns, single)
    if not items:
        return ""
    return render_many([(kind, items)], output, all_ns)
