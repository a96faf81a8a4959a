"""`python -m emu.dataplane.enter NETNS HOSTNAME [--env-file F] [--workdir D] [--etc-dir E] -- ARGV...`

Used for container processes and `kemu exec`: joins the named network namespace and a
fresh UTS namespace with the pod's hostname, then execs (exit code passes through).

--env-file F   JSON {name: value}: the process gets a container's environment instead of
               kemu's: PATH, HOME and TERM from here (a container gets PATH and HOME from
               its image and runtime), HOSTNAME=<hostname> as the runtime sets it, then
               the file's variables (which may override any of those).
--etc-dir E    bind-mount E's files (resolv.conf, hosts) over /etc's in a private mount
               namespace (default: /etc/netns/NETNS, as `ip netns exec` does)
--workdir D    chdir to D first when it exists (a missing one is ignored: the image's
               directories are not on this machine).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from emu.dataplane import netns

USAGE = "usage: python -m emu.dataplane.enter NETNS HOSTNAME [--env-file PATH] [--workdir DIR] [--etc-dir DIR] -- ARGV...\n"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEPT = ("PATH", "HOME", "TERM")


@dataclass(frozen=True)
class Invocation:
    netns: str
    hostname: str
    command: list[str]
    env_file: str = ""
    workdir: str = ""
    etc_dir: str = ""


OPTIONS = {"--env-file": "env_file", "--workdir": "workdir", "--etc-dir": "etc_dir"}


def parse(argv: list[str]) -> Invocation | None:
    """What to run where, or None when the usage is wrong."""
    if len(argv) < 2 or "--" not in argv[2:]:
        return None
    sep = argv.index("--", 2)
    opts, cmd = argv[2:sep], argv[sep + 1 :]
    values: dict[str, str] = {}
    while opts:
        if len(opts) < 2 or opts[0] not in OPTIONS:
            return None
        values[OPTIONS[opts[0]]] = opts[1]
        opts = opts[2:]
    return Invocation(argv[0], argv[1], cmd, **values) if cmd else None


def container_environ(hostname: str, extra: dict[str, str], base: Mapping[str, str]) -> dict[str, str]:
    env = {k: base[k] for k in KEPT if k in base}
    env.setdefault("PATH", DEFAULT_PATH)
    if hostname:
        env["HOSTNAME"] = hostname
    env.update(extra)
    return env


def main(argv: list[str]) -> int:
    parsed = parse(argv)
    if parsed is None:
        sys.stderr.write(USAGE)
        return 2
    name, hostname, env_file, workdir, cmd = parsed.netns, parsed.hostname, parsed.env_file, parsed.workdir, parsed.command
    env: dict[str, str] | None = None
    if env_file:
        try:
            with open(env_file, encoding="utf-8") as f:
                extra = json.load(f)
            if not isinstance(extra, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            sys.stderr.write(f"{env_file}: {e}\n")
            return 2
        env = container_environ(hostname, {str(k): str(v) for k, v in extra.items()}, os.environ)
    netns.enter_process(name, hostname or None, parsed.etc_dir or None)
    if workdir and os.path.isdir(workdir):
        os.chdir(workdir)
    try:
        if env is None:
            os.execvp(cmd[0], cmd)
        else:
            os.execvpe(cmd[0], cmd, env)  # looked up on the container's own PATH
    except OSError as e:
        sys.stderr.write(f"{cmd[0]}: {e.strerror}\n")
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
