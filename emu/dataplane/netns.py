"""Named network namespaces, made the way `ip netns add` makes them, without forking.

A namespace is created by unshare(CLONE_NEWNET) in the calling *thread* and pinned by a
bind mount of /proc/thread-self/ns/net on /run/netns/NAME, so `ip netns`, `nsenter` and
tcpdump see it. setns(2) switches only the calling thread: one process can create sockets
in many namespaces (a socket stays in the namespace it was created in).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from emu.errors import DataplaneError

RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNS = 0x00020000
MS_SLAVE = 1 << 19
ETC_NETNS = "/etc/netns"
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
# The namespace kemu started in, taken when this module is first imported — before any
# thread has moved. (Taking it lazily from /proc/PID/ns/net is wrong: that is the *main
# thread's* namespace, which may be a new one at that moment.)
_HOME_FD = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise DataplaneError(f"{what}: {os.strerror(err)}")


def home_fd() -> int:
    """A handle on the namespace kemu started in."""
    return _HOME_FD


def path(name: str) -> str:
    return os.path.join(RUN_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def ensure_run_dir() -> list[str]:
    """Make /run/netns a shared mount point as iproute2 does; what we made ("dir", "mount")."""
    made = []
    if not os.path.isdir(RUN_DIR):
        os.makedirs(RUN_DIR, mode=0o755)
        made.append("dir")
    if _libc.mount(b"", RUN_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return made
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, f"mount --make-rshared {RUN_DIR}")
    # Not a mount point yet: bind it on itself, then make it shared (iproute2's ip netns add).
    _check(_libc.mount(RUN_DIR.encode(), RUN_DIR.encode(), b"none", MS_BIND | MS_REC, None), f"bind mount {RUN_DIR}")
    _check(_libc.mount(b"", RUN_DIR.encode(), b"none", MS_SHARED | MS_REC, None), f"mount --make-rshared {RUN_DIR}")
    return [*made, "mount"]


def release_run_dir(made: list[str]) -> None:
    """Undo what ensure_run_dir() made, once no namespace file is left in /run/netns."""
    if not os.path.isdir(RUN_DIR) or os.listdir(RUN_DIR):
        return
    if "mount" in made:
        _libc.umount2(RUN_DIR.encode(), MNT_DETACH)
    if "dir" in made:
        os.rmdir(RUN_DIR)


def set_thread_netns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def go_home() -> None:
    set_thread_netns(home_fd())


def create_here(name: str) -> None:
    """Create netns `name` and leave the calling thread inside it (call go_home() after)."""
    target = path(name)
    fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    try:
        _check(_libc.unshare(CLONE_NEWNET), f"unshare netns for {name}")
        src = f"/proc/self/task/{threading.get_native_id()}/ns/net"
        _check(_libc.mount(src.encode(), target.encode(), b"none", MS_BIND, None), f"bind mount netns {name}")
    except BaseException:
        go_home()
        os.unlink(target)
        raise


@contextmanager
def created(name: str) -> Iterator[None]:
    """Create `name` and run the body inside it; the thread always comes back home."""
    create_here(name)
    try:
        yield
    finally:
        go_home()


@contextmanager
def entered(name: str) -> Iterator[None]:
    fd = open_fd(name)
    try:
        set_thread_netns(fd)
        yield
    finally:
        go_home()
        os.close(fd)


def open_fd(name: str) -> int:
    try:
        return os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DataplaneError(f"network namespace {name} does not exist") from None


def delete(name: str) -> bool:
    """Unpin a namespace (as `ip netns del`); the kernel frees it once nothing uses it."""
    target = path(name)
    if not os.path.exists(target):
        return False
    if _libc.umount2(target.encode(), MNT_DETACH) != 0 and ctypes.get_errno() != errno.EINVAL:
        _check(-1, f"umount netns {name}")
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
    return True


def socket_in(fd: int | None, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A non-blocking IPv4 socket made in the namespace `fd` (None: this thread's own): the
    thread visits it for the microseconds it takes; the socket stays there for good."""
    if fd is None:
        s = socket.socket(socket.AF_INET, kind)
    else:
        set_thread_netns(fd)
        try:
            s = socket.socket(socket.AF_INET, kind)
        finally:
            go_home()
    s.setblocking(False)
    return s


def etc_dir(name: str) -> str:
    """Where a namespace's own /etc files live (iproute2's convention: `ip netns exec`
    bind-mounts each file of /etc/netns/NAME over the one in /etc)."""
    return os.path.join(ETC_NETNS, name)


def enter_process(name: str, hostname: str | None = None, etc: str | None = None) -> None:
    """Move the whole (single-threaded) process into netns `name`, with its own hostname
    and, as `ip netns exec` does, its own /etc/resolv.conf and /etc/hosts when kemu wrote
    them (in a mount namespace of its own: the host's files are never touched)."""
    fd = open_fd(name)
    set_thread_netns(fd)
    os.close(fd)
    if hostname:
        _check(_libc.unshare(CLONE_NEWUTS), "unshare uts")
        b = hostname.encode()
        _check(_libc.sethostname(b, len(b)), "sethostname")
    bind_etc_here(etc or etc_dir(name))


def bind_etc_here(src: str) -> None:
    """iproute2's netns_switch: a private mount namespace, then SRC/* over /etc/*."""
    try:
        entries = sorted(os.listdir(src))
    except FileNotFoundError:
        return
    _check(_libc.unshare(CLONE_NEWNS), "unshare mount namespace")
    # Mounts made here must not propagate back to the host's namespace.
    _check(_libc.mount(b"none", b"/", None, MS_SLAVE | MS_REC, None), "mount --make-rslave /")
    for entry in entries:
        target = os.path.join("/etc", entry)
        if not os.path.exists(target):
            continue  # as iproute2: only files the host has are replaced
        _check(_libc.mount(os.path.join(src, entry).encode(), target.encode(), b"none", MS_BIND, None), f"bind mount {target}")
