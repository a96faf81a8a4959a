"""The fake nftables kernel: one transaction per script, all or nothing, and the kernel's
refusals (missing objects, busy chains and sets, element clashes, overlaps, types)."""

from __future__ import annotations

import pytest

from emu.dataplane.cni.common import masquerade_ruleset
from emu.dataplane.hostports import render as hostport_render
from emu.errors import CommandError
from emu.netfilter.backend import NftBackend
from emu.netfilter.fake import FakeKernel, FakeNft, load
from emu.netfilter.ruleset import Chain, Element
from emu.netfilter.transaction import rule
from emu.policy.compile import NodePolicyInput, compile_ruleset
from emu.policy.oracle import View
from emu.proxy import nft_render
from tests.unit.proxy_fixture import plans
from tests.unit.test_policy_oracle import NAMESPACES, NODE_IPS, PODS, policies

pytestmark = pytest.mark.unit

BASE = """table ip t {
  set s { type ipv4_addr; elements = { 10.0.0.1 }; }
  set ranges { type ipv4_addr; flags interval; elements = { 10.1.0.0/16 }; }
  map vm { type ipv4_addr . inet_proto . inet_service : verdict; elements = { 10.0.0.1 . tcp . 80 : goto target }; }
  map dm { type ipv4_addr : ipv4_addr . inet_service; }
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr @s jump helper
    ip daddr . meta l4proto . th dport vmap @vm
  }
  chain helper {
    counter
  }
  chain target {
    drop
  }
}
"""


@pytest.fixture
def nft() -> FakeNft:
    kernel = FakeKernel()
    nft = FakeNft(kernel, "node-1")
    nft.run(BASE)
    return nft


def refused(nft: FakeNft, script: str, *words: str) -> CommandError:
    """The script fails, names the problem like nft does, and changes nothing."""
    before = nft.snapshot()
    failures = nft.kernel.failures[nft.netns]
    with pytest.raises(CommandError) as e:
        nft.run(script)
    assert e.value.argv == ["nft", "-f", "-"] and e.value.returncode == 1 and e.value.netns == nft.netns
    for w in words:
        assert w in e.value.stderr, e.value.stderr
    assert nft.snapshot() == before
    assert nft.kernel.failures[nft.netns] == failures + 1
    return e.value


def elements(nft: FakeNft, name: str) -> list[str]:
    table = nft.snapshot().table("ip", "t")
    assert table is not None
    s = table.set(name)
    assert s is not None
    return [s.element_text(e) for e in s.elements]


def test_fake_is_an_nft_backend() -> None:
    backend: NftBackend = FakeNft(FakeKernel(), "n")
    assert backend.netns == "n"


def test_a_failing_command_undoes_the_whole_transaction(nft: FakeNft) -> None:
    e = refused(nft, "add element ip t s { 10.0.0.2 }\nflush chain ip t helper\ndelete chain ip t missing\n", "No such file or directory")
    # nft's shape: where, what, the line and carets under it.
    assert e.stderr.startswith("/dev/stdin:3:1-") and "delete chain ip t missing\n^^^" in e.stderr
    assert elements(nft, "s") == ["10.0.0.1"]
    assert nft.kernel.transactions["node-1"] == 1


def test_table_block_creates_if_missing_and_delete_table_removes_everything(nft: FakeNft) -> None:
    before = nft.snapshot()
    nft.run("table ip t {}\n")  # present: nothing changes
    assert nft.snapshot() == before
    nft.run("table ip t {}\ndelete table ip t\n")
    assert nft.snapshot().tables == ()
    refused(nft, "delete table ip t\n", "No such file or directory")
    refused(nft, "flush table ip t\n", "No such file or directory")
    nft.run("table ip t {}\ntable inet t {}\n")
    refused(nft, "create table ip t\n", "File exists")
    assert [t.spec for t in nft.snapshot().tables] == ["inet t", "ip t"]


@pytest.mark.parametrize(
    "script",
    [
        "flush chain ip t missing",
        "delete chain ip t missing",
        "add rule ip t missing accept",
        "flush set ip t missing",
        "delete set ip t missing",
        "add element ip t missing { 10.0.0.1 }",
        "add chain ip nosuchtable c",
    ],
)
def test_missing_objects_are_refused(nft: FakeNft, script: str) -> None:
    refused(nft, script + "\n", "No such file or directory")


def test_add_element_is_idempotent_create_and_clashing_data_are_not(nft: FakeNft) -> None:
    nft.run("add element ip t s { 10.0.0.1, 10.0.0.2 }\n")
    assert elements(nft, "s") == ["10.0.0.1", "10.0.0.2"]
    refused(nft, "create element ip t s { 10.0.0.2 }\n", "File exists")
    nft.run("add element ip t dm { 10.0.0.9 : 10.244.0.2 . 80 }\nadd element ip t dm { 10.0.0.9 : 10.244.0.2 . 80 }\n")
    refused(nft, "add element ip t dm { 10.0.0.9 : 10.244.0.3 . 80 }\n", "File exists")
    nft.run("delete element ip t dm { 10.0.0.9 }\nadd element ip t dm { 10.0.0.9 : 10.244.0.3 . 80 }\n")
    assert elements(nft, "dm") == ["10.0.0.9 : 10.244.0.3 . 80"]


