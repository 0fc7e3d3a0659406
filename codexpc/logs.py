"""Where the daemon's log goes, and how `codexpc logs` reads it back.

Under systemd (JOURNAL_STREAM is set) records go to stderr with a syslog priority prefix, and
the journal stores them with their level and timestamp. Anywhere else they go to a rotating file
in settings.state_dir() (launchd included), and to stderr as well: everything on a terminal,
warnings and errors elsewhere.

Every daemon of a user writes the same file (the service, a `codexpc serve` by hand, the
private daemons of `codexpc smoke`), so each line carries its process id after the time:
`2026-12-04 12:41:12.409 [4242] INFO codexpc.daemon: ...`; `codexpc logs --pid 4242` keeps
one daemon's lines (the journal records the pid itself).
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from codexpc import settings
from codexpc.errors import ConfigError

ENV_JOURNAL_STREAM = "JOURNAL_STREAM"  # set by systemd when stderr is connected to the journal
LOG_NAME = "codexpc.log"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 3  # codexpc.log.1 .. .3: at most 40 MiB of history
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
FILE_FORMAT = "%(asctime)s.%(msecs)03d [%(process)d] %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"  # the journal adds time and host

Sink = Literal["journal", "file"]


def log_file() -> Path:
    return settings.state_dir() / LOG_NAME


def under_journal() -> bool:
    return settings.env(ENV_JOURNAL_STREAM) is not None


class _JournalFormatter(logging.Formatter):
    """Prefix each line with `<N>` so journald records the level (sd-daemon(3) convention)."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        priority = self.PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def setup(level: str = "info", *, sink: Sink | None = None) -> str:
    """Configure the root logger once for a daemon process. Returns where the log goes."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.setLevel(level.upper())
    chosen: Sink = sink or ("journal" if under_journal() else "file")
    if chosen == "journal":
        journal = logging.StreamHandler(sys.stderr)
        journal.setFormatter(_JournalFormatter(JOURNAL_FORMAT))
        root.addHandler(journal)
        return "journal"
    path = log_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    rotating = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    rotating.setFormatter(logging.Formatter(FILE_FORMAT, TIME_FORMAT))
    root.addHandler(rotating)
    # stderr too: all of it on a terminal (a foreground `codexpc serve`); elsewhere (a script,
    # launchd's log file) warnings and errors only, so "cannot start: port in use" is never silent.
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(logging.Formatter(FILE_FORMAT, "%H:%M:%S"))
    terminal.setLevel(logging.NOTSET if sys.stderr.isatty() else logging.WARNING)
    root.addHandler(terminal)
    return str(path)


# --- reading -------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.\d+)?(?: \[(\d+)\])?")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`10m`, `2h`, `1d`, `30s` ago, or an absolute `YYYY-MM-DD HH:MM[:SS]` (local time)."""
    now = now or datetime.now()
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--since {text!r}: use a duration like 10m, 2h, 1d or a time like '2026-11-25 19:40'") from None


def journal_since(text: str) -> str:
    """The same moment in journalctl's syntax (`-10min` style, or the absolute time)."""
    match = _DURATION.match(text.strip())
    if match:
        return f"-{int(float(match.group(1)) * _UNITS[match.group(2)])}s"
    return parse_since(text).strftime(TIME_FORMAT)


def _files_oldest_first(path: Path) -> list[Path]:
    backups = [path.with_name(f"{path.name}.{i}") for i in range(BACKUPS, 0, -1)]
    return [p for p in (*backups, path) if p.exists()]


@dataclass
class Selector:
    """Which lines to show: logged at or after `since`, by process `pid` (None: any). A line
    without a timestamp (a traceback) goes with the record before it."""

    since: datetime | None = None
    pid: int | None = None
    _keep: bool = True  # the decision for the record being read

    def __post_init__(self) -> None:
        self._keep = self.since is None and self.pid is None

    def keep(self, line: str) -> bool:
        stamp = _STAMP.match(line)
        if stamp:
            late = self.since is None or datetime.strptime(stamp.group(1), TIME_FORMAT) >= self.since
            # A line of a version that wrote no pid matches no --pid.
            ours = self.pid is None or stamp.group(2) == str(self.pid)
            self._keep = late and ours
        return self._keep


def read_file_since(path: Path, since: datetime | None, pid: int | None = None,
                    selector: Selector | None = None) -> Iterator[str]:
    """Lines logged at or after `since` (by `pid` if given), oldest file first; pass `selector`
    to keep its state for the lines that follow (`--follow`)."""
    selector = selector or Selector(since, pid)
    for file in _files_oldest_first(path):
        with file.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if selector.keep(line):
                    yield line.rstrip("\n")


@dataclass
class Follower:
    """Yield lines appended to a log file, across rotation (the file is renamed, a new one made)."""

    path: Path
    position: int = 0
    inode: int | None = None

    def start_at_end(self) -> None:
        if self.path.exists():
            stat = self.path.stat()
            self.position, self.inode = stat.st_size, stat.st_ino

    def poll(self) -> list[str]:
        if not self.path.exists():
            return []
        stat = self.path.stat()
        if stat.st_ino != self.inode or stat.st_size < self.position:
            self.position, self.inode = 0, stat.st_ino  # rotated or truncated: read the new file
        with self.path.open("rb") as f:
            f.seek(self.position)
            chunk = f.read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return []  # a partial line: wait for its end
        self.position += end + 1
        return chunk[:end].decode("utf-8", errors="replace").split("\n")
