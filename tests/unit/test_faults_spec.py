"""Faults as words (emu/faults/spec.py) and the kernel changes they become
(emu/faults/kernel.py), without root; tests/e2e/test_faults.py puts them on real links."""

from __future__ import annotations

import pytest

from emu.errors import ValidationError
from emu.faults.kernel import Link, loss_table, partition_table, tbf_args
from emu.faults.spec import Fault, parse, rate_bits
from emu.netfilter.fake import FakeKernel
from emu.netfilter.render import script
from emu.netfilter.transaction import replace_table

pytestmark = pytest.mark.unit


def test_words_become_faults() -> None:
    assert parse("link", ["node/n1", "down"]) == Fault("link", ("node/n1",), "down")
    assert parse("loss", ["x/a", "12.5%"]) == Fault("loss", ("x/a",), "12.5")
    assert parse("rate", ["host/h", "10mbit"]).value == "10mbit"
    assert parse("delay", ["x/a", "100", "10ms"]).value == "100 10"
    p = parse("partition", ["node/n1,host/h"], ["node/n2"])
    assert (p.targets, p.others) == (("node/n1", "host/h"), ("node/n2",))
    assert p.key == parse("partition", ["node/n2"], ["host/h,node/n1"]).key  # the same split, either way round


@pytest.mark.parametrize(
    ("kind", "words", "others", "said"),
    [
        ("link", ["n1", "down"], None, "expected ns/pod"),
        ("link", ["node/n1", "off"], None, "down or up"),
        ("loss", ["x/a", "0"], None, "percentage"),
        ("loss", ["x/a", "101"], None, "percentage"),
        ("rate", ["x/a", "10 furlongs"], None, "tc's units"),
        ("rate", ["x/a"], None, "usage"),
        ("rate", ["x/a", "1kbit"], None, "at least"),
        ("delay", ["x/a", "soon"], None, "milliseconds"),
        ("partition", ["node/n1"], [], "two groups"),
        ("partition", ["x/a"], ["node/n2"], "nodes and hosts"),
        ("partition", ["node/n1"], ["node/n1"], "in both groups"),
        ("loss", ["x/a", "5"], ["node/n2"], "only partition"),
        ("flood", ["x/a"], None, "unknown fault"),
    ],
)
def test_bad_words_are_refused(kind: str, words: list[str], others: list[str] | None, said: str) -> None:
    with pytest.raises(ValidationError) as e:
        parse(kind, words, others)
    assert any(said in str(p) for p in e.value.problems), e.value.problems


def test_rates_in_tc_units() -> None:
    assert rate_bits("10mbit") == 10_000_000 and rate_bits("1gbit") == 10**9 and rate_bits("100kbps") == 800_000
    assert tbf_args(10_000_000)[:3] == ["tbf", "rate", "10000000bit"]


@pytest.mark.parametrize("percent", [0.01, 30, 99.99, 100])
def test_loss_tables_are_valid_nft(percent: float) -> None:
    kernel = FakeKernel()
    kernel.run("ns", script(replace_table(loss_table("kemu-fault", "eth0", percent))))
    text = kernel.snapshot("ns").dump()
    assert "hook ingress device" in text and ("numgen random mod 10000" in text) == (percent < 100)


def test_a_partition_drops_both_ways() -> None:
    t = script(replace_table(partition_table([(["node-1"], ["node-2", "other"])])))
    assert 'iifname { "node-1" } oifname { "node-2", "other" } drop' in t
    assert 'iifname { "node-2", "other" } oifname { "node-1" } drop' in t


def test_a_link_names_both_ends() -> None:
    link = Link("kemu-c.x.a", "eth0", "kemu-c.n1", "veth0123")
    assert (link.netns, link.far_netns) == ("kemu-c.x.a", "kemu-c.n1")
