"""The one exception tree of kemu.

KemuError
├── ValidationError   bad input (CLI exit code 2); carries every Problem found
├── NotFoundError     a named object or cluster does not exist (exit code 2)
├── CommandError      a subprocess failed (command, namespace, stderr)
├── DataplaneError    a kernel operation failed (netlink, netns, sockets)
└── DaemonError       the control socket could not be reached or answered badly
"""

from __future__ import annotations

from dataclasses import dataclass


class KemuError(Exception):
    """Base of every error kemu raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (file, path) and what."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file + (f": {self.path}" if self.path else "")
        return f"{where}: {self.message}"


class ValidationError(KemuError):
    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class NotFoundError(KemuError):
    exit_code = 2


class CommandError(KemuError):
    def __init__(self, argv: list[str], returncode: int | None, stderr: str, netns: str | None = None):
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        self.netns = netns
        where = f" in netns {netns}" if netns else ""
        status = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(f"command {' '.join(argv)!r}{where} {status}: {stderr.strip()}")


class DataplaneError(KemuError):
    pass


class DaemonError(KemuError):
    pass
