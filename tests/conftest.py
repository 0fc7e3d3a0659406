"""Shared test setup: GPU tests skip where there is no CUDA; every test gets its own user folders."""

from __future__ import annotations

from typing import Any

import pytest


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
    from codexpc.engine.config import TINY

    return write_checkpoint(TINY, "original", tmp_path_factory.mktemp("tiny") / "original", seed=0)
