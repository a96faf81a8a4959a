"""Where nft scripts go: the kernel, in-process through libnftables when it is there, or
the `nft` command; tests use emu.netfilter.fake.FakeNft, which has the same shape.

A libnftables context opens its netlink socket when it is created, so a context made
while the thread is inside a node's namespace keeps talking to that namespace from any
thread. That saves starting `nft` for every sync (~10-15 ms here, most of a small
change's cost). Without the library, `nft -f -` runs in the namespace instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
from typing import Protocol

from emu.dataplane import netns
from emu.dataplane.run import run
from emu.errors import CommandError

log = logging.getLogger(__name__)

NFT_ARGV = ["nft", "-f", "-"]  # how every backend names a failed transaction


class NftBackend(Protocol):
    """Runs nft scripts in one network namespace, each script one transaction: it all
    applies or nothing does, and a failure raises CommandError."""

    netns: str

    def run(self, script: str) -> None: ...

    def close(self) -> None: ...


@functools.cache
def libnftables() -> ctypes.CDLL | None:
    """The library with its prototypes declared, or None when it is not installed."""
    name = ctypes.util.find_library("nftables") or "libnftables.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        log.info("libnftables not found; using the nft command")
        return None
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    return lib


class NftCommand:
    """`nft -f -` run inside the namespace, one process per script."""

    def __init__(self, netns_name: str) -> None:
        self.netns = netns_name

    def run(self, script: str) -> None:
        run(NFT_ARGV, netns_name=self.netns, input=script)

    def close(self) -> None:
        pass


class LibNft:
    """libnftables in this process, with a context bound to the namespace at creation.
    After close() it keeps working through the nft command (callers closing early must
    not lose rules)."""

    def __init__(self, netns_name: str, lib: ctypes.CDLL) -> None:
        self.netns = netns_name
        self._lib = lib
        self._fallback = NftCommand(netns_name)
        fd = netns.open_fd(netns_name)
        try:
            netns.set_thread_netns(fd)
            try:
                self._ctx: int | None = lib.nft_ctx_new(0)
            finally:
                netns.go_home()
        finally:
            os.close(fd)
        lib.nft_ctx_buffer_error(self._ctx)
        lib.nft_ctx_buffer_output(self._ctx)

    def run(self, script: str) -> None:
        if self._ctx is None:
            self._fallback.run(script)
            return
        rc = self._lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
        if rc != 0:
            err = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode(errors="replace")
            raise CommandError(NFT_ARGV, rc, err, self.netns)

    def close(self) -> None:
        if self._ctx is not None:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None


def open_backend(netns_name: str) -> NftBackend:
    """libnftables when it is installed, else the nft command."""
    lib = libnftables()
    return LibNft(netns_name, lib) if lib is not None else NftCommand(netns_name)
