"""The small per-layer operations, fused: RMSNorm (with the residual add before it), the
router (its matmul, top-k and softmax), and RoPE with the KV-cache write. Each has its plain PyTorch
reference here, composed of the model's own functions; the Triton kernels are in
fused_triton.py, and tests/test_kernels_gpu.py compares the two.

At batch 1 a decode step of the 20b was about 1,200 kernels, most of them these operations
spelled as 8-15 elementwise kernels each; one kernel apiece leaves about a dozen a layer.
"""

from __future__ import annotations

import torch

from codexpc.engine.kernels.attention import write_kv
from codexpc.engine.model import apply_rotary


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


def route_reference(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [T, E] -> ids [T, k] int64 (best first), weights [T, k] fp32."""
    top = torch.topk(logits, k=k, dim=-1, sorted=True)
    # gpt-oss quirk: softmax over the k chosen logits only.
    return top.indices, torch.softmax(top.values.float(), dim=-1)


def router_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                     k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The router: x [T, H] -> logits [T, E] in x's dtype (the model's linear), then route_reference."""
    return route_reference(torch.nn.functional.linear(x, weight, bias), k)


def rope_write_kv_reference(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_cache: torch.Tensor,
                            v_cache: torch.Tensor, slots: torch.Tensor, heads: int) -> torch.Tensor:
    """qkv [T, (heads + 2 KV) * D] -> q [T, heads, D] rotated; k rotated and v into their cache slots."""
    n = qkv.shape[0]
    kv_heads, d = k_cache.shape[-2:]
    k_end = (heads + kv_heads) * d
    qk = apply_rotary(qkv[:, :k_end].reshape(n, heads + kv_heads, d), cos, sin)  # [T, heads + KV, D]
    write_kv(k_cache, v_cache, qk[:, heads:], qkv[:, k_end:].reshape(n, kv_heads, d), slots)
    return qk[:, :heads]


def add_rmsnorm(x: torch.Tensor, y: torch.Tensor | None, scale: torch.Tensor,
                eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    from codexpc.engine.kernels.fused_triton import launch_add_rmsnorm  # needs triton

    total, out, _ = launch_add_rmsnorm(x, y, scale, eps)
    return total, out


def add_rmsnorm_packed(x: torch.Tensor, y: torch.Tensor | None, scale: torch.Tensor,
                       eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """add_rmsnorm, and the norm also as the MoE GEMV's f16 pairs (moe_gemv_triton.pack_activations
    of it, from fp32: one launch instead of a second pass over the norm)."""
    from codexpc.engine.kernels.fused_triton import launch_add_rmsnorm  # needs triton

    total, out, packed = launch_add_rmsnorm(x, y, scale, eps, pack=True)
    assert packed is not None
    return total, out, packed


def route(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    from codexpc.engine.kernels.fused_triton import launch_route  # needs triton

    return launch_route(logits, k)


def linear(x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
    """layer(x); one token (batch-1 decode) through our GEMV (dense_gemv_triton.py), else the
    layer itself (cuBLAS). The reference is the layer."""
    if x.shape[0] != 1 or layer.bias is None:
        return layer(x)
    from codexpc.engine.kernels.dense_gemv_triton import launch_gemv  # needs triton

    return launch_gemv(x, layer.weight, layer.bias)


# Tokens up to which the router's matmul is the GEMV of dense_gemv_triton.py rather than cuBLAS's
# (each token reads the whole gate weight, from L2 after the first: cheap for decode batches only).
ROUTER_MAX_TOKENS = 128
ROUTER_TILES = (2, 1024, 4)  # two logits a program: 16 programs a token at 32 experts


def router(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """router_reference; up to ROUTER_MAX_TOKENS tokens the matmul is our GEMV (at batch 1
    cuBLAS spent a split-K GEMV and its reduction, about 6 us a layer, on a 32 x 2880 matmul)."""
    if x.shape[0] > ROUTER_MAX_TOKENS:
        return route(torch.nn.functional.linear(x, weight, bias), k)
    from codexpc.engine.kernels.dense_gemv_triton import launch_gemv  # needs triton

    return route(launch_gemv(x, weight, bias, ROUTER_TILES), k)


def rope_write_kv(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_cache: torch.Tensor,
                  v_cache: torch.Tensor, slots: torch.Tensor, heads: int) -> torch.Tensor:
    from codexpc.engine.kernels.fused_triton import launch_rope_write_kv  # needs triton

    return launch_rope_write_kv(qkv, cos, sin, k_cache, v_cache, slots, heads)
