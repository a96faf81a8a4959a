"""The cluster's DNS records from Services, EndpointSlices and pods (emu.dns.records), table-driven
over the records of the Kubernetes DNS specification (kubernetes/dns docs/specification.md 1.1.0)."""

from __future__ import annotations

import ipaddress
import time

import pytest

from emu.dns.records import (
    AAAA,
    CNAME,
    NS,
    PTR,
    SOA,
    SRV,
    TXT,
    A,
    Index,
    build_index,
    dashed,
    load_state,
    reverse_name,
    reverse_zones,
    undashed,
    write_state,
)
from emu.model.objects import Container, Meta, PodSpec, PodView
from emu.model.services import (
    SERVICE_NAME_LABEL,
    Endpoint,
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
    Service,
    ServicePort,
    ServiceStatus,
)

pytestmark = pytest.mark.unit

Z = "cluster.local"
NOT_READY = EndpointConditions(ready=False, serving=False)


def pod(ns: str, name: str, ip: str, hostname: str = "", subdomain: str = "") -> PodView:
    return PodView(ns, name, {}, ip, "node-1", PodSpec((Container("c"),), hostname=hostname, subdomain=subdomain))


def eps(svc: str, ns: str, endpoints: list[tuple[str, str, bool]], ports: tuple[EndpointPort, ...]) -> list[EndpointSlice]:
    """One slice: (ip, pod name, ready) per endpoint."""
    return [
        EndpointSlice(
            Meta(f"{svc}-abcde", ns, {SERVICE_NAME_LABEL: svc}),
            tuple(Endpoint((ip,), EndpointConditions() if ready else NOT_READY, "node-1", "", f"{ns}/{p}") for ip, p, ready in endpoints),
            ports,
        )
    ]


def big_headless(n: int) -> tuple[Service, list[EndpointSlice]]:
    base = ipaddress.IPv4Address("10.244.3.1")
    svc = Service(Meta("many", "shop"), cluster_ip="None", selector={"app": "many"}, ports=(ServicePort(80, "TCP", "http"),))
    return svc, eps("many", "shop", [(str(base + i), f"m{i}", True) for i in range(n)], (EndpointPort(80, "TCP", "http"),))


def sample(**kw: object) -> Index:
    """A small cluster with every kind of record the specification names."""
    sel = {"app": "x"}
    services = [
        Service(
            Meta("web", "shop"),
            selector=sel,
            ports=(ServicePort(80, "TCP", "http", 8080), ServicePort(53, "UDP", "dns"), ServicePort(9000, "TCP")),
        ),
        Service(Meta("kubernetes", "default"), selector=None, ports=(ServicePort(443, "TCP", "https"),)),
        Service(Meta("db", "shop"), cluster_ip="None", selector=sel, ports=(ServicePort(5432, "TCP", "pg", 5433),)),
        Service(Meta("empty", "shop"), cluster_ip="None", selector=sel, ports=(ServicePort(80, "TCP", "http"),)),
        Service(Meta("ext", "shop"), type="ExternalName", external_name="www.example.com."),
        Service(Meta("alias", "shop"), type="ExternalName", external_name="web.shop.svc.cluster.local"),
        Service(Meta("loop1", "shop"), type="ExternalName", external_name="loop2.shop.svc.cluster.local"),
        Service(Meta("loop2", "shop"), type="ExternalName", external_name="loop1.shop.svc.cluster.local"),
        Service(Meta("pending", "shop"), selector=sel, ports=(ServicePort(80, "TCP", "http"),)),  # no ClusterIP yet
        big_headless(100)[0],
    ]
    statuses = {"shop/web": ServiceStatus("10.96.0.20"), "default/kubernetes": ServiceStatus("10.96.0.1")}
    slices = {
        "shop/web": eps("web", "shop", [("10.244.1.7", "w0", True)], (EndpointPort(8080, "TCP", "http"), EndpointPort(53, "UDP", "dns"))),
        "shop/db": eps(
            "db",
            "shop",
            [("10.244.1.5", "pet", True), ("10.244.2.6", "d1", True), ("10.244.2.7", "d2", False)],
            (EndpointPort(5433, "TCP", "pg"),),
        ),
        "shop/empty": eps("empty", "shop", [("10.244.2.9", "e0", False)], (EndpointPort(80, "TCP", "http"),)),
        "shop/many": big_headless(100)[1],
    }
    pods = [
        pod("shop", "pet", "10.244.1.5", "pet", "db"),
        pod("shop", "w0", "10.244.1.7", "w0", "other"),
        pod("tools", "box", "10.244.2.2"),
    ]
    args: dict = {"namespaces": ["default", "kube-system", "shop", "tools", "quiet"], "dns_ip": "10.96.0.10", "serial": 7}
    args.update(kw)
    return build_index(services, statuses, slices, pods, **args)


