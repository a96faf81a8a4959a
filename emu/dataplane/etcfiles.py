"""A namespace's own /etc files (resolv.conf, hosts) in /etc/netns/NAME, where
`ip netns exec` finds them too, or in a pod's own directory (host-network pods share
their node's namespace, not its files). kemu writes only directories its record lists
first, and removes only those (and /etc/netns itself only if kemu made it)."""

from __future__ import annotations

import os
import shutil

from emu.dataplane import netns


def ensure_parent() -> bool:
    """Make /etc/netns if missing; True if this call made it."""
    if os.path.isdir(netns.ETC_NETNS):
        return False
    os.makedirs(netns.ETC_NETNS, mode=0o755, exist_ok=True)
    return True


def write(directory: str, files: dict[str, str]) -> None:
    """Written once, before anything in the namespace reads them (no temporary files)."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    for name, text in files.items():
        fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def remove(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def release_parent() -> None:
    """Remove /etc/netns once empty (call only when kemu made it)."""
    try:
        os.rmdir(netns.ETC_NETNS)
    except OSError:
        pass  # not empty (another cluster's or program's entries) or gone
