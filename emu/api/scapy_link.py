"""The API's side of a scapy helper (emu/api/scapy_child.py): one process per member,
started on first use, answering several requests at once; and the handle of a sniff
running in the background."""

from __future__ import annotations

import collections
import itertools
import logging
import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from emu.api.scapy_wire import WirePacket, from_wire, read_frame, write_frame
from emu.errors import KemuError

if TYPE_CHECKING:
    from scapy.packet import Packet
    from scapy.plist import PacketList

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # seconds for a helper to enter its namespace and import scapy
MARGIN = 15.0  # seconds an answer may take beyond the request's own timeout


class ScapyError(KemuError):
    """Scapy failed inside a member (a packet it could not build or send, a bad filter,
    a helper that died), or did not answer in time."""


class _Call:
    def __init__(self, rid: int) -> None:
        self.id = rid
        self.started = threading.Event()
        self.done = threading.Event()
        self.result: Any = None
        self.error: str | None = None

    def finish(self, msg: dict[str, Any]) -> None:
        if msg.get("ok"):
            self.result = msg.get("result")
        else:
            self.error = str(msg.get("error") or "failed")
        self.started.set()
        self.done.set()


def namespace_inode(netns_name: str) -> int | None:
    from emu.dataplane import netns

    try:
        return os.stat(netns.path(netns_name)).st_ino
    except OSError:
        return None


class Helper:
    """The scapy helper of one network namespace."""

    def __init__(self, netns_name: str, label: str) -> None:
        self.netns = netns_name
        self.label = label
        # Which namespace it serves: a pod recreated under the same name (a StatefulSet's,
        # an evicted one) has a new namespace under the old name.
        self.inode = namespace_inode(netns_name)
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._closed = False
        self._ready = _Call(0)
        self._calls[0] = self._ready
        argv = [sys.executable, "-m", "emu.api.scapy_child", netns_name]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        threading.Thread(target=self._read_answers, name=f"scapy-{label}", daemon=True).start()
        threading.Thread(target=self._read_stderr, name=f"scapy-err-{label}", daemon=True).start()
        if not self._ready.started.wait(START_TIMEOUT):
            self.close()
            raise ScapyError(f"{label}: the scapy helper did not start in {START_TIMEOUT:.0f} s{self._tail()}")
        if self._ready.error is not None:
            self.close()
            raise ScapyError(f"{label}: the scapy helper could not start: {self._ready.error}")
        with self._lock:
            self._calls.pop(0, None)

    # --- the helper's output ----------------------------------------------------------------

    def _read_answers(self) -> None:
        assert self.proc.stdout is not None
        try:
            while True:
                msg = read_frame(self.proc.stdout)
                if msg is None:
                    break
                with self._lock:
                    call = self._calls.get(int(msg.get("id", -1)))
                if call is None:
                    continue
                if msg.get("event") in ("ready", "started"):
                    call.started.set()
                else:
                    with self._lock:
                        self._calls.pop(call.id, None)
                    call.finish(msg)
        except Exception as e:  # noqa: BLE001 - a broken stream fails every waiting call below
            log.debug("%s: reading the scapy helper: %s", self.label, e)
        self.proc.wait()
        with self._lock:
            waiting, self._calls = list(self._calls.values()), {}
        why = "closed" if self._closed else f"exited ({self.proc.returncode}){self._tail()}"
        for call in waiting:
            call.finish({"ok": False, "error": f"the scapy helper {why}"})

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._stderr.append(line)
            log.debug("%s: scapy: %s", self.label, line)

    def _tail(self) -> str:
        lines = [x for x in self._stderr if x.strip()]
        return (": " + " | ".join(lines[-5:])) if lines else ""

    # --- requests ---------------------------------------------------------------------------

    def start(self, op: str, **args: Any) -> _Call:
        """Send a request; its answer comes later (`wait`)."""
        call = _Call(next(self._ids))
        with self._lock:
            if self._closed or self.proc.poll() is not None:
                raise ScapyError(f"{self.label}: the scapy helper is not running")
            self._calls[call.id] = call
        try:
            with self._write_lock:
                assert self.proc.stdin is not None
                write_frame(self.proc.stdin, {"id": call.id, "op": op, **args})
        except OSError as e:
            with self._lock:
                self._calls.pop(call.id, None)
            raise ScapyError(f"{self.label}: the scapy helper is gone ({e.strerror or e}){self._tail()}") from e
        return call

    def wait(self, call: _Call, timeout: float | None) -> Any:
        if not call.done.wait(timeout):
            raise ScapyError(f"{self.label}: scapy did not answer in {timeout:.0f} s")
        if call.error is not None:
            raise ScapyError(f"{self.label}: {call.error}")
        return call.result

    def call(self, op: str, within: float | None, **args: Any) -> Any:
        """A request and its answer, expected within `within` seconds (plus a margin; None: no limit)."""
        return self.wait(self.start(op, **args), None if within is None else within + MARGIN)

    def alive(self) -> bool:
        return not self._closed and self.proc.poll() is None

    def close(self) -> None:
        """Stop the helper (its sniffs end); waits for it to exit."""
        self._closed = True
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def packet_list(wires: list[WirePacket], name: str = "Sniffed") -> PacketList:
    from scapy.plist import PacketList

    return PacketList([from_wire(w) for w in wires], name=name)


def packet_or_none(wire: WirePacket | None) -> Packet | None:
    return None if wire is None else from_wire(wire)


class SniffHandle:
    """A capture running in a member (`Member.sniff_async`): it is already listening when
    you get it. It ends by itself after `count` packets or `timeout` seconds, or when you
    call `stop()`; `join()` waits for the end and returns the packets. Also a context
    manager: leaving the block stops it."""

    def __init__(self, helper: Helper, call: _Call, timeout: float | None) -> None:
        self._helper = helper
        self._call = call
        self._timeout = timeout
        self._results: PacketList | None = None

    @property
    def running(self) -> bool:
        return not self._call.done.is_set()

    @property
    def results(self) -> PacketList | None:
        """The packets once the capture has ended (None while it runs)."""
        if self._results is None and self._call.done.is_set():
            self._results = packet_list(self._helper.wait(self._call, 0))
        return self._results

    def join(self, timeout: float | None = None) -> PacketList:
        """Wait for the capture to end (by its own count or timeout); the packets.
        Raises ScapyError if it has not ended within `timeout` seconds (None: its own
        timeout plus a margin, or for ever when it has none)."""
        if timeout is None and self._timeout is not None:
            timeout = self._timeout + MARGIN
        self._helper.wait(self._call, timeout)
        result = self.results
        assert result is not None
        return result

    def stop(self) -> PacketList:
        """End the capture now; the packets it got."""
        if self.running:
            try:
                self._helper.call("stop", 10.0, target=self._call.id)
            except ScapyError:
                if self.running:
                    raise
        return self.join(MARGIN)

    def __enter__(self) -> SniffHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running and self._helper.alive():
            self.stop()
