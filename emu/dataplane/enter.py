"""`python -m emu.dataplane.enter NETNS HOSTNAME [--env-file F] [--workdir D] -- ARGV...`

Used for container processes and `kemu exec`: joins the named network namespace and a
fresh UTS namespace with the pod's hostname, then execs (exit code passes through).

--env-file F   JSON {name: value}: the process gets a container's environment instead of
               kemu's: PATH, HOME and TERM from here (a container gets PATH and HOME from
               its image and runtime), HOSTNAME=<hostname> as the runtime sets it, then
               the file's variables (which may override any of those).
--workdir D    chdir to D first when it exists (a missing one is ignored: the image's
               directories are not on this machine).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

from emu.dataplane import netns

USAGE = "usage: python -m emu.dataplane.enter NETNS HOSTNAME [--env-file PATH] [--workdir DIR] -- ARGV...\n"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEPT = ("PATH", "HOME", "TERM")


def parse(argv: list[str]) -> tuple[str, str, str, str, list[str]] | None:
    """(netns, hostname, env file, workdir, command), or None when the usage is wrong."""
    if len(argv) < 2 or "--" not in argv[2:]:
        return None
    name, hostname = argv[0], argv[1]
    sep = argv.index("--", 2)
    opts, cmd = argv[2:sep], argv[sep + 1 :]
    env_file = workdir = ""
    while opts:
        if len(opts) < 2 or opts[0] not in ("--env-file", "--workdir"):
            return None
        if opts[0] == "--env-file":
            env_file = opts[1]
        else:
            workdir = opts[1]
        opts = opts[2:]
    return (name, hostname, env_file, workdir, cmd) if cmd else None


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
    name, hostname, env_file, workdir, cmd = parsed
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
    netns.enter_process(name, hostname or None)
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
