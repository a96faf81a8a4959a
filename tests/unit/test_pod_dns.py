"""A pod's resolv.conf and hosts as the kubelet writes them, per dnsPolicy and dnsConfig."""

from __future__ import annotations

import pytest

from emu.controllers.pod_dns import ClusterDNS, hosts_file, node_resolv_conf, resolv_conf

pytestmark = pytest.mark.unit

DNS = ClusterDNS(True, "10.96.0.10", "cluster.local", "172.30.0.1", ("kemu.internal",))
CLUSTER_FIRST = "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
NODE = "nameserver 172.30.0.1\nsearch kemu.internal\n"


@pytest.mark.parametrize(
    ("spec", "host_network", "want"),
    [
        ({}, False, CLUSTER_FIRST),
        ({"dnsPolicy": "ClusterFirst"}, True, NODE),  # the host network falls back to Default
        ({"dnsPolicy": "ClusterFirstWithHostNet"}, True, CLUSTER_FIRST),
        ({"dnsPolicy": "Default"}, False, NODE),
        (
            {
                "dnsPolicy": "None",
                "dnsConfig": {
                    "nameservers": ["1.2.3.4"],
                    "searches": ["a.example"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
                },
            },
            False,
            "nameserver 1.2.3.4\nsearch a.example\noptions ndots:2 edns0\n",
        ),
        (
            {
                "dnsConfig": {
                    "nameservers": ["1.2.3.4", "5.6.7.8", "9.9.9.9"],
                    "searches": ["x.example"],
                    "options": [{"name": "ndots", "value": "1"}],
                }
            },
            False,
            "nameserver 10.96.0.10\nnameserver 1.2.3.4\nnameserver 5.6.7.8\n"
            "search shop.svc.cluster.local svc.cluster.local cluster.local x.example\noptions ndots:1\n",
        ),
    ],
    ids=["cluster-first", "host-network", "with-host-net", "default", "none", "merged-at-most-3-nameservers"],
)
def test_resolv_conf_per_dns_policy(spec: dict, host_network: bool, want: str) -> None:  # type: ignore[type-arg]
    assert resolv_conf(DNS, "shop", spec, host_network) == want


def test_cluster_dns_off_means_the_nodes_resolver() -> None:
    off = ClusterDNS(False, "10.96.0.10", "cluster.local", "172.30.0.1")
    assert resolv_conf(off, "shop", {}, False) == "nameserver 172.30.0.1\n"
    assert node_resolv_conf(DNS) == NODE


def test_hosts_file_with_subdomain_and_host_aliases() -> None:
    text = hosts_file(
        "10.244.1.5",
        "db-0",
        "shop",
        {"subdomain": "db", "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]},
        "cluster.local",
    )
    lines = text.splitlines()
    assert lines[1] == "127.0.0.1\tlocalhost"
    assert "10.244.1.5\tdb-0.db.shop.svc.cluster.local\tdb-0" in lines
    assert lines[-1] == "10.1.2.3\tfoo.local\tbar.local"
    assert "10.244.1.5\tweb" in hosts_file("10.244.1.5", "web", "shop", {}, "cluster.local").splitlines()
