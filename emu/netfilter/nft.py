"""The old name of an nft backend, kept for callers not yet on emu.netfilter.backend."""

from __future__ import annotations

from emu.netfilter.backend import NftBackend, open_backend


class Nft:
    """Runs nft scripts (one transaction each) in one named network namespace: a thin
    wrapper of `open_backend(netns_name)`."""

    def __init__(self, netns_name: str) -> None:
        self.netns = netns_name
        self.backend: NftBackend = open_backend(netns_name)

    def run(self, script: str) -> None:
        self.backend.run(script)

    def close(self) -> None:
        self.backend.close()


__all__ = ["Nft", "NftBackend", "open_backend"]
