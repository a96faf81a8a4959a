"""The DNS server's HTTP side: Prometheus text with CoreDNS's metric names (its prometheus,
cache, forward and reload plugins: the subset a dashboard or a test looks at), and a minimal
HTTP/1.0 GET responder for /metrics, /health and /ready (http.server would bring the ssl and
email modules, ~8 MB of a process whose budget is ~65 MB)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

BUCKETS = tuple(0.00025 * 2**i for i in range(16))  # CoreDNS's request duration buckets (seconds)


class Stats:
    """Counters for /metrics. cells: (proto, qtype, rcode) → [count, sum, bucket counts…, +Inf]."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, str], list[float]] = {}
        self.lock = threading.Lock()
        self.misses = 0
        self.reload_failed = 0
        self.forwards: dict[str, int] = {}  # rcode → count ("error": no answer)

    def cell(self, proto: str, qtype: str, rcode: str) -> list[float]:
        c = self.cells.get((proto, qtype, rcode))
        if c is None:
            with self.lock:
                c = self.cells.setdefault((proto, qtype, rcode), [0, 0.0] + [0] * (len(BUCKETS) + 1))
        return c

    def count_forward(self, rcode: str) -> None:
        self.forwards[rcode] = self.forwards.get(rcode, 0) + 1

    def render(self, server: str, upstream: str, cache_entries: int, serial: int) -> str:
        cells = dict(self.cells)
        lab = f'server="{server}",zone=".",view=""'
        out = [
            "# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.",
            "# TYPE coredns_dns_requests_total counter",
        ]
        by: dict[tuple[str, ...], float] = {}
        for (proto, qtype, _), c in cells.items():
            by[(proto, qtype)] = by.get((proto, qtype), 0) + c[0]
        out += [f'coredns_dns_requests_total{{{lab},proto="{p}",family="1",type="{t}"}} {int(v)}' for (p, t), v in sorted(by.items())]
        out += ["# HELP coredns_dns_responses_total Counter of response status codes.", "# TYPE coredns_dns_responses_total counter"]
        by = {}
        for (_, _, rcode), c in cells.items():
            by[(rcode,)] = by.get((rcode,), 0) + c[0]
        out += [f'coredns_dns_responses_total{{{lab},rcode="{r}",plugin=""}} {int(v)}' for (r,), v in sorted(by.items())]
        out += [
            "# HELP coredns_dns_request_duration_seconds Histogram of the time (in seconds) each request took per zone.",
            "# TYPE coredns_dns_request_duration_seconds histogram",
        ]
        hist: dict[str, list[float]] = {}
        for (_, qtype, _), c in cells.items():
            h = hist.setdefault(qtype, [0.0] * len(c))
            for i, v in enumerate(c):
                h[i] += v
        for qtype, h in sorted(hist.items()):
            acc = 0.0
            for le, v in zip([*(f"{b:g}" for b in BUCKETS), "+Inf"], h[2:], strict=True):
                acc += v
                out.append(f'coredns_dns_request_duration_seconds_bucket{{{lab},type="{qtype}",le="{le}"}} {int(acc)}')
            out.append(f'coredns_dns_request_duration_seconds_sum{{{lab},type="{qtype}"}} {h[1]:.9f}')
            out.append(f'coredns_dns_request_duration_seconds_count{{{lab},type="{qtype}"}} {int(h[0])}')
        total = sum(c[0] for c in cells.values())
        out += [
            "# TYPE coredns_cache_hits_total counter",
            f'coredns_cache_hits_total{{server="{server}"}} {max(0, int(total) - self.misses)}',
        ]
        out += ["# TYPE coredns_cache_misses_total counter", f'coredns_cache_misses_total{{server="{server}"}} {self.misses}']
        out += [
            "# TYPE coredns_cache_entries gauge",
            f'coredns_cache_entries{{server="{server}",type="success"}} {cache_entries}',
        ]
        if upstream:
            out += [
                "# TYPE coredns_forward_requests_total counter",
                f'coredns_forward_requests_total{{to="{upstream}"}} {sum(self.forwards.values())}',
            ]
            out += ["# TYPE coredns_forward_responses_total counter"]
            out += [f'coredns_forward_responses_total{{to="{upstream}",rcode="{r}"}} {v}' for r, v in sorted(self.forwards.items())]
        out += ["# TYPE coredns_reload_failed_total counter", f"coredns_reload_failed_total {self.reload_failed}"]
        out += ["# TYPE kemu_dns_state_serial gauge", f"kemu_dns_state_serial {serial}"]
        out += ["# TYPE process_resident_memory_bytes gauge", f"process_resident_memory_bytes {rss_bytes()}"]
        return "\n".join(out) + "\n"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


Route = Callable[[], tuple[int, str]]
_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


def serve_http(port: int, routes: dict[str, Route], bind: str = "") -> socket.socket:
    """Answer GET <path> on port from routes (a thread per connection); returns the listening socket."""
    ls = socket.create_server((bind, port), family=socket.AF_INET6 if ":" in bind else socket.AF_INET)

    def one(conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5.0)
                head = b""
                while b"\r\n\r\n" not in head and b"\n\n" not in head and len(head) < 8192:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                parts = head.split(b"\n", 1)[0].split()
                path = parts[1].decode("latin-1").split("?")[0] if len(parts) >= 2 else ""
                route = routes.get(path) if parts and parts[0] in (b"GET", b"HEAD") else None
                code, body = route() if route else (404, "404 page not found\n")
                data = body.encode()
                hdr = f"HTTP/1.0 {code} {_REASONS.get(code, '')}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                hdr += f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
                conn.sendall(hdr.encode() + (data if parts[:1] != [b"HEAD"] else b""))
            except OSError:
                pass

    def loop() -> None:
        while True:
            try:
                conn, _ = ls.accept()
            except OSError:
                return  # closed
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True, name=f"http-{port}").start()
    return ls
