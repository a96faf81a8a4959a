"""The bad-file corpus: every file must fail with exit code 2 and the messages it names."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from emu.config import load_cluster_file
from emu.errors import ValidationError
from tests.conftest import REPO

pytestmark = pytest.mark.unit

BAD = sorted(glob.glob(os.path.join(REPO, "tests", "data", "bad", "*.yaml")))


def expectations(path: str) -> list[str]:
    with open(path) as f:
        return [line[len("# expect: ") :].rstrip("\n") for line in f if line.startswith("# expect: ")]


def test_corpus_is_big_enough() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[os.path.basename(p) for p in BAD])
def test_bad_file_is_rejected_with_its_messages(path: str) -> None:
    with pytest.raises(ValidationError) as exc:
        load_cluster_file(path)
    text = str(exc.value)
    for want in expectations(path):
        assert want in text, f"missing {want!r} in:\n{text}"
    for p in exc.value.problems:
        assert p.file.endswith(os.path.basename(path)) or "include" in p.path


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as exc:
        load_cluster_file(os.path.join(REPO, "tests", "data", "bad", "many-problems.yaml"))
    assert len(exc.value.problems) == 5


@pytest.mark.parametrize("topology", sorted(glob.glob(os.path.join(REPO, "topologies", "*.yaml"))))
def test_shipped_topologies_are_valid(topology: str) -> None:
    cfg = load_cluster_file(topology)
    assert cfg.spec.nodes


def test_cli_validate_exit_codes(tmp_path: object) -> None:
    good = os.path.join(REPO, "topologies", "quickstart.yaml")
    bad = os.path.join(REPO, "tests", "data", "bad", "duplicate-node.yaml")
    ok = subprocess.run([sys.executable, "-m", "emu.cli.main", "validate", good], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "ok: cluster quickstart" in ok.stdout
    ko = subprocess.run([sys.executable, "-m", "emu.cli.main", "validate", bad], capture_output=True, text=True)
    assert ko.returncode == 2
    assert "duplicate name 'n1'" in ko.stderr and ko.stdout == ""


def test_include_files_are_loaded_and_their_problems_located(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "app.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: web}\nspec: {containers: [{name: c}]}\n"
    )
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec: {containers: [{name: c, bogus: 1}]}\n")
    top = tmp_path / "c.yaml"
    top.write_text("apiVersion: kemu/v1alpha1\nkind: Cluster\nmetadata: {name: inc}\nspec:\n  nodes: [{name: n1}]\n  include: [app.yaml]\n")
    cfg = load_cluster_file(str(top))
    assert [p.key for p in cfg.manifests.pods] == ["web/p"]
    top.write_text(
        "apiVersion: kemu/v1alpha1\nkind: Cluster\nmetadata: {name: inc}\nspec:\n  nodes: [{name: n1}]\n  include: [app.yaml, bad.yaml]\n"
    )
    with pytest.raises(ValidationError) as exc:
        load_cluster_file(str(top))
    (p,) = exc.value.problems
    assert p.file.endswith("bad.yaml") and p.path == "spec.containers[0].bogus"


LB_TOPOLOGY = """apiVersion: kemu/v1alpha1
kind: Cluster
metadata: {{name: lbsr}}
spec:
  nodes: [{{name: n1}}]
  resources:
    - apiVersion: v1
      kind: Service
      metadata: {{name: fw}}
      spec:
        type: LoadBalancer
        selector: {{app: web}}
        loadBalancerSourceRanges: {ranges}
        ports: [{{port: 80}}]
"""


def test_load_balancer_source_ranges_are_trimmed_as_the_api_server_does(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # ValidateService trims each entry before it parses the CIDR (space padding is allowed
    # for historical reasons); kube-proxy trims too, so the Service uses the bare CIDRs.
    top = tmp_path / "lb.yaml"
    top.write_text(LB_TOPOLOGY.format(ranges='[" 10.0.0.0/8 ", "172.30.0.4/32", "  192.168.0.0/16"]'))
    (svc,) = load_cluster_file(str(top)).manifests.services
    assert svc.load_balancer_source_ranges == ("10.0.0.0/8", "172.30.0.4/32", "192.168.0.0/16")


def test_a_padded_load_balancer_source_range_is_still_validated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    top = tmp_path / "lb.yaml"
    top.write_text(LB_TOPOLOGY.format(ranges='[" 10.0.0.0/33 "]'))
    with pytest.raises(ValidationError) as exc:
        load_cluster_file(str(top))
    (p,) = exc.value.problems
    assert p.path.endswith("spec.loadBalancerSourceRanges[0]") and "'10.0.0.0/33' is not a valid CIDR" in str(exc.value)


def test_node_lifecycle_periods_take_go_durations(tmp_path) -> None:  # type: ignore[no-untyped-def]
    top = tmp_path / "t.yaml"
    top.write_text(
        "apiVersion: kemu/v1alpha1\nkind: Cluster\nmetadata: {name: t}\n"
        "spec:\n  nodeMonitorGracePeriod: 1m30s\n  podEvictionTimeout: 500ms\n  nodes: [{name: n1}]\n"
    )
    spec = load_cluster_file(str(top)).spec
    assert (spec.node_monitor_grace_s, spec.pod_eviction_timeout_s) == (90.0, 0.5)
    top.write_text("apiVersion: kemu/v1alpha1\nkind: Cluster\nmetadata: {name: t}\nspec:\n  nodes: [{name: n1}]\n")
    spec = load_cluster_file(str(top)).spec
    assert (spec.node_monitor_grace_s, spec.pod_eviction_timeout_s) == (40.0, 300.0)  # kube's defaults
