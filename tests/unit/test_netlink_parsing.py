"""Parsing the kernel's nftables notifications (what the drift monitor reads), and the
socket filters in front of the drift watches."""

from __future__ import annotations

import os
import struct

import pytest

from emu.netfilter.monitor import NFT_MSG_NEWGEN, NftMonitor, is_ours, parse

pytestmark = pytest.mark.unit


def attr(typ: int, value: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(value), typ) + value
    return raw + b"\0" * (-len(raw) % 4)


def msg(nft_type: int, family: int, *attrs: bytes) -> bytes:
    body = struct.pack("=BBH", family, 0, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (10 << 8) | nft_type, 0, 1, 0) + body


def test_parse_splits_a_transaction_into_its_messages() -> None:
    data = (
        msg(2, 2, attr(1, b"kemu-proxy\0"))
        + msg(8, 1, attr(1, b"filter\0"), attr(2, b"input\0"))
        + msg(NFT_MSG_NEWGEN, 0, attr(2, struct.pack(">I", 4242)))
    )
    got = parse(data)
    assert [(m, fam) for m, fam, _ in got] == [(2, "ip"), (8, "inet"), (NFT_MSG_NEWGEN, "0")]
    assert got[0][2][1] == b"kemu-proxy\0" and got[1][2][2] == b"input\0"
    assert struct.unpack(">I", got[2][2][2])[0] == 4242


def test_our_own_threads_are_ours() -> None:
    assert is_ours(os.getpid())
    assert not is_ours(1)  # init is nobody's test process


def test_a_transaction_by_another_process_is_drift() -> None:
    drift: list[str] = []
    mon = NftMonitor(drift.append)
    try:
        mon._on_data("n1", msg(NFT_MSG_NEWGEN, 0, attr(2, struct.pack(">I", os.getpid()))))  # ours
        assert drift == []
        mon._on_data("n1", msg(NFT_MSG_NEWGEN, 0, attr(2, struct.pack(">I", 1))))
        assert drift == ["n1"]
        mon._on_data("n2", None)  # notifications lost: unknown, so treated as drift
        assert drift == ["n1", "n2"]
    finally:
        mon.close()


def test_the_socket_filter_passes_only_the_given_types() -> None:
    """Run the classic BPF program over message headers, as the kernel would."""
    from emu.dataplane.netlink_watch import only_types

    prog = only_types((10 << 8) | NFT_MSG_NEWGEN)
    assert run_bpf(prog, msg(NFT_MSG_NEWGEN, 0)) != 0
    assert run_bpf(prog, msg(6, 2, attr(1, b"kemu-proxy\0"))) == 0
    assert run_bpf(prog, msg(2, 2)) == 0


def run_bpf(prog: bytes, packet: bytes) -> int:
    """Classic BPF as the kernel runs a socket filter (the instructions kemu's filters use):
    absolute loads are big-endian; jump offsets count from the next instruction."""
    ins = [struct.unpack_from("=HBBI", prog, i) for i in range(0, len(prog), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = ins[pc]
        if code == 0x28:  # ldh [k]
            acc = int.from_bytes(packet[k : k + 2], "big")
        elif code == 0x20:  # ld [k]
            acc = int.from_bytes(packet[k : k + 4], "big")
        elif code == 0x15:  # jeq #k
            pc += jt if acc == k else jf
        elif code == 0x05:  # ja +k
            pc += k
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"instruction {code:#x} not modelled")
        pc += 1


def rt_msg(typ: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), typ, 0, 1, 0) + body


def test_the_route_watch_filter_passes_route_deletions_and_the_nodes_own_links() -> None:
    """A node's route watch hears its own links (eth0, the bridge) and route deletions;
    a pod's veth, new routes and addresses never reach it."""
    from emu.dataplane.route_watch import RTM_DELLINK, RTM_DELROUTE, RTM_NEWLINK, NodeNet, node_filter

    prog = node_filter(NodeNet(links={2: "eth0", 3: "cbr0"}, routes=()))

    def link(typ: int, index: int, family: int = 0) -> bytes:
        return rt_msg(typ, struct.pack("=BxHiII", family, 1, index, 1, 0))

    assert run_bpf(prog, link(RTM_NEWLINK, 2)) != 0
    assert run_bpf(prog, link(RTM_NEWLINK, 3, family=7)) != 0  # the bridge's own AF_BRIDGE message
    assert run_bpf(prog, link(RTM_DELLINK, 3)) != 0
    assert run_bpf(prog, link(RTM_NEWLINK, 1001)) == 0  # a pod's veth
    assert run_bpf(prog, link(RTM_DELLINK, 4)) == 0
    assert run_bpf(prog, rt_msg(RTM_DELROUTE, struct.pack("=BBBBBBBBI", 2, 24, 0, 0, 254, 4, 0, 1, 0))) != 0
    assert run_bpf(prog, rt_msg(24, struct.pack("=BBBBBBBBI", 2, 24, 0, 0, 254, 4, 0, 1, 0))) == 0  # RTM_NEWROUTE
    assert run_bpf(prog, rt_msg(20, struct.pack("=BBBBI", 2, 32, 0, 0, 2))) == 0  # RTM_NEWADDR on eth0
    # Many links still fit the 8-bit jumps; no link at all passes route deletions only.
    many = node_filter(NodeNet(links={i: f"l{i}" for i in range(2, 200)}, routes=()))
    assert run_bpf(many, link(RTM_NEWLINK, 199)) != 0 and run_bpf(many, link(RTM_NEWLINK, 200)) == 0
    none = node_filter(NodeNet(links={}, routes=()))
    assert run_bpf(none, link(RTM_NEWLINK, 2)) == 0
    assert run_bpf(none, rt_msg(RTM_DELROUTE, struct.pack("=BBBBBBBBI", 2, 24, 0, 0, 254, 4, 0, 1, 0))) != 0
