"""`kemu describe`'s text for a pod's spec: containers, their probes, state and env, volumes.

kubectl's describeContainers, describeVolumes and DescribePodTemplate: what a Pod's
describer prints for its containers (with their statuses when it has them), and what a
workload's describer prints for its pod template (the same, indented, without statuses).
"""

from __future__ import annotations

from typing import Any

from emu.cli.describe_sections import _annotations, _labels, _tolerations, rfc1123z
from emu.cli.output_format import Obj
from emu.cli.tabwriter import PrefixWriter


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
