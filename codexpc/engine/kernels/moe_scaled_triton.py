"""Triton MoE kernels on `tl.dot_scaled`: Triton's own MXFP4 matmul, for 9 to ~4,000 tokens.

Row blocks: BM slots of one expert (sorted by `order_by_expert`) against a tile of that expert's
weights, the product Triton's scaled dot: the activations are its bf16 operand, the MXFP4 weights (bytes and E8M0 scales, as stored)
its e2m1 one. On Hopper the compiler streams the weight bytes in with asynchronous copies,
several stages deep, upcasts them with a lookup table and feeds the tensor cores from registers;
v4's row blocks (gone) decoded e2m1 in the weight tile with integer arithmetic, which bounded them.
H100, one layer of gpt-oss-20b (bench/results/archive/moe_scaled_dot-v5-h100.txt): 64 tokens 305 us against 375, 512
tokens 805 against 1,161. With the weights as the scaled dot's left operand it was about four
times slower (1.2 ms at 64 tokens); with one slot a program it lost to the GEMV pair below 9.

- up:   h[p] = swiglu(x[token(p)] @ W1[e].T + b1[e])          h [P, I] in x's dtype
- down: y[slot(p)] = route(p) * (h[p] @ W2[e].T + b2[e])      y [S, H] fp32, slots unsummed

Without `NATIVE` (off CUDA: Triton's CPU interpreter has no scaled dot) the tile is decoded by
moe_mxfp4_triton's exact decode and multiplied with a plain dot: the same indexing, testable
on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import triton
import triton.language as tl

from codexpc.engine.kernels.moe_mxfp4_triton import _dequant_tile

if TYPE_CHECKING:
    from codexpc.engine.kernels.moe_mxfp4 import ExpertOrder


@triton.jit
def _mx_tile_dot(a, w_ptr, s_ptr, cols, col_ok, acc, k0, K: tl.constexpr, stride_wn, stride_sn,
                 BK: tl.constexpr, NATIVE: tl.constexpr):
    """acc + a @ W[cols, k0:k0+BK].T: a [BM, BK] bf16; W in MXFP4 (bytes [N, K/2], scales [N, K/32])."""
    if NATIVE:
        kb = k0 // 2 + tl.arange(0, BK // 2)
        ks = k0 // 32 + tl.arange(0, BK // 32)
        raw_t = tl.load(w_ptr + cols[None, :] * stride_wn + kb[:, None],
                        mask=col_ok[None, :] & (kb[:, None] < K // 2), other=0)  # [BK/2, BN] u8
        sc = tl.load(s_ptr + cols[:, None] * stride_sn + ks[None, :],
                     mask=col_ok[:, None] & (ks[None, :] < K // 32), other=127)  # [BN, BK/32] u8
        return tl.dot_scaled(a, None, "bf16", raw_t, sc, "e2m1", acc, fast_math=True)
    else:
        w = _dequant_tile(w_ptr, s_ptr, cols, col_ok, k0, K, stride_wn, stride_sn, BK)
        return tl.dot(a, tl.trans(w.to(a.dtype)), acc)


# num_slots (tokens x k) changes every step: no specialization on it (see attention_triton.py).
@triton.jit(do_not_specialize=["num_slots"])
def _scaled_up_kernel(x_ptr, w_ptr, s_ptr, b_ptr, h_ptr, sorted_ptr, block_expert_ptr, num_padded_ptr, num_slots,
                      stride_x, stride_we, stride_wn, stride_se, stride_sn, stride_be, stride_h, limit, alpha,
                      K: tl.constexpr, N: tl.constexpr, TOPK: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                      BK: tl.constexpr, NATIVE: tl.constexpr):
    pid_m = tl.program_id(0)
    if pid_m * BM < tl.load(num_padded_ptr):
        e = tl.load(block_expert_ptr + pid_m).to(tl.int64)
        rows_p = pid_m * BM + tl.arange(0, BM)
        slots = tl.load(sorted_ptr + rows_p)
        valid = slots < num_slots
        tokens = (slots // TOPK).to(tl.int64)
        cols = tl.program_id(1) * BN + tl.arange(0, BN)  # weight rows: gate/up columns of h
        col_ok = cols < N
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            kk = k0 + tl.arange(0, BK)
            a = tl.load(x_ptr + tokens[:, None] * stride_x + kk[None, :], mask=valid[:, None] & (kk[None, :] < K),
                        other=0.0)  # [BM, BK]
            acc = _mx_tile_dot(a, w_ptr + e * stride_we, s_ptr + e * stride_se, cols, col_ok, acc, k0, K,
                               stride_wn, stride_sn, BK, NATIVE)
        acc += tl.load(b_ptr + e * stride_be + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
        # gpt-oss quirk: gate and up interleave (even, odd columns); clamp gate above, up both sides.
        gate, up = tl.split(tl.reshape(acc, (BM, BN // 2, 2)))
        gate = tl.minimum(gate, limit)
        up = tl.minimum(tl.maximum(up, -limit), limit)
        h = gate * tl.sigmoid(alpha * gate) * (up + 1.0)  # [BM, BN/2]
        hcols = tl.program_id(1) * (BN // 2) + tl.arange(0, BN // 2)
        tl.store(h_ptr + rows_p[:, None].to(tl.int64) * stride_h + hcols[None, :], h.to(h_ptr.dtype.element_ty),
                 mask=hcols[None, :] < N // 2)


@triton.jit(do_not_specialize=["num_slots"])
def _scaled_down_kernel(h_ptr, w_ptr, s_ptr, b_ptr, y_ptr, route_ptr, sorted_ptr, block_expert_ptr, num_padded_ptr,
                        num_slots, stride_h, stride_we, stride_wn, stride_se, stride_sn, stride_be, stride_y,
                        K: tl.constexpr, N: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                        NATIVE: tl.constexpr):
    pid_m = tl.program_id(0)
    if pid_m * BM < tl.load(num_padded_ptr):
        e = tl.load(block_expert_ptr + pid_m).to(tl.int64)
        rows_p = pid_m * BM + tl.arange(0, BM)
        slots = tl.load(sorted_ptr + rows_p)
        valid = slots < num_slots
        cols = tl.program_id(1) * BN + tl.arange(0, BN)  # weight rows: hidden columns of y
        col_ok = cols < N
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            kk = k0 + tl.arange(0, BK)
            a = tl.load(h_ptr + rows_p[:, None].to(tl.int64) * stride_h + kk[None, :], mask=kk[None, :] < K,
                        other=0.0)  # [BM, BK]
            acc = _mx_tile_dot(a, w_ptr + e * stride_we, s_ptr + e * stride_se, cols, col_ok, acc, k0, K,
                               stride_wn, stride_sn, BK, NATIVE)
        acc += tl.load(b_ptr + e * stride_be + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
        acc = acc * tl.load(route_ptr + slots, mask=valid, other=0.0)[:, None]
        tl.store(y_ptr + slots[:, None].to(tl.int64) * stride_y + cols[None, :], acc,
                 mask=valid[:, None] & col_ok[None, :])


@dataclass(frozen=True)
class ScaledTiles:
    bn: int  # weight rows per program
    bk: int  # reduction step
    warps: int
    stages: int


# H100, one layer of gpt-oss-20b (bench/results/archive/moe_scaled_dot-v5-h100.txt): 64 tokens 305 us with these (337 with
# (64, 256, 4, 3)); 256 and 512 tokens within 1% and 5% of the best of the ten shapes swept.
UP_TILES = ScaledTiles(128, 64, 4, 5)
DOWN_TILES = ScaledTiles(128, 128, 4, 3)


def scaled_up(x: torch.Tensor, order: ExpertOrder, blocks: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor,
              topk: int, limit: float, alpha: float) -> torch.Tensor:
    """x [T, H] -> h [P, I] in x's dtype, row p for sorted slot p (padding rows hold garbage nobody reads)."""
    e, n, groups, _ = blocks.shape  # n = 2I
    w = blocks.view(e, n, groups * 16)
    rows = order.sorted_slots.numel()
    h = torch.empty(rows, n // 2, dtype=x.dtype, device=x.device)
    t = UP_TILES
    grid = (rows // order.block_m, triton.cdiv(n, t.bn))
    _scaled_up_kernel[grid](
        x, w, scales, bias, h, order.sorted_slots, order.block_expert, order.num_padded, x.shape[0] * topk,
        x.stride(0), w.stride(0), w.stride(1), scales.stride(0), scales.stride(1), bias.stride(0), h.stride(0),
        float(limit), float(alpha), K=groups * 32, N=n, TOPK=topk, BM=order.block_m, BN=t.bn, BK=t.bk,
        NATIVE=x.is_cuda, num_warps=t.warps, num_stages=t.stages,
    )
    return h


def scaled_down(h: torch.Tensor, order: ExpertOrder, blocks: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor,
                route: torch.Tensor, num_slots: int) -> torch.Tensor:
    """h [P, I] -> y [S, H] fp32: each slot's expert output times its routing weight."""
    e, n, groups, _ = blocks.shape  # n = H
    w = blocks.view(e, n, groups * 16)
    route = route.float().contiguous()
    y = torch.empty(num_slots, n, dtype=torch.float32, device=h.device)
    t = DOWN_TILES
    grid = (order.sorted_slots.numel() // order.block_m, triton.cdiv(n, t.bn))
    _scaled_down_kernel[grid](
        h, w, scales, bias, y, route, order.sorted_slots, order.block_expert, order.num_padded, num_slots,
        h.stride(0), w.stride(0), w.stride(1), scales.stride(0), scales.stride(1), bias.stride(0), y.stride(0),
        K=groups * 32, N=n, BM=order.block_m, BN=t.bn, BK=t.bk, NATIVE=h.is_cuda,
        num_warps=t.warps, num_stages=t.stages,
    )
    return y
