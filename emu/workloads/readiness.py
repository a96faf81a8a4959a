"""Probes as the kubelet runs them: readiness, liveness and startup, with every handler.

A check is one attempt, from the node's namespace to the pod IP as the kubelet does:
httpGet succeeds on a status in [200, 400), tcpSocket on an accepted connection, grpc on
Health/Check answering SERVING, exec on exit code 0 (run inside the pod's namespace).
`make_check` builds one from a Probe; `probe_loop` runs it on the kubelet's schedule and
reports result changes; `run_probe` is the readiness loop the runtime starts today.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence

from emu.dataplane import netns
from emu.model.objects import Probe
from emu.workloads.grpc_health import grpc_check

log = logging.getLogger(__name__)

__all__ = ["Check", "exec_in", "grpc_check", "http_get", "make_check", "probe_loop", "run_probe", "tcp_open"]

Check = Callable[[], Awaitable[bool]]
USER_AGENT = "kube-probe/kemu"  # the kubelet sends kube-probe/<major>.<minor>
MAX_HEAD = 64 * 1024
_sleep = asyncio.sleep  # the probe schedule's clock (unit tests replace it)


def _insecure_tls() -> ssl.SSLContext:
    # The kubelet's HTTPS probes skip certificate verification (InsecureSkipVerify).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _clean(text: str) -> str:
    return text.replace("\r", "").replace("\n", "")  # no header injection through a manifest


def http_request(path: str, host_port: str, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """The kubelet's probe request: custom headers win over its defaults (Host, User-Agent, Accept)."""
    names = {n.lower() for n, _ in headers}
    host = next((v for n, v in headers if n.lower() == "host"), host_port)
    lines = [f"GET {_clean(path if path.startswith('/') else '/' + path)} HTTP/1.1", f"Host: {_clean(host)}"]
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in names:
        lines.append("Accept: */*")
    lines += [f"{_clean(n)}: {_clean(v)}" for n, v in headers if n and n.lower() not in ("host", "connection")]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


async def http_get(
    ns_fd: int | None,
    ip: str,
    port: int,
    path: str,
    timeout: float,
    *,
    scheme: str = "HTTP",
    headers: Sequence[tuple[str, str]] = (),
) -> bool:
    """GET ip:port/path from namespace `ns_fd` (None: this one); True on a status in [200, 400).

    Host is `ip:port` unless `headers` sets one; HTTPS does TLS without verifying anything
    (no SNI either: the kubelet sends none for an IP).
    """
    loop = asyncio.get_running_loop()
    s = netns.socket_in(ns_fd)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(s, (ip, port))
            tls = _insecure_tls() if scheme.upper() == "HTTPS" else None
            reader, writer = await asyncio.open_connection(sock=s, ssl=tls, server_hostname="" if tls else None, limit=MAX_HEAD)
            writer.write(http_request(path, f"{ip}:{port}", headers))
            status_line = await reader.readline()
        parts = status_line.split(b" ", 2)
        return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    except (OSError, TimeoutError, ValueError):  # ssl.SSLError is an OSError
        return False
    finally:
        if writer is not None:
            writer.transport.abort()  # the transport owns the socket now
        else:
            s.close()


