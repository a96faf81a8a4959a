"""Kernel tier: the rendered rulesets load, and an incremental nftables update leaves the
same table a full sync would."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emu.dataplane import netns
from emu.dataplane.run import run
from emu.proxy import iptables_render, nft_render
from emu.proxy.plan import ProxyPlan
from tests.unit.proxy_fixture import plans, update_script

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def ns() -> Iterator[str]:
    name = f"kemu-ktest-{uuid.uuid4().hex[:6]}"
    made = netns.ensure_run_dir()
    with netns.created(name):
        pass
    yield name
    netns.delete(name)
    netns.release_run_dir(made)


def listing(ns: str) -> list[str]:
    text = run(["nft", "list", "table", "ip", nft_render.TABLE], netns_name=ns).stdout
    # Element order inside a map is the kernel's; compare the set of lines and elements.
    return sorted(re.sub(r"\s+", " ", part).strip() for line in text.splitlines() for part in line.split(","))


def test_both_backends_load(ns: str) -> None:
    plan = plans()["n1"]
    run(["nft", "-f", "-"], netns_name=ns, input=nft_render.render_full(plan))
    assert "numgen random mod 3" in run(["nft", "list", "table", "ip", nft_render.TABLE], netns_name=ns).stdout
    run(["iptables-restore", "-w", "5"], netns_name=ns, input=iptables_render.render(plan))
    nat = run(["iptables-save", "-t", "nat"], netns_name=ns).stdout
    assert "--mode random --probability 0.33333333349" in nat and "KEMU-SERVICES" in nat


BASE = plans()["n1"]


def variants() -> st.SearchStrategy[ProxyPlan]:
    """Plans reachable from the fixture: services dropped, endpoints removed, affinity changed."""

    def build(keep: list[bool], cut: list[int], aff: list[int]) -> ProxyPlan:
        out = []
        for sp, k, c, a in zip(BASE.services, keep, cut, aff, strict=False):
            if not k:
                continue
            eps = sp.cluster_endpoints[c:]
            out.append(
                dataclasses.replace(
                    sp,
                    cluster_endpoints=eps,
                    external_endpoints=eps if not sp.external_local else sp.external_endpoints,
                    affinity_timeout=a or sp.affinity_timeout,
                )
            )
        return dataclasses.replace(BASE, services=tuple(out))

    n = len(BASE.services)
    return st.builds(
        build,
        st.lists(st.booleans(), min_size=n, max_size=n),
        st.lists(st.integers(0, 2), min_size=n, max_size=n),
        st.lists(st.sampled_from([0, 0, 30, 90]), min_size=n, max_size=n),
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(variants(), variants())
def test_incremental_equals_full(ns: str, a: ProxyPlan, b: ProxyPlan) -> None:
    run(["nft", "-f", "-"], netns_name=ns, input=nft_render.render_full(a))
    update = update_script(b, nft_render.render_all(a), nft_render.render_all(b))
    if update:
        run(["nft", "-f", "-"], netns_name=ns, input=update)
    after = listing(ns)
    run(["nft", "-f", "-"], netns_name=ns, input=nft_render.render_full(b))
    assert after == listing(ns)
