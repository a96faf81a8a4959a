"""The API's errors, without a cluster: a fake ownership record and a fake control
socket stand in for the daemon. Each error is a kemu exception that says what to do."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

import emu
import emu.api.cluster as api_cluster
from emu.api import Cluster, ScapyError, launch
from emu.api.scapy_link import Helper
from emu.dataplane import ownership
from emu.errors import KemuError, NotFoundError, ValidationError

pytestmark = pytest.mark.unit

NAME = "apifake"


@pytest.fixture
def replies(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A running cluster `apifake` as far as the record goes; `replies[op]` is what its
    daemon answers (an exception is raised), and `replies["calls"]` what it was asked."""
    monkeypatch.setattr(ownership, "ROOT", str(tmp_path))
    rec = ownership.Record(NAME)
    rec.data["pods"] = {"x/client": {"netns": f"kemu-{NAME}.x.client", "ip": "10.244.0.2", "node": "n1", "containers": ["c"]}}
    rec.data["nodes"] = {"n1": f"kemu-{NAME}.n1"}
    rec.create()
    got: dict[str, Any] = {"calls": []}

    def request(cluster: str, op: str, timeout: float = 300.0, **args: Any) -> Any:
        got["calls"].append((op, args))
        answer = got.get(op)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(api_cluster, "request", request)
    return got


def test_attach_to_nothing_says_how_to_start_one(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ownership, "ROOT", str(tmp_path))
    monkeypatch.delenv("KEMU_CLUSTER", raising=False)
    with pytest.raises(NotFoundError, match="no cluster named 'apinone' is running"):
        emu.attach("apinone")
    with pytest.raises(NotFoundError, match=r"kemu up FILE -d"):
        emu.attach()


def test_a_cluster_that_is_gone_says_so(replies: dict[str, Any], tmp_path: pathlib.Path) -> None:
    c = Cluster(NAME, owned=False)
    (tmp_path / NAME / "state.json").unlink()
    with pytest.raises(NotFoundError, match=f"cluster {NAME} is not running"):
        c.get("pods")
    with pytest.raises(NotFoundError, match=f"cluster {NAME} is not running"):
        c.pod("x/client")


def test_a_missing_pod_names_those_that_run(replies: dict[str, Any]) -> None:
    replies["get"] = []
    with pytest.raises(NotFoundError, match=r'pod "nope" not found in namespace x of cluster apifake \(running in x: client\)'):
        Cluster(NAME, owned=False).pod("x/nope")


def test_a_pending_pod_says_it_has_no_namespace_yet(replies: dict[str, Any]) -> None:
    replies["get"] = [{"metadata": {"name": "later", "namespace": "x"}, "status": {"phase": "Pending"}}]
    with pytest.raises(NotFoundError, match="pod x/later is Pending: it has no network namespace"):
        Cluster(NAME, owned=False).pod("x/later")


def test_members_from_the_record(replies: dict[str, Any]) -> None:
    c = Cluster(NAME, owned=False)
    a = c.pod("client", namespace="x")
    assert (a.ip, a.netns, a.node_name, a.ref) == ("10.244.0.2", f"kemu-{NAME}.x.client", "n1", "x/client")
    assert a == c.pod("x/client") and len({a, c.pod("x/client")}) == 1
    replies["get"] = [{"status": {"addresses": [{"type": "InternalIP", "address": "172.30.0.2"}]}}]
    assert c.node("node/n1").ip == "172.30.0.2"
    with pytest.raises(NotFoundError, match="node 'n9' not found in cluster apifake"):
        c.node("n9")
    with pytest.raises(NotFoundError, match="container nope is not valid for pod x/client"):
        a.run("true", container="nope")


def test_get_of_a_missing_object_is_not_found_with_its_namespace(replies: dict[str, Any]) -> None:
    replies["get"] = []
    c = Cluster(NAME, owned=False)
    with pytest.raises(NotFoundError, match='services "web" not found in namespace y'):
        c.get("svc", "web", namespace="y")
    assert c.get("svc", namespace="y") == {"apiVersion": "v1", "kind": "List", "items": [], "metadata": {"resourceVersion": ""}}
    assert replies["calls"][-1] == ("get", {"kind": "Service", "name": None, "namespace": "y", "all_namespaces": False, "selector": None})


def test_the_daemons_not_found_becomes_not_found_error(replies: dict[str, Any]) -> None:
    err = KemuError('pods "zz" not found')
    err.exit_code = 2
    replies["delete"] = err
    with pytest.raises(NotFoundError, match='pods "zz" not found'):
        Cluster(NAME, owned=False).delete("po", "zz", namespace="x")


def test_an_unknown_kind_is_refused_before_asking(replies: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match='resource type "bogus"'):
        Cluster(NAME, owned=False).get("bogus")
    assert replies["calls"] == []


def test_label_speaks_of_overwrite_as_the_api_spells_it(replies: dict[str, Any]) -> None:
    replies["label"] = KemuError("<command line>: 'tier' already has a value (x), and --overwrite is false")
    with pytest.raises(KemuError, match=r"overwrite=False \(pass overwrite=True to change it\)"):
        Cluster(NAME, owned=False).label("pod", "client", {"tier": "y"}, namespace="x")


def test_bad_arguments_to_members_are_validation_errors(replies: dict[str, Any]) -> None:
    a = Cluster(NAME, owned=False).pod("x/client")
    with pytest.raises(ValidationError, match="give count= or timeout="):
        a.sniff(filter="tcp")
    with pytest.raises(ValidationError, match="no command to run"):
        a.run([])
    with pytest.raises(ValidationError, match="expected a scapy packet"):
        a.sr1(b"not a packet")  # type: ignore[arg-type]  # the wrong type on purpose


def test_a_name_already_taken_says_how_to_free_it(replies: dict[str, Any], tmp_path: pathlib.Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(f"apiVersion: kemu/v1alpha1\nkind: Cluster\nmetadata: {{name: {NAME}}}\nspec: {{nodes: [{{name: n1}}]}}\n")
    with pytest.raises(KemuError, match=rf"already running: take it down \(`kemu down {NAME}`\) or use emu.attach\('{NAME}'\)"):
        launch.up(launch.topology_source(topo), 1.0)


def test_a_helper_that_cannot_start_says_why() -> None:
    with pytest.raises(
        ScapyError, match=r"x/ghost: the scapy helper could not start: DataplaneError: network namespace kemu-apinowhere does not exist$"
    ):
        Helper("kemu-apinowhere", "x/ghost")
