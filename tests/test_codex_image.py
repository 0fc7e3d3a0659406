"""`codex exec --image FILE` against codexpc: Codex shows the error that names the image, the turn
ends, nothing is silently dropped (codexpc/harmony/images.py). Every pinned Codex version, with
codexpc's model catalog, where Codex itself swaps the image for a note."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from codex_support import VERSIONS, CodexDaemon, configure, run_codex

# A 1x1 PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def daemon() -> Iterator[CodexDaemon]:
    process = CodexDaemon().start()
    yield process
    process.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_an_image_gets_an_error_codex_shows(version: str, daemon: CodexDaemon, tmp_path: Path) -> None:
    assert daemon.port is not None
    configure(tmp_path / "home", daemon.port)
    image = tmp_path / "shot.png"
    image.write_bytes(PNG)
    # The prompt before --image: the flag takes every value after it.
    events, stderr = run_codex(version, tmp_path / "home", tmp_path / "work", "PLAIN what is in the picture?",
                               "-p", "codexpc", "--image", str(image))
    assert events and events[-1]["type"] == "turn.failed", f"{events[-3:]}\n{stderr[-2000:]}"
    message = events[-1]["error"]["message"]
    assert "reads text only" in message and f"[Image #1] ({image})" in message, message
    assert "unsupported_content" in message
    assert not [e for e in events if e["type"] == "item.completed" and e["item"]["type"] == "agent_message"]
