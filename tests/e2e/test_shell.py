"""The foreground shell (Mininet's CLI): `x/a curl y/b:80/hostname` and friends."""

from __future__ import annotations

import os
import re

import pytest

from tests.e2e.helpers import TOPOLOGIES, kemu, leftovers, topology_variant

pytestmark = pytest.mark.e2e


def test_shell_script(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "script.txt"
    script.write_text(
        "\n".join(
            [
                "nodes",
                "x/a curl -s y/b:80/hostname",
                "x/a echo",
                "x/b curl -s http://z/c:80/clientip",
                "x/b echo",
                "outside ping -c1 -W2 node-2",
                "node-1 curl -s x/a/hostname",
                "node-1 echo",
                "get pods -n z",
                "probe udp",
                "x/a false",
                "nosuchthing ls",
            ]
        )
        + "\n"
    )
    out = kemu("up", os.path.join(TOPOLOGIES, "netpol-xyz.yaml"), "--script", str(script)).stdout
    lines = out.splitlines()
    assert [w for w in lines[0].split() if not w.startswith("kube-system/coredns-")] == [
        "node-1", "node-2", "node-3", "outside", "x/a", "x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c",
    ]  # fmt: skip
    assert lines[1] == "b"  # y/b's hostname, through its IP
    assert lines[2].startswith("10.244.") and lines[2].endswith(tuple("0123456789"))
    assert "1 received" in out
    assert "\na\n" in out  # node-1 → x/a
    assert "NAME   READY   STATUS" in out
    assert "162/162 connected" in out  # 9 × 9 pods × UDP 80, 81
    assert "*** exit status 1" in out
    assert "*** Unknown command or target: nosuchthing" in out
    assert not leftovers("xyz")


def test_mininet_commands_mean_something(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "script.txt"
    script.write_text(
        "\n".join(
            [
                "help",
                "iperf node-1 node-2",
                "links",
                "intfs",
                "dump",
                "link default/free down",
                "default/free ping -c1 -W1 node-1",
                "link default/free up",
                "default/free ping -c1 -W1 node-1",
                "sh echo hello-from-sh",
                "fault loss default/free 100",
                "default/free ping -c1 -W1 node-1",
                "fault clear",
                "xterm node-1",
            ]
        )
        + "\n"
    )
    top = topology_variant("trace.yaml", tmp_path, "shellmn")
    out = kemu("up", top, "--script", str(script), timeout=300).stdout
    helped = out.split("*** Iperf")[0]  # `help` lists what works, not Mininet's OpenFlow or X11 commands
    assert "iperf" in helped and "links" in helped and "xterm" not in helped and "dpctl" not in helped
    assert "*** Iperf: testing TCP bandwidth between node-1 and node-2" in out
    assert re.search(r"\*\*\* Results: \['[\d.]+ [GMK]bits/sec', '[\d.]+ [GMK]bits/sec'\]", out), out
    assert re.search(r"default/free:eth0<->node-1:veth\w+ \(OK OK\)", out) and "node-1:eth0<->switch:node-1 (OK OK)" in out
    assert re.search(r"^node-1: lo,.*eth0", out, re.M) and re.search(r"^default/free: lo,eth0", out, re.M)
    assert re.search(r"<Pod default/free: eth0:10\.244\.0\.\d+ netns=kemu-shellmn\.default\.free>", out)
    assert "fault link default/free down on" in out and "*** exit status 1" in out
    assert "fault link default/free cleared (up)" in out and "1 received" in out
    assert "hello-from-sh" in out
    assert "fault loss default/free 100 on" in out and "fault loss default/free 100 cleared" in out
    assert out.count("*** exit status 1") == 2  # the ping under the link cut, and under 100% loss
    assert "*** xterm: not available in kemu" in out
    assert not leftovers("shellmn")
