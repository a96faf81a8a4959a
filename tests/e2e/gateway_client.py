"""Requests from an external host to a Gateway's address, with curl, many per `kemu exec`
(one shell script per batch), and their answers parsed: status, headers, the echo
backend's JSON."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.e2e.helpers import Running

SEP = "=====KEMU-NEXT-ANSWER====="


@dataclass(frozen=True)
class Ask:
    address: str  # the Gateway's (LoadBalancer) IP
    path: str
    host: str | None = None  # None: the address, as a client that names none sends
    port: int = 80
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    https: bool = False
    sni: str | None = None  # HTTPS: the TLS server name, when not the Host


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)  # lower-cased names
    body: str = ""
    error: str = ""

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    def header(self, name: str) -> str | None:
        v = self.headers.get(name.lower())
        return ",".join(v) if v else None


def curl_argv(a: Ask) -> list[str]:
    scheme = "https" if a.https else "http"
    host = a.host or a.address
    # HEAD: -I (with -X HEAD curl would wait for the body the headers announce).
    method = ["-I"] if a.method == "HEAD" else ["-X", a.method]
    argv = ["curl", "-sS", "-i", "--max-time", "5", "--path-as-is", *method]
    if a.https:
        # SNI (and Host) from the name in the URL; the address from --resolve (as a DNS
        # answer would); a different Host, when asked, as a header.
        name = a.sni or host
        argv += ["-k", "--resolve", f"{name}:{a.port}:{a.address}", f"{scheme}://{name}:{a.port}{a.path}"]
        if a.sni and a.sni != host:
            argv += ["-H", f"Host: {host}"]
    else:
        argv += ["-H", f"Host: {host}", f"{scheme}://{a.address}:{a.port}{a.path}"]
    for k, v in a.headers:
        argv += ["-H", f"{k}: {v}"]
    return argv


def ask_all(c: Running, host: str, asks: list[Ask]) -> list[Answer]:
    script = "; ".join(f"{shlex.join(curl_argv(a))} 2>&1; echo; echo {SEP}" for a in asks)
    out = c.exec(f"host/{host}", "sh", "-c", script).stdout
    parts = out.split(SEP + "\n")
    return [parse(p) for p in parts[: len(asks)]]


def parse(text: str) -> Answer:
    if not text.startswith("HTTP/"):
        return Answer(0, error=text.strip())
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Answer(status, headers, body.rstrip("\n"))


def write_docs(tmp: object, name: str, docs: list[dict[str, Any]]) -> str:
    """Manifests into a file under `tmp`, for `kemu apply -f`; the file's path."""
    path = os.path.join(str(tmp), name)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(docs, f)
    return path
