#!/usr/bin/env bash
# One source of installation truth: used by `make setup`, .ci/run and vagrant/.
# Installs the Debian packages kemu needs (only those missing) and a venv in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# busybox: containers of busybox images run their applets (sh, sleep, wget, nc) through it.
PKGS=(mininet iproute2 nftables iptables conntrack ethtool iperf3 curl
      netcat-openbsd tcpdump dnsutils bridge-utils procps iputils-ping iputils-arping kmod python3-venv python3-pip
      busybox dnsperf haproxy openssl wrk graphviz chromium)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-install-recommends: mininet recommends openvswitch-switch, which this
    # emulator does not use (the kernel module is absent; we use Linux bridges).
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # kemu runs HAProxy in its gateway pods; the package's own service (no listeners in
    # Debian's default config) is not needed: stop it where systemd started it.
    if [[ " ${missing[*]} " == *" haproxy "* ]] && command -v systemctl >/dev/null && systemctl is-active -q haproxy 2>/dev/null; then
        systemctl disable --now haproxy >/dev/null 2>&1 || true
    fi
fi

# Same-node (bridged) pod traffic reaches netfilter only through br_netfilter: Services
# need it for the replies of bridged flows. Loading it is the one host-wide step.
if [[ ! -d /proc/sys/net/bridge ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        modprobe br_netfilter || echo "setup: warning: could not load br_netfilter; same-node Service traffic will fail" >&2
    else
        echo "setup: warning: br_netfilter is not loaded (run make setup as root)" >&2
    fi
fi

# Debian's own interpreter, for which python3-venv is installed (not whatever python3
# comes first in root's PATH): a venv any user can run.
PY=${PYTHON:-/usr/bin/python3}
# A venv made from another interpreter (e.g. one under /root) is rebuilt from $PY.
if [[ -f .venv/pyvenv.cfg ]] && ! grep -qx "home = $(dirname "$PY")" .venv/pyvenv.cfg; then
    echo "setup: rebuilding .venv from $PY" >&2
    rm -rf .venv
fi
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.kemu-installed
if [[ ! -f $stamp || setup.cfg -nt $stamp || pyproject.toml -nt $stamp ]]; then
    # Quiet unless it fails (mininet's sdist build prints setuptools deprecation noise).
    if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[dev]'; } >.venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        echo "setup: pip install failed" >&2
        exit 1
    fi
    touch "$stamp"
fi
echo "setup: ok (.venv/bin/kemu)" >&2
