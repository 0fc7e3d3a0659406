"""The database schema, versioned: MIGRATIONS[n - 1] takes version n - 1 to n, and the
`schema_migrations` table records each version applied, so a newer daemon upgrades an older
file in place and an older daemon refuses a file newer than it understands."""

from __future__ import annotations

import sqlite3
import time

from codexpc.errors import ConfigError
from codexpc.store.database import transaction

MIGRATIONS: tuple[str, ...] = (
    # 1: responses and their input items.
    """
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,     -- the Response's created_at, Unix seconds
        stored_at REAL NOT NULL,         -- when it was written: the age that eviction reads
        previous_response_id TEXT,       -- the link previous_response_id chains follow
        body TEXT NOT NULL,              -- the Response object, JSON
        size INTEGER NOT NULL            -- bytes of body plus its items: what max_bytes bounds
    );
    CREATE INDEX responses_by_age ON responses (stored_at);
    CREATE TABLE input_items (
        response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,       -- the item's place in the request's input
        item_id TEXT NOT NULL,
        body TEXT NOT NULL,              -- the item as GET .../input_items lists it, JSON
        PRIMARY KEY (response_id, position)
    );
    """,
)

VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the schema to VERSION, each step in its own transaction; returns the version."""
    version = current_version(conn)
    if version > VERSION:
        raise ConfigError(f"{path} has schema version {version}; this codexpc knows up to {VERSION} "
                          "(a newer codexpc wrote it): upgrade, or move the file away")
    for target in range(version + 1, VERSION + 1):
        with transaction(conn):  # a crash mid-migration leaves the previous version whole
            for statement in MIGRATIONS[target - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (target, time.time()))
    return VERSION
