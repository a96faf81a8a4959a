"""`python -m emu.dataplane.enter NETNS HOSTNAME -- ARGV...`: exec ARGV inside a pod.

Used for container processes and `kemu exec`: joins the named network namespace and a
fresh UTS namespace with the pod's hostname, then execs (exit code passes through).
"""

from __future__ import annotations

import os
import sys

from emu.dataplane import netns


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: python -m emu.dataplane.enter NETNS HOSTNAME -- ARGV...\n")
        return 2
    name, hostname, cmd = argv[0], argv[1], argv[3:]
    netns.enter_process(name, hostname or None)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        sys.stderr.write(f"{cmd[0]}: {e.strerror}\n")
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
