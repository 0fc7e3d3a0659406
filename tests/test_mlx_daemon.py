"""A real daemon (subprocess, both listeners) with engine = "mlx" on MLX's CPU build, serving a
streamed /v1/responses request from the tiny random checkpoint; the second turn hits the cache."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("mlx.core", reason="MLX is not installed (pip install 'mlx[cpu]' on Linux)")

from test_daemon import DaemonProcess, sse_events  # noqa: E402

from codexpc.checkpoint import write_checkpoint  # noqa: E402
from codexpc.engine.model_config import TINY  # noqa: E402

TERMINAL = ("response.completed", "response.incomplete", "response.failed")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    checkpoint = write_checkpoint(TINY, "hf", tmp_path_factory.mktemp("tiny-hf") / "hf", seed=0)
    process = DaemonProcess(checkpoint=checkpoint, toml='device = "cpu"')
    text = process.config_path.read_text()
    process.config_path.write_text(text.replace('engine = "scripted"', 'engine = "mlx"'))
    process.start()
    try:
        yield process
    finally:
        process.signal(signal.SIGTERM)
        process.wait_exit()
        process.close()


def stream(daemon: DaemonProcess, body: dict[str, Any]) -> list[dict[str, Any]]:
    with daemon.unix_client() as client, client.stream("POST", "/v1/responses", json=body) as response:
        assert response.status_code == 200, response.read()
        return sse_events(response.iter_lines())


def test_health_names_the_mlx_engine_and_its_queue(daemon: DaemonProcess) -> None:
    with daemon.unix_client() as client:
        health = client.get("/health").json()
    assert health["engine"]["kind"] == "mlx" and health["device"] == "mlx:cpu"
    stats = health["engine"]["stats"]
    assert stats["concurrency"] == 1 and "queued" in stats["scheduling"]
    assert stats["kv_budget_tokens"] > 0


def test_a_streamed_response_and_a_second_turn_from_the_cache(daemon: DaemonProcess) -> None:
    body = {"model": "gpt-oss-20b", "stream": True, "max_output_tokens": 24,
            "instructions": "You are a test.", "input": "Say hello in three words.",
            "reasoning": {"effort": "low"}}
    events = stream(daemon, body)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-1] in TERMINAL, kinds
    usage = events[-1]["response"]["usage"]
    assert usage["input_tokens"] > 20 and usage["input_tokens_details"]["cached_tokens"] == 0
    again = stream(daemon, body)[-1]["response"]["usage"]
    # The same prompt again: all of it but its last token comes from the prefix cache.
    assert again["input_tokens_details"]["cached_tokens"] == usage["input_tokens"] - 1
    assert "mlx engine on mlx:cpu" in daemon.log()
