"""Map contents swapped in a running HAProxy through its runtime API (no reload), as the
gateway plane does when a change touches only maps: atomic, visible to the next request."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from emu.errors import DataplaneError
from emu.gateway import haproxy_ctl
from tests.unit.test_haproxy_live import free_port

pytestmark = [pytest.mark.unit, pytest.mark.skipif(not os.path.exists("/usr/sbin/haproxy"), reason="haproxy not installed (make setup)")]


@pytest.fixture
def proxy(tmp_path: os.PathLike[str]) -> Iterator[tuple[str, str, int]]:
    d = str(tmp_path)
    port = free_port()
    m = os.path.join(d, "routes.map")
    with open(m, "w") as f:
        f.write("a.example/x/ 1\nb.example/ 2\n")
    stats = os.path.join(d, "stats")
    cfg = os.path.join(d, "h.cfg")
    with open(cfg, "w") as f:
        f.write(
            f"global\n    stats socket {stats} mode 600 level admin expose-fd listeners\n"
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n"
            f"frontend fe\n    bind 127.0.0.1:{port}\n"
            "    http-request set-var-fmt(txn.key) %[req.hdr(host)]%[path]\n"
            f'    http-request return status 200 content-type text/plain lf-string "%[var(txn.key),map_beg_int({m},0)]"\n'
        )
    master = os.path.join(d, "master")
    p = subprocess.Popen(haproxy_ctl.argv(cfg, master), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        haproxy_ctl.wait_serving(master, timeout=5.0, process=p)
        yield stats, m, port
    finally:
        p.terminate()
        p.wait(timeout=10)


def ask(port: int, host: str, path: str) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    with urllib.request.urlopen(req, timeout=3) as r:
        return str(r.read().decode())


def test_a_map_is_replaced_whole_and_served_at_once(proxy: tuple[str, str, int]) -> None:
    stats, m, port = proxy
    assert ask(port, "a.example", "/x/y") == "1" and ask(port, "b.example", "/") == "2"
    haproxy_ctl.replace_maps(stats, {m: "a.example/x/ 7\nc.example/ 9\n"})
    assert ask(port, "a.example", "/x/y") == "7"
    assert ask(port, "b.example", "/") == "0"  # gone: the new version replaced the old whole
    assert ask(port, "c.example", "/") == "9"


def test_many_entries_and_keys_needing_escapes(proxy: tuple[str, str, int]) -> None:
    stats, m, port = proxy
    content = "".join(f"h{i}.example/p;{i}/ {i}\n" for i in range(1000))
    haproxy_ctl.replace_maps(stats, {m: content})
    assert ask(port, "h999.example", "/p;999/") == "999" and ask(port, "h0.example", "/p;0/q") == "0"


def test_an_unknown_map_is_refused(proxy: tuple[str, str, int]) -> None:
    stats, _m, _port = proxy
    with pytest.raises(DataplaneError):
        haproxy_ctl.replace_maps(stats, {"/no/such.map": "k 1\n"})
