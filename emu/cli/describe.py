"""`kemu describe`: kubectl's describers (pkg/describe), from objects in Kubernetes' JSON shape.

Pods, Services, Deployments and Nodes as kubectl prints them; any other kind as YAML.
The text is laid out as kubectl lays it out: lines written with tab-separated cells at
indentation levels, then aligned by a Go-tabwriter equivalent (padding 2), so the
`Key:   value` columns line up the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emu.cli.output import (
    Obj,
    age,
    dump,
    event_times,
    format_labels,
    format_selector,
    node_roles,
    parse_time,
)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ANNOTATION_LEN = 140


def tabwriter(text: str, padding: int = 2) -> str:
    """Go's text/tabwriter (minwidth 0, padding 2, padchar ' '): align tab-terminated cells.

    A column block is a run of consecutive lines that have a tab-terminated cell in that
    column; every cell of the block is padded to the block's widest cell plus `padding`.
    The last cell of a line (after its last tab) never counts.
    """
    lines = [ln.split("\t") for ln in text.split("\n")]
    out: list[str] = []

    def fmt(line0: int, line1: int, widths: list[int]) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(line0, this, widths)
            line0 = this
            width = 0
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            fmt(line0, this, [*widths, width])
            line0 = this
        write(line0, line1, widths)

    def write(a: int, b: int, widths: list[int]) -> None:
        for cells in lines[a:b]:
            out.append("".join(c.ljust(widths[j]) if j < len(widths) else c for j, c in enumerate(cells)))

    fmt(0, len(lines), [])
    return "\n".join(ln.rstrip() for ln in out)


class PrefixWriter:
    """kubectl's PrefixWriter: text at an indentation level (two spaces a level), then tabwriter."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.pending = ""

    def write(self, level: int, text: str) -> None:
        self.pending += "  " * level + text

    def flush(self) -> None:
        if self.pending:
            self.done.append(tabwriter(self.pending.removesuffix("\n")))
        self.pending = ""

    def text(self) -> str:
        self.flush()
        return "\n".join(self.done)


# --- shared pieces ------------------------------------------------------------------------


def rfc1123z(ts: str | None) -> str:
    """Go's time.RFC1123Z in local time (`Mon, 02 Jan 2006 15:04:05 -0700`), as kubectl prints."""
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    return datetime.fromtimestamp(t).astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


def _labels(w: PrefixWriter, title: str, labels: dict[str, str] | None) -> None:
    w.write(0, f"{title}:\t")
    if not labels:
        w.write(0, "<none>\n")
        return
    for i, k in enumerate(sorted(labels)):
        if i:
            w.write(0, "\t")
        w.write(0, f"{k}={labels[k]}\n")


def _annotations(w: PrefixWriter, title: str, annotations: dict[str, str] | None) -> None:
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in annotations or {} if k != LAST_APPLIED)
    if not keys:
        w.write(0, "<none>\n")
        return
    for i, k in enumerate(keys):
        if i:
            w.write(0, "\t")
        line = f"{k}: {(annotations or {})[k]}".replace("\n", " ")
        w.write(0, (line[:MAX_ANNOTATION_LEN] + "...") if len(line) > MAX_ANNOTATION_LEN else line)
        w.write(0, "\n")


def _tolerations(w: PrefixWriter, title: str, tolerations: list[Obj] | None) -> None:
    w.write(0, f"{title}:\t")
    if not tolerations:
        w.write(0, "<none>\n")
        return
    for i, t in enumerate(tolerations):
        if i:
            w.write(0, "\t")
        s = t.get("key", "")
        if t.get("value"):
            s += f"={t['value']}"
        if t.get("effect"):
            s += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            s += " op=Exists" if t.get("key") or t.get("effect") else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            s += f" for {t['tolerationSeconds']}s"
        w.write(0, s + "\n")


def _event_time(e: Obj) -> float:
    series = e.get("series") or {}
    for ts in (series.get("lastObservedTime"), e.get("lastTimestamp"), e.get("eventTime"), e.get("firstTimestamp")):
        t = parse_time(ts)
        if t is not None:
            return t
    return 0.0


