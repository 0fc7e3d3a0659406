"""The gpt-oss transformer as MLX modules, one sequence at a time (batch 1).

Parameter names are the canonical checkpoint names (codexpc/engine/model.py's, the `original/`
layout), so a checkpoint loads by name. The maths follows that reference module line for line;
each gpt-oss quirk has its comment where it happens. Why these are our modules and not mlx-lm's
`gpt_oss.Model` (docs/mlx.md): mlx-lm's YaRN rounds the ramp's ends to integers (gpt-oss's does
not), its sliding-window layers keep a ring of 128 keys (a prefix cache must rewind to any
point of the previous turn), and it splits gate and up into two quantized matmuls.

Shapes: T = new tokens, S = keys attended, H = hidden, V = vocabulary, D = head dim,
HQ = query heads, KV = key/value heads, E = experts, k = experts per token, I = expert width.
"""

from __future__ import annotations

import math
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from codexpc.engine.mlx.kv_cache import SequenceCache
from codexpc.engine.model import SWIGLU_ALPHA, yarn_inv_freq
from codexpc.engine.model_config import ModelConfig

# Routes ((token, expert) pairs) from which the tokens are sorted by expert before the expert
# matmuls: each expert's rows are then contiguous (mlx-lm sorts from the same count).
SORT_MIN_ROUTES = 64


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.scale = mx.ones((dim,))

    def __call__(self, x: mx.array) -> mx.array:  # [1, T, H]
        return mx.fast.rms_norm(x, self.scale, self.eps)


