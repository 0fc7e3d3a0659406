"""Every pinned Codex CLI version (tests/codex_versions.txt) against one daemon on the scripted engine.

Per version: a plain turn, a tool loop, a 3-step loop, a native apply_patch (the freeform tool of
codexpc's model catalog) that writes a file under `--sandbox workspace-write`, `--oss` in Ollama
mode and in LM Studio mode; on a second daemon with `max_in_flight = 1`: a request queued behind
another that completes, and a 503 `server_is_overloaded` that Codex retries.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from codex_support import (
    PATCHED_FILE,
    PATCHED_TEXT,
    VERSIONS,
    CodexDaemon,
    codex_env,
    configure,
    items,
    run_codex,
)

pytestmark = pytest.mark.parametrize("version", VERSIONS)
QUEUE = 3  # the busy daemon's queue


@pytest.fixture(scope="module")
def daemon() -> CodexDaemon:  # type: ignore[misc]
    process = CodexDaemon().start()
    yield process
    process.close()


@pytest.fixture(scope="module")
def busy_daemon() -> CodexDaemon:  # type: ignore[misc]
    # One request at a time, QUEUE more waiting (a Codex turn may send two requests at once: one
    # place in the queue is not enough for it); tokens slow enough to be overtaken.
    process = CodexDaemon(delay_s=0.03, toml=f"[limits]\nmax_in_flight = 1\nqueue_size = {QUEUE}\n").start()
    yield process
    process.close()


def _turn(version: str, daemon: CodexDaemon, tmp_path: Path, prompt: str, *args: str) -> tuple[list[dict], str]:
    assert daemon.port is not None
    configure(tmp_path / "home", daemon.port)
    return run_codex(version, tmp_path / "home", tmp_path / "work", prompt, "-p", "codexpc", *args)


def _completed(events: list[dict], stderr: str) -> None:
    assert events and events[-1]["type"] == "turn.completed", f"{events[-3:]}\n{stderr[-2000:]}"
    assert "Model metadata for" not in stderr, stderr  # the catalog describes the model


def test_plain_turn(version: str, daemon: CodexDaemon, tmp_path: Path) -> None:
    events, stderr = _turn(version, daemon, tmp_path, "PLAIN say hello", "--dangerously-bypass-approvals-and-sandbox")
    _completed(events, stderr)
    assert items(events, "agent_message")[-1]["text"] == "Done after 0 tool calls."
    reasoning = items(events, "reasoning")  # the summary codexpc streams, titled as Codex shows it
    assert reasoning and reasoning[-1]["text"].startswith("**The work is done**")


@pytest.mark.parametrize("prompt, calls", [("TOOL run one command", 1), ("THREE run three commands", 3)])
def test_tool_loops(version: str, daemon: CodexDaemon, tmp_path: Path, prompt: str, calls: int) -> None:
    events, stderr = _turn(version, daemon, tmp_path, prompt, "--dangerously-bypass-approvals-and-sandbox")
    _completed(events, stderr)
    commands = items(events, "command_execution")
    assert len(commands) == calls and all(c["exit_code"] == 0 for c in commands), commands
    assert items(events, "agent_message")[-1]["text"] == f"Done after {calls} tool calls."


def test_native_apply_patch_edits_a_file_in_the_sandbox(version: str, daemon: CodexDaemon, tmp_path: Path) -> None:
    events, stderr = _turn(version, daemon, tmp_path, "PATCH add a file", "--sandbox", "workspace-write")
    _completed(events, stderr)
    assert (tmp_path / "work" / PATCHED_FILE).read_text().strip() == PATCHED_TEXT
    changes = items(events, "file_change")
    assert changes and changes[0]["status"] == "completed", events
    assert items(events, "agent_message")[-1]["text"] == "Done after 1 tool calls."


@pytest.mark.parametrize("mode", ["ollama", "lmstudio"])
def test_oss_mode(version: str, daemon: CodexDaemon, tmp_path: Path, mode: str) -> None:
    assert daemon.port is not None
    home = tmp_path / "home"
    configure(home, daemon.port, oss=mode)
    env = codex_env(home, CODEX_OSS_BASE_URL=f"http://127.0.0.1:{daemon.port}/v1")
    events, stderr = run_codex(version, home, tmp_path / "work", "PLAIN hello", "--oss",
                               "--dangerously-bypass-approvals-and-sandbox", env=env)
    _completed(events, stderr)
    assert items(events, "agent_message")[-1]["text"] == "Done after 0 tool calls."


def _hold(daemon: CodexDaemon, seconds: list[float]) -> None:
    """One streamed request through to its end, timed."""
    started = time.monotonic()
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.port}", timeout=60) as client:
        with client.stream("POST", "/v1/responses", json={"input": "HOLD", "stream": True}) as reply:
            assert reply.status_code == 200
            for _ in reply.iter_bytes():
                pass
    seconds.append(time.monotonic() - started)


def test_a_request_queued_behind_max_in_flight_completes(version: str, busy_daemon: CodexDaemon,
                                                         tmp_path: Path) -> None:
    held: list[float] = []
    holder = threading.Thread(target=_hold, args=(busy_daemon, held))
    holder.start()
    time.sleep(0.3)  # the holder runs; Codex's request waits in the queue
    events, stderr = _turn(version, busy_daemon, tmp_path, "PLAIN queued", "--dangerously-bypass-approvals-and-sandbox")
    holder.join()
    _completed(events, stderr + busy_daemon.log()[-4000:])
    assert held and "admission waited" in busy_daemon.log()


def test_an_overload_503_is_retried(version: str, busy_daemon: CodexDaemon, tmp_path: Path) -> None:
    assert busy_daemon.port is not None
    held: list[float] = []
    threads = [threading.Thread(target=_hold, args=(busy_daemon, held)) for _ in range(1 + QUEUE)]  # all places
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    before = busy_daemon.log().count("admission refused")
    home = tmp_path / "home"
    configure(home, busy_daemon.port, retries=8)
    events, stderr = run_codex(version, home, tmp_path / "work", "PLAIN retried", "-p", "codexpc",
                               "--dangerously-bypass-approvals-and-sandbox")
    for thread in threads:
        thread.join()
    _completed(events, stderr)
    assert busy_daemon.log().count("admission refused") > before, busy_daemon.log()[-3000:]
