"""Triton kernels of the MoE for big steps (about 4k tokens and more): row blocks over a bf16 copy.

The token-slots are sorted by expert and each expert's run padded to a multiple of BLOCK_M
(moe_mxfp4.order_by_expert), so one program computes BLOCK_M slots of one expert against a tile
of that expert's weights. At these sizes every expert serves hundreds of slots: each weight tile
is used by several row blocks, so the layer's experts are dequantized once into a bf16 copy
(`dequantize_all`, one layer at a time) rather than decoded in every block. Two launches:
- up:   h[p] = swiglu(x[token(p)] @ W1[e].T + b1[e])   (SwiGLU fused: the pairs of gate/up
        columns sit side by side in one N tile, so the [*, 2I] product never reaches memory);
- down: y[slot(p)] = weight(p) * (h[p] @ W2[e].T + b2[e]); then y is summed over the k slots.
`_dequant_tile`, the exact e2m1 decode, also serves moe_scaled_triton.py where Triton has no
scaled dot (its CPU interpreter). Imported only where Triton is installed (GPU machines, or
TRITON_INTERPRET=1 on a CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import triton
import triton.language as tl

if TYPE_CHECKING:
    from codexpc.engine.kernels.moe_mxfp4 import ExpertOrder


@triton.jit
def _dequant_tile(codes_ptr, scales_ptr, rows, row_ok, k0, K: tl.constexpr, stride_row, stride_srow,
                  BK: tl.constexpr):
    """MXFP4 rows[:] x [k0, k0 + BK) -> [BN, BK] fp32 (exact). Bytes hold two e2m1 codes, low nibble first."""
    kb = k0 // 2 + tl.arange(0, BK // 2)  # byte columns
    raw = tl.load(codes_ptr + rows[:, None] * stride_row + kb[None, :],
                  mask=row_ok[:, None] & (kb[None, :] < K // 2), other=0)  # [BN, BK/2] u8
    codes = tl.reshape(tl.join(raw & 0xF, raw >> 4), (raw.shape[0], BK)).to(tl.int32)  # low nibble first
    # The code's 3 magnitude bits (e e m) land on float32's exponent low bits and mantissa top
    # bit; that float is the e2m1 value times 2^-126 (e == 0 gives the subnormal 2^-127 for 0.5),
    # so one multiply restores it: six integer/float ops per value, not twenty.
    bits = ((codes & 8) << 28) | ((codes & 7) << 22)
    val = bits.to(tl.float32, bitcast=True) * 8.507059173023462e37  # 2^126
    ks = k0 // 32 + tl.arange(0, BK // 32)
    s = tl.load(scales_ptr + rows[:, None] * stride_srow + ks[None, :],
                mask=row_ok[:, None] & (ks[None, :] < K // 32), other=127).to(tl.int32)  # [BN, BK/32]
    # 2^(s - 127) built from its float32 bits (s is the biased exponent itself).
    scale = (s << 23).to(tl.float32, bitcast=True)
    val = tl.reshape(val, (raw.shape[0], BK // 32, 32)) * scale[:, :, None]
    return tl.reshape(val, (raw.shape[0], BK))


@triton.jit
def _weight_tile(w_ptr, rows, row_ok, k0, K: tl.constexpr, BK: tl.constexpr):
    """[BN, BK] of one expert's bf16 copy."""
    kk = k0 + tl.arange(0, BK)
    return tl.load(w_ptr + rows[:, None].to(tl.int64) * K + kk[None, :], mask=row_ok[:, None] & (kk[None, :] < K),
                   other=0.0)


