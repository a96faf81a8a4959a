"""The pytest plugin's plumbing with a fake emu.api.up: which topology a module gets,
one cluster per module, taken down after failures and Ctrl-C, errors said plainly."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

import pytest

import emu.api
from emu.errors import KemuError

pytest_plugins = ("pytester",)
pytestmark = pytest.mark.unit

Events = list[tuple[str, ...]]


class FakeCluster:
    def __init__(self, events: Events, name: str, owned: bool = True, unready: tuple[str, ...] = ()) -> None:
        self.events, self.name, self.owned, self.unready = events, name, owned, list(unready)

    def down(self) -> None:
        self.events.append(("down", self.name))

    def __enter__(self) -> FakeCluster:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.events.append(("down" if self.owned else "detach", self.name))


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch, pytester: pytest.Pytester) -> Events:
    got: Events = []

    def up(path: str, name: str | None = None, **kw: Any) -> FakeCluster:
        rel = os.path.relpath(path, pytester.path)
        got.append(("up", rel, str(name)))
        if "broken" in rel:
            raise KemuError("cluster apibroken: the daemon exited (1) before the cluster was ready")
        return FakeCluster(got, name or rel, unready=("x/slow",) if "slow" in rel else ())

    def attach(name: str | None = None) -> FakeCluster:
        got.append(("attach", str(name)))
        return FakeCluster(got, str(name), owned=False)

    monkeypatch.setattr(emu.api, "up", up)
    monkeypatch.setattr(emu.api, "attach", attach)
    # Only this plugin, loaded by name: the same whether or not kemu's entry point is installed.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return got


def run(pytester: pytest.Pytester, *args: str, **kw: Any) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "emu.api.pytest_plugin", "-p", "no:cacheprovider", *args, **kw)


def test_one_cluster_per_module_torn_down_after_a_failure(pytester: pytest.Pytester, events: Events) -> None:
    pytester.mkdir("sub")
    pytester.makepyfile(
        **{
            "sub/test_a": """
                import pytest
                pytestmark = pytest.mark.kemu_topology("topo.yaml")
                def test_one(kemu_cluster): assert kemu_cluster.name.endswith("sub/topo.yaml")
                def test_two(kemu_cluster): assert False, "a failing test"
                def test_three(kemu_cluster): pass
            """,
            "test_b": """
                import pytest
                pytestmark = pytest.mark.kemu_topology("../elsewhere/t.yaml", name="apib")
                def test_b(kemu_cluster): assert kemu_cluster.name == "apib"
            """,
        }
    )
    run(pytester).assert_outcomes(passed=3, failed=1)
    # Paths are the test file's directory's; each module's cluster is down before the next one's is up.
    assert events == [("up", "sub/topo.yaml", "None"), ("down", "sub/topo.yaml"), ("up", "../elsewhere/t.yaml", "apib"), ("down", "apib")]


def test_test_level_markers_share_the_module_cluster(pytester: pytest.Pytester, events: Events) -> None:
    pytester.makepyfile(
        test_c="""
            import pytest
            @pytest.mark.kemu_topology("t.yaml")
            def test_one(kemu_cluster): pass
            @pytest.mark.kemu_topology("t.yaml")
            def test_two(kemu_cluster): pass
            def test_without(): pass
        """
    )
    run(pytester).assert_outcomes(passed=3)
    assert events == [("up", "t.yaml", "None"), ("down", "t.yaml")]


def test_two_topologies_in_one_module_are_refused(pytester: pytest.Pytester, events: Events) -> None:
    pytester.makepyfile(
        test_d="""
            import pytest
            @pytest.mark.kemu_topology("a.yaml")
            def test_one(kemu_cluster): pass
            @pytest.mark.kemu_topology("b.yaml")
            def test_two(kemu_cluster): pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*share one cluster, but they ask for several*a.yaml*b.yaml*"])
    assert events == []


def test_a_missing_marker_says_what_to_add(pytester: pytest.Pytester, events: Events) -> None:
    pytester.makepyfile(test_e="def test_one(kemu_cluster): pass")
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*kemu_cluster fixture needs a topology*pytestmark = pytest.mark.kemu_topology('topo.yaml')*"])
    assert events == []


def test_bad_marker_arguments_are_refused(pytester: pytest.Pytester, events: Events) -> None:
    pytester.makepyfile(
        test_f="""
            import pytest
            pytestmark = pytest.mark.kemu_topology("t.yaml", nmae="typo")
            def test_one(kemu_cluster): pass
        """
    )
    run(pytester).stdout.fnmatch_lines(["*unknown keyword(s) nmae*"])
    assert events == []


def test_tests_without_the_fixture_bring_nothing_up(pytester: pytest.Pytester, events: Events) -> None:
    pytester.makepyfile(
        test_g="""
            import pytest
            pytestmark = pytest.mark.kemu_topology("t.yaml")
            def test_one(): pass
        """
    )
    run(pytester).assert_outcomes(passed=1)
    assert events == []


def test_a_failed_bring_up_fails_the_module_once_with_kemus_message(pytester: pytest.Pytester, events: Events) -> None:
    pytester.makepyfile(
        test_h="""
            import pytest
            pytestmark = pytest.mark.kemu_topology("broken.yaml")
            def test_one(kemu_cluster): pass
            def test_two(kemu_cluster): pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*kemu_cluster: cluster apibroken: the daemon exited (1) before the cluster was ready*"])
    assert events == [("up", "broken.yaml", "None")]  # tried once for the module, not once a test


def test_ctrl_c_in_a_test_still_takes_the_cluster_down(pytester: pytest.Pytester, events: Events) -> None:
    pytester.makepyfile(
        test_i="""
            import pytest
            pytestmark = pytest.mark.kemu_topology("t.yaml")
            def test_one(kemu_cluster): raise KeyboardInterrupt
            def test_two(kemu_cluster): pass
        """
    )
    result = run(pytester, no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert events == [("up", "t.yaml", "None"), ("down", "t.yaml")]


def test_pods_not_ready_are_a_warning(pytester: pytest.Pytester, events: Events) -> None:
    pytester.makepyfile(
        test_j="""
            import pytest
            pytestmark = pytest.mark.kemu_topology("slow.yaml")
            def test_one(kemu_cluster): pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 pod(s) not Ready: x/slow*"])


def test_kemu_cluster_option_attaches_and_leaves_it_up(pytester: pytest.Pytester, events: Events) -> None:
    pytester.makepyfile(
        test_k="""
            import pytest
            pytestmark = pytest.mark.kemu_topology("t.yaml")
            def test_one(kemu_cluster): assert not kemu_cluster.owned
        """
    )
    run(pytester, "--kemu-cluster", "apirunning").assert_outcomes(passed=1)
    assert events == [("attach", "apirunning"), ("detach", "apirunning")]
