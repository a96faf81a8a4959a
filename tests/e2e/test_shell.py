"""The foreground shell (Mininet's CLI): `x/a curl y/b:80/hostname` and friends."""

from __future__ import annotations

import os

import pytest

from tests.e2e.helpers import TOPOLOGIES, kemu, leftovers

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
