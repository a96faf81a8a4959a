"""`kemu trace SRC DST[:PORT[/PROTO]] [-o text|json]`: one real packet, and what the
kernel did with it, hop by hop, in Kubernetes words (the daemon's "trace" op does the
work: emu/cluster/tracing.py)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from emu.daemon.client import pick_cluster, request
from emu.errors import Problem, ValidationError

PROTOS = ("tcp", "udp", "icmp")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="ns/pod, node/NAME or host/NAME")
    p.add_argument(
        "dst",
        help="ns/pod, node/NAME, host/NAME, a Service (name.ns) or an IP, with :PORT[/tcp|udp] or /icmp "
        "(default: a pod's or Service's first port; an echo to anything else)",
    )
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds the sender waits for an answer")


def split_dst(word: str) -> tuple[str, int | None, str | None]:
    """DST[:PORT][/PROTO] → (DST, PORT, proto). An IP's dots and a pod's slash stay."""
    dst, proto = word, None
    head, slash, tail = word.rpartition("/")
    # "shop/udp" is the pod udp: a protocol follows a whole destination (with / . or :).
    if slash and tail.lower() in PROTOS and any(ch in head for ch in "/.:"):
        dst, proto = head, tail.lower()
    port = None
    if ":" in dst:
        dst, _, p = dst.rpartition(":")
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ValidationError([Problem("<command line>", word, "expected DST[:PORT][/tcp|udp|icmp] with PORT in 1-65535")])
        port = int(p)
    if proto == "icmp" and port is not None:
        raise ValidationError([Problem("<command line>", word, "an ICMP echo has no port")])
    return dst, port, proto


def cmd_trace(args: argparse.Namespace) -> str:
    dst, port, proto = split_dst(args.dst)
    if not 0 < args.timeout <= 60:
        raise ValidationError([Problem("<command line>", "--timeout", "seconds in (0, 60]")])
    result = request(
        pick_cluster(args.cluster),
        "trace",
        timeout=60.0 + args.timeout,
        src=args.src,
        dst=dst,
        port=port,
        protocol=proto,
        trace_timeout=args.timeout,
    )
    if args.output == "json":
        return json.dumps(result, indent=2)
    return render_text(result)


def render_text(r: dict[str, Any]) -> str:
    lines = [f"{r['from']} → {r['to']}"]
    hops = [h for h in r["hops"] if h["meaning"]]
    width = max((len(h["namespace"]) for h in hops), default=0)
    for h in hops:
        where = f"{h['table']}/{h['chain']}" if h["table"] != "kemu-trace" else ""
        lines.append(f"  {h['namespace']:<{width}}  {h['hook'] or '-':<11} {h['meaning']}" + (f"  [{where}]" if where else ""))
    lines += [f"  conntrack on {e['namespace']}: {e['entry']}" for e in r.get("conntrack") or []]
    lines.append(f"{r['verdict']}: {r['reason']}")
    model = r.get("model") or {}
    said = [f"proxy tracer: {model['proxy']}"] if model.get("proxy") else []
    said += [f"policy oracle: {model['policy']}"] if model.get("policy") else []
    if said:
        lines.append(
            f"models ({'; '.join(said)}): " + ("the kernel agrees" if model["agrees"] else "DISAGREE: " + "; ".join(model["disagreements"]))
        )
    return "\n".join(lines)
