"""The MoE experts with MXFP4 weights: a Triton kernel pair, and the plain reference beside it.

The token-slots (token t's j-th chosen expert is slot t * k + j) are sorted by expert and each
expert's run is padded to a multiple of BLOCK_M, so one program computes BLOCK_M slots of one
expert against a tile of that expert's weights. The weights stay MXFP4 in memory and are
dequantized tile by tile inside the K loop: each weight byte is read once per program, and
at batch 1 the kernel reads 4.25 bits per weight instead of the 16 that a dequantized copy
costs. Two launches:
- up:   h[p] = swiglu(x[token(p)] @ W1[e].T + b1[e])   (SwiGLU fused: the pairs of gate/up
        columns sit side by side in one N tile, so the [*, 2I] product never reaches memory);
- down: y[slot(p)] = weight(p) * (h[p] @ W2[e].T + b2[e]); then y is summed over the k slots.

Shapes: T tokens, k experts per token, S = T * k slots, P padded slots, E experts, H hidden,
I expert width; W1 [E, 2I, H] and W2 [E, H, I] as MXFP4 (blocks [E, rows, cols/32, 16] u8,
scales [E, rows, cols/32] u8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from codexpc.engine.model import SWIGLU_ALPHA, swiglu
from codexpc.engine.mxfp4 import dequantize


@dataclass(frozen=True)
class ExpertWeights:
    """One layer's experts, as stored: MXFP4 matrices and bf16 biases."""

    w1_blocks: torch.Tensor  # [E, 2I, H/32, 16] u8
    w1_scales: torch.Tensor  # [E, 2I, H/32] u8
    b1: torch.Tensor  # [E, 2I]
    w2_blocks: torch.Tensor  # [E, H, I/32, 16] u8
    w2_scales: torch.Tensor  # [E, H, I/32] u8
    b2: torch.Tensor  # [E, H]
    limit: float  # the SwiGLU clamp

    @property
    def num_experts(self) -> int:
        return self.w1_blocks.shape[0]


def moe_reference(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights) -> torch.Tensor:
    """Dequantize each chosen expert, then matmul. x [T, H]; ids, weights [T, k] -> [T, H]."""
    out = torch.zeros_like(x, dtype=torch.float32)
    for e in torch.unique(ids).tolist():
        rows, slot = torch.where(ids == e)  # tokens that chose e, and in which of their k slots
        h = x[rows] @ dequantize(w.w1_blocks[e], w.w1_scales[e], x.dtype).T + w.b1[e]  # [n, 2I]
        h = swiglu(h, w.limit)  # [n, I]
        y = h @ dequantize(w.w2_blocks[e], w.w2_scales[e], x.dtype).T + w.b2[e]  # [n, H]
        out.index_add_(0, rows, y.float() * weights[rows, slot, None].float())
    return out.to(x.dtype)


@dataclass(frozen=True)
class ExpertOrder:
    """Slots sorted by expert, each expert's run padded to a multiple of block_m. Static shapes
    (no host sync), so a CUDA graph can capture it."""

    sorted_slots: torch.Tensor  # [P] slot ids; S (one past the last) marks padding
    block_expert: torch.Tensor  # [P / block_m] the expert of each block of rows
    num_padded: torch.Tensor  # [1] rows in use; blocks at or past it do nothing
    block_m: int


ORDER_KERNEL = True  # moe_order_triton's one launch on CUDA where it fits (bench switch)


def order_by_expert(ids: torch.Tensor, num_experts: int, block_m: int, kernel: bool | None = None) -> ExpertOrder:
    """`kernel` (None: on CUDA where it fits) runs moe_order_triton's one launch instead."""
    flat = ids.flatten()  # [S]
    s = flat.numel()
    capacity = -(-(s + num_experts * (block_m - 1)) // block_m) * block_m
    if kernel is None:
        kernel = ORDER_KERNEL and ids.is_cuda
    if kernel:
        from codexpc.engine.kernels.moe_order_triton import fits, launch_order  # needs triton

        if fits(s, num_experts):
            sorted_slots, block_expert, num_padded = launch_order(ids, num_experts, block_m, capacity)
            return ExpertOrder(sorted_slots, block_expert, num_padded, block_m)
    counts = torch.zeros(num_experts, dtype=torch.int64, device=ids.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat))  # bincount without a host sync
    padded = (counts + block_m - 1) // block_m * block_m
    ends = torch.cumsum(padded, 0)  # [E]
    order = torch.argsort(flat, stable=True)  # slots sorted by expert
    expert_of = flat[order]
    rank = torch.arange(s, device=ids.device) - (torch.cumsum(counts, 0) - counts)[expert_of]
    sorted_slots = torch.full((capacity,), s, dtype=torch.int32, device=ids.device)
    sorted_slots[(ends - padded)[expert_of] + rank] = order.to(torch.int32)
    starts = torch.arange(0, capacity, block_m, device=ids.device)
    block_expert = torch.searchsorted(ends, starts, right=True).clamp(max=num_experts - 1)
    return ExpertOrder(sorted_slots, block_expert.to(torch.int32), ends[-1:].to(torch.int32), block_m)


