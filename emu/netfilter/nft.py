"""nftables transactions, in-process through libnftables when it is there.

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

from emu.dataplane import netns
from emu.dataplane.run import run
from emu.errors import CommandError

log = logging.getLogger(__name__)


@functools.cache
def _lib() -> ctypes.CDLL | None:
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


class Nft:
    """Runs nft scripts (one transaction each) in one named network namespace."""

    def __init__(self, netns_name: str) -> None:
        self.netns = netns_name
        self._ctx: int | None = None
        lib = _lib()
        if lib is not None:
            fd = netns.open_fd(netns_name)
            try:
                netns.set_thread_netns(fd)
                try:
                    self._ctx = lib.nft_ctx_new(0)
                finally:
                    netns.go_home()
            finally:
                os.close(fd)
            lib.nft_ctx_buffer_error(self._ctx)
            lib.nft_ctx_buffer_output(self._ctx)

    def run(self, script: str) -> None:
        lib = _lib()
        if self._ctx is None or lib is None:
            run(["nft", "-f", "-"], netns_name=self.netns, input=script)
            return
        rc = lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
        if rc != 0:
            err = (lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode(errors="replace")
            raise CommandError(["nft", "-f", "-"], rc, err, self.netns)

    def close(self) -> None:
        lib = _lib()
        if self._ctx is not None and lib is not None:
            lib.nft_ctx_free(self._ctx)
            self._ctx = None
