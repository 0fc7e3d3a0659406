"""The gpt-oss transformer as plain PyTorch modules: the reference path of every faster engine.

Module and parameter names are the canonical checkpoint names (the `original/` layout), so a
checkpoint loads by name: `embedding.weight`, `block.{n}.attn.qkv.weight`,
`block.{n}.mlp.mlp1_weight.blocks`, `norm.scale`, `unembedding.weight`, ...

Shapes: T = new tokens, S = keys attended, H = hidden size, V = vocabulary, D = head dim,
KV = key/value heads, QM = query heads per key/value head, E = experts, I = expert width.
The two maths seams a fast engine replaces are `attention_reference` and the experts
(kernels/moe_mxfp4.moe_reference, routed by kernels/routing.route_reference: one reference each,
which the paged engine's reference path and the kernel tests run too).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from codexpc.engine.kernels.moe_mxfp4 import SWIGLU_ALPHA, ExpertWeights, moe_reference, swiglu
from codexpc.engine.kernels.routing import route_reference
from codexpc.engine.model_config import ModelConfig
from codexpc.engine.mxfp4 import BYTES_PER_BLOCK, VALUES_PER_BLOCK, dequantize
from codexpc.engine.sequence_kv import SequenceKV

__all__ = ["SWIGLU_ALPHA", "swiglu"]  # the experts' maths, kept importable from here for the trainer

ATTENTION_SCORE_BUDGET = 2**28  # score elements per query chunk (1 GiB in fp32)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, device: torch.device | None = None) -> None:
        super().__init__()
        self.eps = eps
        # The scale stays fp32 whatever the compute dtype, as in the checkpoints' reference.
        self.scale = nn.Parameter(torch.ones(dim, device=device, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, H] -> [T, H]
        t = x.float()
        t = t * torch.rsqrt(t.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (t * self.scale).to(x.dtype)


def yarn_inv_freq(config: ModelConfig) -> tuple[torch.Tensor, float]:
    """YaRN: inverse frequencies [D/2] and the concentration that scales cos and sin."""
    d_half = config.head_dim / 2
    freq = config.rope_theta ** (torch.arange(0, config.head_dim, 2, dtype=torch.float32) / config.head_dim)
    factor = config.rope_scaling_factor
    if factor <= 1.0:
        return 1.0 / freq, 1.0
    # gpt-oss quirk: attention "concentration" 0.1 ln(factor) + 1 on both cos and sin (so q.k gets it squared).
    concentration = 0.1 * math.log(factor) + 1.0
    base_log = math.log(config.rope_theta)
    ctx = config.initial_context_length
    low = d_half * math.log(ctx / (config.rope_ntk_beta * 2 * math.pi)) / base_log
    high = d_half * math.log(ctx / (config.rope_ntk_alpha * 2 * math.pi)) / base_log
    # No truncation to integers (gpt-oss's YaRN); clamped to the valid range for tiny head dims.
    low, high = max(low, 0.0), min(high, config.head_dim - 1.0)
    interpolation = 1.0 / (factor * freq)
    extrapolation = 1.0 / freq
    ramp = ((torch.arange(int(d_half), dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    mask = 1 - ramp  # 1: keep the original frequency (high frequencies), 0: interpolate
    return interpolation * (1 - mask) + extrapolation * mask, concentration


Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin [T, D/2] of the new tokens' positions


class Rotary:
    """YaRN RoPE: cos/sin of given positions, on the device they are needed on."""

    def __init__(self, config: ModelConfig) -> None:
        self.inv_freq, self.concentration = yarn_inv_freq(config)
        self._on_device: dict[torch.device, torch.Tensor] = {}

    def cos_sin(self, start: int, length: int, device: torch.device) -> Rope:
        if device not in self._on_device:
            self._on_device[device] = self.inv_freq.to(device)
        positions = torch.arange(start, start + length, dtype=torch.float32, device=device)
        freqs = positions[:, None] * self._on_device[device][None, :]  # [T, D/2]
        return freqs.cos() * self.concentration, freqs.sin() * self.concentration


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [T, heads, D] rotated by position; halves of D pair up (not interleaved pairs)."""
    x1, x2 = torch.chunk(x.float(), 2, dim=-1)  # [T, heads, D/2] each
    cos, sin = cos[:, None, :], sin[:, None, :]  # [T, 1, D/2]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)


def attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sinks: torch.Tensor, q_start: int, k_start: int, window: int
) -> torch.Tensor:
    """Causal GQA attention with sinks. q [T, KV, QM, D]; k, v [S, KV, D]; sinks [KV * QM].

    Query i sits at position q_start + i, key j at k_start + j. `window` > 0 lets a query see only
    the `window` latest positions, itself included. Returns [T, KV * QM * D]. Queries go in chunks
    that bound the score matrix, each against only the keys it can see.
    """
    n_q, n_kv, q_mult, _ = q.shape
    chunk = max(1, ATTENTION_SCORE_BUDGET // (n_kv * q_mult * k.shape[0]))
    out = []
    for c0 in range(0, n_q, chunk):
        first, last = q_start + c0, q_start + min(c0 + chunk, n_q) - 1  # positions of the chunk's queries
        lo = max(first - window + 1, k_start) if window else k_start  # earliest key any of them sees
        keys = slice(lo - k_start, last + 1 - k_start)  # causal: nothing past the last query
        out.append(_attend(q[c0 : c0 + chunk], k[keys], v[keys], sinks, first, lo, window))
    return torch.cat(out, dim=0)


def _attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sinks: torch.Tensor, q_start: int, k_start: int, window: int
) -> torch.Tensor:
    """One chunk of attention_reference: q [t, KV, QM, D], k, v [s, KV, D] -> [t, KV * QM * D]."""
    n_q, n_kv, q_mult, d_head = q.shape
    q_pos = torch.arange(q_start, q_start + n_q, device=q.device)  # [t]
    k_pos = torch.arange(k_start, k_start + k.shape[0], device=q.device)  # [s]
    allowed = k_pos[None, :] <= q_pos[:, None]  # [t, s] causal
    if window > 0:
        # gpt-oss quirk: the sliding window (even layers) is exactly `window` positions wide.
        allowed &= k_pos[None, :] > q_pos[:, None] - window
    scores = torch.einsum("qhmd,khd->hmqk", q, k).float() / math.sqrt(d_head)  # [KV, QM, t, s]
    scores = scores.masked_fill(~allowed, -math.inf)
    # gpt-oss quirk: one learned sink logit per head, an extra softmax column whose value is zero.
    sink = sinks.float().reshape(n_kv, q_mult, 1, 1).expand(-1, -1, n_q, 1)  # [KV, QM, t, 1]
    weights = torch.softmax(torch.cat((scores, sink), dim=-1), dim=-1)[..., :-1]  # drop the sink column
    return torch.einsum("hmqk,khd->qhmd", weights.to(v.dtype), v).reshape(n_q, -1)


class AttentionBlock(nn.Module):
    def __init__(self, config: ModelConfig, layer: int, dtype: torch.dtype, device: torch.device | None) -> None:
        super().__init__()
        c = config
        self.layer = layer
        self.config = config
        self.window = c.sliding_window if c.is_sliding(layer) else 0
        qkv_dim = c.head_dim * (c.num_attention_heads + 2 * c.num_key_value_heads)
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps, device)
        self.qkv = nn.Linear(c.hidden_size, qkv_dim, device=device, dtype=dtype)
        self.sinks = nn.Parameter(torch.empty(c.num_attention_heads, device=device, dtype=torch.float32))
        self.out = nn.Linear(c.head_dim * c.num_attention_heads, c.hidden_size, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, kv: SequenceKV, start: int, rope: Rope) -> torch.Tensor:
        c = self.config
        n, d = x.shape[0], c.head_dim
        qkv = self.qkv(self.norm(x))  # [T, (heads + 2 KV) * D]
        q_end, k_end = c.num_attention_heads * d, (c.num_attention_heads + c.num_key_value_heads) * d
        q = qkv[:, :q_end].reshape(n, c.num_attention_heads, d)
        k = qkv[:, q_end:k_end].reshape(n, c.num_key_value_heads, d)
        v = qkv[:, k_end:].reshape(n, c.num_key_value_heads, d)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        kv.write(self.layer, start, k, v)
        # A windowed layer needs only the keys the first new query can still see.
        k_start = max(0, start - self.window + 1) if self.window else 0
        keys, values = kv.read(self.layer, k_start, start + n)
        q = q.reshape(n, c.num_key_value_heads, c.q_per_kv, d)
        attn = attention_reference(q, keys, values, self.sinks, start, k_start, self.window)
        return x + self.out(attn)


