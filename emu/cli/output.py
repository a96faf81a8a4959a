"""Printing objects as kubectl does: tables, -o wide, -o json, -o yaml."""

from __future__ import annotations

import calendar
import json
import time
from typing import Any

import yaml


def _age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    secs = int(time.time() - calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")))
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= n:
            return f"{secs // n}{unit}"
    return f"{secs}s"


def _ready(o: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in o["status"].get("conditions", []))


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def _address(o: dict[str, Any], kind: str) -> str:
    return next((a["address"] for a in o["status"].get("addresses", []) if a["type"] == kind), "<none>")


def _selector_text(sel: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted(sel.get("matchLabels", {}).items())]
    parts += [f"{e['key']} {e['operator']} {','.join(e.get('values', []))}".strip() for e in sel.get("matchExpressions", [])]
    return ",".join(parts) or "<none>"


def rows(kind: str, items: list[dict[str, Any]], wide: bool, all_ns: bool) -> list[list[str]]:
    if kind == "Pod":
        head = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (["IP", "NODE"] if wide else [])
        out = []
        for o in items:
            cs = o["status"].get("containerStatuses", [])
            r = [
                o["metadata"]["name"],
                f"{sum(1 for c in cs if c['ready'])}/{len(o['spec']['containers'])}",
                o["status"]["phase"],
                "0",
                _age(o["status"].get("startTime")),
            ]
            if wide:
                r += [o["status"].get("podIP", "<none>"), o["spec"].get("nodeName", "<none>")]
            out.append(r)
    elif kind == "Node":
        head = ["NAME", "STATUS", "ROLES", "INTERNAL-IP", "POD-CIDR"] + (["LABELS"] if wide else [])
        out = [
            [o["metadata"]["name"], "Ready", "<none>", _address(o, "InternalIP"), o["spec"]["podCIDR"]]
            + ([_labels(o["metadata"]["labels"])] if wide else [])
            for o in items
        ]
    elif kind == "Host":
        head = ["NAME", "EXTERNAL-IP"]
        out = [[o["metadata"]["name"], _address(o, "ExternalIP")] for o in items]
    elif kind == "Namespace":
        head = ["NAME", "STATUS"] + (["LABELS"] if wide else [])
        out = [[o["metadata"]["name"], o["status"]["phase"]] + ([_labels(o["metadata"]["labels"])] if wide else []) for o in items]
    elif kind == "Deployment":
        head = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE"] + (["SELECTOR"] if wide else [])
        out = []
        for o in items:
            s = o["status"]
            sel = o["spec"]["selector"].get("matchLabels", {})
            r = [
                o["metadata"]["name"],
                f"{s['readyReplicas']}/{o['spec']['replicas']}",
                str(s["updatedReplicas"]),
                str(s["availableReplicas"]),
            ]
            out.append(r + ([_labels(sel)] if wide else []))
    elif kind == "Service":
        head = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"] + (["SELECTOR"] if wide else [])
        out = []
        for o in items:
            sp = o["spec"]
            ext = [i["ip"] for i in o["status"].get("loadBalancer", {}).get("ingress", [])] + sp.get("externalIPs", [])
            if sp["type"] == "ExternalName":
                ext_s = sp.get("externalName", "")
            else:
                ext_s = ",".join(ext) or ("<pending>" if sp["type"] == "LoadBalancer" else "<none>")
            ports = ",".join(
                f"{p['port']}" + (f":{p['nodePort']}" if p.get("nodePort") else "") + f"/{p['protocol']}" for p in sp.get("ports", [])
            )
            r = [o["metadata"]["name"], sp["type"], sp.get("clusterIP", "<none>"), ext_s, ports or "<none>"]
            out.append(r + ([_labels(sp.get("selector", {}))] if wide else []))
    elif kind == "NetworkPolicy":
        head = ["NAME", "POD-SELECTOR"]
        out = [[o["metadata"]["name"], _selector_text(o["spec"]["podSelector"])] for o in items]
    elif kind == "EndpointSlice":
        head = ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS"]
        out = [
            [
                o["metadata"]["name"],
                o["addressType"],
                ",".join(str(p["port"]) for p in o["ports"]) or "<unset>",
                ",".join(a for e in o["endpoints"] for a in e["addresses"]) or "<unset>",
            ]
            for o in items
        ]
    else:
        head, out = ["NAME"], [[o["metadata"]["name"]] for o in items]
    if all_ns and kind in ("Pod", "Deployment", "Service", "EndpointSlice", "NetworkPolicy"):
        head = ["NAMESPACE", *head]
        out = [[o["metadata"]["namespace"], *r] for o, r in zip(items, out, strict=True)]
    return [head, *out]


def format_table(table: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table)


def render(kind: str, items: list[dict[str, Any]], output: str | None, all_ns: bool, single: bool) -> str:
    if output in ("json", "yaml"):
        doc: Any = (
            items[0]
            if single and len(items) == 1
            else {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
        )
        if output == "json":
            return json.dumps(doc, indent=4)
        return yaml.safe_dump(doc, sort_keys=False).rstrip()
    if not items:
        return ""
    return format_table(rows(kind, items, output == "wide", all_ns))
