"""The words the API takes: pod references, members as `kemu explain`/`trace` name them,
destinations with a port, label maps. Pure functions: no cluster needed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from emu.config.schema import label_key, label_value
from emu.errors import Problem, ValidationError

WHERE = "<emu.api>"  # the `file` of a Problem raised for an API argument


class HasRef(Protocol):
    """A Member, as far as naming goes."""

    @property
    def ref(self) -> str: ...


def bad(value: str, message: str) -> ValidationError:
    return ValidationError([Problem(WHERE, value, message)])


def split_pod(ref: str, namespace: str | None = None) -> tuple[str, str]:
    """`NS/NAME`, or `NAME` in `namespace` ("default" when None) → (namespace, name)."""
    if not isinstance(ref, str) or not ref:
        raise bad(str(ref), "expected a pod as NAMESPACE/NAME or NAME")
    ns, slash, name = ref.partition("/")
    if not slash:
        return namespace or "default", ref
    if not ns or not name or "/" in name:
        raise bad(ref, "expected a pod as NAMESPACE/NAME or NAME")
    if namespace is not None and namespace != ns:
        raise bad(ref, f"names namespace {ns!r} but namespace={namespace!r} was given")
    return ns, name


def plain_name(name: str, what: str) -> str:
    """A node's or external host's name (`node/NAME` and `host/NAME` are accepted too)."""
    if isinstance(name, str) and name.startswith(f"{what}/"):
        name = name[len(what) + 1 :]
    if not isinstance(name, str) or not name or "/" in name:
        raise bad(str(name), f"expected the {what}'s name")
    return name


def endpoint_ref(x: str | HasRef) -> str:
    """What `kemu explain` and `kemu trace` call a member: `ns/pod`, `node/NAME`,
    `host/NAME`; a string is passed on as it is (also a Service, `name.ns`, or an IP)."""
    return x if isinstance(x, str) else x.ref


def split_port(dst: str, port: int | None, protocol: str | None) -> tuple[str, int | None, str | None]:
    """`DST[:PORT][/PROTO]` (as on the command line) or DST with `port=`/`protocol=`."""
    from emu.cli.trace_cmd import split_dst

    if port is not None or protocol is not None:
        if port is not None and not (isinstance(port, int) and 0 < port < 65536):
            raise bad(str(port), "port must be an integer in 1-65535")
        return dst, port, protocol
    return split_dst(dst)


def label_changes(labels: Mapping[str, str | None]) -> tuple[dict[str, str], list[str]]:
    """{key: value} to set, {key: None} to remove (kubectl's `key-`) → (set, remove),
    checked as the API server checks label keys and values."""
    problems: list[Problem] = []

    def report(path: str, msg: str) -> None:
        problems.append(Problem(WHERE, path, msg))

    if not labels:
        report("labels", "no labels to set or remove")
    set_: dict[str, str] = {}
    remove: list[str] = []
    for k, v in labels.items():
        label_key(str(k), str(k), report)
        if v is None:
            remove.append(k)
        elif not isinstance(v, str):
            report(str(k), f"label values are strings, got {type(v).__name__} {v!r}")
        else:
            label_value(v, f"{k}={v}", report)
            set_[k] = v
    if problems:
        raise ValidationError(problems)
    return set_, remove
