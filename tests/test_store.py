"""ResponseStore on a real SQLite file: put/get, input items as published (order, limit, after),
delete, eviction by age and size, private permissions, the versioned schema, reopening."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from codexpc.errors import ConfigError, RequestError
from codexpc.store import ResponseStore, StoreConfig
from codexpc.store.schema import VERSION


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def response(rid: str, previous: str | None = None, text: str = "hello") -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": 1_000_000, "status": "completed",
            "previous_response_id": previous,
            "output": [{"type": "message", "id": f"msg_{rid}", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}]}


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def store(tmp_path: Path, clock: Clock) -> Any:
    opened = ResponseStore.open(StoreConfig(folder=tmp_path / "store"), clock=clock)
    yield opened
    opened.close()


def test_put_then_get_and_the_input_as_published_items(store: ResponseStore) -> None:
    store.put(response("resp_1"), "What is 2+2?")
    assert store.get("resp_1") == response("resp_1")
    listed = store.input_items("resp_1")
    assert listed is not None and listed["object"] == "list" and listed["has_more"] is False
    [item] = listed["data"]
    assert item["type"] == "message" and item["role"] == "user" and item["id"].startswith("msg_")
    assert item["content"] == [{"type": "input_text", "text": "What is 2+2?"}]
    assert listed["first_id"] == listed["last_id"] == item["id"]
    assert store.get("resp_missing") is None and store.input_items("resp_missing") is None


def test_input_items_page_by_order_limit_and_after(store: ResponseStore) -> None:
    items = [{"type": "message", "role": "user", "content": f"m{i}", "id": f"msg_{i}"} for i in range(5)]
    store.put(response("resp_1"), items)
    desc = store.input_items("resp_1", limit=2)
    assert desc is not None and [i["id"] for i in desc["data"]] == ["msg_4", "msg_3"] and desc["has_more"]
    after = store.input_items("resp_1", limit=2, after="msg_3")
    assert after is not None and [i["id"] for i in after["data"]] == ["msg_2", "msg_1"]
    asc = store.input_items("resp_1", order="asc", after="msg_2", limit=100)
    assert asc is not None and [i["id"] for i in asc["data"]] == ["msg_3", "msg_4"] and not asc["has_more"]
    for kwargs, param in (({"order": "up"}, "order"), ({"limit": 0}, "limit"), ({"limit": 101}, "limit"),
                          ({"after": "msg_nope"}, "after")):
        with pytest.raises(RequestError) as caught:
            store.input_items("resp_1", **kwargs)
        assert caught.value.param == param


def test_items_keep_their_content_and_get_ids_and_no_null_encrypted_content(store: ResponseStore) -> None:
    store.put(response("resp_1"), [
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "t"}],
         "encrypted_content": None},
        {"type": "function_call", "call_id": "call_1", "name": "exec_command", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
        {"role": "assistant", "content": "done"}])
    listed = store.input_items("resp_1", order="asc")
    assert listed is not None
    reasoning, call, output, message = listed["data"]
    assert "encrypted_content" not in reasoning and reasoning["id"].startswith("rs_")
    assert call["id"].startswith("fc_") and call["status"] == "completed" and output["output"] == "ok"
    assert message["content"] == [{"type": "output_text", "text": "done", "annotations": [], "logprobs": []}]


def test_delete_removes_the_response_and_its_items(store: ResponseStore) -> None:
    store.put(response("resp_1"), "hi")
    assert store.delete("resp_1") is True and store.delete("resp_1") is False
    assert store.get("resp_1") is None and store.stats() == {"stored_responses": 0, "stored_bytes": 0}


def test_old_responses_are_evicted_by_age(tmp_path: Path, clock: Clock) -> None:
    store = ResponseStore.open(StoreConfig(folder=tmp_path, max_age_s=60), clock=clock)
    store.put(response("resp_old"), "hi")
    clock.now += 61
    store.put(response("resp_new"), "hi")  # a put evicts what the bounds no longer allow
    assert store.get("resp_old") is None and store.get("resp_new") is not None
    clock.now += 61
    assert store.evict() == 1 and store.stats()["stored_responses"] == 0
    store.close()


def test_the_oldest_go_first_when_the_size_bound_is_reached(tmp_path: Path, clock: Clock) -> None:
    one = len(str(response("resp_0"))) + 200
    store = ResponseStore.open(StoreConfig(folder=tmp_path, max_bytes=3 * one), clock=clock)
    for i in range(6):
        clock.now += 1
        store.put(response(f"resp_{i}"), "hi")
        assert store.stats()["stored_bytes"] <= 3 * one
    kept = [i for i in range(6) if store.get(f"resp_{i}") is not None]
    assert kept == list(range(6 - len(kept), 6)) and 1 <= len(kept) <= 3 and 5 in kept
    store.close()


def test_the_folder_is_0700_and_the_database_files_0600(store: ResponseStore, tmp_path: Path) -> None:
    store.put(response("resp_1"), "hi")
    folder = tmp_path / "store"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(folder.iterdir())
    assert {f.name for f in files} >= {"responses.sqlite3", "responses.sqlite3-wal"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_loose_folder_of_ours_is_closed(tmp_path: Path) -> None:
    folder = tmp_path / "loose"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    ResponseStore.open(StoreConfig(folder=folder)).close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_wal_and_the_schema_version_are_recorded(store: ResponseStore, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "store" / "responses.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == VERSION
    conn.close()


def test_a_newer_schema_or_a_damaged_file_is_a_clear_error(tmp_path: Path) -> None:
    ResponseStore.open(StoreConfig(folder=tmp_path / "a")).close()
    conn = sqlite3.connect(tmp_path / "a" / "responses.sqlite3")
    conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="schema version"):
        ResponseStore.open(StoreConfig(folder=tmp_path / "a"))
    (tmp_path / "b").mkdir(mode=0o700)
    (tmp_path / "b" / "responses.sqlite3").write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="not a usable SQLite database"):
        ResponseStore.open(StoreConfig(folder=tmp_path / "b"))


def test_stored_responses_survive_closing_and_reopening(tmp_path: Path) -> None:
    config = StoreConfig(folder=tmp_path)
    first = ResponseStore.open(config)
    first.put(response("resp_1"), "hi")
    first.close()
    again = ResponseStore.open(config)
    assert again.get("resp_1") == response("resp_1") and again.input_items("resp_1") is not None
    again.close()


def test_bad_bounds_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_bytes"):
        StoreConfig(folder=tmp_path, max_bytes=0)
    with pytest.raises(ConfigError, match="max_age_s"):
        StoreConfig(folder=tmp_path, max_age_s=0)
