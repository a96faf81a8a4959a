"""Durations as Kubernetes and Go write them ("40s", "5m", "1.5h"): Go's time.ParseDuration.

Used at the YAML boundary (a cluster's node-lifecycle durations) and by the echo-basic
stand-in (its `delay` query), so it lives here, below both.
"""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"([0-9]*)(\.[0-9]*)?([^0-9.]*)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go time.ParseDuration string ("1.5s", "2h45m", "300ms"), or None."""
    s = text[1:] if text[:1] in ("+", "-") else text
    if s == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        assert m is not None  # every group may be empty
        whole, frac, unit = m.group(1), m.group(2) or "", m.group(3)
        if (not whole and len(frac) <= 1) or unit not in _UNITS:
            return None
        total += float((whole or "0") + frac) * _UNITS[unit]
        pos = m.end()
    return (-total if text.startswith("-") else total) if s else None