class MXFP4Weight(nn.Module):
    """Expert weights kept MXFP4: blocks [E, rows, cols/32, 16] u8 and scales [E, rows, cols/32] u8."""

    blocks: torch.Tensor
    scales: torch.Tensor

    def __init__(self, experts: int, rows: int, cols: int, device: torch.device | None) -> None:
        super().__init__()
        groups = cols // VALUES_PER_BLOCK
        self.register_buffer("blocks", torch.zeros(experts, rows, groups, BYTES_PER_BLOCK, dtype=torch.uint8, device=device))
        self.register_buffer("scales", torch.zeros(experts, rows, groups, dtype=torch.uint8, device=device))

    def expert(self, e: int, dtype: torch.dtype) -> torch.Tensor:  # -> [rows, cols]
        return dequantize(self.blocks[e], self.scales[e], dtype)


class MLPBlock(nn.Module):
    def __init__(self, config: ModelConfig, dtype: torch.dtype, device: torch.device | None) -> None:
        super().__init__()
        c = config
        self.k = c.experts_per_token
        self.limit = c.swiglu_limit
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps, device)
        self.gate = nn.Linear(c.hidden_size, c.num_experts, device=device, dtype=dtype)
        self.mlp1_weight = MXFP4Weight(c.num_experts, 2 * c.intermediate_size, c.hidden_size, device)
        self.mlp1_bias = nn.Parameter(torch.empty(c.num_experts, 2 * c.intermediate_size, device=device, dtype=dtype))
        self.mlp2_weight = MXFP4Weight(c.num_experts, c.hidden_size, c.intermediate_size, device)
        self.mlp2_bias = nn.Parameter(torch.empty(c.num_experts, c.hidden_size, device=device, dtype=dtype))

    def expert_weights(self) -> ExpertWeights:
        return ExpertWeights(self.mlp1_weight.blocks, self.mlp1_weight.scales, self.mlp1_bias,
                             self.mlp2_weight.blocks, self.mlp2_weight.scales, self.mlp2_bias, self.limit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, H] -> [T, H]
        t = self.norm(x)
        ids, weights = route_reference(self.gate(t), self.k)  # [T, k]: gpt-oss's top-k, then softmax
        return x + moe_reference(t, ids, weights, self.expert_weights())


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer: int, dtype: torch.dtype, device: torch.device | None) -> None:
        super().__init__()
        self.attn = AttentionBlock(config, layer, dtype, device)
        self.mlp = MLPBlock(config, dtype, device)

    def forward(self, x: torch.Tensor, kv: SequenceKV, start: int, rope: Rope) -> torch.Tensor:
        return self.mlp(self.attn(x, kv, start, rope))


class Blocks(nn.ModuleList):
    """The model's blocks, typed: iterating or indexing gives a Block (for the engines built on it)."""

    def __iter__(self) -> Iterator[Block]:
        return super().__iter__()  # type: ignore[return-value]

    def __getitem__(self, index: int) -> Block:  # type: ignore[override]
        return super().__getitem__(index)  # type: ignore[return-value]


class Transformer(nn.Module):
    def __init__(
        self, config: ModelConfig, dtype: torch.dtype = torch.float32, device: torch.device | None = None
    ) -> None:
        super().__init__()
        c = config
        self.config = config
        self.dtype = dtype
        self.rotary = Rotary(config)
        self.embedding = nn.Embedding(c.vocab_size, c.hidden_size, device=device, dtype=dtype)
        self.block = Blocks(Block(config, n, dtype, device) for n in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps, device)
        self.unembedding = nn.Linear(c.hidden_size, c.vocab_size, bias=False, device=device, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def new_kv(self, capacity: int = 1) -> SequenceKV:
        return SequenceKV(self.config, self.device, self.dtype, capacity)

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, kv: SequenceKV | None = None, all_logits: bool = False) -> torch.Tensor:
        """tokens [T] appended at kv.length -> fp32 logits [T, V] (all_logits) or [1, V] (the last)."""
        kv = kv if kv is not None else self.new_kv(tokens.shape[0])
        start = kv.length
        kv.reserve(start + tokens.shape[0])
        x = self.embedding(tokens.to(self.device))  # [T, H]
        rope = self.rotary.cos_sin(start, tokens.shape[0], self.device)  # shared by every layer
        for block in self.block:
            x = block(x, kv, start, rope)
        kv.length = start + tokens.shape[0]
        x = x if all_logits else x[-1:]
        return self.unembedding(self.norm(x)).float()  # [T or 1, V]
