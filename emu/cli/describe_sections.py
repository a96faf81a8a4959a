"""The sections every `kemu describe` output shares: labels, annotations, tolerations, events.

Each writes its `Title:\tvalue` lines into a PrefixWriter as kubectl's describers do
(`<none>` when empty, one value per line, long annotations cut), plus the RFC 1123 time
kubectl prints and the selection of the events that concern one object.
"""

from __future__ import annotations

from datetime import datetime

from emu.cli.output import event_times
from emu.cli.output_format import Obj, parse_time
from emu.cli.tabwriter import PrefixWriter

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ANNOTATION_LEN = 140


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