def _events(w: PrefixWriter, events: list[Obj] | None, now: float | None) -> None:
    if events is None:
        return
    if not events:
        w.write(0, "Events:\t<none>\n")
        return
    w.flush()
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in sorted(events, key=_event_time):
        last, first, count = event_times(e, now)
        interval = f"{last} (x{count} over {first})" if count > 1 else first
        source = (e.get("source") or {}).get("component") or e.get("reportingController") or e.get("reportingComponent") or ""
        message = str(e.get("message") or e.get("note") or "").strip()
        w.write(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{interval}\t{source}\t{message}\n")


def events_for(events: list[Obj], obj: Obj) -> list[Obj]:
    """The events whose involvedObject (or regarding) is `obj`."""
    meta = obj.get("metadata") or {}
    out = []
    for e in events:
        inv = e.get("involvedObject") or e.get("regarding") or {}
        if inv.get("name") != meta.get("name") or inv.get("kind", obj.get("kind")) != obj.get("kind"):
            continue
        if meta.get("namespace") and inv.get("namespace", meta["namespace"]) != meta["namespace"]:
            continue
        if meta.get("uid") and inv.get("uid") and inv["uid"] != meta["uid"]:
            continue
        out.append(e)
    return out


def _port(value: Any) -> str:
    return "" if value is None else str(value)


def describe_probe(p: Obj) -> str:
    """kubectl's DescribeProbe, with the API server's defaults for fields not set."""
    attrs = (
        f"delay={p.get('initialDelaySeconds', 0)}s timeout={p.get('timeoutSeconds', 1)}s period={p.get('periodSeconds', 10)}s "
        f"#success={p.get('successThreshold', 1)} #failure={p.get('failureThreshold', 3)}"
    )
    if "exec" in p:
        return f"exec [{' '.join((p['exec'] or {}).get('command') or [])}] {attrs}"
    if "httpGet" in p:
        h = p["httpGet"] or {}
        scheme = str(h.get("scheme", "HTTP")).lower()
        return f"http-get {scheme}://{h.get('host', '')}:{_port(h.get('port'))}{h.get('path', '')} {attrs}"
    if "tcpSocket" in p:
        t = p["tcpSocket"] or {}
        return f"tcp-socket {t.get('host', '')}:{_port(t.get('port'))} {attrs}"
    if "grpc" in p:
        g = p["grpc"] or {}
        return f"grpc <pod>:{g.get('port')} {g.get('service', '')} {attrs}"
    return f"unknown {attrs}"


def _field_value(pod: Obj | None, path: str) -> str:
    """What a fieldRef resolves to in this pod (kubectl's EnvValueRetriever)."""
    if pod is None:
        return ""
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": st.get("hostIP"),
        "status.podIP": st.get("podIP"),
        "status.podIPs": ",".join(i.get("ip", "") for i in st.get("podIPs") or []),
    }
    if path in simple:
        return str(simple[path] or "")
    for prefix, source in (("metadata.labels", meta.get("labels")), ("metadata.annotations", meta.get("annotations"))):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((source or {}).get(path[len(prefix) + 2 : -2], ""))
    return ""


