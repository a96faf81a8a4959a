"""`kemu trace`'s command line: DST[:PORT][/PROTO] and the text it prints."""

from __future__ import annotations

import pytest

from emu.cli.trace_cmd import render_text, split_dst
from emu.errors import ValidationError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("word", "want"),
    [
        ("web.shop", ("web.shop", None, None)),
        ("web.shop:80", ("web.shop", 80, None)),
        ("shop/api:8080/udp", ("shop/api", 8080, "udp")),
        ("shop/api", ("shop/api", None, None)),
        ("10.96.0.10:53/UDP", ("10.96.0.10", 53, "udp")),
        ("node/n1/icmp", ("node/n1", None, "icmp")),
        ("172.30.0.2:30080", ("172.30.0.2", 30080, None)),
        ("shop/udp", ("shop/udp", None, None)),  # the pod named udp
    ],
)
def test_destinations(word: str, want: tuple[str, int | None, str | None]) -> None:
    assert split_dst(word) == want


@pytest.mark.parametrize("word", ["web.shop:0", "web.shop:http", "web.shop:70000", "10.0.0.1:5/icmp"])
def test_bad_destinations_are_refused(word: str) -> None:
    with pytest.raises(ValidationError):
        split_dst(word)


def test_text_shows_the_hops_that_mean_something_and_the_verdict() -> None:
    r = {
        "from": "x/a",
        "to": "10.96.0.10:80/tcp",
        "verdict": "delivered",
        "reason": "delivered to y/b",
        "hops": [
            {"namespace": "x/a", "hook": "output", "table": "kemu-trace", "chain": "out", "rule": "", "meaning": "sent"},
            {"namespace": "node/n1", "hook": "prerouting", "table": "kemu-proxy", "chain": "filter-prerouting", "rule": "", "meaning": ""},
            {"namespace": "node/n1", "hook": "prerouting", "table": "kemu-proxy", "chain": "nat-prerouting", "rule": "", "meaning": "DNAT"},
        ],
    }
    assert render_text(r).splitlines() == [
        "x/a → 10.96.0.10:80/tcp",
        "  x/a      output      sent",
        "  node/n1  prerouting  DNAT  [kemu-proxy/nat-prerouting]",
        "delivered: delivered to y/b",
    ]
