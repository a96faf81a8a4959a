#!/usr/bin/env python3
"""`kemu graph` at scale, without a cluster: a synthetic object set (N nodes, P pods in
namespaces of 25, a ClusterIP Service per 10 pods, a LoadBalancer per namespace, hosts),
its DOT built and laid out with `dot -Tsvg`.

    .venv/bin/python bench/graph.py [PODS [NODES]]      (default: 1000 pods on 10 nodes)

Prints the time of the DOT build and of `dot -Tsvg`, and their sum (the target: ≤ 2 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emu.cli import graph_dot

Obj = dict[str, Any]


def synthetic(pods: int, nodes: int) -> graph_dot.Objects:
    node_objs = [
        {
            "kind": "Node",
            "metadata": {"name": f"node-{n}"},
            "spec": {"podCIDR": f"10.244.{n}.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": f"172.30.0.{n + 2}"}]},
        }
        for n in range(nodes)
    ]
    pod_objs: list[Obj] = []
    for i in range(pods):
        ns, app = f"ns-{i // 25}", f"app-{i // 10}"
        pod_objs.append(
            {
                "kind": "Pod",
                "metadata": {"name": f"{app}-{i:04d}", "namespace": ns, "labels": {"app": app}},
                "spec": {"nodeName": f"node-{i % nodes}"},
                "status": {
                    "phase": "Running",
                    "podIP": f"10.244.{i % nodes}.{i // nodes + 2}",
                    "conditions": [{"type": "Ready", "status": "True" if i % 17 else "False"}],
                },
            }
        )
    services: list[Obj] = []
    slices: list[Obj] = []
    for j in range((pods + 9) // 10):
        ns, app = f"ns-{j * 10 // 25}", f"app-{j}"
        lb = j * 10 % 25 == 0
        svc: Obj = {
            "kind": "Service",
            "metadata": {"name": app, "namespace": ns},
            "spec": {
                "type": "LoadBalancer" if lb else "ClusterIP",
                "clusterIP": f"10.96.{j // 250}.{j % 250 + 1}",
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": f"172.30.1.{j % 250 + 1}"}]} if lb else {}},
        }
        if lb:
            svc["metadata"]["annotations"] = {"kemu.io/announced-by": f"node-{j % nodes}"}
        services.append(svc)
        members = [p for p in pod_objs if p["metadata"]["labels"]["app"] == app]
        slices.append(
            {
                "kind": "EndpointSlice",
                "metadata": {"name": f"{app}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": app}},
                "endpoints": [
                    {
                        "addresses": [p["status"]["podIP"]],
                        "conditions": {"ready": graph_dot.pod_ready(p)},
                        "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"]},
                    }
                    for p in members
                ],
            }
        )
    hosts = [
        {
            "kind": "ExternalHost",
            "metadata": {"name": f"host-{h}"},
            "status": {"addresses": [{"type": "ExternalIP", "address": f"172.30.0.{200 + h}"}]},
        }
        for h in range(2)
    ]
    return graph_dot.Objects(nodes=node_objs, pods=pod_objs, services=services, slices=slices, hosts=hosts)


def main() -> int:
    pods = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    nodes = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    if shutil.which("dot") is None:
        print("graphviz's dot is not installed (apt-get install graphviz)", file=sys.stderr)
        return 1
    objs = synthetic(pods, nodes)
    t = time.perf_counter()
    src = graph_dot.topology(objs, "bench")
    build = time.perf_counter() - t
    t = time.perf_counter()
    svg = subprocess.run(["dot", "-Tsvg"], input=src.encode(), capture_output=True, check=True).stdout
    layout = time.perf_counter() - t
    print(
        f"{pods} pods, {nodes} nodes, {len(objs.services)} services: DOT {len(src)} B built in {build:.3f} s, "
        f"dot -Tsvg {len(svg)} B in {layout:.2f} s, total {build + layout:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
