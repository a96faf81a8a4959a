"""HTTP/1.1 as Go's net/http speaks it, for the echo-basic stand-in (emu/workloads/echo_basic.py).

What a Go server does before and after its handler: parse a request head as net/http
does (canonical header names, exactly one Host, Connection and Transfer-Encoding
handling, Content-Length checks, Expect: 100-continue, the Pragma fix), the request URI
as r.URL has it, ServeMux's path cleaning and its 301s, and response
heads with Go's status texts, a Date and Content-Length, and the connection's fate.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import quote, unquote

MAX_HEAD = 1 << 20  # Go's DefaultMaxHeaderBytes
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


_canonical: dict[str, str] = {}


def canonical_header_key(name: str) -> str | None:
    """Go's textproto.CanonicalMIMEHeaderKey: "x-forwarded-for" → "X-Forwarded-For"; None
    for a name that is not a token (RFC 9110 §5.1)."""
    key = _canonical.get(name)
    if key is None:
        if not _TOKEN.fullmatch(name):
            return None
        key = "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))
        if len(_canonical) < 4096:  # the usual few names, not whatever a client invents
            _canonical[name] = key
    return key


def clean_path(path: str) -> str:
    """Go's ServeMux cleanPath: "." and ".." resolved, "//" collapsed, a trailing "/" kept."""
    out: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if out:
                out.pop()
        elif seg not in ("", "."):
            out.append(seg)
    clean = "/" + "/".join(out)
    return clean + "/" if path.endswith("/") and clean != "/" else clean


@dataclass
class Request:
    method: str
    uri: str  # as sent: Go's RequestURI
    proto: str
    host: str
    headers: dict[str, list[str]]  # canonical name → values, as Go's r.Header
    keep_alive: bool
    body: int | None = 0  # its length, or None when chunked
    expect_continue: bool = False


def parse_head(head: str) -> Request | int:
    """A request line and header lines (no blank line), or the status to close with."""
    lines = head.split("\r\n")
    method, _, rest = lines[0].partition(" ")
    uri, _, proto = rest.partition(" ")
    if proto not in ("HTTP/1.1", "HTTP/1.0"):
        return 505 if re.fullmatch(r"HTTP/[0-9]\.[0-9]", proto) else 400
    if not _TOKEN.fullmatch(method) or not (uri.startswith("/") or uri == "*" or "://" in uri):
        return 400
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = canonical_header_key(name)
        if not colon or key is None:
            return 400  # also obsolete line folding (RFC 9112 §5.2 allows rejecting it)
        if key in headers:
            headers[key].append(value.strip(" \t"))
        else:
            headers[key] = [value.strip(" \t")]
    hosts = headers.pop("Host", [])  # Go moves it to r.Host
    if len(hosts) > 1 or (proto == "HTTP/1.1" and not hosts):
        return 400  # RFC 9112 §3.2: exactly one Host
    host = uri.split("://", 1)[1].split("/", 1)[0] if "://" in uri else (hosts[0] if hosts else "")
    keep_alive = proto == "HTTP/1.1"
    if "Connection" in headers:
        connection = {t.strip().lower() for v in headers["Connection"] for t in v.split(",")}
        keep_alive = "close" not in connection and (keep_alive or "keep-alive" in connection)
    body: int | None = 0
    if "Transfer-Encoding" in headers:
        # Go drops Transfer-Encoding (and a Content-Length beside it) from r.Header.
        if [t.strip().lower() for v in headers.pop("Transfer-Encoding") for t in v.split(",")] != ["chunked"]:
            return 501
        headers.pop("Content-Length", None)
        body = None
    elif "Content-Length" in headers:
        lengths = set(headers["Content-Length"])
        if len(lengths) != 1 or not re.fullmatch("[0-9]+", next(iter(lengths))):
            return 400
        body = int(next(iter(lengths)))
    headers.pop("Trailer", None)
    if headers.get("Pragma") == ["no-cache"] and "Cache-Control" not in headers:
        headers["Cache-Control"] = ["no-cache"]  # Go's fixPragmaCacheControl
    expect = body != 0 and any(v.lower() == "100-continue" for v in headers.get("Expect", ()))
    return Request(method, uri, proto, host, headers, keep_alive, body, expect)


def request_path(uri: str) -> tuple[str, str]:
    """(decoded path, raw query) of a request URI, as Go's r.URL has them."""
    target, _, query = uri.partition("?")
    if "://" in target:
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    return unquote(target), query


class _Date:
    sec = -1
    text = ""

    @classmethod
    def now(cls) -> str:
        sec = int(time.time())
        if sec != cls.sec:  # formatted once a second
            cls.sec, cls.text = sec, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(sec))
        return cls.text


def status_line(status: int) -> str:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else f"status code {status}"  # Go's text
    return f"HTTP/1.1 {status} {phrase}\r\n"


def http_response(status: int, headers: tuple[tuple[str, str], ...], body: bytes, req: Request | None, sized: bool = True) -> bytes:
    """A response; without `req` (a bad request) it closes the connection."""
    lines = [status_line(status), *(f"{k}: {v}\r\n" for k, v in headers), f"Date: {_Date.now()}\r\n"]
    if sized:
        lines.append(f"Content-Length: {len(body)}\r\n")
    if req is None or not req.keep_alive:
        lines.append("Connection: close\r\n")
    elif req.proto == "HTTP/1.0":
        lines.append("Connection: keep-alive\r\n")
    head = ("".join(lines) + "\r\n").encode("utf-8", "replace")
    return head if req is not None and req.method == "HEAD" else head + body


def redirect(req: Request, path: str, query: str) -> bytes:
    location = quote(path, safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")
    body = f'<a href="{location}">Moved Permanently</a>.\n\n'.encode() if req.method in ("GET", "HEAD") else b""
    return http_response(301, (("Content-Type", "text/html; charset=utf-8"), ("Location", location)), body, req)
