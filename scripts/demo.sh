#!/usr/bin/env bash
# `sudo make demo`: bring up the quick start, show it working, tear it down.
set -euo pipefail
cd "$(dirname "$0")/.."
KEMU=.venv/bin/kemu
TOPO=topologies/quickstart.yaml

$KEMU validate "$TOPO"
$KEMU up "$TOPO" -d
trap '$KEMU down quickstart >/dev/null' EXIT
echo
echo "== nodes, external hosts and pods"
$KEMU get nodes
$KEMU get hosts
$KEMU get pods -A -o wide
echo
echo "== the reachability matrix (every pod to every served port, TCP and UDP)"
$KEMU probe
echo
echo "== no NAT between pods: toolbox asks an echo pod which address it sees"
ECHO_IP=$($KEMU get pods -n web -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["status"]["podIP"])')
TOOLBOX_IP=$($KEMU get pod toolbox -n tools -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["podIP"])')
echo "toolbox is $TOOLBOX_IP; the echo pod sees: $($KEMU exec -n tools toolbox -- curl -s "http://$ECHO_IP:8080/clientip")"
echo
echo "== the external host has no route to pod IPs …"
$KEMU exec host/client -- ip route get "$ECHO_IP" || true
echo "== … but reaches the Service through a NodePort on any node"
$KEMU get svc -n web
for ip in 172.30.0.2 172.30.0.3; do
    echo "client → $ip:30080 answered by: $($KEMU exec host/client -- curl -s "http://$ip:30080/hostname")"
done
echo
$KEMU down quickstart
trap - EXIT