async def tcp_open(ns_fd: int | None, ip: str, port: int, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    s = netns.socket_in(ns_fd)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(s, (ip, port))
        return True
    except (OSError, TimeoutError):
        return False
    finally:
        s.close()


async def exec_in(netns_name: str, command: tuple[str, ...], timeout: float) -> bool:
    try:
        proc = await asyncio.create_subprocess_exec(
            "nsenter",
            f"--net={netns.path(netns_name)}",
            "--",
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return False
    try:
        async with asyncio.timeout(timeout):
            return await proc.wait() == 0
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False


async def _address(host: str, default: str) -> str | None:
    """The probe's `host` (default: the pod IP); a name resolves as on the host, as the kubelet's would."""
    if not host:
        return default
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return str(infos[0][4][0]) if infos else None


async def _never() -> bool:
    return False


def make_check(probe: Probe, port: int | None, node_fd: int | None, pod_ip: str, pod_netns: str) -> Check:
    """One attempt of `probe`'s handler. `port` is the probe's port already resolved
    (a named port that matches nothing is None: the kubelet fails such a probe)."""
    handler = probe.handler
    timeout = max(1, int(getattr(probe, "timeout_seconds", 1)))
    host = getattr(probe, "host", "") or ""
    if handler == "exec":
        command = tuple(getattr(probe, "command", ()))
        return lambda: exec_in(pod_netns, command, timeout)
    if port is None:
        return _never
    if handler == "httpGet":
        path = getattr(probe, "path", "/") or "/"
        scheme = getattr(probe, "scheme", "HTTP") or "HTTP"
        headers = tuple((str(n), str(v)) for n, v in getattr(probe, "headers", ()) or ())

        async def http() -> bool:
            ip = await _address(host, pod_ip)
            return ip is not None and await http_get(node_fd, ip, port, path, timeout, scheme=scheme, headers=headers)

        return http
    if handler == "tcpSocket":

        async def tcp() -> bool:
            ip = await _address(host, pod_ip)
            return ip is not None and await tcp_open(node_fd, ip, port, timeout)

        return tcp
    if handler == "grpc":
        service = getattr(probe, "grpc_service", "") or ""
        return lambda: grpc_check(node_fd, pod_ip, port, service, timeout)
    log.warning("probe handler %r is not supported: it always fails", handler)
    return _never


async def _attempt(check: Check, timeout: float) -> bool:
    # Handlers enforce timeoutSeconds themselves; this is only a safety net, and an
    # error in a check is a failed probe (the kubelet's "probe errored" counts as failure).
    try:
        async with asyncio.timeout(timeout + 1):
            return bool(await check())
    except TimeoutError:
        return False
    except Exception:
        log.warning("probe check raised", exc_info=True)
        return False


async def probe_loop(
    probe: Probe,
    check: Check,
    on_change: Callable[[bool], None],
    kind: str = "readiness",
    *,
    gate: asyncio.Event | None = None,
) -> None:
    """Run `check` on the kubelet's schedule and report result changes (cancel to stop).

    - The first attempt comes initialDelaySeconds after the loop starts (container start),
      then one every periodSeconds; a result flips after successThreshold consecutive
      successes or failureThreshold consecutive failures.
    - readiness starts as failure (not ready), reports every change and runs forever.
    - liveness and startup start as success and report False on failureThreshold
      consecutive failures: the caller restarts the container. The loop carries on as
      the kubelet's worker does for the new container (held while it restarts, then back
      to success with fresh counts, first attempt after max(initialDelaySeconds,
      periodSeconds)), so one loop serves every restart: do not start another.
    - startup reports True on its first success and returns (readiness and liveness are
      not probed until then: start them then, or now with `gate`, an Event set when
      startup succeeded, so their initialDelaySeconds counts from container start).
    """
    if kind not in ("readiness", "liveness", "startup"):
        raise ValueError(f"probe kind {kind!r}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    if gate is not None:
        await gate.wait()
    delay = getattr(probe, "initial_delay_seconds", 0) - (loop.time() - started)
    if delay > 0:
        await _sleep(delay)
    period = max(1, int(getattr(probe, "period_seconds", 10)))
    timeout = max(1, int(getattr(probe, "timeout_seconds", 1)))
    need_ok = max(1, int(getattr(probe, "success_threshold", 1)))
    need_bad = max(1, int(getattr(probe, "failure_threshold", 3)))
    success = kind != "readiness"
    ok_run = bad_run = 0
    while True:
        ok = await _attempt(check, timeout)
        ok_run, bad_run = (ok_run + 1, 0) if ok else (0, bad_run + 1)
        if kind == "startup" and ok_run >= need_ok:
            on_change(True)
            return
        if not success and ok_run >= need_ok:
            success = True
            on_change(True)
        elif success and bad_run >= need_bad:
            success = False
            on_change(False)
            if kind != "readiness":
                success, ok_run, bad_run = True, 0, 0
                await _sleep(max(period, getattr(probe, "initial_delay_seconds", 0)))
                continue
        # Until its first success a readiness probe retries within a second (not a whole
        # period): a pod turns ready as soon as it serves. Failure counts are unaffected
        # (readiness starts as failure), unlike liveness/startup, which keep the period.
        fast = kind == "readiness" and not success and not ok_run
        await _sleep(min(period, 1) if fast else period)


async def run_probe(
    probe: Probe,
    port: int | None,
    node_fd: int | None,
    pod_ip: str,
    pod_netns: str,
    on_change: Callable[[bool], None],
) -> None:
    """Probe readiness forever (cancel the task to stop), reporting Ready transitions."""
    await probe_loop(probe, make_check(probe, port, node_fd, pod_ip, pod_netns), on_change, "readiness")
