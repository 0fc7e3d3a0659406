"""Shared test setup: GPU tests skip where there is no CUDA; every test gets its own user folders."""

from __future__ import annotations

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