class Rope(nn.Module):
    """YaRN RoPE with gpt-oss's frequencies (the reference's `yarn_inv_freq`, not rounded)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        inv_freq, self._concentration = yarn_inv_freq(config)
        self._dims = config.head_dim
        # mx.fast.rope takes the periods: the angle of position p is p / period.
        self._periods = mx.array((1.0 / inv_freq).numpy())
        self.freeze()

    def __call__(self, x: mx.array, offset: int) -> mx.array:  # [1, heads, T, D]
        # gpt-oss quirk: YaRN's concentration scales cos and sin, i.e. the rotated vector.
        x = x * self._concentration
        # Halves of D pair up (traditional=False), as in the reference's apply_rotary.
        return mx.fast.rope(x, self._dims, traditional=False, base=None, scale=1.0, offset=offset,
                            freqs=self._periods)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        c = config
        self.layer = layer
        self.heads, self.kv_heads, self.head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.window = c.sliding_window if c.is_sliding(layer) else 0
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.qkv = nn.Linear(c.hidden_size, c.head_dim * (c.num_attention_heads + 2 * c.num_key_value_heads))
        self.sinks = mx.zeros((c.num_attention_heads,))
        self.out = nn.Linear(c.head_dim * c.num_attention_heads, c.hidden_size)

    def __call__(self, x: mx.array, cache: SequenceCache, start: int, rope: Rope) -> mx.array:
        n, d = x.shape[1], self.head_dim
        qkv = self.qkv(self.norm(x))  # [1, T, (HQ + 2 KV) * D]: q heads, then k heads, then v heads
        q_end, k_end = self.heads * d, (self.heads + self.kv_heads) * d
        q = qkv[..., :q_end].reshape(1, n, self.heads, d).transpose(0, 2, 1, 3)  # [1, HQ, T, D]
        k = qkv[..., q_end:k_end].reshape(1, n, self.kv_heads, d).transpose(0, 2, 1, 3)  # [1, KV, T, D]
        v = qkv[..., k_end:].reshape(1, n, self.kv_heads, d).transpose(0, 2, 1, 3)
        q, k = rope(q, start), rope(k, start)
        cache.write(self.layer, start, k, v)
        # A windowed layer needs only the keys the first new query can still see.
        k_start = max(0, start - self.window + 1) if self.window else 0
        keys, values = cache.read(self.layer, k_start, start + n)  # [1, KV, S, D]
        # Query head h reads key/value head h // (HQ / KV), as the reference's [KV, QM] split.
        # gpt-oss quirk: one learned sink logit per head, an extra softmax column worth zero.
        attn = mx.fast.scaled_dot_product_attention(
            q, keys, values, scale=1.0 / math.sqrt(d), mask=_mask(start, n, k_start, self.window), sinks=self.sinks
        )  # [1, HQ, T, D]
        return x + self.out(attn.transpose(0, 2, 1, 3).reshape(1, n, -1))


def _mask(q_start: int, n: int, k_start: int, window: int) -> mx.array | None:
    """[T, S] True where query q_start+i may see key k_start+j; None when it sees every key."""
    if n == 1:
        return None  # the keys read are exactly those the one query sees
    q_pos = mx.arange(q_start, q_start + n)[:, None]
    k_pos = mx.arange(k_start, q_start + n)[None, :]
    allowed = k_pos <= q_pos  # causal
    if window:
        # gpt-oss quirk: the sliding window (even layers) is exactly `window` positions wide.
        allowed = allowed & (k_pos > q_pos - window)
    return allowed


class MXFP4Weight(nn.Module):
    """Expert weights kept MXFP4 as MLX packs them: `blocks` [E, rows, cols/8] u32 (eight e2m1
    codes a word, the checkpoint's bytes reinterpreted: low nibble first), `scales` [E, rows,
    cols/32] u8 (e8m0, the checkpoint's own)."""

    def __init__(self, experts: int, rows: int, cols: int) -> None:
        super().__init__()
        self.blocks = mx.zeros((experts, rows, cols // 8), dtype=mx.uint32)
        self.scales = mx.zeros((experts, rows, cols // 32), dtype=mx.uint8)

    def gather_matmul(self, x: mx.array, experts: mx.array, sorted_indices: bool) -> mx.array:
        """x [..., 1, cols] @ W[experts].T -> [..., 1, rows]."""
        return mx.gather_qmm(x, self.blocks, self.scales, None, rhs_indices=experts, transpose=True,
                             group_size=32, bits=4, mode="mxfp4", sorted_indices=sorted_indices)


def swiglu(h: mx.array, limit: float, alpha: float = SWIGLU_ALPHA) -> mx.array:
    """[..., 2I] -> [..., I]."""
    # gpt-oss quirk: gate and up are interleaved (even, odd columns), not two halves.
    gate, up = h[..., 0::2], h[..., 1::2]
    # gpt-oss quirk: the gate is clamped above only, the up projection on both sides.
    gate = mx.minimum(gate, limit)
    up = mx.clip(up, -limit, limit)
    # gpt-oss quirk: sigmoid with gain alpha, and (up + 1) rather than up.
    return gate * mx.sigmoid(alpha * gate) * (up + 1)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config
        self.k, self.limit = c.experts_per_token, c.swiglu_limit
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.gate = nn.Linear(c.hidden_size, c.num_experts)
        # mlp1 rows interleave gate and up (row 2j gate j, row 2j+1 up j): one matmul for both.
        self.mlp1_weight = MXFP4Weight(c.num_experts, 2 * c.intermediate_size, c.hidden_size)
        self.mlp1_bias = mx.zeros((c.num_experts, 2 * c.intermediate_size))
        self.mlp2_weight = MXFP4Weight(c.num_experts, c.hidden_size, c.intermediate_size)
        self.mlp2_bias = mx.zeros((c.num_experts, c.hidden_size))

    def __call__(self, x: mx.array) -> mx.array:  # [1, T, H]
        t = self.norm(x)
        logits = self.gate(t)  # [1, T, E]
        chosen = mx.argpartition(-logits, kth=self.k - 1, axis=-1)[..., : self.k]  # [1, T, k]
        # gpt-oss quirk: softmax over the k chosen logits only, not over all experts.
        weights = mx.softmax(mx.take_along_axis(logits, chosen, axis=-1).astype(mx.float32), axis=-1)
        y = self._experts(t, chosen)  # [1, T, k, H]
        return x + (y.astype(mx.float32) * weights[..., None]).sum(axis=-2).astype(x.dtype)

    def _experts(self, t: mx.array, chosen: mx.array) -> mx.array:
        """t [1, T, H], chosen [1, T, k] -> each chosen expert's output [1, T, k, H]."""
        x = t[:, :, None, None, :]  # [1, T, 1, 1, H]: one row per (token, slot) after the gather
        idx, order = chosen, None
        if chosen.size >= SORT_MIN_ROUTES:  # many tokens: group the routes by expert
            flat = chosen.flatten()
            order = mx.argsort(flat)
            idx = flat[order]  # [R]
            x = t.reshape(-1, 1, t.shape[-1])[order // self.k]  # [R, 1, H]
        h = self.mlp1_weight.gather_matmul(x, idx, order is not None).squeeze(-2) + self.mlp1_bias[idx]
        h = swiglu(h, self.limit)  # [..., I]
        y = self.mlp2_weight.gather_matmul(h[..., None, :], idx, order is not None).squeeze(-2)
        y = y + self.mlp2_bias[idx]  # [1, T, k, H] or, sorted, [R, H]
        if order is None:
            return y
        return y[mx.argsort(order)].reshape(*chosen.shape, -1)


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        self.attn = Attention(config, layer)
        self.mlp = MLP(config)

    def __call__(self, x: mx.array, cache: SequenceCache, start: int, rope: Rope) -> mx.array:
        return self.mlp(self.attn(x, cache, start, rope))


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config
        self.config = config
        self.rope = Rope(config)
        self.embedding = nn.Embedding(c.vocab_size, c.hidden_size)
        self.block = [Block(config, n) for n in range(c.num_hidden_layers)]
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.unembedding = nn.Linear(c.hidden_size, c.vocab_size, bias=False)

    def __call__(self, tokens: mx.array, cache: SequenceCache, all_logits: bool = False) -> mx.array:
        """tokens [T] appended at cache.length -> fp32 logits [T, V] (all_logits) or [1, V] (the last)."""
        start, n = cache.length, tokens.shape[0]
        cache.reserve(start + n)
        x = self.embedding(tokens)[None]  # [1, T, H]
        for block in self.block:
            x = block(x, cache, start, self.rope)
        cache.length = start + n
        x = x if all_logits else x[:, -1:]
        return self.unembedding(self.norm(x))[0].astype(mx.float32)  # [T or 1, V]


def parameter_shapes(model: Transformer) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Every loadable parameter: canonical name -> (shape, dtype)."""
    from mlx.utils import tree_flatten

    flat: list[tuple[str, Any]] = tree_flatten(model.parameters())  # type: ignore[assignment]
    return {name: (tuple(a.shape), a.dtype) for name, a in flat}
