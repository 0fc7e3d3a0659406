"""The gpt-oss forward pass over a batch of sequences and a paged KV cache.

It runs the plain model's own weights (codexpc.engine.model.Transformer), one path for every
plan: each layer is about ten operations (add + RMSNorm, qkv, RoPE + KV write, attention, out,
add + RMSNorm, router, experts), each a dispatch in codexpc.engine.kernels that runs its Triton
kernel or, on the reference path (KernelPlan.kernels False: the CPU), the plain PyTorch
reference its kernel test compares against. Each residual add (the MoE's sum over its k slots
too) is fused into the next RMSNorm. Tokens of all sequences are flattened: T rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from codexpc.engine.kernels.attention import PagedBatch, attention
from codexpc.engine.kernels.fused import add_rmsnorm, add_rmsnorm_packed, linear, rope_write_kv
from codexpc.engine.kernels.moe_mxfp4 import experts
from codexpc.engine.kernels.routing import router
from codexpc.engine.model import Block, Transformer
from codexpc.engine.model_config import ModelConfig
from codexpc.engine.paged.kernel_plan import KernelPlan


class PagedKVCache:
    """k, v [layers, num_blocks, block_size, KV, D]: block b of every layer belongs to one owner."""

    def __init__(self, config: ModelConfig, num_blocks: int, block_size: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        shape = (config.num_hidden_layers, num_blocks, block_size, config.num_key_value_heads, config.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    @property
    def block_size(self) -> int:
        return self.k.shape[2]


@dataclass(frozen=True)
class StepInputs:
    tokens: torch.Tensor  # [T] token ids of every scheduled sequence's new tokens, in batch order
    positions: torch.Tensor  # [T] their positions in their sequences
    batch: PagedBatch
    sample_rows: torch.Tensor  # [B'] rows whose logits are needed (each sampling sequence's last)


def rope(inv_freq: torch.Tensor, concentration: float, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [T, D/2] at arbitrary positions (the model's Rotary takes one contiguous run)."""
    freqs = positions.float()[:, None] * inv_freq[None, :]  # [T, D/2]
    return freqs.cos() * concentration, freqs.sin() * concentration


class PagedModel:
    def __init__(self, model: Transformer, cache: PagedKVCache, plan: KernelPlan) -> None:
        self.model = model
        self.config = model.config
        self.cache = cache
        self.plan = plan
        self._experts = [block.mlp.expert_weights() for block in model.block]
        # On the device once: a host-to-device copy inside a CUDA graph capture is refused.
        self._inv_freq = model.rotary.inv_freq.to(cache.k.device)

    @torch.inference_mode()
    def forward(self, inputs: StepInputs) -> torch.Tensor:
        """-> fp32 logits [B', V] for `inputs.sample_rows`."""
        m, c, plan, batch = self.model, self.config, self.plan, inputs.batch
        x = m.embedding(inputs.tokens)  # [T, H]
        cos, sin = rope(self._inv_freq, m.rotary.concentration, inputs.positions)
        # The MoE's GEMV reads its input as f16 pairs, which the norm before it writes.
        gemv = plan.kernels and plan.moe_kernel(x.shape[0], c.num_experts, c.experts_per_token) == "gemv"
        moe: torch.Tensor | None = None  # the last layer's experts: [T, H], or the kernels' slots [T, k, H]
        for layer, block in enumerate(m.block):
            assert isinstance(block, Block)
            attn, mlp = block.attn, block.mlp
            k_cache, v_cache = self.cache.k[layer], self.cache.v[layer]
            x, t = add_rmsnorm(x, moe, attn.norm.scale, attn.norm.eps, plan)
            q = rope_write_kv(linear(t, attn.qkv, plan), cos, sin, k_cache, v_cache, batch.slot_mapping,
                              c.num_attention_heads, plan)  # [T, heads, D]
            out = attention(q, k_cache, v_cache, attn.sinks, batch, attn.window, plan)  # [T, heads * D]
            packed = None
            if gemv:
                x, t, packed = add_rmsnorm_packed(x, linear(out, attn.out, plan), mlp.norm.scale, mlp.norm.eps, plan.pdl)
            else:
                x, t = add_rmsnorm(x, linear(out, attn.out, plan), mlp.norm.scale, mlp.norm.eps, plan)
            ids, weights = router(t, mlp.gate.weight, mlp.gate.bias, mlp.k, plan)  # [T, k]
            moe = experts(t, ids, weights, self._experts[layer], plan, packed)
        assert moe is not None
        rows = inputs.sample_rows
        return m.unembedding(add_rmsnorm(x[rows], moe[rows], m.norm.scale, m.norm.eps, plan)[1]).float()  # [B', V]
