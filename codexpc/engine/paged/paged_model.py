"""The gpt-oss forward pass over a batch of sequences and a paged KV cache.

It runs the plain model's own weights (codexpc.engine.model.Transformer). Without Triton (the
reference path) it runs the model's own modules and swaps only the two maths seams: attention
reads the paged cache, the experts run the model's reference. With the kernels, each layer is
about ten launches (codexpc.engine.kernels: fused norms, routing, RoPE, attention, MoE), the
linears staying the model's own. Tokens of all sequences are flattened: T rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from codexpc.engine.model_config import ModelConfig
from codexpc.engine.kernels import moe_mxfp4
from codexpc.engine.kernels.attention import PagedBatch, paged_attention, paged_attention_reference, write_kv
from codexpc.engine.kernels.fused import add_rmsnorm, add_rmsnorm_packed, linear, rope_write_kv, router
from codexpc.engine.kernels.moe_mxfp4 import ExpertWeights, moe_mxfp4_slots
from codexpc.engine.model import AttentionBlock, Block, MLPBlock, Transformer, apply_rotary, experts_reference


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


def expert_weights(mlp: MLPBlock) -> ExpertWeights:
    return ExpertWeights(
        mlp.mlp1_weight.blocks, mlp.mlp1_weight.scales, mlp.mlp1_bias,
        mlp.mlp2_weight.blocks, mlp.mlp2_weight.scales, mlp.mlp2_bias, mlp.limit,
    )


class PagedModel:
    def __init__(self, model: Transformer, cache: PagedKVCache, use_kernels: bool) -> None:
        self.model = model
        self.config = model.config
        self.cache = cache
        self.use_kernels = use_kernels
        self._experts = [expert_weights(block.mlp) for block in model.block if isinstance(block, Block)]
        # On the device once: a host-to-device copy inside a CUDA graph capture is refused.
        self._inv_freq = model.rotary.inv_freq.to(cache.k.device)

    @torch.inference_mode()
    def forward(self, inputs: StepInputs) -> torch.Tensor:
        """-> fp32 logits [B', V] for `inputs.sample_rows`."""
        m = self.model
        x = m.embedding(inputs.tokens)  # [T, H]
        cos, sin = rope(self._inv_freq, m.rotary.concentration, inputs.positions)
        if self.use_kernels:
            x, moe = self._forward_fused(x, cos, sin, inputs.batch)
            rows = inputs.sample_rows
            return m.unembedding(add_rmsnorm(x[rows], moe[rows], m.norm.scale, m.norm.eps)[1]).float()  # [B', V]
        for layer, block in enumerate(m.block):
            assert isinstance(block, Block)
            x = self._attention(layer, block.attn, x, cos, sin, inputs.batch)
            x = self._experts_step(layer, block.mlp, x)
        x = x[inputs.sample_rows]  # [B', H]
        return m.unembedding(m.norm(x)).float()  # [B', V]

    def _forward_fused(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                       batch: PagedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The same layers through the kernels, about ten launches a layer: each residual add (the
        MoE's sum over its k slots too) is fused into the next RMSNorm. -> the residual stream
        before the last layer's MoE output, and that output [T, k, H] fp32, for the caller's norm."""
        c = self.config
        heads = c.num_attention_heads
        moe: torch.Tensor | None = None
        for layer, block in enumerate(self.model.block):
            assert isinstance(block, Block)
            attn, mlp = block.attn, block.mlp
            x, t = add_rmsnorm(x, moe, attn.norm.scale, attn.norm.eps)
            q = rope_write_kv(linear(t, attn.qkv), cos, sin, self.cache.k[layer], self.cache.v[layer],
                              batch.slot_mapping, heads)  # [T, heads, D]
            out = paged_attention(q, self.cache.k[layer], self.cache.v[layer], attn.sinks, batch, attn.window)
            packed = None
            if x.shape[0] <= moe_mxfp4.GEMV_MAX_TOKENS:  # the MoE's GEMV reads its input as f16 pairs
                x, t, packed = add_rmsnorm_packed(x, linear(out, attn.out), mlp.norm.scale, mlp.norm.eps)
            else:
                x, t = add_rmsnorm(x, linear(out, attn.out), mlp.norm.scale, mlp.norm.eps)
            ids, weights = router(t, mlp.gate.weight, mlp.gate.bias, mlp.k)  # [T, k]
            moe = moe_mxfp4_slots(t, ids, weights, self._experts[layer], packed)  # [T, k, H] fp32
        assert moe is not None
        return x, moe

    def _attention(self, layer: int, attn: AttentionBlock, x: torch.Tensor, cos: torch.Tensor,
                   sin: torch.Tensor, batch: PagedBatch) -> torch.Tensor:
        c = self.config
        n, d = x.shape[0], c.head_dim
        qkv = attn.qkv(attn.norm(x))  # [T, (heads + 2 KV) * D]
        heads, kv_heads = c.num_attention_heads, c.num_key_value_heads
        k_end = (heads + kv_heads) * d
        # q and k are adjacent in qkv: one rotary call for both halves the small kernels of a step.
        qk = apply_rotary(qkv[:, :k_end].reshape(n, heads + kv_heads, d), cos, sin)  # [T, heads + KV, D]
        q, k = qk[:, :heads], qk[:, heads:]
        v = qkv[:, k_end:].reshape(n, kv_heads, d)
        k_cache, v_cache = self.cache.k[layer], self.cache.v[layer]
        write_kv(k_cache, v_cache, k, v, batch.slot_mapping)
        out = paged_attention_reference(q, k_cache, v_cache, attn.sinks, batch, attn.window)  # [T, heads * D]
        return x + attn.out(out)

    def _experts_step(self, layer: int, mlp: MLPBlock, x: torch.Tensor) -> torch.Tensor:
        t = mlp.norm(x)
        top = torch.topk(mlp.gate(t), k=mlp.k, dim=-1, sorted=True)
        # gpt-oss quirk: softmax over the k chosen logits only.
        weights = torch.softmax(top.values.float(), dim=-1)  # [T, k]
        return x + experts_reference(t, top.indices, weights, mlp)
