"""The cells of kubectl's printers that take more than a field: a pod's STATUS, a Node's ROLES.

printPod's (STATUS, READY, RESTARTS) walk over init containers, sidecars and container
states; a Service's EXTERNAL-IP and PORT(S); a Node's STATUS, ROLES and addresses. Pure
functions of one object in Kubernetes' JSON shape, used by `kemu get`'s tables
(emu/cli/output.py) and `kemu describe`.
"""

from __future__ import annotations

from emu.cli.output_format import Obj, _lb_ingress, _meta, _spec, _status, _true_condition, parse_time


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