@triton.jit
def _dequant_all_kernel(w_ptr, s_ptr, out_ptr, num_rows, K: tl.constexpr, BR: tl.constexpr, BK: tl.constexpr):
    rows = tl.program_id(0) * BR + tl.arange(0, BR)
    k0 = tl.program_id(1) * BK
    ok = rows < num_rows
    val = _dequant_tile(w_ptr, s_ptr, rows.to(tl.int64), ok, k0, K, K // 2, K // 32, BK)
    kk = k0 + tl.arange(0, BK)
    tl.store(out_ptr + rows[:, None].to(tl.int64) * K + kk[None, :], val.to(out_ptr.dtype.element_ty),
             mask=ok[:, None] & (kk[None, :] < K))


@triton.jit
def _grouped_pid(N: tl.constexpr, BN: tl.constexpr, GROUP_M: tl.constexpr):
    """A 1-D launch walked GROUP_M row blocks at a time across every column tile, so those
    rows' activations stay in L2 while the weight tiles stream past (and at large batches
    one expert's row blocks share each weight tile while it is in L2)."""
    pid = tl.program_id(0)
    num_n: tl.constexpr = (N + BN - 1) // BN
    num_m = tl.num_programs(0) // num_n
    group = pid // (GROUP_M * num_n)
    first_m = group * GROUP_M
    size = tl.minimum(num_m - first_m, GROUP_M)  # the last group may be short
    in_group = pid % (GROUP_M * num_n)
    return first_m + in_group % size, in_group // size


# num_slots (tokens x k) changes every step: no specialization on it (see attention_triton.py).
@triton.jit(do_not_specialize=["num_slots"])
def _moe_up_kernel(x_ptr, w_ptr, b_ptr, h_ptr, sorted_ptr, block_expert_ptr, num_padded_ptr,
                   num_slots, K: tl.constexpr, N: tl.constexpr, stride_x, stride_we, stride_be, stride_h,
                   limit, alpha, TOPK: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                   GROUP_M: tl.constexpr):
    pid_m, pid_n = _grouped_pid(N, BN, GROUP_M)
    if pid_m * BM >= tl.load(num_padded_ptr):
        return
    e = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    rows_p = pid_m * BM + tl.arange(0, BM)
    slots = tl.load(sorted_ptr + rows_p)
    valid = slots < num_slots
    tokens = (slots // TOPK).to(tl.int64)
    cols = pid_n * BN + tl.arange(0, BN)
    col_ok = cols < N
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        kk = k0 + tl.arange(0, BK)
        a = tl.load(x_ptr + tokens[:, None] * stride_x + kk[None, :], mask=valid[:, None] & (kk[None, :] < K), other=0.0)
        w = _weight_tile(w_ptr + e * stride_we, cols, col_ok, k0, K, BK)
        acc = tl.dot(a, tl.trans(w.to(a.dtype)), acc)  # bf16 operands on the GPU
    acc += tl.load(b_ptr + e * stride_be + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    # gpt-oss quirk: gate and up interleave (even, odd columns); clamp gate above, up both sides.
    gate, up = tl.split(tl.reshape(acc, (BM, BN // 2, 2)))
    gate = tl.minimum(gate, limit)
    up = tl.minimum(tl.maximum(up, -limit), limit)
    h = gate * tl.sigmoid(alpha * gate) * (up + 1.0)  # [BM, BN/2]
    hcols = pid_n * (BN // 2) + tl.arange(0, BN // 2)
    tl.store(h_ptr + rows_p[:, None].to(tl.int64) * stride_h + hcols[None, :], h.to(h_ptr.dtype.element_ty),
             mask=hcols[None, :] < N // 2)


@triton.jit(do_not_specialize=["num_slots"])
def _moe_down_kernel(h_ptr, w_ptr, b_ptr, y_ptr, route_ptr, sorted_ptr, block_expert_ptr, num_padded_ptr,
                     num_slots, K: tl.constexpr, N: tl.constexpr, stride_h, stride_we, stride_be, stride_y,
                     BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr):
    pid_m, pid_n = _grouped_pid(N, BN, GROUP_M)
    if pid_m * BM >= tl.load(num_padded_ptr):
        return
    e = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    rows_p = pid_m * BM + tl.arange(0, BM)
    slots = tl.load(sorted_ptr + rows_p)
    valid = slots < num_slots
    cols = pid_n * BN + tl.arange(0, BN)
    col_ok = cols < N
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        kk = k0 + tl.arange(0, BK)
        a = tl.load(h_ptr + rows_p[:, None].to(tl.int64) * stride_h + kk[None, :], mask=kk[None, :] < K, other=0.0)
        w = _weight_tile(w_ptr + e * stride_we, cols, col_ok, k0, K, BK)
        acc = tl.dot(a, tl.trans(w.to(a.dtype)), acc)
    acc += tl.load(b_ptr + e * stride_be + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    route = tl.load(route_ptr + slots, mask=valid, other=0.0)
    acc = acc * route[:, None]
    tl.store(y_ptr + slots[:, None].to(tl.int64) * stride_y + cols[None, :], acc, mask=valid[:, None] & col_ok[None, :])


@dataclass(frozen=True)
class Tiles:
    bn: int  # weight rows (output columns) per program
    bk: int  # reduction step
    warps: int
    stages: int
    group_m: int = 8  # row blocks that sweep the column tiles together


def default_tiles(block_m: int) -> Tiles:
    """Measured on an H100 (docs/fast-engine-notes.md): at 16-32 rows the shape hardly matters
    (445-509 us for 64 tokens over seven shapes: the e2m1 decode's ALU work is the limit); at 128
    rows the bf16-copy path with wide tiles is best (4.1 ms for 8192 tokens, about 400 TFLOP/s;
    bench/fast_engine.py's kernels part sweeps them)."""
    if block_m <= 32:
        return Tiles(64, 64, 4, 3)
    if block_m <= 64:
        return Tiles(128, 64, 8, 3)
    return Tiles(256, 64, 8, 3)


def dequantize_all(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[E, N, K/32, 16] + [E, N, K/32] -> [E, N, K] of `dtype`: one pass, for big batches."""
    e, n, groups, _ = blocks.shape
    k = groups * 32
    out = torch.empty(e, n, k, dtype=dtype, device=blocks.device)
    br, bk = 32, 128
    grid = (triton.cdiv(e * n, br), triton.cdiv(k, bk))
    _dequant_all_kernel[grid](blocks, scales, out, e * n, K=k, BR=br, BK=bk, num_warps=4)
    return out


def launch_up(x: torch.Tensor, order: ExpertOrder, w: torch.Tensor, bias: torch.Tensor, topk: int, limit: float,
              alpha: float, tiles: Tiles | None = None) -> torch.Tensor:
    """w [E, 2I, H] (dequantize_all's) -> h [P, I] in x's dtype, row p for sorted slot p (padding
    rows hold garbage nobody reads)."""
    e, n, k = w.shape  # n = 2I
    p = order.sorted_slots.numel()
    h = torch.empty(p, n // 2, dtype=x.dtype, device=x.device)
    t = tiles or default_tiles(order.block_m)
    grid = (p // order.block_m * triton.cdiv(n, t.bn),)
    _moe_up_kernel[grid](
        x, w, bias, h, order.sorted_slots, order.block_expert, order.num_padded,
        x.shape[0] * topk, k, n, x.stride(0), w.stride(0), bias.stride(0), h.stride(0), float(limit), float(alpha),
        TOPK=topk, BM=order.block_m, BN=t.bn, BK=t.bk, GROUP_M=t.group_m, num_warps=t.warps, num_stages=t.stages,
    )
    return h


def launch_down(h: torch.Tensor, order: ExpertOrder, w: torch.Tensor, bias: torch.Tensor, route: torch.Tensor,
                num_slots: int, tiles: Tiles | None = None) -> torch.Tensor:
    """w [E, H, I] (dequantize_all's) -> y [S, H] fp32: each slot's expert output times its routing weight."""
    e, n, k = w.shape  # n = H
    y = torch.empty(num_slots, n, dtype=torch.float32, device=h.device)
    t = tiles or default_tiles(order.block_m)
    grid = (order.sorted_slots.numel() // order.block_m * triton.cdiv(n, t.bn),)
    _moe_down_kernel[grid](
        h, w, bias, y, route, order.sorted_slots, order.block_expert, order.num_padded,
        num_slots, k, n, h.stride(0), w.stride(0), bias.stride(0), y.stride(0),
        BM=order.block_m, BN=t.bn, BK=t.bk, GROUP_M=t.group_m, num_warps=t.warps, num_stages=t.stages,
    )
    return y