def pick_block_m(num_slots: int, num_experts: int) -> int:
    """Rows per program: about the slots an expert gets, so little of a block is padding."""
    per_expert = num_slots / num_experts
    for block_m in (16, 32, 64):
        if per_expert <= 2 * block_m:
            return block_m
    return 128


# Slots per expert from which a bf16 copy of the layer's experts pays: each weight tile is then
# used by several row blocks, and dequantizing it once beats dequantizing it in each of them.
DENSE_MIN_SLOTS_PER_EXPERT = 512


# Tokens up to which the GEMV kernels (moe_gemv_triton.py) run instead of sorted blocks: each
# slot then reads its expert on its own, which pays only while few slots share an expert
# (H100, one layer: v5's GEMV 43 us against the scaled dot's 70 at 1 token, 192 against 284 at 8;
# v6's f16 GEMV is 149 at 8, so the cross-over may now sit nearer 16 tokens: not measured).
GEMV_MAX_TOKENS = 8

# The kernels for 9 tokens up to the bf16-copy size: "scaled" (moe_scaled_triton.py, Triton's
# scaled dot) or "rows" (moe_mxfp4_triton.py's row blocks, v4's path; a bench switch).
MANY_TOKENS_KERNEL = "scaled"


def moe_mxfp4_slots(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights,
                    packed: torch.Tensor | None = None) -> torch.Tensor:
    """Each slot's routing weight times its expert's output, [T, k, H] fp32, unsummed: the
    model sums the k slots inside its next add + RMSNorm. `packed`: x as the GEMV's f16 pairs
    (fused.add_rmsnorm_packed), used up to GEMV_MAX_TOKENS; else they are made here."""
    t, k = ids.shape
    if t <= GEMV_MAX_TOKENS:
        from codexpc.engine.kernels.moe_gemv_triton import gemv_down, gemv_up  # needs triton

        ids = ids.contiguous()
        h = gemv_up(x if packed is None else packed, ids, w.w1_blocks, w.w1_scales, w.b1, w.limit,
                    SWIGLU_ALPHA)  # [T * k, I/8, 4] f16 pairs
        return gemv_down(h, ids, weights, w.w2_blocks, w.w2_scales, w.b2)
    if MANY_TOKENS_KERNEL == "scaled" and t * k < DENSE_MIN_SLOTS_PER_EXPERT * w.num_experts:
        return _scaled(x, ids, weights, w)
    return _row_blocks(x, ids, weights, w, None)


def _scaled(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights) -> torch.Tensor:
    """The scaled-dot kernel pair -> [T, k, H] fp32, each slot weighted, not yet summed."""
    from codexpc.engine.kernels.moe_scaled_triton import scaled_down, scaled_up  # needs triton

    t, k = ids.shape
    order = order_by_expert(ids, w.num_experts, pick_block_m(t * k, w.num_experts))
    h = scaled_up(x, order, w.w1_blocks, w.w1_scales, w.b1, k, w.limit, SWIGLU_ALPHA)  # [P, I]
    y = scaled_down(h, order, w.w2_blocks, w.w2_scales, w.b2, weights.flatten(), t * k)
    return y.view(t, k, -1)


def moe_mxfp4(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights,
              dense: bool | None = None) -> torch.Tensor:
    """The Triton path: same function as `moe_reference`. x [T, H] bf16 -> [T, H].

    `dense` None: the engine's choice by batch size (moe_mxfp4_slots); True or False: the
    row-block kernels, with or without a bf16 copy of the layer's experts made first.
    """
    slots = moe_mxfp4_slots(x, ids, weights, w) if dense is None else _row_blocks(x, ids, weights, w, dense)
    return slots.sum(dim=1).to(x.dtype)


def _row_blocks(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights,
                dense: bool | None) -> torch.Tensor:
    """The row-block kernel pair -> [T, k, H] fp32, each slot weighted, not yet summed."""
    from codexpc.engine.kernels.moe_mxfp4_triton import dequantize_all, launch_down, launch_up  # needs triton

    t, k = ids.shape
    if dense is None:
        dense = t * k >= DENSE_MIN_SLOTS_PER_EXPERT * w.num_experts
    order = order_by_expert(ids, w.num_experts, pick_block_m(t * k, w.num_experts))
    w1 = dequantize_all(w.w1_blocks, w.w1_scales, x.dtype) if dense else None
    h = launch_up(x, order, w.w1_blocks, w.w1_scales, w.b1, k, w.limit, SWIGLU_ALPHA, w1)  # [P, I]
    del w1  # one layer's bf16 copy at a time: W1's is freed before W2's is made
    w2 = dequantize_all(w.w2_blocks, w.w2_scales, x.dtype) if dense else None
    y = launch_down(h, order, w.w2_blocks, w.w2_scales, w.b2, weights.flatten().float(), t * k, w2)  # [S, H]
    return y.view(t, k, -1)
