"""How many tokens of K/V the MLX engine keeps: from the memory free once the weights are loaded.

On Apple Silicon the GPU and the CPU share one memory; Metal's "recommended working set" is how
much of it the GPU may keep resident (about three quarters of it on most Macs), and the weights
already hold their part. On a CPU (MLX's CPU build) the budget is a quarter of the free RAM, as
the paged engine takes on a CPU. The K/V of every layer is kept for every token (kv_cache.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import mlx.core as mx

from codexpc.engine.model_config import ModelConfig

log = logging.getLogger(__name__)

HEADROOM_FRACTION = 0.10  # of the free memory: a prefill chunk's activations, the allocator's slack
# Below this the engine still starts (a Mac that swaps is slow, not broken) and says so.
MIN_TOKENS = 8192


@dataclass(frozen=True)
class KVBudget:
    tokens: int  # K/V of this many tokens, over every cached and running sequence
    bytes_per_token: int
    free_bytes: int  # what was measured

    @property
    def nbytes(self) -> int:
        return self.tokens * self.bytes_per_token


def kv_bytes_per_token(config: ModelConfig, dtype_bytes: int) -> int:
    return 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * dtype_bytes


def derive_budget(config: ModelConfig, free_bytes: int, dtype_bytes: int) -> KVBudget:
    per_token = kv_bytes_per_token(config, dtype_bytes)
    tokens = int(free_bytes * (1 - HEADROOM_FRACTION)) // per_token
    if tokens < MIN_TOKENS:
        log.warning("%.2f GiB free after the weights holds %d tokens of K/V; keeping %d anyway "
                    "(the system may swap)", free_bytes / 2**30, max(tokens, 0), MIN_TOKENS)
        tokens = MIN_TOKENS
    return KVBudget(tokens, per_token, free_bytes)


def free_bytes(on_metal: bool) -> int:
    """Memory the K/V may take now, with the weights loaded."""
    if on_metal:
        info = mx.device_info()
        total = int(info.get("memory_size", 0))
        ceiling = max(int(info.get("max_recommended_working_set_size", 0)), total * 3 // 4)
        return max(0, ceiling - int(mx.get_active_memory()))
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError):  # macOS has no SC_AVPHYS_PAGES: a quarter of the whole memory
        return int(mx.device_info().get("memory_size", 0)) // 4
