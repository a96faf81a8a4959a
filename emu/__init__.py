"""kemu: the Kubernetes network model on one machine, with the real kernel.

`import emu` stays cheap (the CLI and every daemon import it): the Python API
(emu/api/) is loaded on first use of one of its names, e.g. `emu.up(...)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from emu.api import Cluster, Member, ScapyError, SniffHandle, attach, up

__all__ = ["Cluster", "Member", "ScapyError", "SniffHandle", "__version__", "attach", "up"]
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _API:
        import emu.api

        return getattr(emu.api, name)
    raise AttributeError(f"module 'emu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
