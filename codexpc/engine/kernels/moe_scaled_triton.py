"""Triton MoE kernels on `tl.dot_scaled`: the expert's MXFP4 weights are the left operand.

The other MoE kernels decode e2m1 themselves (three integer operations a code) and hand the
tensor cores the weights as the right operand, which on Hopper must pass through shared memory
after the decode. Here the product is turned around, out^T [weight rows, slots] = W @ x^T, and
Triton's own scaled dot upcasts the MXFP4 tile: the weights become the operand that Hopper's
tensor cores can read from registers, and the compiler's lookup-table upcast replaces ours.

Two ways of picking a program's slots (a slot is token t's j-th expert, t * k + j):
- SORTED: as the row-block kernels, BM slots of one expert from `order_by_expert`;
- DIRECT: one slot per program, its expert read from the router's ids (no sort, no padding
  kernels: about ten small launches a layer saved at batch 1). The other BM - 1 columns of the
  product are masked: free while the weights' bytes are the limit.

- up:   h[p] = swiglu(x[token(p)] @ W1[e].T + b1[e])          h [P or S, I] in x's dtype
- down: y[slot(p)] = route(p) * (h[p] @ W2[e].T + b2[e])      y [S, H] fp32, slots unsummed

Without `NATIVE` (Triton's CPU interpreter has no scaled dot) the tile is decoded by the
row-block kernels' exact decode and multiplied with a plain dot: the same indexing, testable
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
def _mx_tile_dot(w_ptr, s_ptr, rows, row_ok, xt, acc, k0, K: tl.constexpr, stride_wn, stride_sn,
                 BK: tl.constexpr, NATIVE: tl.constexpr, W_LEFT: tl.constexpr):
    """acc + W[rows, k0:k0+BK] @ xt ([BN, BM]), W in MXFP4 (bytes [rows, K/2], scales [rows, K/32]).
    W_LEFT: the weights are the scaled dot's left operand (acc [BN, BM]); else its right one
    (acc [BM, BN], the product transposed)."""
    if NATIVE:
        kb = k0 // 2 + tl.arange(0, BK // 2)
        ks = k0 // 32 + tl.arange(0, BK // 32)
        sc = tl.load(s_ptr + rows[:, None] * stride_sn + ks[None, :],
                     mask=row_ok[:, None] & (ks[None, :] < K // 32), other=127)  # [BN, BK/32] u8
        if W_LEFT:
            raw = tl.load(w_ptr + rows[:, None] * stride_wn + kb[None, :],
                          mask=row_ok[:, None] & (kb[None, :] < K // 2), other=0)  # [BN, BK/2] u8
            return tl.dot_scaled(raw, sc, "e2m1", xt, None, "bf16", acc, fast_math=True)
        else:
            raw_t = tl.load(w_ptr + rows[None, :] * stride_wn + kb[:, None],
                            mask=row_ok[None, :] & (kb[:, None] < K // 2), other=0)  # [BK/2, BN] u8
            return tl.dot_scaled(tl.trans(xt), None, "bf16", raw_t, sc, "e2m1", acc, fast_math=True)
    else:
        w = _dequant_tile(w_ptr, s_ptr, rows, row_ok, k0, K, stride_wn, stride_sn, BK, True)
        if W_LEFT:
            return tl.dot(w.to(xt.dtype), xt, acc)
        else:
            return tl.dot(tl.trans(xt), tl.trans(w.to(xt.dtype)), acc)


@triton.jit
def _program_slots(sorted_ptr, block_expert_ptr, ids_ptr, num_padded_ptr, num_slots,
                   BM: tl.constexpr, DIRECT: tl.constexpr):
    """-> (expert, slot of each of the BM columns, the row of h they use, active)."""
    pid = tl.program_id(0)
    lanes = tl.arange(0, BM)
    if DIRECT:
        e = tl.load(ids_ptr + pid).to(tl.int64)
        slots = tl.where(lanes == 0, pid, num_slots)
        return e, slots, slots, pid >= 0
    else:
        active = pid * BM < tl.load(num_padded_ptr)
        e = tl.load(block_expert_ptr + pid).to(tl.int64)
        rows_p = pid * BM + lanes
        return e, tl.load(sorted_ptr + rows_p), rows_p, active


# num_slots (tokens x k) changes every step: no specialization on it (see attention_triton.py).
@triton.jit(do_not_specialize=["num_slots"])
def _scaled_up_kernel(x_ptr, w_ptr, s_ptr, b_ptr, h_ptr, sorted_ptr, block_expert_ptr, num_padded_ptr, ids_ptr,
                      num_slots, stride_x, stride_we, stride_wn, stride_se, stride_sn, stride_be, stride_h,
                      limit, alpha, K: tl.constexpr, N: tl.constexpr, TOPK: tl.constexpr,
                      BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, DIRECT: tl.constexpr,
                      NATIVE: tl.constexpr, W_LEFT: tl.constexpr):
    e, slots, h_rows, active = _program_slots(sorted_ptr, block_expert_ptr, ids_ptr, num_padded_ptr, num_slots,
                                              BM, DIRECT)
    if active:
        valid = slots < num_slots
        tokens = (slots // TOPK).to(tl.int64)
        rows = tl.program_id(1) * BN + tl.arange(0, BN)  # weight rows: gate/up columns of h
        row_ok = rows < N
        acc = tl.zeros((BN, BM) if W_LEFT else (BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            kk = k0 + tl.arange(0, BK)
            xt = tl.load(x_ptr + tokens[None, :] * stride_x + kk[:, None],
                         mask=valid[None, :] & (kk[:, None] < K), other=0.0)  # [BK, BM]
            acc = _mx_tile_dot(w_ptr + e * stride_we, s_ptr + e * stride_se, rows, row_ok, xt, acc, k0, K,
                               stride_wn, stride_sn, BK, NATIVE, W_LEFT)
        if not W_LEFT:
            acc = tl.trans(acc)  # [BN, BM]
        acc += tl.load(b_ptr + e * stride_be + rows, mask=row_ok, other=0.0).to(tl.float32)[:, None]
        # gpt-oss quirk: gate and up interleave (even, odd rows); clamp gate above, up both sides.
        gate, up = tl.split(tl.permute(tl.reshape(acc, (BN // 2, 2, BM)), (0, 2, 1)))  # [BN/2, BM] each
        gate = tl.minimum(gate, limit)
        up = tl.minimum(tl.maximum(up, -limit), limit)
        h = gate * tl.sigmoid(alpha * gate) * (up + 1.0)
        hcols = tl.program_id(1) * (BN // 2) + tl.arange(0, BN // 2)
        tl.store(h_ptr + h_rows[None, :].to(tl.int64) * stride_h + hcols[:, None], h.to(h_ptr.dtype.element_ty),
                 mask=(hcols[:, None] < N // 2) & valid[None, :])


@triton.jit(do_not_specialize=["num_slots"])
def _scaled_down_kernel(h_ptr, w_ptr, s_ptr, b_ptr, y_ptr, route_ptr, sorted_ptr, block_expert_ptr, num_padded_ptr,
                        ids_ptr, num_slots, stride_h, stride_we, stride_wn, stride_se, stride_sn, stride_be, stride_y,
                        K: tl.constexpr, N: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                        DIRECT: tl.constexpr, NATIVE: tl.constexpr, W_LEFT: tl.constexpr):
    e, slots, h_rows, active = _program_slots(sorted_ptr, block_expert_ptr, ids_ptr, num_padded_ptr, num_slots,
                                              BM, DIRECT)
    if active:
        valid = slots < num_slots
        rows = tl.program_id(1) * BN + tl.arange(0, BN)  # weight rows: hidden columns of y
        row_ok = rows < N
        acc = tl.zeros((BN, BM) if W_LEFT else (BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            kk = k0 + tl.arange(0, BK)
            ht = tl.load(h_ptr + h_rows[None, :].to(tl.int64) * stride_h + kk[:, None],
                         mask=valid[None, :] & (kk[:, None] < K), other=0.0)  # [BK, BM]
            acc = _mx_tile_dot(w_ptr + e * stride_we, s_ptr + e * stride_se, rows, row_ok, ht, acc, k0, K,
                               stride_wn, stride_sn, BK, NATIVE, W_LEFT)
        if not W_LEFT:
            acc = tl.trans(acc)  # [BN, BM]
        acc += tl.load(b_ptr + e * stride_be + rows, mask=row_ok, other=0.0).to(tl.float32)[:, None]
        acc = acc * tl.load(route_ptr + slots, mask=valid, other=0.0)[None, :]
        tl.store(y_ptr + slots[None, :].to(tl.int64) * stride_y + rows[:, None], acc,
                 mask=row_ok[:, None] & valid[None, :])


NATIVE = True  # tl.dot_scaled on CUDA; else the exact decode and a plain dot (Triton's interpreter)


@dataclass(frozen=True)
class ScaledTiles:
    bn: int  # weight rows per program
    bk: int  # reduction step
    warps: int
    stages: int
    w_left: bool = False  # the weights as the scaled dot's left operand (see _mx_tile_dot): slower


# (up, down) tiles per mode; bench/moe_scaled_dot.py sweeps them on the GPU.
# H100, one layer of gpt-oss-20b (bench/moe_scaled_dot.py, sorted): 64 tokens 305 us with these
# (337 with (64, 256, 4, 3); about 1,200 with the weights as the left operand); 256 and 512
# tokens within 1% and 5% of their best.
TILES: dict[str, tuple[ScaledTiles, ScaledTiles]] = {
    "direct": (ScaledTiles(64, 256, 4, 3), ScaledTiles(64, 256, 4, 3)),
    "sorted": (ScaledTiles(128, 64, 4, 5), ScaledTiles(128, 128, 4, 3)),
}
BLOCK_M = 16  # slots per program in DIRECT mode: the smallest dot Triton takes


def scaled_up(x: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor, topk: int,
              limit: float, alpha: float, ids: torch.Tensor | None = None,
              order: ExpertOrder | None = None) -> torch.Tensor:
    """x [T, H] -> h in x's dtype: [T * k, I] by slot (ids given, DIRECT) or [P, I] by sorted row (order)."""
    e, n, groups, _ = blocks.shape  # n = 2I
    w = blocks.view(e, n, groups * 16)
    direct = order is None
    t = TILES["direct" if direct else "sorted"][0]
    if direct:
        assert ids is not None
        rows, dummy, bm = ids.numel(), ids.new_zeros(1, dtype=torch.int32), BLOCK_M
        sorted_slots = block_expert = num_padded = dummy
        num_programs, ids_arg = rows, ids.contiguous()
    else:
        assert order is not None
        rows, bm = order.sorted_slots.numel(), order.block_m
        sorted_slots, block_expert, num_padded = order.sorted_slots, order.block_expert, order.num_padded
        num_programs, ids_arg = rows // bm, order.num_padded
    h = torch.empty(rows, n // 2, dtype=x.dtype, device=x.device)
    grid = (num_programs, triton.cdiv(n, t.bn))
    _scaled_up_kernel[grid](
        x, w, scales, bias, h, sorted_slots, block_expert, num_padded, ids_arg, x.shape[0] * topk,
        x.stride(0), w.stride(0), w.stride(1), scales.stride(0), scales.stride(1), bias.stride(0), h.stride(0),
        float(limit), float(alpha), K=groups * 32, N=n, TOPK=topk, BM=bm, BN=t.bn, BK=t.bk,
        DIRECT=direct, NATIVE=NATIVE and x.is_cuda, W_LEFT=t.w_left, num_warps=t.warps, num_stages=t.stages,
    )
    return h


def scaled_down(h: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor,
                route: torch.Tensor, num_slots: int, ids: torch.Tensor | None = None,
                order: ExpertOrder | None = None) -> torch.Tensor:
    """h (as scaled_up returned it) -> y [S, H] fp32: each slot's expert output times its routing weight."""
    e, n, groups, _ = blocks.shape  # n = H
    w = blocks.view(e, n, groups * 16)
    direct = order is None
    t = TILES["direct" if direct else "sorted"][1]
    if direct:
        assert ids is not None
        dummy, bm = ids.new_zeros(1, dtype=torch.int32), BLOCK_M
        sorted_slots = block_expert = num_padded = dummy
        num_programs, ids_arg = num_slots, ids.contiguous()
    else:
        assert order is not None
        bm = order.block_m
        sorted_slots, block_expert, num_padded = order.sorted_slots, order.block_expert, order.num_padded
        num_programs, ids_arg = order.sorted_slots.numel() // bm, order.num_padded
    route = route.float().contiguous()
    y = torch.empty(num_slots, n, dtype=torch.float32, device=h.device)
    grid = (num_programs, triton.cdiv(n, t.bn))
    _scaled_down_kernel[grid](
        h, w, scales, bias, y, route, sorted_slots, block_expert, num_padded, ids_arg, num_slots,
        h.stride(0), w.stride(0), w.stride(1), scales.stride(0), scales.stride(1), bias.stride(0), y.stride(0),
        K=groups * 32, N=n, BM=bm, BN=t.bn, BK=t.bk, DIRECT=direct, NATIVE=NATIVE and h.is_cuda, W_LEFT=t.w_left,
        num_warps=t.warps, num_stages=t.stages,
    )
    return y
