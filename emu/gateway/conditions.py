"""Status conditions (metav1.Condition) as the Gateway API asks for them: type, status,
reason, message, observedGeneration and lastTransitionTime on every one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


def rfc3339(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def generation_of(obj: dict[str, Any]) -> int:
    gen = (obj.get("metadata") or {}).get("generation")
    return gen if isinstance(gen, int) and gen > 0 else 1


@dataclass(frozen=True)
class Stamp:
    """What every condition of one object shares: the generation it describes and the
    time it is written at."""

    generation: int
    time: str

    @classmethod
    def of(cls, obj: dict[str, Any], now: float) -> Stamp:
        return cls(generation_of(obj), rfc3339(now))

    def cond(self, type_: str, ok: bool, reason: str, message: str = "") -> dict[str, Any]:
        return {
            "type": type_,
            "status": "True" if ok else "False",
            "reason": reason,
            "message": message or reason,
            "observedGeneration": self.generation,
            "lastTransitionTime": self.time,
        }


def find(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def merge_conditions(previous: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`current`, with the lastTransitionTime of `previous` kept where a condition's
    status did not change (metav1.Condition: the time the status last changed). The
    compiler is stateless; whoever stores status calls this."""
    out = []
    for c in current:
        old = find(previous, c.get("type", ""))
        if old is not None and old.get("status") == c.get("status") and old.get("lastTransitionTime"):
            c = {**c, "lastTransitionTime": old["lastTransitionTime"]}
        out.append(c)
    return out
