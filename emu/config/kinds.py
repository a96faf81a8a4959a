"""The kinds kemu gives typed models (those with network meaning): kemu's checks beyond
the OpenAPI schema and the builders. Every other kind is stored as written
(`Unstructured`); which kinds exist at all is emu/config/registry.py's business."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emu.config.kinds_pods import POD_SPEC, build_pod_spec
from emu.config.schema import Bool, Int, IntOrName, Labels, Obj, Report, Schema, Str, dns_label, dns_subdomain, join
from emu.config.selectors import SELECTOR, build_selector
from emu.model.objects import NAMESPACE_NAME_LABEL, KubeObject, Meta, Namespace, Pod, RollingUpdate, Unstructured, Workload


def meta_schema(name: Schema | None = None, namespaced: bool = True) -> Obj:
    fields: dict[str, Schema] = {"name": name or dns_subdomain(), "labels": Labels(), "annotations": Labels(values_are_labels=False)}
    if namespaced:
        fields["namespace"] = dns_label()
    return Obj(fields, required=("name",))


def _selector_matches_template(spec: dict[str, Any], path: str, report: Report) -> None:
    sel, tmpl = spec.get("selector"), spec.get("template")
    if not isinstance(sel, dict) or not isinstance(tmpl, dict):
        return
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    try:
        ok = build_selector(sel).matches(labels)
    except (TypeError, AttributeError, KeyError, ValueError):
        return  # the selector's own problems are already reported
    if not ok:
        report(join(path, "spec.template.metadata.labels"), "Invalid value: `selector` does not match template `labels`")


def _restart_policy(allowed: tuple[str, ...]) -> Callable[[dict[str, Any], str, Report], None]:
    def check(value: dict[str, Any], path: str, report: Report) -> None:
        spec = value.get("spec")
        if not isinstance(spec, dict):
            return
        _selector_matches_template(spec, path, report)
        pod = ((spec.get("template") or {}).get("spec")) or {}
        policy = pod.get("restartPolicy") if isinstance(pod, dict) else None
        if policy is not None and policy not in allowed:
            report(
                join(path, "spec.template.spec.restartPolicy"),
                f"Unsupported value: {policy!r}: supported values: {', '.join(repr(a) for a in allowed)}",
            )

    return check


TEMPLATE = Obj(
    {"metadata": Obj({"labels": Labels(), "annotations": Labels(values_are_labels=False)}), "spec": POD_SPEC}, required=("spec",)
)
INT_OR_PERCENT = IntOrName()


def _workload_schema(spec_fields: dict[str, Schema], required: tuple[str, ...], restart: tuple[str, ...]) -> Obj:
    return Obj(
        {"metadata": meta_schema(), "spec": Obj({"template": TEMPLATE, **spec_fields}, required=required)},
        required=("metadata", "spec"),
        check_extra=_restart_policy(restart),
    )


@dataclass(frozen=True)
class TypedKind:
    schema: Obj
    build: Callable[[dict[str, Any]], KubeObject]


def meta_of(raw: dict[str, Any], namespaced: bool = True) -> Meta:
    m = raw["metadata"]
    return Meta(
        name=m["name"],
        namespace=(m.get("namespace") or "default") if namespaced else "",
        labels={str(k): str(v) for k, v in (m.get("labels") or {}).items()},
        annotations={str(k): str(v) for k, v in (m.get("annotations") or {}).items()},
    )


def _build_namespace(raw: dict[str, Any]) -> Namespace:
    meta = meta_of(raw, namespaced=False)
    # The API server always sets this label to the namespace's name.
    meta.labels[NAMESPACE_NAME_LABEL] = meta.name
    return Namespace(meta)


def _build_pod(raw: dict[str, Any]) -> Pod:
    return Pod(meta_of(raw), build_pod_spec(raw["spec"]))


def _strategy(kind: str, raw: dict[str, Any] | None) -> RollingUpdate:
    """The API server's defaults: Deployments surge and lose 25%; DaemonSets replace one
    node at a time without surge; StatefulSets one pod at a time from the highest."""
    raw = raw or {}
    ru = raw.get("rollingUpdate") or {}
    surge, unavailable = ("25%", "25%") if kind == "Deployment" else (0, 1)
    return RollingUpdate(
        raw.get("type") or "RollingUpdate",
        ru["maxSurge"] if ru.get("maxSurge") is not None else surge,
        ru["maxUnavailable"] if ru.get("maxUnavailable") is not None else unavailable,
        int(ru.get("partition") or 0),
    )


def _completions(spec: dict[str, Any]) -> int | None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        return 1
    return spec.get("completions")


def _build_workload(kind: str) -> Callable[[dict[str, Any]], Workload]:
    def build(raw: dict[str, Any]) -> Workload:
        spec = raw["spec"]
        tmpl = spec["template"]
        tmeta = tmpl.get("metadata") or {}
        sel = spec.get("selector")
        labels = {str(k): str(v) for k, v in (tmeta.get("labels") or {}).items()}
        strategy_raw = spec.get("strategy") if kind == "Deployment" else spec.get("updateStrategy")
        w = Workload(
            kind=kind,
            meta=meta_of(raw),
            replicas=spec["replicas"] if spec.get("replicas") is not None else 1,
            # A Job without a selector gets one generated (controller-uid): its own labels.
            selector=build_selector(sel) if sel is not None else build_selector({"matchLabels": labels}),
            template_labels=labels,
            template_spec=build_pod_spec(tmpl["spec"]),
            template_annotations={str(k): str(v) for k, v in (tmeta.get("annotations") or {}).items()},
            strategy=_strategy(kind, strategy_raw),
            min_ready_seconds=spec.get("minReadySeconds") or 0,
            service_name=spec.get("serviceName") or "",
            pod_management_policy=spec.get("podManagementPolicy") or "OrderedReady",
            # A Job with neither completions nor parallelism runs one pod to completion.
            completions=_completions(spec) if kind == "Job" else None,
            parallelism=spec["parallelism"] if spec.get("parallelism") is not None else 1,
            backoff_limit=spec["backoffLimit"] if spec.get("backoffLimit") is not None else 6,
            revision_history_limit=spec["revisionHistoryLimit"] if spec.get("revisionHistoryLimit") is not None else 10,
            active_deadline_seconds=spec.get("activeDeadlineSeconds"),
            suspend=bool(spec.get("suspend")),
            raw=raw,
        )
        if kind == "Job" and sel is None:
            # The API server generates a Job's selector: its controller-uid label.
            from emu.controllers.jobs import CONTROLLER_UID, controller_uid

            w = dataclasses.replace(w, selector=build_selector({"matchLabels": {CONTROLLER_UID: controller_uid(w)}}))
        return w

    return build


def build_unstructured(raw: dict[str, Any], namespaced: bool) -> Unstructured:
    raw = dict(raw)
    if raw.get("kind") == "Secret" and raw.get("stringData"):
        # The API server merges stringData into data (base64), and never returns it.
        data = dict(raw.get("data") or {})
        data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in raw.pop("stringData").items()})
        raw["data"] = data
    return Unstructured(raw["kind"], raw["apiVersion"], meta_of(raw, namespaced), raw)


def secret_check(value: dict[str, Any], path: str, report: Report) -> None:
    for k, v in (value.get("data") or {}).items() if isinstance(value.get("data"), dict) else ():
        try:
            base64.b64decode(str(v), validate=True)
        except ValueError:
            report(join(join(path, "data"), str(k)), "Invalid value: illegal base64 data")


def _typed() -> dict[str, TypedKind]:
    from emu.config.kinds_policy import NETWORK_POLICY, build_network_policy
    from emu.config.kinds_services import ENDPOINT_SLICE, SERVICE, build_endpoint_slice, build_service

    rolling = Obj(
        {
            "type": Str(choices=("RollingUpdate", "Recreate")),
            "rollingUpdate": Obj({"maxSurge": IntOrPercent(), "maxUnavailable": IntOrPercent()}),
        }
    )
    sts_update = Obj(
        {"type": Str(choices=("RollingUpdate", "OnDelete")), "rollingUpdate": Obj({"partition": Int(0), "maxUnavailable": IntOrPercent()})}
    )
    ds_update = Obj(
        {
            "type": Str(choices=("RollingUpdate", "OnDelete")),
            "rollingUpdate": Obj({"maxSurge": IntOrPercent(), "maxUnavailable": IntOrPercent()}),
        }
    )
    common = {"replicas": Int(0, 100000), "selector": SELECTOR, "minReadySeconds": Int(0), "revisionHistoryLimit": Int(0)}
    return {
        "Namespace": TypedKind(Obj({"metadata": meta_schema(dns_label(), namespaced=False)}, required=("metadata",)), _build_namespace),
        "Pod": TypedKind(Obj({"metadata": meta_schema(), "spec": POD_SPEC}, required=("metadata", "spec")), _build_pod),
        "Deployment": TypedKind(
            _workload_schema({**common, "strategy": rolling}, ("selector", "template"), ("Always",)),
            _build_workload("Deployment"),
        ),
        "ReplicaSet": TypedKind(_workload_schema(common, ("selector", "template"), ("Always",)), _build_workload("ReplicaSet")),
        "StatefulSet": TypedKind(
            _workload_schema(
                {
                    **common,
                    "serviceName": Str(),
                    "podManagementPolicy": Str(choices=("OrderedReady", "Parallel")),
                    "updateStrategy": sts_update,
                },
                ("selector", "template"),
                ("Always",),
            ),
            _build_workload("StatefulSet"),
        ),
        "DaemonSet": TypedKind(
            _workload_schema(
                {"selector": SELECTOR, "minReadySeconds": Int(0), "updateStrategy": ds_update}, ("selector", "template"), ("Always",)
            ),
            _build_workload("DaemonSet"),
        ),
        "Job": TypedKind(
            _workload_schema(
                {
                    "selector": SELECTOR,
                    "completions": Int(0),
                    "parallelism": Int(0),
                    "backoffLimit": Int(0),
                    "manualSelector": Bool(),
                    "activeDeadlineSeconds": Int(1),
                    "suspend": Bool(),
                },
                ("template",),
                ("OnFailure", "Never"),
            ),
            _build_workload("Job"),
        ),
        "Service": TypedKind(SERVICE, build_service),
        "EndpointSlice": TypedKind(ENDPOINT_SLICE, build_endpoint_slice),
        "NetworkPolicy": TypedKind(NETWORK_POLICY, build_network_policy),
    }


class IntOrPercent(Schema):
    """maxSurge / maxUnavailable: an integer ≥ 0 or a percentage such as "25%"."""

    def check(self, value: Any, path: str, report: Report) -> None:
        if isinstance(value, bool) or not isinstance(value, int | str):
            report(path, "Invalid value: must be an integer or percentage (e.g. '5%')")
        elif isinstance(value, int) and value < 0:
            report(path, f"Invalid value: {value}: must be greater than or equal to 0")
        elif isinstance(value, str) and not (value.endswith("%") and value[:-1].isdigit()):
            report(path, f"Invalid value: {value!r}: a valid percent string must be a numeric string followed by an ending '%'")


TYPED: dict[str, TypedKind] = {}


def typed_kinds() -> dict[str, TypedKind]:
    if not TYPED:
        TYPED.update(_typed())
    return TYPED
