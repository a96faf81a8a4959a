"""The API server's rules for writes that the schemas cannot see: namespaces that must
exist, fields that are immutable once created, strategy values. Pure; every problem of an
apply is reported at once (file and path), and nothing is stored when there is one."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from emu.config import registry
from emu.errors import Problem, ValidationError
from emu.model.objects import Container, Namespace, Pod, PodSpec, Workload

if TYPE_CHECKING:
    from emu.cluster.store import Store
    from emu.config.loader import ParsedManifests

POD_UPDATE_FORBIDDEN = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)
STS_UPDATE_FORBIDDEN = (
    "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)


def _at(path: str, sub: str) -> str:
    return f"{path}.{sub}" if path else sub


def check(store: Store, parsed: ParsedManifests) -> None:
    problems: list[Problem] = []
    known = set(store.namespaces)
    for key, obj in parsed.order:
        file, path = parsed.where.get(key, ("", ""))
        kind = key.split("/", 1)[0]
        if isinstance(obj, Namespace):
            known.add(obj.meta.name)
            continue
        ns = obj.meta.namespace
        if registry.is_namespaced(kind) and ns not in known:
            problems.append(Problem(file, _at(path, "metadata.namespace"), f'namespaces "{ns}" not found'))
            continue
        if isinstance(obj, Pod):
            old = store.pods.get(obj.key)
            if old is not None and not pod_update_allowed(old.spec, obj.spec):
                hint = f" (this pod belongs to {old.owner}: change that instead)" if old.owner else ""
                problems.append(Problem(file, _at(path, "spec"), POD_UPDATE_FORBIDDEN + hint))
        elif isinstance(obj, Workload):
            problems += [Problem(file, _at(path, p), m) for p, m in workload_problems(store.workloads.get((obj.kind, obj.key)), obj)]
    if problems:
        raise ValidationError(problems)


def _strip_images(containers: tuple[Container, ...]) -> tuple[Container, ...]:
    return tuple(dataclasses.replace(c, image="", raw={k: v for k, v in c.raw.items() if k != "image"}) for c in containers)


def _raw_without_mutable(raw: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in raw.items() if k not in ("tolerations", "activeDeadlineSeconds")}
    for field in ("containers", "initContainers"):
        if isinstance(out.get(field), list):
            out[field] = [{k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c for c in out[field]]
    return out


def pod_update_allowed(old: PodSpec, new: PodSpec) -> bool:
    """ValidatePodUpdate: images, activeDeadlineSeconds and added tolerations only."""
    if old == new:
        return True

    def norm(s: PodSpec) -> PodSpec:
        return dataclasses.replace(
            s,
            containers=_strip_images(s.containers),
            init_containers=_strip_images(s.init_containers),
            tolerations=(),
            raw=_raw_without_mutable(s.raw),
        )

    return norm(old) == norm(new) and set(old.tolerations) <= set(new.tolerations)


def _zero(v: int | str) -> bool:
    return str(v).strip().rstrip("%") in ("0", "")


def _percent_over_100(v: int | str) -> bool:
    s = str(v).strip()
    return s.endswith("%") and s[:-1].isdigit() and int(s[:-1]) > 100


def workload_problems(old: Workload | None, new: Workload) -> list[tuple[str, str]]:
    """(path, message) for a create or an update of a workload."""
    out: list[tuple[str, str]] = []
    st = new.strategy
    if new.kind in ("Deployment", "DaemonSet") and st.type == "RollingUpdate":
        base = "spec.strategy.rollingUpdate" if new.kind == "Deployment" else "spec.updateStrategy.rollingUpdate"
        if _zero(st.max_surge) and _zero(st.max_unavailable):
            out.append((f"{base}.maxUnavailable", f"Invalid value: {st.max_unavailable!r}: may not be 0 when `maxSurge` is 0"))
        if _percent_over_100(st.max_unavailable):
            out.append((f"{base}.maxUnavailable", f"Invalid value: {st.max_unavailable!r}: must not be greater than 100%"))
    policy = new.template_spec.restart_policy
    if new.kind == "Job":
        if policy not in ("OnFailure", "Never"):
            out.append(("spec.template.spec.restartPolicy", 'Required value: valid values: "OnFailure", "Never"'))
    elif policy != "Always":
        out.append(("spec.template.spec.restartPolicy", f'Unsupported value: "{policy}": supported values: "Always"'))
    if old is None:
        return out
    if old.selector != new.selector:
        out.append(("spec.selector", "field is immutable"))
    if new.kind == "Job":
        if (old.template_spec, old.template_labels, old.template_annotations) != (
            new.template_spec,
            new.template_labels,
            new.template_annotations,
        ):
            out.append(("spec.template", "field is immutable"))
        if old.completions != new.completions:
            out.append(("spec.completions", "field is immutable"))
    if new.kind == "StatefulSet" and (old.service_name, old.pod_management_policy) != (new.service_name, new.pod_management_policy):
        out.append(("spec", STS_UPDATE_FORBIDDEN))
    return out
