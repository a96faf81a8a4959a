"""The objects every cluster has, as a cluster's installer creates them: the cluster DNS
(a `coredns` Deployment in kube-system behind the Service `kube-dns` at the tenth address
of serviceCIDR, as kubeadm sets it up), written as manifests and applied like any other,
so policies, scaling and `kemu get` treat them as in a real cluster."""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any

from emu.model.objects import ClusterSpec

DNS_LABELS = {"k8s-app": "kube-dns"}
DNS_SERVICE = "kube-dns"
DNS_DEPLOYMENT = "coredns"
READY_PORT, HEALTH_PORT, METRICS_PORT = 8181, 8080, 9153


def kubernetes_service(spec: ClusterSpec) -> dict[str, Any]:
    """`default/kubernetes`, the API server's Service at serviceCIDR's first address, as
    every cluster has it (pods look up `kubernetes.default`). kemu has no API server for
    pods to reach: the Service has no endpoints, so connections are refused at once."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "clusterIP": str(ipaddress.ip_network(spec.service_cidr).network_address + 1),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    }


def dns_service_ip(spec: ClusterSpec) -> str:
    """The tenth address of serviceCIDR (10.96.0.10 by default): the kubelet's --cluster-dns."""
    return str(ipaddress.ip_network(spec.service_cidr).network_address + 10)


def upstream_ip(spec: ClusterSpec) -> str:
    """The node network's resolver (the emulated data centre's DNS): its .1, where a real
    network has its router; kemu leaves that address free for it."""
    return str(ipaddress.ip_network(spec.node_cidr).network_address + 1)


def dns_manifests(spec: ClusterSpec, state_file: str, ack_dir: str) -> list[dict[str, Any]]:
    if not spec.dns.enabled:
        return []
    replicas = spec.dns.replicas
    affinity: dict[str, Any] = {}
    if len(spec.nodes) >= replicas:
        # Replicas on different nodes (kubeadm's CoreDNS prefers it; kemu requires it when
        # there are enough nodes, so losing a node never takes the cluster's DNS with it).
        affinity = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": dict(DNS_LABELS)}, "topologyKey": "kubernetes.io/hostname"}
                ]
            }
        }
    container = {
        "name": "coredns",
        # kemu's DNS server, run for real in each DNS pod (the image's name says what it stands for).
        "image": "registry.k8s.io/coredns/coredns:v1.11.3",
        "command": [sys.executable, "-m", "emu.dns.server"],
        "args": ["--state", state_file, "--upstream", f"{upstream_ip(spec)}:53", "--ack", os.path.join(ack_dir, "$(POD_NAME)")],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": READY_PORT}, "periodSeconds": 1},
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": HEALTH_PORT},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 5,
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DNS_DEPLOYMENT, "namespace": "kube-system", "labels": dict(DNS_LABELS)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(DNS_LABELS)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": dict(DNS_LABELS)},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "dnsPolicy": "Default",  # CoreDNS itself uses the node's resolver
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                    ],
                    **({"affinity": affinity} if affinity else {}),
                    "containers": [container],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": DNS_SERVICE,
            "namespace": "kube-system",
            "labels": {**DNS_LABELS, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            "annotations": {"prometheus.io/port": str(METRICS_PORT), "prometheus.io/scrape": "true"},
        },
        "spec": {
            "selector": dict(DNS_LABELS),
            "clusterIP": dns_service_ip(spec),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": METRICS_PORT},
            ],
        },
    }
    return [service, deployment]
