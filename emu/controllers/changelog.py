"""Change logs: a dict that remembers which keys changed, and a Snapshot that asks it.

The store's Services and statuses and the service plane's slices are dicts of 10,000
entries of which a change touches one or two. Every consumer (the slices, the proxy
plans, DNS, gateways, events) needs "which keys changed since I last looked": a
`LoggedDict` records each changed key with a sequence number, so a `Snapshot` holding a
cursor into it answers in O(changes). Given any other mapping (or after the log was cut
short behind its cursor) a Snapshot compares every entry, as it always could.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self, TypeVar

K = TypeVar("K")
V = TypeVar("V")
_MISSING: Any = object()


class LoggedDict(dict[K, V]):
    """A dict whose every change (set, delete, update, clear ...) appends the key to a
    log: `since(seq)` lists the keys changed after `seq` (`seq` read before). Setting a
    key to the object it holds is not logged. The log keeps about as many entries as the
    dict has: a reader that fell further behind gets None and compares in full."""

    __slots__ = ("_base", "_log", "_shape", "shapes")
    keep = 1024  # the log keeps at least this many entries (or as many as the dict has)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._log: list[K] = []
        self._base = 0  # the sequence number of _log[0]
        self._shape = 0  # the sequence number after the last insertion or deletion
        self.shapes = 0  # how many insertions and deletions so far

    @property
    def seq(self) -> int:
        """The number of changes so far (a cursor for `since`)."""
        return self._base + len(self._log)

    def since(self, seq: int) -> list[K] | None:
        """The keys changed after cursor `seq`, in order, repeats included; None when the
        log no longer reaches back to it."""
        if seq < self._base or seq > self.seq:
            return None
        return self._log[seq - self._base :]

    def shaped_since(self, seq: int) -> bool:
        """Whether a key came or went after cursor `seq` (else the keys' order is as it was)."""
        return self._shape > seq

    def _note(self, key: K, shape: bool) -> None:
        log = self._log
        log.append(key)
        if shape:
            self._shape = self._base + len(log)
            self.shapes += 1
        if len(log) > 2 * max(self.keep, len(self)):
            cut = len(log) // 2
            del log[:cut]
            self._base += cut

    def __setitem__(self, key: K, value: V) -> None:
        old = dict.get(self, key, _MISSING)
        if old is value:
            return
        dict.__setitem__(self, key, value)
        self._note(key, old is _MISSING)

    def __delitem__(self, key: K) -> None:
        dict.__delitem__(self, key)
        self._note(key, True)

    def pop(self, key: K, *default: Any) -> Any:
        if key in self:
            value = dict.pop(self, key)
            self._note(key, True)
            return value
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[K, V]:
        key, value = dict.popitem(self)
        self._note(key, True)
        return key, value

    def setdefault(self, key: K, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Mapping[K, V]) -> Self:  # type: ignore[override,misc]  # typeshed's dict takes pairs too
        self.update(other)
        return self

    def clear(self) -> None:
        keys = list(self)
        dict.clear(self)
        for key in keys:
            self._note(key, True)

    def __reduce__(self) -> tuple[Any, ...]:
        # copy/pickle: a fresh log (the default would set items before __init__ ran).
        return (type(self), (dict(self),))


class Snapshot:
    """A mapping's entries as last seen. `changed` names the keys that came, went or
    hold other objects since; from a LoggedDict it saw before, in O(changes); from any
    other mapping by comparing every entry (lists compared at C speed, identity first).
    `same_order` tells whether the keys' order is known to be the one last seen."""

    def __init__(self) -> None:
        self._seen: dict[Any, Any] = {}
        self._src: LoggedDict[Any, Any] | None = None  # the logged mapping last seen, at _seq
        self._seq = 0
        self._reordered = False  # _seen's order may not be the mapping's (a key went and came back)
        self.same_order = False

    def changed(self, new: Mapping[Any, Any], differ: Callable[[Any, Any], bool] = operator.is_not) -> set[Any]:
        """Keys that came, went or whose values are other objects and `differ`; then
        remember `new`."""
        logged = new if isinstance(new, LoggedDict) else None
        keys = logged.since(self._seq) if logged is not None and logged is self._src else None
        if logged is not None and keys is not None and len(keys) <= max(256, len(new) // 8):  # more: C speed wins
            self.same_order = not logged.shaped_since(self._seq)
            self._reordered |= not self.same_order
            out = self._walk(new, keys, differ)
        else:
            out = self._compare(new, differ)
        self._src = logged
        self._seq = logged.seq if logged is not None else 0
        return out

    def _walk(self, new: Mapping[Any, Any], keys: Iterable[Any], differ: Callable[[Any, Any], bool]) -> set[Any]:
        out = set()
        seen = self._seen
        for k in set(keys):
            v, w = new.get(k, _MISSING), seen.get(k, _MISSING)
            if v is w:
                continue
            if v is _MISSING or w is _MISSING or differ(v, w):
                out.add(k)
            if v is _MISSING:
                del seen[k]
            else:
                seen[k] = v
        return out

    def _compare(self, new: Mapping[Any, Any], differ: Callable[[Any, Any], bool]) -> set[Any]:
        old = self._seen
        keys, values = list(new), list(new.values())
        if keys == list(old):
            self.same_order = not self._reordered
            old_values = list(old.values())
            out = set() if values == old_values else {keys[i] for i in moved(values, old_values) if differ(values[i], old_values[i])}
        else:
            self.same_order = False
            out = {k for k in new.keys() | old.keys() if k not in new or k not in old or (new[k] is not old[k] and differ(new[k], old[k]))}
        self._seen = dict(zip(keys, values, strict=True))
        self._reordered = False
        return out


def moved(new: list[Any], old: list[Any], block: int = 256) -> list[int]:
    """Positions where two lists of the same length hold objects that differ, cheaply
    when few do: blocks compare at C speed (identity first), only unequal blocks are
    looked into (an equal object in another's place counts as unchanged: every user
    here computes from values)."""
    out: list[int] = []
    for start in range(0, len(new), block):
        a, b = new[start : start + block], old[start : start + block]
        if a != b:
            out += (start + i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x is not y and x != y)
    return out
