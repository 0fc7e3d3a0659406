"""`codexpc smoke` with no daemon running: it builds the tiny checkpoint once and serves it for the run."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

from test_cli_daemon import codexpc, user_env

from codexpc.cli import timeline
from codexpc.cli.link import SseEvent


def test_smoke_builds_the_tiny_checkpoint_once_and_starts_a_daemon(tmp_path: Path) -> None:
    env = user_env(tmp_path)
    result = codexpc(env, "smoke", "--json", "--max-output-tokens", "16", timeout=240)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] and not data["warm"]
    assert "started a daemon for this run (tiny random checkpoint" in data["how"]
    assert data["outcome"] in ("response.completed", "response.incomplete", "response.failed")
    assert data["input_tokens"] > 0 and data["total_s"] > 0
    cached = tmp_path / "cache" / "checkpoints" / "tiny-original"
    assert (cached / "model.safetensors").exists()
    # The daemon it started is gone, and left no socket behind in the user's folder.
    assert codexpc(env, "health").returncode == 5


def test_smoke_keep_leaves_a_warm_daemon_for_the_next_smoke(tmp_path: Path) -> None:
    env = {**user_env(tmp_path), "CODEXPC_PORT": "0"}  # the kept daemon's TCP port: any free one
    first = codexpc(env, "smoke", "--keep", "--engine", "scripted", "--checkpoint", str(tmp_path), timeout=240)
    assert first.returncode == 0, first.stderr
    pid = int(re.search(r"left running \(pid (\d+)\)", first.stdout).group(1))
    try:
        started = time.monotonic()
        second = codexpc(env, "smoke")
        assert second.returncode == 0, second.stderr
        assert "using the running daemon" in second.stdout and "no load" in second.stdout
        assert time.monotonic() - started < 20
    finally:
        os.kill(pid, signal.SIGTERM)


def test_smoke_with_a_wrong_checkpoint_path_exits_4(tmp_path: Path) -> None:
    result = codexpc(user_env(tmp_path), "smoke", "--checkpoint", str(tmp_path / "missing"))
    assert result.returncode == 4
    assert "missing does not exist" in result.stderr


def test_smoke_with_a_broken_checkpoint_reports_the_daemon_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    result = codexpc(user_env(tmp_path), "smoke", "--checkpoint", str(broken), timeout=120)
    assert result.returncode == 4, result.stderr
    assert "exited with code 4" in result.stderr and "no gpt-oss checkpoint found" in result.stderr


def _failed_stream() -> timeline.Timeline:
    line = timeline.Timeline()
    line.add(SseEvent("response.created", {"type": "response.created", "response": {"id": "r"}}, 0.01))
    failed = {"id": "r", "status": "failed", "error": {"code": "invalid_model_output", "message": "noise"}}
    line.add(SseEvent("response.failed", {"type": "response.failed", "response": failed}, 0.5))
    return line


def test_a_failed_response_passes_only_on_random_weights(tmp_path: Path) -> None:
    # Issue 16, item 2: a failure passed only when smoke had started the daemon itself; now the
    # daemon's own checkpoint says it is random, and a real model's failure still fails.
    from codexpc.checkpoint.writer import mark_random
    from codexpc.cli.smoke import SYNTHETIC_MODEL, _verdict, serves_random_weights

    random_ckpt, real_ckpt = tmp_path / "random", tmp_path / "real"
    random_ckpt.mkdir()
    real_ckpt.mkdir()
    mark_random(random_ckpt, "a test")
    assert serves_random_weights({"model": "gpt-oss-20b", "checkpoint": str(random_ckpt)})
    assert serves_random_weights({"model": SYNTHETIC_MODEL, "checkpoint": str(real_ckpt)})
    assert not serves_random_weights({"model": "gpt-oss-20b", "checkpoint": str(real_ckpt)})
    assert not serves_random_weights({"model": "gpt-oss-20b", "checkpoint": None})
    ok, verdict = _verdict(_failed_stream(), random_weights=True)
    assert ok and verdict.startswith("PASS")
    ok, verdict = _verdict(_failed_stream(), random_weights=False)
    assert not ok and "invalid_model_output" in verdict
