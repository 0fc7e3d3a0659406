"""The MoE experts with MXFP4 weights: the one plain reference, and the dispatch to the kernels.

`moe_reference` is the maths of gpt-oss's experts in PyTorch: the plain model
(codexpc.engine.model.MLPBlock), the paged engine's reference path and the kernel tests all run
it. The kernels, picked by the step's token count (KernelPlan.moe_kernel):
- up to ~8 tokens, a GEMV pair that reads each slot's expert straight from the router's ids
  (moe_gemv_triton.py);
- up to ~4k tokens, Triton's scaled dot over the slots sorted by expert (moe_scaled_triton.py;
  the order from moe_order_triton.py);
- beyond, row blocks over a bf16 copy of the layer's experts (moe_mxfp4_triton.py).
Each kernel returns the k slots of a token unsummed, weighted by their routing weights: the
model sums them inside its next add + RMSNorm.

Shapes: T tokens, k experts per token, S = T * k slots (token t's j-th expert is slot t * k + j),
P padded slots, E experts, H hidden, I expert width; W1 [E, 2I, H] and W2 [E, H, I] as MXFP4
(blocks [E, rows, cols/32, 16] u8, scales [E, rows, cols/32] u8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from codexpc.engine.mxfp4 import dequantize

if TYPE_CHECKING:
    from codexpc.engine.kernels.moe_mxfp4_triton import Tiles
    from codexpc.engine.paged.kernel_plan import KernelPlan

SWIGLU_ALPHA = 1.702
# (token, expert) routes up to which experts are gathered per token rather than grouped per expert;
# 16 routes of the 20b dequantize to 0.8 GiB of bf16.
GATHER_MAX_ROUTES = 16


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


def swiglu(x: torch.Tensor, limit: float, alpha: float = SWIGLU_ALPHA) -> torch.Tensor:
    """[T, 2I] -> [T, I]."""
    # gpt-oss quirk: gate and up are interleaved (even, odd columns), not two halves.
    gate, up = x[..., 0::2], x[..., 1::2]
    # gpt-oss quirk: the gate is clamped above only, the up projection on both sides.
    gate = gate.clamp(max=limit)
    up = up.clamp(min=-limit, max=limit)
    # gpt-oss quirk: sigmoid with gain alpha, and (up + 1) rather than up.
    return gate * torch.sigmoid(alpha * gate) * (up + 1)


def moe_reference(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights) -> torch.Tensor:
    """x [T, H]; ids, weights [T, k] -> [T, H] in x's dtype: the weighted sum of the chosen experts.

    Few routes (decoding): dequantize each token's chosen experts and use them directly, with no
    host sync. Many (prefill): dequantize each expert once and run the tokens that chose it.
    """
    if ids.numel() <= GATHER_MAX_ROUTES:
        return _gathered(x, ids, weights, w)
    return _grouped(x, ids, weights, w)


def _gathered(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights) -> torch.Tensor:
    w1 = dequantize(w.w1_blocks[ids], w.w1_scales[ids], x.dtype)  # [T, k, 2I, H]
    h = torch.einsum("tkoh,th->tko", w1, x) + w.b1[ids]  # [T, k, 2I]
    h = swiglu(h, w.limit)  # [T, k, I]
    w2 = dequantize(w.w2_blocks[ids], w.w2_scales[ids], x.dtype)  # [T, k, H, I]
    y = torch.einsum("tkhi,tki->tkh", w2, h) + w.b2[ids]  # [T, k, H]
    return torch.einsum("tkh,tk->th", y.float(), weights.float()).to(x.dtype)


def _grouped(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights) -> torch.Tensor:
    out = torch.zeros_like(x, dtype=torch.float32)
    for e in torch.unique(ids).tolist():
        rows, slot = torch.where(ids == e)  # tokens that chose e, and in which of their k slots
        h = x[rows] @ dequantize(w.w1_blocks[e], w.w1_scales[e], x.dtype).T + w.b1[e]  # [n, 2I]
        h = swiglu(h, w.limit)  # [n, I]
        y = h @ dequantize(w.w2_blocks[e], w.w2_scales[e], x.dtype).T + w.b2[e]  # [n, H]
        # index_put_ rather than index_add_: the same sum, and index_add_ is slow on CPUs.
        out.index_put_((rows,), y.float() * weights[rows, slot, None].float(), accumulate=True)
    return out.to(x.dtype)


def experts(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights, plan: KernelPlan,
            packed: torch.Tensor | None = None) -> torch.Tensor:
    """The experts as `plan` runs them, for the next add + RMSNorm (which takes either form): the
    reference's [T, H] in x's dtype, or the kernels' weighted slots [T, k, H] fp32."""
    if not plan.kernels:
        return moe_reference(x, ids, weights, w)
    return moe_mxfp4_slots(x, ids, weights, w, plan, packed)