INDEX = sample()

# (owner, type, the records of that type there) — the specification's records, section by section.
RECORDS = [
    (f"dns-version.{Z}", TXT, {'"1.1.0"'}),  # §2.2
    (f"web.shop.svc.{Z}", A, {"10.96.0.20"}),  # §2.3.1
    (f"kubernetes.default.svc.{Z}", A, {"10.96.0.1"}),
    (f"_http._tcp.web.shop.svc.{Z}", SRV, {f"0 100 80 web.shop.svc.{Z}"}),  # §2.3.2: the Service port
    (f"_dns._udp.web.shop.svc.{Z}", SRV, {f"0 100 53 web.shop.svc.{Z}"}),
    (f"_https._tcp.kubernetes.default.svc.{Z}", SRV, {f"0 100 443 kubernetes.default.svc.{Z}"}),
    ("20.0.96.10.in-addr.arpa", PTR, {f"web.shop.svc.{Z}"}),  # §2.3.3
    ("1.0.96.10.in-addr.arpa", PTR, {f"kubernetes.default.svc.{Z}"}),
    (f"db.shop.svc.{Z}", A, {"10.244.1.5", "10.244.2.6"}),  # §2.4.1: ready endpoints only
    (f"pet.db.shop.svc.{Z}", A, {"10.244.1.5"}),  # §2.4.1: the endpoint's hostname (pod hostname + subdomain)
    (f"10-244-2-6.db.shop.svc.{Z}", A, {"10.244.2.6"}),  # a generated hostname: CoreDNS's dashed IP
    (f"10-244-1-7.web.shop.svc.{Z}", A, {"10.244.1.7"}),  # every Service's endpoints (concept page)
    (f"_pg._tcp.db.shop.svc.{Z}", SRV, {f"0 50 5433 pet.db.shop.svc.{Z}", f"0 50 5433 10-244-2-6.db.shop.svc.{Z}"}),  # §2.4.2
    ("5.1.244.10.in-addr.arpa", PTR, {f"pet.db.shop.svc.{Z}"}),  # §2.4.3
    ("6.2.244.10.in-addr.arpa", PTR, {f"10-244-2-6.db.shop.svc.{Z}"}),
    ("7.1.244.10.in-addr.arpa", PTR, {f"10-244-1-7.web.shop.svc.{Z}"}),
    (f"ext.shop.svc.{Z}", CNAME, {"www.example.com"}),  # §2.5
    (f"alias.shop.svc.{Z}", CNAME, {f"web.shop.svc.{Z}"}),
    (f"10-244-2-2.tools.pod.{Z}", A, {"10.244.2.2"}),  # pod records (CoreDNS `pods insecure`)
    (f"10-1-2-3.shop.pod.{Z}", A, {"10.1.2.3"}),  # insecure: any IP in an existing namespace
    (f"ns.dns.{Z}", A, {"10.96.0.10"}),  # the NS target
    (Z, NS, {f"ns.dns.{Z}"}),
    (Z, SOA, {f"ns.dns.{Z} hostmaster.{Z} 7 7200 1800 86400 30"}),  # CoreDNS's SOA, minimum = TTL
    ("244.10.in-addr.arpa", SOA, {f"ns.dns.{Z} hostmaster.{Z} 7 7200 1800 86400 30"}),  # reverse zones: ours too
    ("96.10.in-addr.arpa", NS, {f"ns.dns.{Z}"}),
]


@pytest.mark.parametrize(("owner", "rdtype", "want"), RECORDS, ids=[f"{o}/{t}" for o, t, _ in RECORDS])
def test_spec_records(owner: str, rdtype: int, want: set[str]) -> None:
    recs = INDEX.lookup(owner)
    assert recs is not None, f"{owner} does not exist"
    assert {text for t, text in recs if t == rdtype} == want


