"""The small per-layer operations, fused: RMSNorm (with the residual add before it), RoPE with the
KV-cache write, and the projections at one token. Each has its plain PyTorch reference here, the
one the engine's reference path runs; the Triton kernels are in fused_triton.py, and
tests/test_kernels_gpu.py compares the two. The router is routing.py's.

At batch 1 a decode step of the 20b was about 1,200 kernels, most of them these operations
spelled as 8-15 elementwise kernels each; one kernel apiece leaves about a dozen a layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from codexpc.engine.kernels.attention import write_kv
from codexpc.engine.model import apply_rotary

if TYPE_CHECKING:
    from codexpc.engine.paged.kernel_plan import KernelPlan


def add_rmsnorm_reference(x: torch.Tensor, y: torch.Tensor | None, scale: torch.Tensor,
                          eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (x + y, rmsnorm(x + y)), both in x's dtype; y None means no add. x [T, H]; y [T, H], or
    [T, J, H] fp32 parts (the MoE's weighted slots) summed first and rounded to x's dtype."""
    if y is not None and y.dim() == 3:
        y = y.sum(dim=1).to(x.dtype)
    s = x if y is None else x + y
    t = s.float()
    t = t * torch.rsqrt(t.pow(2).mean(dim=-1, keepdim=True) + eps)
    return s, (t * scale).to(x.dtype)


def rope_write_kv_reference(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_cache: torch.Tensor,
                            v_cache: torch.Tensor, slots: torch.Tensor, heads: int) -> torch.Tensor:
    """qkv [T, (heads + 2 KV) * D] -> q [T, heads, D] rotated; k rotated and v into their cache slots."""
    n = qkv.shape[0]
    kv_heads, d = k_cache.shape[-2:]
    k_end = (heads + kv_heads) * d
    qk = apply_rotary(qkv[:, :k_end].reshape(n, heads + kv_heads, d), cos, sin)  # [T, heads + KV, D]
    write_kv(k_cache, v_cache, qk[:, heads:], qkv[:, k_end:].reshape(n, kv_heads, d), slots)
    return qk[:, :heads]


def add_rmsnorm(x: torch.Tensor, y: torch.Tensor | None, scale: torch.Tensor, eps: float,
                plan: KernelPlan) -> tuple[torch.Tensor, torch.Tensor]:
    if not plan.kernels:
        return add_rmsnorm_reference(x, y, scale, eps)
    from codexpc.engine.kernels.fused_triton import launch_add_rmsnorm  # needs triton

    total, out, _ = launch_add_rmsnorm(x, y, scale, eps, pdl=plan.pdl)
    return total, out


def add_rmsnorm_packed(x: torch.Tensor, y: torch.Tensor | None, scale: torch.Tensor, eps: float,
                       pdl: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """add_rmsnorm, and the norm also as the MoE GEMV's f16 pairs (moe_gemv_triton.pack_activations
    of it, from fp32: one launch instead of a second pass over the norm). Kernels only."""
    from codexpc.engine.kernels.fused_triton import launch_add_rmsnorm  # needs triton

    total, out, packed = launch_add_rmsnorm(x, y, scale, eps, pack=True, pdl=pdl)
    assert packed is not None
    return total, out, packed


def linear(x: torch.Tensor, layer: torch.nn.Linear, plan: KernelPlan) -> torch.Tensor:
    """layer(x); up to plan.linear_gemv_max_tokens tokens (batch-1 decode's qkv and out) through
    our GEMV (dense_gemv_triton.py), else the layer itself (cuBLAS). The reference is the layer."""
    if not plan.linear_gemv(x.shape[0]) or layer.bias is None:
        return layer(x)
    from codexpc.engine.kernels.dense_gemv_triton import launch_gemv  # needs triton

    return launch_gemv(x, layer.weight, layer.bias, pdl=plan.pdl)


def rope_write_kv(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_cache: torch.Tensor,
                  v_cache: torch.Tensor, slots: torch.Tensor, heads: int, plan: KernelPlan) -> torch.Tensor:
    if not plan.kernels:
        return rope_write_kv_reference(qkv, cos, sin, k_cache, v_cache, slots, heads)
    from codexpc.engine.kernels.fused_triton import launch_rope_write_kv  # needs triton

    return launch_rope_write_kv(qkv, cos, sin, k_cache, v_cache, slots, heads, plan.pdl)
