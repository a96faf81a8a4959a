"""Printing objects as kubectl does: tables, -o wide|name|json|yaml, from Kubernetes' JSON shape.

The column layouts follow kubectl's printers (pkg/printers/internalversion): the same
headers, the same cell texts (`<none>`, `<pending>`, `Init:0/2`, `80:30080/TCP`, ages
like `3m12s` or `2d4h`). Kinds come from the registry (emu/config/registry.py) only.
Every cell that reads the clock is here, beside `clock` (tests replace it); the pure
formatters are emu/cli/output_format.py and emu/cli/output_columns.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import yaml

from emu.cli import output_gateway
from emu.cli.output_columns import address, node_roles, node_status, pod_status, service_external_ip, service_ports
from emu.cli.output_format import (
    Obj,
    _containers_images,
    _lb_ingress,
    _list_with_more,
    _meta,
    _name,
    _spec,
    _status,
    _template_spec,
    _true_condition,
    format_labels,
    format_selector,
    human_duration,
    parse_time,
    qualified_name,
)
from emu.cli.tabwriter import format_table
from emu.config import registry

# --- time -------------------------------------------------------------------------------


def clock() -> float:
    """Now, in epoch seconds (tests replace it)."""
    return time.time()


def age(ts: str | None, now: float | None = None) -> str:
    """kubectl's translateTimestampSince: `<unknown>` when there is no timestamp."""
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    return human_duration((clock() if now is None else now) - t)


def _created(o: Obj, now: float | None) -> str:
    return age(_meta(o).get("creationTimestamp"), now)


# --- one function per kind: (header, wide header, cells) -------------------------------------

Cells = Callable[[Obj, float | None, bool], list[str]]


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


def _service(o: Obj, now: float | None, wide: bool) -> list[str]:
    sp = _spec(o)
    cells = [_name(o), sp.get("type", "ClusterIP"), sp.get("clusterIP") or "<none>", service_external_ip(o, wide), service_ports(o)]
    cells.append(_created(o, now))
    if wide:
        cells.append(format_labels(sp.get("selector")))
    return cells


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
