"""Golden text of both backends for the fixture cluster (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

from emu.config.loader import Collector, parse_manifest_docs
from emu.controllers.endpointslices import slices_for
from emu.controllers.service_alloc import allocate
from emu.proxy import iptables_render, nft_render
from emu.proxy.plan import ProxyPlan, compile_plan
from tests.conftest import REPO
from tests.unit.proxy_fixture import PODS, SPEC, plans, update_script

pytestmark = pytest.mark.unit
GOLDEN = os.path.join(REPO, "tests", "data", "golden")


@pytest.mark.parametrize("node", ["n1", "n2"])
@pytest.mark.parametrize("backend, ext", [("nftables", "nft"), ("iptables", "iptables")])
def test_golden(node: str, backend: str, ext: str) -> None:
    plan = plans()[node]
    text = nft_render.render_full(plan) if backend == "nftables" else iptables_render.render(plan)
    path = os.path.join(GOLDEN, f"proxy-{node}.{ext}")
    with open(path) as f:
        golden = f.read()
    if os.environ.get("UPDATE_GOLDEN") and text != golden:
        with open(path, "w") as f:
            f.write(text)
        # Never a pass: the new text must be read (git diff) and the test run again.
        pytest.fail(f"{path} rewritten; review `git diff {os.path.relpath(path, REPO)}` and run again")
    assert text == golden


def test_incremental_update_touches_only_the_changed_service() -> None:
    plan = plans()["n1"]
    changed = [
        dataclasses.replace(sp, cluster_endpoints=sp.cluster_endpoints[:1]) if sp.id.startswith("default/sticky/") else sp
        for sp in plan.services
    ]
    new = dataclasses.replace(plan, services=tuple(changed))
    script = update_script(new, nft_render.render_all(plan), nft_render.render_all(new))
    assert script and all("sticky" in line for line in script.splitlines())
    assert update_script(plan, nft_render.render_all(plan), nft_render.render_all(plan)) == ""


def _replace_fw(plan: ProxyPlan, **changes: Any) -> ProxyPlan:
    out = [dataclasses.replace(sp, **changes) if sp.id.startswith("default/fw/") else sp for sp in plan.services]
    return dataclasses.replace(plan, services=tuple(out))


def test_cluster_ips_set_lists_every_cluster_ip() -> None:
    # kube-proxy's "cluster-ips" set: every ClusterIP, with endpoints or without, so that
    # cluster-ips-check rejects ports and protocols no Service port serves.
    plan = plans()["n1"]
    text = nft_render.render_full(plan)
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith("set cluster-ips ")]
    listed = line.split("elements = {", 1)[1].split("}", 1)[0]
    assert sorted(e.strip() for e in listed.split(",")) == sorted({sp.cluster_ip for sp in plan.services})
    assert "    ip daddr @cluster-ips reject\n" in text


def test_a_shared_cluster_ip_stays_until_its_last_port_goes() -> None:
    plan = plans()["n1"]
    web_ip = next(sp.cluster_ip for sp in plan.services if sp.id.startswith("default/web/"))
    one_port = dataclasses.replace(plan, services=tuple(sp for sp in plan.services if sp.id != "default/web/udp/dns"))
    script = update_script(one_port, nft_render.render_all(plan), nft_render.render_all(one_port))
    assert "cluster-ips" not in script  # the TCP port still uses the address
    no_web = dataclasses.replace(plan, services=tuple(sp for sp in plan.services if not sp.id.startswith("default/web/")))
    script = update_script(no_web, nft_render.render_all(plan), nft_render.render_all(no_web))
    assert f"delete element ip kemu-proxy cluster-ips {{ {web_ip} }}" in script


def test_source_range_holding_the_node_ip_admits_the_lb_ip_in_both_backends() -> None:
    # kube-proxy's allowFromNode (TestLoadBalancer "same node to LB1, SNATted to LB1").
    plan = _replace_fw(plans()["n1"], source_ranges=("172.30.0.2/32", "172.30.0.100/32"))
    nft = nft_render.render_full(plan)
    assert "ip saddr { 172.30.0.2/32, 172.30.0.100/32, 172.30.0.193 } return" in nft
    ipt = iptables_render.render(plan)
    fw_rules = [ln for ln in ipt.splitlines() if ln.startswith("-A KEMU-FW-")]
    assert [ln.split(" -s ")[1].split(" ")[0] for ln in fw_rules[:-1]] == ["172.30.0.2/32", "172.30.0.100/32", "172.30.0.193"]
    assert fw_rules[-1].endswith("-j MARK --set-xmark 0x8000/0x8000")


def test_source_ranges_apply_without_endpoints_in_nftables_only() -> None:
    plan = _replace_fw(plans()["n1"], has_endpoints=False, cluster_endpoints=(), external_endpoints=())
    nft = nft_render.render_full(plan)
    assert "172.30.0.193 . tcp . 80 : goto fw-" in nft and "172.30.0.193 . tcp . 80 : goto reject-chain" in nft
    ipt = iptables_render.render(plan)
    assert "KEMU-FW-" not in ipt and "-A KEMU-EXTERNAL-SERVICES -d 172.30.0.193/32 -p tcp -m tcp --dport 80 -j REJECT" in ipt


def test_iptables_nodeports_answer_on_every_local_address() -> None:
    # kube-proxy's iptables defaults: nodePortAddresses unset (every local address,
    # 127.0.0.1 included: localhostNodePorts), reached from the end of KEMU-SERVICES.
    text = iptables_render.render(plans()["n1"])
    nat = text.split("*filter")[0]
    nodeports = [ln for ln in nat.splitlines() if ln.startswith("-A KEMU-NODEPORTS")]
    assert nodeports and not [ln for ln in nodeports if " -d " in ln]
    services = [ln for ln in nat.splitlines() if ln.startswith("-A KEMU-SERVICES")]
    assert services[-1] == "-A KEMU-SERVICES -m addrtype --dst-type LOCAL -j KEMU-NODEPORTS"
    filt = text.split("*filter")[1].splitlines()
    assert filt.index("-A INPUT -j KEMU-FIREWALL") < filt.index("-A INPUT -m conntrack --ctstate NEW -j KEMU-NODEPORTS")
    assert "-A OUTPUT -j KEMU-FIREWALL" in filt


def test_trimmed_source_ranges_reach_the_rules() -> None:
    # The API server trims each range before it parses it; the plan uses the trimmed CIDR.
    raw = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "fw"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web"},
            "loadBalancerSourceRanges": [" 172.30.0.100/32 ", "\t10.0.0.0/8"],
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }
    c = Collector()
    svcs = list(parse_manifest_docs([("f.yaml", "[0]", raw)], c).manifests.services)
    assert not c.problems, c.problems
    statuses = allocate(SPEC, svcs, {})
    plan = compile_plan("n1", ("172.30.0.2",), "10.244.0.0/16", svcs, statuses, {s.key: slices_for(s, PODS, {}) for s in svcs})
    (sp,) = plan.services
    assert sp.source_ranges == ("172.30.0.100/32", "10.0.0.0/8")
    assert "ip saddr { 172.30.0.100/32, 10.0.0.0/8 } return" in nft_render.render_full(plan)
    assert "-s 172.30.0.100/32 -j KEMU-EXT-" in iptables_render.render(plan)


def test_iptables_no_endpoint_rejects_are_hooked_as_kube_proxy_hooks_them() -> None:
    # KUBE-SERVICES (ClusterIPs) from forward and output; KUBE-EXTERNAL-SERVICES
    # (externalIPs, LB IPs) from input and forward.
    plan = plans()["n1"]
    out = [
        dataclasses.replace(sp, has_endpoints=False, cluster_endpoints=(), external_endpoints=())
        if sp.id.startswith("default/ext/")
        else sp
        for sp in plan.services
    ]
    filt = iptables_render.render(dataclasses.replace(plan, services=tuple(out))).split("*filter")[1].splitlines()
    jumps = {ln for ln in filt if ln.startswith(("-A INPUT", "-A FORWARD", "-A OUTPUT")) and "KEMU-" in ln and "SERVICES" in ln}
    assert jumps == {
        "-A INPUT -m conntrack --ctstate NEW -j KEMU-EXTERNAL-SERVICES",
        "-A FORWARD -m conntrack --ctstate NEW -j KEMU-EXTERNAL-SERVICES",
        "-A FORWARD -m conntrack --ctstate NEW -j KEMU-SERVICES",
        "-A OUTPUT -m conntrack --ctstate NEW -j KEMU-SERVICES",
    }
    assert "-A KEMU-SERVICES -d 10.96.0.11/32 -p tcp -m tcp --dport 8000 -j REJECT" in filt
    assert "-A KEMU-EXTERNAL-SERVICES -d 192.0.2.10/32 -p tcp -m tcp --dport 8000 -j REJECT" in filt
