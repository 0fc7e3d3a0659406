"""The plain model's KV cache of one sequence: every layer's keys and values in one contiguous
tensor, grown as the sequence grows (the paged engine's block cache is paged/paged_model.py's).

Every layer keeps every position, the sliding-window layers included: attention reads only the
window's tail of them, and keeping all of them lets a later turn reuse the whole prefix.
"""

from __future__ import annotations

import torch

from codexpc.engine.model_config import ModelConfig

GROWTH_QUANTUM = 256  # tokens; capacity is a multiple of this


class SequenceKV:
    """Keys and values [layers, capacity, kv_heads, head_dim], `length` positions filled."""

    def __init__(
        self, config: ModelConfig, device: torch.device, dtype: torch.dtype, capacity: int = GROWTH_QUANTUM
    ) -> None:
        self.config = config
        self.device = device
        self.dtype = dtype
        self.length = 0
        self._k = self._alloc(_round_up(max(capacity, 1)))
        self._v = self._alloc(self._k.shape[1])

    @property
    def capacity(self) -> int:
        return self._k.shape[1]

    def nbytes(self) -> int:
        return self._k.numel() * self._k.element_size() * 2

    def reserve(self, length: int) -> None:
        """Make room for `length` positions in all; doubles so appends stay amortised O(1)."""
        if length <= self.capacity:
            return
        # Double, but never past the context window unless asked to.
        capacity = _round_up(min(max(length, 2 * self.capacity), max(length, self.config.context_length)))
        k, v = self._alloc(capacity), self._alloc(capacity)
        k[:, : self.length] = self._k[:, : self.length]
        v[:, : self.length] = self._v[:, : self.length]
        self._k, self._v = k, v

    def write(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k, v [T, kv_heads, head_dim] at positions start .. start+T-1 of one layer."""
        end = start + k.shape[0]
        assert end <= self.capacity, (end, self.capacity)
        self._k[layer, start:end] = k
        self._v[layer, start:end] = v

    def read(self, layer: int, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values [end-start, kv_heads, head_dim] of one layer (views, no copy)."""
        return self._k[layer, start:end], self._v[layer, start:end]

    def truncate(self, length: int) -> None:
        """Forget positions from `length` on (the memory stays reserved)."""
        assert 0 <= length <= self.length
        self.length = length

    def _alloc(self, capacity: int) -> torch.Tensor:
        c = self.config
        shape = (c.num_hidden_layers, capacity, c.num_key_value_heads, c.head_dim)
        return torch.empty(shape, device=self.device, dtype=self.dtype)


def _round_up(n: int) -> int:
    return -(-n // GROWTH_QUANTUM) * GROWTH_QUANTUM
