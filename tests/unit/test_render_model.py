"""The typed transaction model and its one nft renderer (emu.netfilter.transaction,
emu.netfilter.render): what each command spells, and that the fake kernel reads the
script into the ruleset the commands describe."""

from __future__ import annotations

import pytest

from emu.netfilter import render
from emu.netfilter.fake import FakeKernel, load
from emu.netfilter.ruleset import Chain
from emu.netfilter.transaction import (
    AddChain,
    AddElements,
    AddRules,
    AddSet,
    AddTable,
    DeleteChain,
    DeleteElements,
    DeleteSet,
    DeleteTable,
    FlushChain,
    FlushSet,
    SetDef,
    TableDef,
    Transaction,
    replace_table,
    rule,
    tokens,
    verdict,
)

pytestmark = pytest.mark.unit

BASE = TableDef(
    "ip",
    "t",
    (
        SetDef("addrs", ("ipv4_addr",), flags=frozenset({"interval"}), elements=("10.0.0.0/8", "192.0.2.1")),
        SetDef("ports", ("inet_proto", "inet_service"), ("verdict",), elements={"tcp . 80": verdict("goto", "web"), "udp . 53": "drop"}),
        SetDef("aff", ("ipv4_addr",), flags=frozenset({"dynamic", "timeout"}), timeout="60s"),
    ),
    (
        Chain(
            "in",
            (rule("ct state established , related accept"), rule("ip saddr @addrs meta l4proto . th dport vmap @ports")),
            "filter",
            "input",
            0,
            "drop",
        ),
        Chain("web", (rule("update @aff { ip saddr }"), rule("accept", comment="the web"))),
    ),
    "a test table",
)


def test_a_table_is_spelled_as_one_block() -> None:
    assert render.table_text(BASE) == (
        "table ip t {\n"
        '  comment "a test table";\n'
        "  set addrs { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 192.0.2.1 }; }\n"
        "  map ports { type inet_proto . inet_service : verdict; elements = { tcp . 80 : goto web, udp . 53 : drop }; }\n"
        "  set aff { type ipv4_addr; flags dynamic,timeout; timeout 60s; }\n"
        "  chain in {\n"
        "    type filter hook input priority 0; policy drop;\n"
        "    ct state established,related accept\n"
        "    ip saddr @addrs meta l4proto . th dport vmap @ports\n"
        "  }\n"
        "  chain web {\n"
        "    update @aff { ip saddr }\n"
        '    accept comment "the web"\n'
        "  }\n"
        "}\n"
    )


def test_replacing_a_table_leaves_exactly_the_new_one() -> None:
    kernel = FakeKernel()
    kernel.run("n", "table ip t { chain old { drop; } }\ntable ip other { }\n")
    kernel.run("n", render.script(replace_table(BASE)))
    rs = kernel.snapshot("n")
    assert [t.name for t in rs.tables] == ["other", "t"]
    assert rs.table("ip", "t") == load(render.table_text(BASE)).table("ip", "t")
    kernel.run("n", render.script(replace_table(BASE)))  # again: the same
    assert kernel.snapshot("n") == rs


def test_every_command_does_what_it_says_in_one_transaction() -> None:
    kernel = FakeKernel()
    kernel.run("n", render.script(replace_table(BASE)))
    txn = Transaction(
        "ip",
        "t",
        (
            DeleteElements("ports", ("udp . 53",)),
            FlushChain("web"),
            AddChain(Chain("1st")),  # a name nft wants quoted
            AddRules("1st", (rule("accept"),)),
            AddElements("ports", {"tcp . 443": verdict("jump", "1st")}),
            AddChain(Chain("out", (), "filter", "output", 10, "accept")),
            AddRules("out", (rule("jump web"),)),
            FlushSet("addrs"),
            AddElements("addrs", ("172.16.0.0/12",)),
            AddSet(SetDef("new", ("ipv4_addr",), elements=("198.51.100.1",))),
            DeleteSet("aff"),
            AddElements("addrs", ()),  # nothing to add: no command
            DeleteElements("ports", ()),
        ),
    )
    text = render.script(txn)
    assert 'add chain ip t "1st"\n' in text and 'tcp . 443 : jump "1st"' in text
    assert "add chain ip t out { type filter hook output priority 10; policy accept; }\n" in text
    assert "add element ip t addrs { 172.16.0.0/12 }\n" in text and text.count(" element ip t ") == 3
    kernel.run("n", text)
    want = (
        "table ip t {\n"
        '  comment "a test table";\n'
        "  set addrs { type ipv4_addr; flags interval; elements = { 172.16.0.0/12 }; }\n"
        "  set new { type ipv4_addr; elements = { 198.51.100.1 }; }\n"
        '  map ports { type inet_proto . inet_service : verdict; elements = { tcp . 80 : goto web, tcp . 443 : jump "1st" }; }\n'
        '  chain "1st" { accept; }\n'
        "  chain in {\n"
        "    type filter hook input priority 0; policy drop;\n"
        "    ct state established,related accept\n"
        "    ip saddr @addrs meta l4proto . th dport vmap @ports\n"
        "  }\n"
        "  chain out { type filter hook output priority 10; policy accept; jump web; }\n"
        "  chain web { }\n"
        "}\n"
    )
    assert kernel.snapshot("n").dump() == load(want).dump()
    # Deleting what is now unused, and the table itself.
    kernel.run(
        "n",
        render.script(
            Transaction("ip", "t", (DeleteElements("ports", ("tcp . 80",)), FlushChain("out"), DeleteChain("out"), DeleteChain("web")))
        ),
    )
    assert kernel.snapshot("n").table("ip", "t").chain("web") is None  # type: ignore[union-attr]  # the table is there
    kernel.run("n", render.script(Transaction("ip", "t", (DeleteTable(),))))
    assert kernel.snapshot("n").tables == ()


def test_an_empty_transaction_is_no_script() -> None:
    assert render.script(Transaction("ip", "t")) == ""
    assert not Transaction("ip", "t")


def test_a_table_block_must_be_the_transactions_table() -> None:
    with pytest.raises(ValueError, match="table ip t in a transaction on ip u"):
        render.script(Transaction("ip", "u", (AddTable(BASE),)))


def test_rule_tokens_split_constant_words_but_keep_quoted_names_whole() -> None:
    assert tokens("ip saddr", "10.0.0.0/8", "jump", '"a chain"') == ("ip", "saddr", "10.0.0.0/8", "jump", '"a chain"')
    assert rule("ip saddr { a , b } accept").text == "ip saddr { a, b } accept"
    assert rule("ct state established , related accept").text == "ct state established,related accept"
