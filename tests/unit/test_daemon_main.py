"""The detached daemon's report line when its cluster's record vanished while it came
up (`kemu clean` takes every cluster down): one ERROR line, the cluster taken down, no
traceback — with a fake cluster, so no root."""

from __future__ import annotations

import json
import os
import pathlib
import sys
from types import SimpleNamespace
from typing import Any

import pytest

import emu.daemon.__main__ as daemon_main

pytestmark = pytest.mark.unit


class FakeHosted:
    stopped = 0

    def __init__(self, config: Any, progress: Any) -> None:
        self.cluster = SimpleNamespace(name="gone", record=SimpleNamespace(dir=FakeHosted.record_dir))

    def start(self, ready_timeout: float) -> list[str]:
        return []

    def stop(self) -> None:
        FakeHosted.stopped += 1

    record_dir = ""


def test_a_record_removed_during_bring_up_is_one_error_line(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeHosted.record_dir = str(tmp_path / "removed-by-clean")
    FakeHosted.stopped = 0
    monkeypatch.setattr(daemon_main, "load_cluster_file", lambda path: object())
    monkeypatch.setattr(daemon_main, "HostedCluster", FakeHosted)
    r, w = os.pipe()
    monkeypatch.setattr(sys, "argv", ["python -m emu.daemon", "cluster.yaml", "--report-fd", str(w)])
    assert daemon_main.main() == 1
    with os.fdopen(r) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR 1 "), lines
    message = json.loads(lines[0].removeprefix("ERROR 1 "))
    assert "cluster gone: cannot open" in message and "kemu clean" in message
    assert FakeHosted.stopped == 1
    assert "Traceback" not in capsys.readouterr().err


def test_raise_fd_limit_sizes_the_descriptor_table_at_once() -> None:
    """In a fresh process: the limit is the hard one and the kernel's table already has
    room for FD_TABLE_PRESIZE descriptors (no growth, no RCU wait, during bring-up)."""
    import subprocess

    code = (
        "import os, resource\n"
        "from emu.daemon.host import FD_TABLE_PRESIZE, raise_fd_limit\n"
        "raise_fd_limit()\n"
        "size = int(open('/proc/self/status').read().split('FDSize:')[1].split()[0])\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "print(soft == hard, size >= FD_TABLE_PRESIZE or hard <= FD_TABLE_PRESIZE, os.path.exists(f'/proc/self/fd/{FD_TABLE_PRESIZE - 1}'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "False"]