def test_delete_element_of_a_missing_key_is_refused(nft: FakeNft) -> None:
    refused(nft, "delete element ip t s { 10.0.0.7 }\n", "No such file or directory")
    nft.run("delete element ip t s { 10.0.0.1 }\n")
    assert elements(nft, "s") == []


@pytest.mark.parametrize(
    "rule, why",
    [
        ("ip saddr @nosuchset accept", "No such file or directory"),
        ("jump nosuchchain", "No such file or directory"),
        ("ip daddr vmap { 10.0.0.1 : goto nosuchchain }", "No such file or directory"),
        ("jump input", "Operation not supported"),  # only regular chains are jump targets
        ("ip daddr vmap @dm", "not a verdict map"),
    ],
)
def test_rules_must_reference_existing_sets_and_chains(nft: FakeNft, rule: str, why: str) -> None:
    refused(nft, f"add rule ip t helper {rule}\n", why)


def test_map_elements_must_jump_to_existing_chains(nft: FakeNft) -> None:
    refused(nft, "add element ip t vm { 10.0.0.2 . tcp . 80 : goto nosuchchain }\n", "No such file or directory")


def test_table_blocks_may_refer_forward_but_separate_commands_may_not() -> None:
    # nft expands a block: chains, then sets, then rules (nft_cmd_expand).
    load("table ip t {\n  chain a {\n    jump b\n  }\n  chain b {\n  }\n}\n")
    with pytest.raises(CommandError, match="No such file or directory"):
        load("table ip t {}\nadd chain ip t a\nadd rule ip t a jump b\nadd chain ip t b\n")


def test_busy_chains_and_sets_cannot_be_deleted(nft: FakeNft) -> None:
    refused(nft, "delete chain ip t helper\n", "Device or resource busy")  # jumped to by a rule
    refused(nft, "flush chain ip t target\ndelete chain ip t target\n", "Device or resource busy")  # by an element
    refused(nft, "flush chain ip t input\ndelete chain ip t target\n", "Device or resource busy")
    refused(nft, "delete chain ip t input\n", "Device or resource busy")  # still has rules
    refused(nft, "delete set ip t s\n", "Device or resource busy")  # used by a rule
    nft.run(
        "flush chain ip t input\ndelete chain ip t input\ndelete set ip t s\nflush map ip t vm\nflush chain ip t target\ndelete chain ip t target\n"
    )
    table = nft.snapshot().table("ip", "t")
    assert table is not None and table.chain("target") is None and table.set("s") is None


def test_interval_sets_refuse_overlaps(nft: FakeNft) -> None:
    refused(nft, "add element ip t ranges { 10.1.2.0/24 }\n", "File exists", "overlaps")
    refused(nft, "add element ip t ranges { 10.2.0.0/16, 10.2.255.0-10.3.0.5 }\n", "File exists")
    nft.run("add element ip t ranges { 10.1.0.0/16, 10.2.0.0/16 }\n")  # the same one again: a no-op
    assert elements(nft, "ranges") == ["10.1.0.0/16", "10.2.0.0/16"]
    refused(nft, "add element ip t s { 10.9.0.0/16 }\n", "flags interval")


def test_concatenated_interval_elements_overlap_only_in_every_field() -> None:
    nft = FakeNft(FakeKernel(), "n")
    nft.run("table ip t {\n  set d { type ipv4_addr . inet_proto . inet_service; flags interval; }\n}\n")
    nft.run("add element ip t d { 10.0.0.0/24 . tcp . 80-90, 10.0.0.0/24 . udp . 80-90, 10.0.0.0/24 . tcp . 91 }\n")
    refused(nft, "add element ip t d { 10.0.0.5 . tcp . 85 }\n", "File exists")


@pytest.mark.parametrize(
    "element",
    [
        "10.0.0.1 . tcp",  # too few fields
        "10.0.0.1 . tcp . 80 . 1",  # too many
        "tcp . 10.0.0.1 . 80",  # wrong types
        "10.0.0.1 . tcp . 70000",  # out of range
    ],
)
def test_elements_must_match_the_set_type(nft: FakeNft, element: str) -> None:
    refused(nft, f"add element ip t vm {{ {element} : accept }}\n")


def test_jump_loops_are_refused(nft: FakeNft) -> None:
    refused(nft, "add rule ip t target jump helper\nadd rule ip t helper jump target\n", "Too many levels of symbolic links")
    refused(nft, "add rule ip t target ip daddr . meta l4proto . th dport vmap @vm\n", "Too many levels of symbolic links")


