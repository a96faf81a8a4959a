"""The API's words without a cluster: pod references, topology sources, labels, packets
as they travel to and from a scapy helper, and the lazy `emu` namespace."""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from emu.api import launch
from emu.api.names import endpoint_ref, label_changes, plain_name, split_pod, split_port
from emu.errors import NotFoundError, ValidationError
from tests.conftest import REPO

pytestmark = pytest.mark.unit

TOPOLOGY = """\
apiVersion: kemu/v1alpha1
kind: Cluster
metadata: {name: original}
spec:
  nodes: [{name: n1}]
  include: [extra.yaml]
"""


@pytest.mark.parametrize(
    ("ref", "namespace", "want"),
    [("x/a", None, ("x", "a")), ("a", None, ("default", "a")), ("a", "y", ("y", "a")), ("y/a", "y", ("y", "a"))],
)
def test_split_pod(ref: str, namespace: str | None, want: tuple[str, str]) -> None:
    assert split_pod(ref, namespace) == want


@pytest.mark.parametrize("ref", ["", "x/", "/a", "x/a/b"])
def test_split_pod_refuses_what_names_no_pod(ref: str) -> None:
    with pytest.raises(ValidationError, match="NAMESPACE/NAME"):
        split_pod(ref)


def test_split_pod_refuses_two_namespaces() -> None:
    with pytest.raises(ValidationError, match="namespace 'x' but namespace='y'"):
        split_pod("x/a", "y")


def test_plain_name_takes_kemu_spelling_too() -> None:
    assert plain_name("node/n1", "node") == "n1"
    assert plain_name("n1", "node") == "n1"
    with pytest.raises(ValidationError):
        plain_name("host/h1", "node")


def test_endpoint_ref_of_members_and_strings() -> None:
    class Fake:
        ref = "node/n1"

    assert endpoint_ref(Fake()) == "node/n1"
    assert endpoint_ref("web.y") == "web.y"


def test_split_port_from_text_or_keywords() -> None:
    assert split_port("y/b:80/udp", None, None) == ("y/b", 80, "udp")
    assert split_port("y/b", 8080, None) == ("y/b", 8080, None)
    with pytest.raises(ValidationError, match="1-65535"):
        split_port("y/b", 70000, None)


def test_label_changes_set_and_remove() -> None:
    assert label_changes({"tier": "x", "old": None}) == ({"tier": "x"}, ["old"])


def test_label_changes_reports_every_bad_label() -> None:
    with pytest.raises(ValidationError) as e:
        label_changes({"bad key!": "x", "ok": "-bad-", "n": 3})  # type: ignore[dict-item]  # a wrong type on purpose
    assert len(e.value.problems) == 3
    assert "label values are strings" in str(e.value)


# --- topology sources -------------------------------------------------------------------------


def test_a_path_is_used_as_it_is(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "topo.yaml"
    f.write_text(TOPOLOGY)
    src = launch.topology_source(str(f))
    assert src == launch.Source(str(f), str(f))


def test_a_missing_path_says_so(tmp_path: pathlib.Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        launch.topology_source(str(tmp_path / "nope.yaml"))


def test_a_rename_is_a_private_copy_with_includes_made_absolute(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "topo.yaml"
    f.write_text(TOPOLOGY)
    src = launch.topology_source(f, name="apicopy")
    try:
        assert src.label == str(f) and src.tmpdir is not None and src.path.startswith(src.tmpdir)
        doc = yaml.safe_load(pathlib.Path(src.path).read_text())
        assert doc["metadata"]["name"] == "apicopy"
        assert doc["spec"]["include"] == [str(tmp_path / "extra.yaml")]
        assert f.read_text() == TOPOLOGY  # the caller's file is untouched
    finally:
        launch.discard(src)
    assert not os.path.exists(src.tmpdir)


def test_a_yaml_string_is_written_out(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = launch.topology_source(TOPOLOGY)
    try:
        assert src.label == launch.YAML_LABEL
        doc = yaml.safe_load(pathlib.Path(src.path).read_text())
        assert doc["metadata"]["name"] == "original"
        assert doc["spec"]["include"] == [str(tmp_path / "extra.yaml")]
    finally:
        launch.discard(src)


def test_problems_name_the_callers_yaml_not_the_copy() -> None:
    bad = TOPOLOGY.replace("  include: [extra.yaml]\n", "  podCIDR: nonsense\n")
    src = launch.topology_source(bad, name="apibad")
    try:
        with pytest.raises(ValidationError) as e:
            launch.load(src)
    finally:
        launch.discard(src)
    assert e.value.problems and all(p.file == launch.YAML_LABEL for p in e.value.problems)
    assert "spec.podCIDR" in str(e.value)


def test_the_example_topology_is_valid() -> None:
    config = launch.load(launch.topology_source(os.path.join(REPO, "examples", "traffic.yaml")))
    assert config.spec.name.startswith("api")  # kemu's own e2e run must not collide with other clusters


# --- packets on the way to and from a helper -----------------------------------------------------


def test_packets_travel_unbuilt_and_come_back_dissected() -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.volatile import RandShort

    from emu.api.scapy_wire import WirePacket, build, from_wire, layers_of, read_frame, write_frame

    pkt = IP(dst="10.0.0.9") / TCP(sport=RandShort(), dport=80, flags="S")
    buf = io.BytesIO()
    write_frame(buf, {"pkts": [layers_of(pkt)]})
    buf.seek(0)
    again = build(read_frame(buf)["pkts"][0])
    assert "src" not in again[IP].fields  # left for the helper to fill in, in the member
    assert again[IP].dst == "10.0.0.9" and again[TCP].dport == 80 and again[TCP].flags == "S"
    assert read_frame(buf) is None  # the end of the stream

    raw = bytes(IP(src="10.0.0.1", dst="10.0.0.9") / TCP(dport=80, flags="SA"))
    got = from_wire(WirePacket("scapy.layers.inet", "IP", raw, 12.5, "eth0"))
    assert got[TCP].flags == "SA" and got.time == 12.5 and got.sniffed_on == "eth0"


def test_only_scapy_layers_are_rebuilt_by_name() -> None:
    from emu.api.scapy_wire import Layer, build

    with pytest.raises(ValueError, match="not a scapy layer"):
        build([Layer("os", "system", {})])


def test_a_custom_layer_travels_as_bytes() -> None:
    from scapy.fields import ShortField
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Packet, Raw

    from emu.api.scapy_wire import build, layers_of

    class Mine(Packet):
        name = "Mine"
        fields_desc = [ShortField("value", 7)]

    again = build(layers_of(IP(dst="10.0.0.9") / UDP(dport=9) / Mine(value=258)))
    assert bytes(again[Raw]) == b"\x01\x02"


# --- import cost ---------------------------------------------------------------------------------


def test_import_emu_stays_cheap_and_api_names_resolve() -> None:
    code = "import sys, emu; assert 'emu.api' not in sys.modules; f = emu.up; assert 'emu.api' in sys.modules; print(f.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "emu.api"
