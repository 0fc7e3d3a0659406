"""`codexpc logs`: the daemon's log, from the journal or the log file, whichever is in use."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from typing import Any

from codexpc import logs
from codexpc.cli.output import say
from codexpc.errors import CodexpcError
from codexpc.service import systemd

POLL_S = 0.5


def register(commands: Any) -> None:
    p = commands.add_parser(
        "logs",
        help="show the daemon's log",
        description="Print the daemon's log: the journal when the systemd user service runs it, "
        f"else the rotating file {logs.log_file()}.",
    )
    p.add_argument("--since", metavar="WHEN", help="10m, 2h, 1d, or 'YYYY-MM-DD HH:MM' (default: everything)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    p.add_argument("--source", choices=("auto", "journal", "file"), default="auto", help="where to read (default auto)")
    p.add_argument("--pid", type=int, metavar="PID",
                   help="only the lines of the daemon with this process id (each line shows its pid)")
    p.set_defaults(run=run)


def choose_source(requested: str) -> str:
    """The journal if the systemd service is installed and a user manager runs; else the file."""
    if requested != "auto":
        return requested
    journal_usable = shutil.which("journalctl") is not None and systemd.manager_problem() is None
    return "journal" if journal_usable and systemd.unit_path().exists() else "file"


def _from_journal(args: argparse.Namespace) -> int:
    if shutil.which("journalctl") is None:
        raise CodexpcError("journalctl is not installed; try --source file")
    since = logs.journal_since(args.since) if args.since else None
    try:
        return subprocess.call(systemd.logs_command(since, args.follow, args.pid))
    except KeyboardInterrupt:
        return 0


def _from_file(args: argparse.Namespace) -> int:
    path = logs.log_file()
    if not path.exists():
        raise CodexpcError(
            f"no log file at {path}: the daemon has not run here yet, or it logs to the journal "
            f"(journalctl --user -u {systemd.UNIT})"
        )
    since = logs.parse_since(args.since) if args.since else None
    selector = logs.Selector(since, args.pid)
    for line in logs.read_file_since(path, since, selector=selector):
        say(line)
    if not args.follow:
        return 0
    follower = logs.Follower(path)
    follower.start_at_end()
    try:
        while True:
            for line in follower.poll():
                if selector.keep(line):
                    say(line)
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        return 0


def run(args: argparse.Namespace) -> int:
    if args.since:
        logs.parse_since(args.since)  # a bad value is a ConfigError (exit 2) on either source
    return _from_journal(args) if choose_source(args.source) == "journal" else _from_file(args)
