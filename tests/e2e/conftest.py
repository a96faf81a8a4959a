from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import TOPOLOGIES, Running, start, stop


@pytest.fixture(scope="module")
def xyz() -> Iterator[Running]:
    """Upstream's netpol layout: x, y, z × a, b, c over three nodes, one external host."""
    r = start(os.path.join(TOPOLOGIES, "netpol-xyz.yaml"), "xyz")
    try:
        yield r
    finally:
        stop(r)


@pytest.fixture(scope="module")
def quickstart() -> Iterator[Running]:
    r = start(os.path.join(TOPOLOGIES, "quickstart.yaml"), "quickstart")
    try:
        yield r
    finally:
        stop(r)
