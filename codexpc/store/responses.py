"""ResponseStore: stored Response objects and their input items, in one SQLite file.

One connection and one lock: every write is one BEGIN IMMEDIATE transaction by the one writer
(the daemon), and reads wait for it rather than see half of a put. Each put evicts what the
bounds no longer allow: responses older than max_age_s, then the oldest until the stored bytes
fit in max_bytes. Calls block on disk; the daemon runs them off its event loop.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from codexpc.errors import RequestError
from codexpc.store.config import StoreConfig
from codexpc.store.database import connect, transaction
from codexpc.store.items import input_item_resources
from codexpc.store.schema import migrate

ORDERS = ("asc", "desc")
LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT = 1, 100, 20


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class ResponseStore:
    def __init__(self, conn: sqlite3.Connection, config: StoreConfig, clock: Callable[[], float]) -> None:
        self._conn = conn
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def open(cls, config: StoreConfig, clock: Callable[[], float] = time.time) -> ResponseStore:
        conn = connect(config.path)
        try:
            migrate(conn, str(config.path))
        except BaseException:
            conn.close()
            raise
        return cls(conn, config, clock)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def put(self, response: Mapping[str, Any], request_input: Any) -> None:
        """Keep a finished response and the input it answered (a string or a list of items)."""
        items = input_item_resources(request_input)
        body = _dumps(dict(response))
        rows = [(response["id"], position, item["id"], _dumps(item)) for position, item in enumerate(items)]
        size = len(body.encode()) + sum(len(row[3].encode()) for row in rows)
        with self._lock, transaction(self._conn) as conn:
            conn.execute("DELETE FROM responses WHERE id = ?", (response["id"],))
            conn.execute("INSERT INTO responses (id, created_at, stored_at, previous_response_id, body, size) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (response["id"], int(response.get("created_at") or 0),
                                                      self._clock(), response.get("previous_response_id"), body,
                                                      size))
            conn.executemany("INSERT INTO input_items (response_id, position, item_id, body) VALUES (?, ?, ?, ?)",
                             rows)
            self._evict(conn, keep=str(response["id"]))

    def get(self, response_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT body FROM responses WHERE id = ?", (response_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def all_input_items(self, response_id: str) -> list[dict[str, Any]]:
        """Every input item of one response, in the order it was sent."""
        with self._lock:
            rows = self._conn.execute("SELECT body FROM input_items WHERE response_id = ? ORDER BY position",
                                      (response_id,)).fetchall()
        return [json.loads(row[0]) for row in rows]

    def input_items(self, response_id: str, order: str = "desc", limit: int = LIMIT_DEFAULT,
                    after: str | None = None) -> dict[str, Any] | None:
        """The published list object of GET /v1/responses/{id}/input_items; None: no such response."""
        if order not in ORDERS:
            raise RequestError(f"order must be asc or desc; got {order!r}", param="order")
        if not LIMIT_MIN <= limit <= LIMIT_MAX:
            raise RequestError(f"limit must be between {LIMIT_MIN} and {LIMIT_MAX}; got {limit}", param="limit")
        direction, compare = ("ASC", ">") if order == "asc" else ("DESC", "<")
        with self._lock:
            if self._conn.execute("SELECT 1 FROM responses WHERE id = ?", (response_id,)).fetchone() is None:
                return None
            start = None
            if after is not None:
                found = self._conn.execute("SELECT position FROM input_items WHERE response_id = ? AND item_id = ?",
                                           (response_id, after)).fetchone()
                if found is None:
                    raise RequestError(f"no input item with id {after!r} in response {response_id}", param="after")
                start = found[0]
            where = f" AND position {compare} ?" if start is not None else ""
            args: tuple[Any, ...] = (response_id, start) if start is not None else (response_id,)
            rows = self._conn.execute(f"SELECT body FROM input_items WHERE response_id = ?{where} "  # noqa: S608
                                      f"ORDER BY position {direction} LIMIT ?", (*args, limit + 1)).fetchall()
        data = [json.loads(row[0]) for row in rows[:limit]]
        return {"object": "list", "data": data, "has_more": len(rows) > limit,
                "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

    def delete(self, response_id: str) -> bool:
        with self._lock, transaction(self._conn) as conn:
            return conn.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0

    def evict(self) -> int:
        """Drop what the bounds no longer allow; the number of responses dropped."""
        with self._lock, transaction(self._conn) as conn:
            return self._evict(conn)

    def stats(self) -> dict[str, int]:
        with self._lock:
            count, size = self._conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM responses").fetchone()
        return {"stored_responses": int(count), "stored_bytes": int(size)}

    def _evict(self, conn: sqlite3.Connection, keep: str | None = None) -> int:
        # The response just written stays even if alone it exceeds max_bytes: its client may
        # continue it next; the bound then holds again at the next put.
        cutoff = self._clock() - self.config.max_age_s
        dropped = conn.execute("DELETE FROM responses WHERE stored_at < ? AND id IS NOT ?", (cutoff, keep)).rowcount
        total = conn.execute("SELECT COALESCE(SUM(size), 0) FROM responses").fetchone()[0]
        if total <= self.config.max_bytes:
            return int(dropped)
        for response_id, size in conn.execute("SELECT id, size FROM responses WHERE id IS NOT ? ORDER BY stored_at, "
                                              "rowid", (keep,)).fetchall():
            conn.execute("DELETE FROM responses WHERE id = ?", (response_id,))
            dropped += 1
            total -= size
            if total <= self.config.max_bytes:
                break
        return int(dropped)
