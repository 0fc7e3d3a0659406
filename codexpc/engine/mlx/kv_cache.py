"""K/V for the MLX engine: one sequence's cache, and the pool the next turn takes its prefix from.

Every layer keeps the K/V of every token, the sliding-window layers included: attention reads
only the last `window` keys there, but a later turn may share any prefix of this one (Codex
drops the earlier reasoning after a final answer, so the shared prefix can end thousands of
tokens back), and a ring of `window` keys could not rewind to it. It costs the sliding layers'
half of the K/V memory; the paged engine's prefix cache makes the same choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from codexpc.engine.model_config import ModelConfig

GROW_STEP = 256  # tokens added to a buffer when it is full (mlx-lm's KVCache grows the same way)


class SequenceCache:
    """Every layer's K and V [1, KV, capacity, D] for one sequence; `length` tokens are valid.

    `tokens` are the ids whose K/V the cache holds, in order: what the next prompt is matched
    against.
    """

    def __init__(self, config: ModelConfig, dtype: mx.Dtype) -> None:
        self.config = config
        self.dtype = dtype
        self.length = 0
        self.capacity = 0
        self.tokens: list[int] = []
        self.keys: list[mx.array] = []
        self.values: list[mx.array] = []

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in zip(self.keys, self.values, strict=True))

    def reserve(self, length: int) -> None:
        """Room for `length` tokens, grown in steps of GROW_STEP (the old K/V copied once)."""
        if length <= self.capacity:
            return
        c = self.config
        grown = -(-length // GROW_STEP) * GROW_STEP
        shape = (1, c.num_key_value_heads, grown - self.capacity, c.head_dim)
        # One array a layer: a slice assignment updates the array object itself, so layers
        # must not share one.
        if not self.keys:
            self.keys = [mx.zeros(shape, dtype=self.dtype) for _ in range(c.num_hidden_layers)]
            self.values = [mx.zeros(shape, dtype=self.dtype) for _ in range(c.num_hidden_layers)]
        else:
            self.keys = [mx.concatenate([k, mx.zeros(shape, dtype=self.dtype)], axis=2) for k in self.keys]
            self.values = [mx.concatenate([v, mx.zeros(shape, dtype=self.dtype)], axis=2) for v in self.values]
        self.capacity = grown

    def write(self, layer: int, start: int, k: mx.array, v: mx.array) -> None:  # k, v [1, KV, T, D]
        end = start + k.shape[2]
        assert end <= self.capacity, (end, self.capacity)
        self.keys[layer][..., start:end, :] = k.astype(self.dtype)
        self.values[layer][..., start:end, :] = v.astype(self.dtype)

    def read(self, layer: int, start: int, end: int) -> tuple[mx.array, mx.array]:  # [1, KV, S, D] each
        return self.keys[layer][..., start:end, :], self.values[layer][..., start:end, :]

    def truncate(self, length: int) -> None:
        """Keep the first `length` tokens (a new prompt shares only those); the buffers stay."""
        assert 0 <= length <= self.length
        self.length = length
        del self.tokens[length:]

    def fork(self, length: int) -> SequenceCache:
        """A new cache holding a copy of the first `length` tokens (this one stays as it is)."""
        copy = SequenceCache(self.config, self.dtype)
        copy.reserve(length)
        for layer in range(self.config.num_hidden_layers):
            keys, values = self.read(layer, 0, length)
            copy.write(layer, 0, keys, values)
        copy.length, copy.tokens = length, self.tokens[:length]
        return copy

    def arrays(self) -> list[mx.array]:
        """The buffers, to evaluate with a step's output (so the writes are done, not pending)."""
        return self.keys + self.values


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two id lists."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64))
    return int(diff[0]) if diff.size else n


class PrefixPool:
    """Caches of finished sequences, the most recently used last, within a budget of tokens.

    `take(prompt)` hands out the cache sharing the longest prefix with the prompt, or a fresh
    one. A cache the prompt continues (Codex's next turn) is handed over whole; one it leaves
    part way (another branch of the conversation, a side request on the same instructions) is
    copied up to the shared prefix and stays, so both branches keep their K/V. `give(cache)` puts
    a finished sequence's cache back and drops the least recently used until the pool fits
    `budget_tokens` of capacity.
    """

    def __init__(self, config: ModelConfig, dtype: mx.Dtype, budget_tokens: int) -> None:
        self.config, self.dtype, self.budget_tokens = config, dtype, budget_tokens
        self.entries: list[SequenceCache] = []
        self.queries = 0
        self.hits = 0
        self.hit_tokens = 0

    @property
    def cached_tokens(self) -> int:
        return sum(e.capacity for e in self.entries)

    def take(self, prompt: Sequence[int]) -> tuple[SequenceCache, int]:
        """A cache for `prompt` and how many of its tokens it already holds (at most all but one:
        the last prompt token is always computed, its logits give the first new token)."""
        self.queries += 1
        best, best_len = None, 0
        for entry in self.entries:
            shared = min(common_prefix(entry.tokens, prompt), len(prompt) - 1)
            if shared > best_len:
                best, best_len = entry, shared
        if best is None:
            return SequenceCache(self.config, self.dtype), 0
        self.hits += 1
        self.hit_tokens += best_len
        self.entries.remove(best)
        if best_len < best.length:
            self.entries.append(best)  # the branch the prompt leaves stays, most recently used
            return best.fork(best_len), best_len
        return best, best_len

    def give(self, cache: SequenceCache) -> None:
        if cache.length == 0:
            return
        self.entries.append(cache)
        self.make_room(0)

    def make_room(self, tokens: int) -> None:
        """Drop the least recently used caches until `tokens` more fit beside the others."""
        while self.entries and self.cached_tokens + tokens > self.budget_tokens:
            self.entries.pop(0)

    def clear(self) -> None:
        self.entries.clear()
