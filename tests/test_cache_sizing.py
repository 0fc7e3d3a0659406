"""The KV cache on the CPU: what the machine can spare, and no more than the context needs.

On main (bba8fd2) the 26M-parameter tiny model took 3.5-3.9 GiB of RAM: its cache was a quarter
of the free RAM (2.2-2.9 GiB), with room for 256 sequences of a whole context each.
"""

from __future__ import annotations

import os

import pytest
import torch

from codexpc.engine.model_config import GPT_OSS_20B, TINY
from codexpc.engine.paged import cache_sizing
from codexpc.engine.paged.cache_sizing import CPU_MAX_SEQS, budget_for, derive_budget, kv_bytes_per_token

GIB = 2**30
CPU = torch.device("cpu")


def test_the_tiny_model_takes_megabytes_however_much_ram_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_sizing, "available_ram_bytes", lambda: 64 * GIB)
    budget = budget_for(TINY, CPU, block_size=16, dtype_bytes=4)  # float32 on the CPU
    whole_contexts = (CPU_MAX_SEQS + 1) * TINY.context_length * kv_bytes_per_token(TINY, 4)
    assert budget.kv_bytes <= whole_contexts <= 256 * 2**20
    assert budget.max_num_seqs == CPU_MAX_SEQS
    # Still every sequence of a step can grow to a whole context.
    assert budget.num_tokens >= CPU_MAX_SEQS * TINY.context_length


def test_a_big_model_on_the_cpu_takes_a_share_of_what_is_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_sizing, "available_ram_bytes", lambda: 16 * GIB)
    budget = budget_for(GPT_OSS_20B, CPU, block_size=16)
    assert budget.kv_bytes <= 4 * GIB
    assert budget.num_tokens >= 32768  # a long Codex session still fits


def test_the_gpu_batch_is_unchanged_by_the_context_bound() -> None:
    budget = derive_budget(GPT_OSS_20B, free_bytes=66 * GIB, block_size=16)
    assert budget.max_num_seqs == 256 and budget.num_tokens >= 64 * 8192


def test_available_ram_is_what_the_system_reports() -> None:
    available = cache_sizing.available_ram_bytes()
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available <= total
