"""Test tiers and the capabilities they need (skips by capability, never by user id)."""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import threading

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.cache
def can_netns() -> str | None:
    """None if this process can create network namespaces, else why not."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: list[str | None] = []

    def probe() -> None:
        # unshare in a throwaway thread: only that thread changes namespace.
        if libc.unshare(0x40000000) != 0:
            result.append(f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}")
        else:
            result.append(None)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    if result[0] is None and not os.access("/run", os.W_OK):
        return "/run is not writable"
    return result[0]


def missing_tools(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = can_netns()
    tools = missing_tools("nft", "nsenter", "curl", "ip")
    for item in items:
        if "kernel" in item.keywords or "e2e" in item.keywords:
            if why:
                item.add_marker(pytest.mark.skip(reason=f"cannot create network namespaces here: {why}"))
            elif tools:
                item.add_marker(pytest.mark.skip(reason=f"missing tools (run make setup): {', '.join(tools)}"))
