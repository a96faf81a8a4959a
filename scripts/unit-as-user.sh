#!/usr/bin/env bash
# The unit tier as an unprivileged user (nobody): it needs no root and no namespaces.
# Runs in a world-readable copy of the tree, so a checkout under /root works too.
set -euo pipefail
cd "$(dirname "$0")/.."
user=${KEMU_TEST_USER:-nobody}
work=$(mktemp -d /tmp/kemu-unit.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
# The venv comes along: its python links to /usr/bin/python3, its packages are relative.
tar --exclude=.git --exclude=__pycache__ --exclude=.hypothesis --exclude=.pytest_cache -cf - . | tar -C "$work" -xf -
chmod -R a+rX "$work"
cd "$work"
runuser -u "$user" -- env -u PYTHONUNBUFFERED HOME="$work" PYTHONDONTWRITEBYTECODE=1 \
    .venv/bin/python -m pytest -q -m unit -p no:cacheprovider tests
