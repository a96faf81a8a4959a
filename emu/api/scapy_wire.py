"""What travels between the API and its scapy helper (emu/api/scapy_child.py).

Frames: a 4-byte big-endian length, then a pickle (both ends are this package, in
processes of the same user and interpreter).

Packets to send travel *unbuilt*, as their layers' classes and the fields the caller set:
building them here would fill in the source address, MACs and everything else that
depends on routes from the caller's namespace, not the member's. The helper stacks the
layers again, so scapy there computes what the caller left out, as if the packet had been
written in the member. A layer whose class is not scapy's own (a layer defined in a test
file, which the helper cannot import) travels as raw bytes, with everything above it.

Packets received travel as raw bytes with the class that dissected them; the caller
rebuilds them (`IP(raw)`, `Ether(raw)`), with their capture time and interface.

Nothing here imports scapy at module level: the helper must import it only once it is
inside the member's namespace (scapy reads routes and interfaces at import).
"""

from __future__ import annotations

import importlib
import pickle
import struct
from typing import IO, TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from scapy.packet import Packet

HEADER = struct.Struct("!I")
MAX_FRAME = 1 << 30


class Layer(NamedTuple):
    module: str
    cls: str
    fields: dict[str, Any]


class WirePacket(NamedTuple):
    """A packet the helper received: its dissecting class, bytes, time, interface."""

    module: str
    cls: str
    raw: bytes
    time: float
    sniffed_on: str | None


def write_frame(out: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(HEADER.pack(len(data)) + data)
    out.flush()


def _read_exactly(inp: IO[bytes], n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = inp.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(inp: IO[bytes]) -> Any:
    """The next object, or None at the end of the stream."""
    head = _read_exactly(inp, HEADER.size)
    if head is None:
        return None
    (n,) = HEADER.unpack(head)
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes")
    data = _read_exactly(inp, n)
    return None if data is None else pickle.loads(data)  # our own child's frames


def _scapy_class(module: str, cls: str) -> type[Packet]:
    from scapy.packet import Packet

    if module != "scapy" and not module.startswith("scapy."):
        raise ValueError(f"{module}.{cls} is not a scapy layer")
    found = getattr(importlib.import_module(module), cls, None)
    if not (isinstance(found, type) and issubclass(found, Packet)):
        raise ValueError(f"{module}.{cls} is not a scapy layer")
    return found


def layers_of(pkt: Packet) -> list[Layer]:
    """The caller's side: a packet as its layers' classes and the fields set in them."""
    from scapy.packet import NoPayload, Raw

    out: list[Layer] = []
    layer: Packet = pkt
    while not isinstance(layer, NoPayload):
        cls = type(layer)
        if not cls.__module__.startswith("scapy."):
            out.append(Layer(Raw.__module__, Raw.__name__, {"load": bytes(layer)}))
            break
        out.append(Layer(cls.__module__, cls.__name__, dict(layer.fields)))
        layer = layer.payload
    if not out:
        raise ValueError("an empty packet")
    return out


def build(layers: list[Layer]) -> Packet:
    """The helper's side: the caller's packet, stacked again from its layers."""
    pkt: Packet | None = None
    for layer in layers:
        one = _scapy_class(layer.module, layer.cls)(**layer.fields)
        pkt = one if pkt is None else pkt / one
    if pkt is None:
        raise ValueError("an empty packet")
    return pkt


def to_wire(pkt: Packet) -> WirePacket:
    cls = type(pkt)
    on = pkt.sniffed_on
    return WirePacket(cls.__module__, cls.__name__, bytes(pkt), float(pkt.time), None if on is None else str(on))


def from_wire(w: WirePacket) -> Packet:
    """The caller's side: a received packet dissected again here."""
    pkt = _scapy_class(w.module, w.cls)(w.raw)
    pkt.time = w.time
    pkt.sniffed_on = w.sniffed_on
    return pkt
