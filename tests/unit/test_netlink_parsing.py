"""Parsing the kernel's nftables notifications (what the drift monitor reads)."""

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
    ins = [struct.unpack_from("=HBBI", prog, i) for i in range(0, len(prog), 8)]

    def run(packet: bytes) -> int:
        pc, acc = 0, 0
        while True:
            code, jt, jf, k = ins[pc]
            if code == 0x28:
                acc = int.from_bytes(packet[k : k + 2], "big")
            elif code == 0x15:
                pc += jt if acc == k else jf
            elif code == 0x06:
                return k
            pc += 1

    assert run(msg(NFT_MSG_NEWGEN, 0)) != 0
    assert run(msg(6, 2, attr(1, b"kemu-proxy\0"))) == 0
    assert run(msg(2, 2)) == 0
