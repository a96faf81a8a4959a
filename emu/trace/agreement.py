"""Does the kernel agree with kemu's models? A traced packet (emu/trace/translate.py)
against the service proxy's tracer (emu/proxy/tracer.py: what the node's rules should do
to the flow) and the NetworkPolicy oracle (emu/policy/oracle.py: whether the flow is
allowed), both pure. `kemu trace` reports the comparison; the e2e tests assert it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emu.model.objects import PodView
from emu.policy.oracle import Endpoint, View, decide
from emu.proxy.plan import ProxyPlan
from emu.proxy.tracer import Flow, Verdict
from emu.proxy.tracer import trace as proxy_trace
from emu.trace.translate import Trace


@dataclass(frozen=True)
class Models:
    """What the models need, read from the cluster with the rest of the trace's knowledge."""

    backend: str
    plans: Mapping[str, ProxyPlan]
    view: View | None  # None: the cluster does not enforce NetworkPolicies
    pods: Mapping[str, PodView]  # by ns/name


def compare(m: Models, t: Trace, src: Endpoint, src_kind: str, src_node: str, dst_ip: str, dport: int, proto: str) -> dict[str, Any]:
    """{"proxy": the tracer's verdict or None, "policy": allowed|denied|None, "agrees": bool,
    "disagreements": [...]}. The proxy is judged on the first node the packet entered."""
    out: dict[str, Any] = {"proxy": None, "policy": None, "agrees": True, "disagreements": []}
    entry = next((h.namespace.removeprefix("node/") for h in t.hops if h.namespace.startswith("node/")), None)
    plan = m.plans.get(entry) if entry is not None else None
    pv: Verdict | None = None
    if plan is not None and proto in ("tcp", "udp"):
        pv = proxy_trace(plan, Flow(src.ip, dst_ip, dport, proto, src_kind == "node" and src_node == entry), m.backend)
        out["proxy"] = str(pv)
        why = _proxy_disagrees(pv, t, src.ip)
        if why:
            out["disagreements"].append(why)
    if pv is not None and pv.action in ("reject", "drop"):
        return _done(out)  # the proxy decided first: no policy saw the packet
    if proto in ("tcp", "udp") and t.decided_by not in ("routing",):
        dst = _destination(m, t, dst_ip)
        port = int(t.translated_to.rsplit(":", 1)[1]) if t.translated_to else dport
        allowed = True if m.view is None else decide(m.view, src, dst, port, proto.upper()).allowed
        out["policy"] = "allowed" if allowed else "denied"
        if allowed == (t.decided_by == "policy"):
            out["disagreements"].append(
                f"the policy oracle says {out['policy']}, the kernel "
                + ("dropped it in kemu-policy" if t.decided_by == "policy" else f"did not ({t.verdict})")
            )
    return _done(out)


def _done(out: dict[str, Any]) -> dict[str, Any]:
    out["agrees"] = not out["disagreements"]
    return out


def _destination(m: Models, t: Trace, dst_ip: str) -> Endpoint:
    pod = m.pods.get(t.endpoint) if t.endpoint else None
    if pod is None and not t.translated_to:
        pod = next((p for p in m.pods.values() if p.ip == dst_ip), None)
    if pod is not None:
        return Endpoint(pod.ip, pod)
    return Endpoint(t.translated_to.rsplit(":", 1)[0] if t.translated_to else dst_ip)


def _proxy_disagrees(pv: Verdict, t: Trace, src_ip: str) -> str:
    if pv.action == "reject" and not (t.verdict == "rejected" and t.decided_by == "proxy"):
        return f"the proxy tracer says reject, the kernel {t.verdict} it ({t.decided_by or 'nobody decided'})"
    if pv.action == "drop" and not (t.verdict == "dropped" and t.decided_by == "proxy"):
        return f"the proxy tracer says drop, the kernel {t.verdict} it ({t.decided_by or 'nobody decided'})"
    if pv.action == "dnat":
        targets = {f"{ip}:{port}" for ip, port in pv.endpoints}
        if t.translated_to not in targets:
            return f"the proxy tracer says DNAT to one of {', '.join(sorted(targets))}, the kernel to {t.translated_to or 'nothing'}"
        if t.decided_by == "proxy":
            return f"the proxy tracer says DNAT, the kernel's proxy {t.verdict} it"
        # The tracer's answer covers every endpoint: "masqueraded" may come from a hairpin
        # to one that this packet did not go to, so only a sure answer is held against it.
        hairpin_elsewhere = pv.masquerade and t.translated_to.split(":")[0] != src_ip and any(ip == src_ip for ip, _ in pv.endpoints)
        if t.verdict == "delivered" and pv.masquerade is not None and pv.masquerade != t.masqueraded and not hairpin_elsewhere:
            said = "masqueraded" if pv.masquerade else "kept its source"
            return f"the proxy tracer says the packet is {said}, the kernel {'did' if t.masqueraded else 'did not'} masquerade it"
    if pv.action == "pass" and (t.translated_to or t.decided_by == "proxy"):
        return f"the proxy tracer leaves the flow alone, the kernel {'translated it to ' + t.translated_to if t.translated_to else t.verdict + ' it'}"
    return ""