# Names that exist with no records (NODATA) and names that do not exist (NXDOMAIN).
EMPTY = [
    f"svc.{Z}",
    f"pod.{Z}",
    f"shop.svc.{Z}",
    f"quiet.svc.{Z}",
    f"quiet.pod.{Z}",
    f"_tcp.db.shop.svc.{Z}",
    f"_udp.web.shop.svc.{Z}",
    f"dns.{Z}",
    "1.244.10.in-addr.arpa",
]
MISSING = [
    f"empty.shop.svc.{Z}",  # §2.4.1: a headless Service with no ready endpoint is NXDOMAIN
    f"_http._tcp.empty.shop.svc.{Z}",
    f"10-244-2-7.db.shop.svc.{Z}",  # a not-ready endpoint
    f"d2.db.shop.svc.{Z}",
    f"10-244-1-5.db.shop.svc.{Z}",  # an endpoint with a hostname is known by that name only
    f"w0.web.shop.svc.{Z}",  # the pod's subdomain names another Service
    f"_9000._tcp.web.shop.svc.{Z}",  # unnamed ports have no SRV
    f"_http._udp.web.shop.svc.{Z}",
    f"pending.shop.svc.{Z}",  # no ClusterIP allocated yet
    f"nope.shop.svc.{Z}",
    f"web.nope.svc.{Z}",
    f"nope.svc.{Z}",
    f"x.web.shop.svc.{Z}",
    f"10-244-1-7.db.shop.svc.{Z}",  # an IP that is not this Service's endpoint
    f"10-1-2-3.nope.pod.{Z}",  # a namespace that does not exist
    f"not-an-ip.shop.pod.{Z}",
    f"1-2-3-4.x.shop.pod.{Z}",
    f"www.{Z}",
    "9.9.244.10.in-addr.arpa",
]


@pytest.mark.parametrize("name", EMPTY)
def test_empty_non_terminals_exist(name: str) -> None:
    assert INDEX.lookup(name) == ()


@pytest.mark.parametrize("name", MISSING)
def test_missing_names(name: str) -> None:
    assert INDEX.lookup(name) is None


def test_pods_modes() -> None:
    verified = sample(pods_mode="verified")
    assert verified.lookup(f"10-244-2-2.tools.pod.{Z}") == ((A, "10.244.2.2"),)
    assert verified.lookup(f"10-1-2-3.shop.pod.{Z}") is None  # no such pod
    assert verified.lookup(f"shop.pod.{Z}") == ()
    disabled = sample(pods_mode="disabled")
    assert disabled.lookup(f"10-244-2-2.tools.pod.{Z}") is None


def test_hostnames_argument_and_zone_and_ttl() -> None:
    idx = sample(hostnames={"shop/d1": ("second", "db")}, zone="Example.Test.", ttl=5)
    assert idx.lookup("second.db.shop.svc.example.test") == ((A, "10.244.2.6"),)
    assert idx.lookup("10-244-2-6.db.shop.svc.example.test") is None
    assert idx.zone_of("web.shop.svc.example.test") == "example.test"
    assert idx.soa("example.test").endswith(" 7200 1800 86400 5")


def test_headless_with_many_endpoints() -> None:
    recs = INDEX.lookup(f"many.shop.svc.{Z}")
    assert recs is not None and len(recs) == 100 and {t for t, _ in recs} == {A}
    srv = INDEX.lookup(f"_http._tcp.many.shop.svc.{Z}")
    assert srv is not None and len(srv) == 100 and all(text.startswith("0 1 80 ") for _, text in srv)


@pytest.mark.parametrize(
    ("cidr", "zones"),
    [
        ("10.244.0.0/16", ["244.10.in-addr.arpa"]),
        ("10.96.0.0/12", [f"{i}.10.in-addr.arpa" for i in range(96, 112)]),
        ("172.30.0.0/24", ["0.30.172.in-addr.arpa"]),
        ("10.0.0.0/8", ["10.in-addr.arpa"]),
        ("192.168.0.0/23", ["0.168.192.in-addr.arpa", "1.168.192.in-addr.arpa"]),
        ("fd00:10::/64", ["0.0.0.0.0.0.0.0.0.1.0.0.0.0.d.f.ip6.arpa"]),
    ],
)
def test_reverse_zones(cidr: str, zones: list[str]) -> None:
    assert reverse_zones(cidr) == zones