def _chain(nft: FakeNft, name: str) -> Chain:
    table = nft.snapshot().table("ip", "t")
    chain = table.chain(name) if table else None
    assert chain is not None
    return chain


def test_rules_by_handle_and_position(nft: FakeNft) -> None:
    counter = _chain(nft, "helper").rules[0]
    nft.run(f"add rule ip t helper position {counter.handle} accept\ninsert rule ip t helper position {counter.handle} drop\n")
    nft.run(f"replace rule ip t helper handle {counter.handle} return\n")
    helper = _chain(nft, "helper")
    assert [r.text for r in helper.rules] == ["drop", "return", "accept"]
    nft.run(f"delete rule ip t helper handle {helper.rules[0].handle}\n")
    refused(nft, f"delete rule ip t helper handle {helper.rules[0].handle}\n", "No such file or directory")


def test_the_dump_is_canonical() -> None:
    a = load(
        'define NET = 10.0.0.0/8\ntable ip t {\n  set "s" { type ipv4_addr; flags interval; elements = { 192.168.0.5/32, $NET }; }\n'
        '  chain "c" { ip saddr @"s" accept comment "x" }\n}\n'
    )
    b = load(
        "add table ip t\nadd chain ip t c\nadd set ip t s { type ipv4_addr; flags interval; }\nadd element ip t s { 10.0.0.0/8, 192.168.0.5 }\n"
    )
    with pytest.raises(CommandError, match="File exists"):  # /32 inside /8 overlaps
        load(a.dump() + "add element ip t s { 10.0.0.5 }\n")
    b2 = load(b.dump() + 'add rule ip t c ip saddr @s accept comment "x"\n')
    assert a == b2 and a.dump() == b2.dump()
    assert a.table("ip", "t").set("s").elements[0] == Element(((0x0A000000, 0x0AFFFFFF),))  # type: ignore[union-attr]


def test_syntax_errors_say_where() -> None:
    with pytest.raises(CommandError, match=r"/dev/stdin:2:\d+-\d+: Error: syntax error"):
        load("table ip t {}\nadd frobnicate ip t\n")


def _policy_text() -> str:
    view = View(NAMESPACES, policies({"metadata": {"name": "p", "namespace": "x"}, "spec": {"podSelector": {}, "ingress": [{}]}}), NODE_IPS)
    return compile_ruleset(view, NodePolicyInput("node-1", ("172.30.0.2", "10.244.0.1"), tuple(PODS.values()))).text


@pytest.mark.parametrize(
    "script",
    [
        nft_render.render_full(plans()["n1"]),
        masquerade_ruleset("10.244.0.0/16"),
        hostport_render([rule("ip daddr 172.30.0.2 tcp dport 8080 dnat to 10.244.0.2:80", comment="default/web-1")]),
        _policy_text(),
    ],
    ids=["proxy", "cni", "hostport", "policy"],
)
def test_every_renderer_loads_and_its_dump_loads_back_the_same(script: str) -> None:
    kernel = FakeKernel()
    kernel.run("n", script)
    kernel.run("n", script)  # a full render replaces itself
    rs = kernel.snapshot("n")
    assert kernel.transactions["n"] == 2 and rs.tables
    assert load(rs.dump()) == rs


def test_nft_grammar_beyond_what_kemu_writes_today() -> None:
    rs = load(
        "# a comment\n"
        "add table inet f; add chain inet f in { type filter hook input priority filter + 5; policy drop; }\n"
        "add set inet f peers { typeof ip saddr . tcp dport; flags interval; counter; }\n"
        "add element inet f peers { 10.0.0.0/24 . 80-90 timeout 10s, 10.0.1.0/24 . 443 }\n"
        "add map inet f dispatch { type inet_service : verdict; }\n"
        "add chain inet f web\n"
        "add element inet f dispatch { http : jump web }\n"
        "add rule inet f in ip saddr { 10.1.0.0/16,\n"
        "    10.2.0.0/16 } \\\n"
        "  tcp dport vmap @dispatch\n"
        "insert rule inet f in ct state established,related accept\n"
        "rename chain inet f web www\n"
        "destroy table ip nothing-here\n"
        "list ruleset\n"
    )
    table = rs.table("inet", "f")
    assert table is not None
    chain = table.chain("in")
    assert chain is not None and (chain.type, chain.hook, chain.priority, chain.policy) == ("filter", "input", 5, "drop")
    assert [r.text for r in chain.rules] == [
        "ct state established,related accept",
        "ip saddr { 10.1.0.0/16, 10.2.0.0/16 } tcp dport vmap @dispatch",
    ]
    peers, dispatch = table.set("peers"), table.set("dispatch")
    assert peers is not None and peers.key_type == ("ipv4_addr", "inet_service") and len(peers.elements) == 2
    assert dispatch is not None and [dispatch.element_text(e) for e in dispatch.elements] == ["80 : jump www"]
    assert table.chain("web") is None and table.chain("www") is not None
