"""Shared test setup: GPU tests skip where there is no CUDA; the Harmony encoding, a tiny checkpoint
and real Codex requests, each made once per run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from openai_harmony import HarmonyEncoding

# Real Codex CLI requests, copied from shared/fixtures (captured with codex 0.169).
CODEX_FIXTURES = Path(__file__).parent / "fixtures" / "codex-0.169"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (GPU figures come from committed benchmark runs)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny random gpt-oss checkpoint (original layout), written once per test run."""
    from codexpc.checkpoint import write_checkpoint
    from codexpc.engine.model_config import TINY

    return write_checkpoint(TINY, "original", tmp_path_factory.mktemp("tiny") / "original", seed=0)


@pytest.fixture(scope="session")
def encoding() -> HarmonyEncoding:
    """gpt-oss's Harmony encoding, loaded once per run."""
    from codexpc.harmony.encoding import load_encoding

    return load_encoding()


def _codex_request(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((CODEX_FIXTURES / name).read_text())
    return body


# The two request bodies are shared by every test that asks: read them, never change them.
@pytest.fixture(scope="session")
def codex_turn1_request() -> dict[str, Any]:
    """Codex's first turn: instructions, its tools, one user message (POST /v1/responses body)."""
    return _codex_request("responses-request-turn1.json")


@pytest.fixture(scope="session")
def codex_turn2_request() -> dict[str, Any]:
    """Codex's second turn: the first turn's input, the model's reasoning and exec_command call, its output."""
    return _codex_request("responses-request-turn2-after-tool-call.json")
