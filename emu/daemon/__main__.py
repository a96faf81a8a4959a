"""The detached daemon: `python -m emu.daemon FILE --report-fd N [--ready-timeout S]`.

Reports on fd N, one line each: `PROGRESS phase done total`, then `READY <json list of
unready pods>` or `ERROR <exit code> <message>`; then it closes N, sends its output to
/run/kemu/<cluster>/daemon.log and serves until `kemu down` or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from emu.config import load_cluster_file
from emu.daemon.host import HostedCluster
from emu.errors import KemuError


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m emu.daemon")
    ap.add_argument("file")
    ap.add_argument("--report-fd", type=int, required=True)
    ap.add_argument("--ready-timeout", type=float, default=120.0)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    report = os.fdopen(args.report_fd, "w", buffering=1)
    # Until READY our stderr is the user's terminal: warnings only; then INFO to the log.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def progress(phase: str, done: int, total: int) -> None:
        # Only bring-up is reported to `kemu up -d`; later changes have their own caller.
        if not report.closed:
            report.write(f"PROGRESS {phase} {done} {total}\n")

    try:
        config = load_cluster_file(args.file)
        hosted = HostedCluster(config, progress)
        unready = hosted.start(args.ready_timeout)
    except KemuError as e:
        report.write(f"ERROR {e.exit_code} {json.dumps(str(e))}\n")
        return e.exit_code
    except BaseException as e:  # noqa: BLE001 - report, then exit non-zero
        report.write(f"ERROR 1 {json.dumps(f'{type(e).__name__}: {e}')}\n")
        return 1
    # From now on nobody reads our stdout/stderr: everything goes to the log file.
    log_path = os.path.join(hosted.cluster.record.dir, "daemon.log")
    try:
        logf = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as e:
        # The record directory went while we came up: `kemu clean` (which takes every
        # cluster down) ran meanwhile. Say so in one line and unwind what is left.
        report.write(
            f"ERROR 1 {json.dumps(f'cluster {hosted.cluster.name}: cannot open {log_path}: {e.strerror} (was `kemu clean` run while it came up?)')}\n"
        )
        try:
            hosted.stop()
        except Exception as down_error:  # noqa: BLE001 - the error above is the one to report
            logging.getLogger("emu.daemon").warning("taking cluster %s down: %s", hosted.cluster.name, down_error)
        return 1
    os.dup2(logf, 1)
    os.dup2(logf, 2)
    os.close(logf)
    if not args.verbose:
        logging.getLogger().setLevel(logging.INFO)
    report.write(f"READY {json.dumps(unready)}\n")
    report.close()
    try:
        hosted.wait_for_signal()
    finally:
        hosted.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
