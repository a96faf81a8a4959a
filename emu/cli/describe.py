"""`kemu describe`: kubectl's describers (pkg/describe), from objects in Kubernetes' JSON shape.

Pods, Services, Deployments and Nodes as kubectl prints them; any other kind as YAML.
The text is laid out as kubectl lays it out: lines written with tab-separated cells at
indentation levels, then aligned by a Go-tabwriter equivalent (padding 2), so the
`Key:   value` columns line up the same way. The layout is emu/cli/tabwriter.py, the
sections every kind shares emu/cli/describe_sections.py, a pod spec's parts
emu/cli/describe_podspec.py.
"""

from __future__ import annotations

from emu.cli.describe_podspec import _containers, _template, _volumes
from emu.cli.describe_sections import _annotations, _events, _labels, _tolerations, rfc1123z
from emu.cli.output import age, dump
from emu.cli.output_columns import node_roles
from emu.cli.output_format import Obj, format_labels, format_selector
from emu.cli.tabwriter import PrefixWriter


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
