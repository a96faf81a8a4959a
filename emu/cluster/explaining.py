"""The oracle against a running cluster: `kemu explain` and `kemu probe --expect`."""

from __future__ import annotations

import ipaddress
from typing import Any

from emu.cluster.runtime import Cluster
from emu.errors import NotFoundError, Problem, ValidationError
from emu.model.services import Service
from emu.policy.oracle import Endpoint, decide
from emu.proxy.plan import backends_for, usable


def endpoint(c: Cluster, ref: str) -> Endpoint:
    """`ns/pod`, `node/NAME`, `host/NAME` or an IP address."""
    kind, _, name = ref.partition("/")
    if kind == "node":
        return Endpoint(c.plan.node(name).ip)
    if kind == "host":
        h = next((h for h in c.plan.hosts if h.name == name), None)
        if h is None:
            raise NotFoundError(f"external host {name!r} not found")
        return Endpoint(h.ip)
    if "/" not in ref:
        try:
            ipaddress.IPv4Address(ref)
        except ValueError:
            raise ValidationError([Problem("<command line>", ref, "expected ns/pod, node/NAME, host/NAME or an IPv4 address")]) from None
        pod = next((p for p in c.pod_views() if p.ip == ref), None)
        return Endpoint(ref, pod)
    pod = next((p for p in c.pod_views() if p.key == ref), None)
    if pod is None:
        raise NotFoundError(f"pod {ref} not found (or not running)")
    return Endpoint(pod.ip, pod)


def service_of(c: Cluster, ref: str) -> Service | None:
    """`ns/name` (when no pod has that name) or `name.ns`: a Service, else None."""
    if "/" in ref:
        ns, _, name = ref.partition("/")
        if ref in c.pods:
            return None
    elif "." in ref and not ref.replace(".", "").isdigit():
        name, _, ns = ref.partition(".")
        ns = ns.removesuffix(".svc").split(".svc.", 1)[0]
    else:
        return None
    return c.store.services.get(f"{ns}/{name}")


def explain_service(c: Cluster, src: str, svc: Service, port: int | None, protocol: str | None) -> list[str]:
    """Through a Service, as the kernel sees it after DNAT: each ready endpoint judged."""
    s = endpoint(c, src)
    view = c.policy_view()
    slices = c.services.slices.get(svc.key, []) if c.services is not None else []
    pods = {p.key: p for p in c.pod_views()}
    out = []
    for i, sp in enumerate(svc.ports):
        if (port is not None and sp.port != port) or (protocol and sp.protocol != protocol):
            continue
        backends = usable(backends_for(svc, i, slices))
        head = f"{s} → Service {svc.key} port {sp.name or sp.port} ({sp.port}/{sp.protocol})"
        if not backends:
            out.append(f"{head}: rejected: the Service has no ready endpoints")
            continue
        for b in backends:
            pod = next((p for p in pods.values() if p.ip == b.ip), None)
            d = decide(view, s, Endpoint(b.ip, pod), b.port, sp.protocol)
            out.append(f"{head} → endpoint {pod.key if pod else b.ip}:{b.port}: {d.explain()}")
    if not out:
        raise ValidationError([Problem("<command line>", svc.key, f"Service {svc.key} has no port {port or ''}/{protocol or ''}")])
    return out


def explain(c: Cluster, src: str, dst: str, port: int | None, protocol: str | None) -> list[str]:
    with c.lock:
        svc = service_of(c, dst)
        if svc is not None:
            lines = explain_service(c, src, svc, port, protocol)
            if not c.spec.network_policy:
                lines.append("note: spec.networkPolicy is false — this cluster does not enforce NetworkPolicies, so everything connects")
            return lines
        s, d = endpoint(c, src), endpoint(c, dst)
        view = c.policy_view()
        if port is None:
            if d.pod is None or d.pod.spec is None or not d.pod.spec.served_ports():
                raise ValidationError([Problem("<command line>", dst, "give a port (DST:PORT[/PROTO]): the destination serves none")])
            targets = [(p.container_port, p.protocol) for p in d.pod.spec.served_ports() if not protocol or p.protocol == protocol]
        else:
            targets = [(port, protocol or "TCP")]
        out = [decide(view, s, d, pt, pr).explain() for pt, pr in targets]
    if not c.spec.network_policy:
        out.append("note: spec.networkPolicy is false — this cluster does not enforce NetworkPolicies, so everything connects")
    return out


def expected(c: Cluster, row: dict[str, Any]) -> bool:
    """What the oracle says a probe row should show (everything, if policies are off)."""
    if not c.spec.network_policy:
        return True
    s, d = endpoint(c, row["from"]), endpoint(c, row["to"])
    return decide(c.policy_view(), s, d, row["port"], row["protocol"]).allowed