@dataclass(frozen=True)
class ExpertOrder:
    """Slots sorted by expert, each expert's run padded to a multiple of block_m. Static shapes
    (no host sync), so a CUDA graph can capture it."""

    sorted_slots: torch.Tensor  # [P] slot ids; S (one past the last) marks padding
    block_expert: torch.Tensor  # [P / block_m] the expert of each block of rows
    num_padded: torch.Tensor  # [1] rows in use; blocks at or past it do nothing
    block_m: int


def order_by_expert(ids: torch.Tensor, num_experts: int, block_m: int, kernel: bool | None = None) -> ExpertOrder:
    """`kernel` (None: on CUDA where it fits) runs moe_order_triton's one launch instead of the
    dozen PyTorch kernels below (its test compares the two)."""
    flat = ids.flatten()  # [S]
    s = flat.numel()
    capacity = -(-(s + num_experts * (block_m - 1)) // block_m) * block_m
    if kernel is None:
        kernel = ids.is_cuda
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


def moe_mxfp4_slots(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights, plan: KernelPlan,
                    packed: torch.Tensor | None = None) -> torch.Tensor:
    """Each slot's routing weight times its expert's output, [T, k, H] fp32, unsummed, through the
    kernel `plan` picks for T tokens. `packed`: x as the GEMV's f16 pairs
    (fused.add_rmsnorm_packed), used by the GEMV; else they are made here."""
    t, k = ids.shape
    kernel = plan.moe_kernel(t, w.num_experts, k)
    if kernel == "gemv":
        from codexpc.engine.kernels.moe_gemv_triton import gemv_down, gemv_up  # needs triton

        ids = ids.contiguous()
        h = gemv_up(x if packed is None else packed, ids, w.w1_blocks, w.w1_scales, w.b1, w.limit,
                    SWIGLU_ALPHA, asm=plan.moe_gemv_asm, pdl=plan.pdl)  # [T * k, I/8, 4] f16 pairs
        return gemv_down(h, ids, weights, w.w2_blocks, w.w2_scales, w.b2, asm=plan.moe_gemv_asm, pdl=plan.pdl)
    if kernel == "scaled":
        return _scaled(x, ids, weights, w)
    return dense_rows(x, ids, weights, w)


def moe_mxfp4(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights,
              plan: KernelPlan) -> torch.Tensor:
    """The kernels' path summed: same function as `moe_reference`. x [T, H] -> [T, H]."""
    return moe_mxfp4_slots(x, ids, weights, w, plan).sum(dim=1).to(x.dtype)


def _scaled(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights) -> torch.Tensor:
    """The scaled-dot kernel pair -> [T, k, H] fp32, each slot weighted, not yet summed."""
    from codexpc.engine.kernels.moe_scaled_triton import scaled_down, scaled_up  # needs triton

    t, k = ids.shape
    order = order_by_expert(ids, w.num_experts, pick_block_m(t * k, w.num_experts))
    h = scaled_up(x, order, w.w1_blocks, w.w1_scales, w.b1, k, w.limit, SWIGLU_ALPHA)  # [P, I]
    y = scaled_down(h, order, w.w2_blocks, w.w2_scales, w.b2, weights.flatten(), t * k)
    return y.view(t, k, -1)


def dense_rows(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights,
               tiles: Tiles | None = None) -> torch.Tensor:
    """Row blocks over a bf16 copy of the layer's experts -> [T, k, H] fp32, each slot weighted, not
    yet summed. `tiles`: the kernels' tile shape (a bench's sweep); None, the measured default."""
    from codexpc.engine.kernels.moe_mxfp4_triton import dequantize_all, launch_down, launch_up  # needs triton

    t, k = ids.shape
    order = order_by_expert(ids, w.num_experts, pick_block_m(t * k, w.num_experts))
    w1 = dequantize_all(w.w1_blocks, w.w1_scales, x.dtype)
    h = launch_up(x, order, w1, w.b1, k, w.limit, SWIGLU_ALPHA, tiles)  # [P, I]
    del w1  # one layer's bf16 copy at a time: W1's is freed before W2's is made
    w2 = dequantize_all(w.w2_blocks, w.w2_scales, x.dtype)
    y = launch_down(h, order, w2, w.b2, weights.flatten().float(), t * k, tiles)  # [S, H]
    return y.view(t, k, -1)
