"""Golden text of both backends for the fixture cluster (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import os

import pytest

from emu.proxy import iptables_render, nft_render
from tests.conftest import REPO
from tests.unit.proxy_fixture import plans

pytestmark = pytest.mark.unit
GOLDEN = os.path.join(REPO, "tests", "data", "golden")


@pytest.mark.parametrize("node", ["n1", "n2"])
@pytest.mark.parametrize("backend, ext", [("nftables", "nft"), ("iptables", "iptables")])
def test_golden(node: str, backend: str, ext: str) -> None:
    plan = plans()[node]
    text = nft_render.render_full(plan) if backend == "nftables" else iptables_render.render(plan)
    path = os.path.join(GOLDEN, f"proxy-{node}.{ext}")
    if os.environ.get("UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read()


def test_incremental_update_touches_only_the_changed_service() -> None:
    import dataclasses

    plan = plans()["n1"]
    changed = [
        dataclasses.replace(sp, cluster_endpoints=sp.cluster_endpoints[:1]) if sp.id.startswith("default/sticky/") else sp
        for sp in plan.services
    ]
    new = dataclasses.replace(plan, services=tuple(changed))
    script = nft_render.render_update(new, nft_render.render_all(plan), nft_render.render_all(new))
    assert script and all("sticky" in line for line in script.splitlines())
    assert nft_render.render_update(plan, nft_render.render_all(plan), nft_render.render_all(plan)) == ""