def _state(w: PrefixWriter, title: str, state: Obj | None) -> None:
    state = state or {}
    if state.get("running") is not None:
        w.write(2, f"{title}:\tRunning\n")
        if state["running"].get("startedAt"):
            w.write(3, f"Started:\t{rfc1123z(state['running']['startedAt'])}\n")
    elif state.get("waiting") is not None:
        w.write(2, f"{title}:\tWaiting\n")
        if state["waiting"].get("reason"):
            w.write(3, f"Reason:\t{state['waiting']['reason']}\n")
    elif state.get("terminated") is not None:
        t = state["terminated"]
        w.write(2, f"{title}:\tTerminated\n")
        if t.get("reason"):
            w.write(3, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            w.write(3, f"Message:\t{t['message']}\n")
        w.write(3, f"Exit Code:\t{t.get('exitCode', 0)}\n")
        if t.get("signal"):
            w.write(3, f"Signal:\t{t['signal']}\n")
        w.write(3, f"Started:\t{rfc1123z(t.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{rfc1123z(t.get('finishedAt'))}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")


def _env(w: PrefixWriter, c: Obj, pod: Obj | None) -> None:
    if c.get("envFrom"):
        w.write(2, "Environment Variables from:\n")
        for e in c["envFrom"]:
            ref, source = (e.get("configMapRef"), "ConfigMap") if e.get("configMapRef") else (e.get("secretRef") or {}, "Secret")
            optional = str(bool((ref or {}).get("optional"))).lower()
            with_prefix = f" with prefix '{e['prefix']}'" if e.get("prefix") else ""
            w.write(3, f"{(ref or {}).get('name', '')}\t{source}{with_prefix}\tOptional: {optional}\n")
    env = c.get("env") or []
    w.write(2, "Environment:" + ("" if env else "\t<none>") + "\n")
    for e in env:
        vf = e.get("valueFrom")
        if vf is None:
            for i, s in enumerate(str(e.get("value", "")).split("\n")):
                w.write(3, f"{e['name']}:\t{s}\n" if i == 0 else f"\t{s}\n")
        elif vf.get("fieldRef"):
            f = vf["fieldRef"]
            w.write(
                3, f"{e['name']}:\t{_field_value(pod, f.get('fieldPath', ''))} ({f.get('apiVersion', 'v1')}:{f.get('fieldPath', '')})\n"
            )
        elif vf.get("resourceFieldRef"):
            w.write(3, f"{e['name']}:\t ({vf['resourceFieldRef'].get('resource', '')})\n")
        elif vf.get("secretKeyRef"):
            r = vf["secretKeyRef"]
            optional = str(bool(r.get("optional"))).lower()
            w.write(3, f"{e['name']}:\t<set to the key '{r.get('key')}' in secret '{r.get('name')}'>\tOptional: {optional}\n")
        elif vf.get("configMapKeyRef"):
            r = vf["configMapKeyRef"]
            optional = str(bool(r.get("optional"))).lower()
            w.write(3, f"{e['name']}:\t<set to the key '{r.get('key')}' of config map '{r.get('name')}'>\tOptional: {optional}\n")


def _containers(w: PrefixWriter, label: str, containers: list[Obj], statuses: list[Obj] | None, pod: Obj | None, space: str = "") -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    w.write(0, f"{space}{label}:" + ("\n" if containers else " <none>\n"))
    for c in containers:
        st = by_name.get(c.get("name"))
        w.write(1, f"{' ' if space else ''}{c.get('name')}:\n")
        if st is not None and st.get("containerID"):
            w.write(2, f"Container ID:\t{st['containerID']}\n")
        w.write(2, f"Image:\t{c.get('image', '')}\n")
        if st is not None and st.get("imageID"):
            w.write(2, f"Image ID:\t{st['imageID']}\n")
        ports = c.get("ports") or []
        port_s = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in ports)
        host_s = ", ".join(f"{p.get('hostPort', 0)}/{p.get('protocol', 'TCP')}" for p in ports)
        w.write(2, (f"Ports:\t{port_s}" if len(ports) > 1 else f"Port:\t{port_s or '<none>'}") + "\n")
        w.write(2, (f"Host Ports:\t{host_s}" if len(ports) > 1 else f"Host Port:\t{host_s or '<none>'}") + "\n")
        for title, key in (("Command", "command"), ("Args", "args")):
            if c.get(key):
                w.write(2, f"{title}:\n")
                for part in c[key]:
                    for s in str(part).split("\n"):
                        w.write(3, s + "\n")
        if st is not None:
            _state(w, "State", st.get("state") or ({"running": {}} if st.get("started") else None))
            if (st.get("lastState") or {}).get("terminated"):
                _state(w, "Last State", st["lastState"])
            w.write(2, f"Ready:\t{'True' if st.get('ready') else 'False'}\n")
            w.write(2, f"Restart Count:\t{st.get('restartCount', 0)}\n")
        res = c.get("resources") or {}
        for title, key in (("Limits", "limits"), ("Requests", "requests")):
            if res.get(key):
                w.write(2, f"{title}:\n")
                for name in sorted(res[key]):
                    w.write(3, f"{name}:\t{res[key][name]}\n")
        for title, key in (("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"), ("Startup", "startupProbe")):
            if c.get(key):
                w.write(2, f"{title}:\t{describe_probe(c[key])}\n")
        _env(w, c, pod)
        mounts = sorted(c.get("volumeMounts") or [], key=lambda m: m.get("mountPath", ""))
        w.write(2, "Mounts:" + ("" if mounts else "\t<none>") + "\n")
        for m in mounts:
            flags = ["ro" if m.get("readOnly") else "rw"] + ([f'path="{m["subPath"]}"'] if m.get("subPath") else [])
            w.write(3, f"{m.get('mountPath')} from {m.get('name')} ({','.join(flags)})\n")


