"""kemu's pytest plugin (the `pytest11` entry point `kemu`, installed with kemu).

    import pytest
    from scapy.layers.inet import IP, TCP

    pytestmark = pytest.mark.kemu_topology("topo.yaml")   # relative to this file

    def test_syn_ack(kemu_cluster):
        a, b = kemu_cluster.pod("x/a"), kemu_cluster.pod("y/b")
        ans = a.sr1(IP(dst=b.ip) / TCP(dport=80, flags="S"))
        assert ans is not None and ans[TCP].flags == "SA"

The marker names the topology (module-, class- or test-level; `name=` renames the
cluster, `ready_timeout=` as emu.up's). The fixture `kemu_cluster` (module scope) brings
that cluster up once for the module's tests, yields the emu.api.Cluster and takes it
down after the module's last test, also when tests fail or the run is interrupted
(Ctrl-C); every fault on the cluster (`cluster.fault(…)`) is cleared after each test. The tests of one
module share one cluster, so they name one topology.

`pytest --kemu-cluster NAME` runs the tests against a cluster that is already up
(`kemu up topo.yaml -d`): nothing is brought up or taken down, so reruns are quick.

The plugin does nothing for tests that do not use the fixture: it imports nothing of
kemu until the fixture is set up.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from emu.api.cluster import Cluster

MARKER = "kemu_topology"
FIXTURE = "kemu_cluster"

_live: list[Cluster] = []  # clusters the fixture brought up and has not yet taken down


class TopologyError(Exception):
    """The marker is missing or wrong: a mistake in the tests, said before anything runs."""


@dataclass(frozen=True)
class Topology:
    path: str  # absolute
    name: str | None = None
    ready_timeout: float | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kemu")
    group.addoption(
        "--kemu-cluster",
        metavar="NAME",
        default=None,
        help="kemu_cluster attaches to this running cluster instead of bringing the marked topology up (and leaves it up)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(path, name=None, ready_timeout=None): the kemu topology file (relative to the test file) "
        f"that the {FIXTURE} fixture brings up, once per module",
    )


def topology_of(mark: pytest.Mark, test_file: str) -> Topology:
    """What a marker asks for, its path resolved from the test file's directory."""
    where = f"{test_file}: @pytest.mark.{MARKER}"
    if len(mark.args) != 1 or not isinstance(mark.args[0], str | os.PathLike):
        raise TopologyError(f"{where} takes one topology path, e.g. {MARKER}('topo.yaml'); got {mark.args!r}")
    unknown = set(mark.kwargs) - {"name", "ready_timeout"}
    if unknown:
        raise TopologyError(f"{where}: unknown keyword(s) {', '.join(sorted(unknown))} (known: name, ready_timeout)")
    path = os.fspath(mark.args[0])
    if not os.path.isabs(path):
        path = os.path.join(os.path.dirname(os.path.abspath(test_file)), path)
    name = mark.kwargs.get("name")
    timeout = mark.kwargs.get("ready_timeout")
    return Topology(os.path.normpath(path), None if name is None else str(name), None if timeout is None else float(timeout))


def module_topology(module: pytest.Module, items: list[pytest.Item]) -> Topology:
    """The one topology a module's tests ask for (those that use the fixture)."""
    file = str(module.path)
    found: dict[Topology, str] = {}
    for item in items:
        if item.getparent(pytest.Module) is not module or FIXTURE not in getattr(item, "fixturenames", ()):
            continue
        mark = item.get_closest_marker(MARKER)
        if mark is not None:
            found.setdefault(topology_of(mark, file), item.name)
    if not found:
        mark = module.get_closest_marker(MARKER)
        if mark is None:
            raise TopologyError(
                f"{file}: the {FIXTURE} fixture needs a topology: add `pytestmark = pytest.mark.{MARKER}('topo.yaml')` "
                f"to the module, or mark the tests"
            )
        return topology_of(mark, file)
    if len(found) > 1:
        asked = "; ".join(f"{t.path}{f' (name {t.name})' if t.name else ''} by {test}" for t, test in found.items())
        raise TopologyError(f"{file}: the tests of one module share one cluster, but they ask for several: {asked}")
    return next(iter(found))


def _bring_up(topo: Topology) -> Cluster:
    import emu.api as api  # looked up now: tests replace api.up with a fake

    kw: dict[str, Any] = {} if topo.ready_timeout is None else {"ready_timeout": topo.ready_timeout}
    cluster = api.up(topo.path, name=topo.name, **kw)
    if cluster.unready:
        warnings.warn(
            f"kemu cluster {cluster.name}: {len(cluster.unready)} pod(s) not Ready: {', '.join(cluster.unready[:10])}",
            stacklevel=1,
        )
    return cluster


@pytest.fixture(scope="module")
def kemu_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The module's kemu cluster (an emu.api.Cluster), up for its tests."""
    import emu.api as api

    attach_to = request.config.getoption("--kemu-cluster")
    if attach_to:
        with api.attach(attach_to) as attached:
            yield attached
        return
    from emu.errors import KemuError

    assert isinstance(request.node, pytest.Module)
    try:
        cluster = _bring_up(module_topology(request.node, request.session.items))
    except (TopologyError, KemuError) as e:
        # The message is the whole story (a traceback into kemu would hide it); pytest
        # keeps a module fixture's failure, so the module's other tests don't retry it.
        pytest.fail(f"kemu_cluster: {e}", pytrace=False)
    _live.append(cluster)
    try:
        yield cluster
    finally:
        try:
            cluster.down()
        finally:
            _live.remove(cluster)


@pytest.fixture(autouse=True)
def _kemu_faults_cleared(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the cluster: every fault on it is cleared (`kemu fault
    clear`), so a test's broken link or loss does not leak into the next one — with
    `--kemu-cluster` too (faults put on before the run go as well)."""
    yield
    if FIXTURE not in request.fixturenames:
        return
    cluster = request.getfixturevalue(FIXTURE)
    clear = getattr(cluster, "fault_clear", None)
    if clear is not None and cluster.running and cluster.faults():
        clear()


def pytest_unconfigure(config: pytest.Config) -> None:
    """A last chance for clusters whose fixture was never finalised (the run was cut short
    where pytest does not tear fixtures down)."""
    while _live:
        cluster = _live.pop()
        try:
            cluster.down()
        except Exception as e:  # noqa: BLE001 - the others still get their chance
            warnings.warn(f"kemu cluster {cluster.name} could not be taken down: {e} (run `kemu clean`)", stacklevel=1)
