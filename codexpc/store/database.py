"""Opening the database: a private folder and file, write-ahead logging, explicit transactions.

WAL with synchronous=FULL: a committed response survives a crash of the process or the machine
(kill -9 mid-write loses at most the transaction being written, never the file). The folder is
made 0700 and the file created 0600 before SQLite opens it; SQLite gives its -wal and -shm files
the database file's permissions, so the conversation never becomes readable by other users.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from codexpc.errors import ConfigError

BUSY_TIMEOUT_MS = 5000  # another process (a daemon being replaced) holding the write lock


def private_folder(folder: Path) -> None:
    """Make `folder` (0700) or check one that exists: ours, a folder, no group or other access."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ConfigError(f"{folder} is not a folder owned by this user; the response store will not use it")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(folder, 0o700)  # ours: close it rather than refuse (an old mkdir under a loose umask)


def private_file(path: Path) -> None:
    """Create `path` 0600 if absent; an existing file must be ours, and is made 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise ConfigError(f"{path} is not a file owned by this user; the response store will not use it") from None
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(path, 0o600)


def connect(path: Path) -> sqlite3.Connection:
    private_folder(path.parent)
    private_file(path)
    # isolation_level=None: no implicit transactions; `transaction()` opens each one itself.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigError(f"{path}: SQLite refused write-ahead logging (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise ConfigError(f"{path} is damaged ({check}); move it away and the daemon starts a new one")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(f"{path} is not a usable SQLite database: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (the write lock taken up front), ROLLBACK on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