def _volumes(w: PrefixWriter, volumes: list[Obj] | None, space: str = "") -> None:
    if not volumes:
        w.write(0, f"{space}Volumes:\t<none>\n")
        return
    w.write(0, f"{space}Volumes:\n")
    for v in volumes:
        w.write(0, f"{space}  {v.get('name')}:\n")
        kinds = [k for k in v if k != "name"]
        source = kinds[0] if kinds else "<unknown>"
        w.write(2, f"{space}Type:\t{source[0].upper() + source[1:]}\n")
        for k, val in sorted((v.get(source) or {}).items()) if isinstance(v.get(source), dict) else []:
            if not isinstance(val, (dict, list)):
                w.write(2, f"{space}{k[0].upper() + k[1:]}:\t{val}\n")


def _qos(pod: Obj) -> str:
    st = pod.get("status") or {}
    if st.get("qosClass"):
        return str(st["qosClass"])
    cs = (pod.get("spec") or {}).get("containers") or []
    res = [c.get("resources") or {} for c in cs]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    guaranteed = all(
        all(
            (r.get("limits") or {}).get(k) is not None
            and (r.get("requests") or r.get("limits") or {}).get(k) == (r.get("limits") or {}).get(k)
            for k in ("cpu", "memory")
        )
        for r in res
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _controller(obj: Obj) -> str:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return ""


# --- the describers -----------------------------------------------------------------------


def describe_pod(pod: Obj, events: list[Obj] | None, now: float | None = None) -> str:
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"Priority:\t{spec.get('priority', 0)}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{spec['runtimeClassName']}\n")
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if sa:
        w.write(0, f"Service Account:\t{sa}\n")
    w.write(0, f"Node:\t{spec['nodeName'] + '/' + st.get('hostIP', '') if spec.get('nodeName') else '<none>'}\n")
    if st.get("startTime"):
        w.write(0, f"Start Time:\t{rfc1123z(st['startTime'])}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    phase = st.get("phase", "")
    if meta.get("deletionTimestamp") and phase not in ("Failed", "Succeeded"):
        w.write(0, f"Status:\tTerminating (lasts {age(meta['deletionTimestamp'], now)})\n")
        if meta.get("deletionGracePeriodSeconds") is not None:
            w.write(0, f"Termination Grace Period:\t{meta['deletionGracePeriodSeconds']}s\n")
    else:
        w.write(0, f"Status:\t{phase}\n")
    if st.get("reason"):
        w.write(0, f"Reason:\t{st['reason']}\n")
    if st.get("message"):
        w.write(0, f"Message:\t{st['message']}\n")
    w.write(0, f"IP:\t{st.get('podIP', '')}\n")
    ips = st.get("podIPs") or ([{"ip": st["podIP"]}] if st.get("podIP") else [])
    if ips:
        w.write(0, "IPs:\n")
        for ip in ips:
            w.write(1, f"IP:\t{ip.get('ip', '')}\n")
    else:
        w.write(0, "IPs:\t<none>\n")
    if _controller(pod):
        w.write(0, f"Controlled By:\t{_controller(pod)}\n")
    if st.get("nominatedNodeName"):
        w.write(0, f"NominatedNodeName:\t{st['nominatedNodeName']}\n")
    if spec.get("initContainers"):
        _containers(w, "Init Containers", spec["initContainers"], st.get("initContainerStatuses"), pod)
    _containers(w, "Containers", spec.get("containers") or [], st.get("containerStatuses"), pod)
    if spec.get("readinessGates"):
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        for g in spec["readinessGates"]:
            w.write(1, f"{g.get('conditionType')} \t{conds.get(g.get('conditionType'), '<none>')} \n")
    if st.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for c in st["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')} \n")
    _volumes(w, spec.get("volumes"))
    w.write(0, f"QoS Class:\t{_qos(pod)}\n")
    _labels(w, "Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, "Tolerations", spec.get("tolerations"))
    _events(w, events, now)
    return w.text()


def _slice_endpoints(slices: list[Obj], port: Obj) -> str:
    """kubectl's formatEndpointSlices for one Service port: ready addresses with the slice's port, three at most."""
    if not slices:
        return "<none>"
    found: list[str] = []
    for sl in slices:
        ready = [e for e in sl.get("endpoints") or [] if (e.get("conditions") or {}).get("ready", True) and e.get("addresses")]
        ports = sl.get("ports") or []
        if not ports:
            found += [e["addresses"][0] for e in ready]
            continue
        for p in ports:
            if p.get("name", "") != port.get("name", ""):
                continue
            for e in ready:
                addr = e["addresses"][0]
                if p.get("port") is not None:
                    addr = f"[{addr}]:{p['port']}" if ":" in addr else f"{addr}:{p['port']}"
                found.append(addr)
    if not found:
        return "<none>"
    text = ",".join(found[:3])
    return f"{text} + {len(found) - 3} more..." if len(found) > 3 else text


def describe_service(svc: Obj, slices: list[Obj], events: list[Obj] | None, now: float | None = None) -> str:
    meta, spec, st = svc.get("metadata") or {}, svc.get("spec") or {}, svc.get("status") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{format_labels(spec.get('selector'))}\n")
    w.write(0, f"Type:\t{spec.get('type', 'ClusterIP')}\n")
    if spec.get("ipFamilyPolicy"):
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w.write(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or '<none>'}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w.write(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or '<none>'}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("loadBalancerIP"):
        w.write(0, f"Desired LoadBalancer IP:\t{spec['loadBalancerIP']}\n")
    if spec.get("externalName"):
        w.write(0, f"External Name:\t{spec['externalName']}\n")
    ingress = (st.get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        shown = []
        for i in ingress:
            s = i.get("ip") or i.get("hostname") or ""
            shown.append(f"{s} ({i['ipMode']})" if i.get("ipMode") else s)
        w.write(0, f"LoadBalancer Ingress:\t{', '.join(shown)}\n")
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        proto = p.get("protocol", "TCP")
        w.write(0, f"Port:\t{name}\t{p.get('port')}/{proto}\n")
        w.write(0, f"TargetPort:\t{p.get('targetPort', p.get('port'))}/{proto}\n")
        if p.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{p['nodePort']}/{proto}\n")
        w.write(0, f"Endpoints:\t{_slice_endpoints(slices, p)}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity', 'None')}\n")
    if spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        w.write(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    if spec.get("healthCheckNodePort"):
        w.write(0, f"HealthCheck NodePort:\t{spec['healthCheckNodePort']}\n")
    if spec.get("loadBalancerSourceRanges"):
        w.write(0, f"LoadBalancer Source Ranges:\t{','.join(spec['loadBalancerSourceRanges'])}\n")
    _events(w, events, now)
    return w.text()


def _template(w: PrefixWriter, template: Obj) -> None:
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    w.write(0, "Pod Template:\n")
    _labels(w, "  Labels", meta.get("labels"))
    if meta.get("annotations"):
        _annotations(w, "  Annotations", meta["annotations"])
    if spec.get("serviceAccountName"):
        w.write(1, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("initContainers"):
        _containers(w, "Init Containers", spec["initContainers"], None, None, "  ")
    _containers(w, "Containers", spec.get("containers") or [], None, None, "  ")
    _volumes(w, spec.get("volumes"), "  ")
    if spec.get("priorityClassName"):
        w.write(1, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    _labels(w, "  Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, "  Tolerations", spec.get("tolerations"))


def describe_deployment(d: Obj, replicasets: list[Obj], events: list[Obj] | None, now: float | None = None) -> str:
    meta, spec, st = d.get("metadata") or {}, d.get("spec") or {}, d.get("status") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    want = spec.get("replicas", 1)
    unavailable = st.get("unavailableReplicas", max(0, int(st.get("replicas", 0)) - int(st.get("availableReplicas", 0))))
    w.write(
        0,
        f"Replicas:\t{want} desired | {st.get('updatedReplicas', 0)} updated | {st.get('replicas', 0)} total | "
        f"{st.get('availableReplicas', 0)} available | {unavailable} unavailable\n",
    )
    strategy = spec.get("strategy") or {}
    stype = strategy.get("type", "RollingUpdate")
    w.write(0, f"StrategyType:\t{stype}\n")
    w.write(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}\n")
    if stype == "RollingUpdate":
        ru = strategy.get("rollingUpdate") or {}
        w.write(0, f"RollingUpdateStrategy:\t{ru.get('maxUnavailable', '25%')} max unavailable, {ru.get('maxSurge', '25%')} max surge\n")
    _template(w, spec.get("template") or {})
    if st.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
        w.write(1, "----\t------\t------\n")
        for c in st["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')}\t{c.get('reason', '')}\n")

    def rs_text(rss: list[Obj]) -> str:
        return (
            ", ".join(
                f"{(r.get('metadata') or {}).get('name')} ({(r.get('status') or {}).get('replicas', 0)}/"
                f"{(r.get('spec') or {}).get('replicas', 1)} replicas created)"
                for r in rss
            )
            or "<none>"
        )

    def revision(r: Obj) -> int:
        rev = ((r.get("metadata") or {}).get("annotations") or {}).get("deployment.kubernetes.io/revision", "0")
        return int(rev) if str(rev).isdigit() else 0

    newest = max(replicasets, key=revision, default=None)
    w.write(0, f"OldReplicaSets:\t{rs_text([r for r in replicasets if r is not newest and (r.get('spec') or {}).get('replicas', 0)])}\n")
    w.write(0, f"NewReplicaSet:\t{rs_text([newest] if newest is not None else [])}\n")
    _events(w, events, now)
    return w.text()


def describe_node(node: Obj, pods: list[Obj], events: list[Obj] | None, now: float | None = None) -> str:
    meta, spec, st = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Roles:\t{node_roles(node)}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    taints = spec.get("taints") or []
    w.write(0, "Taints:\t")
    if not taints:
        w.write(0, "<none>\n")
    for i, t in enumerate(taints):
        value = f"={t['value']}" if t.get("value") else ""
        w.write(0, ("\t" if i else "") + f"{t.get('key')}{value}:{t.get('effect')}\n")
    w.write(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}\n")
    conds = st.get("conditions") or []
    if conds:
        w.write(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in conds:
            w.write(
                1,
                f"{c.get('type')} \t{c.get('status')} \t{rfc1123z(c.get('lastHeartbeatTime'))} \t"
                f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t{c.get('message', '')}\n",
            )
    w.write(0, "Addresses:\n")
    for a in st.get("addresses") or []:
        w.write(1, f"{a.get('type')}:\t{a.get('address')}\n")
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        if st.get(key):
            w.write(0, f"{title}:\n")
            for k in sorted(st[key]):
                w.write(1, f"{k}:\t{st[key][k]}\n")
    info = st.get("nodeInfo") or {}
    if info:
        w.write(0, "System Info:\n")
        for title, key in (
            ("Machine ID", "machineID"),
            ("System UUID", "systemUUID"),
            ("Boot ID", "bootID"),
            ("Kernel Version", "kernelVersion"),
            ("OS Image", "osImage"),
            ("Operating System", "operatingSystem"),
            ("Architecture", "architecture"),
            ("Container Runtime Version", "containerRuntimeVersion"),
            ("Kubelet Version", "kubeletVersion"),
            ("Kube-Proxy Version", "kubeProxyVersion"),
        ):
            if key in info:
                w.write(1, f"{title}:\t{info[key]}\n")
    planes = st.get("dataplane") or {}
    if planes:
        w.write(0, "Dataplane:\n  Plane\tLastSync\tDuration\tSyncs\tError\n")
        w.write(1, "-----\t--------\t--------\t-----\t-----\n")
        for plane, ps in planes.items():
            err = f"{ps['error']} (retrying in {ps.get('retryInSeconds', 0)}s)" if ps.get("error") else "<none>"
            last = age(ps.get("lastSyncTime"), now) + " ago" if ps.get("lastSyncTime") else "<never>"
            w.write(1, f"{plane}\t{last}\t{ps.get('lastSyncDurationMs', 0)}ms\t{ps.get('syncs', 0)}\t{err}\n")
    if spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{spec['podCIDR']}\n")
        w.write(0, f"PodCIDRs:\t{','.join(spec.get('podCIDRs') or [spec['podCIDR']])}\n")
    running = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    w.write(0, f"Non-terminated Pods:\t({len(running)} in total)\n")
    if running:
        w.write(1, "Namespace\tName\tIP\tAge\n")
        w.write(1, "---------\t----\t--\t---\n")
        for p in sorted(running, key=lambda p: ((p.get("metadata") or {}).get("namespace", ""), (p.get("metadata") or {}).get("name", ""))):
            pm = p.get("metadata") or {}
            ip = (p.get("status") or {}).get("podIP") or "<none>"
            w.write(1, f"{pm.get('namespace', '')}\t{pm.get('name', '')}\t{ip}\t{age(pm.get('creationTimestamp'), now)}\n")
    _events(w, events, now)
    return w.text()


def describe_other(obj: Obj) -> str:
    """Kinds without a describer of their own: the object as YAML."""
    return dump(obj, "yaml")