def test_names_helpers() -> None:
    assert reverse_name("10.244.1.5") == "5.1.244.10.in-addr.arpa"
    assert reverse_name("2001:db8::1").endswith(".8.b.d.0.1.0.0.2.ip6.arpa")
    assert dashed("10.244.1.5") == "10-244-1-5" and dashed("fd00::1") == "fd00--1"
    assert undashed("10-244-1-5") == "10.244.1.5" and undashed("fd00--1") == "fd00::1"
    assert undashed("010-1-1-1") == "" and undashed("web") == ""


def test_outside_zones_are_dropped_and_zone_of() -> None:
    svc = Service(Meta("out", "shop"), cluster_ip="None", selector={"a": "b"})
    idx = build_index([svc], {}, {"shop/out": eps("out", "shop", [("192.0.2.1", "x", True)], ())}, [])
    assert idx.lookup(f"out.shop.svc.{Z}") == ((A, "192.0.2.1"),)
    assert "1.2.0.192.in-addr.arpa" not in idx.records  # not in our reverse zones: the upstream's business
    assert idx.zone_of("1.2.0.192.in-addr.arpa") is None
    assert idx.zone_of("5.1.244.10.in-addr.arpa") == "244.10.in-addr.arpa"
    assert idx.zone_of("cluster.local") == Z and idx.zone_of("xcluster.local") is None


def test_state_round_trip(tmp_path: object) -> None:
    path = f"{tmp_path}/dns.json"
    write_state(path, INDEX)
    back = load_state(path)
    assert back == INDEX
    assert back.fingerprint(f"web.shop.svc.{Z}") == INDEX.fingerprint(f"web.shop.svc.{Z}")
    with open(path, "w") as f:
        f.write('{"format": "other"}')
    with pytest.raises(ValueError, match="kemu-dns/1"):
        load_state(path)


def test_fingerprint_sees_changes() -> None:
    changed = sample(serial=8)
    assert changed.same_frame(INDEX)
    assert changed.fingerprint(f"web.shop.svc.{Z}") == INDEX.fingerprint(f"web.shop.svc.{Z}")
    assert changed.fingerprint(Z) != INDEX.fingerprint(Z)  # the SOA serial
    assert not sample(ttl=5).same_frame(INDEX)


def test_build_10000_services_is_fast() -> None:
    """10,000 Services (half headless, 3 endpoints each) and 1,000 pods: well under a second here."""
    pods = [pod(f"ns-{i % 100}", f"p{i}", str(ipaddress.IPv4Address("10.244.0.2") + i)) for i in range(1000)]
    services, statuses, slices = [], {}, {}
    for i in range(10000):
        ns = f"ns-{i % 100}"
        svc = Service(Meta(f"s{i}", ns), selector={"a": "b"}, cluster_ip="None" if i % 2 else "", ports=(ServicePort(80, "TCP", "http"),))
        services.append(svc)
        statuses[svc.key] = ServiceStatus("" if i % 2 else str(ipaddress.IPv4Address("10.96.1.0") + i))
        slices[svc.key] = eps(
            f"s{i}", ns, [(pods[(3 * i + j) % 1000].ip, f"p{j}", True) for j in range(3)], (EndpointPort(80, "TCP", "http"),)
        )
    t0 = time.perf_counter()
    idx = build_index(services, statuses, slices, pods)
    took = time.perf_counter() - t0
    assert idx.lookup(f"s1.ns-1.svc.{Z}") is not None and idx.lookup(f"_http._tcp.s2.ns-2.svc.{Z}") is not None
    assert took < 3.0, f"{took:.2f} s"  # ~0.25 s on the development machine; slack for a busy CI


def test_aaaa_for_ipv6() -> None:
    svc = Service(Meta("v6", "shop"), selector={"a": "b"})
    idx = build_index([svc], {"shop/v6": ServiceStatus("fd00:96::a")}, {}, [], service_cidr="fd00:96::/112")
    assert idx.lookup(f"v6.shop.svc.{Z}") == ((AAAA, "fd00:96::a"),)
    assert idx.lookup(reverse_name("fd00:96::a")) == ((PTR, f"v6.shop.svc.{Z}"),)
