"""The node syncer: per-node isolation, full resync and retry with backoff, visible status."""

from __future__ import annotations

import threading

import pytest

from emu.dataplane.node_sync import BACKOFF_FIRST, NodeSyncer

pytestmark = pytest.mark.unit


class Kernel:
    """A node's plane that refuses the first `fails` writes."""

    def __init__(self, fails: int = 0) -> None:
        self.fails = fails
        self.calls: list[bool] = []

    def sync(self, full: bool) -> bool:
        self.calls.append(full)
        if self.fails:
            self.fails -= 1
            raise RuntimeError("nft: Could not process rule: No such file or directory\n  add rule ...")
        return True


def test_a_failing_node_does_not_stop_the_others_and_is_retried_in_full() -> None:
    woken = threading.Event()
    syncer = NodeSyncer(woken.set)
    bad, good = Kernel(fails=2), Kernel()
    try:
        assert not syncer.run("proxy", "node-1", bad.sync)
        assert syncer.run("proxy", "node-2", good.sync)
        st = syncer.status("node-1")["proxy"]
        # One line, in the kernel's words; when the next try comes.
        assert st["error"] == "nft: Could not process rule: No such file or directory add rule ..."
        assert st["failuresInARow"] == 1 and 0 < st["retryInSeconds"] <= BACKOFF_FIRST
        assert "error" not in syncer.status("node-2")["proxy"]
        assert syncer.failing() == {("proxy", "node-1"): st["error"]}
        # The retry timer asks the cluster to sync again, without any change.
        assert woken.wait(5)
        woken.clear()
        assert not syncer.run("proxy", "node-1", bad.sync)
        assert syncer.status("node-1")["proxy"]["failuresInARow"] == 2
        assert woken.wait(5)
        assert syncer.run("proxy", "node-1", bad.sync)
        # Every retry rewrote everything (kube-proxy's needFullSync); the first sync too.
        assert bad.calls == [True, True, True]
        st = syncer.status("node-1")["proxy"]
        assert "error" not in st and st["syncs"] == 1 and st["lastSyncTime"]
        assert syncer.failing() == {}
        # Then partial syncs again.
        syncer.run("proxy", "node-1", bad.sync)
        assert bad.calls[-1] is False
    finally:
        syncer.close()


def test_backoff_doubles_up_to_a_ceiling() -> None:
    syncer = NodeSyncer(lambda: None)
    k = Kernel(fails=30)
    try:
        waits = []
        for _ in range(10):
            syncer.run("policy", "n", k.sync)
            waits.append(syncer.status("n")["policy"]["retryInSeconds"])
        assert waits[1] > waits[0] * 1.5 and waits[2] > waits[1] * 1.5
        assert max(waits) <= 10.0
    finally:
        syncer.close()


def test_drift_asks_for_a_full_rewrite_at_once() -> None:
    woken = threading.Event()
    syncer = NodeSyncer(woken.set)
    k = Kernel()
    try:
        syncer.run("proxy", "n", k.sync)
        syncer.run("proxy", "n", k.sync)
        assert k.calls == [True, False]
        syncer.mark_full("proxy", "n")
        assert woken.is_set()
        syncer.run("proxy", "n", k.sync)
        assert k.calls[-1] is True
    finally:
        syncer.close()


def test_drift_reported_while_a_sync_runs_is_not_lost() -> None:
    """The sync in flight may have read the kernel before the foreign change."""
    syncer = NodeSyncer(lambda: None)
    calls: list[bool] = []

    def sync(full: bool) -> bool:
        calls.append(full)
        if len(calls) == 2:
            syncer.mark_full("proxy", "n")  # from the monitor thread, mid-sync
        return True

    try:
        syncer.run("proxy", "n", sync)
        syncer.run("proxy", "n", sync)
        syncer.run("proxy", "n", sync)
        assert calls == [True, False, True]
    finally:
        syncer.close()
