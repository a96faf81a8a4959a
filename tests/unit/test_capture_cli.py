"""`kemu capture`'s command line: which words are targets, where they live, what tcpdump
is asked and what its stderr says (no root, no cluster: a record made up here)."""

from __future__ import annotations

import pytest

from emu.cli.argv import UsageError
from emu.cli.capture_cmd import TextSink, resolve_targets, split_words
from emu.dataplane.ownership import Record
from emu.errors import NotFoundError
from emu.traffic.tcpdump import Options, Target, parse_stats, tcpdump_argv, tcpdump_message

pytestmark = pytest.mark.unit


def record() -> Record:
    rec = Record("cap")
    rec.data["pods"] = {
        "default/client": {"netns": "kemu-cap.default.client"},
        "web/api": {"netns": "kemu-cap.web.api"},
        "deploy/x": {"netns": "kemu-cap.deploy.x"},  # a namespace called like a kind
    }
    rec.data["nodes"] = {"node-1": "kemu-cap.node-1"}
    rec.data["hosts"] = {"ext": "kemu-cap.ext"}
    return rec


def test_targets_come_first_then_the_filter() -> None:
    rec = record()
    assert split_words(["client", "node/node-1", "tcp", "port", "80"], rec, "default") == (["client", "node/node-1"], ["tcp", "port", "80"])
    # The first word is always a target (an unknown one is an error, not a filter).
    assert split_words(["nosuch", "tcp"], rec, "default") == (["nosuch"], ["tcp"])
    # `net 10.0.0.0/8` is filter: no DNS label before the slash.
    assert split_words(["switch", "net", "10.0.0.0/8"], rec, "default")[1] == ["net", "10.0.0.0/8"]
    assert split_words(["web/api", "switch:br0", "client", "icmp"], rec, "default") == (["web/api", "switch:br0", "client"], ["icmp"])
    # A bare word is a target only when it is a pod of the namespace (-n).
    assert split_words(["web/api", "client"], rec, "web") == (["web/api"], ["client"])


def test_each_kind_of_target_and_its_interface() -> None:
    rec = record()
    got = resolve_targets(["client", "web/api", "node/node-1", "host/ext:any", "deploy/x"], rec, "default", None)
    assert got == [
        Target("default/client", "kemu-cap.default.client", "eth0"),
        Target("web/api", "kemu-cap.web.api", "eth0"),
        Target("node/node-1", "kemu-cap.node-1", "eth0"),
        Target("host/ext", "kemu-cap.ext", "any"),
        Target("deploy/x", "kemu-cap.deploy.x", "eth0"),
    ]
    assert {t.iface for t in resolve_targets(["client", "node/node-1"], rec, "default", "any")} == {"any"}


def test_unknown_targets_say_what_exists() -> None:
    rec = record()
    with pytest.raises(NotFoundError, match=r"node 'node-9' not found in cluster cap \(nodes: node-1\)"):
        resolve_targets(["node/node-9"], rec, "default", None)
    with pytest.raises(NotFoundError, match='pod "nope" not found in namespace web'):
        resolve_targets(["web/nope"], rec, "default", None)
    with pytest.raises(NotFoundError, match='pod "api" not found in namespace default'):
        resolve_targets(["api"], rec, "default", None)
    with pytest.raises(UsageError, match="named twice"):
        resolve_targets(["client", "default/client"], rec, "default", None)
    with pytest.raises(UsageError, match="no interface"):
        resolve_targets(["client:"], rec, "default", None)


def test_tcpdump_argv() -> None:
    t = Target("default/client", "kemu-cap.default.client", "eth0")
    argv = tcpdump_argv("/usr/bin/tcpdump", t, Options(bpf=["tcp", "port", "80"], count=5, buffer_kib=16384))
    assert argv[:3] == ["nsenter", "--net=/run/netns/kemu-cap.default.client", "--"]
    assert argv[-3:] == ["tcp", "port", "80"]
    assert " -i eth0 " in " ".join(argv) and " -c 5 " in " ".join(argv) and " -B 16384 " in " ".join(argv)
    assert argv[argv.index("-w") + 1] == "-" and "-U" in argv and "--immediate-mode" in argv
    direct = tcpdump_argv("/usr/bin/tcpdump", t, Options(immediate=False, direct="/tmp/x.pcap"))
    assert direct[direct.index("-w") + 1] == "/tmp/x.pcap" and "--immediate-mode" not in direct


def test_tcpdump_stderr() -> None:
    said = "tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
    said += "12 packets captured\n14 packets received by filter\n2 packets dropped by kernel\n"
    assert parse_stats(said) == {"captured": 12, "received by filter": 14, "dropped by kernel": 2}
    assert tcpdump_message("tcpdump: eth9: No such device exists\n(No such device exists)\n") == "eth9: No such device exists"
    assert tcpdump_message("tcpdump: can't parse filter expression: syntax error\n") == "can't parse filter expression: syntax error"


def test_text_lines_carry_their_target() -> None:
    """The decoder's `-tt` lines, matched in order to the packets fed to it."""
    import io
    import time

    out = io.StringIO()
    sink = TextSink("tcpdump", out)
    sink.width = len("default/client")
    sink.labels.extend(["switch", "default/client"])
    lines = b"1700000000.000001 IP 1.2.3.4 > 5.6.7.8: ICMP echo request\n\tcontinued\n1700000001.500000 ARP, Request\n"

    class Fake:
        stdout = io.BytesIO(lines)

    sink.proc = Fake()  # type: ignore[assignment]  # only stdout is read
    sink._print()
    first = time.strftime("%H:%M:%S", time.localtime(1_700_000_000))
    got = out.getvalue().splitlines()
    assert got[0] == f"{first}.000001 switch         IP 1.2.3.4 > 5.6.7.8: ICMP echo request"
    assert got[1].strip() == "continued" and got[1].startswith(" " * 20)
    assert got[2].endswith(" default/client ARP, Request")
