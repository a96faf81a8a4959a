"""A small validating schema for YAML documents.

Each node of the schema checks one value and reports problems as (path, message); an
object schema reports unknown fields together with the fields it allows. Validation never
stops at the first problem: the caller gets them all, as containerlab's parser does.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Report = Callable[[str, str], None]

# While set, fields a schema does not list are not errors but fields "with no effect in
# kemu": Kubernetes manifests are checked for structure by the OpenAPI schemas first
# (config/openapi.py); kemu's own schemas list only the fields with network meaning.
_NO_EFFECT: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("no_effect", default=None)


@contextlib.contextmanager
def collecting_no_effect() -> Iterator[list[str]]:
    found: list[str] = []
    token = _NO_EFFECT.set(found)
    try:
        yield found
    finally:
        _NO_EFFECT.reset(token)


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", str: "string", list: "list", dict: "mapping"}.get(type(value), type(value).__name__)


class Schema:
    def check(self, value: Any, path: str, report: Report) -> None:
        raise NotImplementedError


@dataclass
class Str(Schema):
    pattern: re.Pattern[str] | None = None
    max_len: int | None = None
    choices: tuple[str, ...] = ()
    what: str = ""  # how the pattern reads for a human
    extra: Callable[[str, str, Report], None] | None = None

    def check(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, str):
            report(path, f"expected a string, got {type_name(value)}")
            return
        if self.choices and value not in self.choices:
            report(path, f"{value!r} is not allowed; allowed: {', '.join(self.choices)}")
            return
        if self.max_len is not None and len(value) > self.max_len:
            report(path, f"{value!r} is too long ({len(value)} > {self.max_len} characters)")
        elif self.pattern is not None and not self.pattern.match(value):
            report(path, f"{value!r} is not valid: must be {self.what}")
        if self.extra is not None:
            self.extra(value, path, report)


@dataclass
class Int(Schema):
    minimum: int | None = None
    maximum: int | None = None

    def check(self, value: Any, path: str, report: Report) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            report(path, f"expected an integer, got {type_name(value)}")
            return
        if self.minimum is not None and value < self.minimum:
            report(path, f"{value} is out of range (minimum {self.minimum})")
        if self.maximum is not None and value > self.maximum:
            report(path, f"{value} is out of range (maximum {self.maximum})")


class Bool(Schema):
    def check(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, bool):
            report(path, f"expected true or false, got {type_name(value)}")


@dataclass
class IntOrName(Schema):
    """A port: a number 1-65535 or an IANA service name (a container port's name)."""

    def check(self, value: Any, path: str, report: Report) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            Int(1, 65535).check(value, path, report)
        elif isinstance(value, str):
            port_name(value, path, report)
        else:
            report(path, f"expected a port number or name, got {type_name(value)}")


class AnyValue(Schema):
    """Accepted and ignored (fields kemu has nothing to emulate for, e.g. `image`)."""

    def check(self, value: Any, path: str, report: Report) -> None:
        return


@dataclass
class List(Schema):
    item: Schema
    min_items: int = 0

    def check(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, list):
            report(path, f"expected a list, got {type_name(value)}")
            return
        if len(value) < self.min_items:
            report(path, f"needs at least {self.min_items} item(s)")
        for i, v in enumerate(value):
            self.item.check(v, join(path, i), report)


@dataclass
class Labels(Schema):
    """A string→string map whose keys and values follow Kubernetes label syntax."""

    values_are_labels: bool = True

    def check(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, dict):
            report(path, f"expected a mapping, got {type_name(value)}")
            return
        for k, v in value.items():
            p = join(path, str(k))
            if not isinstance(k, str):
                report(p, "label keys must be strings")
                continue
            label_key(k, p, report)
            if not isinstance(v, str):
                report(p, f"label values must be strings, got {type_name(v)} (quote it)")
            elif self.values_are_labels:
                label_value(v, p, report)


@dataclass
class Obj(Schema):
    fields: dict[str, Schema]
    required: tuple[str, ...] = ()
    check_extra: Callable[[dict[str, Any], str, Report], None] | None = None
    known_unsupported: dict[str, str] = field(default_factory=dict)

    def check(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, dict):
            report(path, f"expected a mapping, got {type_name(value)}")
            return
        for r in self.required:
            if r not in value:
                report(join(path, r), "is required")
        for k, v in value.items():
            if k in self.fields:
                self.fields[k].check(v, join(path, str(k)), report)
            elif k in self.known_unsupported:
                report(join(path, str(k)), f"is not supported by kemu yet: {self.known_unsupported[k]}")
            elif (noted := _NO_EFFECT.get()) is not None:
                noted.append(join(path, str(k)))
            else:
                allowed = ", ".join(sorted(self.fields))
                report(join(path, str(k)), f"unknown field; allowed here: {allowed}")
        if self.check_extra is not None:
            self.check_extra(value, path, report)


# --- value checks shared by the kinds ---------------------------------------------


def label_key(key: str, path: str, report: Report) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        report(path, f"label key prefix {prefix!r} must be a DNS subdomain")
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        report(
            path,
            f"label key {key!r} is not valid: name part must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
        )


def label_value(value: str, path: str, report: Report) -> None:
    if value and (len(value) > 63 or not QUALIFIED_NAME.match(value)):
        report(
            path,
            f"label value {value!r} is not valid: at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
        )


def dns_label_name(value: str, path: str, report: Report) -> None:
    """Service and EndpointSlice port names are DNS-1123 labels (container ports: IANA names)."""
    if len(value) > 63 or not DNS_LABEL.match(value):
        report(
            path,
            f"Invalid value: {value!r}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character (at most 63)",
        )


def port_name(value: str, path: str, report: Report) -> None:
    if len(value) > 15 or not IANA_SVC_NAME.match(value) or "--" in value or not re.search("[a-z]", value):
        report(path, f"port name {value!r} is not valid: 1-15 lowercase letters, digits and '-', with at least one letter")


def cidr(value: str, path: str, report: Report) -> None:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        report(path, f"{value!r} is not a valid CIDR ({e})")
        return
    if net.version != 4:
        report(path, f"{value!r}: only IPv4 ranges are supported")


def dns_label(max_len: int = 63) -> Str:
    return Str(DNS_LABEL, max_len, what="lowercase letters, digits and '-', starting and ending alphanumeric (DNS-1123 label)")


def dns_subdomain() -> Str:
    return Str(DNS_SUBDOMAIN, 253, what="lowercase letters, digits, '-' and '.', starting and ending alphanumeric (DNS-1123 subdomain)")
