"""A namespace's own /etc files (resolv.conf, hosts) in /etc/netns/NAME, where
`ip netns exec` finds them too, or in a pod's own directory (host-network pods share
their node's namespace, not its files). kemu writes only directories its record lists
first, and removes only those (and /etc/netns itself only if kemu made it)."""

from __future__ import annotations

import os
import shutil

from emu.dataplane import netns

# Left in /etc/netns when kemu made it: whichever cluster removes the last entry removes
# the directory too (several clusters may share it; a directory the host had stays).
MADE_BY_KEMU = ".made-by-kemu"


def ensure_parent() -> None:
    """Make /etc/netns if missing, marked as kemu's."""
    if os.path.isdir(netns.ETC_NETNS):
        return
    os.makedirs(netns.ETC_NETNS, mode=0o755, exist_ok=True)
    open(os.path.join(netns.ETC_NETNS, MADE_BY_KEMU), "w").close()


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
    """Remove /etc/netns once nothing but kemu's mark is left in it."""
    try:
        if os.listdir(netns.ETC_NETNS) != [MADE_BY_KEMU]:
            return
        os.unlink(os.path.join(netns.ETC_NETNS, MADE_BY_KEMU))
        os.rmdir(netns.ETC_NETNS)
    except OSError:
        pass  # gone already, or something else appeared in it meanwhile
