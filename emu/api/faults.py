"""Faults from Python, in the CLI's words (`kemu fault …`, emu/cluster/faulting.py):

cluster.fault("loss", "x/a", 30)                     # kemu fault loss x/a 30
cluster.fault("link", "node/n2", "down")             # kemu fault link node/n2 down
cluster.fault("rate", cluster.host("client"), "10mbit")
cluster.fault("partition", "node/n1", "--", "node/n2,host/h")   # or two lists
cluster.fault("kill", "x/a", container="c")          # kemu fault kill x/a -c c
cluster.faults()                                     # kemu get faults, as dicts
cluster.fault_clear()                                # kemu fault clear [TARGET]
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, cast

from emu.api.names import HasRef, endpoint_ref
from emu.daemon.client import request
from emu.errors import Problem, ValidationError
from emu.faults.spec import parse

Word = str | int | float | HasRef


def _word(x: Word) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (int, float)):
        return f"{x:g}"
    return endpoint_ref(x)  # a Member


def _words(args: Sequence[Word | Sequence[Word]]) -> tuple[list[str], list[str] | None]:
    """The fault's words before and after `--` (a list counts as a comma-separated group)."""
    flat = [",".join(_word(x) for x in a) if isinstance(a, (list, tuple)) else _word(cast(Word, a)) for a in args]
    if "--" in flat:
        i = flat.index("--")
        return flat[:i], flat[i + 1 :]
    return flat, None


class FaultsMixin:
    """Mixed into emu.api.Cluster (its `name` and `_remote`)."""

    name: str

    def _remote(self) -> AbstractContextManager[None]:  # emu.api.cluster.Cluster's
        raise NotImplementedError

    def fault(self, kind: str, *args: Word | Sequence[Word], container: str | None = None) -> str:
        """Put a fault on (as `kemu fault KIND …`); what kemu says. Bad words raise
        ValidationError before anything is sent; partition's two groups: "A,B", "--",
        "C" — or two lists."""
        words, others = _words(args)
        if kind == "partition" and others is None and len(words) == 2:
            words, others = words[:1], words[1:]
        with self._remote():
            if kind == "kill":
                if len(words) != 1:
                    raise ValidationError([Problem("fault", " ".join(words), 'usage: fault("kill", POD, container=None)')])
                return str(request(self.name, "fault", action="kill", target=words[0], container=container)["results"][0])
            f = parse(kind, words, others)
            return "\n".join(request(self.name, "fault", action="add", kind=f.kind, words=words, others=others or [])["results"])

    def fault_clear(self, target: str | HasRef | None = None) -> list[str]:
        """Undo every fault, or those involving `target` (`kemu fault clear [TARGET]`)."""
        ref = endpoint_ref(target) if target is not None else None
        with self._remote():
            return list(request(self.name, "fault", action="clear", target=ref)["results"])

    def faults(self) -> list[dict[str, Any]]:
        """The faults on now (`kemu get faults`): kind, target, value, since (epoch s)."""
        with self._remote():
            return list(request(self.name, "fault", action="list")["faults"])
