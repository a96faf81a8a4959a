"""Driving kemu as a user does (the `kemu` command), and checking what it leaves."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

TOPOLOGIES = os.path.join(REPO, "topologies")

PROXIES = ("nftables", "iptables")
PLUGINS = ("bridge", "vxlan", "routed")  # spec.cni
_SHORT = {"nftables": "nft", "iptables": "ipt", "bridge": "", "vxlan": "vx", "routed": "rt"}


# What `make test` runs when KEMU_E2E_CNI is not set: both backends on bridge, and each
# other plugin on one backend, so every plugin and every backend meet in CI's time.
# `make e2e-matrix` (KEMU_E2E_CNI=bridge,vxlan,routed) runs every plugin × both backends.
DEFAULT_PAIRS = (("bridge", "nftables"), ("bridge", "iptables"), ("vxlan", "nftables"), ("routed", "iptables"))


def chosen_plugins() -> list[str] | None:
    """The plugins KEMU_E2E_CNI names (None: not set)."""
    raw = os.environ.get("KEMU_E2E_CNI", "")
    if not raw:
        return None
    chosen = raw.split(",")
    unknown = set(chosen) - set(PLUGINS)
    if unknown:
        raise ValueError(f"KEMU_E2E_CNI: unknown plugin(s) {sorted(unknown)}; known: {', '.join(PLUGINS)}")
    return [p for p in PLUGINS if p in chosen]


def pod_networks() -> list[Any]:
    """The (pod network, proxy backend) pairs a dataplane suite runs over, as pytest
    params ("vxlan-nftables"): DEFAULT_PAIRS, or every chosen plugin × both backends."""
    chosen = chosen_plugins()
    pairs = DEFAULT_PAIRS if chosen is None else tuple((c, p) for c in chosen for p in PROXIES)
    return [pytest.param(pair, id=f"{pair[0]}-{pair[1]}") for pair in pairs]


def plugins(default: tuple[str, ...] = PLUGINS) -> list[str]:
    """The pod networks a suite that does not depend on the proxy backend runs over:
    `default` in `make test` (a subset where the suite is long), or KEMU_E2E_CNI's."""
    return chosen_plugins() or list(default)


def cni_of(c: Running) -> str:
    """The pod network a running test cluster was brought up with."""
    with open(c.file) as f:
        return str(yaml.safe_load(f)["spec"].get("cni", "bridge"))


def variant_name(base: str, cni: str, proxy: str) -> str:
    """A cluster name per variant ("svc-vx-nft"); bridge keeps the names it always had."""
    return "-".join(p for p in (base, _SHORT[cni], _SHORT[proxy]) if p)


def kemu(*args: str, check: bool = True, timeout: float = 180, input: str | None = None) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(
        [sys.executable, "-m", "emu.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        cwd=REPO,
    )
    if check and cp.returncode != 0:
        raise AssertionError(f"kemu {' '.join(args)} exited {cp.returncode}\nstdout: {cp.stdout}\nstderr: {cp.stderr}")
    return cp


def netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def leftovers(cluster: str) -> list[str]:
    """What a cluster left on the machine (a test assertion, not a cleanup method)."""
    found = [f"netns {n}" for n in netns_list() if n == f"kemu-{cluster}" or n.startswith(f"kemu-{cluster}.")]
    if os.path.exists(f"/run/kemu/{cluster}"):
        found.append(f"/run/kemu/{cluster}")
    if os.path.isdir("/etc/netns"):  # resolv.conf and hosts of its namespaces (links into its tmpfs)
        found += [f"/etc/netns/{n}" for n in os.listdir("/etc/netns") if n == f"kemu-{cluster}" or n.startswith(f"kemu-{cluster}.")]
    return found


def wait_until(pred: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Running:
    """A cluster started with `kemu up -d` for a test module."""

    name: str
    file: str

    def pods(self, include_system: bool = False) -> dict[str, dict[str, Any]]:
        """The pods, without the cluster's own (kube-system: DNS) unless asked for."""
        doc = json.loads(kemu("--cluster", self.name, "get", "pods", "-A", "-o", "json").stdout)
        return {
            f"{p['metadata']['namespace']}/{p['metadata']['name']}": p
            for p in doc["items"]
            if include_system or p["metadata"]["namespace"] != "kube-system"
        }

    def ip(self, key: str) -> str:
        return str(self.pods()[key]["status"]["podIP"])

    def node_of(self, key: str) -> str:
        return str(self.pods()[key]["spec"]["nodeName"])

    def node_ip(self, node: str) -> str:
        doc = json.loads(kemu("--cluster", self.name, "get", "nodes", "-o", "json").stdout)
        n = next(i for i in doc["items"] if i["metadata"]["name"] == node)
        return str(next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"))

    def exec(self, key: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if key.startswith(("node/", "host/")):
            return kemu("--cluster", self.name, "exec", key, "--", *cmd, check=check)
        ns, pod = key.split("/")
        return kemu("--cluster", self.name, "exec", "-n", ns, pod, "--", *cmd, check=check)

    def curl(self, key: str, url: str, check: bool = True) -> str:
        return self.exec(key, "curl", "-sS", "--max-time", "3", url, check=check).stdout


def start(file: str, name: str, *extra: str) -> Running:
    for n in leftovers(name):
        raise AssertionError(f"machine not clean before the test: {n}")
    kemu("up", file, "-d", *extra)
    return Running(name, file)


def topology_variant(topology: str, tmp: pathlib.Path, name: str, **spec: Any) -> str:
    """A copy of tests/topologies/`topology` under `tmp`, renamed `name`, with `spec`
    fields replaced (e.g. proxy="iptables"): one file, run once per backend."""
    with open(os.path.join(TOPOLOGIES, topology)) as f:
        doc = yaml.safe_load(f)
    doc["metadata"]["name"] = name
    doc["spec"].update(spec)
    path = tmp / topology
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def stop(r: Running) -> None:
    try:
        kemu("down", r.name)
    finally:
        left = leftovers(r.name)
        if left:
            kemu("clean", check=False)
        assert not left, f"`kemu down` left: {left}"


def host_snapshot() -> dict[str, Any]:
    """The host namespace as kemu must leave it: links, addresses, routes, rules, sysctls, mounts."""

    def out(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout

    sysctls = {}
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/all/forwarding"):
        try:
            with open(f"/proc/sys/{key}") as f:
                sysctls[key] = f.read().strip()
        except OSError:
            sysctls[key] = None
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(" ".join(line.split()[3:5]) for line in f)
    return {
        "links": sorted(line.split(":")[1].strip() for line in out("ip", "-o", "link", "show").splitlines()),
        "addrs": sorted(" ".join(line.split()[1:4]) for line in out("ip", "-o", "addr", "show").splitlines()),
        "routes": sorted(out("ip", "route", "show", "table", "all").splitlines()),
        "nft": out("nft", "list", "ruleset"),
        "sysctls": sysctls,
        "mounts": mounts,
    }
